/**
 * The pipeline each fault test breaks on purpose: its own ClickHouse server (so it can stop it),
 * its own topics on the shared 3-broker Kafka cluster, or, for tests that kill brokers, a 3-broker
 * cluster of its own; its own database with background merges stopped (so a duplicate row stays
 * visible: only the insert's deduplication token may remove one), and the real handlers, imported
 * after the environment is set.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { randomUUID } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import { Kafka, logLevel, type Message, type Producer } from 'kafkajs';
import type { APIGatewayProxyEventV2, APIGatewayProxyStructuredResultV2, Context, MSKEvent } from 'aws-lambda';
import { startEmbeddedKafka, type EmbeddedKafka } from '../../localstack/kafka/embedded.ts';
import { startEmbeddedClickHouse, type EmbeddedClickHouse } from '../../localstack/clickhouse/embedded.ts';
import { KafkaEventSource, type EventSourceLogger } from '../../localstack/event-source/kafka-event-source.ts';
import type { AwsKafkaEvent } from '../../localstack/event-source/aws-kafka-event.ts';
import { enrich, toKafkaMessage } from '../../functions/ingest/messages.ts';
import { clientEvent } from '../../shared/events.ts';
import { productTopicConfigs } from '../../shared/kafka-topics.ts';
import { whileTopicUnknown } from '../../shared/kafka-topic-wait.ts';
import { eventually, freePort, migratedDatabase, stackEnv } from '../setup/context.ts';
import { consumerTimings, testTopics, type ReadMessage } from '../setup/kafka.ts';

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
      if (typeof first === 'string' && (first.startsWith('{"level":') || first.includes('[@clickhouse/client]')
        || first.startsWith('No application metrics to publish'))) return;
      original(...args);
    };
  }
}

/** Prints the figures a test checked, one JSON line, so the run log carries the evidence. */
export function report(test: string, figures: Record<string, unknown>): void {
  console.log(`[reliability] ${test}: ${JSON.stringify(figures)}`);
}

export { sleep };

/** An enriched event as the ingest would produce it, with a known event id. */
export function eventMessage(userId: string, i: number, eventId = randomUUID()): { eventId: string; message: Message } {
  const event = clientEvent.parse({ type: 'film_progress', event_id: eventId, film_id: `film-${i % 13}`, position_s: i, duration_s: 6000 });
  return { eventId, message: toKafkaMessage(enrich(event, { userId, requestId: `req-${i}`, receivedAt: new Date() })) };
}


/** A client for tests' own admin and producer work, with short timeouts so a dead broker fails fast. */
export function testKafka(brokers: string[], clientId = 'reliability'): Kafka {
  return new Kafka({ clientId, brokers, logLevel: logLevel.NOTHING, connectionTimeout: 1_000, requestTimeout: 5_000,
    retry: { retries: 5, initialRetryTime: 100, maxRetryTime: 1_000 } });
}

/** One partition as the cluster's metadata describes it now. */
export interface PartitionState { partition: number; leader: number; replicas: number[]; isr: number[] }

/** The topic's partitions, leaders and in-sync replicas, from a fresh metadata request. */
export async function partitionStates(brokers: string[], topic: string): Promise<PartitionState[]> {
  const admin = testKafka(brokers, 'reliability-metadata').admin();
  await admin.connect();
  try {
    const { topics } = await admin.fetchTopicMetadata({ topics: [topic] });
    return (topics[0]?.partitions ?? []).map((p) => ({ partition: p.partitionId, leader: p.leader, replicas: p.replicas, isr: p.isr }))
      .sort((a, b) => a.partition - b.partition);
  } finally {
    await admin.disconnect().catch(() => {});
  }
}

/** The broker that leads the most partitions of `topic` (the lowest id on a tie), and those partitions. */
export async function busiestLeader(brokers: string[], topic: string): Promise<{ id: number; partitions: number[] }> {
  const led = new Map<number, number[]>();
  for (const p of await partitionStates(brokers, topic)) led.set(p.leader, [...(led.get(p.leader) ?? []), p.partition]);
  const [id, partitions] = [...led].filter(([leader]) => leader >= 0).sort(([a, pa], [b, pb]) => pb.length - pa.length || a - b)[0]!;
  return { id, partitions };
}

/** Waits until every partition of every topic has a leader and all its replicas in sync. */
export async function waitUntilInSync(brokers: string[], topics: string[], timeoutMs = 60_000): Promise<void> {
  await eventually(async () => {
    for (const topic of topics) {
      const states = await partitionStates(brokers, topic);
      if (states.length === 0 || states.some((p) => p.leader < 0 || p.isr.length < p.replicas.length)) return undefined;
    }
    return true;
  }, timeoutMs, `every replica of ${topics.join(', ')} in sync`);
}

export interface PipelineOptions {
  partitions?: number;
  /**
   * A 3-broker Kafka cluster of the test file's own (own data directory, removed on stop), for
   * tests that kill, pause or restart brokers. Default: topics on the shared cluster of the setup.
   */
  ownKafka?: boolean;
  /** Also import the ingest handler (needs JWT_SECRET etc. in env). */
  ingest?: boolean;
  env?: Record<string, string>;
}

