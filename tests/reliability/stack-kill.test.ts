/**
 * The durability promise of `npm start`: every event the API answered 202 for is in ClickHouse
 * exactly once, even after kill -9 of every process of the stack at once (npm start, serverless
 * offline and its children, the ClickHouse server, the three Kafka JVMs) and a start on the same
 * data directories.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';
import { signDevToken, devJwtSecret } from '../../localstack/dev-token.ts';
import { createClickHouse } from '../../shared/clickhouse.ts';
import { cmdline, mentioning, stackProcesses, waitUntilGone } from '../setup/processes.ts';
import { freePort, freePortRange, isFree } from '../../localstack/ports.ts';
import { sleep } from './harness.ts';

const repoRoot = fileURLToPath(new URL('../..', import.meta.url));


interface RunningStack { child: ChildProcess; output: () => string; clickhouseUrl: string; database: string; exited: Promise<number | null> }

/**
 * Runs `npm start`'s program (localstack/start.ts; with `viaNpm`, `npm start` itself, as a user
 * does) in a process group of its own, and resolves once it says the API is running.
 */
async function startStack(env: Record<string, string>, { viaNpm = false } = {}): Promise<RunningStack> {
  const { KAFKA_BROKERS: _k, CLICKHOUSE_URL: _c, JWT_SECRET: _j, ...inherited } = process.env;
  const [command, args] = viaNpm ? ['npm', ['start']] : [process.execPath, ['--import', 'tsx', 'localstack/start.ts']];
  const child = spawn(command, args, {
    cwd: repoRoot, env: { ...inherited, ...env }, stdio: ['ignore', 'pipe', 'pipe'], detached: true,
  });
  let output = '';
  const keep = (c: Buffer) => { output = (output + c.toString()).slice(-200_000); };
  child.stdout!.on('data', keep);
  child.stderr!.on('data', keep);
  const exited = new Promise<number | null>((r) => child.once('exit', (code) => r(code)));
  const deadline = Date.now() + 240_000;
  while (!output.includes('ugc-ingest is running.')) {
    if (child.exitCode !== null || child.signalCode !== null) throw new Error(`npm start exited (${child.exitCode ?? child.signalCode}):\n${output.slice(-5_000)}`);
    if (Date.now() > deadline) throw new Error(`npm start was not ready within 240 s:\n${output.slice(-5_000)}`);
    await sleep(250);
  }
  const ready = output.split('\n').map((l) => { try { return JSON.parse(l) as Record<string, unknown>; } catch { return undefined; } })
    .find((l) => l?.message === 'local stack ready')!;
  return { child, output: () => output, clickhouseUrl: String(ready.CLICKHOUSE_URL), database: String(ready.CLICKHOUSE_DATABASE), exited };
}


type StreamFigures = { sent: number; accepted: number; unavailable503: number; otherStatus: number; connectionErrors: number; connectionErrorsAfterKill: number };

