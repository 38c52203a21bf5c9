/**
 * The product's Kafka topics, created through Kafka's admin API. The local stack calls this on
 * its embedded cluster; ops run the same code against MSK: `npm run topics` (KAFKA_BROKERS and,
 * on MSK, KAFKA_SASL_MECHANISM=aws-msk-iam, as the functions read them).
 */
import { fileURLToPath } from 'node:url';
import type { Kafka } from 'kafkajs';
import { whileTopicUnknown } from '../shared/kafka-topic-wait.ts';

/** A topic as the product needs it. */
export interface TopicSpec {
  name: string;
  partitions: number;
  /** Default: the cluster's default.replication.factor. */
  replicationFactor?: number;
  configs?: Record<string, string>;
}

/** With acks=all, a write needs this many replicas in sync: 2 of 3 survives one broker down. */
export const productTopicConfigs = { 'min.insync.replicas': '2' };

/** The product's topics: events keyed by viewer, and the writer's dead letters. */
export function productTopics(env: NodeJS.ProcessEnv = process.env): TopicSpec[] {
  const replicationFactor = env.KAFKA_REPLICATION_FACTOR ? Number(env.KAFKA_REPLICATION_FACTOR) : undefined;
  const configs = { ...productTopicConfigs, ...(env.KAFKA_MIN_INSYNC_REPLICAS ? { 'min.insync.replicas': env.KAFKA_MIN_INSYNC_REPLICAS } : {}) };
  return [
    { name: env.KAFKA_TOPIC || 'ugc.events', partitions: Number(env.KAFKA_PARTITIONS ?? 6), replicationFactor, configs },
    { name: env.KAFKA_DLQ_TOPIC || 'ugc.events.dlq', partitions: 1, replicationFactor, configs },
  ];
}

/** What {@link ensureTopics} found and did. */
export interface TopicsReport {
  created: string[];
  existing: { name: string; partitions: number }[];
}

/**
 * Creates the topics that do not exist yet (waiting for their leaders) and leaves the others as
 * they are: a partition count is never changed behind the operator's back (it moves keys).
 */
export async function ensureTopics(kafka: Kafka, topics: TopicSpec[]): Promise<TopicsReport> {
  // kafkajs waits for a new topic's leaders by asking one broker, and gives up when that broker has
  // not applied the new metadata yet. Creating is idempotent: ask again.
  return whileTopicUnknown(() => ensureTopicsOnce(kafka, topics), { timeoutMs: 5_000 });
}

async function ensureTopicsOnce(kafka: Kafka, topics: TopicSpec[]): Promise<TopicsReport> {
  const admin = kafka.admin();
  await admin.connect();
  try {
    const present = new Set(await admin.listTopics());
    const missing = topics.filter((t) => !present.has(t.name));
    if (missing.length > 0) {
      await admin.createTopics({
        waitForLeaders: true,
        topics: missing.map((t) => ({
          topic: t.name,
          numPartitions: t.partitions,
          ...(t.replicationFactor ? { replicationFactor: t.replicationFactor } : {}),
          configEntries: Object.entries(t.configs ?? {}).map(([name, value]) => ({ name, value })),
        })),
      });
    }
    const existingNames = topics.filter((t) => present.has(t.name)).map((t) => t.name);
    const metadata = existingNames.length > 0 ? await admin.fetchTopicMetadata({ topics: existingNames }) : { topics: [] };
    return {
      created: missing.map((t) => t.name),
      existing: metadata.topics.map((t) => ({ name: t.name, partitions: t.partitions.length })),
    };
  } finally {
    await admin.disconnect();
  }
}

// `npm run topics`: the product's topics on KAFKA_BROKERS, authenticated as the functions are.
if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  const { loadConfig, kafkaEnv } = await import('../shared/config.ts');
  const { createKafka, kafkaAuthEnv } = await import('../shared/kafka.ts');
  const { createLogger } = await import('../shared/telemetry.ts');
  const log = createLogger('topics');
  const kafka = createKafka(loadConfig({ ...kafkaEnv, ...kafkaAuthEnv }));
  const wanted = productTopics();
  const report = await ensureTopics(kafka, wanted);
  for (const t of report.existing) {
    const want = wanted.find((w) => w.name === t.name)!.partitions;
    if (t.partitions !== want) log.warn('topic exists with another partition count; left as it is', { topic: t.name, partitions: t.partitions, wanted: want });
  }
  log.info('topics ready', { ...report });
}
