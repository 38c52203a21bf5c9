import { randomUUID } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { Agent, request } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { signDevToken } from '../localstack/dev-token.ts';
import { startLocalStack } from '../localstack/stack.ts';
import { startOffline } from '../localstack/offline.ts';
import { freePort } from '../localstack/ports.ts';
import { pollUntil } from '../localstack/wait.ts';
import { createClickHouse } from '../shared/clickhouse.ts';
import { cpuByRole, cpuPerRequest } from './process-cpu.ts';
import { fmt, percentile, type Row } from './stats.ts';

const secret = 'bench-e2e-secret-of-sufficient-length';
const viewers = 100;
/** Request rates tried in turn (one event per request, as a player's progress beacon sends). */
const ratesPerS = [50, 100, 200, 400];
const warmupRatePerS = 100;
const warmupSeconds = 10;
const stepSeconds = 5;
/** Then the top rate is held this long (issue 13: npm start's default holds 400 req/s for 60 s). */
const holdSeconds = 60;
/** A request not answered by then counts as failed (an overloaded step must end). */
const requestTimeoutMs = 10_000;
/** Cap on requests in flight, so an overloaded step cannot grow without bound. */
const maxInFlight = 256;
/** How long rows may take to appear after a step before the missing ones count as lost. */
const drainTimeoutMs = 30_000;
const pollEveryMs = 50;
// inserted_at is taken when an insert begins, and an insert may commit after a later one did: each
// poll reads again the rows whose insert began this long before the newest row it has seen.
const insertOverlapMs = 3_000;
const freshnessP99TargetMs = 2_000;
const httpP99TargetMs = 250;
// The writer's maximumBatchingWindow in serverless.yml (dev): the event source may wait this
// long for a fuller batch, so it is the floor under freshness.
const batchingWindowMs = 1_000;

interface StepResult {
  targetRate: number; seconds: number; achievedRate: number; sent: number; accepted: number; refused: number; failed: number;
  /** What the failed requests got: an HTTP status, or the error a request ended with (a timeout, a reset). */
  failures: Record<string, number>;
  inClickHouse: number; lost: number; extra: number; duplicates: number;
  latencyP50Ms: number; latencyP99Ms: number; freshnessP50Ms: number; freshnessP99Ms: number;
  /** Where the time goes: CPU ms per request of each process of the stack, while the requests ran. */
  cpuMsPerRequest: Record<string, number>;
  /** Share of all the machine's cores busy meanwhile (1 = none left). */
  machineBusy: number;
}

type Mode = 'in-process, the default' | 'worker threads, OFFLINE_IN_PROCESS=false';

/**
 * The whole pipeline through `serverless offline` on its own embedded stack: for each rate, a
 * fixed request rate for a fixed time (loopback only, bounded), then the events in ClickHouse
 * must equal the events that got 202, and freshness (202 → row queryable) is measured by polling.
 * Run twice, side by side: npm start's default (in-process, with hot reload) and serverless
 * offline's worker thread per concurrent invocation (OFFLINE_IN_PROCESS=false). A mode that
 * holds the top rate for a step then holds it for holdSeconds.
 */
export async function benchEndToEnd(): Promise<{ rows: Row[]; json: Record<string, unknown> }> {
  const rows: Row[] = [];
  const json: Record<string, unknown> = {};
  for (const mode of ['in-process, the default', 'worker threads, OFFLINE_IN_PROCESS=false'] as const) {
    const steps = await runMode(mode);
    const healthy = steps.filter(isHealthy);
    json[mode] = { steps, highestHealthyRate: healthy.at(-1)?.targetRate ?? 0 };
    rows.push(...steps.map((s) => ({
      benchmark: `e2e offline (${mode}), ${s.targetRate} req/s × ${s.seconds} s`,
      measured: `${fmt(s.achievedRate)} req/s; ${s.accepted} × 202, ${s.inClickHouse} in ClickHouse (lost ${s.lost}, extra ${s.extra}, dup ${s.duplicates}, failed ${s.refused + s.failed}); freshness p50 ${fmt(s.freshnessP50Ms)} / p99 ${fmt(s.freshnessP99Ms)} ms; HTTP p99 ${fmt(s.latencyP99Ms)} ms; CPU per request ${cpuText(s.cpuMsPerRequest)}, machine ${fmt(s.machineBusy * 100)}% busy`,
      baseline: `batching window ${fmt(batchingWindowMs)} ms`,
      ratio: `p99 ${fmt(s.freshnessP99Ms / batchingWindowMs, 2)}× window`,
      target: `0 lost, 0 failed, HTTP p99 ≤ ${fmt(httpP99TargetMs)} ms, freshness p99 ≤ ${fmt(freshnessP99TargetMs)} ms`,
      verdict: isHealthy(s) ? 'ok' : 'MISSED',
    })));
  }
  return { rows, json: { e2e: { ...json, stepSeconds, holdSeconds, batchingWindowMs } } };
}

