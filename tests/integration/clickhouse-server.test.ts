import { createConnection, type Socket } from 'node:net';
import { mkdtempSync, rmSync } from 'node:fs';
import { request } from 'node:http';
import { networkInterfaces, tmpdir } from 'node:os';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';
import { ClickHouseError, ClickHouseLogLevel, createClient, type ClickHouseClient } from '@clickhouse/client';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startEmbeddedClickHouse, type EmbeddedClickHouse } from '../../localstack/clickhouse/embedded.ts';

const suffix = `${process.pid}_${Date.now()}`;

let dataDir: string;
let server: EmbeddedClickHouse;
const clients: ClickHouseClient[] = [];

function client(database = 'default', extra: Parameters<typeof createClient>[0] = {}): ClickHouseClient {
  // Expected errors are asserted, not logged.
  const c = createClient({ url: server.url, database, log: { level: ClickHouseLogLevel.OFF }, ...extra });
  clients.push(c);
  return c;
}

/** A fresh database for one test, and a client bound to it. */
async function freshDatabase(name: string): Promise<{ db: string; ch: ClickHouseClient }> {
  const db = `it_${name}_${suffix}`;
  await client().command({ query: `CREATE DATABASE ${db}` });
  return { db, ch: client(db) };
}

async function rejection(p: Promise<unknown>): Promise<ClickHouseError> {
  const e: unknown = await p.then(
    () => undefined,
    (err: unknown) => err,
  );
  if (!(e instanceof ClickHouseError)) throw new Error(`expected a ClickHouseError, got ${String(e)}`);
  return e;
}

/** Raw HTTP request, for what the client cannot send (bad gzip, GET with DDL). */
function rawRequest(path: string, init: { method?: string; headers?: Record<string, string>; body?: Buffer | string } = {}): Promise<{ status: number; headers: Record<string, string | string[] | undefined>; body: string }> {
  return new Promise((resolve, reject) => {
    const req = request(`${server.url}${path}`, { method: init.method ?? 'GET', headers: init.headers }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks).toString('utf8') }));
    });
    req.on('error', reject);
    req.end(init.body);
  });
}

beforeAll(async () => {
  dataDir = mkdtempSync(join(tmpdir(), 'embedded-ch-it-'));
  const started = Date.now();
  server = await startEmbeddedClickHouse({ dataDir });
  console.log(`embedded ClickHouse ready in ${Date.now() - started} ms at ${server.url}`);
});

afterAll(async () => {
  await Promise.all(clients.map((c) => c.close()));
  await server?.stop();
  if (dataDir) rmSync(dataDir, { recursive: true, force: true });
});

