import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { randomUUID } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import { Kafka, logLevel, type Message, type Producer } from 'kafkajs';
import { v7 as uuidv7 } from 'uuid';
import type { Context, MSKEvent } from 'aws-lambda';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startEmbeddedClickHouse, type EmbeddedClickHouse } from '../../localstack/clickhouse/embedded.ts';
import { KafkaEventSource } from '../../localstack/event-source/kafka-event-source.ts';
import type { AwsKafkaEvent } from '../../localstack/event-source/aws-kafka-event.ts';
import { enrich, toKafkaMessage } from '../../functions/ingest/messages.ts';
import { clientEvent, type ClientEvent } from '../../shared/events.ts';
import { eventually, freePort, migratedDatabase, settled, stackEnv, uniqueName } from '../setup/context.ts';
import { productTopicConfigs, readTopic, testTopics } from '../setup/kafka.ts';

// The writer, driven by the event source emulator, on the shared embedded Kafka and a ClickHouse
// server of its own (so this file can stop ClickHouse). Each test uses its own topic.
const dlqTopic = uniqueName('writer-test-dlq');
let brokers: string[];
let topics: ReturnType<typeof testTopics>;
let clickhouse: EmbeddedClickHouse;
let dataDir: string;
let db: Awaited<ReturnType<typeof migratedDatabase>>;
let producer: Producer;
let writer: (event: MSKEvent, context: Context) => Promise<unknown>;
const sources: KafkaEventSource[] = [];

beforeAll(async () => {
  const kafkaBrokers = stackEnv().KAFKA_BROKERS!;
  brokers = kafkaBrokers.split(',');
  topics = testTopics(brokers);
  await topics.create({ name: dlqTopic, partitions: 1, configs: productTopicConfigs });
  dataDir = await mkdtemp(join(tmpdir(), 'ugc-writer-test-'));
  clickhouse = await startEmbeddedClickHouse({ dataDir, port: await freePort() });
  db = await migratedDatabase(clickhouse.url, 'writer');
  // Without background merges, a duplicate row stays visible: only the insert's token can remove it.
  await db.client.command({ query: 'SYSTEM STOP MERGES events' });
  Object.assign(process.env, {
    KAFKA_BROKERS: kafkaBrokers, KAFKA_DLQ_TOPIC: dlqTopic,
    CLICKHOUSE_URL: clickhouse.url, CLICKHOUSE_DATABASE: db.database, CLICKHOUSE_REQUEST_TIMEOUT_MS: '5000',
  });
  ({ handler: writer } = (await import('../../functions/writer/handler.ts')) as unknown as { handler: typeof writer });
  producer = new Kafka({ clientId: 'writer-test', brokers, logLevel: logLevel.NOTHING }).producer({ idempotent: true, maxInFlightRequests: 1 });
  await producer.connect();
}, 60_000);

afterAll(async () => {
  await Promise.allSettled(sources.map((s) => s.stop()));
  await producer?.disconnect();
  await db?.drop().catch(() => {});
  await clickhouse?.stop();
  await topics?.drop();
  await rm(dataDir, { recursive: true, force: true });
});

const context = { awsRequestId: 'writer-test', getRemainingTimeInMillis: () => 60_000 } as unknown as Context;

/** Starts the emulator on `topic`, invoking the writer through `invoke` (default: the writer itself). */
async function drive(topic: string, invoke: (event: AwsKafkaEvent) => Promise<unknown> = (e) => writer(e as MSKEvent, context)) {
  const source = new KafkaEventSource({
    brokers, topic, consumerGroupId: `${topic}-writer`, kind: 'msk',
    eventSourceArn: 'arn:aws:kafka:us-east-1:000000000000:cluster/test/1', batchSize: 500, maximumBatchingWindowSeconds: 0.2,
    maximumRetryAttempts: -1, retryBackoff: { initialMs: 200, maxMs: 1_000 }, invoke, logger: () => {},
  });
  sources.push(source);
  await source.start();
  return source;
}

async function newTopic(partitions = 3): Promise<string> {
  const topic = `writer-${randomUUID().slice(0, 8)}`;
  await topics.create({ name: topic, partitions, configs: productTopicConfigs });
  return topic;
}

function message(event: Record<string, unknown>, userId = 'viewer-1', receivedAt = new Date()): Message {
  const parsed: ClientEvent = clientEvent.parse(event);
  return toKafkaMessage(enrich(parsed, { userId, requestId: 'req', receivedAt }));
}

async function countRows(where: string, params: Record<string, unknown> = {}): Promise<number> {
  const result = await db.client.query({ query: `SELECT count() AS n FROM events WHERE ${where}`, query_params: params, format: 'JSONEachRow' });
  return Number((await result.json<{ n: string | number }>())[0]!.n);
}

