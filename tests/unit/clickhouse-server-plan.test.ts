import { gzipSync } from 'node:zlib';
import { describe, expect, it } from 'vitest';
import { decodeBody } from '../../localstack/clickhouse/body.ts';
import type { EngineResult } from '../../localstack/clickhouse/engine.ts';
import { assertSupported, errorReply, isHealthCheck, pickEncoding, planQuery, requestParameters, resetSettingsSql, responseEncoding, responseFormat, resultSummary, sessionSteps } from '../../localstack/clickhouse/plan.ts';
import { ClickHouseHttpError, classifyParams } from '../../localstack/clickhouse/protocol.ts';
import { inspectStatement } from '../../localstack/clickhouse/sql.ts';

const formats = new Set(['JSONEACHROW', 'TABSEPARATED', 'JSON', 'CSV']);
const url = (query: string) => new URL(`http://127.0.0.1/${query}`);
const plan = (entries: Array<[string, string]>, body = '', isGet = false) => planQuery(classifyParams(entries), Buffer.from(body), isGet, formats);
const result = (fields: Partial<EngineResult> = {}): EngineResult => ({ output: Buffer.from('1\n'), elapsedSeconds: 0.0125, readRows: 1, readBytes: 8, writtenRows: 0, writtenBytes: 0, ...fields });

describe('embedded ClickHouse: which requests are health checks', () => {
  it('answers /ping, /replicas_status and a bare GET or HEAD of / without the engine', () => {
    expect(isHealthCheck('GET', url('ping'))).toBe(true);
    expect(isHealthCheck('POST', url('replicas_status'))).toBe(true);
    expect(isHealthCheck('HEAD', url(''))).toBe(true);
    expect(isHealthCheck('GET', url('?query=SELECT+1'))).toBe(false);
    expect(isHealthCheck('POST', url(''))).toBe(false);
  });
});

describe('embedded ClickHouse: request parameters', () => {
  it('takes database and default format from headers unless the URL names them', () => {
    const headers = { 'x-clickhouse-database': 'ugc', 'x-clickhouse-format': 'JSON' };
    expect(requestParameters(url('?query=SELECT+1'), headers, Buffer.alloc(0)).entries)
      .toEqual([['query', 'SELECT 1'], ['database', 'ugc'], ['default_format', 'JSON']]);
    expect(requestParameters(url('?database=other&default_format=CSV'), headers, Buffer.alloc(0)).entries)
      .toEqual([['database', 'other'], ['default_format', 'CSV']]);
  });

  it('turns a multipart body into parameters, leaving no query text in the body', () => {
    const body = Buffer.from('--B\r\nContent-Disposition: form-data; name="param_s"\r\n\r\nx\r\n--B--\r\n');
    const { entries, body: rest } = requestParameters(url('?query=SELECT+%7Bs%3AString%7D'), { 'content-type': 'multipart/form-data; boundary=B' }, body);
    expect(entries).toEqual([['query', 'SELECT {s:String}'], ['param_s', 'x']]);
    expect(rest.length).toBe(0);
  });

  it('refuses ClickHouse native compression with NOT_IMPLEMENTED', () => {
    expect(() => assertSupported(classifyParams([['compress', '1']]))).toThrow(expect.objectContaining({ code: 48, codeName: 'NOT_IMPLEMENTED' }));
    expect(() => assertSupported(classifyParams([['compress', '0']]))).not.toThrow();
  });
});

