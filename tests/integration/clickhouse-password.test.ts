import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { SecretsManagerClient } from '@aws-sdk/client-secrets-manager';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { startEmbeddedClickHouse, type EmbeddedClickHouse } from '../../localstack/clickhouse/embedded.ts';
import { clickHouseWithStoredPassword } from '../../shared/clickhouse.ts';
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
});
