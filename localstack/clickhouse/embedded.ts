/**
 * Starts the embedded ClickHouse server (server.ts: clickhouse-local's own HTTP server from chDB's
 * library) as a child process and hands back its URL. Every caller goes through
 * `@clickhouse/client` over ClickHouse's own HTTP interface, as in production.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { mkdirSync, writeFileSync } from 'node:fs';
import { get } from 'node:http';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { assertDataDirFree, clickhouseLock } from '../lock.ts';
import { freePort, freePortRange } from '../ports.ts';
import { pollUntil } from '../wait.ts';
import { configFileName, serverConfigXml, usersFileName, usersXml, type ServerConfigOptions } from './config.ts';

/** A running embedded ClickHouse server. */
export interface EmbeddedClickHouse {
  readonly url: string;
  readonly port: number;
  /** The native protocol's port, when it was asked for (`tcp`). */
  readonly tcpPort?: number;
  readonly dataDir: string;
  /** The server's process (for fault tests: SIGSTOP, kill -9). */
  readonly pid: number;
  /** Stops the server: closes its stdin (a clean shutdown), SIGKILL after a grace period. Idempotent. */
  stop(): Promise<void>;
}

/** Options of {@link startEmbeddedClickHouse}. */
export interface EmbeddedClickHouseOptions {
  dataDir: string;
  /** 0 = a free port (default). */
  port?: number;
  /** Open the native protocol too (a cluster's peers need it): a port, or 0 for a free one. */
  tcpPort?: number;
  /** Require these credentials (default: `default` without a password). */
  user?: string;
  password?: string;
  /** `remote_servers` of a cluster of embedded servers. */
  cluster?: ServerConfigOptions['cluster'];
  /** How long to wait for the server to answer (default 60 s). */
  startTimeoutMs?: number;
}

const here = dirname(fileURLToPath(import.meta.url));
const serverPath = resolve(here, 'server.ts');
const repoRoot = resolve(here, '..', '..');
const STOP_GRACE_MS = 20_000;
const HOST = '127.0.0.1';

const running = new Set<ChildProcess>();
let exitHookInstalled = false;

// If the parent exits without stop(), do not leave a server holding the data dir: its stdin
// closes, its clean shutdown (SIGTERM would end it at once). A SIGKILL of the parent closes it too.
function installExitHook(): void {
  if (exitHookInstalled) return;
  exitHookInstalled = true;
  process.on('exit', () => {
    for (const child of running) child.stdin?.destroy();
  });
}

/** The one line worth showing of a failed start: ClickHouse's `Code: N. DB::Exception: …` or our own line. */
export function startFailureLine(stderr: string): string {
  const lines = stderr.split('\n').map((l) => l.trim()).filter(Boolean);
  const ours = lines.find((l) => l.startsWith('embedded ClickHouse: '));
  const theirs = lines.find((l) => /^Code: \d+\./.test(l));
  const line = (ours && !/^embedded ClickHouse: Code: \d+\./.test(ours) ? ours.slice('embedded ClickHouse: '.length) : undefined) ?? theirs ?? lines.at(-1) ?? '(no output)';
  if (/Another server instance in same directory is already running/.test(line)) {
    return `${line} (a ClickHouse server outside this stack holds it: stop it or set CLICKHOUSE_DATA_DIR to another directory)`;
  }
  return line;
}

