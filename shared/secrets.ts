import type * as z from './zod.ts';
import { env, type Settings } from './config.ts';
import { ConfigError } from './errors.ts';

/**
 * Secrets (JWT key, ClickHouse password, Kafka SCRAM credentials) come from one of three places:
 * a plain variable (offline and tests only), an SSM Parameter Store SecureString, or a Secrets
 * Manager secret. In a deployed stage the environment holds only the parameter name or secret ARN.
 */
export const secretsEnv = {
  // How long a fetched secret is trusted before it is read again (a rotation reaches running containers).
  SECRETS_MAX_AGE_S: env.int(900, 1),
};

/** What a secret reader needs from the configuration, typed from secretsEnv. */
export type SecretsSettings = Settings<typeof secretsEnv>;

/** Where one secret lives. At most one of value / parameterName / secretId may be set. */
export interface SecretSource {
  /** The variable names, for error messages: e.g. `JWT_SECRET`. */
  name: string;
  value?: string | undefined;
  parameterName?: string | undefined;
  secretId?: string | undefined;
}

/** The two stores, narrowed to what is read here; the AWS SDK by default, stubs in tests. */
export interface SecretStores {
  ssm: { get(name: string, options: { maxAge: number; decrypt: true }): Promise<unknown> };
  secretsManager: { get(id: string, options: { maxAge: number }): Promise<unknown> };
}

/** The SDK clients the default stores call; tests pass clients whose `send` is stubbed. */
export interface SecretClients {
  ssm?: import('@aws-sdk/client-ssm').SSMClient;
  secretsManager?: import('@aws-sdk/client-secrets-manager').SecretsManagerClient;
}

/**
 * SSM and Secrets Manager through the AWS SDK v3 (provided by the Lambda runtime), each value
 * kept in memory for `maxAge` seconds. The SDK is imported on first use: a static import, even
 * through Powertools' parameter providers, put ~100-150 ms of SDK loading in every cold start,
 * offline too, where secrets are plain values.
 */
export function awsSecretStores(clients: SecretClients = {}): SecretStores {
  // maxAge: how old a kept value may be for this read (0: read it again now).
  const cache = new Map<string, { value: unknown; fetchedAt: number }>();
  const cached = (key: string, maxAgeS: number, fetch: () => Promise<unknown>) => async () => {
    const hit = cache.get(key);
    if (hit && Date.now() - hit.fetchedAt < maxAgeS * 1000) return hit.value;
    const value = await fetch();
    cache.set(key, { value, fetchedAt: Date.now() });
    return value;
  };
  return {
    ssm: {
      get: (name, { maxAge }) => cached(`ssm:${name}`, maxAge, async () => {
        const { SSMClient, GetParameterCommand } = await import('@aws-sdk/client-ssm');
        clients.ssm ??= new SSMClient({});
        return (await clients.ssm.send(new GetParameterCommand({ Name: name, WithDecryption: true }))).Parameter?.Value;
      })(),
    },
    secretsManager: {
      get: (id, { maxAge }) => cached(`secretsmanager:${id}`, maxAge, async () => {
        const { SecretsManagerClient, GetSecretValueCommand } = await import('@aws-sdk/client-secrets-manager');
        clients.secretsManager ??= new SecretsManagerClient({});
        const secret = await clients.secretsManager.send(new GetSecretValueCommand({ SecretId: id }));
        return secret.SecretString ?? secret.SecretBinary;
      })(),
    },
  };
}

let defaultStores: SecretStores | undefined;

/** Which store a source names; fails at cold start when more than one is set. */
export function secretLocation(source: SecretSource): 'value' | 'ssm' | 'secretsManager' | undefined {
  const set = [source.value, source.parameterName, source.secretId].filter((v) => v !== undefined && v !== '');
  if (set.length > 1) {
    throw new ConfigError(`${source.name}: set only one of ${source.name}, ${source.name}_PARAMETER, ${source.name}_SECRET_ARN`);
  }
  if (source.value) return 'value';
  if (source.parameterName) return 'ssm';
  if (source.secretId) return 'secretsManager';
  return undefined;
}

/**
 * A reader for one secret: the plain value as is, or the stored one fetched on first use and then
 * served from memory for `maxAgeS` (SECRETS_MAX_AGE_S; no default here, so a caller cannot skip it).
 * A failed fetch is not remembered, so the next call retries. `fresh` reads the store again now
 * (the value was refused: it may have been rotated).
 */
export function secretReader(
  source: SecretSource,
  { maxAgeS, stores }: { maxAgeS: number; stores?: SecretStores | undefined },
): (options?: { fresh?: boolean }) => Promise<string> {
  const location = secretLocation(source);
  return async ({ fresh = false } = {}) => {
    const maxAge = fresh ? 0 : maxAgeS;
    if (location === 'value') return source.value!;
    if (location === undefined) throw new ConfigError(`${source.name} is not configured`);
    const store = stores ?? (defaultStores ??= awsSecretStores());
    let stored: unknown;
    try {
      stored = location === 'ssm'
        ? await store.ssm.get(source.parameterName!, { maxAge, decrypt: true })
        : await store.secretsManager.get(source.secretId!, { maxAge });
    } catch (cause) {
      // A store that did not answer is no configuration mistake; no caller tells it apart (the verifier answers 503).
      throw new Error(`${source.name} could not be read from ${location === 'ssm' ? 'SSM' : 'Secrets Manager'}`, { cause });
    }
    if (stored instanceof Uint8Array) stored = new TextDecoder().decode(stored);
    if (typeof stored !== 'string' || stored === '') throw new ConfigError(`${source.name}: the stored value is empty`);
    return stored;
  };
}

/**
 * A stored secret the service it opens can refuse: after `rejected()`, the next `read()` reads the
 * store again (a rotation reaches a running container at once instead of after maxAge), at most
 * every `intervalMs`, so a value that stays wrong does not cost a store read per request. A fresh
 * read that fails falls back to the kept value: the store being down is no reason to fail a request.
 */
export function rereadWhenRejected(read: (options?: { fresh?: boolean }) => Promise<string>, intervalMs = 30_000) {
  let due = false;
  let lastFresh = -Infinity;
  return {
    read(): Promise<string> {
      const fresh = due && Date.now() - lastFresh >= intervalMs;
      if (!fresh) return read();
      due = false;
      lastFresh = Date.now();
      return read({ fresh: true }).catch(() => read());
    },
    rejected(): void {
      due = true;
    },
  };
}

/** A secret stored as JSON, e.g. MSK SCRAM's `{"username","password"}`, parsed with a schema. */
export function jsonSecretReader<T>(read: () => Promise<string>, schema: z.ZodMiniType<T>, name: string): () => Promise<T> {
  return async () => {
    const raw = await read();
    let parsed: unknown;
    try {
      parsed = JSON.parse(raw);
    } catch {
      throw new ConfigError(`${name}: the stored value is not JSON`);
    }
    const result = schema.safeParse(parsed);
    if (!result.success) throw new ConfigError(`${name}: ${result.error.issues.map((i) => `${i.path.join('.')} ${i.message}`).join('; ')}`);
    return result.data;
  };
}
