import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { SecretsManagerClient } from '@aws-sdk/client-secrets-manager';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { startEmbeddedClickHouse, type EmbeddedClickHouse } from '../../localstack/clickhouse/embedded.ts';
import { Readable } from 'node:stream';
import { clickHouseWithStoredPassword, createClickHouse, isAuthenticationFailure } from '../../shared/clickhouse.ts';
import { awsSecretStores } from '../../shared/secrets.ts';
import { freePort } from '../setup/context.ts';

// A deployed writer or reader keeps its ClickHouse password (from Secrets Manager) for 15 minutes.
// When ops rotate it, ClickHouse refuses the kept one: the function must read the new one then,
// not fail every batch or request until the cache ages.
let clickhouse: EmbeddedClickHouse;
let dataDir: string;

beforeAll(async () => {
  dataDir = await mkdtemp(join(tmpdir(), 'ugc-password-test-'));
  clickhouse = await startEmbeddedClickHouse({ dataDir, port: await freePort(), user: 'writer', password: 'new-password' });
}, 60_000);

afterAll(async () => {
  await clickhouse?.stop();
  await rm(dataDir, { recursive: true, force: true });
});

/** The client a deployed function builds, with its password in a Secrets Manager that answers `inStore()`. */
function withPasswordInSecretsManager(inStore: () => string) {
  const secretsManager = new SecretsManagerClient({ region: 'eu-west-1', credentials: { accessKeyId: 'AKIAIOSFODNN7EXAMPLE', secretAccessKey: 'x' } });
  const send = vi.fn(async () => ({ SecretString: inStore() }));
  secretsManager.send = send as unknown as typeof secretsManager.send;
  const getClient = clickHouseWithStoredPassword({
    CLICKHOUSE_URL: clickhouse.url, CLICKHOUSE_USER: 'writer', CLICKHOUSE_PASSWORD: '', CLICKHOUSE_DATABASE: 'default',
    CLICKHOUSE_REQUEST_TIMEOUT_MS: 5_000, CLICKHOUSE_PASSWORD_SECRET_ARN: 'arn:aws:secretsmanager:eu-west-1:1:secret:ch', SECRETS_MAX_AGE_S: 900,
  }, { stores: awsSecretStores({ secretsManager }) });
  return { getClient, send };
}

describe('a ClickHouse password kept from Secrets Manager', () => {
  it('is read again when ClickHouse refuses it, and at most every 30 s while it stays wrong', async () => {
    let inStore = 'old-password';
    const { getClient, send } = withPasswordInSecretsManager(() => inStore);
    /** One request as the functions make them: an error goes to `rejected`. */
    const request = async () => {
      try {
        await (await getClient()).query({ query: 'SELECT 1', format: 'JSONEachRow' });
        return 'ok';
      } catch (error) {
        getClient.rejected(error);
        return String((error as { code?: unknown }).code);
      }
    };

    // The container read the password before the rotation; ClickHouse already has the new one.
    expect(await request()).toBe('516');
    inStore = 'new-password';
    expect(await request()).toBe('ok');
    expect(send).toHaveBeenCalledTimes(2);
    expect(await request()).toBe('ok');
    expect(send).toHaveBeenCalledTimes(2); // kept again

    // Another refusal soon after that read does not read the store at once (a wrong password
    // that stays wrong must not cost a store read per request): at most one read per 30 s.
    getClient.rejected(Object.assign(new Error('Authentication failed'), { code: '516' }));
    expect(await request()).toBe('ok');
    expect(send).toHaveBeenCalledTimes(2);
    vi.useFakeTimers({ now: Date.now() + 31_000, toFake: ['Date'] });
    try {
      expect(await request()).toBe('ok');
      expect(send).toHaveBeenCalledTimes(3);
    } finally {
      vi.useRealTimers();
    }
  });

  it('does not read the store again for other failures', async () => {
    const { getClient, send } = withPasswordInSecretsManager(() => 'new-password');
    const error = await (await getClient()).query({ query: 'SELECT * FROM no_such_table' }).catch((e: unknown) => e);
    expect((error as { code?: string }).code).toBe('60');
    getClient.rejected(error);
    await getClient();
    expect(send).toHaveBeenCalledTimes(1);
  });

  it('is seen as refused on the writer’s streamed insert too: ClickHouse answers 516 before the body ends, never a bare broken connection', async () => {
    const settings = { CLICKHOUSE_URL: clickhouse.url, CLICKHOUSE_USER: 'writer', CLICKHOUSE_DATABASE: 'default', CLICKHOUSE_REQUEST_TIMEOUT_MS: 10_000 };
    const good = createClickHouse({ ...settings, CLICKHOUSE_PASSWORD: 'new-password' });
    const kept = createClickHouse({ ...settings, CLICKHOUSE_PASSWORD: 'old-password' });
    try {
      await good.command({ query: 'CREATE TABLE IF NOT EXISTS streamed (s String) ENGINE = MergeTree ORDER BY s' });
      // 12 MB a try, in 64 KB pieces as the writer sends them: the refusal comes while most of it is unsent.
      const body = () => Readable.from((function* () { for (let i = 0; i < 200; i++) yield `${JSON.stringify(['x'.repeat(300)])}\n`.repeat(200); })(), { objectMode: false });
      const outcomes: string[] = [];
      for (let i = 0; i < 10; i++) {
        const error = await kept.exec({ query: 'INSERT INTO streamed FORMAT JSONCompactEachRow', values: body(), clickhouse_settings: { wait_end_of_query: 1 } })
          .then(({ stream }) => { stream.destroy(); return undefined; }, (e: unknown) => e);
        outcomes.push(isAuthenticationFailure(error) ? '516' : String((error as { code?: unknown } | undefined)?.code ?? 'accepted'));
      }
      expect(outcomes).toEqual(Array(10).fill('516'));
    } finally {
      await Promise.all([good.close(), kept.close()]);
    }
  });
});