function cpuText(perRequest: Record<string, number>): string {
  return Object.entries(perRequest).sort(([, a], [, b]) => b - a).map(([role, ms]) => `${role} ${fmt(ms, 2)} ms`).join(', ');
}

/** Every accepted event in ClickHouse once, nothing refused, fresh enough. */
function isHealthy(s: StepResult): boolean {
  return s.lost === 0 && s.extra === 0 && s.duplicates === 0 && s.refused + s.failed === 0
    && s.latencyP99Ms <= httpP99TargetMs && s.freshnessP99Ms <= freshnessP99TargetMs;
}

async function runMode(mode: Mode): Promise<StepResult[]> {
  const dataDir = await mkdtemp(join(tmpdir(), 'ugc-bench-e2e-'));
  const kafkaDataDir = await mkdtemp(join(tmpdir(), 'ugc-bench-e2e-kafka-'));
  // Always embedded (3 brokers, fresh data, free ports, so an npm start beside it is untouched): a
  // bench must not write into a real cluster someone pointed KAFKA_BROKERS at.
  const stack = await startLocalStack({ dataDir, kafkaDataDir, clickhousePort: 0, kafkaPort: 0, brokers: 3, env: {} });
  const offline = await startOffline({
    env: { ...stack.env, JWT_SECRET: secret },
    httpPort: await freePort(),
    lambdaPort: await freePort(),
    inProcess: mode === 'in-process, the default',
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
    await pollUntil(async () => (await seenIds(clickhouse, warmupFilm).catch(() => [])).length > 0, {
      timeoutMs: drainTimeoutMs, intervalMs: pollEveryMs, what: 'e2e bench: the warm-up event never reached ClickHouse',
    });
    // And a short unmeasured load: JIT compilation of three JVMs and of offline's Node process would
    // otherwise be billed to the first step.
    await runStep(offline.url, tokens, clickhouse, warmupRatePerS, warmupSeconds);
    const plan = [...ratesPerS.map((rate) => ({ rate, seconds: stepSeconds })), { rate: ratesPerS.at(-1)!, seconds: holdSeconds }];
    for (const { rate, seconds } of plan) {
      const step = await runStep(offline.url, tokens, clickhouse, rate, seconds);
      steps.push(step);
      console.error(`[bench e2e, ${mode}] ${JSON.stringify(step)}`);
      // Past the rate this machine sustains (requests fail or events are lost), a higher one, or
      // holding it, only measures the queue. A step that only misses the latency target goes on.
      if (step.lost > 0 || step.extra > 0 || step.refused + step.failed > 0) break;
    }
  } finally {
    await clickhouse.close();
    await offline.stop();
    await stack.stop();
    await Promise.all([dataDir, kafkaDataDir].map((dir) => rm(dir, { recursive: true, force: true })));
  }
  return steps;
}

type Client = ReturnType<typeof createClickHouse>;

async function runStep(url: string, tokens: string[], clickhouse: Client, rate: number, seconds: number): Promise<StepResult> {
  const filmId = `bench-${rate}-${randomUUID().slice(0, 8)}`;
  const acceptedAt = new Map<string, number>();
  const latencies: number[] = [];
  let sent = 0, refused = 0, failed = 0, inFlight = 0;
  const failures: Record<string, number> = {};
  const fail = (why: string) => { failed++; failures[why] = (failures[why] ?? 0) + 1; };
  const firstSeen = new Map<string, number>();
  let polling = true;
  const poller = (async () => {
    let sinceMs = 0;
    while (polling) {
      const rows = await rowsInsertedSince(clickhouse, filmId, sinceMs).catch(() => []);
      const now = performance.now();
      for (const { id, at } of rows) {
        if (!firstSeen.has(id)) firstSeen.set(id, now);
        sinceMs = Math.max(sinceMs, at - insertOverlapMs);
      }
      await sleep(pollEveryMs);
    }
  })();

  const total = rate * seconds;
  const cpuBefore = await cpuByRole();
  const started = performance.now();
  const requests: Promise<void>[] = [];
  for (let i = 0; i < total; i++) {
    const due = started + (i * 1000) / rate;
    const wait = due - performance.now();
    if (wait > 0) await sleep(wait);
    if (inFlight >= maxInFlight) { fail('not sent: too many in flight'); continue; }
    const eventId = randomUUID();
    inFlight++;
    sent++;
    const t0 = performance.now();
    requests.push(post(url, tokens[i % tokens.length]!, filmId, eventId, i).then((status) => {
      const t1 = performance.now();
      latencies.push(t1 - t0);
      if (status === 202) acceptedAt.set(eventId, t1);
      else if (status === 503) refused++;
      else fail(String(status));
    }, (error: Error) => { fail(error.name === 'TimeoutError' ? 'timeout' : `${error.name}: ${String(error.cause ?? error.message)}`); }).finally(() => { inFlight--; }));
  }
  await Promise.all(requests);
  const wallMs = performance.now() - started;
  const { perRequestMs: cpuMsPerRequest, machineBusy } = cpuPerRequest(cpuBefore, await cpuByRole(), sent, wallMs);
  const achievedRate = sent / (wallMs / 1000);

  // Events still unseen at the timeout are counted as lost below: the timeout is no failure here.
  await pollUntil(() => [...acceptedAt.keys()].every((id) => firstSeen.has(id)), {
    timeoutMs: drainTimeoutMs, intervalMs: pollEveryMs, what: 'e2e bench: accepted events still unseen',
  }).catch(() => {});
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
    targetRate: rate, seconds, achievedRate, sent, accepted: acceptedAt.size, refused, failed, failures,
    inClickHouse: Number(ids),
    lost: [...acceptedAt.keys()].filter((id) => !firstSeen.has(id)).length,
    extra: [...firstSeen.keys()].filter((id) => !acceptedAt.has(id)).length,
    duplicates: Number(rows) - Number(ids),
    latencyP50Ms: percentile(latencies, 50), latencyP99Ms: percentile(latencies, 99),
    freshnessP50Ms: percentile(freshness, 50), freshnessP99Ms: percentile(freshness, 99),
    cpuMsPerRequest, machineBusy,
  };
}

