import { mkdir } from 'node:fs/promises';
import { resolve } from 'node:path';
import { Kafka, logLevel } from 'kafkajs';
import { startEmbeddedBroker, type EmbeddedBroker } from './kafka/broker.ts';
import { startEmbeddedClickHouse, type EmbeddedClickHouse } from './clickhouse/embedded.ts';
import { migrate } from '../clickhouse/migrate.ts';
import { createClickHouse } from '../shared/clickhouse.ts';

/** The Kafka topics the product needs, with their partition counts. */
export function productTopics(env: NodeJS.ProcessEnv = process.env): { name: string; partitions: number }[] {
  const partitions = Number(env.KAFKA_PARTITIONS ?? 6);
  return [
    { name: env.KAFKA_TOPIC || 'ugc.events', partitions },
    { name: env.KAFKA_DLQ_TOPIC || 'ugc.events.dlq', partitions: 1 },
  ];
}

export interface LocalStackOptions {
  /** Where the embedded ClickHouse keeps its data. */
  dataDir?: string;
  /** Embedded ClickHouse port; 0 picks a free one. */
  clickhousePort?: number;
  /** Number of embedded Kafka brokers. */
  brokers?: number;
  env?: NodeJS.ProcessEnv;
}

export interface LocalStack {
  /** What the functions need to reach the stack: KAFKA_BROKERS, CLICKHOUSE_URL, … */
  readonly env: Record<string, string>;
  readonly broker?: EmbeddedBroker;
  readonly clickhouse?: EmbeddedClickHouse;
  stop(): Promise<void>;
}

/**
 * Starts what the pipeline needs on this machine: the embedded Kafka-protocol broker and
 * ClickHouse server, unless KAFKA_BROKERS / CLICKHOUSE_URL point at real ones (compose, cloud);
 * then creates the topics and applies the ClickHouse migrations.
 */
export async function startLocalStack(options: LocalStackOptions = {}): Promise<LocalStack> {
  const env = options.env ?? process.env;
  const topics = productTopics(env);
  const started: { stop(): Promise<void> }[] = [];
  const stop = async () => {
    await Promise.allSettled(started.reverse().map((s) => s.stop()));
  };
  try {
    const broker = env.KAFKA_BROKERS ? undefined : await startEmbeddedBroker({ brokers: options.brokers ?? 3, topics });
    if (broker) started.push(broker);
    else await createTopics(env.KAFKA_BROKERS!.split(','), topics);
    const kafkaBrokers = broker?.bootstrapServers ?? env.KAFKA_BROKERS!;

    const clickhouse = env.CLICKHOUSE_URL ? undefined : await startClickHouse(options, env);
    if (clickhouse) started.push(clickhouse);
    const clickhouseUrl = clickhouse?.url ?? env.CLICKHOUSE_URL!;

    const settings = {
      CLICKHOUSE_URL: clickhouseUrl,
      CLICKHOUSE_USER: env.CLICKHOUSE_USER || 'default',
      CLICKHOUSE_PASSWORD: env.CLICKHOUSE_PASSWORD || '',
      CLICKHOUSE_DATABASE: env.CLICKHOUSE_DATABASE || 'ugc',
      CLICKHOUSE_REQUEST_TIMEOUT_MS: 30_000,
    };
    const admin = createClickHouse(settings, 'default');
    const db = createClickHouse(settings);
    try {
      // CLICKHOUSE_CLUSTER only means something for a real server (the compose cluster profile).
      const cluster = clickhouse ? undefined : env.CLICKHOUSE_CLUSTER?.trim() || undefined;
      await migrate(admin, db, settings.CLICKHOUSE_DATABASE, undefined, { cluster });
    } finally {
      await Promise.all([admin.close(), db.close()]);
    }

    return {
      env: {
        KAFKA_BROKERS: kafkaBrokers,
        // The embedded mock broker cannot run idempotent producers (DESIGN.md); real Kafka can.
        KAFKA_IDEMPOTENT: broker ? 'false' : (env.KAFKA_IDEMPOTENT ?? 'true'),
        CLICKHOUSE_URL: clickhouseUrl,
        CLICKHOUSE_DATABASE: settings.CLICKHOUSE_DATABASE,
      },
      broker,
      clickhouse,
      stop,
    };
  } catch (error) {
    await stop();
    throw error;
  }
}

async function startClickHouse(options: LocalStackOptions, env: NodeJS.ProcessEnv): Promise<EmbeddedClickHouse> {
  const dataDir = resolve(options.dataDir ?? env.CLICKHOUSE_DATA_DIR ?? '.data/clickhouse');
  await mkdir(dataDir, { recursive: true });
  return startEmbeddedClickHouse({ dataDir, port: options.clickhousePort ?? Number(env.CLICKHOUSE_PORT ?? 8123) });
}

/** Creates the topics on a real cluster (compose, MSK); existing topics are left as they are. */
async function createTopics(brokers: string[], topics: { name: string; partitions: number }[]): Promise<void> {
  const admin = new Kafka({ clientId: 'ugc-ingest-localstack', brokers, logLevel: logLevel.ERROR }).admin();
  await admin.connect();
  try {
    await admin.createTopics({ waitForLeaders: true, topics: topics.map((t) => ({ topic: t.name, numPartitions: t.partitions })) });
  } finally {
    await admin.disconnect();
  }
}
