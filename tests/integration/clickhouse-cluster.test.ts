import type { ClickHouseClient } from '@clickhouse/client';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { localSuffix, toClusterStatements } from '../../clickhouse/cluster.ts';
import { ConfigError } from '../../shared/errors.ts';
import { readMigrations, type Migration } from '../../clickhouse/migrate.ts';
import { createClickHouse } from '../../shared/clickhouse.ts';
import { stackEnv, uniqueName } from '../setup/context.ts';

// The replicated cluster form (ON CLUSTER, Replicated engines) cannot run here: no Docker, and the
// embedded servers have no DDL worker and no Keeper. It is checked by ClickHouse's own parser
// (formatQuery on the embedded engine) and for the shape a 2-shard × 2-replica cluster needs, and
// its DDL is run on the embedded engine with single-node stand-ins for what needs a cluster, to see
// which columns each table ends with. clickhouse-local-cluster.test.ts runs the rest (Distributed
// tables across two servers, the per-node form); the compose file's cluster profile runs it all.
const cluster = 'ugc_cluster';
let client: ClickHouseClient;
let migrations: Migration[];

beforeAll(async () => {
  client = createClickHouse({ CLICKHOUSE_URL: stackEnv().CLICKHOUSE_URL!, CLICKHOUSE_USER: 'default', CLICKHOUSE_PASSWORD: '', CLICKHOUSE_DATABASE: 'default', CLICKHOUSE_REQUEST_TIMEOUT_MS: 30_000 });
  migrations = await readMigrations();
});

afterAll(async () => {
  await client?.close();
});

/** ClickHouse's canonical text of a statement; throws the parser's error for invalid SQL. */
async function parse(sql: string): Promise<string> {
  const result = await client.query({ query: 'SELECT formatQuery({sql:String}) AS formatted', query_params: { sql }, format: 'JSONEachRow' });
  const [row] = await result.json<{ formatted: string }>();
  return row!.formatted;
}

const clusterForm = () => migrations.flatMap((m) => m.statements.flatMap((s) => toClusterStatements(s, cluster)));

