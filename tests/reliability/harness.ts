/**
 * The pipeline each fault test breaks on purpose: its own embedded broker and ClickHouse server
 * (so it can stop them), its own database with background merges stopped (so a duplicate row
 * stays visible: only the insert's deduplication token may remove one), and the real handlers,
 * imported after the environment is set.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { randomUUID } from 'node:crypto';
import { Kafka, logLevel, type Message, type Producer } from 'kafkajs';
import type { APIGatewayProxyEventV2, APIGatewayProxyStructuredResultV2, Context, MSKEvent } from 'aws-lambda';
import { startEmbeddedBroker, type EmbeddedBroker } from '../../localstack/kafka/broker.ts';
import { startEmbeddedClickHouse, type EmbeddedClickHouse } from '../../localstack/clickhouse/embedded.ts';
import { KafkaEventSource } from '../../localstack/event-source/kafka-event-source.ts';
import type { AwsKafkaEvent } from '../../localstack/event-source/aws-kafka-event.ts';
import { enrich, toKafkaMessage } from '../../functions/ingest/messages.ts';
import { clientEvent } from '../../shared/events.ts';
import { eventually, freePort, migratedDatabase } from '../setup/context.ts';
import { consumerTimings, type ReadMessage } from '../setup/kafka.ts';

export type IngestHandler = (event: APIGatewayProxyEventV2, context: Context) => Promise<APIGatewayProxyStructuredResultV2>;
export type WriterHandler = (event: MSKEvent, context: Context) => Promise<unknown>;
export type Invoke = (event: AwsKafkaEvent) => Promise<unknown>;

export const secret = 'a-reliability-secret-of-sufficient-length';

/** Deterministic pseudo-random numbers (mulberry32), so a failing run can be replayed by its seed. */
export function seededRandom(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/**
 * Drops the handlers' structured JSON log lines (one per batch, thousands per test) from the
 * test output, keeping everything else, so the figures each test prints stay readable.
 */
export function quietProductLogs(): void {
  for (const level of ['log', 'error', 'warn'] as const) {
    const original = console[level].bind(console);
    console[level] = (...args: unknown[]) => {
      const first = args[0];
      if (typeof first === 'string' && (first.startsWith('{"level":') || first.includes('[@clickhouse/client]'))) return;
      original(...args);
    };
  }
}

/** Prints the figures a test checked, one JSON line, so the run log carries the evidence. */
export function report(test: string, figures: Record<string, unknown>): void {
  console.log(`[reliability] ${test}: ${JSON.stringify(figures)}`);
}

export const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** An enriched event as the ingest would produce it, with a known event id. */
export function eventMessage(userId: string, i: number, eventId = randomUUID()): { eventId: string; message: Message } {
  const event = clientEvent.parse({ type: 'film_progress', event_id: eventId, film_id: `film-${i % 13}`, position_s: i, duration_s: 6000 });
  return { eventId, message: toKafkaMessage(enrich(event, { userId, requestId: `req-${i}`, receivedAt: new Date() })) };
}

export interface PipelineOptions {
  partitions?: number;
  brokers?: number;
  /** Also import the ingest handler (needs JWT_SECRET etc. in env). */
  ingest?: boolean;
  env?: Record<string, string>;
}

export interface Pipeline {
  readonly broker: EmbeddedBroker;
  readonly clickhouse: EmbeddedClickHouse;
  readonly database: string;
  readonly topic: string;
  readonly dlqTopic: string;
  readonly writer: WriterHandler;
  readonly ingest: IngestHandler | undefined;
  readonly producer: Producer;
  readonly brokers: string[];
  newTopic(partitions?: number): Promise<string>;
  /** Runs the event source emulator on `topic`, invoking `invoke` (default: the writer). */
  drive(topic: string, invoke?: Invoke, options?: { batchSize?: number; windowSeconds?: number; groupId?: string }): Promise<KafkaEventSource>;
  writerContext(): Context;
  stopClickHouse(): Promise<void>;
  /** Starts ClickHouse again on the same data and port, and stops merges before anything else writes. */
  startClickHouse(): Promise<void>;
  /** Rows per event id WITHOUT FINAL (merges are stopped): a count above 1 is a duplicate row. */
  rowCounts(where: string, params?: Record<string, unknown>): Promise<Map<string, number>>;
  /** Distinct event ids as a FINAL query sees them. */
  finalCount(where: string, params?: Record<string, unknown>): Promise<number>;
  query<T>(sql: string, params?: Record<string, unknown>): Promise<T[]>;
  stop(): Promise<void>;
}

/** Starts broker, ClickHouse, database and handlers for one test file. */
export async function startPipeline(options: PipelineOptions = {}): Promise<Pipeline> {
  quietProductLogs();
  const topic = `rel-${randomUUID().slice(0, 8)}`;
  const dlqTopic = `${topic}.dlq`;
  const broker = await startEmbeddedBroker({
    brokers: options.brokers ?? 1,
    topics: [{ name: topic, partitions: options.partitions ?? 3 }, { name: dlqTopic, partitions: 1 }],
  });
  const dataDir = await mkdtemp(join(tmpdir(), 'ugc-reliability-'));
  let clickhouse = await startEmbeddedClickHouse({ dataDir, port: await freePort() });
  const db = await migratedDatabase(clickhouse.url, 'reliability');
  await db.client.command({ query: 'SYSTEM STOP MERGES events' });
  Object.assign(process.env, {
    KAFKA_BROKERS: broker.bootstrapServers, KAFKA_TOPIC: topic, KAFKA_DLQ_TOPIC: dlqTopic, KAFKA_IDEMPOTENT: 'false',
    CLICKHOUSE_URL: clickhouse.url, CLICKHOUSE_DATABASE: db.database, CLICKHOUSE_REQUEST_TIMEOUT_MS: '5000',
    // The handlers' logs (thousands of lines under injected faults) and EMF metric documents
    // would bury the figures; the assertions, not the logs, decide.
    POWERTOOLS_LOG_LEVEL: 'SILENT', POWERTOOLS_METRICS_DISABLED: 'true',
    JWT_SECRET: secret, MAX_BODY_BYTES: '1048576', MAX_EVENTS_PER_REQUEST: '500',
    ...options.env,
  });
  const { handler: writer } = (await import('../../functions/writer/handler.ts')) as unknown as { handler: WriterHandler };
  const ingest = options.ingest
    ? ((await import('../../functions/ingest/handler.ts')) as unknown as { handler: IngestHandler }).handler
    : undefined;
  const producer = new Kafka({ clientId: 'reliability', brokers: broker.brokers, logLevel: logLevel.NOTHING }).producer();
  await producer.connect();
  const sources: KafkaEventSource[] = [];
  let requests = 0;
  const writerContext = () => ({ awsRequestId: `writer-${++requests}`, getRemainingTimeInMillis: () => 60_000 }) as unknown as Context;

  const query = async <T>(sql: string, params: Record<string, unknown> = {}): Promise<T[]> =>
    (await db.client.query({ query: sql, query_params: params, format: 'JSONEachRow' })).json<T>();

  return {
    broker,
    get clickhouse() { return clickhouse; },
    database: db.database,
    topic,
    dlqTopic,
    writer,
    ingest,
    producer,
    brokers: broker.brokers,
    async newTopic(partitions = 3) {
      const name = `rel-${randomUUID().slice(0, 8)}`;
      await broker.createTopic(name, partitions);
      return name;
    },
    async drive(sourceTopic, invoke = (e) => writer(e as MSKEvent, writerContext()), opts = {}) {
      const source = new KafkaEventSource({
        brokers: broker.brokers, topic: sourceTopic, consumerGroupId: opts.groupId ?? `${sourceTopic}-writer`, kind: 'msk',
        eventSourceArn: 'arn:aws:kafka:us-east-1:000000000000:cluster/reliability/1',
        batchSize: opts.batchSize ?? 200, maximumBatchingWindowSeconds: opts.windowSeconds ?? 0.2,
        maximumRetryAttempts: -1, retryBackoff: { initialMs: 100, maxMs: 500 }, invoke, logger: () => {},
      });
      sources.push(source);
      await source.start();
      return source;
    },
    writerContext,
    async stopClickHouse() {
      await clickhouse.stop();
    },
    async startClickHouse() {
      const port = clickhouse.port;
      clickhouse = await eventually(async () => startEmbeddedClickHouse({ dataDir, port }), 30_000, 'ClickHouse to start again');
      await eventually(async () => {
        await db.client.command({ query: 'SYSTEM STOP MERGES events' });
        return true;
      }, 10_000, 'merges stopped after the restart');
    },
    async rowCounts(where, params = {}) {
      const rows = await query<{ id: string; n: string | number }>(
        `SELECT toString(event_id) AS id, count() AS n FROM events WHERE ${where} GROUP BY id`, params);
      return new Map(rows.map((r) => [r.id, Number(r.n)]));
    },
    async finalCount(where, params = {}) {
      const rows = await query<{ n: string | number }>(`SELECT count() AS n FROM events FINAL WHERE ${where}`, params);
      return Number(rows[0]?.n ?? 0);
    },
    query,
    async stop() {
      await Promise.allSettled(sources.map((s) => s.stop()));
      await producer.disconnect().catch(() => {});
      await db.drop().catch(() => {});
      await clickhouse.stop();
      await broker.stop();
      await rm(dataDir, { recursive: true, force: true });
    },
  };
}

/** Splits counts into what a test reports: ids present, missing, duplicated, unexpected. */
export function compare(expected: Iterable<string>, counts: Map<string, number>) {
  const want = new Set(expected);
  const missing = [...want].filter((id) => !counts.has(id));
  const extra = [...counts.keys()].filter((id) => !want.has(id));
  const duplicates = [...counts.entries()].filter(([, n]) => n > 1).map(([id, n]) => ({ id, n }));
  return { expected: want.size, inClickHouse: counts.size, missing, extra, duplicates };
}

/** Waits until every expected id is in ClickHouse (or the timeout), then lets stragglers settle. */
export async function waitForRows(pipeline: Pipeline, expected: string[], where: string, params: Record<string, unknown> = {}, timeoutMs = 60_000): Promise<Map<string, number>> {
  const want = new Set(expected);
  const deadline = Date.now() + timeoutMs;
  let counts = new Map<string, number>();
  while (Date.now() < deadline) {
    try {
      counts = await pipeline.rowCounts(where, params);
      if ([...want].every((id) => counts.has(id))) break;
    } catch { /* ClickHouse may still be starting */ }
    await sleep(250);
  }
  // A late duplicate would be an insert still in flight: give it time to show.
  await sleep(1_000);
  return pipeline.rowCounts(where, params);
}

/** Reads a topic from the start until `count` messages arrived or `timeoutMs` passed; returns what came. */
export async function readUpTo(brokers: string[], topic: string, count: number, timeoutMs = 20_000): Promise<ReadMessage[]> {
  const kafka = new Kafka({ clientId: 'reliability-reader', brokers, logLevel: logLevel.NOTHING });
  const consumer = kafka.consumer({ groupId: `reliability-reader-${randomUUID()}`, ...consumerTimings, maxBytesPerPartition: 10_485_760 });
  const received: ReadMessage[] = [];
  await consumer.connect();
  try {
    await consumer.subscribe({ topic, fromBeginning: true });
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(resolve, timeoutMs);
      consumer.run({
        eachMessage: async ({ message, partition }) => {
          received.push({ ...message, partition });
          if (received.length >= count) {
            clearTimeout(timer);
            setTimeout(resolve, 500);
          }
        },
      }).catch(reject);
    });
  } finally {
    await consumer.disconnect();
  }
  return received;
}