async function seenIds(clickhouse: Client, filmId: string): Promise<string[]> {
  return (await rowsInsertedSince(clickhouse, filmId, 0)).map((r) => r.id);
}

/**
 * The film's rows whose insert began at or after `sinceMs` (epoch ms). The poller asks only for
 * these, not for every row of the step: at 400 req/s × 60 s, reading all of them 20 times a second
 * cost the machine more CPU than the ingest's own handler, and so inflated what it measured.
 */
async function rowsInsertedSince(clickhouse: Client, filmId: string, sinceMs: number): Promise<{ id: string; at: number }[]> {
  const result = await clickhouse.query({
    query: `SELECT toString(event_id) AS id, toUnixTimestamp64Milli(inserted_at) AS at FROM events
            WHERE film_id = {film:String} AND inserted_at >= fromUnixTimestamp64Milli({since:Int64}, 'UTC')`,
    query_params: { film: filmId, since: sinceMs },
    format: 'JSONEachRow',
    clickhouse_settings: { output_format_json_quote_64bit_integers: 0 },
  });
  return (await result.json()) as { id: string; at: number }[];
}

// Keep-alive sockets, as a browser keeps them. node:http, not fetch: the load generator shares the
// machine's cores with the stack it measures, so its own CPU per request is kept small. An idle
// socket is closed after 4 s (or a second before the server's Keep-Alive timeout, 5 s by default),
// so a request is not written to one the server is closing.
const agent = new Agent({ keepAlive: true, maxSockets: maxInFlight, timeout: 4_000 });

async function post(url: string, token: string, filmId: string, eventId: string, position = 0): Promise<number> {
  const body = JSON.stringify({ type: 'film_progress', event_id: eventId, film_id: filmId, position_s: position, duration_s: 7200 });
  try {
    return await postOnce(url, token, body);
  } catch (error) {
    // A kept-alive socket the server closed as idle just as the request went out: sent again once,
    // as browsers do (and as Node's docs for request.reusedSocket advise).
    if ((error as { reusedSocket?: boolean }).reusedSocket && (error as NodeJS.ErrnoException).code === 'ECONNRESET') return postOnce(url, token, body);
    throw error;
  }
}

function postOnce(url: string, token: string, body: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const req = request(`${url}/v1/events`, {
      method: 'POST', agent, timeout: requestTimeoutMs,
      headers: { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body), authorization: `Bearer ${token}` },
    }, (res) => {
      res.on('error', reject);
      res.on('end', () => resolve(res.statusCode ?? 0));
      res.resume();
    });
    req.on('timeout', () => req.destroy(Object.assign(new Error(`no answer within ${requestTimeoutMs} ms`), { name: 'TimeoutError' })));
    req.on('error', (error) => reject(Object.assign(error, { reusedSocket: req.reusedSocket })));
    req.end(body);
  });
}
