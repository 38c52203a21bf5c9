import { describe, expect, it } from 'vitest';
import { whileTopicUnknown } from '../../shared/kafka-topic-wait.ts';

// What kafkajs' KafkaJSProtocolError carries when the broker asked does not know the topic (code 3).
const unknownTopic = (): Error => Object.assign(new Error('This server does not host this topic-partition'), { type: 'UNKNOWN_TOPIC_OR_PARTITION', code: 3 });

describe('whileTopicUnknown (a topic other brokers have not heard of yet)', () => {
  it('tries again while the broker does not know the topic, and returns what the attempt returns', async () => {
    let attempts = 0;
    const result = await whileTopicUnknown(async () => {
      attempts++;
      if (attempts < 3) throw unknownTopic();
      return 'subscribed';
    }, { intervalMs: 1 });
    expect(result).toBe('subscribed');
    expect(attempts).toBe(3);
  });

  it('throws any other error at once', async () => {
    let attempts = 0;
    await expect(whileTopicUnknown(async () => {
      attempts++;
      throw new Error('connection refused');
    }, { intervalMs: 1 })).rejects.toThrow('connection refused');
    expect(attempts).toBe(1);
  });

  it('gives up after its timeout with the broker’s error', async () => {
    let attempts = 0;
    await expect(whileTopicUnknown(async () => {
      attempts++;
      throw unknownTopic();
    }, { timeoutMs: 30, intervalMs: 5 })).rejects.toThrow('does not host this topic-partition');
    expect(attempts).toBeGreaterThan(1);
  });
});
