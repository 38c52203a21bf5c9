import { mkdir } from 'node:fs/promises';
import { resolve } from 'node:path';
import { Kafka, logLevel } from 'kafkajs';
import { startEmbeddedKafka, type EmbeddedKafka } from './kafka/embedded.ts';
import { startEmbeddedClickHouse, type EmbeddedClickHouse } from './clickhouse/embedded.ts';
import { migrate } from '../clickhouse/migrate.ts';
import { clickHouseEnv, createClickHouse } from '../shared/clickhouse.ts';
import { loadConfig } from '../shared/config.ts';
import { ConfigError } from '../shared/errors.ts';
import { ensureTopics, productTopics, type TopicSpec } from '../shared/kafka-topics.ts';
import { assertDataDirFree, clickhouseLock } from './lock.ts';
import { assertPortFree } from './ports.ts';

export { productTopics };

export interface LocalStackOptions {
  /** Where the embedded ClickHouse keeps its data (default .data/clickhouse, CLICKHOUSE_DATA_DIR). */
  dataDir?: string;
  /** Where the embedded Kafka keeps its data (default .data/kafka, KAFKA_DATA_DIR). */
  kafkaDataDir?: string;
  /** Embedded ClickHouse port; 0 picks a free one. */
  clickhousePort?: number;
  /** First port of the embedded Kafka (default 9092, KAFKA_PORT); 0 picks free ones. */
  kafkaPort?: number;
  /** Number of embedded Kafka brokers. */
  brokers?: number;
  /** Progress lines of a first start (jar downloads, storage format). */
  onProgress?: (message: string) => void;
  env?: NodeJS.ProcessEnv;
}

export interface LocalStack {
  /** What the functions need to reach the stack: KAFKA_BROKERS, CLICKHOUSE_URL, … */
  readonly env: Record<string, string>;
  readonly broker?: EmbeddedKafka;
  readonly clickhouse?: EmbeddedClickHouse;
  stop(): Promise<void>;
}

/**
 * Starts what the pipeline needs on this machine: the embedded Apache Kafka cluster and
 * ClickHouse server (side by side), unless KAFKA_BROKERS / CLICKHOUSE_URL point at real ones
 * (compose, cloud); then creates the topics and applies the ClickHouse migrations.
 */
export async function startLocalStack(options: LocalStackOptions = {}): Promise<LocalStack> {
  const env = options.env ?? process.env;
  const topics = productTopics(env);
  const started: { stop(): Promise<void> }[] = [];
  const stop = async () => {
    await Promise.allSettled(started.reverse().map((s) => s.stop()));
  };
  const track = <T extends { stop(): Promise<void> } | undefined>(part: T): T => {
    if (part) started.push(part);
    return part;
  };
  try {
    // Before any broker starts: a taken port or data dir is said at once, in one line.
    const clickhouseSetup = env.CLICKHOUSE_URL ? undefined : await checkedClickHouseSetup(options, env);
    const [kafkaResult, clickhouseResult] = await Promise.allSettled([
      env.KAFKA_BROKERS ? createTopics(env.KAFKA_BROKERS.split(','), topics) : startKafka(options, env, topics).then(track),
      clickhouseSetup ? startEmbeddedClickHouse(clickhouseSetup).then(track) : Promise.resolve(undefined),
    ]);
    if (kafkaResult.status === 'rejected') throw kafkaResult.reason;
    if (clickhouseResult.status === 'rejected') throw clickhouseResult.reason;
    const broker = kafkaResult.value;
    const clickhouse = clickhouseResult.value;
    const kafkaBrokers = broker?.bootstrapServers ?? env.KAFKA_BROKERS!;
    const clickhouseUrl = clickhouse?.url ?? env.CLICKHOUSE_URL!;

    // Read as the functions read it (shared/clickhouse.ts), so the defaults are theirs.
    const settings = loadConfig(clickHouseEnv, { ...env, CLICKHOUSE_URL: clickhouseUrl, CLICKHOUSE_REQUEST_TIMEOUT_MS: '30000' });
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
        // As in production: the embedded cluster is real Kafka, so the producer settings are the same.
        KAFKA_IDEMPOTENT: env.KAFKA_IDEMPOTENT ?? 'true',
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

/** The embedded ClickHouse's data dir and port, refused in one line naming our variables when another server holds them. */
async function checkedClickHouseSetup(options: LocalStackOptions, env: NodeJS.ProcessEnv): Promise<{ dataDir: string; port: number }> {
  const dataDir = resolve(options.dataDir ?? env.CLICKHOUSE_DATA_DIR ?? '.data/clickhouse');
  await mkdir(dataDir, { recursive: true });
  const port = options.clickhousePort ?? portSetting(env, 'CLICKHOUSE_PORT', 8123);
  // The server's own lock and bind stay the last defence; their errors name its command line.
  assertDataDirFree(dataDir, clickhouseLock);
  await assertPortFree(port, 'CLICKHOUSE_PORT', 'the embedded ClickHouse server');
  return { dataDir, port };
}

/** A port from the environment, or one clear line naming the variable. */
function portSetting(env: NodeJS.ProcessEnv, name: string, fallback: number): number {
  const raw = env[name]?.trim();
  if (!raw) return fallback;
  const port = Number(raw);
  if (!Number.isInteger(port) || port < 0 || port > 65_535) throw new ConfigError(`${name} must be a port number (0-65535), got ${JSON.stringify(raw)}`);
  return port;
}

function startKafka(options: LocalStackOptions, env: NodeJS.ProcessEnv, topics: TopicSpec[]): Promise<EmbeddedKafka> {
  return startEmbeddedKafka({
    dataDir: resolve(options.kafkaDataDir ?? env.KAFKA_DATA_DIR ?? '.data/kafka'),
    port: options.kafkaPort ?? portSetting(env, 'KAFKA_PORT', 9092),
    brokers: options.brokers ?? 3,
    topics,
    onProgress: options.onProgress,
  });
}

/** Creates the topics on a cluster of one's own (compose, MSK) with the code `npm run topics` runs. */
async function createTopics(brokers: string[], topics: TopicSpec[]): Promise<undefined> {
  await ensureTopics(new Kafka({ clientId: 'ugc-ingest-localstack', brokers, logLevel: logLevel.ERROR }), topics);
  return undefined;
}
