/**
 * Pure pieces of ClickHouse's HTTP interface: how a request's URL parameters split into
 * settings / query parameters / HTTP options, how errors look on the wire, which HTTP status
 * and Content-Type a server answers with. No I/O here, so each piece is unit-tested alone.
 */

/** An error answered the way a ClickHouse server answers: code, name, message. */
export class ClickHouseHttpError extends Error {
  constructor(
    readonly code: number,
    message: string,
    /** Set when known; otherwise the server looks the name up from the code. */
    readonly codeName?: string,
  ) {
    super(message);
    this.name = 'ClickHouseHttpError';
  }
}

/** URL parameters the HTTP handler consumes itself; they are not settings. */
export const HTTP_ONLY_PARAMS: ReadonlySet<string> = new Set([
  'query',
  'database',
  'default_format',
  'query_id',
  'session_id',
  'session_timeout',
  'session_check',
  'user',
  'password',
  'quota_key',
  'compress',
  'decompress',
  'buffer_size',
  'wait_end_of_query',
  'role',
  'stacktrace',
  'client_protocol_version',
  'close_session',
]);

/** A request's URL parameters, sorted into what the handler does with each. */
export interface RequestParams {
  readonly query?: string;
  readonly database: string;
  readonly defaultFormat?: string;
  readonly queryId?: string;
  /** Settings for this request only, in URL order (a repeated name: last wins, like a server). */
  readonly settings: ReadonlyMap<string, string>;
  /** `param_x=v` → x → v, the value still in ClickHouse's escaped text form. */
  readonly queryParams: Readonly<Record<string, string>>;
  /** Every HTTP-only parameter, for the options the handler checks (compress, user …). */
  readonly http: ReadonlyMap<string, string>;
}

const SETTING_NAME = /^[A-Za-z_][A-Za-z0-9_]*$/;

/** Sorts URL (and multipart) parameters into settings, query parameters and HTTP options. */
export function classifyParams(entries: Iterable<readonly [string, string]>): RequestParams {
  const settings = new Map<string, string>();
  const queryParams: Record<string, string> = {};
  const http = new Map<string, string>();
  for (const [name, value] of entries) {
    if (name.startsWith('param_')) {
      queryParams[name.slice('param_'.length)] = value;
    } else if (HTTP_ONLY_PARAMS.has(name)) {
      http.set(name, value);
    } else {
      if (!SETTING_NAME.test(name)) throw new ClickHouseHttpError(115, `Unknown setting '${name}'.`, 'UNKNOWN_SETTING');
      settings.delete(name); // keep URL order of the winning value
      settings.set(name, value);
    }
  }
  const database = http.get('database');
  return {
    query: http.get('query'),
    database: database === undefined || database === '' ? 'default' : database,
    defaultFormat: nonEmpty(http.get('default_format')),
    queryId: nonEmpty(http.get('query_id')),
    settings,
    queryParams,
    http,
  };
}

function nonEmpty(s: string | undefined): string | undefined {
  return s === undefined || s === '' ? undefined : s;
}

/** A ClickHouse string literal for `value` (used for SET values, which the engine then parses per type). */
export function quoteString(value: string): string {
  return `'${value.replace(/\\/g, '\\\\').replace(/'/g, "\\'")}'`;
}

/** A backtick-quoted identifier. */
export function quoteIdentifier(name: string): string {
  return `\`${name.replace(/\\/g, '\\\\').replace(/`/g, '\\`')}\``;
}

/** The parts of an engine error message: code, bare message, error name if present. */
export interface ParsedEngineError {
  readonly code: number;
  readonly message: string;
  readonly codeName?: string;
}

/**
 * Splits a chDB error text ("Code: 60. DB::Exception: … (UNKNOWN_TABLE)", sometimes wrapped
 * several times with "(version …)" suffixes) into code, innermost message and name.
 */
