import { randomUUID } from 'node:crypto';
import { mkdir, rm } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';
import { setTimeout as sleep } from 'node:timers/promises';
import { Kafka, logLevel } from 'kafkajs';
import type { Browser, Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startOffline, type Offline } from '../../localstack/offline.ts';
import { startDemoServer, type DemoServer } from '../../localstack/demo/server.ts';
import { signDevToken } from '../../localstack/dev-token.ts';
import { startPipeline, type Pipeline } from '../../localstack/pipeline/collector.ts';
import { launchChromium } from '../setup/browser.ts';
import { eventually, freePort } from '../setup/context.ts';
import { ownPipeline, type OwnPipeline } from '../setup/pipeline.ts';

const artifacts = fileURLToPath(new URL('../../test-results/', import.meta.url));
const secret = 'a-pipeline-page-e2e-secret-of-sufficient-length';
// Its own serverless-esbuild folder: other e2e files run serverless offline at the same time.
const workFolder = `.esbuild-pipeline-${process.pid}`;

let offline: Offline;
let demo: DemoServer;
let pipeline: Pipeline;
let browser: Browser;
let own: OwnPipeline;
const statusLines: string[] = [];

beforeAll(async () => {
  own = await ownPipeline('pipeline');
  const stack = own.env;
  // As `npm start` wires it: the collector first, so serverless offline knows where to send its answers.
  pipeline = await startPipeline({ env: stack, print: (line) => statusLines.push(line), statusEveryMs: 2000 });
  const [httpPort, lambdaPort] = [await freePort(), await freePort()];
  const [offlineStarted, browserLaunched] = await Promise.allSettled([
    startOffline({ env: { ...stack, JWT_SECRET: secret, ESBUILD_WORK_FOLDER: workFolder, ...pipeline.offlineEnv }, httpPort, lambdaPort })
      .then((o) => (offline = o)),
    launchChromium().then((b) => (browser = b)),
  ]);
  for (const result of [offlineStarted, browserLaunched]) if (result.status === 'rejected') throw result.reason;
  demo = await startDemoServer({ port: 0, apiUrl: offline.url, jwtSecret: secret, pipeline: pipeline.view });
}, 180_000);

afterAll(async () => {
  await browser?.close();
  await demo?.stop();
  await pipeline?.stop();
  await offline?.stop();
  await own?.drop();
  await rm(fileURLToPath(new URL(`../../${workFolder}`, import.meta.url)), { recursive: true, force: true });
});

/** A figure the page shows for the last few seconds (its readout's data-value), or null while unknown. */
async function shown(page: Page, id: string): Promise<number | null> {
  const value = await page.getAttribute(`#now-${id}`, 'data-value');
  return value ? Number(value) : null;
}

/** Real traffic: `perSecond` progress events for `seconds`, one request each, plus a forged token every second. */
async function load(perSecond: number, seconds: number): Promise<{ accepted: number; unauthorized: number; other: string[] }> {
  const tokens = await Promise.all(Array.from({ length: 5 }, (_, i) => signDevToken(`pipeline-viewer-${i}`, { secret })));
  const result = { accepted: 0, unauthorized: 0, other: [] as string[] };
  const post = async (token: string) => {
    let status = 0; // no answer in time
    let body = '';
    try {
      const res = await fetch(`${offline.url}/v1/events`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', authorization: `Bearer ${token}` },
        body: JSON.stringify({ type: 'film_progress', event_id: randomUUID(), film_id: `film-${randomUUID().slice(0, 6)}`, position_s: 60, duration_s: 5400 }),
        signal: AbortSignal.timeout(30_000),
      });
      body = await res.text();
      status = res.status;
    } catch { /* counted as no answer */ }
    if (status === 202) result.accepted++;
    else if (status === 401) result.unauthorized++;
    else result.other.push(`${status} ${body.slice(0, 100)}`);
  };
  const sent: Promise<void>[] = [];
  for (let s = 0; s < seconds; s++) {
    for (let i = 0; i < perSecond; i++) {
      sent.push(post(tokens[i % tokens.length]!));
      await sleep(1000 / perSecond);
    }
    sent.push(post('forged.token.here'));
  }
  await Promise.all(sent);
  return result;
}

