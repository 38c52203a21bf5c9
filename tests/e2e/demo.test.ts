import { randomUUID } from 'node:crypto';
import { mkdir, rm } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';
import { chromium, type Browser, type Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startOffline, type Offline } from '../../localstack/offline.ts';
import { startDemoServer, type DemoServer } from '../../localstack/demo/server.ts';
import { eventually, freePort, migratedDatabase, stackEnv } from '../setup/context.ts';

// Debian's Chromium (installed by .ci/run through apt): no browser is ever downloaded.
const chromiumPath = '/usr/bin/chromium';
const chromiumArgs = ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
  '--disable-background-networking', '--disable-component-update', '--disable-sync'];
const artifacts = fileURLToPath(new URL('../../test-results/', import.meta.url));
const secret = 'a-demo-e2e-secret-of-sufficient-length';
// Its own serverless-esbuild folder: other e2e files run serverless offline at the same time.
const workFolder = `.esbuild-demo-${process.pid}`;

let offline: Offline;
let demo: DemoServer;
let browser: Browser;
let db: Awaited<ReturnType<typeof migratedDatabase>>;

beforeAll(async () => {
  const env = stackEnv();
  db = await migratedDatabase(env.CLICKHOUSE_URL!, 'demo');
  const [httpPort, lambdaPort] = [await freePort(), await freePort()];
  [offline, browser] = await Promise.all([
    startOffline({ env: { ...env, CLICKHOUSE_DATABASE: db.database, JWT_SECRET: secret, ESBUILD_WORK_FOLDER: workFolder }, httpPort, lambdaPort }),
    // playwright gives the browser a new temporary profile (user data dir) of its own.
    chromium.launch({ executablePath: chromiumPath, headless: true, args: chromiumArgs }),
  ]);
  demo = await startDemoServer({ port: 0, apiUrl: offline.url, jwtSecret: secret });
}, 180_000);

afterAll(async () => {
  await browser?.close();
  await demo?.stop();
  await offline?.stop();
  await db?.drop();
  await rm(fileURLToPath(new URL(`../../${workFolder}`, import.meta.url)), { recursive: true, force: true });
});

const mmss = (s: number) => `${String(Math.floor(s / 60)).padStart(2, '0')}:${String(s % 60).padStart(2, '0')}`;

async function ready(page: Page): Promise<void> {
  await page.waitForSelector('#status[data-ready="true"]', { timeout: 15_000 });
}

async function latestPosition(userId: string, filmId: string): Promise<number | undefined> {
  const result = await db.client.query({
    query: 'SELECT position_s FROM film_progress_latest FINAL WHERE user_id = {u:String} AND film_id = {f:String}',
    query_params: { u: userId, f: filmId },
    format: 'JSONEachRow',
  });
  return (await result.json<{ position_s: number }>())[0]?.position_s;
}

describe('the demo player in Debian Chromium, against serverless offline', () => {
  it('the API answers the CORS preflight of the demo page\'s origin', async () => {
    const origin = new URL(demo.url).origin;
    for (const path of ['/v1/events', '/v1/progress']) {
      const res = await fetch(`${offline.url}${path}`, {
        method: 'OPTIONS',
        headers: { origin, 'access-control-request-method': path === '/v1/events' ? 'POST' : 'GET', 'access-control-request-headers': 'authorization,content-type' },
      });
      expect(res.status).toBeLessThan(300);
      expect(res.headers.get('access-control-allow-origin')).toMatch(/^(\*|http:\/\/127\.0\.0\.1:\d+)$/);
      expect(res.headers.get('access-control-allow-headers')?.toLowerCase()).toContain('authorization');
    }
  });

  it('plays, reloads, offers "continue from" the position flushed on unload, and the events are in ClickHouse', async () => {
    const viewer = `viewer-${randomUUID().slice(0, 8)}`;
    const film = `film-${randomUUID().slice(0, 8)}`;
    const page = await browser.newPage({ viewport: { width: 1000, height: 560 } });
    const failures: string[] = [];
    page.on('pageerror', (error) => failures.push(String(error)));
    // Chromium logs every 4xx fetch; the first load's 404 (no position yet) is the API's answer by design.
    page.on('console', (message) => {
      if (message.type() === 'error' && !/status of 404/.test(message.text())) failures.push(message.text());
    });
    page.on('requestfailed', (request) => { if (!request.url().includes('/v1/events')) failures.push(`${request.url()} ${request.failure()?.errorText}`); });

    await page.goto(`${demo.url}?viewer=${viewer}&film=${film}&report=2`);
    await ready(page);
    expect(await page.isHidden('#offer')).toBe(true);

    await page.click('#play');
    await page.waitForTimeout(5_200);
    const beforeReload = Number(await page.getAttribute('#time', 'data-position'));
    expect(beforeReload).toBeGreaterThanOrEqual(4);
    // Reloading hides the page: the SDK sends the last position with fetch keepalive.
    await page.reload();
    await ready(page);

    const saved = await eventually(async () => {
      const position = await latestPosition(viewer, film);
      return position !== undefined && position >= beforeReload ? position : undefined;
    }, 20_000, 'the position sent on unload in film_progress_latest');
    expect(saved).toBeLessThanOrEqual(beforeReload + 1);

    // Now that the writer stored it, a fresh load offers to continue from exactly there.
    await page.reload();
    await ready(page);
    await page.waitForSelector('#offer:not([hidden])');
    expect(await page.textContent('#continue')).toBe(`Continue from ${mmss(saved)}`);
    expect(await page.textContent(`#recent li[data-film="${film}"] .at`)).toBe(mmss(saved));
    await mkdir(artifacts, { recursive: true });
    await page.screenshot({ path: `${artifacts}demo-continue-watching.png` });

    await page.click('#continue');
    await page.waitForTimeout(500);
    expect(Number(await page.getAttribute('#time', 'data-position'))).toBeGreaterThanOrEqual(saved);

    const rows = await eventually(async () => {
      const result = await db.client.query({
        query: 'SELECT event_type, user_id, film_id, position_s, toString(event_id) AS event_id FROM events FINAL WHERE user_id = {u:String} ORDER BY occurred_at',
        query_params: { u: viewer },
        format: 'JSONEachRow',
      });
      const found = await result.json<{ event_type: string; user_id: string; film_id: string; position_s: number | null; event_id: string }>();
      return found.filter((r) => r.event_type === 'page_view').length >= 2 ? found : undefined;
    }, 20_000, 'the page views and progress events in ClickHouse');
    const progress = rows.filter((r) => r.event_type === 'film_progress');
    expect(progress.length).toBeGreaterThanOrEqual(2); // periodic reports, then the one sent on unload
    expect(progress.every((r) => r.film_id === film)).toBe(true);
    expect(Math.max(...progress.map((r) => r.position_s ?? 0))).toBe(saved);
    expect(new Set(rows.map((r) => r.event_id)).size).toBe(rows.length);
    expect(failures).toEqual([]);
    await page.close();
  }, 60_000);
});
