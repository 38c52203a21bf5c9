/**
 * `npm run erase -- --user ID`: a viewer's right to erasure. Deletes the viewer's rows from every
 * table that stores rows per viewer, found in the schema itself (every MergeTree-family table of the
 * database with a `user_id` column: `events`, `film_progress_latest`, `film_daily_viewers`, and any
 * table a later migration adds), so no hand-kept list can miss one. Per-film aggregates
 * (`film_daily_stats`) hold no user id and stay as they are. Each delete is a mutation that
 * rewrites the parts holding the viewer's rows and returns when every replica has done so
 * (mutations_sync = 2); the rows are then counted again, and a table that still holds one fails
 * the run. With CLICKHOUSE_CLUSTER it deletes from every shard's local tables ON CLUSTER.
 */
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import type { ClickHouseClient } from '@clickhouse/client';

export interface EraseOptions {
  database: string;
  users: string[];
  /** The cluster form: local tables on every shard, ON CLUSTER. */
  cluster?: string | undefined;
  /** Count only. */
  dryRun?: boolean;
}

export interface EraseReport {
  database: string;
  cluster: string | undefined;
  users: number;
  dryRun: boolean;
  /** Rows each per-viewer table held for these users (deleted, unless a dry run). */
  tables: { table: string; rows: number }[];
  rows: number;
  /** Tables with a user_id column that this tool cannot delete from (not MergeTree, not a view). */
  notErasable: { table: string; engine: string }[];
}

/** A ClickHouse string literal: backslash and quote escaped, so any user id is data, never SQL. */
export function sqlString(value: string): string {
  return `'${value.replaceAll('\\', '\\\\').replaceAll("'", "\\'")}'`;
}

/** A quoted identifier. */
export function sqlIdentifier(name: string): string {
  return `\`${name.replaceAll('\\', '\\\\').replaceAll('`', '\\`')}\``;
}

// Engines that read rows stored elsewhere (views, Distributed tables): erasing their source erases them.
const readsOtherTables = /^(MaterializedView|View|LiveView|WindowView|Distributed)$/;

/** Tables of `database` with a user_id column, split into MergeTree tables (erasable) and the rest. */
export async function perViewerTables(client: ClickHouseClient, database: string): Promise<{ erasable: string[]; notErasable: { table: string; engine: string }[] }> {
  const rows = await (await client.query({
    query: `SELECT name AS table, engine FROM system.tables
            WHERE database = {db:String} AND name IN (SELECT table FROM system.columns WHERE database = {db:String} AND name = 'user_id')
            ORDER BY name`,
    query_params: { db: database },
    format: 'JSONEachRow',
  })).json<{ table: string; engine: string }>();
  return {
    erasable: rows.filter((r) => r.engine.endsWith('MergeTree')).map((r) => r.table),
    notErasable: rows.filter((r) => !r.engine.endsWith('MergeTree') && !readsOtherTables.test(r.engine)),
  };
}

/** The statements for one table: count the users' rows (on every shard), and delete them. */
export function eraseStatements(database: string, table: string, users: string[], cluster?: string): { count: string; delete: string } {
  const where = `user_id IN (${users.map(sqlString).join(', ')})`;
  const source = cluster ? `cluster(${sqlString(cluster)}, ${sqlString(database)}, ${sqlString(table)})` : `${sqlIdentifier(database)}.${sqlIdentifier(table)}`;
  return {
    count: `SELECT count() AS n FROM ${source} WHERE ${where}`,
    // A mutation, not a lightweight DELETE: the rows are physically rewritten away (a lightweight
    // delete only masks them until a merge), and the `events` projection is rebuilt with them gone.
    delete: `ALTER TABLE ${sqlIdentifier(database)}.${sqlIdentifier(table)}${cluster ? ` ON CLUSTER ${sqlIdentifier(cluster)}` : ''} DELETE WHERE ${where} SETTINGS mutations_sync = 2`,
  };
}

