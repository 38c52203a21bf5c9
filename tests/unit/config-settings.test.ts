/**
 * One declaration per setting: each setting is declared once, in a zod schema, and every type
 * that carries it is derived from that schema. A function whose schema lacks a setting the shared
 * code reads does not compile (the type checks here run in `npx tsc -p .`, which CI runs), and the
 * value a function runs with is the one its environment gives, or the schema's one default.
 */
import { afterEach, describe, expect, expectTypeOf, it, vi } from 'vitest';
import type { config as ingestConfig } from '../../functions/ingest/config.ts';
import type { config as readerConfig } from '../../functions/reader/config.ts';
import type { config as writerConfig } from '../../functions/writer/config.ts';
import { createConfiguredViewerVerifier, type AuthSettings } from '../../shared/auth.ts';
import { clickHouseEnv, clickHouseWithStoredPassword, type ClickHouseSettings, type StoredClickHouseSettings } from '../../shared/clickhouse.ts';
import type { kafkaEnv, Settings } from '../../shared/config.ts';
import { createKafka, type kafkaAuthEnv, type KafkaSettings } from '../../shared/kafka.ts';
import { secretReader, type SecretsSettings, type SecretStores } from '../../shared/secrets.ts';

// Compile-time proofs: unused on purpose, tsc checks them. Each line fails to compile when the
// schema it names drops the setting (an unused @ts-expect-error is an error too).
function clickHouseWithoutSecretsSettings(settings: ClickHouseSettings) {
  // @ts-expect-error clickHouseEnv alone has no SECRETS_MAX_AGE_S: the stored password would silently be cached 900 s
  return clickHouseWithStoredPassword(settings);
}
function kafkaWithoutAuthSettings(settings: Settings<typeof kafkaEnv>) {
  // @ts-expect-error kafkaEnv without kafkaAuthEnv (SASL, AWS_REGION, SECRETS_MAX_AGE_S) cannot build the client
  return createKafka(settings);
}
function viewerVerifierWithoutSecretsSettings(settings: AuthSettings) {
  // @ts-expect-error the configured verifier reads SECRETS_MAX_AGE_S for a stored JWT secret
  return createConfiguredViewerVerifier(settings);
}
function secretReaderWithoutMaxAge() {
  // @ts-expect-error no default cache age outside the schema
  return secretReader({ name: 'X', parameterName: '/x' }, {});
}
void [clickHouseWithoutSecretsSettings, kafkaWithoutAuthSettings, viewerVerifierWithoutSecretsSettings, secretReaderWithoutMaxAge];

describe('one declaration per setting', () => {
  afterEach(() => {
    vi.unstubAllEnvs();
    vi.resetModules();
  });

  it('gives each function every setting the shared clients it uses read (checked by tsc)', () => {
    expectTypeOf<typeof writerConfig>().toExtend<KafkaSettings & StoredClickHouseSettings>();
    expectTypeOf<typeof ingestConfig>().toExtend<KafkaSettings & AuthSettings & SecretsSettings>();
    expectTypeOf<typeof readerConfig>().toExtend<StoredClickHouseSettings & AuthSettings & SecretsSettings>();
  });

  it('types a setting with a default as always present, and an unset optional one as optional', () => {
    expectTypeOf<StoredClickHouseSettings['SECRETS_MAX_AGE_S']>().toEqualTypeOf<number>();
    expectTypeOf<{ CLICKHOUSE_URL: string }>().not.toExtend<Pick<StoredClickHouseSettings, 'SECRETS_MAX_AGE_S'>>();
    expectTypeOf<KafkaSettings['KAFKA_SASL_MECHANISM']>().toEqualTypeOf<'aws-msk-iam' | 'scram-sha-512' | undefined>();
    expectTypeOf<{ KAFKA_BROKERS: string[] }>().not.toExtend<KafkaSettings>();
    // Derived, so a parallel interface cannot drift: a schema without the setting gives a type without it.
    expectTypeOf<Settings<typeof clickHouseEnv>>().not.toHaveProperty('SECRETS_MAX_AGE_S');
  });

  it.each([
    ['writer', () => import('../../functions/writer/config.ts'), { KAFKA_BROKERS: 'b:9092', CLICKHOUSE_URL: 'http://127.0.0.1:9' }],
    ['ingest', () => import('../../functions/ingest/config.ts'), { KAFKA_BROKERS: 'b:9092', JWT_SECRET: 'x'.repeat(32) }],
    ['reader', () => import('../../functions/reader/config.ts'), { CLICKHOUSE_URL: 'http://127.0.0.1:9', JWT_SECRET: 'x'.repeat(32) }],
  ] as const)('the %s function runs with SECRETS_MAX_AGE_S from its environment, else the one default', async (_name, load, required) => {
    for (const [name, value] of Object.entries(required)) vi.stubEnv(name, value);
    expect((await load()).config.SECRETS_MAX_AGE_S).toBe(900);
    vi.resetModules();
    vi.stubEnv('SECRETS_MAX_AGE_S', '60');
    expect((await load()).config.SECRETS_MAX_AGE_S).toBe(60);
  });

  it('caches a stored ClickHouse password for exactly the configured SECRETS_MAX_AGE_S', async () => {
    const ssm = vi.fn(async () => 'stored-password');
    const stores: SecretStores = { ssm: { get: ssm }, secretsManager: { get: async () => { throw new Error('unused'); } } };
    for (const [maxAge, expected] of [[undefined, 900], ['45', 45]] as const) {
      const env = { CLICKHOUSE_URL: 'http://127.0.0.1:9', CLICKHOUSE_PASSWORD_PARAMETER: '/ugc/clickhouse', ...(maxAge ? { SECRETS_MAX_AGE_S: maxAge } : {}) };
      const { config } = await importWithEnv(env);
      const client = clickHouseWithStoredPassword(config, { stores });
      await (await client()).close();
      expect(ssm).toHaveBeenLastCalledWith('/ugc/clickhouse', { maxAge: expected, decrypt: true });
    }
  });
});

/** The writer's config module, loaded afresh with `env` (plus the brokers it needs) as the process environment. */
async function importWithEnv(env: Record<string, string>) {
  vi.resetModules();
  for (const [name, value] of Object.entries({ KAFKA_BROKERS: 'b:9092', ...env })) vi.stubEnv(name, value);
  return import('../../functions/writer/config.ts');
}
