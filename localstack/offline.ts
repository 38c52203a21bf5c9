import { spawn, type ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';

const repoRoot = fileURLToPath(new URL('..', import.meta.url));
const serverlessBin = fileURLToPath(new URL('../node_modules/osls/bin/serverless.js', import.meta.url));

export interface OfflineOptions {
  env: Record<string, string>;
  httpPort: number;
  lambdaPort: number;
  stdio?: 'inherit' | 'pipe';
  /**
   * Run handlers in serverless offline's own process instead of a worker thread per concurrent
   * invocation. Default: OFFLINE_IN_PROCESS. Worker threads isolate functions like Lambda does,
   * but every concurrent request starts another worker (a cold start, ~100 MB), so on a small
   * machine a burst past ~50-100 req/s snowballs; in-process shares one copy of each function,
   * but keeps the first build of each bundle (no hot reload) and one process.env for all.
   */
  inProcess?: boolean;
}

export interface Offline { readonly url: string; readonly process: ChildProcess; stop(): Promise<void> }

/**
 * Runs `serverless offline start` (with the event source emulator) against the given stack
 * and resolves once the HTTP API answers.
 */
export async function startOffline({
  env, httpPort, lambdaPort, stdio = 'pipe', inProcess = /^(1|true)$/i.test(process.env.OFFLINE_IN_PROCESS ?? ''),
}: OfflineOptions): Promise<Offline> {
  const child = spawn(process.execPath, [serverlessBin, 'offline', 'start', ...(inProcess ? ['--useInProcess'] : [])], {
    cwd: repoRoot,
    env: { ...process.env, ...env, HTTP_PORT: String(httpPort), LAMBDA_PORT: String(lambdaPort), SLS_TELEMETRY_DISABLED: '1' },
    stdio: ['ignore', stdio, stdio],
    detached: process.platform !== 'win32',
  });
  let output = '';
  child.stdout?.on('data', (chunk: Buffer) => { output = (output + chunk.toString()).slice(-20_000); });
  child.stderr?.on('data', (chunk: Buffer) => { output = (output + chunk.toString()).slice(-20_000); });
  const kill = () => { try { process.kill(-child.pid!, 'SIGTERM'); } catch { /* already gone */ } };
  process.once('exit', kill);

  const url = `http://127.0.0.1:${httpPort}`;
  const exited = new Promise<never>((_, reject) =>
    child.once('exit', (code) => reject(new Error(`serverless offline exited (${code}) before it was ready:\n${output}`))),
  );
  const deadline = Date.now() + 120_000;
  const ready = (async () => {
    while (Date.now() < deadline) {
      try {
        const res = await fetch(`${url}/v1/health`);
        if (res.status === 200) return;
      } catch { /* not up yet */ }
      await new Promise((r) => setTimeout(r, 250));
    }
    throw new Error(`serverless offline did not answer on ${url} within 120 s:\n${output}`);
  })();
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
