import { randomUUID } from 'node:crypto';
import { Kafka, logLevel, type KafkaMessage } from 'kafkajs';
import { ensureTopics, type TopicSpec } from '../../shared/kafka-topics.ts';
import { whileTopicUnknown } from '../../shared/kafka-topic-wait.ts';

export { productTopicConfigs } from '../../shared/kafka-topics.ts';
export { whileTopicUnknown };

/**
 * Topics of one test file on a shared cluster, created through the admin API as the product's are
 * (shared/kafka-topics.ts, which waits for their leaders); drop() deletes them, so a run leaves nothing
 * behind on a long-lived cluster.
 */
export function testTopics(brokers: string[]) {
  const kafka = new Kafka({ clientId: 'test-topics', brokers, logLevel: logLevel.NOTHING });
  const created = new Set<string>();
  return {
    async create(...topics: TopicSpec[]): Promise<void> {
      await ensureTopics(kafka, topics);
      for (const t of topics) created.add(t.name);
    },
    async drop(): Promise<void> {
      if (created.size === 0) return;
      const admin = kafka.admin();
      await admin.connect();
      try {
        await admin.deleteTopics({ topics: [...created] });
        created.clear();
      } finally {
        await admin.disconnect();
      }
    },
  };
}

// Real Kafka benefits too: a member learns of a rebalance at its next heartbeat, so 1 s heartbeats
// (in the brokers' minimum 6 s session) let the many short-lived test groups settle quickly, and a
// short fetch wait hands over records sooner.
export const consumerTimings = { sessionTimeout: 6000, heartbeatInterval: 1000, maxWaitTimeInMs: 500 };

export type ReadMessage = KafkaMessage & { partition: number };

/**
 * Reads a topic from the beginning with a fresh consumer group until `count` messages arrived
 * (only those `match` keeps, on a topic other tests share), then waits `settleMs` more to catch
 * any extra (so a test can assert "exactly these").
 */
export async function readTopic(
  brokers: string[], topic: string, count: number,
  { timeoutMs = 20_000, settleMs = 500, match = (_: KafkaMessage): boolean => true } = {},
): Promise<ReadMessage[]> {
  const kafka = new Kafka({ clientId: 'test-reader', brokers, logLevel: logLevel.NOTHING });
  const consumer = kafka.consumer({ groupId: `test-reader-${randomUUID()}`, ...consumerTimings });
  const received: ReadMessage[] = [];
  await consumer.connect();
  try {
    await whileTopicUnknown(() => consumer.subscribe({ topic, fromBeginning: true }));
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`read ${received.length} of ${count} messages from ${topic}`)), timeoutMs);
      consumer.run({
        eachMessage: async ({ message, partition }) => {
          if (!match(message)) return;
          received.push({ ...message, partition });
          if (received.length >= count) {
            clearTimeout(timer);
            setTimeout(resolve, settleMs);
          }
        },
      }).catch(reject);
    });
  } finally {
    await consumer.disconnect();
  }
  return received;
}