describe('embedded ClickHouse server over @clickhouse/client', () => {
  it('answers ping (GET /ping and SELECT ping)', async () => {
    expect((await client().ping()).success).toBe(true);
    expect((await client().ping({ select: true })).success).toBe(true);
  });

  it('listens on 127.0.0.1 only', async () => {
    expect(new URL(server.url).hostname).toBe('127.0.0.1');
    const external = Object.values(networkInterfaces())
      .flat()
      .find((a) => a !== undefined && a.family === 'IPv4' && !a.internal);
    if (external === undefined) return; // no other interface to try on this machine
    const error = await new Promise<unknown>((resolve) => {
      const socket: Socket = createConnection({ host: external.address, port: server.port });
      socket.once('connect', () => {
        socket.destroy();
        resolve(undefined);
      });
      socket.once('error', resolve);
    });
    expect(error).toBeInstanceOf(Error);
  });

  it('round-trips UUID, DateTime64(3), Map, LowCardinality, Nullable and Array through JSONEachRow and JSON', async () => {
    const { db, ch } = await freshDatabase('types');
    await ch.command({
      query: `CREATE TABLE ${db}.events (
        id UUID, ts DateTime64(3, 'UTC'), attrs Map(String, String), kind LowCardinality(String),
        position Nullable(Int32), tags Array(String)
      ) ENGINE = MergeTree ORDER BY (kind, ts)`,
    });
    const rows = [
      { id: '0f8fad5b-d9cb-469f-a165-70867728950e', ts: '2024-03-01T10:20:30.123Z', attrs: { device: 'tv', 'quote"s': "it's" }, kind: 'film_progress', position: 42, tags: ['a', 'b\tc'] },
      { id: '7c9e6679-7425-40de-944b-e07fc1f90ae7', ts: '2024-03-01T10:20:31.007+02:00', attrs: {}, kind: 'like', position: null, tags: [] },
    ];
    const inserted = await ch.insert({ table: 'events', values: rows, format: 'JSONEachRow', clickhouse_settings: { date_time_input_format: 'best_effort' } });
    expect(inserted.executed).toBe(true);
    expect(inserted.summary?.written_rows).toBe('2');

    const eachRow = await (await ch.query({ query: 'SELECT * FROM events ORDER BY kind', format: 'JSONEachRow' })).json();
    expect(eachRow).toEqual([
      { id: rows[0]?.id, ts: '2024-03-01 10:20:30.123', attrs: { device: 'tv', 'quote"s': "it's" }, kind: 'film_progress', position: 42, tags: ['a', 'b\tc'] },
      { id: rows[1]?.id, ts: '2024-03-01 08:20:31.007', attrs: {}, kind: 'like', position: null, tags: [] },
    ]);

    const json = await (await ch.query({ query: 'SELECT id, toUnixTimestamp64Milli(ts) AS ms FROM events ORDER BY kind', format: 'JSON' })).json<{ id: string; ms: unknown }>();
    expect(json.meta?.map((m) => m.type)).toEqual(['UUID', 'Int64']);
    expect(json.data.map((r) => r.ms)).toEqual([1709288430123, 1709281231007]);
    // 64-bit integers are quoted only when asked (the 26.x default is unquoted).
    const quoted = await (await ch.query({ query: 'SELECT toInt64(1) AS x', format: 'JSONEachRow', clickhouse_settings: { output_format_json_quote_64bit_integers: 1 } })).json();
    expect(quoted).toEqual([{ x: '1' }]);
  });

  it('binds query parameters exactly as a server does (UUID, String with escapes, Array(String), DateTime64)', async () => {
    const ch = client();
    const s = "it's a \\ backslash,\nnew line,\ttab, 'quotes' and \"double\" {braces}";
    const a = ["o'clock", 'back\\slash', 'tab\there', 'line\nbreak', ''];
    const d = new Date('2024-05-06T07:08:09.345Z');
    const id = '5f2b7c1e-0d3a-4b8e-9c51-5a3a1f7e2b11';
    const rs = await ch.query({
      query: 'SELECT {id:UUID} AS id, {s:String} AS s, {a:Array(String)} AS a, toUnixTimestamp64Milli({d:DateTime64(3)}) AS d_ms, {n:Nullable(Int32)} AS n',
      query_params: { id, s, a, d, n: null },
      format: 'JSONEachRow',
    });
    expect(await rs.json()).toEqual([{ id, s, a, d_ms: d.getTime(), n: null }]);
  });

  it('binds large query parameters sent as a multipart body', async () => {
    const ch = client('default', { use_multipart_params: true });
    const big = 'x'.repeat(20_000) + "'\\\n";
    const rs = await ch.query({ query: 'SELECT length({s:String}) AS len, {s:String} = {t:String} AS same', query_params: { s: big, t: big }, format: 'JSONEachRow' });
    expect(await rs.json()).toEqual([{ len: big.length, same: 1 }]);
  });

  it('honours insert_deduplication_token per request, and the token never leaks into a later insert', async () => {
    const { db, ch } = await freshDatabase('dedup');
    await ch.command({ query: `CREATE TABLE ${db}.t (id UInt32, v String) ENGINE = MergeTree ORDER BY id SETTINGS non_replicated_deduplication_window = 100` });
    const batch = [{ id: 1, v: 'a' }, { id: 2, v: 'b' }];
    const count = async (): Promise<number> => Number((await (await ch.query({ query: 'SELECT count() AS c FROM t', format: 'JSONEachRow' })).json<{ c: string }>())[0]?.c);

    await ch.insert({ table: 't', values: batch, format: 'JSONEachRow', clickhouse_settings: { insert_deduplication_token: 'batch-1' } });
    await ch.insert({ table: 't', values: batch, format: 'JSONEachRow', clickhouse_settings: { insert_deduplication_token: 'batch-1' } });
    expect(await count()).toBe(2); // same token: the retry is dropped

    await ch.insert({ table: 't', values: batch, format: 'JSONEachRow', clickhouse_settings: { insert_deduplication_token: 'batch-2' } });
    expect(await count()).toBe(4); // another token: kept

    // The leak bug of chDB's in-process adapter: a later insert with no token reused 'batch-2' and vanished.
    await ch.insert({ table: 't', values: [{ id: 3, v: 'c' }], format: 'JSONEachRow' });
    expect(await count()).toBe(5);
  });

  it('applies per-request settings to that request only', async () => {
    const ch = client();
    const setting = async (name: string, settings: Record<string, string | number> = {}): Promise<unknown> =>
      (await (await ch.query({ query: `SELECT getSetting('${name}') AS v`, format: 'JSONEachRow', clickhouse_settings: settings })).json<{ v: unknown }>())[0]?.v;
    const before = await setting('max_block_size');
    expect(String(await setting('max_block_size', { max_block_size: 1234 }))).toBe('1234');
    expect(await setting('max_block_size')).toEqual(before);
    // A setting that even breaks the reset statement (the session is replaced underneath).
    await rejection(ch.query({ query: 'SELECT 1', clickhouse_settings: { max_query_size: '3' } }));
    expect(await setting('max_block_size')).toEqual(before);
    // A SET statement lasts one request, as over HTTP without a session.
    await ch.command({ query: 'SET max_block_size = 777' });
    expect(await setting('max_block_size')).toEqual(before);
  });

  it('keeps settings of concurrent requests apart', async () => {
    const ch = client('default', { max_open_connections: 20 });
    const sizes = Array.from({ length: 40 }, (_, i) => 1000 + i);
    const seen = await Promise.all(
      sizes.map(async (size, i) => {
        const settings = i % 2 === 0 ? { max_block_size: String(size) } : {};
        const rows = await (await ch.query({ query: "SELECT getSetting('max_block_size') AS v", format: 'JSONEachRow', clickhouse_settings: settings })).json<{ v: unknown }>();
        return Number(rows[0]?.v);
      }),
    );
    const defaultSize = seen[1];
    expect(seen).toEqual(sizes.map((size, i) => (i % 2 === 0 ? size : defaultSize)));
    expect(sizes).not.toContain(defaultSize);
  });

  it('uses the database parameter for unqualified names', async () => {
    const { db, ch } = await freshDatabase('dbparam');
    await ch.command({ query: 'CREATE TABLE here (x UInt8) ENGINE = Memory' });
    await ch.insert({ table: 'here', values: [{ x: 7 }], format: 'JSONEachRow' });
    expect(await (await ch.query({ query: 'SELECT currentDatabase() AS d, sum(x) AS s FROM here', format: 'JSONEachRow' })).json()).toEqual([{ d: db, s: 7 }]);
    expect(await (await client().query({ query: 'SELECT currentDatabase() AS d', format: 'JSONEachRow' })).json()).toEqual([{ d: 'default' }]);
    const e = await rejection(client(`no_such_db_${suffix}`).query({ query: 'SELECT 1' }));
    expect(e.code).toBe('81');
  });

  it('raises ClickHouseError with the server codes: 60 unknown table, 62 syntax, 115 unknown setting', async () => {
    const ch = client();
    const unknownTable = await rejection(ch.query({ query: `SELECT * FROM no_such_table_${suffix}` }));
    expect(unknownTable.code).toBe('60');
    expect(unknownTable.type).toBe('UNKNOWN_TABLE');
    const syntax = await rejection(ch.command({ query: 'CREATE TABLE' }));
    expect(syntax.code).toBe('62');
    expect(syntax.type).toBe('SYNTAX_ERROR');
    const setting = await rejection(ch.query({ query: 'SELECT 1', clickhouse_settings: { no_such_setting_xyz: 1 } as Record<string, number> }));
    expect(setting.code).toBe('115');
    expect(setting.type).toBe('UNKNOWN_SETTING');
  });

  it('rejects multi-statements with code 62 and runs neither', async () => {
    const { db, ch } = await freshDatabase('multi');
    const e = await rejection(ch.command({ query: `CREATE TABLE ${db}.m (x UInt8) ENGINE = Memory; DROP DATABASE ${db}` }));
    expect(e.code).toBe('62');
    expect(e.message).toContain('Multi-statements are not allowed');
    expect(await (await ch.query({ query: `EXISTS TABLE ${db}.m`, format: 'JSONEachRow' })).json()).toEqual([{ result: 0 }]);
    // A trailing semicolon and a semicolon inside a string are one statement.
    expect(await (await ch.query({ query: "SELECT 'a;b' AS s;", format: 'JSONEachRow' })).json()).toEqual([{ s: 'a;b' }]);
  });

  it('accepts gzip request bodies and sends gzip responses when asked', async () => {
    const { db } = await freshDatabase('gzip');
    const ch = client(db, { compression: { request: true, response: true } });
    await ch.command({ query: 'CREATE TABLE z (x UInt32) ENGINE = MergeTree ORDER BY x' });
    await ch.insert({ table: 'z', values: Array.from({ length: 1000 }, (_, x) => ({ x })), format: 'JSONEachRow' });
    expect(await (await ch.query({ query: 'SELECT count() AS c, sum(x) AS s FROM z', format: 'JSONEachRow' })).json()).toEqual([{ c: 1000, s: 499500 }]);

    const raw = await rawRequest('/?enable_http_compression=1', { method: 'POST', headers: { 'Content-Encoding': 'gzip', 'Accept-Encoding': 'gzip' }, body: gzipSync('SELECT 1') });
    expect(raw.status).toBe(200);
    expect(raw.headers['content-encoding']).toBe('gzip');
  });

  it('answers malformed input with ClickHouse errors and keeps serving', async () => {
    const badGzip = await rawRequest('/', { method: 'POST', headers: { 'Content-Encoding': 'gzip' }, body: 'not gzip at all' });
    expect(badGzip.status).toBe(500);
    expect(badGzip.headers['x-clickhouse-exception-code']).toBe('354'); // ZLIB_INFLATE_FAILED: a real server's code (our emulator had said 271)
    expect(badGzip.body).toMatch(/^Code: 354\. DB::Exception: .*\(ZLIB_INFLATE_FAILED\) \(version /);

    const getDdl = await rawRequest(`/?query=${encodeURIComponent(`CREATE DATABASE get_${suffix}`)}`);
    expect(getDdl.headers['x-clickhouse-exception-code']).toBe('164');

    const empty = await rawRequest('/', { method: 'POST', body: '' });
    expect(empty.headers['x-clickhouse-exception-code']).toBe('62');

    const garbage = await new Promise<string>((resolve) => {
      const socket = createConnection({ host: '127.0.0.1', port: server.port }, () => socket.write('\x00\x01 NOT HTTP\r\n\r\n'));
      let text = '';
      socket.on('data', (d) => (text += d.toString()));
      socket.on('close', () => resolve(text));
      socket.on('error', () => resolve(text));
    });
    expect(garbage).toMatch(/^HTTP\/1.1 501 Not Implemented/); // ClickHouse's answer to a request line it cannot parse
    expect((await client().ping()).success).toBe(true);
  });

  it('refuses a second server on the same data directory with a clear message', async () => {
    await expect(startEmbeddedClickHouse({ dataDir })).rejects.toThrow(/already used by another embedded ClickHouse server \(pid \d+/);
    expect((await client().ping()).success).toBe(true);
  });

  it('says in one line why it did not start: a port taken, a missing libchdb, one that does not load', async () => {
    const other = mkdtempSync(join(tmpdir(), 'embedded-ch-fail-'));
    const oneLine = async (options: Parameters<typeof startEmbeddedClickHouse>[0]) => {
      const error = await startEmbeddedClickHouse(options).then(() => undefined, (e: unknown) => e as Error);
      expect(error, 'the start failed').toBeInstanceOf(Error);
      expect(error!.message).not.toContain('\n');
      return error!.message;
    };
    try {
      expect(await oneLine({ dataDir: other, port: server.port })).toMatch(/did not start: Code: 210\. .*Address already in use/);
      process.env.CHDB_LIBRARY_PATH = join(other, 'no-such-libchdb.so');
      expect(await oneLine({ dataDir: other })).toMatch(/did not start: CHDB_LIBRARY_PATH .* does not exist/);
      process.env.CHDB_LIBRARY_PATH = join(other, 'embedded-server.xml'); // a file, but no library
      expect(await oneLine({ dataDir: other })).toMatch(/did not start: cannot load .*embedded-server\.xml .*set CHDB_LIBRARY_PATH/);
    } finally {
      delete process.env.CHDB_LIBRARY_PATH;
      rmSync(other, { recursive: true, force: true });
    }
    expect((await client().ping()).success).toBe(true);
  });

  it('keeps MergeTree data across stop and start on the same directory and port', async () => {
    const { db, ch } = await freshDatabase('persist');
    await ch.command({ query: 'CREATE TABLE p (id UInt32, at DateTime64(3)) ENGINE = MergeTree ORDER BY id' });
    await ch.insert({ table: 'p', values: [{ id: 1, at: '2024-01-01 00:00:00.001' }, { id: 2, at: '2024-01-01 00:00:00.002' }], format: 'JSONEachRow' });
    const port = server.port;
    await server.stop();
    await server.stop(); // idempotent
    expect((await ch.ping()).success).toBe(false);

    server = await startEmbeddedClickHouse({ dataDir, port });
    expect(server.port).toBe(port);
    const again = client(db);
    expect(await (await again.query({ query: 'SELECT id, at FROM p ORDER BY id', format: 'JSONEachRow' })).json()).toEqual([
      { id: 1, at: '2024-01-01 00:00:00.001' },
      { id: 2, at: '2024-01-01 00:00:00.002' },
    ]);
  });
});
