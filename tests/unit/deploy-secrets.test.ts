import { SSMClient } from '@aws-sdk/client-ssm';
import { describe, expect, it, vi } from 'vitest';
import { createConfiguredViewerVerifier } from '../../shared/auth.ts';
import { HttpError } from '../../shared/errors.ts';
import { loadConfig } from '../../shared/config.ts';
import { awsSecretStores, rereadWhenRejected, secretReader, secretsEnv, type SecretStores } from '../../shared/secrets.ts';
import { signDevToken } from '../../localstack/dev-token.ts';

const issuer = 'https://auth.cinema.example.com';
const audience = 'ugc-ingest';
const settings = { JWT_USER_CLAIM: 'sub', JWT_CLOCK_TOLERANCE_S: 5, JWT_CACHE_SIZE: 10, JWT_ISSUER: issuer, JWT_AUDIENCE: audience, SECRETS_MAX_AGE_S: 900 };
// SECRETS_MAX_AGE_S's one default, from its schema.
const { SECRETS_MAX_AGE_S: defaultMaxAgeS } = loadConfig(secretsEnv, {});

function stubStores(values: { ssm?: Record<string, string>; secrets?: Record<string, string> }) {
  const ssm = vi.fn(async (name: string) => { const v = values.ssm?.[name]; if (v === undefined) throw new Error('ParameterNotFound'); return v; });
  const secretsManager = vi.fn(async (id: string) => { const v = values.secrets?.[id]; if (v === undefined) throw new Error('ResourceNotFoundException'); return v; });
  return { stores: { ssm: { get: ssm }, secretsManager: { get: secretsManager } } satisfies SecretStores, ssm, secretsManager };
}

describe('secrets: plain offline, from SSM or Secrets Manager when deployed', () => {
  it('uses the plain value when no store is named (offline, tests), without touching AWS', async () => {
    const { stores, ssm, secretsManager } = stubStores({});
    expect(await secretReader({ name: 'JWT_SECRET', value: 'plain' }, { stores, maxAgeS: defaultMaxAgeS })()).toBe('plain');
    expect(ssm).not.toHaveBeenCalled();
    expect(secretsManager).not.toHaveBeenCalled();
  });

  it('reads an SSM SecureString decrypted, and a Secrets Manager secret, with the cache age', async () => {
    const { stores, ssm, secretsManager } = stubStores({ ssm: { '/ugc/jwt': 'from-ssm' }, secrets: { 'arn:sm:ch': 'from-secrets-manager' } });
    expect(await secretReader({ name: 'JWT_SECRET', parameterName: '/ugc/jwt' }, { stores, maxAgeS: 600 })()).toBe('from-ssm');
    expect(ssm).toHaveBeenCalledWith('/ugc/jwt', { maxAge: 600, decrypt: true });
    expect(await secretReader({ name: 'CLICKHOUSE_PASSWORD', secretId: 'arn:sm:ch' }, { stores, maxAgeS: defaultMaxAgeS })()).toBe('from-secrets-manager');
    expect(secretsManager).toHaveBeenCalledWith('arn:sm:ch', { maxAge: 900 });
  });

  it('refuses two sources for one secret, naming the variables', () => {
    expect(() => secretReader({ name: 'JWT_SECRET', value: 'plain', parameterName: '/ugc/jwt' }, { maxAgeS: defaultMaxAgeS }))
      .toThrow('JWT_SECRET: set only one of JWT_SECRET, JWT_SECRET_PARAMETER, JWT_SECRET_SECRET_ARN');
  });

  it('wraps a store failure without the value, and retries on the next call', async () => {
    const values: Record<string, string> = {};
    const { stores, ssm } = stubStores({ ssm: values });
    const read = secretReader({ name: 'JWT_SECRET', parameterName: '/ugc/jwt' }, { stores, maxAgeS: defaultMaxAgeS });
    await expect(read()).rejects.toThrow(new Error('JWT_SECRET could not be read from SSM'));
    values['/ugc/jwt'] = 'now-there';
    expect(await read()).toBe('now-there');
    expect(ssm).toHaveBeenCalledTimes(2);
  });

  it('with the AWS SDK: one GetParameter per container, then the cache until maxAge', async () => {
    const client = new SSMClient({ region: 'eu-west-1', credentials: { accessKeyId: 'AKIAIOSFODNN7EXAMPLE', secretAccessKey: 'x' } });
    const send = vi.fn(async () => ({ Parameter: { Name: '/ugc/jwt', Value: 'cached-secret-value', Type: 'SecureString' } }));
    client.send = send as unknown as typeof client.send;
    const stores = awsSecretStores({ ssm: client });
    const read = secretReader({ name: 'JWT_SECRET', parameterName: '/ugc/jwt' }, { stores, maxAgeS: 900 });
    expect(await read()).toBe('cached-secret-value');
    expect(await read()).toBe('cached-secret-value');
    expect(send).toHaveBeenCalledTimes(1);
    const command = (send.mock.calls[0] as unknown[])[0] as { input: unknown };
    expect(command.input).toEqual({ Name: '/ugc/jwt', WithDecryption: true });
    // A rotation reaches a running container once the cached value is older than maxAge.
    vi.useFakeTimers({ now: Date.now() + 901_000, toFake: ['Date'] });
    try {
      expect(await read()).toBe('cached-secret-value');
      expect(send).toHaveBeenCalledTimes(2);
    } finally {
      vi.useRealTimers();
    }
  });
});

