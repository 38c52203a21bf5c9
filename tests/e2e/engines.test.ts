// What a viewer's browser does with the SDK, in the three engines viewers use: Chromium, Firefox
// (Gecko) and WebKit (Safari's engine, as WebKitGTK). Written once, run per engine through
// tests/setup/browsers.ts, against the real stack (serverless offline, Kafka, ClickHouse). The
// page (demo server) and the API are two origins; each try has a fresh profile, so no cached
// preflight. A proxy between them (tests/setup/api-faults.ts) sees each batch and injects faults.
import { randomUUID } from 'node:crypto';
import { mkdir, writeFile } from 'node:fs/promises';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { engineAptLine, engineNames, launchEngine, missingEngine, type Engine, type EngineName, type EnginePage } from '../setup/browsers.ts';
import { eventually } from '../setup/context.ts';
import { useApiStack } from '../setup/demo-stack.ts';
import type { SeenBatch } from '../setup/api-faults.ts';

const artifacts = fileURLToPath(new URL('../../test-results/', import.meta.url));
const secret = 'an-engines-e2e-secret-of-sufficient-length';

// CI (.ci/run) sets UGC_REQUIRE_ENGINES=1: there a missing engine fails; elsewhere it is skipped, said in one line.
const missing = engineNames.flatMap((name) => { const why = missingEngine(name); return why ? [`${name} (${why})`] : []; });
if (missing.length > 0) {
  if (process.env.UGC_REQUIRE_ENGINES === '1') throw new Error(`UGC_REQUIRE_ENGINES=1 but missing: ${missing.join(', ')}; install them: ${engineAptLine}`);
  console.warn(`browser engine tests skipped: ${missing.join(', ')}; add them with: sudo ${engineAptLine}`);
}

/** How the page sends what is queued when it is hidden: the SDK's default (sendBeacon), and each fallback. */
const unloadPaths = {
  beacon: '',
  // fetch keepalive: where sendBeacon is missing.
  fetch: '&unload=fetch',
  // A sendBeacon that refuses the body (as over its quota): the SDK then sends fetch keepalive.
  refused: '&unload=refused',
} as const;
type UnloadPath = keyof typeof unloadPaths;
const leaves = ['close', 'navigate'] as const;
// Tries per path and way of leaving. Firefox closes get more: it loses some by its own race (see
// the assertion), and "at least one of 4" is what a working path cannot miss by chance.
const tries = 2;
const triesOf = (engine: string, leave: (typeof leaves)[number]) => (engine === 'firefox' && leave === 'close' ? 4 : tries);

const stack = useApiStack('engines', secret, { faults: true });

interface Row { engine: string; check: string; tries: number; delivered: number; forms: string }
const table: Row[] = [];

const viewerAndFilm = () => ({ viewer: `viewer-${randomUUID().slice(0, 8)}`, film: `film-${randomUUID().slice(0, 8)}` });
const pageUrl = (viewer: string, film: string, extra = '') => `${stack.demo.url}?viewer=${viewer}&film=${film}${extra}`;
const batchesOf = (viewer: string): SeenBatch[] => stack.faults!.batches.filter((b) => b.sub === viewer);
/** How a viewer's batches went, e.g. "ordinary 202, unload 202". */
const formsOf = (viewer: string) => [...new Set(batchesOf(viewer).map((b) => `${b.form}${b.gzip ? '+gzip' : ''} ${b.outcome}`))].join(', ') || 'none';

// The page, through expressions any engine evaluates.
const ready = (page: EnginePage) => eventually(async () => ((await page.evaluate<string>("document.querySelector('#status').dataset.ready")) === 'true' ? true : undefined), 20_000, 'the demo page to be ready');
const click = (page: EnginePage, selector: string) => page.evaluate(`(document.querySelector('${selector}').click(), true)`);
const position = (page: EnginePage) => page.evaluate<number>("Number(document.querySelector('#time').dataset.position)");
const stats = (page: EnginePage) => page.evaluate<Record<string, number>>("JSON.parse(document.querySelector('#stats').textContent || '{}')");
async function playUntil(page: EnginePage, seconds: number): Promise<void> {
  await click(page, '#play');
  await eventually(async () => ((await position(page)) >= seconds ? true : undefined), 30_000, `the film at ${seconds} s`);
}