export function parseEngineError(text: string): ParsedEngineError {
  const codeMatch = /Code: (\d+)\./.exec(text);
  const code = codeMatch?.[1] !== undefined ? Number(codeMatch[1]) : 1001;
  let message = text.trim();
  // Drop repeated "Code: N. DB::Exception: " wrappers (chDB nests the same exception).
  for (;;) {
    const m = /^Code: \d+\. DB::Exception: /.exec(message);
    if (m === null) break;
    message = message.slice(m[0].length);
  }
  let codeName: string | undefined;
  // Strip trailing " (NAME)" / " (NAME) (version x)." suffixes, innermost name kept.
  for (;;) {
    const m = /\s*\(([A-Z][A-Z0-9_]{2,})\)(?: \(version [^)]*\))?\.?\s*$/.exec(message);
    if (m === null) break;
    codeName = m[1];
    message = message.slice(0, m.index);
  }
  if (message === '') message = text.trim();
  return { code, message, codeName };
}

/** The error body a server writes: `Code: N. DB::Exception: message. (NAME) (version V)`. */
export function formatErrorBody(code: number, codeName: string, message: string, version: string): string {
  const text = /[.!?]$/.test(message) ? message : `${message}.`;
  return `Code: ${code}. DB::Exception: ${text} (${codeName}) (version ${version})\n`;
}

// The server's exceptionCodeToHTTPStatus, by error name so it survives renumbering.
const STATUS_BY_NAME: ReadonlyMap<string, number> = new Map([
  ['REQUIRED_PASSWORD', 401],
  ...['UNKNOWN_USER', 'WRONG_PASSWORD', 'AUTHENTICATION_FAILED', 'SET_NON_GRANTED_ROLE'].map((n) => [n, 403] as const),
  ...[
    'BAD_ARGUMENTS', 'CANNOT_COMPILE_REGEXP', 'CANNOT_PARSE_TEXT', 'CANNOT_PARSE_ESCAPE_SEQUENCE',
    'CANNOT_PARSE_QUOTED_STRING', 'CANNOT_PARSE_DATE', 'CANNOT_PARSE_DATETIME', 'CANNOT_PARSE_NUMBER',
    'CANNOT_PARSE_DOMAIN_VALUE_FROM_STRING', 'CANNOT_PARSE_IPV4', 'CANNOT_PARSE_IPV6',
    'CANNOT_PARSE_INPUT_ASSERTION_FAILED', 'CANNOT_PARSE_UUID', 'DUPLICATE_COLUMN', 'ILLEGAL_COLUMN',
    'UNKNOWN_ELEMENT_IN_AST', 'UNKNOWN_TYPE_OF_AST_NODE', 'THERE_IS_NO_COLUMN', 'TOO_DEEP_AST', 'TOO_BIG_AST',
    'UNEXPECTED_AST_STRUCTURE', 'SYNTAX_ERROR', 'INCORRECT_DATA', 'TYPE_MISMATCH',
    'VALUE_IS_OUT_OF_RANGE_OF_DATA_TYPE',
  ].map((n) => [n, 400] as const),
  ...[
    'UNKNOWN_TABLE', 'UNKNOWN_FUNCTION', 'UNKNOWN_IDENTIFIER', 'UNKNOWN_TYPE', 'UNKNOWN_STORAGE',
    'UNKNOWN_DATABASE', 'UNKNOWN_SETTING', 'UNKNOWN_DIRECTION_OF_SORTING', 'UNKNOWN_AGGREGATE_FUNCTION',
    'UNKNOWN_FORMAT', 'UNKNOWN_DATABASE_ENGINE', 'UNKNOWN_TYPE_OF_QUERY', 'UNKNOWN_ROLE',
  ].map((n) => [n, 404] as const),
  ['QUERY_IS_TOO_LARGE', 413],
  ['NOT_IMPLEMENTED', 501],
  ['SOCKET_TIMEOUT', 503],
  ['CANNOT_OPEN_FILE', 503],
  ['CANNOT_SCHEDULE_TASK', 503],
  ['HTTP_LENGTH_REQUIRED', 411],
  ['TIMEOUT_EXCEEDED', 408],
]);

/** HTTP status a server answers an exception with. */
export function httpStatusFor(codeName: string): number {
  return STATUS_BY_NAME.get(codeName) ?? 500;
}

