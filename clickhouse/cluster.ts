/**
 * The cluster form of the migrations (CLICKHOUSE_CLUSTER): the single-node files stay the one
 * source of truth, and each statement is rewritten for a sharded, replicated cluster:
 *
 * - a table `t` becomes `t_local` (Replicated*MergeTree, one replica set per shard) plus `t`, a
 *   Distributed table over every shard's `t_local`, so readers and the writer keep using `t`;
 * - a materialized view reads `<source>_local` and writes `<target>_local`: each shard keeps the
 *   aggregates of the rows it holds, and reading through the Distributed table merges them;
 * - a plain view reads the Distributed tables;
 * - an ALTER TABLE of columns (ADD/DROP/MODIFY/RENAME/COMMENT COLUMN) changes the local tables and
 *   the Distributed table, which copied the columns when it was created and would otherwise lack a
 *   new one (the writer's insert would fail);
 * - any other ALTER TABLE (settings, projections) changes every shard's local table only;
 * - an INSERT … SELECT (a backfill) runs once through the Distributed tables;
 * - every statement runs ON CLUSTER, so one migration run reaches every node.
 *
 * A statement of another shape throws: single-node DDL must never reach a cluster unchanged.
 *
 * The per-node form (`nodeByNode`) is for a cluster that runs no DDL worker and has no Keeper,
 * such as the embedded stack's servers (clickhouse-local refuses ON CLUSTER: "Replicated DDL
 * queries are disabled", and a Replicated table: "Can't create replicated table without
 * ZooKeeper"): each statement but a backfill is applied on every node without ON CLUSTER, and each
 * Replicated engine is its non-replicated twin, so every shard holds one replica. Distributed
 * tables, sharding and the per-shard views are the same as in the replicated form.
 */
import { ConfigError } from '../shared/errors.ts';

/** Suffix of the per-shard tables behind each Distributed table. */
export const localSuffix = '_local';

// Identifiers are checked before they are put into SQL text.
const identifier = /^[A-Za-z_][A-Za-z0-9_]*$/;

/**
 * The sharding key of a table's Distributed table. By viewer wherever there is one: a viewer's
 * events, their deduplication by event_id and their latest position in each film then live on
 * one shard, so ReplacingMergeTree and the progress view see all of a viewer's rows together.
 */
export function shardingKey(table: string, columns: string): string {
  if (/^\s*user_id\s/m.test(columns)) return 'cityHash64(user_id)';
  if (/^\s*film_id\s/m.test(columns)) return 'cityHash64(film_id)';
  throw new ConfigError(`${table}: no user_id or film_id column to shard by`);
}

/** How the cluster form reaches the nodes: ON CLUSTER with Replicated engines, or node by node with their twins. */
export type ClusterForm = 'replicated' | 'nodeByNode';

/** The one line migrate logs for the per-node form. */
export const nodeByNodeNote = 'ON CLUSTER refused (no DDL worker): each statement applied on every node, Replicated engines as their non-replicated twins';

/** A backfill (INSERT … SELECT through the Distributed tables): run once, never on every node. */
export const isBackfill = (sql: string): boolean => /^INSERT INTO \w+\s+SELECT\b/.test(sql.trim());

/** The statements that stand for one single-node statement on cluster `cluster`. */
export function toClusterStatements(statement: string, cluster: string, form: ClusterForm = 'replicated'): string[] {
  if (!identifier.test(cluster)) throw new ConfigError(`invalid cluster name: ${cluster}`);
  const sql = statement.trim();
  const replicated = form === 'replicated';
  const onCluster = replicated ? `ON CLUSTER ${cluster}` : '';
  const settingNames = (text: string) => (replicated ? replicatedSettingNames(text) : text);

  const table = sql.match(/^CREATE TABLE IF NOT EXISTS (\w+)\s*\(([\s\S]*)\)\s*ENGINE\s*=\s*(\w*)MergeTree(?:\(([^)]*)\))?([\s\S]*)$/);
  if (table) {
    const [, name, columns, kind, args, rest] = table as unknown as [string, string, string, string, string | undefined, string];
    const local = `${name}${localSuffix}`;
    const replication = replicated ? [`'/clickhouse/tables/{shard}/{database}/${local}'`, `'{replica}'`] : [];
    const engineArgs = [...replication, ...(args?.trim() ? [args.trim()] : [])];
    return [
      `CREATE TABLE IF NOT EXISTS ${local} ${onCluster} (${columns}) ENGINE = ${replicated ? 'Replicated' : ''}${kind}MergeTree(${engineArgs.join(', ')})${settingNames(rest)}`,
      `CREATE TABLE IF NOT EXISTS ${name} ${onCluster} AS ${local} ENGINE = Distributed(${cluster}, currentDatabase(), ${local}, ${shardingKey(name, columns)})`,
    ];
  }

  const materialized = sql.match(/^CREATE MATERIALIZED VIEW IF NOT EXISTS (\w+) TO (\w+)\s+AS\s+(SELECT[\s\S]*)$/);
  if (materialized) {
    const [, name, target, select] = materialized as unknown as [string, string, string, string];
    const localSelect = select.replace(/\bFROM\s+(\w+)/g, (_, source: string) => `FROM ${source}${localSuffix}`);
    return [`CREATE MATERIALIZED VIEW IF NOT EXISTS ${name} ${onCluster} TO ${target}${localSuffix} AS ${localSelect}`];
  }

  const view = sql.match(/^CREATE (VIEW IF NOT EXISTS|OR REPLACE VIEW) (\w+)\s+AS\s+(SELECT[\s\S]*)$/);
  if (view) return [`CREATE ${view[1]} ${view[2]} ${onCluster} AS ${view[3]}`];

  // A backfill: run once, reading and writing the Distributed tables, so each row goes to the
  // shard of its viewer, as the materialized views on that shard would have put it.
  if (isBackfill(sql)) return [sql];

  const alter = sql.match(/^ALTER TABLE (\w+) ([\s\S]+)$/);
  if (alter) {
    const [, name, commands] = alter as unknown as [string, string, string];
    const local = `ALTER TABLE ${name}${localSuffix} ${onCluster} ${settingNames(commands)}`;
    const columnCommands = commands.split(/,(?=\s*(?:ADD|DROP|MODIFY|RENAME|COMMENT|CLEAR|MATERIALIZE)\s)/i).map((c) => columnCommand.test(c));
    if (columnCommands.every(Boolean)) return [local, `ALTER TABLE ${name} ${onCluster} ${commands}`];
    // Settings, projections, indexes: they belong to the stored rows, so to every shard's local table.
    if (!columnCommands.some(Boolean)) return [local];
    throw new ConfigError(`${name}: an ALTER TABLE mixing column changes with others; write them as two statements: ${sql.slice(0, 120)}`);
  }

  throw new ConfigError(`no cluster form for this statement; extend clickhouse/cluster.ts: ${sql.slice(0, 120)}`);
}

// Column changes: the Distributed table must have them too. (Not MATERIALIZE/CLEAR COLUMN: they rewrite stored data.)
const columnCommand = /^\s*(?:ADD|DROP|MODIFY|RENAME|COMMENT) COLUMN\b/i;

// Replicated tables deduplicate inserts through Keeper with replicated_deduplication_window;
// the non_replicated_ setting does not apply to them.
function replicatedSettingNames(text: string): string {
  return text.replace(/\bnon_replicated_deduplication_window\b/g, 'replicated_deduplication_window');
}
