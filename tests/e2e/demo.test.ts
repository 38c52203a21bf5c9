import { randomUUID } from 'node:crypto';
import { mkdir } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';
import type { Page } from 'playwright-core';
import { describe, expect, it } from 'vitest';
import { useDemoStack } from '../setup/demo-stack.ts';
import { eventually } from '../setup/context.ts';

const artifacts = fileURLToPath(new URL('../../test-results/', import.meta.url));
const secret = 'a-demo-e2e-secret-of-sufficient-length';

const stack = useDemoStack('demo', secret);

const mmss = (s: number) => `${String(Math.floor(s / 60)).padStart(2, '0')}:${String(s % 60).padStart(2, '0')}`;

async function ready(page: Page): Promise<void> {
  await page.waitForSelector('#status[data-ready="true"]', { timeout: 15_000 });
}

async function latestPosition(userId: string, filmId: string): Promise<number | undefined> {
  const result = await stack.db.client.query({
    query: 'SELECT position_s FROM film_progress_latest FINAL WHERE user_id = {u:String} AND film_id = {f:String}',
    query_params: { u: userId, f: filmId },
    format: 'JSONEachRow',
  });
  return (await result.json<{ position_s: number }>())[0]?.position_s;
}

describe('the demo player in Debian Chromium, against serverless offline', () => {
  it('the API answers the CORS preflight of the demo page\'s origin', async () => {
    const origin = new URL(stack.demo.url).origin;
    for (const path of ['/v1/events', '/v1/progress']) {
      const res = await fetch(`${stack.offline.url}${path}`, {
        method: 'OPTIONS',
        headers: { origin, 'access-control-request-method': path === '/v1/events' ? 'POST' : 'GET', 'access-control-request-headers': 'authorization,content-type,content-encoding' },
      });
      expect(res.status).toBeLessThan(300);
      expect(res.headers.get('access-control-allow-origin')).toMatch(/^(\*|http:\/\/127\.0\.0\.1:\d+)$/);
      expect(res.headers.get('access-control-allow-headers')?.toLowerCase()).toContain('authorization');
      // The SDK gzips its batches.
      expect(res.headers.get('access-control-allow-headers')?.toLowerCase()).toContain('content-encoding');
    }
  });

  it('plays to 00:12, reloads at once, and offers "Continue from 00:12", whether or not the writer has stored it yet', async () => {
    const viewer = `viewer-${randomUUID().slice(0, 8)}`;
    const film = `film-${randomUUID().slice(0, 8)}`;
    const page = await stack.browser.newPage();
    await page.goto(`${stack.demo.url}?viewer=${viewer}&film=${film}`);
    await ready(page);
    await page.click('#play');
    await page.waitForSelector('#time[data-position="12"]', { timeout: 20_000 });
    const serverAnswers: string[] = [];
    page.on('response', (res) => { if (res.url().includes(`/v1/films/${film}/progress`)) void res.text().then((t) => serverAnswers.push(`${res.status()} ${t}`), () => {}); });
    await page.reload();
    await ready(page);
    await page.waitForSelector('#offer:not([hidden])');
    expect(await page.textContent('#continue')).toBe('Continue from 00:12');
    expect(await page.textContent(`#recent li[data-film="${film}"] .at`)).toBe('00:12');
    // What the read API knew at that moment (often 10, the last periodic report): the offer is the newer.
    console.log(`read API at reload: ${serverAnswers.join(' | ')}`);
    // And the page-hide flush of the reload stores 12 itself: wait for it, not for the first row.
    let stored: number | undefined;
    await eventually(async () => { stored = await latestPosition(viewer, film); return stored !== undefined && stored >= 12 ? true : undefined; }, 30_000, 'position 12 in ClickHouse').catch(() => {});
    expect(stored).toBe(12);
    await page.close();
  }, 60_000);

  it('plays, reloads, offers "continue from" the position flushed on unload, and the events are in ClickHouse', async () => {
    const viewer = `viewer-${randomUUID().slice(0, 8)}`;
    const film = `film-${randomUUID().slice(0, 8)}`;
    const page = await stack.browser.newPage({ viewport: { width: 1000, height: 560 } });
    const failures: string[] = [];
    page.on('pageerror', (error) => failures.push(String(error)));
    // Chromium logs every 4xx fetch; the first load's 404 (no position yet) is the API's answer by design.
    page.on('console', (message) => {
      if (message.type() === 'error' && !/status of 404/.test(message.text())) failures.push(message.text());
    });
    page.on('requestfailed', (request) => { if (!request.url().includes('/v1/events')) failures.push(`${request.url()} ${request.failure()?.errorText}`); });

    await page.goto(`${stack.demo.url}?viewer=${viewer}&film=${film}&report=2`);
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
      const result = await stack.db.client.query({
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