/** Streams events, 4 requests at a time, each its own event_id, until stop(); counts what came back. */
function streamEvents(api: string, token: string) {
  const accepted = new Set<string>();
  const figures: StreamFigures = { sent: 0, accepted: 0, unavailable503: 0, otherStatus: 0, connectionErrors: 0, connectionErrorsAfterKill: 0 };
  const state = { killed: false, streaming: true };
  const sender = async () => {
    while (state.streaming) {
      const eventId = randomUUID();
      figures.sent++;
      try {
        const res = await fetch(api, {
          method: 'POST', signal: AbortSignal.timeout(15_000),
          headers: { 'content-type': 'application/json', authorization: `Bearer ${token}` },
          body: JSON.stringify({ type: 'film_progress', event_id: eventId, film_id: 'tt0111161', position_s: figures.sent, duration_s: 8520 }),
        });
        await res.arrayBuffer();
        if (res.status === 202) { accepted.add(eventId); figures.accepted++; }
        else if (res.status === 503) figures.unavailable503++;
        else figures.otherStatus++;
      } catch {
        figures.connectionErrors++;
        if (state.killed) figures.connectionErrorsAfterKill++;
        await sleep(50);
      }
    }
  };
  const senders = Array.from({ length: 4 }, sender);
  return {
    accepted, figures,
    set killed(value: boolean) { state.killed = value; },
    async stop() { state.streaming = false; await Promise.all(senders); },
    async waitFor(what: string, done: () => boolean, timeoutMs: number) {
      const deadline = Date.now() + timeoutMs;
      while (!done()) {
        if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}: ${JSON.stringify(figures)}`);
        await sleep(50);
      }
    },
  };
}

/** Every id in ClickHouse exactly once (FINAL) after the restart, with the figures printed. */
async function expectStoredOnce(second: RunningStack, ids: string[], figures: StreamFigures): Promise<void> {
    const settings = { CLICKHOUSE_URL: second.clickhouseUrl, CLICKHOUSE_USER: 'default', CLICKHOUSE_PASSWORD: '', CLICKHOUSE_DATABASE: second.database, CLICKHOUSE_REQUEST_TIMEOUT_MS: 30_000 };
    const db = createClickHouse(settings);
    let inClickHouse = 0;
    let perId = new Map<string, number>();
    let rawDuplicates = 0;
    try {
      const deadline = Date.now() + 120_000;
      for (;;) {
        const final = await db.query({
          query: 'SELECT toString(event_id) AS id, count() AS n FROM events FINAL WHERE event_id IN {ids:Array(UUID)} GROUP BY id',
          query_params: { ids }, format: 'JSONEachRow',
        });
        perId = new Map((await final.json<{ id: string; n: string | number }>()).map((r) => [r.id, Number(r.n)]));
        inClickHouse = perId.size;
        if (inClickHouse >= ids.length || Date.now() > deadline) break;
        await sleep(1_000);
      }
      const raw = await db.query({
        query: 'SELECT count() - uniqExact(event_id) AS extra FROM events WHERE event_id IN {ids:Array(UUID)}',
        query_params: { ids }, format: 'JSONEachRow',
      });
      rawDuplicates = Number((await raw.json<{ extra: string | number }>())[0]!.extra);
      const total = await db.query({ query: 'SELECT count() AS n FROM events FINAL', format: 'JSONEachRow' });
      const totalFinal = Number((await total.json<{ n: string | number }>())[0]!.n);
      const missing = ids.filter((id) => !perId.has(id));
      const duplicated = [...perId.values()].filter((n) => n > 1).length;
      console.log(JSON.stringify({
        ...figures, acceptedBeforeKill: ids.length, inClickHouse, totalRowsFinal: totalFinal,
        missing: missing.length, duplicatedFinal: duplicated, duplicateRowsBeforeMerge: rawDuplicates,
      }));
      // The fault happened: events were accepted, and requests failed once the stack was gone.
      expect(ids.length).toBeGreaterThanOrEqual(200);
      expect(figures.connectionErrorsAfterKill).toBeGreaterThanOrEqual(8);
      // Counted, so asserted: an answer other than 202 or 503 (a 400, a 500) is a defect, not the fault.
      expect(figures.otherStatus).toBe(0);
      expect(missing).toEqual([]);
      expect(duplicated).toBe(0);
      // Events from requests cut by the kill may be in too (accepted by Kafka, answer lost), never more.
      expect(totalFinal).toBeGreaterThanOrEqual(ids.length);
      expect(totalFinal).toBeLessThanOrEqual(figures.sent);
    } finally {
      await db.close();
    }
}

const dirs: string[] = [];
let running: RunningStack | undefined;
afterAll(async () => {
  // If the test failed half-way: leave no process behind.
  if (running?.child.pid) for (const pid of stackProcesses(running.child.pid)) { try { process.kill(pid, 'SIGKILL'); } catch { /* gone */ } }
  await Promise.all(dirs.map((d) => rm(d, { recursive: true, force: true })));
}, 60_000);

/** npm start's environment for a stack of its own: free ports, data dirs removed after the file. */
async function stackOnTmpDirs() {
  const kafkaDataDir = await mkdtemp(join(tmpdir(), 'ugc-kill-kafka-'));
  const clickhouseDataDir = await mkdtemp(join(tmpdir(), 'ugc-kill-ch-'));
  dirs.push(kafkaDataDir, clickhouseDataDir);
  const env = {
    HTTP_PORT: String(await freePort()), LAMBDA_PORT: String(await freePort()), DEMO_PORT: String(await freePort()),
    CLICKHOUSE_PORT: String(await freePort()), KAFKA_PORT: String((await freePortRange(6))[0]),
    KAFKA_DATA_DIR: kafkaDataDir, CLICKHOUSE_DATA_DIR: clickhouseDataDir,
  };
  return { env, kafkaDataDir, clickhouseDataDir };
}

describe('kill -9 of the whole local stack', () => {
  it('keeps every event answered 202 before the kill: in ClickHouse exactly once after a start on the same data', async () => {
    const { env, kafkaDataDir, clickhouseDataDir } = await stackOnTmpDirs();
    const api = `http://127.0.0.1:${env.HTTP_PORT}/v1/events`;
    const token = await signDevToken('viewer-stack-kill', { secret: devJwtSecret });

    running = await startStack(env);
    const first = running;

    const stream = streamEvents(api, token);
    const { figures, accepted, waitFor } = stream;
    await waitFor('200 accepted events', () => figures.accepted >= 200, 120_000);

    // Every process of the stack, frozen first so none can react (no SIGTERM reaches a broker
    // from the kernel, no offline restarts a worker), then SIGKILL for all of them at once.
    const victims = stackProcesses(first.child.pid!);
    const jvms = victims.filter((pid) => cmdline(pid).includes('kafka.Kafka'));
    const clickhouseServer = victims.filter((pid) => cmdline(pid).includes('clickhouse/server.ts'));
    const offline = victims.filter((pid) => cmdline(pid).includes('serverless.js'));
    expect(jvms).toHaveLength(3);
    expect(clickhouseServer).toHaveLength(1);
    expect(offline.length).toBeGreaterThanOrEqual(1);
    for (const pid of victims) process.kill(pid, 'SIGSTOP');
    stream.killed = true;
    for (const pid of victims) process.kill(pid, 'SIGKILL');
    expect(await waitUntilGone(victims, 20_000)).toEqual([]);
    expect(mentioning([kafkaDataDir, clickhouseDataDir])).toEqual([]);
    await first.exited;

    await waitFor('connection errors after the kill', () => figures.connectionErrorsAfterKill >= 8, 60_000);
    await stream.stop();
    // Every 202 was sent before the freeze (a frozen or dead server answers nothing); some were
    // read by the client only after it.
    const acceptedBeforeKill = accepted;

    running = await startStack(env);
    const second = running;
    await expectStoredOnce(second, [...acceptedBeforeKill], figures);

    // A clean stop leaves nothing behind.
    const last = stackProcesses(second.child.pid!);
    expect(last.filter((pid) => cmdline(pid).includes('kafka.Kafka'))).toHaveLength(3);
    process.kill(second.child.pid!, 'SIGTERM');
    expect(await second.exited).toBe(0);
    expect(await waitUntilGone(last, 30_000)).toEqual([]);
    expect(mentioning([kafkaDataDir, clickhouseDataDir])).toEqual([]);
    running = undefined;
  }, 600_000);

  it('kill -9 of npm start alone: its brokers, ClickHouse and serverless offline stop by themselves, and the next npm start stores every event answered 202', async () => {
    const { env } = await stackOnTmpDirs();
    const token = await signDevToken('viewer-npm-start-kill', { secret: devJwtSecret });
    running = await startStack(env);
    const first = running;
    const stream = streamEvents(`http://127.0.0.1:${env.HTTP_PORT}/v1/events`, token);
    await stream.waitFor('200 accepted events', () => stream.figures.accepted >= 200, 120_000);

    // Only npm start's own node process, as a user's kill -9 (or an OOM kill) would.
    const children = stackProcesses(first.child.pid!).filter((pid) => pid !== first.child.pid);
    expect(children.filter((pid) => cmdline(pid).includes('kafka.Kafka'))).toHaveLength(3);
    process.kill(first.child.pid!, 'SIGKILL');
    stream.killed = true;
    await first.exited;
    // What it started goes too, within seconds even under load: the brokers and serverless offline
    // get SIGKILL from the kernel (setpriv --pdeathsig), the ClickHouse server sees its stdin close.
    expect(await waitUntilGone(children, 20_000)).toEqual([]);
    await stream.waitFor('connection errors after the kill', () => stream.figures.connectionErrorsAfterKill >= 8, 60_000);
    await stream.stop();

    running = await startStack(env);
    const second = running;
    await expectStoredOnce(second, [...stream.accepted], stream.figures);
    const last = stackProcesses(second.child.pid!);
    process.kill(second.child.pid!, 'SIGTERM');
    expect(await second.exited).toBe(0);
    expect(await waitUntilGone(last, 30_000)).toEqual([]);
    running = undefined;
  }, 600_000);
});

