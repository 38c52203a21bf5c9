import type { ChildProcess } from 'node:child_process';
import { spawnTiedToParent } from './child.ts';
import { fileURLToPath } from 'node:url';
import { assertPortFree } from './ports.ts';
import { pollUntil } from './wait.ts';

const repoRoot = fileURLToPath(new URL('..', import.meta.url));
const serverlessBin = fileURLToPath(new URL('../node_modules/osls/bin/serverless.js', import.meta.url));

export interface OfflineOptions {
  env: Record<string, string>;
  httpPort: number;
  lambdaPort: number;
  stdio?: 'inherit' | 'pipe';
  /** The service folder (serverless.yml, the sources it builds); default this repo. */
  serviceDir?: string;
  /**
   * Run handlers in serverless offline's own process (default; OFFLINE_IN_PROCESS=false turns it
   * off) instead of a worker thread per concurrent invocation. In-process holds one copy of each
   * function, so it holds load on a small machine; plugins/offline-reload.js imports a rebuilt
   * bundle afresh, so an edit still takes effect without a restart. Worker threads isolate
   * functions as Lambda does, but every concurrent request starts another worker (a cold start,
   * ~100 MB): past ~50 req/s on 2 cores that snowballs.
   */
  inProcess?: boolean;
}

export interface Offline { readonly url: string; readonly process: ChildProcess; stop(): Promise<void> }

/** Fails in one line (a PortInUseError) if serverless offline's HTTP or Lambda port is taken. */
export async function assertOfflinePortsFree(httpPort: number, lambdaPort: number): Promise<void> {
  await assertPortFree(httpPort, 'HTTP_PORT', "serverless offline's HTTP API");
  await assertPortFree(lambdaPort, 'LAMBDA_PORT', "serverless offline's Lambda invoke API");
}

/**
 * Runs `serverless offline start` (with the event source emulator) against the given stack
 * and resolves once the HTTP API answers.
 */
export async function startOffline({
  env, httpPort, lambdaPort, stdio = 'pipe', serviceDir = repoRoot, inProcess = !/^(0|false)$/i.test(process.env.OFFLINE_IN_PROCESS ?? ''),
}: OfflineOptions): Promise<Offline> {
  // Checked here, not left to serverless offline: it would answer with a stack trace.
  await assertOfflinePortsFree(httpPort, lambdaPort);
  // Tied to us: a kill -9 of npm start must not leave serverless offline holding the HTTP ports.
  // SIGKILL, not SIGTERM: the brokers die at the same moment, and kafkajs' consumer then spins in a
  // loop of microtasks (fetch() answering [] at once, as in tulios/kafkajs#1384) that starves the
  // event loop, so no signal handler or exit timer of serverless offline ever runs. Nothing is lost
  // by killing it: a 202 was only given after Kafka acknowledged, and uncommitted offsets are read
  // again (the writer's inserts are deduplicated).
  const child = spawnTiedToParent(process.execPath, [serverlessBin, 'offline', 'start', ...(inProcess ? ['--useInProcess'] : [])], {
    cwd: serviceDir,
    env: { ...process.env, ...env, HTTP_PORT: String(httpPort), LAMBDA_PORT: String(lambdaPort), SLS_TELEMETRY_DISABLED: '1' },
    stdio: ['ignore', stdio, stdio],
    detached: process.platform !== 'win32',
  }, 'KILL');
  let output = '';
  child.stdout?.on('data', (chunk: Buffer) => { output = (output + chunk.toString()).slice(-20_000); });
  child.stderr?.on('data', (chunk: Buffer) => { output = (output + chunk.toString()).slice(-20_000); });
  const kill = () => { try { process.kill(-child.pid!, 'SIGTERM'); } catch { /* already gone */ } };
  process.once('exit', kill);

  const url = `http://127.0.0.1:${httpPort}`;
  const exited = new Promise<never>((_, reject) =>
    child.once('exit', (code) => reject(new Error(`serverless offline exited (${code}) before it was ready:\n${output}`))),
  );
  const ready = pollUntil(async () => (await fetch(`${url}/v1/health`).catch(() => undefined))?.status === 200, {
    timeoutMs: 120_000, intervalMs: 250, what: () => `serverless offline did not answer on ${url} within 120 s:\n${output}`,
  });
  try {
    await Promise.race([ready, exited]);
  } catch (error) {
    kill();
    throw error;
  }
  exited.catch(() => {});
  return {
    url,
    process: child,
    async stop() {
      if (child.exitCode !== null || child.signalCode !== null) return;
      const gone = new Promise((r) => child.once('exit', r));
      kill();
      const timer = setTimeout(() => { try { process.kill(-child.pid!, 'SIGKILL'); } catch { /* gone */ } }, 10_000);
      await gone;
      clearTimeout(timer);
      process.removeListener('exit', kill);
    },
  };
}