describe('embedded ClickHouse: query planning', () => {
  it('keeps the body of the usual client INSERT as bytes, the statement from the URL', () => {
    const p = plan([['query', 'INSERT INTO events FORMAT JSONEachRow']], '{"a":1}\n');
    expect(p.sql).toBe('INSERT INTO events FORMAT JSONEachRow');
    expect(p.insertData?.toString()).toBe('{"a":1}\n');
    expect(p.statement.kind).toBe('INSERT');
  });

  it('puts data written inline in the URL before the body, on its own line', () => {
    expect(plan([['query', 'INSERT INTO t FORMAT CSV 1,2']], '3,4').insertData?.toString()).toBe('1,2\n3,4');
    expect(plan([['query', 'INSERT INTO t FORMAT CSV 1,2']]).insertData?.toString()).toBe('1,2');
  });

  it('joins URL query and body with a newline, like a server', () => {
    expect(plan([['query', 'SELECT']], '1').sql).toBe('SELECT\n1');
    expect(plan([], 'SELECT 2 FORMAT JSON').sql).toBe('SELECT 2 FORMAT JSON');
  });

  it('splits an INSERT sent whole in the body into statement and data', () => {
    const p = plan([], 'INSERT INTO t FORMAT CSV\n1,2\n');
    expect(p.sql).toBe('INSERT INTO t FORMAT CSV');
    expect(p.insertData?.toString()).toBe('1,2\n');
    expect(plan([], 'INSERT INTO t VALUES (1)').insertData?.length).toBe(0);
  });

  it('refuses a modifying statement over GET or with readonly set, and lets reads through', () => {
    expect(() => plan([['query', 'DROP TABLE t']], '', true)).toThrow(/method GET implies readonly/);
    expect(() => plan([['readonly', '1']], 'CREATE TABLE t (x UInt8) ENGINE = Memory')).toThrow(new ClickHouseHttpError(164, 'Cannot execute query in readonly mode', 'READONLY'));
    expect(plan([['query', 'SELECT 1']], '', true).statement.kind).toBe('SELECT');
    expect(() => plan([['readonly', '0']], 'DROP TABLE t')).not.toThrow();
  });

  it('never passes readonly on to the session, and keeps the other settings', () => {
    const p = plan([['readonly', '2'], ['max_threads', '1'], ['database', 'ugc'], ['default_format', 'JSON']], 'SELECT 1');
    expect([...p.settings]).toEqual([['max_threads', '1']]);
    expect(p).toMatchObject({ database: 'ugc', defaultFormat: 'JSON' });
    expect(plan([], 'SELECT 1').defaultFormat).toBe('TabSeparated');
  });
});

describe('embedded ClickHouse: session steps around a request', () => {
  it('switches database and sets settings before the query, then resets them to DEFAULT', () => {
    const steps = sessionSteps(plan([['database', 'ugc'], ['max_threads', '1'], ['insert_deduplication_token', "a'b"]], 'SELECT 1'), 'default');
    expect(steps.prelude).toBe("USE `ugc`; SET max_threads = '1', insert_deduplication_token = 'a\\'b'");
    expect(steps.restore).toEqual({ names: ['max_threads', 'insert_deduplication_token'], reopen: false });
    expect(resetSettingsSql(steps.restore!.names)).toBe('SET max_threads = DEFAULT, insert_deduplication_token = DEFAULT');
  });

  it('needs no prelude and no reset when the session already uses the database', () => {
    const steps = sessionSteps(plan([['database', 'ugc']], 'SELECT 1'), 'ugc');
    expect(steps.prelude).toBeUndefined();
    expect(steps.restore).toBeUndefined();
    expect(steps.call).toEqual({ method: 'query', sql: 'SELECT 1', format: 'TabSeparated', params: {} });
  });

  it('reopens the session after a SET statement, which would otherwise stick', () => {
    expect(sessionSteps(plan([], 'SET max_threads = 1'), 'default').restore).toEqual({ names: [], reopen: true });
  });

  it('forgets the session database after statements that may change or remove it', () => {
    for (const sql of ['USE other', 'DROP DATABASE x', 'RENAME TABLE a TO b', 'DETACH TABLE t']) {
      expect(sessionSteps(plan([], sql), 'default').forgetsDatabase).toBe(true);
    }
    expect(sessionSteps(plan([], 'SELECT 1'), 'default').forgetsDatabase).toBe(false);
    // Unknown database (after such a statement): always USE it again.
    expect(sessionSteps(plan([], 'SELECT 1'), undefined).prelude).toBe('USE `default`');
  });

  it('inserts bytes natively, but runs an INSERT with query parameters as text', () => {
    const native = sessionSteps(plan([['query', 'INSERT INTO t FORMAT JSONEachRow']], '{"a":1}'), 'default').call;
    expect(native).toEqual({ method: 'insert', sql: 'INSERT INTO t FORMAT JSONEachRow', data: Buffer.from('{"a":1}') });
    const withParams = sessionSteps(plan([['query', 'INSERT INTO t FORMAT CSV'], ['param_x', '1']], '1,2'), 'default').call;
    expect(withParams).toEqual({ method: 'query', sql: 'INSERT INTO t FORMAT CSV\n1,2', format: 'TabSeparated', params: { x: '1' } });
  });
});