describe('the /pipeline page in Chromium, under real traffic through serverless offline, Kafka and ClickHouse', () => {
  it('shows non-zero rates at every stage while events flow, the writer\'s lag falls back to 0, and a status line is printed', async () => {
    const page = await browser.newPage({ viewport: { width: 1280, height: 1150 } });
    const failures: string[] = [];
    page.on('pageerror', (error) => failures.push(String(error)));
    page.on('console', (message) => { if (message.type() === 'error') failures.push(message.text()); });
    page.on('requestfailed', (request) => failures.push(`${request.url()} ${request.failure()?.errorText}`));
    await page.goto(demo.pipelineUrl!);
    await page.waitForSelector('#state[data-state="live"]', { timeout: 15_000 }).catch((error: Error) => {
      throw new Error(`the page never went live; its errors: ${failures.join('; ') || 'none'}`, { cause: error });
    });

    // Sampled while the load runs, as someone watching the page would see it.
    const seen = { accepted: 0, clientErrors: 0, events: 0, rows: 0, lag: 0, deadLetters: 0, freshnessP99: 0 };
    let loading = true;
    const watching = (async () => {
      while (loading) {
        seen.accepted = Math.max(seen.accepted, (await shown(page, 'accepted')) ?? 0);
        seen.clientErrors = Math.max(seen.clientErrors, (await shown(page, 'client-errors')) ?? 0);
        seen.events = Math.max(seen.events, (await shown(page, 'events')) ?? 0);
        seen.rows = Math.max(seen.rows, (await shown(page, 'rows')) ?? 0);
        seen.lag = Math.max(seen.lag, (await shown(page, 'lag')) ?? 0);
        seen.deadLetters = Math.max(seen.deadLetters, (await shown(page, 'dead-letters')) ?? 0);
        seen.freshnessP99 = Math.max(seen.freshnessP99, (await shown(page, 'freshness-p99')) ?? 0);
        await page.waitForTimeout(250);
      }
    })();

    // Poison records, which the writer dead-letters: the dead-letter figure moves too.
    const { env } = own;
    const producer = new Kafka({ brokers: env.KAFKA_BROKERS!.split(','), logLevel: logLevel.NOTHING }).producer();
    await producer.connect();
    await producer.send({ topic: env.KAFKA_TOPIC!, messages: [1, 2, 3].map((n) => ({ key: `poison-${n}`, value: JSON.stringify({ type: 'teleport', n }) })) });
    await producer.disconnect();
    let sent: Awaited<ReturnType<typeof load>>;
    try {
      sent = await load(5, 8);
      console.log(`sent: ${JSON.stringify(sent)}`);
      expect(sent.accepted).toBeGreaterThan(0);
      expect(sent.unauthorized).toBeGreaterThan(0);

      // Every accepted event is stored, and the page says the writer caught up.
      await eventually(async () => {
        const result = await own.db.client.query({ query: 'SELECT count() AS n FROM events WHERE user_id LIKE \'pipeline-viewer-%\'', format: 'JSONEachRow' });
        const [{ n }] = await result.json<{ n: string }>() as [{ n: string }];
        return Number(n) >= sent.accepted ? true : undefined;
      }, 30_000, 'the accepted events in ClickHouse');
      await page.waitForSelector('#now-lag[data-value="0"]', { timeout: 20_000 });
    } finally {
      loading = false;
      await watching.catch(() => {});
    }

    console.log(`pipeline page saw (max over the load): ${JSON.stringify(seen)}`);
    expect(seen.accepted).toBeGreaterThan(0);
    expect(seen.clientErrors).toBeGreaterThan(0);
    expect(seen.events).toBeGreaterThan(0);
    expect(seen.rows).toBeGreaterThan(0);
    expect(seen.lag).toBeGreaterThan(0); // it was behind at some point, and came back to 0 above
    expect(seen.deadLetters).toBeGreaterThan(0);
    expect(seen.freshnessP99).toBeGreaterThan(0);

    // The charts are drawn: a canvas each, and the lag chart has a line per partition of the topic.
    expect(await page.locator('.chart canvas').count()).toBe(5);
    expect(await page.locator('#chart-lag .u-legend .u-series').count()).toBe(1 + 6);
    for (const chart of ['ingest', 'events', 'lag', 'rows', 'freshness']) {
      expect(Number(await page.getAttribute(`#chart-${chart}`, 'data-non-zero')), chart).toBeGreaterThan(0);
    }
    await mkdir(artifacts, { recursive: true });
    await page.screenshot({ path: `${artifacts}pipeline-page.png` });

    // While events flowed, `npm start`'s status line said so.
    const accepting = statusLines.filter((line) => Number(/^pipeline \(last 5 s\): ingest [\d.]+ req\/s \(202 ([\d.]+),/.exec(line)?.[1] ?? 0) > 0);
    expect(accepting, statusLines.join('\n')).not.toEqual([]);
    expect(failures).toEqual([]);
    await page.close();
  }, 120_000);
});
