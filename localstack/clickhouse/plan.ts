/**
 * Request planning of the embedded ClickHouse server: what one HTTP request asks the engine to do,
 * which statements surround it on the shared chDB session, and how the answer is labelled. Pure:
 * values in, values out (no socket, no engine), so each rule is unit-tested without a subprocess.
 */
import type { IncomingHttpHeaders } from 'node:http';
import type { EngineResult } from './engine.ts';
import {
  ClickHouseHttpError,
  isTruthy,
  MODIFYING_KINDS,
  parseEngineError,
  parseMultipart,
  quoteIdentifier,
  quoteString,
  type RequestParams,
} from './protocol.ts';
import { inspectStatement, StatementSyntaxError, type StatementInfo } from './sql.ts';

/** What one request asks the engine to do. */
export interface QueryPlan {
  readonly statement: StatementInfo;
  /** Full SQL (non-INSERT or INSERT run as text) or the INSERT prefix. */
  readonly sql: string;
  /** INSERT data (empty when the statement carries its own, e.g. VALUES or SELECT). */
  readonly insertData?: Buffer;
  readonly database: string;
  readonly settings: ReadonlyMap<string, string>;
  readonly queryParams: Readonly<Record<string, string>>;
  /** Format the engine uses when the query names none. */
  readonly defaultFormat: string;
}

/** The first value of a request header. */
export function headerValue(headers: IncomingHttpHeaders, name: string): string | undefined {
  const v = headers[name];
  return Array.isArray(v) ? v[0] : v;
}

/** `/ping`, `/replicas_status` and a bare GET or HEAD of `/`: answered "Ok." without the engine. */
export function isHealthCheck(method: string, url: URL): boolean {
  return url.pathname === '/ping' || url.pathname === '/replicas_status' || (url.pathname === '/' && !url.searchParams.has('query') && (method === 'GET' || method === 'HEAD'));
}

/**
 * The request's parameters in the order a server reads them: URL, then a multipart body's fields
 * (the body is then no query text), then the header forms of `database` and `default_format`
 * (the URL wins when both are given).
 */
export function requestParameters(url: URL, headers: IncomingHttpHeaders, body: Buffer): { entries: Array<[string, string]>; body: Buffer } {
  const entries: Array<[string, string]> = [...url.searchParams];
  const contentType = headerValue(headers, 'content-type') ?? '';
  let rest = body;
  if (/^multipart\/form-data/i.test(contentType)) {
    entries.push(...parseMultipart(body, contentType));
    rest = Buffer.alloc(0);
  }
  const headerDatabase = headerValue(headers, 'x-clickhouse-database');
  if (headerDatabase !== undefined && !url.searchParams.has('database')) entries.push(['database', headerDatabase]);
  const headerFormat = headerValue(headers, 'x-clickhouse-format');
  if (headerFormat !== undefined && !url.searchParams.has('default_format')) entries.push(['default_format', headerFormat]);
  return { entries, body: rest };
}

/** Refuses what the embedded server does not do: ClickHouse's native compression. */
export function assertSupported(params: RequestParams): void {
  if (isTruthy(params.http.get('compress')) || isTruthy(params.http.get('decompress'))) {
    throw new ClickHouseHttpError(48, 'ClickHouse native compression (compress/decompress=1) is not supported by the embedded server; use Content-Encoding / enable_http_compression', 'NOT_IMPLEMENTED');
  }
}

/**
 * Splits query text and body the way a server does: URL query + "\n" + body; an INSERT's data
 * stays bytes. A GET, or `readonly` set, refuses statements that modify anything.
 */
export function planQuery(params: RequestParams, body: Buffer, isGet: boolean, formats?: ReadonlySet<string>): QueryPlan {
  const settings = new Map(params.settings);
  // `readonly` is emulated, never SET: a session left read-only could not reset itself.
  const readonly = settings.get('readonly');
  settings.delete('readonly');
  const readOnlyRequest = isGet || (readonly !== undefined && readonly !== '0');

  let statement: StatementInfo;
  let sql: string;
  let insertData: Buffer | undefined;
  const urlQuery = params.query ?? '';
  const fromUrl = urlQuery !== '' ? inspectStatement(urlQuery, formats) : undefined;
  if (fromUrl !== undefined && fromUrl.kind === 'INSERT' && fromUrl.dataOffset !== undefined) {
    // The usual client INSERT: statement in the URL, data in the body (kept as bytes).
    statement = fromUrl;
    sql = urlQuery.slice(0, fromUrl.dataOffset).trimEnd();
    const inline = urlQuery.slice(fromUrl.dataOffset);
    insertData = inline === '' ? body : Buffer.concat([Buffer.from(body.length > 0 ? `${inline}\n` : inline), body]);
  } else {
    const text = urlQuery === '' ? body.toString('utf8') : body.length > 0 ? `${urlQuery}\n${body.toString('utf8')}` : urlQuery;
    statement = inspectStatement(text, formats);
    if (statement.kind === 'INSERT' && statement.dataOffset !== undefined) {
      sql = text.slice(0, statement.dataOffset).trimEnd();
      insertData = Buffer.from(text.slice(statement.dataOffset));
    } else {
      sql = text.slice(0, statement.end);
      if (statement.kind === 'INSERT') insertData = Buffer.alloc(0);
    }
  }

  if (readOnlyRequest && MODIFYING_KINDS.has(statement.kind)) {
    throw new ClickHouseHttpError(
      164,
      isGet
        ? 'Cannot execute query in readonly mode. For queries over HTTP, method GET implies readonly. You should use method POST for modifying queries'
        : 'Cannot execute query in readonly mode',
      'READONLY',
    );
  }
  return {
    statement,
    sql,
    insertData,
    database: params.database,
    settings,
    queryParams: params.queryParams,
    defaultFormat: params.defaultFormat ?? 'TabSeparated',
  };
}