describe('viewer tokens verified with a secret from the store', () => {
  const secret = 'a-stored-jwt-secret-of-sufficient-length';

  it('verifies with the stored secret, read once for many requests', async () => {
    const readSecret = vi.fn(async () => secret);
    const verify = createConfiguredViewerVerifier({ ...settings, JWT_SECRET_PARAMETER: '/ugc/jwt' }, { readSecret });
    for (const user of ['viewer-1', 'viewer-2']) {
      expect((await verify(`Bearer ${await signDevToken(user, { secret, issuer, audience })}`)).userId).toBe(user);
    }
    await expect(verify(`Bearer ${await signDevToken('v', { secret: 'another-secret-of-sufficient-length', issuer, audience })}`)).rejects.toMatchObject({ statusCode: 401 });
    // Once per request (the store keeps the value), and once more for the token with another signature: a rotation?
    expect(readSecret).toHaveBeenCalledTimes(4);
  });

  it('follows a rotated secret', async () => {
    let current = secret;
    const verify = createConfiguredViewerVerifier({ ...settings, JWT_SECRET_SECRET_ARN: 'arn:sm:jwt' }, { readSecret: async () => current });
    await verify(`Bearer ${await signDevToken('v', { secret, issuer, audience })}`);
    current = 'the-rotated-secret-of-sufficient-length';
    expect((await verify(`Bearer ${await signDevToken('w', { secret: current, issuer, audience })}`)).userId).toBe('w');
    await expect(verify(`Bearer ${await signDevToken('x', { secret, issuer, audience })}`)).rejects.toMatchObject({ statusCode: 401 });
  });

  it('follows a rotation at once: a token signed with a secret it does not know makes it read the store again, at most every 30 s', async () => {
    const rotated = 'the-rotated-secret-of-sufficient-length';
    let inStore = secret;
    let kept = secret;
    // As the real store: a kept value until a fresh read.
    const readSecret = vi.fn(async ({ fresh = false }: { fresh?: boolean } = {}) => { if (fresh) kept = inStore; return kept; });
    const freshReads = () => readSecret.mock.calls.filter(([options]) => options?.fresh).length;
    const verify = createConfiguredViewerVerifier({ ...settings, JWT_SECRET_PARAMETER: '/ugc/jwt' }, { readSecret });
    expect((await verify(`Bearer ${await signDevToken('before', { secret, issuer, audience })}`)).userId).toBe('before');
    inStore = rotated;
    expect((await verify(`Bearer ${await signDevToken('after', { secret: rotated, issuer, audience })}`)).userId).toBe('after');
    expect(freshReads()).toBe(1);
    // Forged tokens do not cost a store read each.
    for (let i = 0; i < 5; i++) {
      await expect(verify(`Bearer ${await signDevToken('x', { secret: 'a-forged-secret-of-sufficient-length', issuer, audience })}`)).rejects.toMatchObject({ statusCode: 401 });
    }
    expect(freshReads()).toBe(1);
  });

  it('keeps the value it has when the fresh read after a refusal fails (the store being down fails no request)', async () => {
    const read = vi.fn(async ({ fresh = false }: { fresh?: boolean } = {}) => { if (fresh) throw new Error('SSM throttled'); return secret; });
    const stored = rereadWhenRejected(read);
    stored.rejected();
    expect(await stored.read()).toBe(secret);
    expect(read.mock.calls.map(([options]) => Boolean(options?.fresh))).toEqual([true, false]);
  });

  it('answers 503 auth_keys_unavailable when the store cannot be read', async () => {
    const verify = createConfiguredViewerVerifier({ ...settings, JWT_SECRET_PARAMETER: '/ugc/jwt' }, { readSecret: async () => { throw new Error('JWT_SECRET could not be read from SSM'); } });
    const error = await verify(`Bearer ${await signDevToken('v', { secret, issuer, audience })}`).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(HttpError);
    expect(error).toMatchObject({ statusCode: 503, code: 'auth_keys_unavailable' });
  });

  it('refuses a deployed key source without issuer and audience checks, and a token for another audience', async () => {
    const { JWT_ISSUER: _i, JWT_AUDIENCE: _a, ...unchecked } = settings;
    expect(() => createConfiguredViewerVerifier({ ...unchecked, JWT_SECRET_PARAMETER: '/ugc/jwt' })).toThrow(/JWT_ISSUER and JWT_AUDIENCE must be set/);
    expect(() => createConfiguredViewerVerifier({ ...unchecked, JWT_JWKS_URL: 'https://auth.cinema.example.com/jwks' })).toThrow(/JWT_ISSUER and JWT_AUDIENCE/);
    const verify = createConfiguredViewerVerifier({ ...settings, JWT_SECRET_PARAMETER: '/ugc/jwt' }, { readSecret: async () => secret });
    await expect(verify(`Bearer ${await signDevToken('v', { secret, issuer, audience: 'another-app' })}`)).rejects.toMatchObject({ statusCode: 401 });
  });

  it('refuses a plain secret and a stored one together', () => {
    expect(() => createConfiguredViewerVerifier({ ...settings, JWT_SECRET: secret, JWT_SECRET_PARAMETER: '/ugc/jwt' })).toThrow(/set only one/);
  });
});
