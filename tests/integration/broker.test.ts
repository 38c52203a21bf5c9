import { readdirSync, readFileSync } from 'node:fs';
import { connect } from 'node:net';
import { Kafka, logLevel, type Consumer, type KafkaMessage } from 'kafkajs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startEmbeddedBroker, type EmbeddedBroker } from '../../localstack/kafka/broker.ts';

// Consumer settings the mock cluster needs for fast group joins (see DESIGN.md).
const consumerTimings = { sessionTimeout: 6000, heartbeatInterval: 1000, maxWaitTimeInMs: 500 };

/** Pids of mock-broker processes that are children of this process. */
function childBrokerPids(): number[] {
  const pids: number[] = [];
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const stat = readFileSync(`/proc/${entry}/stat`, 'utf8');
      // Fields after "(comm)": state, ppid, ...
      const comm = stat.slice(stat.indexOf('(') + 1, stat.lastIndexOf(')'));
      const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
      if (comm === 'mock-broker' && ppid === process.pid) pids.push(Number(entry));
    } catch {
      // the process ended while we read /proc
    }
  }
  return pids;
}

function canConnect(hostPort: string): Promise<boolean> {
  const [host, port] = hostPort.split(':');
  return new Promise((resolve) => {
    const socket = connect({ host, port: Number(port) });
    socket.once('connect', () => {
      socket.destroy();
      resolve(true);
    });
    socket.once('error', () => resolve(false));
  });
}

/** Runs a consumer until it has received `count` messages, then returns them. */
async function consumeN(consumer: Consumer, topic: string, count: number): Promise<KafkaMessage[]> {
  const received: KafkaMessage[] = [];
  await consumer.connect();
  await consumer.subscribe({ topic, fromBeginning: true });
  await new Promise<void>((resolve, reject) => {
    consumer
      .run({
        eachMessage: async ({ message }) => {
          received.push(message);
          if (received.length === count) resolve();
        },
      })
      .catch(reject);
  });
  return received;
}

