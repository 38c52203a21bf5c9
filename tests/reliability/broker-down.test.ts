import { randomUUID } from 'node:crypto';
import type { APIGatewayProxyEventV2, Context } from 'aws-lambda';
import { v7 as uuidv7 } from 'uuid';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { signDevToken } from '../../localstack/dev-token.ts';
import { compare, report, secret, sleep, startPipeline, waitForRows, type Pipeline } from './harness.ts';

// Kafka brokers down while viewers post events: the ingest answers 202 only when Kafka acked,
// else 503; the writer then brings exactly the acknowledged events to ClickHouse.
let pipeline: Pipeline;

beforeAll(async () => {
  pipeline = await startPipeline({ brokers: 3, partitions: 6, ingest: true, env: { PRODUCE_TIMEOUT_MS: '4000' } });
  await pipeline.drive(pipeline.topic, undefined, { batchSize: 200, windowSeconds: 0.1 });
}, 90_000);

afterAll(async () => {
  await pipeline?.stop();
});

interface Outcome { status: number; eventIds: string[] }

/** Posts `n` film_progress events for `userId`, each with a client event_id. */
async function post(userId: string, n: number, eventIds: string[] = Array.from({ length: n }, () => randomUUID())): Promise<Outcome> {
  const token = await signDevToken(userId, { secret });
  const events = eventIds.map((event_id, i) => ({ type: 'film_progress', event_id, film_id: `film-${i % 5}`, position_s: i }));
  const event = {
    routeKey: 'POST /v1/events', rawPath: '/v1/events', body: JSON.stringify({ events }), isBase64Encoded: false,
    headers: { 'content-type': 'application/json', authorization: `Bearer ${token}` },
    requestContext: { requestId: randomUUID() },
  } as unknown as APIGatewayProxyEventV2;
  const context = { awsRequestId: randomUUID(), getRemainingTimeInMillis: () => 10_000 } as unknown as Context;
  const res = await pipeline.ingest!(event, context);
  return { status: res.statusCode ?? 0, eventIds };
}

/** `requests` posts, `concurrency` at a time, users prefixed so a test finds its rows. */
async function stream(prefix: string, requests: number, concurrency: number): Promise<Outcome[]> {
  const outcomes: Outcome[] = [];
  let next = 0;
  await Promise.all(Array.from({ length: concurrency }, async () => {
    while (next < requests) {
      const i = next++;
      outcomes.push(await post(`${prefix}-${i % 23}`, 1 + (i % 5)));
    }
  }));
  return outcomes;
}

const accepted = (outcomes: Outcome[]) => outcomes.filter((o) => o.status === 202).flatMap((o) => o.eventIds);
const refused = (outcomes: Outcome[]) => outcomes.filter((o) => o.status === 503).flatMap((o) => o.eventIds);