export interface Pipeline {
  /** The cluster of the file's own ({@link PipelineOptions.ownKafka}); undefined on the shared one. */
  readonly kafka: EmbeddedKafka | undefined;
  readonly clickhouse: EmbeddedClickHouse;
  readonly database: string;
  readonly topic: string;
  readonly dlqTopic: string;
  readonly writer: WriterHandler;
  readonly ingest: IngestHandler | undefined;
  /** An idempotent producer (acks as each send says), standing in for the ingest. */
  readonly producer: Producer;
  readonly brokers: string[];
  readonly bootstrapServers: string;
  newTopic(partitions?: number): Promise<string>;
  /** Runs the event source emulator on `topic`, invoking `invoke` (default: the writer). */
  drive(topic: string, invoke?: Invoke, options?: { batchSize?: number; windowSeconds?: number; groupId?: string; logger?: EventSourceLogger }): Promise<KafkaEventSource>;
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

/** Starts (or finds) Kafka, starts ClickHouse, creates topics, database and handlers for one test file. */
export async function startPipeline(options: PipelineOptions = {}): Promise<Pipeline> {
  quietProductLogs();
  const topic = `rel-${randomUUID().slice(0, 8)}`;
  const dlqTopic = `${topic}.dlq`;
  const dataDir = await mkdtemp(join(tmpdir(), 'ugc-reliability-'));
  const kafkaDataDir = options.ownKafka ? await mkdtemp(join(tmpdir(), 'ugc-reliability-kafka-')) : undefined;
  const topics = [{ name: topic, partitions: options.partitions ?? 3 }, { name: dlqTopic, partitions: 1 }];
  // Side by side: three JVMs take seconds to start, and so does ClickHouse.
  const [kafka, firstClickHouse] = await Promise.all([
    kafkaDataDir
      ? startEmbeddedKafka({ dataDir: kafkaDataDir, brokers: 3, topics: topics.map((t) => ({ ...t, configs: productTopicConfigs })) })
      : Promise.resolve(undefined),
    (async () => startEmbeddedClickHouse({ dataDir, port: await freePort() }))(),
  ]);
  let clickhouse = firstClickHouse;
  const brokers = kafka?.brokers ?? stackEnv().KAFKA_BROKERS!.split(',');
  // On the shared cluster the file's topics are made, and deleted at stop, like any test file's.
  const sharedTopics = kafka ? undefined : testTopics(brokers);
  await sharedTopics?.create(...topics.map((t) => ({ ...t, configs: productTopicConfigs })));
  const db = await migratedDatabase(clickhouse.url, 'reliability');
  await db.client.command({ query: 'SYSTEM STOP MERGES events' });
  Object.assign(process.env, {
    // KAFKA_IDEMPOTENT is left at its default (true), as deployed.
    KAFKA_BROKERS: brokers.join(','), KAFKA_TOPIC: topic, KAFKA_DLQ_TOPIC: dlqTopic,
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
  const producer = testKafka(brokers).producer({ idempotent: true, maxInFlightRequests: 1, allowAutoTopicCreation: false });
  await producer.connect();
  const sources: KafkaEventSource[] = [];
  let requests = 0;
  const writerContext = () => ({ awsRequestId: `writer-${++requests}`, getRemainingTimeInMillis: () => 60_000 }) as unknown as Context;

  const query = async <T>(sql: string, params: Record<string, unknown> = {}): Promise<T[]> =>
    (await db.client.query({ query: sql, query_params: params, format: 'JSONEachRow' })).json<T>();

  return {
    kafka,
    get clickhouse() { return clickhouse; },
    database: db.database,
    topic,
    dlqTopic,
    writer,
    ingest,
    producer,
    brokers,
    bootstrapServers: brokers.join(','),
    async newTopic(partitions = 3) {
      const name = `rel-${randomUUID().slice(0, 8)}`;
      const spec = { name, partitions, configs: productTopicConfigs };
      if (kafka) await kafka.createTopic(name, partitions, productTopicConfigs);
      else await sharedTopics!.create(spec);
      return name;
    },
    async drive(sourceTopic, invoke = (e) => writer(e as MSKEvent, writerContext()), opts = {}) {
      const source = new KafkaEventSource({
        brokers, topic: sourceTopic, consumerGroupId: opts.groupId ?? `${sourceTopic}-writer`, kind: 'msk',
        eventSourceArn: 'arn:aws:kafka:us-east-1:000000000000:cluster/reliability/1',
        batchSize: opts.batchSize ?? 200, maximumBatchingWindowSeconds: opts.windowSeconds ?? 0.2,
        maximumRetryAttempts: -1, retryBackoff: { initialMs: 100, maxMs: 500 }, invoke, logger: opts.logger ?? (() => {}),
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
      await sharedTopics?.drop().catch(() => {});
      await db.drop().catch(() => {});
      await Promise.allSettled([clickhouse.stop(), kafka?.stop()]);
      await Promise.all([dataDir, kafkaDataDir].map((dir) => (dir ? rm(dir, { recursive: true, force: true }) : undefined)));
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
  const kafka = testKafka(brokers, 'reliability-reader');
  const consumer = kafka.consumer({ groupId: `reliability-reader-${randomUUID()}`, ...consumerTimings, maxBytesPerPartition: 10_485_760 });
  const received: ReadMessage[] = [];
  await consumer.connect();
  try {
    await whileTopicUnknown(() => consumer.subscribe({ topic, fromBeginning: true }));
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
