import { Kafka, logLevel } from 'kafkajs';
import { productTopics } from '../../shared/kafka-topics.ts';
import { migratedDatabase, stackEnv, uniqueName } from './context.ts';
import { testTopics } from './kafka.ts';

export interface OwnPipeline {
  /** The shared stack's environment with this pipeline's database, topics and writer group. */
  env: Record<string, string>;
  db: Awaited<ReturnType<typeof migratedDatabase>>;
  /** Drops the database and the topics. */
  drop(): Promise<void>;
}

/**
 * A ClickHouse database, events and dead-letter topics and a writer consumer group of one test
 * file's own, for a serverless offline run beside others on the shared stack (serverless.yml's dev
 * stage reads KAFKA_TOPIC, KAFKA_DLQ_TOPIC and WRITER_CONSUMER_GROUP). Sharing the group, two runs'
 * writers would split the partitions between them and each write the other's events into its own
 * database; sharing the topics, one test's poison records would be another's dead letters.
 */
export async function ownPipeline(prefix: string): Promise<OwnPipeline> {
  const shared = stackEnv();
  const name = uniqueName(prefix);
  const own = { KAFKA_TOPIC: `ugc.events.${name}`, KAFKA_DLQ_TOPIC: `ugc.events.${name}.dlq`, WRITER_CONSUMER_GROUP: `ugc-ingest-writer-${name}` };
  const brokers = shared.KAFKA_BROKERS!.split(',');
  const topics = testTopics(brokers);
  const [database, created] = await Promise.allSettled([migratedDatabase(shared.CLICKHOUSE_URL!, prefix), topics.create(...productTopics({ ...shared, ...own }))]);
  const drop = async () => {
    await Promise.allSettled([
      database.status === 'fulfilled' ? database.value.drop() : undefined,
      topics.drop(),
      deleteGroup(brokers, own.WRITER_CONSUMER_GROUP),
    ]);
  };
  if (database.status === 'rejected' || created.status === 'rejected') {
    await drop();
    throw database.status === 'rejected' ? database.reason : (created as PromiseRejectedResult).reason;
  }
  return { env: { ...shared, ...own, CLICKHOUSE_DATABASE: database.value.database }, db: database.value, drop };
}

/** Deletes a consumer group once its members are gone (a group never joined is not an error). */
async function deleteGroup(brokers: string[], groupId: string): Promise<void> {
  const admin = new Kafka({ clientId: 'test-groups', brokers, logLevel: logLevel.NOTHING }).admin();
  await admin.connect();
  try {
    await admin.deleteGroups([groupId]).catch(() => {});
  } finally {
    await admin.disconnect();
  }
}