describe('the cluster form of the migrations (CLICKHOUSE_CLUSTER)', () => {
  it('parses in ClickHouse, statement by statement, every DDL ON CLUSTER and every backfill through the Distributed tables', async () => {
    const statements = clusterForm();
    expect(statements.length).toBeGreaterThan(migrations.flatMap((m) => m.statements).length);
    for (const sql of statements) {
      const formatted = await parse(sql);
      if (formatted.startsWith('INSERT')) expect(formatted, sql).not.toContain('_local');
      else expect(formatted, sql).toContain(`ON CLUSTER ${cluster}`);
    }
    expect(statements.filter((s) => /^INSERT INTO film_daily_viewers\s+SELECT/.test(s))).toHaveLength(1);
    // The parser is real: broken SQL is refused.
    await expect(parse('CREATE TABLE x ON CLUSTER c (a UInt8) ENGINE = ReplicatedMergeTree(')).rejects.toThrow(/Syntax error/);
  });

  it('keeps every table as a replicated local table plus a Distributed table of the same name, sharded by viewer', async () => {
    const formatted = await Promise.all(clusterForm().map(parse));
    const local = (name: string) => formatted.find((s) => s.startsWith(`CREATE TABLE IF NOT EXISTS ${name}_local `));
    const distributed = (name: string) => formatted.find((s) => s.startsWith(`CREATE TABLE IF NOT EXISTS ${name} `));
    expect(local('events')).toMatch(/ENGINE = ReplicatedReplacingMergeTree\('\/clickhouse\/tables\/\{shard\}\/\{database\}\/events_local', '\{replica\}'\)/);
    expect(local('events')).toContain('replicated_deduplication_window = 10000');
    expect(local('events')).not.toContain('non_replicated_deduplication_window');
    // The version column stays: a late, older position never wins on any shard.
    expect(local('film_progress_latest')).toMatch(/ReplicatedReplacingMergeTree\('[^']+film_progress_latest_local', '\{replica\}', occurred_at\)/);
    expect(local('film_daily_stats')).toContain('ReplicatedAggregatingMergeTree(');
    expect(local('film_daily_viewers')).toContain('ReplicatedAggregatingMergeTree(');
    expect(distributed('film_daily_viewers')).toContain('cityHash64(user_id)');
    expect(distributed('events')).toContain(`ENGINE = Distributed(${cluster}, currentDatabase(), events_local, cityHash64(user_id))`);
    expect(distributed('film_progress_latest')).toContain('cityHash64(user_id)');
    expect(distributed('film_daily_stats')).toContain('cityHash64(film_id)');
    // A viewer's reviews and likes replace each other on one shard: sharded by viewer.
    expect(local('film_reviews_latest')).toMatch(/ReplicatedReplacingMergeTree\('[^']+film_reviews_latest_local', '\{replica\}', occurred_at\)/);
    expect(distributed('film_reviews_latest')).toContain('cityHash64(user_id)');
    expect(distributed('film_likes_latest')).toContain('cityHash64(user_id)');
  });

  it('feeds each shard’s views from its local rows, and reads analyst views through the Distributed tables', async () => {
    const formatted = await Promise.all(clusterForm().map(parse));
    const progressView = formatted.find((s) => s.startsWith('CREATE MATERIALIZED VIEW IF NOT EXISTS film_progress_latest_mv '));
    expect(progressView).toMatch(/TO film_progress_latest_local[\s\S]*FROM events_local/);
    const statsView = formatted.find((s) => s.startsWith('CREATE MATERIALIZED VIEW IF NOT EXISTS film_daily_stats_mv '));
    expect(statsView).toMatch(/TO film_daily_stats_local[\s\S]*FROM events_local/);
    const viewersView = formatted.find((s) => s.startsWith('CREATE MATERIALIZED VIEW IF NOT EXISTS film_daily_viewers_mv '));
    expect(viewersView).toMatch(/TO film_daily_viewers_local[\s\S]*FROM events_local/);
    const analystView = formatted.findLast((s) => s.includes(' VIEW ') && s.includes('film_daily_stats_v '));
    expect(analystView).toMatch(/^CREATE OR REPLACE VIEW film_daily_stats_v ON CLUSTER/);
    expect(analystView).toMatch(/FROM film_daily_stats\b(?!_local)/);
    expect(analystView).toMatch(/FROM film_daily_viewers\b(?!_local)/);
    // Migration 004's window lands on the replicated local tables under its replicated name.
    const windows = formatted.filter((s) => s.startsWith('ALTER TABLE') && s.includes('deduplication_window'));
    expect(windows.map((s) => s.split(' ')[2])).toEqual(['film_daily_stats_local', 'film_progress_latest_local']);
    for (const alter of windows) expect(alter).toMatch(new RegExp(`ON CLUSTER ${cluster}[\\s\\S]*MODIFY SETTING replicated_deduplication_window = 10000`));
    // Migration 006's per-viewer projection is built in every shard's stored rows.
    // Migration 007's new columns go to the local tables and to the Distributed table.
    const added = formatted.filter((s) => s.startsWith('ALTER TABLE') && s.includes('ADD COLUMN'));
    expect(added.map((s) => s.split(' ')[2])).toEqual(['events_local', 'events']);
    const projection = formatted.filter((s) => s.includes('PROJECTION'));
    expect(projection.length).toBe(2);
    for (const alter of projection) expect(alter).toMatch(new RegExp(`^ALTER TABLE events_local ON CLUSTER ${cluster}`));
  });

  it('gives a new column to both the local and the Distributed table: both have the same columns after every migration', async () => {
    // The DDL as a single node can run it: no ON CLUSTER (no Keeper), the plain engine under each
    // Replicated one, and for each Distributed table a Merge table over its local table, which,
    // like Distributed, copies the columns when it is created and changes only with its own ALTER.
    // Backfills change no columns: left out.
    const standIn = (sql: string) => sql.replace(` ON CLUSTER ${cluster}`, '')
      .replace(/Replicated(\w*)MergeTree\('[^']*', '\{replica\}'(?:, )?/, '$1MergeTree(')
      .replace(/\breplicated_deduplication_window\b/g, 'non_replicated_deduplication_window')
      .replace(/ENGINE = Distributed\(\w+, currentDatabase\(\), (\w+), .*\)$/, "ENGINE = Merge(currentDatabase(), '^$1$$')");
    const database = uniqueName('cluster_columns');
    await client.command({ query: `CREATE DATABASE ${database}` });
    const columnsOf = async () => {
      const rows = await (await client.query({
        query: `SELECT table, name, type, default_kind, default_expression FROM system.columns WHERE database = {d:String} ORDER BY table, position`,
        query_params: { d: database }, format: 'JSONEachRow' })).json<{ table: string; name: string; type: string; default_kind: string; default_expression: string }>();
      const tables = new Map<string, string[]>();
      for (const r of rows) tables.set(r.table, [...(tables.get(r.table) ?? []), `${r.name} ${r.type} ${r.default_kind} ${r.default_expression}`.trim()]);
      return tables;
    };
    const changedColumns: string[] = [];
    let previous = new Map<string, string[]>();
    try {
      for (const migration of migrations) {
        for (const statement of migration.statements.flatMap((s) => toClusterStatements(s, cluster))) {
          if (!statement.startsWith('INSERT')) await client.command({ query: standIn(statement), clickhouse_settings: { database } });
        }
        const tables = await columnsOf();
        const pairs = [...tables.keys()].filter((t) => t.endsWith(localSuffix) && tables.has(t.slice(0, -localSuffix.length)));
        expect(pairs.length, migration.version).toBeGreaterThan(0);
        for (const local of pairs) {
          const distributed = local.slice(0, -localSuffix.length);
          expect(tables.get(distributed), `${distributed} and ${local} after ${migration.version}`).toEqual(tables.get(local));
          if (previous.has(local) && JSON.stringify(previous.get(local)) !== JSON.stringify(tables.get(local))) changedColumns.push(`${migration.version}: ${distributed}`);
        }
        previous = tables;
      }
    } finally {
      await client.command({ query: `DROP DATABASE IF EXISTS ${database}` });
    }
    // The check saw columns added to an existing table (migration 007's review and like fields).
    expect(changedColumns).toContain('007_reviews_likes: events');
  });

  it('refuses a statement it has no cluster form for, rather than passing single-node DDL through', () => {
    expect(() => toClusterStatements('DROP TABLE events', cluster)).toThrow(ConfigError);
    expect(() => toClusterStatements('CREATE TABLE IF NOT EXISTS t (a UInt8) ENGINE = Log', cluster)).toThrow(ConfigError);
    expect(() => toClusterStatements('CREATE TABLE IF NOT EXISTS t (a UInt8) ENGINE = MergeTree ORDER BY a', cluster)).toThrow(/no user_id or film_id/);
    expect(() => toClusterStatements('CREATE VIEW IF NOT EXISTS v AS SELECT 1', 'bad-name; DROP')).toThrow(/invalid cluster name/);
    // A column change beside a settings change would reach the Distributed table with the setting, or not at all.
    expect(() => toClusterStatements('ALTER TABLE events ADD COLUMN a UInt8, MODIFY SETTING x = 1', cluster)).toThrow(/mixing column changes/);
  });
});
