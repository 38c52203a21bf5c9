/**
 * The embedded ClickHouse server: one process owns a chDB data directory and answers the part
 * of ClickHouse's HTTP interface that `@clickhouse/client` uses, on 127.0.0.1 only.
 *
 *   node --import tsx localstack/clickhouse/server.ts --data-dir .data/clickhouse --port 8123
 *
 * Prints one line `{"ready":true,"url":"http://127.0.0.1:PORT"}` on stdout once listening;
 * everything else (JSON log lines) goes to stderr. SIGTERM/SIGINT: finish in-flight requests,
 * close the session, remove the lock, exit 0.
 */
import { randomUUID } from 'node:crypto';
import { mkdirSync } from 'node:fs';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { resolve } from 'node:path';
import { parseArgs, promisify } from 'node:util';
import zlib from 'node:zlib';
import { ChdbEngine, type EngineResult } from './engine.ts';
import { acquireDataDirLock, type DataDirLock } from './lock.ts';
import {
  ClickHouseHttpError,
  classifyParams,
  contentTypeFor,
  credentialsOf,
  formatErrorBody,
  httpStatusFor,
  isTruthy,
  MODIFYING_KINDS,
  parseEngineError,
  parseMultipart,
  quoteIdentifier,
  quoteString,
  type RequestParams,
} from './protocol.ts';
import { inspectStatement, StatementSyntaxError, type StatementInfo } from './sql.ts';

/** Command-line options of the server. */
export interface ServerOptions {
  readonly dataDir: string;
  readonly port: number;
  /** Largest request body accepted, compressed or not (default 256 MiB). */
  readonly maxBodyBytes: number;
  /** When set, requests must authenticate as this user with `password`. */
  readonly user?: string;
  readonly password: string;
  /** Exit when stdin closes: the parent that spawned us is gone. */
  readonly watchStdin: boolean;
}

const DEFAULT_MAX_BODY_BYTES = 256 * 1024 * 1024;
const HOST = '127.0.0.1';
const DISPLAY_NAME = 'embedded-chdb';

/** Facts about the engine the responses need, read once at startup. */
interface ServerInfo {
  readonly version: string;
  readonly timezone: string;
  readonly errorNames: ReadonlyMap<number, string>;
  readonly formats: ReadonlySet<string>;
  readonly httpCompressionDefault: string;
}

/** What one request asks the engine to do. */
interface QueryPlan {
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

function log(event: string, fields: Record<string, unknown> = {}): void {
  process.stderr.write(`${JSON.stringify({ time: new Date().toISOString(), component: 'embedded-clickhouse', event, ...fields })}\n`);
}

function messageOf(e: unknown): string {
  return e instanceof Error ? e.message : String(e);
}

const gunzip = promisify(zlib.gunzip);
const inflate = promisify(zlib.inflate);
const brotliDecompress = promisify(zlib.brotliDecompress);
const gzip = promisify(zlib.gzip);
const deflate = promisify(zlib.deflate);
const brotliCompress = promisify(zlib.brotliCompress);

/** Runs tasks one at a time: a chDB session executes one statement at a time. */
class SerialQueue {
  private tail: Promise<unknown> = Promise.resolve();

  run<T>(task: () => Promise<T>): Promise<T> {
    const result = this.tail.then(task);
    this.tail = result.catch(() => undefined);
    return result;
  }
}

/** The HTTP front of one engine. */
class EmbeddedClickHouseServer {
  private readonly queue = new SerialQueue();
  /** Database the session currently uses; undefined when a statement may have changed it. */
  private currentDatabase: string | undefined = 'default';
  private inFlight = 0;
  private shuttingDown = false;
  readonly http: Server;

  constructor(
    private readonly engine: ChdbEngine,
    private readonly info: ServerInfo,
    private readonly options: ServerOptions,
  ) {
    this.http = createServer((req, res) => {
      this.inFlight++;
      res.once('close', () => this.inFlight--);
      this.handle(req, res).catch((e: unknown) => {
        log('internal_error', { error: messageOf(e) });
        if (!res.headersSent) res.writeHead(500).end();
        else res.destroy();
      });
    });
    this.http.keepAliveTimeout = 10_000;
    this.http.on('clientError', (_err, socket) => {
      // Malformed HTTP: answer 400 like a server and drop the connection, never crash.
      if (socket.writable) socket.end('HTTP/1.1 400 Bad Request\r\nConnection: close\r\n\r\n');
      else socket.destroy();
    });
  }

