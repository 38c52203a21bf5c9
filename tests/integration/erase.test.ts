import { execFile } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { promisify } from 'node:util';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { enrich } from '../../functions/ingest/messages.ts';
import { eventColumns, toClickHouseRow } from '../../functions/writer/rows.ts';
import { clientEvent } from '../../shared/events.ts';
import { erase, eraseStatements, type EraseReport } from '../../scripts/erase.ts';
import { migratedDatabase, stackEnv } from '../setup/context.ts';

// `npm run erase` (the CLI, in a child process, as ops run it) on a migrated database of the shared
// embedded ClickHouse, with rows written as the writer writes them, so the materialized views fill
// the derived tables. A table added here after the fact stands for the migrations still to come.
const repoRoot = fileURLToPath(new URL('../..', import.meta.url));
const run = promisify(execFile);
let db: Awaited<ReturnType<typeof migratedDatabase>>;
// Quote and backslash: the id must reach ClickHouse as data.
const victim = `viewer-o'brien\\${randomUUID().slice(0, 4)}`;
const others = ['viewer-b', 'viewer-c'];

beforeAll(async () => {
  db = await migratedDatabase(stackEnv().CLICKHOUSE_URL!, 'erase');
  // A per-viewer table no hand-kept list of this tool knows about.
  await db.client.command({ query: 'CREATE TABLE film_reviews (user_id String, film_id String, body String) ENGINE = MergeTree ORDER BY (film_id, user_id)' });
  const rows = [victim, ...others].flatMap((userId, u) => [
    { type: 'film_progress', film_id: 'tt01', position_s: 600 + u, duration_s: 6000, client_ts: '2026-11-30T20:00:00Z' },
    { type: 'film_progress', film_id: 'tt01', position_s: 1200 + u, duration_s: 6000, client_ts: '2026-11-30T20:10:00Z' },
    { type: 'film_progress', film_id: 'tt02', position_s: 30, duration_s: 5000, client_ts: '2026-12-01T08:00:00Z' },
    { type: 'film_rating', film_id: 'tt01', score: 7 + u, client_ts: '2026-11-30T22:00:00Z' },
    { type: 'search', query: `what ${userId} searched`, results_count: 2 },
    { type: 'review', film_id: 'tt01', review_text: `${userId}: ممتاز 🎬`, score: 8, client_ts: '2026-11-30T21:00:00Z' },
    { type: 'like', film_id: 'tt01', reviewer_id: others[0], action: 'like', client_ts: '2026-11-30T21:05:00Z' },
  ].map((body, i) => toClickHouseRow(
    enrich(clientEvent.parse({ event_id: randomUUID(), ...body }), { userId, requestId: `req-${u}-${i}`, receivedAt: new Date() }),
    { topic: 'ugc.events', partition: u, offset: i },
  )));
  await db.client.insert({ table: 'events', values: rows, format: 'JSONCompactEachRow', columns: [...eventColumns] });
  await db.client.insert({ table: 'film_reviews', format: 'JSONEachRow', values: [victim, ...others].map((user_id) => ({ user_id, film_id: 'tt01', body: `${user_id} liked it` })) });
}, 60_000);

afterAll(async () => {
  await db?.drop();
});

async function query<T>(sql: string, params: Record<string, unknown> = {}): Promise<T[]> {
  return (await db.client.query({ query: sql, query_params: params, format: 'JSONEachRow' })).json<T>();
}

/** Every table, view and materialized view of the database with a user_id column. */
async function tablesWithUserId(): Promise<string[]> {
  return (await query<{ table: string }>('SELECT DISTINCT table FROM system.columns WHERE database = {db:String} AND name = {c:String} ORDER BY table', { db: db.database, c: 'user_id' })).map((r) => r.table);
}

/** Rows of `users` in each table, and the other viewers' rows themselves. */
async function snapshot(): Promise<{ victimRows: Record<string, number>; othersRows: Record<string, unknown[]> }> {
  const victimRows: Record<string, number> = {};
  const othersRows: Record<string, unknown[]> = {};
  for (const table of await tablesWithUserId()) {
    victimRows[table] = Number((await query<{ n: string }>(`SELECT count() AS n FROM \`${table}\` WHERE user_id = {u:String}`, { u: victim }))[0]!.n);
    othersRows[table] = await query(`SELECT * FROM \`${table}\` WHERE user_id != {u:String} ORDER BY ALL`, { u: victim });
  }
  return { victimRows, othersRows };
}

