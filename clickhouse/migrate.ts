import { createHash } from 'node:crypto';
import { readdir, readFile } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';
import { join } from 'node:path';
import type { ClickHouseClient } from '@clickhouse/client';
import { ConfigError } from '../shared/errors.ts';
import { isBackfill, nodeByNodeNote, toClusterStatements } from './cluster.ts';

/** Where the versioned migrations live: NNN_name.sql, applied in name order. */
export const migrationsDir = fileURLToPath(new URL('./migrations/', import.meta.url));

export interface Migration { version: string; checksum: string; statements: string[] }

/** Splits a migration into statements: ClickHouse's HTTP interface takes one per request. */
export function splitStatements(sql: string): string[] {
  const withoutComments = sql.replace(/^\s*--.*$/gm, '');
  return withoutComments
    .split(/;\s*(?:\n|$)/)
    .map((statement) => statement.trim())
    .filter(Boolean);
}

/** Reads every migration file with its checksum. */
export async function readMigrations(dir = migrationsDir): Promise<Migration[]> {
  const files = (await readdir(dir)).filter((f) => /^\d+_.+\.sql$/.test(f)).sort();
  return Promise.all(
    files.map(async (file) => {
      const sql = await readFile(join(dir, file), 'utf8');
      return {
        version: file.replace(/\.sql$/, ''),
        checksum: createHash('sha256').update(sql).digest('hex'),
        statements: splitStatements(sql),
      };
    }),
  );
}

/**
 * Creates the database if needed, then applies the migrations not yet recorded in
 * `schema_migrations`. Idempotent; refuses to go on if an applied migration's file changed.
 * `admin` must not be bound to `database` (it may not exist yet); `db` must be.
 * With `cluster`, every statement is applied in its cluster form (clickhouse/cluster.ts); the
 * bookkeeping table stays on the node the runner talks to, which runs the ON CLUSTER DDL. With
 * `nodes` too (each node's clients, `db` among them), the cluster runs no ON CLUSTER DDL: each
 * statement goes to every node in the per-node form, a backfill once through `db`.
 */
export async function migrate(
  admin: ClickHouseClient,
  db: ClickHouseClient,
  database: string,
  migrations?: Migration[],
  { cluster, nodes }: { cluster?: string | undefined; nodes?: readonly { admin: ClickHouseClient; db: ClickHouseClient }[] } = {},
): Promise<string[]> {
  if (!/^[A-Za-z_][A-Za-z0-9_]*$/.test(database)) throw new ConfigError(`invalid database name: ${database}`);
  const all = migrations ?? (await readMigrations());
  // Rewritten before anything runs, so a statement with no cluster form changes nothing.
  const form = nodes ? 'nodeByNode' : 'replicated';
  const statementsOf = new Map(all.map((m) => [m.version, cluster ? m.statements.flatMap((s) => toClusterStatements(s, cluster, form)) : m.statements]));
  if (cluster && nodes) {
    for (const node of nodes) await node.admin.command({ query: `CREATE DATABASE IF NOT EXISTS ${database}` });
  } else {
    await admin.command({ query: `CREATE DATABASE IF NOT EXISTS ${database}${cluster ? ` ON CLUSTER ${cluster}` : ''}` });
  }
  const everyNode = cluster && nodes ? nodes.map((node) => node.db) : [db];
  await db.command({
    query: `CREATE TABLE IF NOT EXISTS schema_migrations
      (version String, checksum String, applied_at DateTime64(3, 'UTC') DEFAULT now64(3))
      ENGINE = MergeTree ORDER BY version`,
  });
  const applied = new Map(
    (await (await db.query({ query: 'SELECT version, checksum FROM schema_migrations', format: 'JSONEachRow' }))
      .json<{ version: string; checksum: string }>()).map((row) => [row.version, row.checksum]),
  );
  const done: string[] = [];
  for (const migration of all) {
    const checksum = applied.get(migration.version);
    if (checksum === migration.checksum) continue;
    if (checksum !== undefined) {
      throw new ConfigError(
        `migration ${migration.version} changed after it was applied; add a new migration instead of editing it`,
      );
    }
    for (const query of statementsOf.get(migration.version)!) {
      for (const node of isBackfill(query) ? [db] : everyNode) await node.command({ query });
    }
    await db.insert({
      table: 'schema_migrations',
      values: [{ version: migration.version, checksum: migration.checksum }],
      format: 'JSONEachRow',
    });
    done.push(migration.version);
  }
  return done;
}

// `npm run migrate`: apply to CLICKHOUSE_URL / CLICKHOUSE_DATABASE.
if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  const fail = (message: string): never => {
    console.error(`npm run migrate: ${message}`);
    process.exit(2);
  };
  const { loadConfig } = await import('../shared/config.ts');
  const { clickHouseEnv, createClickHouse } = await import('../shared/clickhouse.ts');
  const { createLogger } = await import('../shared/telemetry.ts');
  const settings = loadConfig(clickHouseEnv);
  // A backfill (005) or a projection (006) on a large table takes minutes, not the functions' 20 s.
  const long = { longRequestsMs: 60 * 60_000 };
  const admin = createClickHouse(settings, 'default', long);
  const db = createClickHouse(settings, settings.CLICKHOUSE_DATABASE, long);
  const opened: ClickHouseClient[] = [];
  try {
    const cluster = process.env.CLICKHOUSE_CLUSTER?.trim() || undefined;
    // CLICKHOUSE_CLUSTER_NODES: every node's HTTP URL, for a cluster that refuses ON CLUSTER (the embedded one).
    const nodeUrls = (process.env.CLICKHOUSE_CLUSTER_NODES ?? '').split(',').map((u) => u.trim()).filter(Boolean);
    if (nodeUrls.length > 0 && !cluster) fail('CLICKHOUSE_CLUSTER_NODES is set without CLICKHOUSE_CLUSTER: name the cluster, or unset the nodes');
    // The bookkeeping table lives on the node CLICKHOUSE_URL names: it must be one of the cluster's.
    if (nodeUrls.length > 0 && !nodeUrls.includes(settings.CLICKHOUSE_URL)) fail(`CLICKHOUSE_URL ${settings.CLICKHOUSE_URL} is not one of CLICKHOUSE_CLUSTER_NODES (${nodeUrls.join(', ')})`);
    const nodes = nodeUrls.map((url) => {
      const node = { ...settings, CLICKHOUSE_URL: url };
      const clients = { admin: createClickHouse(node, 'default', long), db: createClickHouse(node, settings.CLICKHOUSE_DATABASE, long) };
      opened.push(clients.admin, clients.db);
      return clients;
    });
    const done = await migrate(admin, db, settings.CLICKHOUSE_DATABASE, undefined, { cluster, nodes: nodes.length > 0 ? nodes : undefined });
    createLogger('migrate').info('migrations applied', { database: settings.CLICKHOUSE_DATABASE, cluster, ...(nodes.length > 0 ? { nodes: nodeUrls, form: nodeByNodeNote } : {}), applied: done });
  } finally {
    await Promise.all([admin.close(), db.close(), ...opened.map((client) => client.close())]);
  }
}
