/**
 * The embedded ClickHouse server: one process owns a chDB data directory and answers the part
 * of ClickHouse's HTTP interface that `@clickhouse/client` uses, on 127.0.0.1 only.
 *
 *   node --import tsx localstack/clickhouse/server.ts --data-dir .data/clickhouse --port 8123
 *
 * Prints one line `{"ready":true,"url":"http://127.0.0.1:PORT"}` on stdout once listening;
 * everything else (JSON log lines) goes to stderr. SIGTERM/SIGINT: finish in-flight requests,
 * close the session, remove the lock, exit 0. What a request asks the engine to do is planned in
 * plan.ts (pure); this file runs the plans on the one session and speaks HTTP.
 */
import { randomUUID } from 'node:crypto';
import { mkdirSync } from 'node:fs';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { resolve } from 'node:path';
import { parseArgs, promisify } from 'node:util';
import zlib from 'node:zlib';
import { decodeBody, readBody } from './body.ts';
import { ChdbEngine, type EngineResult } from './engine.ts';
import { acquireDataDirLock, clickhouseLock, type DataDirLock } from '../lock.ts';
import {
  assertSupported,
  errorReply,
  headerValue,
  isHealthCheck,
  planQuery,
  requestParameters,
  resetSettingsSql,
  responseEncoding,
  responseFormat,
  resultSummary,
  sessionSteps,
  type QueryPlan,
} from './plan.ts';
import { ClickHouseHttpError, classifyParams, contentTypeFor, credentialsOf, formatErrorBody, httpStatusFor, parseEngineError, type RequestParams } from './protocol.ts';

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

function log(event: string, fields: Record<string, unknown> = {}): void {
  process.stderr.write(`${JSON.stringify({ time: new Date().toISOString(), component: 'embedded-clickhouse', event, ...fields })}\n`);
}

function messageOf(e: unknown): string {
  return e instanceof Error ? e.message : String(e);
}

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
      if (isHealthCheck(method, url)) {
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
      const decoded = await decodeBody(rawBody, headerValue(req.headers, 'content-encoding'), this.options.maxBodyBytes);
      const { entries, body } = requestParameters(url, req.headers, decoded);
      const params = classifyParams(entries);
      if (params.queryId !== undefined) queryId = params.queryId;
      this.authenticate(req, params);
      assertSupported(params);

      const plan = planQuery(params, body, method === 'GET', this.info.formats);
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

  /** Runs one plan on the session: database and settings for this request only, then reset. */
  private async execute(plan: QueryPlan): Promise<EngineResult> {
    const steps = sessionSteps(plan, this.currentDatabase);
    try {
      if (steps.prelude !== undefined) {
        this.currentDatabase = undefined;
        await this.engine.query(steps.prelude, 'TabSeparated');
        this.currentDatabase = plan.database;
      }
      const { call } = steps;
      return call.method === 'insert' ? await this.engine.insert(call.sql, call.data) : await this.engine.query(call.sql, call.format, call.params);
    } finally {
      if (steps.forgetsDatabase) this.currentDatabase = undefined;
      if (steps.restore) await this.restoreSettings(steps.restore.names, steps.restore.reopen);
    }
  }

  /** Puts the session's settings back to defaults so nothing leaks into the next request. */
  private async restoreSettings(names: string[], reopen: boolean): Promise<void> {
    if (!reopen) {
      try {
        await this.engine.query(resetSettingsSql(names), 'TabSeparated');
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
    const format = responseFormat(plan);
    const headers: Record<string, string | number> = {
      'Content-Type': contentTypeFor(format),
      'X-ClickHouse-Server-Display-Name': DISPLAY_NAME,
      'X-ClickHouse-Query-Id': queryId,
      'X-ClickHouse-Format': format,
      'X-ClickHouse-Timezone': this.info.timezone,
      'X-ClickHouse-Summary': JSON.stringify(resultSummary(plan, result)),
    };
    let out = result.output;
    const compression = responseEncoding(params.settings, headerValue(req.headers, 'accept-encoding'), this.info.httpCompressionDefault);
    if (compression !== undefined) {
      const { encoding, level } = compression;
      out = encoding === 'br' ? await brotliCompress(out) : encoding === 'deflate' ? await deflate(out, { level }) : await gzip(out, { level });
      headers['Content-Encoding'] = encoding;
    }
    headers['Content-Length'] = out.length;
    res.writeHead(200, headers);
    res.end(req.method === 'HEAD' ? undefined : out);
  }

  private sendError(res: ServerResponse, e: unknown, queryId: string): void {
    const { code, codeName, message, unexpected } = errorReply(e, this.info.errorNames);
    if (unexpected) log('unexpected_error', { error: message });
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
    lock = acquireDataDirLock(options.dataDir, clickhouseLock);
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