/** Starts a server on `dataDir` and resolves once it answers. */
export async function startEmbeddedClickHouse(opts: EmbeddedClickHouseOptions): Promise<EmbeddedClickHouse> {
  const dataDir = resolve(opts.dataDir);
  mkdirSync(dataDir, { recursive: true });
  // Before the files are written: a refused start must not rewrite a running server's configuration.
  // (server.ts takes the lock itself: this check only says it early.)
  try {
    assertDataDirFree(dataDir, clickhouseLock);
  } catch (error) {
    throw new Error(`embedded ClickHouse on ${dataDir} did not start: ${(error as Error).message}`, { cause: error });
  }
  const port = opts.port || (await freePort());
  const tcpPort = opts.tcpPort === undefined ? undefined : opts.tcpPort || (await freePort());
  const displayName = `ugc-embedded-${randomUUID()}`;
  const config: ServerConfigOptions = { dataDir, httpPort: port, displayName, tcpPort, user: opts.user, password: opts.password, cluster: opts.cluster };
  // Written at every start, so the files always say what this start asked for.
  writeFileSync(join(dataDir, configFileName), serverConfigXml(config));
  writeFileSync(join(dataDir, usersFileName), usersXml(config), { mode: 0o600 });
  const url = `http://${HOST}:${port}`;

  const args = ['--import', 'tsx', serverPath, '--data-dir', dataDir, '--url', url, ...(tcpPort !== undefined ? ['--tcp'] : [])];
  // cwd = repo root so `--import tsx` resolves from the repo's node_modules wherever we are called from.
  // Its own process group: a terminal's Ctrl-C reaches only `npm start`, which stops the functions
  // first, so an insert in flight completes (the closed stdin still ends it if we are killed).
  const child = spawn(process.execPath, args, { cwd: repoRoot, stdio: ['pipe', 'ignore', 'pipe'], detached: true });
  installExitHook();
  running.add(child);
  let exitStatus: string | undefined;
  // 'close', not 'exit': by then stderr has been read to its end, so the reason is whole.
  const exited = new Promise<void>((resolveExit) =>
    child.once('close', (code, signal) => {
      exitStatus = `code ${code ?? 'null'}, signal ${signal ?? 'null'}`;
      running.delete(child);
      resolveExit();
    }),
  );
  child.once('error', () => undefined); // reported through 'close'
  child.stdin?.on('error', () => undefined); // the server gone: nothing to tell it

  let stderr = '';
  child.stderr?.setEncoding('utf8');
  child.stderr?.on('data', (chunk: string) => {
    stderr = (stderr + chunk).slice(-16_384); // the tail, for error messages
  });

  let stopping: Promise<void> | undefined;
  const stop = (): Promise<void> => {
    stopping ??= (async () => {
      if (exitStatus === undefined) {
        child.stdin?.end();
        const timer = setTimeout(() => child.kill('SIGKILL'), STOP_GRACE_MS);
        await exited;
        clearTimeout(timer);
      }
    })();
    return stopping;
  };

  try {
    await waitUntilReady(url, displayName, exited, opts.startTimeoutMs ?? 60_000);
  } catch (error) {
    const exitedFirst = exitStatus !== undefined;
    if (!exitedFirst) {
      // Timed out: a server that never got to read its stdin would not notice it closing.
      child.kill('SIGKILL');
      await exited;
    }
    const reason = exitedFirst ? `${startFailureLine(stderr)}${stderr.trim() ? '' : ` (exited: ${exitStatus})`}` : (error as Error).message;
    throw new Error(`embedded ClickHouse on ${dataDir} did not start: ${reason}`, { cause: stderr });
  }

  return { url, port, tcpPort, dataDir, pid: child.pid!, stop };
}

/**
 * Resolves once the server of this start answers on `url` (its display name, not just any server's
 * Ok.: another one may hold the port); rejects when the process exits first or the time is up.
 */
async function waitUntilReady(url: string, displayName: string, exited: Promise<void>, timeoutMs: number): Promise<void> {
  let gone = false;
  void exited.then(() => (gone = true));
  await pollUntil(async () => {
    if (gone) throw new Error('exited before it was ready');
    return (await answer(`${url}/?query=${encodeURIComponent('SELECT displayName()')}`)) === `${displayName}\n`;
  }, { timeoutMs, intervalMs: 50, what: `no answer on ${url} within ${timeoutMs} ms` });
}

/** A 200 answer's body, else undefined; on a connection of its own, closed after (a kept-alive socket delays the server's shutdown). */
function answer(url: string): Promise<string | undefined> {
  return new Promise((resolveAnswer) => {
    const request = get(url, { agent: false, timeout: 1_000 }, (response) => {
      let body = '';
      response.setEncoding('utf8');
      response.on('data', (chunk: string) => (body += chunk));
      response.on('end', () => resolveAnswer(response.statusCode === 200 ? body : undefined));
      response.on('error', () => resolveAnswer(undefined));
    });
    request.on('timeout', () => request.destroy());
    request.on('error', () => resolveAnswer(undefined));
  });
}

/** A local cluster of embedded servers (see startEmbeddedCluster). */
export interface EmbeddedCluster {
  readonly name: string;
  readonly nodes: readonly EmbeddedClickHouse[];
  stop(): Promise<void>;
}

/**
 * `shards` embedded servers, one replica each, that know each other as cluster `name`
 * (remote_servers over the native port): Distributed tables run across them. clickhouse-local
 * runs no DDL worker and has no Keeper, so DDL goes node by node and no table is Replicated
 * (clickhouse/cluster.ts, the per-node form). Data in `dataDir/node-N`.
 */
export async function startEmbeddedCluster({ dataDir, shards = 2, name = 'ugc_cluster' }: { dataDir: string; shards?: number; name?: string }): Promise<EmbeddedCluster> {
  // Every node's HTTP and native port at once, so no two of them are the same.
  const ports = await freePortRange(2 * shards);
  const tcpPorts = ports.slice(0, shards);
  const cluster = { name, shards: tcpPorts.map((tcpPort) => ({ host: HOST, tcpPort })) };
  const started = await Promise.allSettled(tcpPorts.map((tcpPort, i) =>
    startEmbeddedClickHouse({ dataDir: join(dataDir, `node-${i + 1}`), port: ports[shards + i]!, tcpPort, cluster })));
  const nodes = started.flatMap((s) => (s.status === 'fulfilled' ? [s.value] : []));
  const stop = async () => {
    await Promise.all(nodes.map((node) => node.stop()));
  };
  const failed = started.find((s) => s.status === 'rejected');
  if (failed) {
    await stop();
    throw failed.reason;
  }
  return { name, nodes, stop };
}