describe('embedded ClickHouse: the answer', () => {
  it('answers in the query’s FORMAT, else the default format; an INSERT’s FORMAT is its input', () => {
    expect(responseFormat(plan([], 'SELECT 1 FORMAT JSON'))).toBe('JSON');
    expect(responseFormat(plan([['default_format', 'CSV']], 'SELECT 1'))).toBe('CSV');
    expect(responseFormat(plan([['query', 'INSERT INTO t FORMAT JSONEachRow']], '{}'))).toBe('TabSeparated');
  });

  it('reports written bytes for an INSERT and output bytes for a query in the summary', () => {
    const insert = resultSummary(plan([['query', 'INSERT INTO t FORMAT CSV']], '1'), result({ writtenRows: 2, writtenBytes: 16 }));
    expect(insert).toMatchObject({ written_rows: '2', written_bytes: '16', result_rows: '2', result_bytes: '16', elapsed_ns: '12500000' });
    expect(resultSummary(plan([], 'SELECT 1'), result()).result_bytes).toBe('2');
  });

  it('compresses only when enabled, with the first codec the client accepts, at level 3 unless asked', () => {
    const on = new Map([['enable_http_compression', '1']]);
    expect(responseEncoding(on, 'br, gzip', '0')).toEqual({ encoding: 'br', level: 3 });
    expect(responseEncoding(new Map([...on, ['http_zlib_compression_level', '7']]), 'gzip', '0')).toEqual({ encoding: 'gzip', level: 7 });
    expect(responseEncoding(new Map(), 'gzip', '0')).toBeUndefined();
    expect(responseEncoding(new Map(), 'gzip', '1')).toEqual({ encoding: 'gzip', level: 3 });
    expect(responseEncoding(on, 'zstd', '0')).toBeUndefined();
    expect(pickEncoding('x-gzip;q=0.5')).toBe('gzip');
  });

  it('answers errors with ClickHouse codes and names, and flags those that are no ClickHouse error', () => {
    const names = new Map([[60, 'UNKNOWN_TABLE'], [1001, 'STD_EXCEPTION']]);
    expect(errorReply(new ClickHouseHttpError(164, 'ro', 'READONLY'), names)).toEqual({ code: 164, codeName: 'READONLY', message: 'ro', unexpected: false });
    expect(errorReply(new Error('Code: 60. DB::Exception: No table t. (UNKNOWN_TABLE)'), names)).toMatchObject({ code: 60, codeName: 'UNKNOWN_TABLE', unexpected: false });
    let syntax: unknown;
    try { inspectStatement('SELECT 1; SELECT 2'); } catch (e) { syntax = e; }
    expect(errorReply(syntax, names)).toMatchObject({ code: 62, unexpected: false });
    expect(errorReply(new TypeError('boom'), names)).toEqual({ code: 1001, codeName: 'STD_EXCEPTION', message: 'boom', unexpected: true });
    expect(errorReply('x', new Map()).codeName).toBe('UNKNOWN_EXCEPTION');
  });
});

describe('embedded ClickHouse: request bodies', () => {
  it('undoes gzip, refuses unknown encodings and caps the decompressed size', async () => {
    const text = Buffer.from('SELECT 1'.repeat(100));
    expect(await decodeBody(gzipSync(text), 'gzip', 10_000)).toEqual(text);
    await expect(decodeBody(text, 'zstd', 10_000)).rejects.toMatchObject({ codeName: 'UNKNOWN_COMPRESSION_METHOD' });
    await expect(decodeBody(gzipSync(text), 'gzip', 100)).rejects.toMatchObject({ codeName: 'QUERY_IS_TOO_LARGE' });
    await expect(decodeBody(Buffer.from('not gzip'), 'gzip', 100)).rejects.toMatchObject({ codeName: 'CANNOT_DECOMPRESS' });
  });
});
