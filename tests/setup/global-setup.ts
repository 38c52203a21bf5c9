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
 * Starts one embedded Kafka broker and ClickHouse server for the whole run (unless
 * KAFKA_BROKERS / CLICKHOUSE_URL point at real ones). Tests that inject faults start their own.
 */
export default async function setup(project: TestProject): Promise<() => Promise<void>> {
  const dataDir = await mkdtemp(join(tmpdir(), 'ugc-test-clickhouse-'));
  const stack = await startLocalStack({ dataDir, clickhousePort: 0 });
  project.provide('stackEnv', stack.env);
  return async () => {
    await stack.stop();
    await rm(dataDir, { recursive: true, force: true });
  };
}
