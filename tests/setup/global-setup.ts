import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { TestProject } from 'vitest/node';
import { startLocalStack } from '../../localstack/stack.ts';

declare module 'vitest' {
  export interface ProvidedContext {
    /** The shared embedded stack: KAFKA_BROKERS, CLICKHOUSE_URL, … */
    stackEnv: Record<string, string>;
  }
}

/**
 * Starts one embedded Kafka cluster (3 brokers) and ClickHouse server for the whole run (unless
 * KAFKA_BROKERS / CLICKHOUSE_URL point at real ones). Tests that kill or stop brokers start their own.
 */
export default async function setup(project: TestProject): Promise<() => Promise<void>> {
  const dataDir = await mkdtemp(join(tmpdir(), 'ugc-test-clickhouse-'));
  const kafkaDataDir = await mkdtemp(join(tmpdir(), 'ugc-test-kafka-'));
  const stack = await startLocalStack({ dataDir, kafkaDataDir, clickhousePort: 0, kafkaPort: 0 });
  project.provide('stackEnv', stack.env);
  return async () => {
    await stack.stop();
    await Promise.all([dataDir, kafkaDataDir].map((dir) => rm(dir, { recursive: true, force: true })));
  };
}
