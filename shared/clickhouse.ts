import { createClient, type ClickHouseClient } from '@clickhouse/client';
import { env, type Settings } from './config.ts';
import { rereadWhenRejected, secretLocation, secretReader, secretsEnv, type SecretStores } from './secrets.ts';

/** ClickHouse settings every function that touches ClickHouse reads the same way. */
export const clickHouseEnv = {
  CLICKHOUSE_URL: env.url(),
  CLICKHOUSE_USER: env.string('default'),
  CLICKHOUSE_PASSWORD: env.string(''),
  CLICKHOUSE_DATABASE: env.string('ugc'),
  CLICKHOUSE_REQUEST_TIMEOUT_MS: env.int(20_000, 1),
};

/** The settings createClickHouse takes, typed from clickHouseEnv. */
export type ClickHouseSettings = Settings<typeof clickHouseEnv>;

/** Deployed stages: where the ClickHouse password is stored (SSM Parameter Store or Secrets Manager), never the value. */
export const storedClickHouseEnv = {
  ...clickHouseEnv,
  CLICKHOUSE_PASSWORD_PARAMETER: env.parameterName(),
  CLICKHOUSE_PASSWORD_SECRET_ARN: env.optionalString(),
  ...secretsEnv,
};

/** ClickHouse settings plus where the password is stored in a deployed stage, typed from storedClickHouseEnv. */
export type StoredClickHouseSettings = Settings<typeof storedClickHouseEnv>;

/**
 * A client for the configured server; the same code path for embedded, compose and cloud.
 * `longRequestsMs`: for statements that may run for minutes (migrations' backfills and projections):
 * at least that timeout, and progress headers so no proxy closes the quiet connection meanwhile.
 */
export function createClickHouse(settings: ClickHouseSettings, database = settings.CLICKHOUSE_DATABASE, { longRequestsMs }: { longRequestsMs?: number } = {}): ClickHouseClient {
  return createClient({
    url: settings.CLICKHOUSE_URL,
    username: settings.CLICKHOUSE_USER,
    password: settings.CLICKHOUSE_PASSWORD,
    database,
    request_timeout: Math.max(settings.CLICKHOUSE_REQUEST_TIMEOUT_MS, longRequestsMs ?? 0),
    clickhouse_settings: {
      date_time_input_format: 'best_effort',
      ...(longRequestsMs ? { send_progress_in_http_headers: 1, http_headers_progress_interval_ms: '10000' } : {}),
    },
  });
}

/** ClickHouse refused the credentials (AUTHENTICATION_FAILED; UNKNOWN_USER and WRONG_PASSWORD before 22.x). */
export function isAuthenticationFailure(error: unknown): boolean {
  return ['516', '192', '193'].includes(String((error as { code?: unknown } | null | undefined)?.code));
}

/** A ClickHouse client getter that learns when ClickHouse refused its password. */
export interface StoredPasswordClickHouse {
  (): Promise<ClickHouseClient>;
  /** Pass every error of a request: after an authentication failure the next call reads the password again. */
  rejected(error: unknown): void;
}

/**
 * The ClickHouse client, created on first use: with CLICKHOUSE_PASSWORD offline, or with the
 * password read from SSM / Secrets Manager (cached; read again when ClickHouse refuses it, which is
 * how a rotation reaches a running container before the cache ages). A new password builds a new client.
 */
export function clickHouseWithStoredPassword(settings: StoredClickHouseSettings, { stores }: { stores?: SecretStores } = {}): StoredPasswordClickHouse {
  const source = {
    name: 'CLICKHOUSE_PASSWORD',
    value: settings.CLICKHOUSE_PASSWORD,
    parameterName: settings.CLICKHOUSE_PASSWORD_PARAMETER,
    secretId: settings.CLICKHOUSE_PASSWORD_SECRET_ARN,
  };
  const stored = secretLocation(source) === 'ssm' || secretLocation(source) === 'secretsManager';
  const storedPassword = rereadWhenRejected(secretReader(source, { maxAgeS: settings.SECRETS_MAX_AGE_S, stores }));
  let current: { password: string; client: ClickHouseClient } | undefined;
  const client = async () => {
    const password = stored ? await storedPassword.read() : settings.CLICKHOUSE_PASSWORD;
    if (current?.password !== password) {
      void current?.client.close();
      current = { password, client: createClickHouse({ ...settings, CLICKHOUSE_PASSWORD: password }) };
    }
    return current.client;
  };
  return Object.assign(client, {
    rejected(error: unknown) {
      if (stored && isAuthenticationFailure(error)) storedPassword.rejected();
    },
  });
}
