/**
 * Starts the embedded ClickHouse server (server.ts) as a child process and hands back its URL.
 * A child process, not an in-process chDB: one process per data directory, settings isolated
 * per request, and every caller goes through `@clickhouse/client` over HTTP like production.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdirSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

/** A running embedded ClickHouse server. */
export interface EmbeddedClickHouse {
  readonly url: string;
  readonly port: number;
  readonly dataDir: string;
  /** Stops the server gracefully (SIGTERM, then SIGKILL after a grace period). Idempotent. */
  stop(): Promise<void>;
}

/** Options of {@link startEmbeddedClickHouse}. */
export interface EmbeddedClickHouseOptions {
  dataDir: string;
  /** 0 = a random free port (default). */
  port?: number;
  /** Largest accepted request body (default 256 MiB). */
  maxBodyBytes?: number;
  /** Require these credentials (default: any credentials accepted). */
  user?: string;
  password?: string;
  /** How long to wait for the ready line (default 30 s). */
  startTimeoutMs?: number;
}

const here = dirname(fileURLToPath(import.meta.url));
const serverPath = resolve(here, 'server.ts');
const repoRoot = resolve(here, '..', '..');
const STOP_GRACE_MS = 20_000;

const running = new Set<ChildProcess>();
let exitHookInstalled = false;

// If the parent exits without stop(), do not leave a server holding the data dir.
// (SIGKILL of the parent is covered by the child watching its stdin.)
function installExitHook(): void {
  if (exitHookInstalled) return;
  exitHookInstalled = true;
  process.on('exit', () => {
    for (const child of running) child.kill('SIGTERM');
  });
}

/** Starts a server on `dataDir` and resolves once it accepts requests. */
export async function startEmbeddedClickHouse(opts: EmbeddedClickHouseOptions): Promise<EmbeddedClickHouse> {
  const dataDir = resolve(opts.dataDir);
  mkdirSync(dataDir, { recursive: true });
  const args = ['--import', 'tsx', serverPath, '--data-dir', dataDir, '--port', String(opts.port ?? 0), '--watch-stdin'];
  if (opts.maxBodyBytes !== undefined) args.push('--max-body-bytes', String(opts.maxBodyBytes));
  if (opts.user !== undefined) args.push('--user', opts.user, '--password', opts.password ?? '');

  // cwd = repo root so `--import tsx` resolves from the repo's node_modules wherever we are called from.
  // Its own process group: a terminal's Ctrl-C reaches only `npm start`, which stops the functions
  // first, so an insert in flight completes (--watch-stdin still ends it if we are killed).
  const child = spawn(process.execPath, args, { cwd: repoRoot, stdio: ['pipe', 'pipe', 'pipe'], detached: true });
  installExitHook();
  running.add(child);
  const exited = new Promise<void>((resolveExit) => child.once('exit', () => {
    running.delete(child);
    resolveExit();
  }));

  let stderr = '';
  child.stderr?.setEncoding('utf8');
  child.stderr?.on('data', (chunk: string) => {
    // Keep only the tail for error messages; the rest is forwarded for whoever watches.
    stderr = (stderr + chunk).slice(-8192);
  });

  const url = await new Promise<string>((resolveUrl, reject) => {
    const timeoutMs = opts.startTimeoutMs ?? 30_000;
    let stdout = '';
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`embedded ClickHouse on ${dataDir} did not become ready within ${timeoutMs} ms; stderr:\n${stderr}`));
    }, timeoutMs);
    child.stdout?.setEncoding('utf8');
    child.stdout?.on('data', (chunk: string) => {
      stdout += chunk;
      const nl = stdout.indexOf('\n');
      if (nl < 0) return;
      const line = stdout.slice(0, nl);
      clearTimeout(timer);
      try {
        const parsed: unknown = JSON.parse(line);
        if (typeof parsed === 'object' && parsed !== null && 'ready' in parsed && parsed.ready === true && 'url' in parsed && typeof parsed.url === 'string') {
          resolveUrl(parsed.url);
          return;
        }
      } catch {
        // fall through: not the ready line
      }
      child.kill('SIGKILL');
      reject(new Error(`embedded ClickHouse printed an unexpected first line: ${line}`));
    });
    child.once('exit', (code, signal) => {
      clearTimeout(timer);
      reject(new Error(`embedded ClickHouse on ${dataDir} exited before ready (code ${code ?? 'null'}, signal ${signal ?? 'null'}):\n${stderr.trim()}`));
    });
    child.once('error', (e) => {
      clearTimeout(timer);
      reject(e);
    });
  });

  let stopping: Promise<void> | undefined;
  return {
    url,
    port: Number(new URL(url).port),
    dataDir,
    stop() {
      stopping ??= (async () => {
        if (child.exitCode === null && child.signalCode === null) {
          child.kill('SIGTERM');
          const timer = setTimeout(() => child.kill('SIGKILL'), STOP_GRACE_MS);
          await exited;
          clearTimeout(timer);
        }
        child.stdin?.destroy();
      })();
      return stopping;
    },
  };
}
