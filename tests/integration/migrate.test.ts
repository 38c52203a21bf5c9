import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { createClickHouse } from '../../shared/clickhouse.ts';
import { migrate, readMigrations } from '../../clickhouse/migrate.ts';
import { ConfigError } from '../../shared/errors.ts';
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

  it('refuses to go on when an applied migration file changed, even by a comment', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'ugc-migrations-'));
    const name = uniqueName('edited');
    const own = createClickHouse({ ...settings, CLICKHOUSE_DATABASE: name });
    try {
      const file = join(dir, '001_viewers.sql');
      await writeFile(file, 'CREATE TABLE IF NOT EXISTS viewers (user_id String) ENGINE = MergeTree ORDER BY user_id;\n');
      expect(await migrate(admin, own, name, await readMigrations(dir))).toEqual(['001_viewers']);
      await writeFile(file, '-- a later edit\nCREATE TABLE IF NOT EXISTS viewers (user_id String) ENGINE = MergeTree ORDER BY user_id;\n');
      await expect(migrate(admin, own, name, await readMigrations(dir))).rejects.toThrow(
        new ConfigError('migration 001_viewers changed after it was applied; add a new migration instead of editing it'),
      );
    } finally {
      await admin.command({ query: `DROP DATABASE IF EXISTS ${name}` });
      await own.close();
      await rm(dir, { recursive: true, force: true });
    }
  });
});

describe('film_daily_stats_v', () => {
  it('averages watch depth over viewers (each one\'s furthest position that day), for events stored before 005 and after', async () => {
    const name = uniqueName('depth');
    const own = { ...settings, CLICKHOUSE_DATABASE: name };
    const client = createClickHouse(own);
    const progress = (user: string, positions: number[]) => positions.map((p, i) => ({
      event_id: crypto.randomUUID(), event_type: 'film_progress', schema_version: 1, user_id: user, film_id: 'film-d',
      occurred_at: `2026-11-20 10:00:0${i}.000`, received_at: '2026-11-20 10:00:09.000', request_id: 'r',
      position_s: p, duration_s: 1000, kafka_topic: 't', kafka_partition: 0, kafka_offset: i,
    }));
    const insert = (rows: object[]) => client.insert({ table: 'events', values: rows, format: 'JSONEachRow' });
    try {
      const all = await readMigrations();
      const before005 = all.filter((m) => m.version < '005');
      expect(before005.map((m) => m.version)).toEqual(['001_events', '002_film_progress_latest', '003_film_daily_stats', '004_view_deduplication']);
      await migrate(admin, client, name, before005);
      // Stored before 005: backfilled by it. A viewer who reached 90% reported 10% and 50% on the way.
      await insert([...progress('a', [100, 500, 900]), ...progress('b', [200])]);
      await migrate(admin, client, name);
      // Stored after: through the new materialized view.
      await insert(progress('c', [400, 600]));
      const [day] = await (await client.query({ query: "SELECT viewers, avg_watch_depth, progress_events FROM film_daily_stats_v WHERE film_id = 'film-d'", format: 'JSONEachRow' })).json<{ viewers: string; avg_watch_depth: number; progress_events: string }>();
      expect(Number(day!.viewers)).toBe(3);
      expect(Number(day!.progress_events)).toBe(6);
      // (0.9 + 0.2 + 0.6) / 3; averaging every report would say (0.1+0.5+0.9+0.2+0.4+0.6) / 6 = 0.45.
      expect(day!.avg_watch_depth).toBeCloseTo(1.7 / 3, 6);
    } finally {
      await admin.command({ query: `DROP DATABASE IF EXISTS ${name}` });
      await client.close();
    }
  });
});

describe('events by viewer', () => {
  it('answers a per-viewer query from the projection sorted by viewer and time', async () => {
    const name = uniqueName('byviewer');
    const client = createClickHouse({ ...settings, CLICKHOUSE_DATABASE: name });
    try {
      await migrate(admin, client, name);
      // 100,000 events of 2,000 viewers, sorted by film in the table: one viewer's rows are in every granule.
      await client.command({ query: `INSERT INTO events (event_id, event_type, schema_version, user_id, film_id, occurred_at, received_at, request_id, kafka_topic, kafka_partition, kafka_offset)
        SELECT generateUUIDv4(), 'film_progress', 1, concat('viewer-', toString(number % 2000)), concat('film-', toString(number % 97)),
               toDateTime64('2026-11-20 00:00:00', 3, 'UTC') + number, toDateTime64('2026-11-20 00:00:00', 3, 'UTC') + number, 'r', 't', 0, number
        FROM numbers(100000)` });
      const query = "SELECT count() AS n, min(occurred_at) AS first FROM events WHERE user_id = 'viewer-42'";
      const [row] = await (await client.query({ query, format: 'JSONEachRow' })).json<{ n: string; first: string }>();
      expect(Number(row!.n)).toBe(50);
      expect(row!.first).toBe('2026-11-20 00:00:42.000');
      const plan = await (await client.query({ query: `EXPLAIN indexes = 1 ${query}`, format: 'TabSeparatedRaw' })).text();
      expect(plan).toMatch(/ReadFromMergeTree \(by_viewer\)/);
    } finally {
      await admin.command({ query: `DROP DATABASE IF EXISTS ${name}` });
      await client.close();
    }
  });
});