  private async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    let queryId: string = randomUUID();
    try {
      const url = new URL(req.url ?? '/', `http://${HOST}`);
      const method = req.method ?? 'GET';
      if (url.pathname === '/ping' || url.pathname === '/replicas_status' || (url.pathname === '/' && !url.searchParams.has('query') && (method === 'GET' || method === 'HEAD'))) {
        req.resume();
        res.writeHead(200, { 'Content-Type': 'text/html; charset=UTF-8', 'Content-Length': 4 });
        res.end(method === 'HEAD' ? undefined : 'Ok.\n');
        return;
      }
      if (method !== 'GET' && method !== 'POST') {
        req.resume();
        throw new ClickHouseHttpError(36, `HTTP method ${method} is not supported: use GET or POST`, 'BAD_ARGUMENTS');
      }
      if (this.shuttingDown) {
        req.resume();
        res.setHeader('Connection', 'close');
        throw new ClickHouseHttpError(236, 'Server is shutting down', 'ABORTED');
      }

      const rawBody = await readBody(req, this.options.maxBodyBytes);
      let body = await decodeBody(rawBody, header(req, 'content-encoding'), this.options.maxBodyBytes);
      const entries: Array<[string, string]> = [...url.searchParams];
      const contentType = header(req, 'content-type') ?? '';
      if (/^multipart\/form-data/i.test(contentType)) {
        entries.push(...parseMultipart(body, contentType));
        body = Buffer.alloc(0);
      }
      // Header forms of two parameters; the URL wins when both are given.
      const headerDatabase = header(req, 'x-clickhouse-database');
      if (headerDatabase !== undefined && !url.searchParams.has('database')) entries.push(['database', headerDatabase]);
      const headerFormat = header(req, 'x-clickhouse-format');
      if (headerFormat !== undefined && !url.searchParams.has('default_format')) entries.push(['default_format', headerFormat]);

      const params = classifyParams(entries);
      if (params.queryId !== undefined) queryId = params.queryId;
      this.authenticate(req, params);
      if (isTruthy(params.http.get('compress')) || isTruthy(params.http.get('decompress'))) {
        throw new ClickHouseHttpError(48, 'ClickHouse native compression (compress/decompress=1) is not supported by the embedded server; use Content-Encoding / enable_http_compression', 'NOT_IMPLEMENTED');
      }

      const plan = this.plan(params, body, method === 'GET');
      const result = await this.queue.run(() => this.execute(plan));
      await this.sendResult(req, res, plan, params, result, queryId);
    } catch (e) {
      this.sendError(res, e, queryId);
    }
  }

  private authenticate(req: IncomingMessage, params: RequestParams): void {
    const { user, password } = credentialsOf(req.headers, params.http);
    if (this.options.user === undefined) return; // open server: any credentials accepted
    if (user !== this.options.user || password !== this.options.password) {
      throw new ClickHouseHttpError(516, `${user}: Authentication failed: password is incorrect, or there is no user with such name`, 'AUTHENTICATION_FAILED');
    }
  }

