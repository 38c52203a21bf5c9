import { z } from 'zod';
import type { ClickHouseClient } from '@clickhouse/client';
import { createClickHouse, type ClickHouseSettings } from './clickhouse.ts';
import { env } from './config.ts';

/**
 * Secrets (JWT key, ClickHouse password, Kafka SCRAM credentials) come from one of three places:
 * a plain variable (offline and tests only), an SSM Parameter Store SecureString, or a Secrets
 * Manager secret. In a deployed stage the environment holds only the parameter name or secret ARN.
 */
export const secretsEnv = {
  // How long a fetched secret is trusted before it is read again (a rotation reaches running containers).
  SECRETS_MAX_AGE_S: env.int(900, 1),
};

/** Where one secret lives. At most one of value / parameterName / secretId may be set. */
export interface SecretSource {
  /** The variable names, for error messages: e.g. `JWT_SECRET`. */
  name: string;
  value?: string | undefined;
  parameterName?: string | undefined;
  secretId?: string | undefined;
}

/** The two stores, narrowed to what is read here; Powertools' providers by default, stubs in tests. */
export interface SecretStores {
  ssm: { get(name: string, options: { maxAge: number; decrypt: true }): Promise<unknown> };
  secretsManager: { get(id: string, options: { maxAge: number }): Promise<unknown> };
}

/** Raised when a secret is misconfigured or cannot be read; never carries the value. */
export class SecretError extends Error {
  override readonly name = 'SecretError';
}

let defaultStores: Promise<SecretStores> | undefined;

/** Powertools providers, loaded on first use so offline runs never load the AWS SDK. */
function powertoolsStores(): Promise<SecretStores> {
  defaultStores ??= (async () => {
    const [{ SSMProvider }, { SecretsProvider }] = await Promise.all([
      import('@aws-lambda-powertools/parameters/ssm'),
      import('@aws-lambda-powertools/parameters/secrets'),
    ]);
    const ssm = new SSMProvider();
    const secretsManager = new SecretsProvider();
    return {
      ssm: { get: (name, options) => ssm.get(name, options) },
      secretsManager: { get: (id, options) => secretsManager.get(id, options) },
    };
  })();
  return defaultStores;
}

/** Which store a source names; fails at cold start when more than one is set. */
export function secretLocation(source: SecretSource): 'value' | 'ssm' | 'secretsManager' | undefined {
  const set = [source.value, source.parameterName, source.secretId].filter((v) => v !== undefined && v !== '');
  if (set.length > 1) {
    throw new SecretError(`${source.name}: set only one of ${source.name}, ${source.name}_PARAMETER, ${source.name}_SECRET_ARN`);
  }
  if (source.value) return 'value';
  if (source.parameterName) return 'ssm';
  if (source.secretId) return 'secretsManager';
  return undefined;
}

/**
 * A reader for one secret: the plain value as is, or the stored one fetched on first use and then
 * served from Powertools' in-memory cache for `maxAgeS` (once per container, in practice).
 * A failed fetch is not remembered, so the next call retries.
 */
export function secretReader(
  source: SecretSource,
  { maxAgeS = 900, stores }: { maxAgeS?: number; stores?: SecretStores } = {},
): () => Promise<string> {
  const location = secretLocation(source);
  return async () => {
    if (location === 'value') return source.value!;
    if (location === undefined) throw new SecretError(`${source.name} is not configured`);
    const store = stores ?? (await powertoolsStores());
    let stored: unknown;
    try {
      stored = location === 'ssm'
        ? await store.ssm.get(source.parameterName!, { maxAge: maxAgeS, decrypt: true })
        : await store.secretsManager.get(source.secretId!, { maxAge: maxAgeS });
    } catch (cause) {
      throw new SecretError(`${source.name} could not be read from ${location === 'ssm' ? 'SSM' : 'Secrets Manager'}`, { cause });
    }
    if (stored instanceof Uint8Array) stored = new TextDecoder().decode(stored);
    if (typeof stored !== 'string' || stored === '') throw new SecretError(`${source.name}: the stored value is empty`);
    return stored;
  };
}

/** A secret stored as JSON, e.g. MSK SCRAM's `{"username","password"}`, parsed with a schema. */
export function jsonSecretReader<T>(read: () => Promise<string>, schema: z.ZodType<T>, name: string): () => Promise<T> {
  return async () => {
    const raw = await read();
    let parsed: unknown;
    try {
      parsed = JSON.parse(raw);
    } catch {
      throw new SecretError(`${name}: the stored value is not JSON`);
    }
    const result = schema.safeParse(parsed);
    if (!result.success) throw new SecretError(`${name}: ${result.error.issues.map((i) => `${i.path.join('.')} ${i.message}`).join('; ')}`);
    return result.data;
  };
}

/** ClickHouse settings plus where the password is stored in a deployed stage. */
export interface StoredClickHouseSettings extends ClickHouseSettings {
  CLICKHOUSE_PASSWORD_PARAMETER?: string | undefined;
  CLICKHOUSE_PASSWORD_SECRET_ARN?: string | undefined;
  SECRETS_MAX_AGE_S?: number | undefined;
}

/**
 * The ClickHouse client, created on first use: with CLICKHOUSE_PASSWORD offline, or with the
 * password read from SSM / Secrets Manager (cached). A rotated password builds a new client.
 */
export function clickHouseWithStoredPassword(settings: StoredClickHouseSettings, { stores }: { stores?: SecretStores } = {}): () => Promise<ClickHouseClient> {
  const source = {
    name: 'CLICKHOUSE_PASSWORD',
    value: settings.CLICKHOUSE_PASSWORD,
    parameterName: settings.CLICKHOUSE_PASSWORD_PARAMETER,
    secretId: settings.CLICKHOUSE_PASSWORD_SECRET_ARN,
  };
  const stored = secretLocation(source) === 'ssm' || secretLocation(source) === 'secretsManager';
  const read = secretReader(source, { maxAgeS: settings.SECRETS_MAX_AGE_S, stores });
  let current: { password: string; client: ClickHouseClient } | undefined;
  return async () => {
    const password = stored ? await read() : settings.CLICKHOUSE_PASSWORD;
    if (current?.password !== password) {
      void current?.client.close();
      current = { password, client: createClickHouse({ ...settings, CLICKHOUSE_PASSWORD: password }) };
    }
    return current.client;
  };
}
