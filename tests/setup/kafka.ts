import { randomUUID } from 'node:crypto';
import { Kafka, logLevel, type KafkaMessage } from 'kafkajs';

// Consumer settings the mock cluster needs for fast group joins (see DESIGN.md).
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
    await consumer.subscribe({ topic, fromBeginning: true });
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