/** One call on the engine: a native insert of bytes, or a query. */
export type EngineCall =
  | { readonly method: 'insert'; readonly sql: string; readonly data: Buffer }
  | { readonly method: 'query'; readonly sql: string; readonly format: string; readonly params: Readonly<Record<string, string>> };

/** How a plan runs on the shared session: what comes before it, the call, and what to undo after. */
export interface SessionSteps {
  /** `USE …; SET …` for this request only; undefined when the session is already right. */
  readonly prelude?: string;
  readonly call: EngineCall;
  /** The statement may have changed the session's database (USE, DROP, RENAME, DETACH). */
  readonly forgetsDatabase: boolean;
  /** Settings to set back to DEFAULT; `reopen`: a SET statement ran, only a new session undoes it. */
  readonly restore?: { readonly names: string[]; readonly reopen: boolean };
}

/** Plans the session steps of `plan`, given the database the session uses now (undefined: unknown). */
export function sessionSteps(plan: QueryPlan, currentDatabase: string | undefined): SessionSteps {
  const prelude: string[] = [];
  if (plan.database !== currentDatabase) prelude.push(`USE ${quoteIdentifier(plan.database)}`);
  if (plan.settings.size > 0) {
    prelude.push(`SET ${[...plan.settings].map(([name, value]) => `${name} = ${quoteString(value)}`).join(', ')}`);
  }
  const hasParams = Object.keys(plan.queryParams).length > 0;
  // Query parameters need the query path, so such an INSERT runs as text.
  const call: EngineCall = plan.insertData !== undefined && !hasParams
    ? { method: 'insert', sql: plan.sql, data: plan.insertData }
    : {
        method: 'query',
        sql: plan.insertData !== undefined && plan.insertData.length > 0 ? `${plan.sql}\n${plan.insertData.toString('utf8')}` : plan.sql,
        format: plan.defaultFormat,
        params: plan.queryParams,
      };
  const kind = plan.statement.kind;
  // A SET statement over HTTP lasts one request on a server; here it would stick to the session.
  const restore = plan.settings.size > 0 || kind === 'SET' ? { names: [...plan.settings.keys()], reopen: kind === 'SET' } : undefined;
  return {
    ...(prelude.length > 0 ? { prelude: prelude.join('; ') } : {}),
    call,
    forgetsDatabase: kind === 'USE' || kind === 'DROP' || kind === 'RENAME' || kind === 'DETACH',
    ...(restore ? { restore } : {}),
  };
}

/** The statement that sets `names` back to their defaults. */
export function resetSettingsSql(names: readonly string[]): string {
  return `SET ${names.map((n) => `${n} = DEFAULT`).join(', ')}`;
}

/** The format of the answer: the query's own FORMAT clause, else the request's default. */
export function responseFormat(plan: QueryPlan): string {
  return plan.statement.kind !== 'INSERT' && plan.statement.format !== undefined ? plan.statement.format : plan.defaultFormat;
}

/** The X-ClickHouse-Summary header's fields, as strings like a server's. */
export function resultSummary(plan: QueryPlan, result: EngineResult): Record<string, string> {
  return {
    read_rows: String(result.readRows),
    read_bytes: String(result.readBytes),
    written_rows: String(result.writtenRows),
    written_bytes: String(result.writtenBytes),
    total_rows_to_read: String(result.readRows),
    result_rows: String(result.writtenRows),
    result_bytes: String(plan.insertData !== undefined ? result.writtenBytes : result.output.length),
    elapsed_ns: String(Math.round(result.elapsedSeconds * 1e9)),
  };
}

/** How the answer is compressed: the first codec of Accept-Encoding we produce, when the request enables it. */
export function responseEncoding(
  settings: ReadonlyMap<string, string>,
  acceptEncoding: string | undefined,
  httpCompressionDefault: string,
): { encoding: 'gzip' | 'deflate' | 'br'; level: number } | undefined {
  if (!isTruthy(settings.get('enable_http_compression') ?? httpCompressionDefault)) return undefined;
  const encoding = pickEncoding(acceptEncoding);
  if (encoding === undefined) return undefined;
  const levelText = settings.get('http_zlib_compression_level');
  return { encoding, level: levelText !== undefined && /^\d$/.test(levelText) ? Number(levelText) : 3 };
}

/** First codec of Accept-Encoding we can produce. */
export function pickEncoding(accept: string | undefined): 'gzip' | 'deflate' | 'br' | undefined {
  for (const token of (accept ?? '').split(',')) {
    const name = token.split(';')[0]?.trim().toLowerCase();
    if (name === 'gzip' || name === 'x-gzip') return 'gzip';
    if (name === 'deflate' || name === 'br') return name;
  }
  return undefined;
}

/** A failure as the error a server answers: code, name, message; `unexpected` when it is no ClickHouse error. */
export function errorReply(e: unknown, errorNames: ReadonlyMap<number, string>): { code: number; codeName: string; message: string; unexpected: boolean } {
  let code: number;
  let name: string | undefined;
  let message: string;
  let unexpected = false;
  if (e instanceof ClickHouseHttpError) {
    ({ code, message } = e);
    name = e.codeName;
  } else if (e instanceof StatementSyntaxError) {
    code = e.clickhouseCode;
    message = e.message;
  } else {
    const text = e instanceof Error ? e.message : String(e);
    if (/Code: \d+\./.test(text)) {
      ({ code, message, codeName: name } = parseEngineError(text));
    } else {
      code = 1001;
      message = text;
      unexpected = true;
    }
  }
  return { code, codeName: name ?? errorNames.get(code) ?? 'UNKNOWN_EXCEPTION', message, unexpected };
}