/** The viewer's greatest stored position in the film, once it is at least `atLeast`, or what there is after the wait. */
async function storedPosition(viewer: string, film: string, atLeast: number, timeoutMs = 20_000): Promise<number | undefined> {
  let found: number | undefined;
  await eventually(async () => {
    const result = await stack.db.client.query({
      query: "SELECT max(position_s) AS p, count() AS n FROM events WHERE user_id = {u:String} AND film_id = {f:String} AND event_type = 'film_progress'",
      query_params: { u: viewer, f: film }, format: 'JSONEachRow',
    });
    const [row] = await result.json<{ p: number; n: string | number }>();
    found = row && Number(row.n) > 0 ? Number(row.p) : undefined;
    return found !== undefined && found >= atLeast ? true : undefined;
  }, timeoutMs, 'the position in ClickHouse').catch(() => {});
  return found;
}

async function storedEventIds(viewer: string): Promise<Set<string>> {
  const result = await stack.db.client.query({
    query: 'SELECT toString(event_id) AS id FROM events WHERE user_id = {u:String}', query_params: { u: viewer }, format: 'JSONEachRow',
  });
  return new Set((await result.json<{ id: string }>()).map((r) => r.id));
}

describe.each(engineNames)('the SDK in %s', (name: EngineName) => {
  const skip = missingEngine(name) !== undefined;
  let engine: Engine;
  beforeAll(async () => { if (!skip) engine = await launchEngine(name); }, 60_000);
  afterAll(async () => { await engine?.close(); });

  /** A fresh profile's page, disposed after `use` whatever happens. */
  async function withPage<T>(use: (page: EnginePage) => Promise<T>): Promise<T> {
    const page = await engine.newPage();
    try {
      return await use(page);
    } finally {
      await page.dispose();
    }
  }

  it.skipIf(skip)(`delivers the final position when the page is closed and when it navigates away, by sendBeacon, by fetch keepalive, and by fetch keepalive after a refused beacon, ${tries} tries each (Firefox closes 4)`, async () => {
    const done: { path: UnloadPath; leave: (typeof leaves)[number]; viewer: string; film: string; playedTo: number }[] = [];
    for (const path of Object.keys(unloadPaths) as UnloadPath[]) {
      for (const leave of leaves) {
        for (let i = 0; i < triesOf(name, leave); i++) {
          const { viewer, film } = viewerAndFilm();
          // report=600: no periodic report while playing, so only the one sent on the way out carries the position.
          const playedTo = await withPage(async (page) => {
            await page.goto(pageUrl(viewer, film, `&report=600${unloadPaths[path]}`));
            await ready(page);
            await playUntil(page, 1);
            const at = await position(page);
            if (leave === 'close') await page.closeTab();
            else await page.goto('about:blank');
            // Let a beacon or keepalive request leave the browser before the profile (and its network) goes.
            await sleep(1_000);
            return at;
          });
          done.push({ path, leave, viewer, film, playedTo });
        }
      }
    }
    // All at once, so a try that never arrives costs one deadline, not one each.
    const results = await Promise.all(done.map(async (t) => ({ ...t, stored: await storedPosition(t.viewer, t.film, t.playedTo) })));
    const counts: Record<string, { tries: number; delivered: number; closed: number; navigated: number }> = {};
    for (const path of Object.keys(unloadPaths) as UnloadPath[]) {
      const mine = results.filter((r) => r.path === path);
      const reached = mine.filter((r) => (r.stored ?? -1) >= r.playedTo);
      counts[path] = { tries: mine.length, delivered: reached.length, closed: reached.filter((r) => r.leave === 'close').length, navigated: reached.filter((r) => r.leave === 'navigate').length };
      for (const leave of leaves) {
        const these = mine.filter((r) => r.leave === leave);
        table.push({
          engine: engine.version, check: `unload ${path}, ${leave}`, tries: these.length,
          delivered: these.filter((r) => (r.stored ?? -1) >= r.playedTo).length, forms: [...new Set(these.map((r) => formsOf(r.viewer)))].join(' | '),
        });
      }
    }
    console.log(`${engine.version} unload path, final progress event in ClickHouse: ${JSON.stringify(counts)}`);
    for (const path of Object.keys(unloadPaths) as UnloadPath[]) {
      const { closed, navigated } = counts[path]!;
      expect(navigated, `${name} ${path}, navigated away`).toBe(tries);
      // Firefox's own behaviour, not the harness's: closing a tab shuts down its content process when
      // no other tab uses it, and Firefox then aborts the script still running there
      // (dom.abort_script_on_child_shutdown, on by default), so a pagehide listener can die before
      // it reaches sendBeacon or fetch: no request is made at all. Seen with a bare page (no SDK)
      // closed by BiDi: 1-7 of 8 whatever the wait before the profile goes (1 s or 5 s),
      // runBeforeUnload, a second tab, same or cross origin, puppeteer's process model or Fission's;
      // the same close with that pref off: 8 of 8, and this matrix 6 of 6. Still held to "at least one".
      // Held to "at least one of 4": 25 of 28 Firefox closes delivered over 7 runs of this matrix.
      if (name === 'firefox') expect(closed, `${name} ${path}, closed`).toBeGreaterThanOrEqual(1);
      else expect(closed, `${name} ${path}, closed`).toBe(tries);
    }
  }, 240_000);

  it.skipIf(skip)('gzips batches through CompressionStream where the engine has it (plain where not), and retries a 503 no sooner than its Retry-After, then delivers', async () => {
    const { viewer, film } = viewerAndFilm();
    stack.faults!.fail503(viewer, 2, 2);
    const hasCompressionStream = await withPage(async (page) => {
      await page.goto(pageUrl(viewer, film, '&report=1'));
      await ready(page);
      const has = await page.evaluate<boolean>("typeof CompressionStream === 'function'");
      await playUntil(page, 3);
      await eventually(async () => (batchesOf(viewer).some((b) => b.outcome === 202) ? true : undefined), 30_000, 'a batch accepted after the 503s');
      await click(page, '#play');
      return has;
    });
    const batches = batchesOf(viewer);
    const refused = batches.filter((b) => b.outcome === 503);
    expect(refused, 'the 503s served').toHaveLength(2);
    // The batch refused first came again, no sooner than Retry-After (2 s) after the 503.
    const retry = batches.find((b) => b.at > refused[0]!.at && b.eventIds.includes(refused[0]!.eventIds[0]!))!;
    expect(retry, 'a retry of the refused batch').toBeDefined();
    expect(retry.at - refused[0]!.at).toBeGreaterThanOrEqual(1_990);
    const ordinary = batches.filter((b) => b.form === 'ordinary');
    expect(ordinary.every((b) => b.gzip === hasCompressionStream), formsOf(viewer)).toBe(true);
    const accepted = batches.filter((b) => b.outcome === 202).flatMap((b) => b.eventIds);
    const stored = await eventually(async () => { const ids = await storedEventIds(viewer); return refused[0]!.eventIds.every((id) => ids.has(id)) ? ids : undefined; }, 20_000, 'the refused events in ClickHouse');
    expect(accepted.every((id) => stored.has(id))).toBe(true);
    table.push({ engine: engine.version, check: `503 + Retry-After 2 s, then retried (CompressionStream: ${hasCompressionStream ? 'yes' : 'no'})`, tries: 1, delivered: refused[0]!.eventIds.every((id) => stored.has(id)) ? 1 : 0, forms: formsOf(viewer) });
  }, 60_000);

  it.skipIf(skip)('offers "continue from" the position of right before a reload, at once', async () => {
    const { viewer, film } = viewerAndFilm();
    const { before, offered } = await withPage(async (page) => {
      await page.goto(pageUrl(viewer, film, '&report=600'));
      await ready(page);
      await playUntil(page, 3);
      const at = await position(page);
      await page.reload();
      await ready(page);
      await eventually(async () => ((await page.evaluate<boolean>("document.querySelector('#offer').hidden")) ? undefined : true), 10_000, 'the continue offer');
      return { before: at, offered: Number(await page.evaluate<string>("document.querySelector('#offer').dataset.position")) };
    });
    expect(offered).toBeGreaterThanOrEqual(before);
    expect(offered).toBeLessThanOrEqual(before + 1);
    const stored = await storedPosition(viewer, film, offered);
    table.push({ engine: engine.version, check: 'continue watching right after a reload', tries: 1, delivered: stored === offered ? 1 : 0, forms: formsOf(viewer) });
    expect(stored).toBe(offered);
  }, 60_000);

  it.skipIf(skip)('keeps what it could not send while the API was unreachable across a reload, and sends it once the API is back', async () => {
    const { viewer, film } = viewerAndFilm();
    stack.faults!.setDown(viewer, true);
    let pausedAt = 0;
    let reloadedAt = 0;
    await withPage(async (page) => {
      await page.goto(pageUrl(viewer, film, '&report=1'));
      await ready(page);
      await playUntil(page, 3);
      await eventually(async () => ((await stats(page)).retries! >= 1 ? true : undefined), 20_000, 'a failed send');
      await click(page, '#play');
      pausedAt = await position(page);
      reloadedAt = Date.now();
      await page.reload();
      await ready(page);
      stack.faults!.setDown(viewer, false);
      // The new load sends what the old one kept; wait for it here, with the page open.
      await storedPosition(viewer, film, pausedAt);
    });
    const before = batchesOf(viewer).filter((b) => b.at < reloadedAt);
    expect(before.length, 'sends refused before the reload').toBeGreaterThan(0);
    expect(before.every((b) => b.outcome === 'dropped')).toBe(true);
    const stored = await storedPosition(viewer, film, pausedAt);
    table.push({ engine: engine.version, check: 'offline queue across a reload', tries: 1, delivered: stored === pausedAt ? 1 : 0, forms: formsOf(viewer) });
    expect(stored).toBe(pausedAt);
  }, 60_000);

  // Closed, except in Firefox, which leaves by navigating: what is checked is the token, and Firefox
  // loses some closes to its own race (above), which would make this a coin toss there.
  it.skipIf(skip)('a page open past its token\'s life (8 s) still delivers its final position on leaving: the token was refreshed ahead of exp', async () => {
    const { viewer, film } = viewerAndFilm();
    const playedTo = await withPage(async (page) => {
      await page.goto(pageUrl(viewer, film, '&report=600&token_ttl=8'));
      await ready(page);
      await playUntil(page, 10);
      const at = await position(page);
      if (name === 'firefox') await page.goto('about:blank');
      else await page.closeTab();
      await sleep(1_000);
      return at;
    });
    const stored = await storedPosition(viewer, film, playedTo);
    const batches = batchesOf(viewer);
    const first = batches[0]!;
    const last = batches.filter((b) => b.form === 'unload').at(-1);
    table.push({ engine: engine.version, check: `token expires while open (8 s), page ${name === 'firefox' ? 'left' : 'closed'} at 10 s`, tries: 1, delivered: (stored ?? -1) >= playedTo ? 1 : 0, forms: formsOf(viewer) });
    expect(last, formsOf(viewer)).toBeDefined();
    // The first token had expired when the page was closed; the one it sent with was fetched later and still valid.
    expect(first.exp * 1000).toBeLessThan(last!.at);
    expect(last!.iat).toBeGreaterThan(first.iat);
    expect(last!.exp * 1000).toBeGreaterThan(last!.at);
    expect(stored).toBeGreaterThanOrEqual(playedTo);
  }, 60_000);
});

afterAll(async () => {
  if (table.length === 0) return;
  const lines = ['| engine | check | tries | delivered | requests seen (form, answer) |', '|---|---|---|---|---|',
    ...table.map((r) => `| ${r.engine} | ${r.check} | ${r.tries} | ${r.delivered} | ${r.forms} |`)];
  console.log(`browser engines, final positions in ClickHouse:\n${lines.join('\n')}`);
  await mkdir(artifacts, { recursive: true });
  await writeFile(`${artifacts}engine-counts.json`, JSON.stringify({ at: new Date().toISOString(), table }, null, 2));
});