describe('writer through the event source emulator', () => {
  it('writes a batch as rows, and a batch redelivered after a failed invocation adds no rows', async () => {
    const topic = await newTopic();
    const messages = Array.from({ length: 50 }, (_, i) => message({ type: 'film_rating', film_id: `film-${topic}`, score: (i % 10) + 1 }, `viewer-${i % 7}`));
    await producer.send({ topic, messages });
    let calls = 0;
    // The first invocation writes, then fails (as a Lambda timing out after its insert would):
    // the emulator redelivers the same batch.
    await drive(topic, async (event) => {
      calls += 1;
      const result = await writer(event as MSKEvent, context);
      if (calls === 1) throw new Error('simulated timeout after the insert');
      return result;
    });
    await eventually(async () => (calls >= 2 ? true : undefined), 20_000, 'the redelivery');
    await eventually(async () => ((await countRows('film_id = {f:String}', { f: `film-${topic}` })) === 50 ? true : undefined), 10_000, '50 rows');
    await sleep(500);
    expect(await countRows('film_id = {f:String}', { f: `film-${topic}` })).toBe(50);
  });

  it("folds a client's retry that Kafka stored twice (same event_id, a later received_at) into one row under FINAL", async () => {
    const topic = await newTopic(1);
    const film = `film-${topic}`;
    // An ingest that answered 503 although Kafka kept the event, then the client's retry: two
    // messages for one event, seconds apart. Its time comes from the client (client_ts, as the SDK
    // sends, or a UUIDv7 event_id), so both copies share the sorting key.
    const events = [
      { type: 'film_progress', film_id: film, position_s: 60, event_id: uuidv7() },
      { type: 'film_progress', film_id: film, position_s: 90, event_id: randomUUID(), client_ts: new Date().toISOString() },
    ];
    const first = new Date(Date.now() - 5_000);
    await producer.send({ topic, messages: events.map((event) => message(event, 'viewer-retry', first)) });
    await drive(topic);
    await eventually(async () => ((await countRows('film_id = {f:String}', { f: film })) === 2 ? true : undefined), 15_000, 'the first copies');
    // The retries come in a later batch, so a later insert: two more raw rows (merges are stopped).
    await producer.send({ topic, messages: events.map((event) => message(event, 'viewer-retry', new Date())) });
    await eventually(async () => ((await countRows('film_id = {f:String}', { f: film })) === 4 ? true : undefined), 15_000, 'the retried copies');
    const result = await db.client.query({
      query: 'SELECT count() AS n, uniqExact(event_id) AS ids FROM events FINAL WHERE film_id = {f:String}', query_params: { f: film }, format: 'JSONEachRow',
    });
    const [row] = await result.json<{ n: string | number; ids: string | number }>();
    expect([Number(row!.n), Number(row!.ids)]).toEqual([2, 2]);
  });

  it('keeps the newest position in film_progress_latest when an older event arrives late', async () => {
    const topic = await newTopic(1);
    const film = `film-${topic}`;
    const newer = message({ type: 'film_progress', film_id: film, position_s: 3000, client_ts: '2026-11-23T10:00:00.000Z' }, 'viewer-late', new Date('2026-11-23T10:00:01Z'));
    const older = message({ type: 'film_progress', film_id: film, position_s: 100, client_ts: '2026-11-23T09:00:00.000Z' }, 'viewer-late', new Date('2026-11-23T10:00:02Z'));
    await producer.send({ topic, messages: [newer] });
    await producer.send({ topic, messages: [older] });
    await drive(topic);
    await eventually(async () => ((await countRows('film_id = {f:String}', { f: film })) === 2 ? true : undefined), 15_000, 'both events');
    // The view's part is committed after the events part of the same insert, and ClickHouse's own server
    // runs requests side by side: the view is read until it shows the newest position, or 20 s.
    const latest = await settled(async () => (await db.client.query({
      query: 'SELECT position_s FROM film_progress_latest FINAL WHERE user_id = {u:String} AND film_id = {f:String}',
      query_params: { u: 'viewer-late', f: film }, format: 'JSONEachRow',
    })).json(), [{ position_s: 3000 }]);
    expect(latest).toEqual([{ position_s: 3000 }]);
  });

  it('sends poison records to the dead-letter topic with their reason, and writes the rest of the batch', async () => {
    const topic = await newTopic(1);
    const film = `film-${topic}`;
    // Fields its type does not declare (a newer ingest's device; another type's score, which ClickHouse
    // could not read as UInt8 and would fail the whole insert) are dropped, and the event stored.
    const fromNewerIngest = { ...JSON.parse(String(message({ type: 'bookmark', film_id: film, action: 'add' }).value)), device: 'tv', score: 1.5 };
    await producer.send({
      topic,
      messages: [
        message({ type: 'bookmark', film_id: film, action: 'add' }),
        { key: 'viewer-1', value: '{not json', headers: { 'event-type': 'bookmark' } },
        { key: 'viewer-1', value: JSON.stringify({ type: 'bookmark', film_id: film, action: 'add' }) },
        message({ type: 'bookmark', film_id: film, action: 'remove' }),
        { key: 'viewer-1', value: JSON.stringify(fromNewerIngest) },
      ],
    });
    await drive(topic);
    await eventually(async () => ((await countRows('film_id = {f:String}', { f: film })) === 3 ? true : undefined), 15_000, 'the three valid rows');
    const dead = (await readTopic(brokers, dlqTopic, 2)).filter((m) => String(m.headers?.['dlq-original-topic']) === topic);
    expect(dead.map((m) => String(m.headers?.['dlq-reason']))).toEqual(['value is not JSON', expect.stringContaining('invalid event')]);
    expect(String(dead[0]!.value)).toBe('{not json');
    expect(String(dead[0]!.headers?.['event-type'])).toBe('bookmark');
  });

  it('writes a batch whose events span years of monthly partitions, and dead-letters a time no column can hold', async () => {
    // Another producer (a backfill, an older ingest) wrote these straight to Kafka: the ingest's
    // bounds on client time never saw them. 101 months is past ClickHouse's default of 100
    // partitions per insert, which used to fail the batch at every retry.
    const topic = await newTopic(1);
    const film = `film-${topic}`;
    const accepted = (month: number, extra: Record<string, unknown> = {}) => {
      const at = new Date(Date.UTC(2000, month, 15)).toISOString();
      return JSON.stringify({ type: 'film_rating', film_id: film, score: 7, event_id: randomUUID(), user_id: 'viewer-1',
        received_at: at, occurred_at: at, request_id: 'backfill', schema_version: 1, ...extra });
    };
    const messages = Array.from({ length: 101 }, (_, month) => ({ key: 'viewer-1', value: accepted(month) }));
    // Year 9999 at -14:00 is year 10000 in UTC: ClickHouse cannot read it, and it failed the whole insert.
    messages.splice(50, 0, { key: 'viewer-1', value: accepted(0, { client_ts: '9999-12-31T23:59:59-14:00' }) });
    await producer.send({ topic, messages });
    await drive(topic);
    await eventually(async () => ((await countRows('film_id = {f:String}', { f: film })) === 101 ? true : undefined), 20_000, '101 rows');
    const months = await db.client.query({ query: 'SELECT uniqExact(toYYYYMM(occurred_at)) AS n FROM events WHERE film_id = {f:String}', query_params: { f: film }, format: 'JSONEachRow' });
    expect(Number((await months.json<{ n: string }>())[0]!.n)).toBe(101);
    const dead = await readTopic(brokers, dlqTopic, 1, { match: (m) => String(m.headers?.['dlq-original-topic']) === topic });
    expect(dead.map((m) => String(m.headers?.['dlq-reason']))).toEqual(['invalid event: client_ts must be a time between the years 1970 and 2199']);
  });

  it('fails the invocation while ClickHouse is down, commits nothing, and writes every event exactly once after it returns', async () => {
    const topic = await newTopic();
    const film = `film-${topic}`;
    const ids: string[] = [];
    const failures: string[] = [];
    await clickhouse.stop();
    try {
      await drive(topic, async (event) => {
        try {
          return await writer(event as MSKEvent, context);
        } catch (error) {
          failures.push(String(error));
          throw error;
        }
      });
      for (let i = 0; i < 5; i++) {
        const batch = Array.from({ length: 20 }, (_, j) => message({ type: 'film_progress', film_id: film, position_s: i * 20 + j }, `viewer-${j % 4}`));
        ids.push(...batch.map((m) => JSON.parse(String(m.value)).event_id as string));
        await producer.send({ topic, messages: batch });
      }
      await eventually(async () => (failures.length >= 2 ? true : undefined), 20_000, 'failed invocations');
    } finally {
      clickhouse = await startEmbeddedClickHouse({ dataDir, port: clickhouse.port });
    }
    await eventually(async () => ((await countRows('film_id = {f:String}', { f: film })) >= 100 ? true : undefined), 30_000, 'all 100 events');
    await sleep(1_000);
    const rows = await db.client.query({
      query: 'SELECT toString(event_id) AS id, count() AS n FROM events WHERE film_id = {f:String} GROUP BY id',
      query_params: { f: film }, format: 'JSONEachRow',
    });
    const counts = await rows.json<{ id: string; n: string | number }>();
    console.log(JSON.stringify({ sent: ids.length, inClickHouse: counts.length, failedInvocations: failures.length,
      duplicates: counts.filter((c) => Number(c.n) > 1).length }));
    expect(counts.map((c) => c.id).sort()).toEqual([...ids].sort());
    expect(counts.every((c) => Number(c.n) === 1)).toBe(true);
  });
});