/** Content-Type a server sends for an output format. */
export function contentTypeFor(format: string): string {
  const f = format.toLowerCase();
  if (f.startsWith('tabseparated') || f.startsWith('tsv')) return 'text/tab-separated-values; charset=UTF-8';
  if (f.startsWith('csv')) return 'text/csv; charset=UTF-8; header=' + (f.includes('withnames') ? 'present' : 'absent');
  if (f === 'ndjson' || f === 'jsonlines' || /^json.*eachrow/.test(f)) return 'application/x-ndjson; charset=UTF-8';
  if (f.startsWith('json')) return 'application/json; charset=UTF-8';
  if (f === 'xml') return 'application/xml; charset=UTF-8';
  if (/^(native|rowbinary|parquet|arrow|arrowstream|orc|avro|protobuf|capnproto|msgpack|npy|bsoneachrow)/.test(f)) {
    return 'application/octet-stream';
  }
  return 'text/plain; charset=UTF-8';
}

/** User and password from Basic auth, X-ClickHouse-User/Key headers or user/password parameters. */
export function credentialsOf(
  headers: Readonly<Record<string, string | string[] | undefined>>,
  http: ReadonlyMap<string, string>,
): { user: string; password: string } {
  const header = (name: string): string | undefined => {
    const v = headers[name];
    return Array.isArray(v) ? v[0] : v;
  };
  const authorization = header('authorization');
  if (authorization !== undefined && /^basic /i.test(authorization)) {
    const decoded = Buffer.from(authorization.slice(6).trim(), 'base64').toString('utf8');
    const colon = decoded.indexOf(':');
    return colon < 0 ? { user: decoded, password: '' } : { user: decoded.slice(0, colon), password: decoded.slice(colon + 1) };
  }
  const user = header('x-clickhouse-user') ?? http.get('user') ?? 'default';
  const password = header('x-clickhouse-key') ?? http.get('password') ?? '';
  return { user: user === '' ? 'default' : user, password };
}

/** Named parts of a `multipart/form-data` body (the client sends large query parameters so). */
export function parseMultipart(body: Buffer, contentType: string): Map<string, string> {
  const m = /boundary=(?:"([^"]+)"|([^;\s]+))/i.exec(contentType);
  const boundary = m?.[1] ?? m?.[2];
  if (boundary === undefined) throw new ClickHouseHttpError(36, 'multipart/form-data without a boundary', 'BAD_ARGUMENTS');
  const parts = new Map<string, string>();
  const text = body.toString('utf8');
  const delimiter = `--${boundary}`;
  for (const raw of text.split(delimiter).slice(1)) {
    if (raw.startsWith('--')) break; // closing delimiter
    const headerEnd = raw.indexOf('\r\n\r\n');
    if (headerEnd < 0) continue;
    const head = raw.slice(0, headerEnd);
    const name = /name="([^"]*)"/i.exec(head)?.[1];
    if (name === undefined) continue;
    if (/filename=/i.test(head)) {
      throw new ClickHouseHttpError(48, 'External tables in multipart bodies are not supported by the embedded server', 'NOT_IMPLEMENTED');
    }
    let value = raw.slice(headerEnd + 4);
    if (value.endsWith('\r\n')) value = value.slice(0, -2);
    parts.set(name, value);
  }
  return parts;
}

/** True for values a server reads as "on" for boolean options. */
export function isTruthy(value: string | undefined): boolean {
  return value !== undefined && /^(1|true|yes|on)$/i.test(value.trim());
}

/** Statement kinds a read-only request (GET, readonly=1/2) may not run. */
export const MODIFYING_KINDS: ReadonlySet<string> = new Set([
  'INSERT', 'CREATE', 'DROP', 'ALTER', 'TRUNCATE', 'RENAME', 'OPTIMIZE', 'ATTACH', 'DETACH', 'EXCHANGE',
  'SYSTEM', 'GRANT', 'REVOKE', 'KILL', 'DELETE', 'UPDATE', 'UNDROP', 'MOVE', 'BACKUP', 'RESTORE',
]);