describe('Kafka brokers down during ingest', () => {
  it('answers 503 while every broker is down and 202 otherwise; ClickHouse then holds exactly the events that got 202', async () => {
    // Clean windows: no request is in flight when the brokers go down or come back, so a 503 can
    // only mean "nothing was written" (connection refused), never "written but the ack was lost".
    const before = await stream('clean', 40, 4);
    await pipeline.broker.brokerDown(-1);
    let during: Outcome[];
    try {
      during = await stream('clean', 6, 3);
    } finally {
      await pipeline.broker.brokerUp(-1);
    }
    const after = await stream('clean', 40, 4);
    const all = [...before, ...during, ...after];
    const statuses = all.map((o) => o.status);
    const counts = await waitForRows(pipeline, accepted(all), "user_id LIKE 'clean-%'");
    const result = compare(accepted(all), counts);
    report('broker down, clean windows', { requests: all.length, eventsSent: all.flatMap((o) => o.eventIds).length,
      accepted202: accepted(all).length, refused503: refused(all).length, otherStatuses: statuses.filter((s) => s !== 202 && s !== 503).length,
      inClickHouse: result.inClickHouse, missing: result.missing.length, extra: result.extra.length, duplicates: result.duplicates.length });
    expect(statuses.every((s) => s === 202 || s === 503)).toBe(true);
    expect(during.map((o) => o.status)).toEqual(during.map(() => 503));
    expect(result.missing).toEqual([]);
    expect(result.extra).toEqual([]); // no event that got 503 is in ClickHouse
    expect(result.duplicates).toEqual([]);
  }, 120_000);

  it('answers per partition when one broker is down: its viewers get 503, the others 202, and ClickHouse holds exactly the 202s', async () => {
    // A viewer's events share one partition (key = user), so a request is all-or-nothing.
    await pipeline.broker.brokerDown(2);
    let outcomes: Outcome[];
    try {
      outcomes = await stream('onedown', 46, 4);
    } finally {
      await pipeline.broker.brokerUp(2);
    }
    const counts = await waitForRows(pipeline, accepted(outcomes), "user_id LIKE 'onedown-%'");
    const result = compare(accepted(outcomes), counts);
    report('one broker down', { requests: outcomes.length, accepted202: accepted(outcomes).length, refused503: refused(outcomes).length,
      inClickHouse: result.inClickHouse, missing: result.missing.length, extra: result.extra.length, duplicates: result.duplicates.length });
    expect(outcomes.every((o) => o.status === 202 || o.status === 503)).toBe(true);
    expect(result.missing).toEqual([]);
    expect(result.extra).toEqual([]);
    expect(result.duplicates).toEqual([]);
  }, 120_000);

  it('with brokers failing under load and clients retrying 503s with the same event_id, every event lands; FINAL sees each once', async () => {
    // Here the brokers go down while requests are in flight. A request can then be written to
    // Kafka and still answer 503 (the ack was lost): at-least-once, so "503 but stored" is
    // possible and is counted, not forbidden. A 202 must never be lost.
    const eventIds = new Map<number, string[]>();
    const outcomes: { attempt: number; status: number; eventIds: string[] }[] = [];
    let flapping = true;
    const flaps = (async () => {
      for (let i = 0; i < 3; i++) {
        await sleep(300);
        await pipeline.broker.brokerDown(-1);
        await sleep(600);
        await pipeline.broker.brokerUp(-1);
      }
      flapping = false;
    })();
    // Bounded: each worker posts until the flapping ends (at most 60 requests), retrying each until 202.
    await Promise.all(Array.from({ length: 4 }, async (_, worker) => {
      for (let r = 0; r < 60 && flapping; r++) {
        const key = worker * 100 + r;
        // UUIDv7 ids, made once per event: they carry the event's time, so every attempt of an
        // event has the same event time and FINAL folds a retry the broker stored twice.
        eventIds.set(key, Array.from({ length: 3 }, () => uuidv7()));
        for (let attempt = 1; attempt <= 50; attempt++) {
          const res = await post(`flap-${key % 17}`, 3, eventIds.get(key));
          outcomes.push({ attempt, ...res });
          if (res.status === 202) break;
          await sleep(100); // Retry-After, shortened
        }
        await sleep(20);
      }
    }));
    await flaps;
    const sent = [...eventIds.values()].flat();
    const got202 = new Set(outcomes.filter((o) => o.status === 202).flatMap((o) => o.eventIds));
    const counts = await waitForRows(pipeline, sent, "user_id LIKE 'flap-%'");
    const result = compare(sent, counts);
    const final = await pipeline.finalCount("user_id LIKE 'flap-%'");
    report('brokers flapping, clients retry', { eventsSent: sent.length, requests: outcomes.length,
      refused503: outcomes.filter((o) => o.status === 503).length, eventsWith202: got202.size, inClickHouse: result.inClickHouse,
      rawRowsForRetriedEvents: result.duplicates.length, finalDistinct: final, missing: result.missing.length, extra: result.extra.length });
    expect(outcomes.every((o) => o.status === 202 || o.status === 503)).toBe(true);
    expect(outcomes.some((o) => o.status === 503)).toBe(true); // the faults did hit requests
    expect(got202.size).toBe(sent.length); // every request eventually got its 202
    expect(result.missing).toEqual([]);
    expect(result.extra).toEqual([]);
    expect(final).toBe(sent.length);
  }, 150_000);
});