describe('embedded Kafka broker (librdkafka mock cluster)', () => {
  const topic = 'broker-test.events';
  let broker: EmbeddedBroker;
  let kafka: Kafka;

  beforeAll(async () => {
    broker = await startEmbeddedBroker({
      brokers: 3,
      topics: [
        { name: topic, partitions: 6 },
        { name: 'broker-test.single', partitions: 1 },
      ],
    });
    kafka = new Kafka({
      clientId: 'broker-test',
      brokers: broker.brokers,
      logLevel: logLevel.NOTHING,
      retry: { retries: 2, initialRetryTime: 100 },
    });
  });

  afterAll(async () => {
    await broker?.stop();
  });

  it('starts N brokers on 127.0.0.1 with the requested topics and exact partition counts', async () => {
    expect(broker.brokerIds).toEqual([1, 2, 3]);
    expect(broker.brokers).toHaveLength(3);
    for (const b of broker.brokers) expect(b).toMatch(/^127\.0\.0\.1:\d+$/);
    expect(broker.bootstrapServers).toBe(broker.brokers.join(','));

    const admin = kafka.admin();
    await admin.connect();
    try {
      const { topics } = await admin.fetchTopicMetadata({ topics: [topic, 'broker-test.single'] });
      const partitions = Object.fromEntries(topics.map((t) => [t.name, t.partitions.length]));
      expect(partitions).toEqual({ [topic]: 6, 'broker-test.single': 1 });
    } finally {
      await admin.disconnect();
    }
  });

  it('round-trips keys, values and headers through a consumer group', async () => {
    const producer = kafka.producer();
    await producer.connect();
    const sent = Array.from({ length: 20 }, (_, i) => ({
      key: `user-${i % 5}`,
      value: JSON.stringify({ n: i }),
      headers: { 'event-type': 'film_progress', seq: String(i) },
    }));
    await producer.send({ topic, acks: -1, messages: sent });
    await producer.disconnect();

    const consumer = kafka.consumer({ groupId: 'broker-test.roundtrip', ...consumerTimings });
    try {
      const received = await consumeN(consumer, topic, sent.length);
      const decoded = received
        .map((m) => ({
          key: m.key?.toString(),
          value: m.value?.toString(),
          headers: {
            'event-type': m.headers?.['event-type']?.toString(),
            seq: m.headers?.seq?.toString(),
          },
        }))
        .sort((a, b) => Number(a.headers.seq) - Number(b.headers.seq));
      expect(decoded).toEqual(sent);
    } finally {
      await consumer.disconnect();
    }
  });

  it('creates topics at runtime with the exact partition count, and refuses duplicates', async () => {
    await broker.createTopic('broker-test.runtime', 12);
    await expect(broker.createTopic('broker-test.runtime', 3)).rejects.toThrow(/already exists/i);

    const admin = kafka.admin();
    await admin.connect();
    try {
      const { topics } = await admin.fetchTopicMetadata({ topics: ['broker-test.runtime'] });
      expect(topics[0]?.partitions).toHaveLength(12);
    } finally {
      await admin.disconnect();
    }
  });

  it('honours a committed consumer-group offset when the group rejoins', async () => {
    const groupTopic = 'broker-test.offsets';
    await broker.createTopic(groupTopic, 1);
    const producer = kafka.producer();
    await producer.connect();
    await producer.send({ topic: groupTopic, acks: -1, messages: [{ value: 'a' }, { value: 'b' }] });

    const groupId = 'broker-test.rejoin';
    const first = kafka.consumer({ groupId, ...consumerTimings });
    expect((await consumeN(first, groupTopic, 2)).map((m) => m.value?.toString())).toEqual(['a', 'b']);
    await first.disconnect(); // commits the resolved offsets

    await producer.send({ topic: groupTopic, acks: -1, messages: [{ value: 'c' }] });
    await producer.disconnect();

    const second = kafka.consumer({ groupId, ...consumerTimings });
    try {
      // fromBeginning only applies without a committed offset: only the new message arrives.
      const received = await consumeN(second, groupTopic, 1);
      expect(received.map((m) => m.value?.toString())).toEqual(['c']);
      expect(received[0]?.offset).toBe('2');
    } finally {
      await second.disconnect();
    }
  });

  it('fails a produce while all brokers are down and succeeds after they come back up', async () => {
    const faultTopic = 'broker-test.faults';
    await broker.createTopic(faultTopic, 3);
    const fragile = new Kafka({
      clientId: 'broker-test-faults',
      brokers: broker.brokers,
      logLevel: logLevel.NOTHING,
      connectionTimeout: 500,
      requestTimeout: 1000,
      retry: { retries: 0 },
    });
    const producer = fragile.producer({ retry: { retries: 0 } });
    await producer.connect();
    try {
      await producer.send({ topic: faultTopic, acks: -1, messages: [{ key: 'k', value: 'before' }] });

      for (const id of broker.brokerIds) await broker.brokerDown(id);
      await expect(
        producer.send({ topic: faultTopic, acks: -1, timeout: 1000, messages: [{ key: 'k', value: 'down' }] }),
      ).rejects.toThrow(/ECONNREFUSED/);

      for (const id of broker.brokerIds) await broker.brokerUp(id);
      const [meta] = await producer.send({ topic: faultTopic, acks: -1, messages: [{ key: 'k', value: 'after' }] });
      expect(meta?.errorCode).toBe(0);
    } finally {
      await broker.brokerUp(-1);
      await producer.disconnect();
    }
  });

  it('makes the next produce requests fail with a pushed protocol error, then recovers', async () => {
    const producer = kafka.producer({ retry: { retries: 0 } });
    await producer.connect();
    try {
      // ApiKey 0 = Produce; 29 = TOPIC_AUTHORIZATION_FAILED, which no client retries.
      await broker.pushRequestErrors(0, 29, 1);
      await expect(
        producer.send({ topic: 'broker-test.single', acks: -1, messages: [{ value: 'x' }] }),
      ).rejects.toMatchObject({ type: 'TOPIC_AUTHORIZATION_FAILED' });

      const [meta] = await producer.send({ topic: 'broker-test.single', acks: -1, messages: [{ value: 'y' }] });
      expect(meta?.errorCode).toBe(0);
    } finally {
      await producer.disconnect();
    }
  });

  it('rejects bad commands with the launcher reason and validates arguments', async () => {
    await expect(broker.brokerDown(99)).rejects.toThrow(/down 99: .*not available/i);
    await expect(broker.createTopic('has space', 1)).rejects.toThrow(/invalid topic name/);
    await expect(broker.createTopic('broker-test.zero', 0)).rejects.toThrow(/partitions/);
    await broker.setRtt(1, 5);
    await broker.setRtt(1, 0);
  });
});

describe('embedded Kafka broker lifecycle', () => {
  it('stop() is idempotent, closes the ports and leaves no process behind', async () => {
    const before = childBrokerPids();
    const started = Date.now();
    const broker = await startEmbeddedBroker({ brokers: 2 });
    const startupMs = Date.now() - started;
    expect(startupMs).toBeLessThan(5_000);
    expect(childBrokerPids()).toHaveLength(before.length + 1);
    expect(await canConnect(broker.brokers[0] ?? '')).toBe(true);

    await Promise.all([broker.stop(), broker.stop()]);
    await broker.stop();
    expect(childBrokerPids()).toEqual(before);
    expect(await canConnect(broker.brokers[0] ?? '')).toBe(false);
    await expect(broker.createTopic('broker-test.after-stop', 1)).rejects.toThrow(/exited/);
  });

  it('rejects pending commands when the launcher dies unexpectedly', async () => {
    const before = new Set(childBrokerPids());
    const broker = await startEmbeddedBroker({ brokers: 1 });
    try {
      const pid = childBrokerPids().find((p) => !before.has(p));
      expect(pid).toBeDefined();
      // The command is written before Node sees the exit, so it is pending when the process closes.
      process.kill(pid ?? 0, 'SIGKILL');
      await expect(broker.createTopic('broker-test.dead', 1)).rejects.toThrow(/exited \(signal SIGKILL\)/);
    } finally {
      await broker.stop();
    }
  });
});
