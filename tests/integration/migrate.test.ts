import { afterAll, describe, expect, it } from 'vitest';
import { createClickHouse } from '../../shared/clickhouse.ts';
import { migrate, readMigrations, MigrationChangedError } from '../../clickhouse/migrate.ts';
import { stackEnv, uniqueName } from '../setup/context.ts';

const url = stackEnv().CLICKHOUSE_URL!;
const database = uniqueName('migrate');
const settings = { CLICKHOUSE_URL: url, CLICKHOUSE_USER: 'default', CLICKHOUSE_PASSWORD: '', CLICKHOUSE_DATABASE: database, CLICKHOUSE_REQUEST_TIMEOUT_MS: 30_000 };
const admin = createClickHouse(settings, 'default');
const db = createClickHouse(settings);

afterAll(async () => {
  await admin.command({ query: `DROP DATABASE IF EXISTS ${database}` });
  await Promise.all([admin.close(), db.close()]);
});

describe('clickhouse migrations', () => {
  it('applies every migration once, records it, and is idempotent', async () => {
    const all = await readMigrations();
    expect(await migrate(admin, db, database)).toEqual(all.map((m) => m.version));
    expect(await migrate(admin, db, database)).toEqual([]);
    const tables = await (await db.query({ query: 'SELECT name FROM system.tables WHERE database = {d:String} ORDER BY name', query_params: { d: database }, format: 'JSONEachRow' })).json<{ name: string }>();
    expect(tables.map((t) => t.name)).toEqual(expect.arrayContaining(['events', 'film_progress_latest', 'film_progress_latest_mv', 'schema_migrations']));
    const recorded = await (await db.query({ query: 'SELECT count() AS n FROM schema_migrations', format: 'JSONEachRow' })).json<{ n: string | number }>();
    expect(Number(recorded[0]!.n)).toBe(all.length);
  });

  it('refuses to go on when an applied migration file changed', async () => {
    const [first, ...rest] = await readMigrations();
    const edited = { ...first!, checksum: 'edited' };
    await expect(migrate(admin, db, database, [edited, ...rest])).rejects.toThrow(MigrationChangedError);
  });
});
