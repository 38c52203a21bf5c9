import { createClient, type ClickHouseClient } from '@clickhouse/client';
import { env } from './config.ts';

/** ClickHouse settings every function that touches ClickHouse reads the same way. */
export const clickHouseEnv = {
  CLICKHOUSE_URL: env.url(),
  CLICKHOUSE_USER: env.string('default'),
  CLICKHOUSE_PASSWORD: env.string(''),
  CLICKHOUSE_DATABASE: env.string('ugc'),
  CLICKHOUSE_REQUEST_TIMEOUT_MS: env.int(20_000, 1),
};

export interface ClickHouseSettings {
  CLICKHOUSE_URL: string;
  CLICKHOUSE_USER: string;
  CLICKHOUSE_PASSWORD: string;
  CLICKHOUSE_DATABASE: string;
  CLICKHOUSE_REQUEST_TIMEOUT_MS: number;
}

/** A client for the configured server; the same code path for embedded, compose and cloud. */
export function createClickHouse(settings: ClickHouseSettings, database = settings.CLICKHOUSE_DATABASE): ClickHouseClient {
  return createClient({
    url: settings.CLICKHOUSE_URL,
    username: settings.CLICKHOUSE_USER,
    password: settings.CLICKHOUSE_PASSWORD,
    database,
    request_timeout: settings.CLICKHOUSE_REQUEST_TIMEOUT_MS,
    clickhouse_settings: { date_time_input_format: 'best_effort' },
  });
}
