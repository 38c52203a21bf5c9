import { randomUUID } from 'node:crypto';
import { mkdir, writeFile } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';
import { setTimeout as sleep } from 'node:timers/promises';
import { describe, expect, it } from 'vitest';
import { useDemoStack } from '../setup/demo-stack.ts';
import { eventually } from '../setup/context.ts';

// The unload path in Chromium: a viewer plays, then the page goes away (closed, or navigated
// away), and the last position must still reach ClickHouse. The page (demo server) and the API
// (serverless offline) are on two ports, so two origins; each try has a fresh browser context, so
// no preflight is cached. Each of the SDK's two ways is forced in turn.
const artifacts = fileURLToPath(new URL('../../test-results/', import.meta.url));
const secret = 'an-unload-e2e-secret-of-sufficient-length';
// Tries per way; half close the page, half navigate away.
const tries = 8;
const paths = ['beacon', 'fetch'] as const;

const stack = useDemoStack('unload', secret);

interface Try { path: (typeof paths)[number]; leave: 'close' | 'navigate'; viewer: string; film: string; playedTo: number }

/** One viewer: a fresh context (no cached preflight), play about 2.5 s, then leave. */
async function playAndLeave(path: Try['path'], leave: Try['leave']): Promise<Try> {
  const viewer = `viewer-${randomUUID().slice(0, 8)}`;
  const film = `film-${randomUUID().slice(0, 8)}`;
  const context = await stack.browser.newContext();
  const page = await context.newPage();
  // report=600: no periodic report while playing, so only the one sent on the way out can carry the position.
  await page.goto(`${stack.demo.url}?viewer=${viewer}&film=${film}&report=600&unload=${path}`);
  await page.waitForSelector('#status[data-ready="true"]', { timeout: 15_000 });
  await page.click('#play');
  await page.waitForTimeout(2_500);
  const playedTo = Number(await page.getAttribute('#time', 'data-position'));
  if (leave === 'close') await page.close({ runBeforeUnload: true });
  else await page.goto('about:blank');
  // Let a beacon or keepalive request leave the browser before the context (and its network) goes.
  await sleep(1_000);
  await context.close();
  return { path, leave, viewer, film, playedTo };
}

async function storedPosition(viewer: string, film: string): Promise<number | undefined> {
  const result = await stack.db.client.query({
    query: 'SELECT max(position_s) AS position_s, count() AS n FROM events WHERE user_id = {u:String} AND film_id = {f:String} AND event_type = \'film_progress\'',
    query_params: { u: viewer, f: film },
    format: 'JSONEachRow',
  });
  const [row] = await result.json<{ position_s: number | null; n: string | number }>();
  return row && Number(row.n) > 0 ? Number(row.position_s) : undefined;
}

describe('the unload path in Chromium, page and API on two origins, no cached preflight', () => {
  it(`delivers the final progress event when the page is closed or navigated away, ${tries} tries each with sendBeacon and with fetch keepalive`, async () => {
    const done: Try[] = [];
    for (const path of paths) {
      for (let i = 0; i < tries; i++) done.push(await playAndLeave(path, i % 2 === 0 ? 'close' : 'navigate'));
    }
    // The writer's batching window is 1 s; give every try's event the same generous deadline.
    const deadline = Date.now() + 20_000;
    const arrived = new Map<Try, number | undefined>();
    for (const t of done) {
      const position = await eventually(async () => {
        const found = await storedPosition(t.viewer, t.film);
        return found !== undefined || Date.now() > deadline ? { found } : undefined;
      }, 25_000, `the final position of ${t.viewer}`);
      arrived.set(t, position.found);
    }
    const counts = Object.fromEntries(paths.map((path) => {
      const mine = done.filter((t) => t.path === path);
      const reached = mine.filter((t) => (arrived.get(t) ?? -1) >= t.playedTo);
      return [path, {
        reached: reached.length, tries: mine.length,
        closed: reached.filter((t) => t.leave === 'close').length, navigated: reached.filter((t) => t.leave === 'navigate').length,
      }];
    }));
    console.log(`unload path, final progress event in ClickHouse: ${JSON.stringify(counts)}`);
    await mkdir(artifacts, { recursive: true });
    await writeFile(`${artifacts}unload-counts.json`, JSON.stringify({ at: new Date().toISOString(), counts }, null, 2));

    // The position arrived at or after where the viewer was just before leaving, for every try.
    for (const path of paths) expect(counts[path], path).toMatchObject({ reached: tries, tries });
  }, 300_000);
});
