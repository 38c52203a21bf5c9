import { randomUUID } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { signDevToken } from '../localstack/dev-token.ts';
import { startLocalStack } from '../localstack/stack.ts';
import { startOffline } from '../localstack/offline.ts';
import { freePort } from '../localstack/ports.ts';
import { createClickHouse } from '../shared/clickhouse.ts';
import { fmt, percentile, type Row } from './stats.ts';

const secret = 'bench-e2e-secret-of-sufficient-length';
const viewers = 100;
/** Request rates tried in turn (one event per request, as a player's progress beacon sends). */
const ratesPerS = [50, 100, 200, 400];
const stepSeconds = 5;
/** A request not answered by then counts as failed (an overloaded step must end). */
const requestTimeoutMs = 10_000;
/** Cap on requests in flight, so an overloaded step cannot grow without bound. */
const maxInFlight = 256;
/** How long rows may take to appear after a step before the missing ones count as lost. */
const drainTimeoutMs = 30_000;
const pollEveryMs = 50;
const freshnessP99TargetMs = 2_000;
// The writer's maximumBatchingWindow in serverless.yml (dev): the event source may wait this
// long for a fuller batch, so it is the floor under freshness.
const batchingWindowMs = 1_000;

interface StepResult {
  targetRate: number; achievedRate: number; sent: number; accepted: number; refused: number; failed: number;
  inClickHouse: number; lost: number; extra: number; duplicates: number;
  latencyP50Ms: number; latencyP99Ms: number; freshnessP50Ms: number; freshnessP99Ms: number;
}

type Mode = 'worker threads' | 'in-process';

/**
 * The whole pipeline through `serverless offline` on its own embedded stack: for each rate, a
 * fixed request rate for a fixed time (loopback only, bounded), then the events in ClickHouse
 * must equal the events that got 202, and freshness (202 → row queryable) is measured by polling.
 * Run twice, side by side: serverless offline's default (a worker thread per concurrent
 * invocation) and OFFLINE_IN_PROCESS.
 */
export async function benchEndToEnd(): Promise<{ rows: Row[]; json: Record<string, unknown> }> {
  const rows: Row[] = [];
  const json: Record<string, unknown> = {};
  for (const mode of ['worker threads', 'in-process'] as const) {
    const steps = await runMode(mode);
    const healthy = steps.filter(isHealthy);
    json[mode] = { steps, highestHealthyRate: healthy.at(-1)?.targetRate ?? 0 };
    rows.push(...steps.map((s) => ({
      benchmark: `e2e offline (${mode}), ${s.targetRate} req/s × ${stepSeconds} s`,
      measured: `${fmt(s.achievedRate)} req/s; ${s.accepted} × 202, ${s.inClickHouse} in ClickHouse (lost ${s.lost}, extra ${s.extra}, dup ${s.duplicates}, failed ${s.refused + s.failed}); freshness p50 ${fmt(s.freshnessP50Ms)} / p99 ${fmt(s.freshnessP99Ms)} ms; HTTP p99 ${fmt(s.latencyP99Ms)} ms`,
      baseline: `batching window ${fmt(batchingWindowMs)} ms`,
      ratio: `p99 ${fmt(s.freshnessP99Ms / batchingWindowMs, 2)}× window`,
      target: `0 lost, freshness p99 ≤ ${fmt(freshnessP99TargetMs)} ms`,
      verdict: isHealthy(s) ? 'ok' : 'MISSED',
    })));
  }
  return { rows, json: { e2e: { ...json, stepSeconds, batchingWindowMs } } };
}

/** Every accepted event in ClickHouse once, nothing refused, fresh enough. */
function isHealthy(s: StepResult): boolean {
  return s.lost === 0 && s.extra === 0 && s.duplicates === 0 && s.refused + s.failed === 0 && s.freshnessP99Ms <= freshnessP99TargetMs;
}