/** Per-film aggregates as stored: they hold no user id and must not move. */
const filmAggregates = () => query('SELECT day, film_id, sum(progress_events) AS progress, uniqMerge(viewers) AS viewers, sum(ratings) AS ratings, avgMerge(score) AS score FROM film_daily_stats GROUP BY day, film_id ORDER BY day, film_id');

async function eraseCli(...args: string[]): Promise<EraseReport> {
  const { stdout } = await run(process.execPath, ['--import', 'tsx', 'scripts/erase.ts', ...args, '--json'], {
    cwd: repoRoot, timeout: 60_000,
    env: { ...process.env, CLICKHOUSE_URL: stackEnv().CLICKHOUSE_URL!, CLICKHOUSE_DATABASE: db.database },
  });
  return JSON.parse(stdout.trim().split('\n').at(-1)!) as EraseReport;
}

describe('npm run erase', () => {
  it('deletes the viewer from every per-viewer table the schema has, leaves other viewers and per-film aggregates, and reports 0 the second time', async () => {
    const before = await snapshot();
    const aggregatesBefore = await filmAggregates();
    // The viewer is in the raw events, both derived per-viewer tables and the table added later.
    for (const table of ['events', 'film_progress_latest', 'film_daily_viewers', 'film_reviews_latest', 'film_likes_latest', 'film_reviews']) expect(before.victimRows[table], table).toBeGreaterThan(0);

    const dry = await eraseCli('--user', victim, '--dry-run');
    expect(dry.dryRun).toBe(true);
    expect((await snapshot()).victimRows).toEqual(before.victimRows);

    const first = await eraseCli('--user', victim);
    expect(first.tables).toEqual(dry.tables);
    expect(Object.fromEntries(first.tables.map((t) => [t.table, t.rows]))).toEqual({
      events: before.victimRows.events, film_progress_latest: before.victimRows.film_progress_latest,
      film_daily_viewers: before.victimRows.film_daily_viewers, film_reviews: before.victimRows.film_reviews,
      film_reviews_latest: before.victimRows.film_reviews_latest, film_likes_latest: before.victimRows.film_likes_latest,
    });
    expect(first.rows).toBe(first.tables.reduce((n, t) => n + t.rows, 0));

    const after = await snapshot();
    // No table, view or materialized view of the database holds the user id any more.
    expect(Object.values(after.victimRows).every((n) => n === 0), JSON.stringify(after.victimRows)).toBe(true);
    expect(after.othersRows).toEqual(before.othersRows);
    expect(await filmAggregates()).toEqual(aggregatesBefore);

    const second = await eraseCli('--user', victim);
    expect(second.rows).toBe(0);
    expect(second.tables.every((t) => t.rows === 0)).toBe(true);
  }, 120_000);

  it('names a per-viewer table it cannot delete from instead of skipping it silently', async () => {
    await db.client.command({ query: 'CREATE TABLE viewer_log (user_id String) ENGINE = Log' });
    try {
      const report = await erase(db.client, { database: db.database, users: [victim] });
      expect(report.notErasable).toEqual([{ table: 'viewer_log', engine: 'Log' }]);
    } finally {
      await db.client.command({ query: 'DROP TABLE viewer_log' });
    }
  });

  it('has a cluster form that ClickHouse parses: ON CLUSTER on the local tables, counted on every shard', async () => {
    const sql = eraseStatements('ugc', 'events_local', [victim], 'ugc_cluster');
    const parse = async (statement: string) =>
      (await query<{ f: string }>('SELECT formatQuerySingleLine({s:String}) AS f', { s: statement }))[0]!.f;
    expect(await parse(sql.delete)).toBe(`ALTER TABLE ugc.events_local ON CLUSTER ugc_cluster (DELETE WHERE user_id IN ('viewer-o\\'brien\\\\${victim.slice(-4)}')) SETTINGS mutations_sync = 2`);
    expect(await parse(sql.count)).toContain("FROM cluster('ugc_cluster', 'ugc', 'events_local')");
  });

  it('refuses a run without a user in one line', async () => {
    const failure = await run(process.execPath, ['--import', 'tsx', 'scripts/erase.ts'], { cwd: repoRoot, env: { ...process.env, CLICKHOUSE_URL: stackEnv().CLICKHOUSE_URL! } })
      .then(() => undefined, (error: { code: number; stderr: string }) => error);
    expect(failure?.code).toBe(2);
    expect(failure?.stderr.trim()).toBe('erase: give the viewer to erase: --user ID (repeat it for several)');
  });
});
