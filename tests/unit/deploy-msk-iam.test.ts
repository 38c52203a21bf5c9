import type { AuthenticationProviderArgs } from 'kafkajs';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { kafkaEnv, loadConfig } from '../../shared/config.ts';
import { kafkaAuthEnv, kafkaSasl, mskIamTokenProvider } from '../../shared/kafka.ts';

const kafkaSettings = (env: Record<string, string>) => loadConfig({ ...kafkaEnv, ...kafkaAuthEnv }, env);

// Static test credentials (AWS's documentation example keys): the signer needs no network with them.
const credentials = async () => ({ accessKeyId: 'AKIAIOSFODNN7EXAMPLE', secretAccessKey: 'wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY' });

/** The MSK IAM token is a base64url SigV4-presigned URL. */
function decodeToken(token: string): URL {
  return new URL(Buffer.from(token, 'base64url').toString('utf8'));
}

afterEach(() => { vi.useRealTimers(); });

describe('MSK IAM authentication (SASL/OAUTHBEARER, aws-msk-iam-sasl-signer-js)', () => {
  it('makes a token: a presigned kafka-cluster:Connect URL for the region, signed with the given credentials', async () => {
    vi.useFakeTimers({ now: new Date('2025-05-01T12:00:00Z'), toFake: ['Date'] });
    const { value } = await mskIamTokenProvider('eu-west-1', credentials)();
    expect(value).toMatch(/^[A-Za-z0-9_-]+$/);
    const url = decodeToken(value);
    expect(url.protocol).toBe('https:');
    expect(url.host).toBe('kafka.eu-west-1.amazonaws.com');
    expect(url.searchParams.get('Action')).toBe('kafka-cluster:Connect');
    expect(url.searchParams.get('X-Amz-Algorithm')).toBe('AWS4-HMAC-SHA256');
    expect(url.searchParams.get('X-Amz-Credential')).toBe('AKIAIOSFODNN7EXAMPLE/20250501/eu-west-1/kafka-cluster/aws4_request');
    expect(url.searchParams.get('X-Amz-Date')).toBe('20250501T120000Z');
    expect(url.searchParams.get('X-Amz-Expires')).toBe('900');
    expect(url.searchParams.get('X-Amz-Signature')).toMatch(/^[0-9a-f]{64}$/);
    expect(url.searchParams.get('User-Agent')).toMatch(/aws-msk-iam-sasl-signer-js/);
  });

  it('signs deterministically: the same credentials and time give the same token, another secret another signature', async () => {
    vi.useFakeTimers({ now: new Date('2025-05-01T12:00:00Z'), toFake: ['Date'] });
    const a = decodeToken((await mskIamTokenProvider('eu-west-1', credentials)()).value);
    const b = decodeToken((await mskIamTokenProvider('eu-west-1', credentials)()).value);
    const other = decodeToken((await mskIamTokenProvider('eu-west-1', async () => ({ ...(await credentials()), secretAccessKey: 'another-secret' }))()).value);
    expect(a.searchParams.get('X-Amz-Signature')).toBe(b.searchParams.get('X-Amz-Signature'));
    expect(other.searchParams.get('X-Amz-Signature')).not.toBe(a.searchParams.get('X-Amz-Signature'));
  });

  it('carries the session token of a Lambda role', async () => {
    const { value } = await mskIamTokenProvider('us-east-1', async () => ({ ...(await credentials()), sessionToken: 'session-token-from-the-role' }))();
    expect(decodeToken(value).searchParams.get('X-Amz-Security-Token')).toBe('session-token-from-the-role');
  });

  it('is what kafkajs gets for KAFKA_SASL_MECHANISM=aws-msk-iam; no SASL without a mechanism (the embedded Kafka, compose)', async () => {
    const base = kafkaSettings({ KAFKA_BROKERS: 'b-1:9098', AWS_REGION: 'eu-west-1' });
    expect(kafkaSasl(base)).toBeUndefined();
    const sasl = kafkaSasl({ ...base, KAFKA_SASL_MECHANISM: 'aws-msk-iam' }, { credentials });
    expect(sasl).toMatchObject({ mechanism: 'oauthbearer' });
    const { value } = await (sasl as { oauthBearerProvider: () => Promise<{ value: string }> }).oauthBearerProvider();
    expect(decodeToken(value).host).toBe('kafka.eu-west-1.amazonaws.com');
  });
});

describe('SASL/SCRAM-SHA-512 with credentials from Secrets Manager', () => {
  it('reads the secret when a connection authenticates and starts the SCRAM exchange with its username', async () => {
    const readScram = vi.fn(async () => ({ username: 'ugc-writer', password: 'scram-password' }));
    const sasl = kafkaSasl(
      kafkaSettings({ KAFKA_BROKERS: 'b-1:9096', KAFKA_SASL_MECHANISM: 'scram-sha-512' }),
      { readScram },
    ) as { mechanism: string; authenticationProvider: (args: AuthenticationProviderArgs) => { authenticate(): Promise<void> } };
    expect(sasl.mechanism).toBe('scram-sha-512');
    expect(readScram).not.toHaveBeenCalled();

    let firstMessage = '';
    const stop = new Error('stop after the client-first message');
    const saslAuthenticate = (async ({ request }: { request: { encode(): Promise<Buffer> | Buffer } }) => {
      firstMessage = Buffer.from(await request.encode()).toString('utf8');
      throw stop;
    }) as unknown as AuthenticationProviderArgs['saslAuthenticate'];
    const logger = { info() {}, error() {}, warn() {}, debug() {}, namespace() { return logger; }, setLogLevel() {} };
    await expect(sasl.authenticationProvider({ host: 'b-1', port: 9096, logger: logger as unknown as AuthenticationProviderArgs['logger'], saslAuthenticate })
      .authenticate()).rejects.toThrow();
    expect(readScram).toHaveBeenCalledTimes(1);
    expect(firstMessage).toContain('n=ugc-writer,r=');
    expect(firstMessage).not.toContain('scram-password');
  });

  it('needs the secret ARN', () => {
    expect(() => kafkaSasl(kafkaSettings({ KAFKA_BROKERS: 'b', KAFKA_SASL_MECHANISM: 'scram-sha-512' })))
      .toThrow(/KAFKA_SASL_SECRET_ARN/);
  });
});
