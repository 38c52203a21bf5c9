import { describe, expect, it } from 'vitest';
import { classifyParams, contentTypeFor, credentialsOf, formatErrorBody, httpStatusFor, parseEngineError, parseMultipart, quoteString } from '../../localstack/clickhouse/protocol.ts';
import { inspectStatement, StatementSyntaxError } from '../../localstack/clickhouse/sql.ts';

const formats = new Set(['JSON', 'JSONEACHROW', 'TABSEPARATED', 'CSV', 'VALUES']);

describe('inspectStatement (the embedded ClickHouse server\'s SQL scanner)', () => {
  it('finds the kind and a top-level output FORMAT', () => {
    expect(inspectStatement('SELECT 1 FORMAT JSONEachRow', formats)).toMatchObject({ kind: 'SELECT', format: 'JSONEachRow' });
    expect(inspectStatement('  -- comment\n/* c */ with x as (select 1) select * from x\nFORMAT JSON', formats)).toMatchObject({ kind: 'WITH', format: 'JSON' });
  });

  it('does not read a column or function called format as the clause', () => {
    expect(inspectStatement("SELECT format('{}', 'x'), a, format FROM t", formats).format).toBeUndefined();
    expect(inspectStatement('SELECT format FROM t', formats).format).toBeUndefined();
  });

  it('marks where the inline data of INSERT … FORMAT starts, without scanning the data', () => {
    const sql = 'INSERT INTO db.t (a, b) FORMAT JSONEachRow\n{"a":"x; DROP TABLE y"}';
    const info = inspectStatement(sql, formats);
    expect(info.kind).toBe('INSERT');
    expect(sql.slice(info.dataOffset)).toBe('{"a":"x; DROP TABLE y"}');
    expect(inspectStatement('INSERT INTO t VALUES', formats).dataOffset).toBeUndefined();
  });

  it('accepts a trailing semicolon and semicolons inside strings, quoted names and comments', () => {
    expect(inspectStatement("SELECT 'a;b', `c;d`, \"e;f\" -- ; x\n ; ;  ", formats).kind).toBe('SELECT');
    expect(inspectStatement("SELECT 'it\\'s;' /* ; */", formats).kind).toBe('SELECT');
  });

  it('rejects a second statement and an empty query with SYNTAX_ERROR wording', () => {
    expect(() => inspectStatement('SELECT 1; SELECT 2', formats)).toThrow(StatementSyntaxError);
    expect(() => inspectStatement('SELECT 1; SELECT 2', formats)).toThrow(/Multi-statements are not allowed/);
    expect(() => inspectStatement("INSERT INTO t VALUES (1, 'a'); DROP TABLE t", formats)).toThrow(/Multi-statements/);
    expect(() => inspectStatement('  -- only a comment\n', formats)).toThrow(/Empty query/);
  });
});

describe('protocol helpers', () => {
  it('sorts URL parameters into settings, query parameters and HTTP options', () => {
    const p = classifyParams([
      ['query', 'SELECT 1'], ['database', 'db1'], ['param_id', "a\\'b"], ['max_threads', '1'], ['query_id', 'q1'], ['max_threads', '2'], ['wait_end_of_query', '1'],
    ]);
    expect(p).toMatchObject({ query: 'SELECT 1', database: 'db1', queryId: 'q1', queryParams: { id: "a\\'b" } });
    expect([...p.settings]).toEqual([['max_threads', '2']]);
    expect(classifyParams([]).database).toBe('default');
    expect(() => classifyParams([['bad name', '1']])).toThrow(/Unknown setting/);
  });

  it('quotes SET values so any text stays one literal', () => {
    expect(quoteString("a'b\\c")).toBe("'a\\'b\\\\c'");
  });

  it('unwraps chDB\'s nested exception text into code, message and name', () => {
    expect(parseEngineError('Code: 108. DB::Exception: Code: 108. DB::Exception: No data to insert. (NO_DATA_TO_INSERT) (version 26.7.2.1). (NO_DATA_TO_INSERT)')).toEqual({ code: 108, message: 'No data to insert.', codeName: 'NO_DATA_TO_INSERT' });
    expect(parseEngineError("Code: 60. DB::Exception: Unknown table expression identifier 'x' in scope SELECT * FROM x. (UNKNOWN_TABLE)")).toEqual({ code: 60, message: "Unknown table expression identifier 'x' in scope SELECT * FROM x.", codeName: 'UNKNOWN_TABLE' });
    expect(formatErrorBody(60, 'UNKNOWN_TABLE', 'No table t', '26.7')).toBe('Code: 60. DB::Exception: No table t. (UNKNOWN_TABLE) (version 26.7)\n');
  });

  it('maps error names and formats like a server', () => {
    expect(httpStatusFor('SYNTAX_ERROR')).toBe(400);
    expect(httpStatusFor('UNKNOWN_TABLE')).toBe(404);
    expect(httpStatusFor('TOO_MANY_PARTS')).toBe(500);
    expect(contentTypeFor('JSONEachRow')).toBe('application/x-ndjson; charset=UTF-8');
    expect(contentTypeFor('JSON')).toBe('application/json; charset=UTF-8');
    expect(contentTypeFor('TabSeparated')).toBe('text/tab-separated-values; charset=UTF-8');
  });

  it('reads credentials from Basic auth, X-ClickHouse headers or parameters', () => {
    expect(credentialsOf({ authorization: `Basic ${Buffer.from('u:p:w').toString('base64')}` }, new Map())).toEqual({ user: 'u', password: 'p:w' });
    expect(credentialsOf({ 'x-clickhouse-user': 'a', 'x-clickhouse-key': 'b' }, new Map())).toEqual({ user: 'a', password: 'b' });
    expect(credentialsOf({}, new Map([['user', 'c']]))).toEqual({ user: 'c', password: '' });
  });

  it('parses the multipart body the client sends for large parameters', () => {
    const b = 'B1';
    const body = Buffer.from(`--${b}\r\nContent-Disposition: form-data; name="query"\r\n\r\nSELECT {s:String}\r\n--${b}\r\nContent-Disposition: form-data; name="param_s"\r\n\r\nline\\none\r\n--${b}--\r\n`);
    expect([...parseMultipart(body, `multipart/form-data; boundary=${b}`)]).toEqual([['query', 'SELECT {s:String}'], ['param_s', 'line\\none']]);
  });
});