async function runMode(mode: Mode): Promise<StepResult[]> {
  const dataDir = await mkdtemp(join(tmpdir(), 'ugc-bench-e2e-'));
  // Always embedded: a bench must not write into a real cluster someone pointed KAFKA_BROKERS at.
  const stack = await startLocalStack({ dataDir, clickhousePort: 0, env: {} });
  const offline = await startOffline({
    env: { ...stack.env, JWT_SECRET: secret },
    httpPort: await freePort(),
    lambdaPort: await freePort(),
    inProcess: mode === 'in-process',
  }).catch(async (error) => { await stack.stop(); throw error; });
  const clickhouse = createClickHouse({
    CLICKHOUSE_URL: stack.env.CLICKHOUSE_URL!, CLICKHOUSE_USER: 'default', CLICKHOUSE_PASSWORD: '',
    CLICKHOUSE_DATABASE: stack.env.CLICKHOUSE_DATABASE!, CLICKHOUSE_REQUEST_TIMEOUT_MS: 30_000,
  });
  const tokens = await Promise.all(Array.from({ length: viewers }, (_, i) => signDevToken(`bench-viewer-${i}`, { secret })));
  const steps: StepResult[] = [];
  try {
    // Warm-up: the first request and the first batch start both functions and connect their
    // clients; cold starts are measured by the cold start bench, not here.
    const warmupFilm = `warmup-${randomUUID().slice(0, 8)}`;
    await post(offline.url, tokens[0]!, warmupFilm, randomUUID());
    const warmDeadline = Date.now() + drainTimeoutMs;
    while ((await seenIds(clickhouse, warmupFilm).catch(() => [])).length === 0) {
      if (Date.now() > warmDeadline) throw new Error('e2e bench: the warm-up event never reached ClickHouse');
      await sleep(pollEveryMs);
    }
    for (const rate of ratesPerS) {
      const step = await runStep(offline.url, tokens, clickhouse, rate);
      steps.push(step);
      console.error(`[bench e2e, ${mode}] ${JSON.stringify(step)}`);
      // Past the rate this machine sustains: a higher one only measures the queue.
      if (!isHealthy(step)) break;
    }
  } finally {
    await clickhouse.close();
    await offline.stop();
    await stack.stop();
    await rm(dataDir, { recursive: true, force: true });
  }
  return steps;
}

type Client = ReturnType<typeof createClickHouse>;

async function runStep(url: string, tokens: string[], clickhouse: Client, rate: number): Promise<StepResult> {
  const filmId = `bench-${rate}-${randomUUID().slice(0, 8)}`;
  const acceptedAt = new Map<string, number>();
  const latencies: number[] = [];
  let sent = 0, refused = 0, failed = 0, inFlight = 0;
  const firstSeen = new Map<string, number>();
  let polling = true;
  const poller = (async () => {
    while (polling) {
      const ids = await seenIds(clickhouse, filmId).catch(() => []);
      const now = performance.now();
      for (const id of ids) if (!firstSeen.has(id)) firstSeen.set(id, now);
      await sleep(pollEveryMs);
    }
  })();

  const total = rate * stepSeconds;
  const started = performance.now();
  const requests: Promise<void>[] = [];
  for (let i = 0; i < total; i++) {
    const due = started + (i * 1000) / rate;
    const wait = due - performance.now();
    if (wait > 0) await sleep(wait);
    if (inFlight >= maxInFlight) { failed++; continue; }
    const eventId = randomUUID();
    inFlight++;
    sent++;
    const t0 = performance.now();
    requests.push(post(url, tokens[i % tokens.length]!, filmId, eventId, i).then((status) => {
      const t1 = performance.now();
      latencies.push(t1 - t0);
      if (status === 202) acceptedAt.set(eventId, t1);
      else if (status === 503) refused++;
      else failed++;
    }, () => { failed++; }).finally(() => { inFlight--; }));
  }
  await Promise.all(requests);
  const achievedRate = sent / ((performance.now() - started) / 1000);

  const drainDeadline = Date.now() + drainTimeoutMs;
  while (Date.now() < drainDeadline && [...acceptedAt.keys()].some((id) => !firstSeen.has(id))) await sleep(pollEveryMs);
  polling = false;
  await poller;

  const counts = await clickhouse.query({
    query: 'SELECT count() AS rows, uniqExact(event_id) AS ids FROM events WHERE film_id = {film:String}',
    query_params: { film: filmId },
    format: 'JSONEachRow',
  });
  const [{ rows, ids }] = (await counts.json()) as [{ rows: string; ids: string }];
  const freshness = [...acceptedAt].filter(([id]) => firstSeen.has(id)).map(([id, at]) => Math.max(0, firstSeen.get(id)! - at));
  return {
    targetRate: rate, achievedRate, sent, accepted: acceptedAt.size, refused, failed,
    inClickHouse: Number(ids),
    lost: [...acceptedAt.keys()].filter((id) => !firstSeen.has(id)).length,
    extra: [...firstSeen.keys()].filter((id) => !acceptedAt.has(id)).length,
    duplicates: Number(rows) - Number(ids),
    latencyP50Ms: percentile(latencies, 50), latencyP99Ms: percentile(latencies, 99),
    freshnessP50Ms: percentile(freshness, 50), freshnessP99Ms: percentile(freshness, 99),
  };
}

async function seenIds(clickhouse: Client, filmId: string): Promise<string[]> {
  const result = await clickhouse.query({
    query: 'SELECT toString(event_id) AS id FROM events WHERE film_id = {film:String}',
    query_params: { film: filmId },
    format: 'JSONEachRow',
  });
  return ((await result.json()) as { id: string }[]).map((r) => r.id);
}

async function post(url: string, token: string, filmId: string, eventId: string, position = 0): Promise<number> {
  const res = await fetch(`${url}/v1/events`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', authorization: `Bearer ${token}` },
    body: JSON.stringify({ type: 'film_progress', event_id: eventId, film_id: filmId, position_s: position, duration_s: 7200 }),
    signal: AbortSignal.timeout(requestTimeoutMs),
  });
  await res.arrayBuffer();
  return res.status;
}
