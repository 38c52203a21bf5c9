/**
 * The event source plugin under a real `serverless offline start` (osls + serverless-offline),
 * with a throwaway service whose handler records the events it gets.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtemp, readFile, rm, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Kafka, logLevel, type KafkaMessage } from 'kafkajs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { AwsKafkaEvent } from '../../localstack/event-source/aws-kafka-event.ts';
import { eventually, freePort, stackEnv, uniqueName } from '../setup/context.ts';
import { testTopics, whileTopicUnknown } from '../setup/kafka.ts';

const pluginDir = fileURLToPath(new URL('../../plugins', import.meta.url));
const serverlessBin = fileURLToPath(new URL('../../node_modules/osls/bin/serverless.js', import.meta.url));

const handlerSource = `
import { appendFileSync } from 'node:fs';
export const handler = async (event) => {
  appendFileSync(process.env.OUT_FILE, JSON.stringify(event) + '\\n');
  const values = Object.values(event.records).flat().map((r) => Buffer.from(r.value, 'base64').toString());
  if (values.includes('poison')) throw new Error('poison record');
  return { ok: true };
};
`;

const serviceYaml = `
service: esm-offline
frameworkVersion: '>=3'
plugins:
  - ./plugins/offline-event-source
  - serverless-offline
provider:
  name: aws
  runtime: nodejs20.x
  stage: test
  region: eu-west-1
  environment:
    OUT_FILE: \${env:OUT_FILE}
functions:
  fromMsk:
    handler: handler.handler
    events:
      - msk:
          arn: arn:aws:kafka:eu-west-1:000000000000:cluster/local/00000000-0000-0000-0000-000000000000-1
          topic: \${env:MSK_TOPIC}
          batchSize: 10
          maximumBatchingWindow: 0.2
  fromKafka:
    handler: handler.handler
    events:
      - kafka:
          accessConfigurations:
            saslScram512Auth: arn:aws:secretsmanager:eu-west-1:000000000000:secret:local
          bootstrapServers: ['kafka.example.invalid:9092']
          topic: \${env:KAFKA_TOPIC}
          consumerGroupId: \${env:KAFKA_TOPIC}-group
          maximumBatchingWindow: 0.2
          onFailureDestination: kafka://\${env:KAFKA_TOPIC}.dlq
custom:
  serverless-offline:
    httpPort: \${env:HTTP_PORT}
    lambdaPort: \${env:LAMBDA_PORT}
  kafkaEventSource:
    maximumRetryAttempts: 1
    retryBackoffMs: 50
`;

describe('event source plugin under serverless offline', () => {
  let bootstrapServers: string;
  let brokers: string[];
  let topics: ReturnType<typeof testTopics>;
  let dir: string;
  let offline: ChildProcess;
  let output = '';
  const mskTopic = uniqueName('offline-msk');
  const kafkaTopic = uniqueName('offline-kafka');
  const outFile = () => join(dir, 'events.jsonl');

  async function receivedEvents(): Promise<AwsKafkaEvent[]> {
    const text = await readFile(outFile(), 'utf8').catch(() => '');
    return text
      .split('\n')
      .filter(Boolean)
      .map((line) => JSON.parse(line) as AwsKafkaEvent);
  }

  beforeAll(async () => {
    bootstrapServers = stackEnv().KAFKA_BROKERS!;
    brokers = bootstrapServers.split(',');
    topics = testTopics(brokers);
    await topics.create(
      { name: mskTopic, partitions: 2 },
      { name: kafkaTopic, partitions: 1 },
      { name: `${kafkaTopic}.dlq`, partitions: 1 },
    );
    dir = await mkdtemp(join(tmpdir(), 'esm-offline-'));
    await writeFile(join(dir, 'package.json'), JSON.stringify({ name: 'esm-offline', private: true, type: 'module' }));
    await writeFile(join(dir, 'handler.js'), handlerSource);
    await writeFile(join(dir, 'serverless.yml'), serviceYaml);
    // Local plugins must be "./…" inside the service directory.
    await symlink(pluginDir, join(dir, 'plugins'), 'dir');

    offline = spawn(process.execPath, [serverlessBin, 'offline', 'start'], {
      cwd: dir,
      env: {
        ...process.env,
        KAFKA_BROKERS: bootstrapServers,
        OUT_FILE: outFile(),
        MSK_TOPIC: mskTopic,
        KAFKA_TOPIC: kafkaTopic,
        HTTP_PORT: String(await freePort()),
        LAMBDA_PORT: String(await freePort()),
        SLS_TELEMETRY_DISABLED: '1',
      },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    offline.stdout?.on('data', (chunk: Buffer) => void (output += chunk.toString()));
    offline.stderr?.on('data', (chunk: Buffer) => void (output += chunk.toString()));
    await eventually(
      async () => ((output.match(/"event source started"/g) ?? []).length >= 2 ? true : undefined),
      60_000,
      `both event sources to start; output:\n${output}`,
    ).catch((error: unknown) => {
      throw new Error(`${String(error)}\n${output}`);
    });
  });

  afterAll(async () => {
    if (offline && offline.exitCode === null) {
      const exited = new Promise((r) => offline.once('exit', r));
      offline.kill('SIGINT');
      await exited;
    }
    await topics?.drop();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  it('invokes each function through the Lambda API with AWS-shaped msk and kafka events', async () => {
    const kafka = new Kafka({ brokers, logLevel: logLevel.NOTHING });
    const producer = kafka.producer({ idempotent: true, maxInFlightRequests: 1 });
    await producer.connect();
    await producer.send({ topic: mskTopic, messages: [{ key: 'user-1', value: 'to-msk', headers: { h: 'v' }, partition: 1 }] });
    await producer.send({ topic: kafkaTopic, messages: [{ value: 'to-kafka' }] });
    await producer.disconnect();

    const events = await eventually(
      async () => {
        const all = await receivedEvents();
        return all.length >= 2 ? all : undefined;
      },
      15_000,
      'two events',
    );
    const msk = events.find((e) => e.eventSource === 'aws:kafka');
    const selfManaged = events.find((e) => e.eventSource === 'SelfManagedKafka');
    expect(msk).toMatchObject({
      eventSourceArn: 'arn:aws:kafka:eu-west-1:000000000000:cluster/local/00000000-0000-0000-0000-000000000000-1',
      bootstrapServers,
      records: {
        [`${mskTopic}-1`]: [
          {
            topic: mskTopic,
            partition: 1,
            offset: 0,
            timestampType: 'CREATE_TIME',
            key: Buffer.from('user-1').toString('base64'),
            value: Buffer.from('to-msk').toString('base64'),
            headers: [{ h: [118] }],
          },
        ],
      },
    });
    expect(selfManaged).toBeDefined();
    expect('eventSourceArn' in selfManaged!).toBe(false);
    expect(Object.keys(selfManaged!.records)).toEqual([`${kafkaTopic}-0`]);
  });

  it('retries a failing function, then sends the record to the kafka:// on-failure topic', async () => {
    const kafka = new Kafka({ brokers, logLevel: logLevel.NOTHING });
    const producer = kafka.producer({ idempotent: true, maxInFlightRequests: 1 });
    await producer.connect();
    await producer.send({ topic: kafkaTopic, messages: [{ value: 'poison' }] });
    await producer.disconnect();

    const dead: KafkaMessage[] = [];
    const consumer = kafka.consumer({ groupId: `dlq-reader-${Date.now()}`, sessionTimeout: 6000, heartbeatInterval: 1000, maxWaitTimeInMs: 200 });
    await consumer.connect();
    await whileTopicUnknown(() => consumer.subscribe({ topic: `${kafkaTopic}.dlq`, fromBeginning: true }));
    await consumer.run({ eachMessage: async ({ message }) => void dead.push(message) });
    try {
      await eventually(async () => (dead.length >= 1 ? true : undefined), 20_000, 'the dead-lettered record');
    } finally {
      await consumer.disconnect();
    }
    expect(dead[0]!.value?.toString()).toBe('poison');
    expect(dead[0]!.headers?.['dlq-reason']?.toString()).toBe('Error: poison record');
    expect(dead[0]!.headers?.['dlq-function']?.toString()).toBe('esm-offline-test-fromKafka');
    const poisonInvokes = (await receivedEvents()).filter((e) =>
      Object.values(e.records).flat().some((r) => Buffer.from(r.value, 'base64').toString() === 'poison'),
    );
    expect(poisonInvokes).toHaveLength(2); // first try + maximumRetryAttempts: 1
  });

  it('stops its consumers cleanly when serverless offline gets SIGINT', async () => {
    const exited = new Promise<number | null>((r) => offline.once('exit', (code) => r(code)));
    offline.kill('SIGINT');
    expect(await exited).toBe(0);
    expect((output.match(/"event source stopped"/g) ?? []).length).toBe(2);
  });
});