describe('stopping npm start leaves nothing behind', () => {
  // Ctrl-C in a terminal is SIGINT to the foreground process group (npm, its shell, node); SIGTERM
  // is what a supervisor sends; kill -9 of the node process is a crash or an OOM kill.
  const cases = [
    { how: 'Ctrl-C (SIGINT to the process group of npm start)', stop: (s: RunningStack) => process.kill(-s.child.pid!, 'SIGINT') },
    { how: 'SIGTERM to npm start\'s node process', stop: (s: RunningStack) => process.kill(nodeOf(s), 'SIGTERM') },
    { how: 'kill -9 of npm start\'s node process', stop: (s: RunningStack) => process.kill(nodeOf(s), 'SIGKILL') },
  ];
  /** The node process running localstack/start.ts (under npm and its shell). */
  const nodeOf = (s: RunningStack) => {
    const pid = stackProcesses(s.child.pid!).find((p) => /^\S*node .*localstack\/start\.ts/.test(cmdline(p)));
    if (!pid) throw new Error('no node process runs localstack/start.ts');
    return pid;
  };

  for (const { how, stop } of cases) {
    it(`${how}: every process of the stack is gone within seconds and its ports are free`, async () => {
      const { env, kafkaDataDir, clickhouseDataDir } = await stackOnTmpDirs();
      running = await startStack(env, { viaNpm: true });
      const stack = running;
      const health = await fetch(`http://127.0.0.1:${env.HTTP_PORT}/v1/health`);
      expect(health.status).toBe(200);
      const victims = stackProcesses(stack.child.pid!);
      // What there is to stop: npm, node, serverless offline, ClickHouse, three brokers.
      expect(victims.filter((pid) => cmdline(pid).includes('kafka.Kafka'))).toHaveLength(3);
      expect(victims.filter((pid) => cmdline(pid).includes('serverless.js'))).toHaveLength(1);
      expect(victims.filter((pid) => cmdline(pid).includes('clickhouse/server.ts'))).toHaveLength(1);

      const signalledAt = performance.now();
      stop(stack);
      const left = await waitUntilGone(victims, 30_000);
      const goneMs = Math.round(performance.now() - signalledAt);
      const ports = [env.HTTP_PORT, env.LAMBDA_PORT, env.DEMO_PORT, env.CLICKHOUSE_PORT].map(Number);
      const taken = (await Promise.all(ports.map(async (port) => ((await isFree(port)) ? undefined : port)))).filter(Boolean);
      console.log(JSON.stringify({ how, processes: victims.length, goneMs, left: left.map(cmdline), taken }));
      expect(left.map(cmdline)).toEqual([]);
      // About 5 s on an idle machine; the bound leaves room for a machine shared with other runs.
      expect(goneMs).toBeLessThan(15_000);
      expect(taken).toEqual([]);
      expect(mentioning([kafkaDataDir, clickhouseDataDir])).toEqual([]);
      running = undefined;
    }, 300_000);
  }
});