  /** Splits query text and body the way a server does: URL query + "\n" + body. */
  private plan(params: RequestParams, body: Buffer, isGet: boolean): QueryPlan {
    const settings = new Map(params.settings);
    // `readonly` is emulated, never SET: a session left read-only could not reset itself.
    const readonly = settings.get('readonly');
    settings.delete('readonly');
    const readOnlyRequest = isGet || (readonly !== undefined && readonly !== '0');

    let statement: StatementInfo;
    let sql: string;
    let insertData: Buffer | undefined;
    const urlQuery = params.query ?? '';
    const fromUrl = urlQuery !== '' ? inspectStatement(urlQuery, this.info.formats) : undefined;
    if (fromUrl !== undefined && fromUrl.kind === 'INSERT' && fromUrl.dataOffset !== undefined) {
      // The usual client INSERT: statement in the URL, data in the body (kept as bytes).
      statement = fromUrl;
      sql = urlQuery.slice(0, fromUrl.dataOffset).trimEnd();
      const inline = urlQuery.slice(fromUrl.dataOffset);
      insertData = inline === '' ? body : Buffer.concat([Buffer.from(body.length > 0 ? `${inline}\n` : inline), body]);
    } else {
      const text = urlQuery === '' ? body.toString('utf8') : body.length > 0 ? `${urlQuery}\n${body.toString('utf8')}` : urlQuery;
      statement = inspectStatement(text, this.info.formats);
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

  /** Runs one plan on the session: database and settings for this request only, then reset. */
  private async execute(plan: QueryPlan): Promise<EngineResult> {
    const prelude: string[] = [];
    if (plan.database !== this.currentDatabase) prelude.push(`USE ${quoteIdentifier(plan.database)}`);
    if (plan.settings.size > 0) {
      prelude.push(`SET ${[...plan.settings].map(([name, value]) => `${name} = ${quoteString(value)}`).join(', ')}`);
    }
    try {
      if (prelude.length > 0) {
        this.currentDatabase = undefined;
        await this.engine.query(prelude.join('; '), 'TabSeparated');
        this.currentDatabase = plan.database;
      }
      const hasParams = Object.keys(plan.queryParams).length > 0;
      if (plan.insertData !== undefined && !hasParams) return await this.engine.insert(plan.sql, plan.insertData);
      const sql = plan.insertData !== undefined && plan.insertData.length > 0 ? `${plan.sql}\n${plan.insertData.toString('utf8')}` : plan.sql;
      return await this.engine.query(sql, plan.defaultFormat, plan.queryParams);
    } finally {
      const kind = plan.statement.kind;
      if (kind === 'USE' || kind === 'DROP' || kind === 'RENAME' || kind === 'DETACH') this.currentDatabase = undefined;
      // A SET statement over HTTP lasts one request on a server; here it would stick to the session.
      if (plan.settings.size > 0 || kind === 'SET') await this.restoreSettings([...plan.settings.keys()], kind === 'SET');
    }
  }

  /** Puts the session's settings back to defaults so nothing leaks into the next request. */
  private async restoreSettings(names: string[], reopen: boolean): Promise<void> {
    if (!reopen) {
      try {
        await this.engine.query(`SET ${names.map((n) => `${n} = DEFAULT`).join(', ')}`, 'TabSeparated');
        return;
      } catch (e) {
        log('settings_reset_failed', { settings: names, error: parseEngineError(messageOf(e)).message });
      }
    }
    // Some settings (max_query_size=1 …) stop even the reset from parsing: start a clean session.
    await this.engine.reopen();
    this.currentDatabase = undefined;
  }

  private async sendResult(req: IncomingMessage, res: ServerResponse, plan: QueryPlan, params: RequestParams, result: EngineResult, queryId: string): Promise<void> {
    const format = plan.statement.kind !== 'INSERT' && plan.statement.format !== undefined ? plan.statement.format : plan.defaultFormat;
    const summary = {
      read_rows: String(result.readRows),
      read_bytes: String(result.readBytes),
      written_rows: String(result.writtenRows),
      written_bytes: String(result.writtenBytes),
      total_rows_to_read: String(result.readRows),
      result_rows: String(result.writtenRows),
      result_bytes: String(plan.insertData !== undefined ? result.writtenBytes : result.output.length),
      elapsed_ns: String(Math.round(result.elapsedSeconds * 1e9)),
    };
    const headers: Record<string, string | number> = {
      'Content-Type': contentTypeFor(format),
      'X-ClickHouse-Server-Display-Name': DISPLAY_NAME,
      'X-ClickHouse-Query-Id': queryId,
      'X-ClickHouse-Format': format,
      'X-ClickHouse-Timezone': this.info.timezone,
      'X-ClickHouse-Summary': JSON.stringify(summary),
    };
    let out = result.output;
    const enabled = isTruthy(params.settings.get('enable_http_compression') ?? this.info.httpCompressionDefault);
    const encoding = enabled ? pickEncoding(header(req, 'accept-encoding')) : undefined;
    if (encoding !== undefined) {
      const levelText = params.settings.get('http_zlib_compression_level');
      const level = levelText !== undefined && /^\d$/.test(levelText) ? Number(levelText) : 3;
      out = encoding === 'br' ? await brotliCompress(out) : encoding === 'deflate' ? await deflate(out, { level }) : await gzip(out, { level });
      headers['Content-Encoding'] = encoding;
    }
    headers['Content-Length'] = out.length;
    res.writeHead(200, headers);
    res.end(req.method === 'HEAD' ? undefined : out);
  }

  private sendError(res: ServerResponse, e: unknown, queryId: string): void {
    let code: number;
    let name: string | undefined;
    let message: string;
    if (e instanceof ClickHouseHttpError) {
      ({ code, message } = e);
      name = e.codeName;
    } else if (e instanceof StatementSyntaxError) {
      code = e.clickhouseCode;
      message = e.message;
    } else {
      const text = messageOf(e);
      if (/Code: \d+\./.test(text)) {
        ({ code, message, codeName: name } = parseEngineError(text));
      } else {
        code = 1001;
        message = text;
        log('unexpected_error', { error: text });
      }
    }
    const codeName = name ?? this.info.errorNames.get(code) ?? 'UNKNOWN_EXCEPTION';
    if (res.headersSent) {
      res.destroy();
      return;
    }
    const body = formatErrorBody(code, codeName, message, this.info.version);
    res.writeHead(httpStatusFor(codeName), {
      'Content-Type': 'text/plain; charset=UTF-8',
      'Content-Length': Buffer.byteLength(body),
      'X-ClickHouse-Server-Display-Name': DISPLAY_NAME,
      'X-ClickHouse-Query-Id': queryId,
      'X-ClickHouse-Exception-Code': String(code),
    });
    res.end(body);
  }

  /** Stops accepting, lets in-flight requests finish (up to `graceMs`), closes the engine. */
  async shutdown(graceMs: number): Promise<void> {
    if (this.shuttingDown) return;
    this.shuttingDown = true;
    this.http.close();
    this.http.closeIdleConnections();
    const deadline = Date.now() + graceMs;
    while (this.inFlight > 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 10));
    await this.queue.run(async () => undefined); // the engine is idle past this point
    this.http.closeAllConnections();
    this.engine.close();
  }
}

function header(req: IncomingMessage, name: string): string | undefined {
  const v = req.headers[name];
  return Array.isArray(v) ? v[0] : v;
}

/** Reads the whole body; past `max` bytes it keeps draining (so the client sees our answer) and fails. */
function readBody(req: IncomingMessage, max: number): Promise<Buffer> {
  return new Promise((resolvePromise, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    let tooLarge = false;
    req.on('data', (chunk: Buffer) => {
      size += chunk.length;
      if (size > max) {
        tooLarge = true;
        chunks.length = 0;
      } else {
        chunks.push(chunk);
      }
    });
    req.on('end', () => {
      if (tooLarge) reject(tooLargeError(size, max));
      else resolvePromise(Buffer.concat(chunks, size));
    });
    req.on('error', reject);
    // A client that hangs up mid-body gets no answer; settle so nothing waits forever.
    req.on('close', () => {
      if (!req.complete) reject(new Error('client closed the connection before the body ended'));
    });
  });
}

function tooLargeError(size: number, max: number): ClickHouseHttpError {
  return new ClickHouseHttpError(229, `Request body is too large (${size} bytes, more than the embedded server's limit of ${max} bytes, --max-body-bytes)`, 'QUERY_IS_TOO_LARGE');
}

/** Undoes Content-Encoding; decompressed size is capped too (no zip bombs). */
async function decodeBody(body: Buffer, encoding: string | undefined, max: number): Promise<Buffer> {
  const e = (encoding ?? '').trim().toLowerCase();
  if (e === '' || e === 'identity' || body.length === 0) return body;
  try {
    if (e === 'gzip' || e === 'x-gzip') return await gunzip(body, { maxOutputLength: max });
    if (e === 'deflate') return await inflate(body, { maxOutputLength: max });
    if (e === 'br') return await brotliDecompress(body, { maxOutputLength: max });
  } catch (err) {
    if (err instanceof RangeError) throw tooLargeError(max + 1, max);
    throw new ClickHouseHttpError(271, `Cannot decompress the ${e} request body: ${messageOf(err)}`, 'CANNOT_DECOMPRESS');
  }
  throw new ClickHouseHttpError(89, `Unknown or unsupported HTTP Content-Encoding: ${e} (the embedded server supports gzip, deflate, br)`, 'UNKNOWN_COMPRESSION_METHOD');
}

/** First codec of Accept-Encoding we can produce. */
function pickEncoding(accept: string | undefined): 'gzip' | 'deflate' | 'br' | undefined {
  for (const token of (accept ?? '').split(',')) {
    const name = token.split(';')[0]?.trim().toLowerCase();
    if (name === 'gzip' || name === 'x-gzip') return 'gzip';
    if (name === 'deflate' || name === 'br') return name;
  }
  return undefined;
}

async function loadServerInfo(engine: ChdbEngine): Promise<ServerInfo> {
  const text = async (sql: string): Promise<string> => (await engine.query(sql, 'TabSeparated')).output.toString('utf8');
  const errorNames = new Map<number, string>();
  for (const line of (await text("SELECT number, errorCodeToName(number) FROM numbers(2000) WHERE errorCodeToName(number) != ''")).split('\n')) {
    const [code, name] = line.split('\t');
    if (code !== undefined && name !== undefined) errorNames.set(Number(code), name);
  }
  const formats = new Set((await text('SELECT name FROM system.formats')).split('\n').filter(Boolean).map((f) => f.toUpperCase()));
  return {
    version: (await text('SELECT version()')).trim(),
    timezone: (await text('SELECT timezone()')).trim(),
    errorNames,
    formats,
    httpCompressionDefault: (await text("SELECT value FROM system.settings WHERE name = 'enable_http_compression'")).trim() || '0',
  };
}

function parseOptions(argv: string[]): ServerOptions {
  const { values } = parseArgs({
    args: argv,
    options: {
      'data-dir': { type: 'string' },
      port: { type: 'string', default: '8123' },
      'max-body-bytes': { type: 'string', default: String(DEFAULT_MAX_BODY_BYTES) },
      user: { type: 'string' },
      password: { type: 'string', default: '' },
      'watch-stdin': { type: 'boolean', default: false },
    },
    strict: true,
  });
  const dataDir = values['data-dir'];
  if (dataDir === undefined || dataDir === '') throw new Error('--data-dir is required');
  const port = Number(values.port);
  if (!Number.isInteger(port) || port < 0 || port > 65535) throw new Error(`--port must be 0..65535, got ${values.port}`);
  const maxBodyBytes = Number(values['max-body-bytes']);
  if (!Number.isInteger(maxBodyBytes) || maxBodyBytes <= 0) throw new Error(`--max-body-bytes must be a positive integer`);
  return { dataDir: resolve(dataDir), port, maxBodyBytes, user: values.user, password: values.password ?? '', watchStdin: values['watch-stdin'] ?? false };
}

function fail(message: string, exitCode: number): never {
  process.stderr.write(`embedded ClickHouse: ${message}\n`);
  process.exit(exitCode);
}

async function main(): Promise<void> {
  // When the parent dies our stdio pipes break; a failed log write must not kill a shutdown.
  process.stdout.on('error', () => undefined);
  process.stderr.on('error', () => undefined);
  let options: ServerOptions;
  try {
    options = parseOptions(process.argv.slice(2));
  } catch (e) {
    fail(`${messageOf(e)}\nusage: server.ts --data-dir DIR [--port 8123] [--max-body-bytes N] [--user U --password P] [--watch-stdin]`, 2);
  }
  mkdirSync(options.dataDir, { recursive: true });
  let lock: DataDirLock;
  try {
    lock = acquireDataDirLock(options.dataDir);
  } catch (e) {
    fail(messageOf(e), 3);
  }
  const started = Date.now();
  let engine: ChdbEngine;
  let info: ServerInfo;
  try {
    engine = await ChdbEngine.open(options.dataDir);
    info = await loadServerInfo(engine);
  } catch (e) {
    lock.release();
    fail(`cannot open chDB on ${options.dataDir}: ${messageOf(e)}`, 4);
  }
  const server = new EmbeddedClickHouseServer(engine, info, options);
  const port = await new Promise<number>((resolvePort) => {
    server.http.once('error', (e) => {
      engine.close();
      lock.release();
      fail(`cannot listen on ${HOST}:${options.port}: ${messageOf(e)}`, 5);
    });
    server.http.listen(options.port, HOST, () => resolvePort((server.http.address() as AddressInfo).port));
  });
  const url = `http://${HOST}:${port}`;
  lock.update({ pid: process.pid, url });

  let stopping = false;
  const stop = (reason: string): void => {
    if (stopping) return;
    stopping = true;
    log('stopping', { reason });
    server
      .shutdown(15_000)
      .catch((e: unknown) => log('shutdown_error', { error: messageOf(e) }))
      .finally(() => {
        lock.release();
        process.exit(0);
      });
  };
  process.on('SIGTERM', () => stop('SIGTERM'));
  process.on('SIGINT', () => stop('SIGINT'));
  if (options.watchStdin) {
    process.stdin.on('end', () => stop('stdin closed'));
    process.stdin.on('error', () => stop('stdin closed'));
    process.stdin.resume();
  }
  log('ready', { url, dataDir: options.dataDir, version: info.version, startupMs: Date.now() - started });
  process.stdout.write(`${JSON.stringify({ ready: true, url })}\n`);
}

await main();