async function count(client: ClickHouseClient, query: string): Promise<number> {
  const [row] = await (await client.query({ query, format: 'JSONEachRow' })).json<{ n: string | number }>();
  return Number(row?.n ?? 0);
}

/** Deletes the users' rows from every per-viewer table; reports the rows each table held. */
export async function erase(client: ClickHouseClient, options: EraseOptions): Promise<EraseReport> {
  const users = [...new Set(options.users)];
  if (users.length === 0) throw new Error('no user to erase');
  const { erasable, notErasable } = await perViewerTables(client, options.database);
  const tables: EraseReport['tables'] = [];
  for (const table of erasable) {
    const sql = eraseStatements(options.database, table, users, options.cluster);
    const rows = await count(client, sql.count);
    if (rows > 0 && !options.dryRun) {
      await client.command({ query: sql.delete });
      const left = await count(client, sql.count);
      if (left > 0) throw new Error(`${table} still holds ${left} rows of the erased users after the delete`);
    }
    tables.push({ table, rows });
  }
  return {
    database: options.database, cluster: options.cluster, users: users.length, dryRun: options.dryRun ?? false,
    tables, rows: tables.reduce((n, t) => n + t.rows, 0), notErasable,
  };
}

/** The report as ops read it in a terminal. */
export function formatEraseReport(report: EraseReport): string {
  const verb = report.dryRun ? 'would delete' : 'deleted';
  return [
    `${report.database}${report.cluster ? ` on cluster ${report.cluster}` : ''}: ${verb} ${report.rows} rows of ${report.users} user(s)`,
    ...report.tables.map((t) => `  ${String(t.rows).padStart(9)}  ${t.table}`),
    ...report.notErasable.map((t) => `  NOT ERASED: ${t.table} (engine ${t.engine}) has a user_id column but no DELETE; erase it by hand`),
  ].join('\n');
}

/** `--user ID` (repeatable), `--dry-run`, `--json`; a usage error is one line. */
export function parseEraseArgs(args: string[]): { users: string[]; dryRun: boolean; json: boolean } {
  const { values } = parseArgs({
    args, strict: true,
    options: { user: { type: 'string', multiple: true }, 'dry-run': { type: 'boolean', default: false }, json: { type: 'boolean', default: false } },
  });
  const users = values.user ?? [];
  if (users.length === 0 || users.some((u) => u.length === 0)) throw new Error('give the viewer to erase: --user ID (repeat it for several)');
  return { users, dryRun: values['dry-run'], json: values.json };
}

// `npm run erase -- --user ID`: on CLICKHOUSE_URL / CLICKHOUSE_DATABASE, ON CLUSTER with CLICKHOUSE_CLUSTER.
if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  let args: ReturnType<typeof parseEraseArgs>;
  try {
    args = parseEraseArgs(process.argv.slice(2));
  } catch (error) {
    console.error(`erase: ${(error as Error).message}`);
    process.exit(2);
  }
  const { loadConfig } = await import('../shared/config.ts');
  const { clickHouseEnv, createClickHouse } = await import('../shared/clickhouse.ts');
  const settings = loadConfig(clickHouseEnv);
  // A mutation rewrites every part holding the viewer's rows: minutes on a large table, not 20 s.
  const client = createClickHouse(settings, settings.CLICKHOUSE_DATABASE, { longRequestsMs: 60 * 60_000 });
  try {
    const cluster = process.env.CLICKHOUSE_CLUSTER?.trim() || undefined;
    const report = await erase(client, { database: settings.CLICKHOUSE_DATABASE, users: args.users, cluster, dryRun: args.dryRun });
    console.log(args.json ? JSON.stringify(report) : formatEraseReport(report));
    if (report.notErasable.length > 0) process.exitCode = 1;
  } catch (error) {
    console.error(`erase: ${(error as Error).message}`);
    process.exitCode = 1;
  } finally {
    await client.close();
  }
}
