import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { Session } from 'chdb';

/** Result of one engine call: output bytes plus the counters the summary header reports. */
export interface EngineResult {
  readonly output: Buffer;
  readonly elapsedSeconds: number;
  readonly readRows: number;
  readonly readBytes: number;
  readonly writtenRows: number;
  readonly writtenBytes: number;
}

interface NativeQueryResult {
  bytes: Uint8Array;
  elapsed: number;
  rowsRead: number;
  bytesRead: number;
}

interface NativeInsertResult {
  elapsed: number;
  rowsWritten: number;
  bytesWritten: number;
}

/**
 * The two native entry points we call directly. The public Session API re-escapes string
 * parameters (it takes JS values); a server binds the already-escaped text a client sends,
 * and only the native call takes that text verbatim. Checked at startup, so a chdb upgrade
 * that moves them fails loudly instead of binding wrong values.
 */
interface NativeChdb {
  QueryAsyncConnection(conn: unknown, sql: string, format: string, params?: Record<string, string>): Promise<NativeQueryResult>;
  InsertRawAsyncConnection(conn: unknown, prefix: string, data: Buffer, countLines: boolean): Promise<NativeInsertResult>;
}

function isNativeChdb(value: unknown): value is NativeChdb {
  return (
    typeof value === 'object' &&
    value !== null &&
    'QueryAsyncConnection' in value &&
    typeof value.QueryAsyncConnection === 'function' &&
    'InsertRawAsyncConnection' in value &&
    typeof value.InsertRawAsyncConnection === 'function'
  );
}

function loadNative(): NativeChdb {
  const require = createRequire(import.meta.url);
  const loaderPath = join(dirname(require.resolve('chdb/package.json')), 'dist', 'loader.js');
  const loader: unknown = require(loaderPath);
  if (typeof loader === 'object' && loader !== null && 'loadNative' in loader && typeof loader.loadNative === 'function') {
    const native: unknown = loader.loadNative();
    if (isNativeChdb(native)) return native;
  }
  throw new Error(`chdb's native addon (${loaderPath}) lacks QueryAsyncConnection/InsertRawAsyncConnection: chdb version changed?`);
}

function toBuffer(bytes: Uint8Array): Buffer {
  return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
}

// chDB's session changes a few defaults of a server; undo those a client could notice
// (implicit_select lets `1+1` run without SELECT, which a server rejects).
const SERVER_BASELINE = 'SET implicit_select = DEFAULT, allow_introspection_functions = DEFAULT';

/** One chDB session on a data directory. Not re-entrant: the caller serializes calls. */
export class ChdbEngine {
  private session: Session;
  private readonly native: NativeChdb;

  private constructor(
    readonly dataDir: string,
    session: Session,
    native: NativeChdb,
  ) {
    this.session = session;
    this.native = native;
  }

  /** Opens the data directory (creating it) with server-like defaults. */
  static async open(dataDir: string): Promise<ChdbEngine> {
    const native = loadNative();
    const engine = new ChdbEngine(dataDir, new Session(dataDir), native);
    await engine.query(SERVER_BASELINE, 'TabSeparated');
    return engine;
  }

  /** Runs one statement; `params` are bound exactly as given (escaped text, as over HTTP). */
  async query(sql: string, format: string, params?: Record<string, string>): Promise<EngineResult> {
    const r =
      params !== undefined && Object.keys(params).length > 0
        ? await this.native.QueryAsyncConnection(this.session.connection, sql, format, params)
        : await this.native.QueryAsyncConnection(this.session.connection, sql, format);
    return {
      output: toBuffer(r.bytes),
      elapsedSeconds: r.elapsed,
      readRows: r.rowsRead,
      readBytes: r.bytesRead,
      writtenRows: 0,
      writtenBytes: 0,
    };
  }

  /** Runs an INSERT whose data (possibly empty) follows `prefix`, without copying the data into a string. */
  async insert(prefix: string, data: Buffer): Promise<EngineResult> {
    const r = await this.native.InsertRawAsyncConnection(this.session.connection, prefix, data, false);
    return {
      output: Buffer.alloc(0),
      elapsedSeconds: r.elapsed,
      readRows: r.rowsWritten,
      readBytes: data.length,
      writtenRows: r.rowsWritten,
      writtenBytes: r.bytesWritten,
    };
  }

  /**
   * Replaces the session with a fresh one on the same directory: the way back to default
   * settings when a request's settings made even `SET … = DEFAULT` fail (e.g. max_query_size=1).
   */
  async reopen(): Promise<void> {
    const fresh = new Session(this.dataDir); // same path: chDB lets both coexist
    const old = this.session;
    this.session = fresh;
    old.close();
    await this.query(SERVER_BASELINE, 'TabSeparated');
  }

  /** Closes the session (idempotent). */
  close(): void {
    this.session.close();
  }
}
