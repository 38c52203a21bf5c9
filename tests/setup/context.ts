import { randomUUID } from 'node:crypto';
import { inject } from 'vitest';
import type { ClickHouseClient } from '@clickhouse/client';
import { createClickHouse } from '../../shared/clickhouse.ts';
import { migrate } from '../../clickhouse/migrate.ts';

export { freePort } from '../../localstack/ports.ts';

/** The environment of the stack the global setup started. */
export function stackEnv(): Record<string, string> {
  return inject('stackEnv');
}

/** A name no other test file uses, safe as a ClickHouse database or Kafka topic name. */
export function uniqueName(prefix: string): string {
  return `${prefix}_${randomUUID().slice(0, 8)}`;
}

/** A new database with every migration applied, so each test file has its own tables. */
export async function migratedDatabase(clickhouseUrl: string, prefix: string): Promise<{ database: string; client: ClickHouseClient; drop(): Promise<void> }> {
  const database = uniqueName(prefix);
  const settings = { CLICKHOUSE_URL: clickhouseUrl, CLICKHOUSE_USER: 'default', CLICKHOUSE_PASSWORD: '', CLICKHOUSE_DATABASE: database, CLICKHOUSE_REQUEST_TIMEOUT_MS: 30_000 };
  const admin = createClickHouse(settings, 'default');
  const client = createClickHouse(settings);
  await migrate(admin, client, database);
  return {
    database,
    client,
    async drop() {
      await admin.command({ query: `DROP DATABASE IF EXISTS ${database}` });
      await Promise.all([client.close(), admin.close()]);
    },
  };
}

/** Polls `check` until it returns a value other than undefined, or fails after `timeoutMs`. */
export async function eventually<T>(check: () => Promise<T | undefined>, timeoutMs = 15_000, what = 'condition'): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let last: unknown;
  while (Date.now() < deadline) {
    try {
      const value = await check();
      if (value !== undefined) return value;
    } catch (error) {
      last = error;
    }
    await new Promise((r) => setTimeout(r, 200));
  }
  throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}${last ? `: ${String(last)}` : ''}`);
}

/**
 * `read()`'s answer once it equals `expected`, or its last answer after `timeoutMs`, for the
 * assertion to show the difference. For what converges: a view's rows, committed after the events
 * part of the same insert, which another session may see first.
 */
export async function settled<T>(read: () => Promise<T>, expected: unknown, timeoutMs = 20_000): Promise<T> {
  const want = JSON.stringify(expected);
  const deadline = Date.now() + timeoutMs;
  let answer = await read();
  while (JSON.stringify(answer) !== want && Date.now() < deadline) {
    await new Promise((r) => setTimeout(r, 200));
    answer = await read();
  }
  return answer;
}
