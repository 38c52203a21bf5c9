/**
 * The embedded Kafka: real Apache Kafka brokers (KRaft, each node broker and controller), one JVM
 * per node so a test can kill -9, SIGSTOP or restart one broker like a real failure. Data and
 * committed offsets live under dataDir and survive a restart, after Ctrl-C and after kill -9.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Kafka, logLevel } from 'kafkajs';
import { acquireDataDirLock, isAlive, kafkaLock, staleOwner, type DataDirLock, type LockOwner } from '../lock.ts';
import { assertPortFree, freePortRange } from '../ports.ts';
import { spawnTiedToParent } from '../child.ts';
import { ensureTopics, type TopicSpec } from '../../shared/kafka-topics.ts';
import { findJava } from './java.ts';
import { ensureKafkaJars, jarsManifest } from './jars.ts';
import { localClusterId, nodeProperties, propertiesText, type NodeAddresses } from './settings.ts';
import { ConfigError } from '../../shared/errors.ts';
import { LocalStackError } from '../errors.ts';
import { pollUntil } from '../wait.ts';

export type { TopicSpec };

/** A running embedded cluster. */
export interface EmbeddedKafka {
  /** "127.0.0.1:port1,127.0.0.1:port2,..." */
  readonly bootstrapServers: string;
  /** bootstrapServers, split. */
  readonly brokers: string[];
  /** Node ids, 1..N. */
  readonly brokerIds: number[];
  readonly dataDir: string;
  /** The JVM's pid of a node, undefined while it is down. */
  pid(id: number): number | undefined;
  /** kill -9 of one broker; resolves once it is gone. */
  kill(id: number): Promise<void>;
  /** SIGSTOP: the broker hangs, its sockets stay open. */
  pause(id: number): void;
  /** SIGCONT after {@link pause}. */
  resume(id: number): void;
  /** Starts a stopped broker again on its data and ports; resolves once the cluster lists it. */
  restart(id: number): Promise<void>;
  /** Creates a topic through the admin API (replication as the cluster's defaults). */
  createTopic(name: string, partitions: number, configs?: Record<string, string>): Promise<void>;
  /** Stops every broker (SIGTERM, SIGKILL after a grace period). Idempotent. */
  stop(): Promise<void>;
}

/** Options of {@link startEmbeddedKafka}. */
export interface EmbeddedKafkaOptions {
  dataDir: string;
  /** Nodes (default 3, like MSK's smallest multi-AZ cluster). */
  brokers?: number;
  /** Brokers listen on port..port+N-1 and controllers on the N ports after; 0 (default): free ports. */
  port?: number;
  topics?: TopicSpec[];
  /** Heap of each broker in MB (default 384). */
  heapMb?: number;
  /** Default 90 s: a first start downloads the jars and formats the storage. */
  readyTimeoutMs?: number;
  /** Progress lines for a person watching (downloads, formatting). */
  onProgress?: (message: string) => void;
}

const here = fileURLToPath(new URL('.', import.meta.url));
const log4jConfig = join(here, 'log4j2.properties');
const versionFile = 'kafka-version';
const stopGraceMs = 15_000;
const stderrKeepChars = 16_384;

/** The pinned Kafka version, read off jars.json (the broker jar's coordinates). */
export async function kafkaVersion(): Promise<string> {
  const { jars } = JSON.parse(await readFile(jarsManifest, 'utf8')) as { jars: { coords: string }[] };
  const broker = jars.find((j) => j.coords.startsWith('org.apache.kafka:kafka_2.13:'));
  if (!broker) throw new LocalStackError(`${jarsManifest} names no Kafka broker jar`);
  return broker.coords.split(':')[2]!;
}

const versionParts = (v: string): number[] => v.split(/[.-]/).slice(0, 3).map((p) => Number.parseInt(p, 10) || 0);

/** Whether data written by Kafka `written` can be opened by Kafka `running`: same major, not newer. */
export function canOpen(written: string, running: string): boolean {
  const [wMajor, wMinor = 0, wPatch = 0] = versionParts(written);
  const [rMajor, rMinor = 0, rPatch = 0] = versionParts(running);
  if (wMajor !== rMajor) return false;
  return wMinor < rMinor || (wMinor === rMinor && wPatch <= rPatch);
}

/** Refuses a data directory that another Kafka version (or no embedded Kafka) wrote. */
async function checkDataVersion(dataDir: string, nodeDirs: string[], version: string): Promise<void> {
  let written: string | undefined;
  try {
    written = (await readFile(join(dataDir, versionFile), 'utf8')).trim();
  } catch {
    written = undefined;
  }
  const move = `move ${dataDir} away (deleting it loses the events it holds) or set KAFKA_DATA_DIR to another directory`;
  if (written === undefined) {
    if (nodeDirs.some((d) => existsSync(join(d, 'meta.properties')))) {
      throw new LocalStackError(`${dataDir} holds Kafka data that the embedded Kafka did not write (no ${versionFile} file): ${move}`);
    }
    return;
  }
  if (!canOpen(written, version)) {
    throw new LocalStackError(`${dataDir} was written by Kafka ${written}, which Kafka ${version} cannot open (another major version, or a newer one): ${move}`);
  }
}

/** What the JVM said on stderr, as one line that says what went wrong. */
export function explainBrokerFailure(id: number, stderr: string, exit: string, logFile: string): string {
  const text = stderr.trim();
  if (/Address already in use/i.test(text)) {
    const port = text.match(/bind to [^:\s]+:(\d+)/)?.[1];
    return `embedded Kafka broker ${id} could not listen${port ? ` on port ${port}` : ''}: it is already in use; stop what holds it or set KAFKA_PORT to another base port`;
  }
  if (/Failed to acquire lock|another process or thread is using this directory/i.test(text)) {
    return `embedded Kafka broker ${id}: its data directory is used by another running Kafka; stop that one first or set KAFKA_DATA_DIR`;
  }
  if (/INCONSISTENT_CLUSTER_ID|Invalid cluster\.id|metadata\.version|unsupported.*version/i.test(text)) {
    return `embedded Kafka broker ${id} refused its data (written by another cluster or Kafka version): move the data directory away or set KAFKA_DATA_DIR; see ${logFile}`;
  }
  const first = text.split('\n').find((l) => /ERROR|Exception|Error:/.test(l))?.trim();
  return `embedded Kafka broker ${id} exited before it was ready (${exit})${first ? `: ${first.slice(0, 300)}` : ''}; see ${logFile}`;
}

// Every broker this process started, so an exit without stop() leaves none behind.
const liveChildren = new Set<ChildProcess>();
process.on('exit', () => {
  for (const child of liveChildren) {
    child.kill('SIGTERM');
    child.kill('SIGCONT'); // a broker a test paused handles the SIGTERM only once it runs again
  }
});

/** Whether pid is still one of this data directory's brokers (not a pid the system gave to another process since). */
function isOurBroker(pid: number, dataDir: string): boolean {
  try {
    const cmdline = readFileSync(`/proc/${pid}/cmdline`, 'utf8');
    return cmdline.includes('kafka.Kafka') && cmdline.includes(dataDir);
  } catch {
    return false; // gone, or no /proc (macOS): nothing we can safely kill
  }
}

/**
 * Waits for the brokers a dead owner left (after a kill -9 of npm start they get SIGTERM from the
 * kernel and are still shutting down), then kills what remains, so the ports and data are free.
 */
async function reapLeftovers(owner: LockOwner, dataDir: string): Promise<void> {
  const pids = (owner.children ?? []).filter((pid) => isOurBroker(pid, dataDir));
  // Past the grace, what is still alive is killed below: the timeout is no failure here.
  await pollUntil(() => !pids.some(isAlive), { timeoutMs: stopGraceMs, intervalMs: 100, what: 'leftover brokers still alive' }).catch(() => {});
  for (const pid of pids.filter((p) => isOurBroker(p, dataDir))) {
    try {
      process.kill(pid, 'SIGKILL');
    } catch { /* gone meanwhile */ }
  }
}

interface Node extends NodeAddresses {
  dir: string;
  logDir: string;
  propsFile: string;
  child?: ChildProcess;
  exited?: Promise<string>;
  stderr: string;
}

/** Starts (or restarts, on the same data) an embedded Kafka cluster and creates `topics`. */
export async function startEmbeddedKafka(options: EmbeddedKafkaOptions): Promise<EmbeddedKafka> {
  const count = options.brokers ?? 3;
  if (!Number.isInteger(count) || count < 1) throw new ConfigError(`brokers must be an integer >= 1, got ${count}`);
  const dataDir = resolve(options.dataDir);
  const heapMb = options.heapMb ?? Number(process.env.KAFKA_HEAP_MB ?? 384);
  if (!Number.isInteger(heapMb) || heapMb < 64) throw new ConfigError(`KAFKA_HEAP_MB must be a whole number of megabytes, at least 64; got ${process.env.KAFKA_HEAP_MB}`);
  const readyTimeoutMs = options.readyTimeoutMs ?? 90_000;
  const progress = options.onProgress ?? (() => {});

  const [java, version] = await Promise.all([findJava(), kafkaVersion()]);
  let fetched = 0;
  const classpath = (await ensureKafkaJars({
    onFetch: () => {
      if (fetched++ === 0) progress(`downloading Kafka ${version}'s jars from Maven Central (once)`);
    },
  })).join(':');

  await mkdir(dataDir, { recursive: true });
  // A cluster this process runs is not leftovers: the lock below refuses it.
  const previous = staleOwner(dataDir, kafkaLock);
  if (previous) await reapLeftovers(previous, dataDir);
  const lock: DataDirLock = acquireDataDirLock(dataDir, kafkaLock);
  try {
    return await startLocked();
  } catch (error) {
    lock.release();
    throw error;
  }

  async function startLocked(): Promise<EmbeddedKafka> {
    const base = options.port ?? 0;
    const ports = base > 0
      ? Array.from({ length: 2 * count }, (_, i) => base + i)
      : await freePortRange(2 * count);
    const nodes: Node[] = Array.from({ length: count }, (_, i) => {
      const dir = join(dataDir, `node-${i + 1}`);
      return { id: i + 1, brokerPort: ports[i]!, controllerPort: ports[count + i]!, dir, logDir: join(dir, 'data'), propsFile: join(dir, 'server.properties'), stderr: '' };
    });
    await checkDataVersion(dataDir, nodes.map((n) => n.logDir), version);
    for (const n of nodes) {
      // Named KAFKA_PORT whichever port of the run it is: the whole run moves with it.
      await assertPortFree(n.brokerPort, 'KAFKA_PORT', `embedded Kafka broker ${n.id}`);
      await assertPortFree(n.controllerPort, 'KAFKA_PORT', `embedded Kafka controller ${n.id}`);
    }

    const jvmArgs = (n: Node): string[] => [
      // The heap starts at 192 MB (or the whole heap, if KAFKA_HEAP_MB is smaller): from 64 MB the young generation began at ~21 MB and was
      // collected several times a second under load, each pause landing in some produce's acks=all wait
      // until the heap had grown (raw send p99 4.3 ms against 3.5; 30-50 MB more RSS per broker).
      `-Xmx${heapMb}m`, `-Xms${Math.min(heapMb, 192)}m`,
      // Serial GC: no GC threads to compete for 2 cores, and a smaller footprint than G1 at this heap.
      '-XX:+UseSerialGC', '-XX:+ExitOnOutOfMemoryError', '-Djava.awt.headless=true',
      // C1 only: C2 spent about a core compiling for the first minutes of every start (three JVMs on
      // 2 cores, under load), while a local broker's requests need no peak-optimised code.
      '-XX:TieredStopAtLevel=1',
      `-Dlog4j2.configurationFile=${log4jConfig}`, `-Dkafka.logs.dir=${n.dir}`,
      '-cp', classpath,
    ];

    for (const n of nodes) {
      await mkdir(n.dir, { recursive: true });
      await writeFile(n.propsFile, propertiesText(nodeProperties(n, nodes, n.logDir)));
    }
    const unformatted = nodes.filter((n) => !existsSync(join(n.logDir, 'meta.properties')));
    if (unformatted.length > 0) {
      progress(`formatting the Kafka storage in ${dataDir}`);
      // Written first: a start stopped while formatting (Ctrl-C) leaves formatted nodes beside the
      // version file, which the next start finishes, instead of data it refuses as another Kafka's.
      await writeFile(join(dataDir, versionFile), `${version}\n`);
      await Promise.all(unformatted.map((n) => runJava(n, ['kafka.tools.StorageTool', 'format', '-t', localClusterId, '-c', n.propsFile])));
    }


    /** Runs a Kafka tool to completion (the storage format). */
    function runJava(n: Node, mainAndArgs: string[]): Promise<void> {
      return new Promise((resolveRun, reject) => {
        const child = spawn(java.command, [...jvmArgs(n), ...mainAndArgs], { stdio: ['ignore', 'pipe', 'pipe'] });
        let output = '';
        child.stdout.on('data', (c: Buffer) => { output += c.toString(); });
        child.stderr.on('data', (c: Buffer) => { output += c.toString(); });
        child.once('error', reject);
        child.once('close', (code) => {
          if (code === 0) resolveRun();
          else reject(new LocalStackError(`formatting the storage of embedded Kafka broker ${n.id} failed (exit code ${code}): ${output.trim().split('\n').slice(-1)[0] ?? ''}`));
        });
      });
    }

    const recordChildren = () => lock.update({ pid: process.pid, children: nodes.flatMap((n) => (n.child?.pid ? [n.child.pid] : [])) });

    function spawnNode(n: Node): void {
      const args = [...jvmArgs(n), 'kafka.Kafka', n.propsFile];
      // Its own process group: a terminal's Ctrl-C reaches only npm start, which stops the functions
      // first and the brokers last. Tied to us: if we die (even by kill -9), the kernel sends the
      // broker SIGTERM, so no JVM is left holding the ports and the data.
      // KILL, not TERM, when npm start dies: the three brokers' own shutdown then waits ~10 s for
      // a quorum that is leaving with them, and a killed broker loses nothing acknowledged (the
      // kill -9 tests). Every clean stop still goes through stop().
      const child = spawnTiedToParent(java.command, args, { stdio: ['ignore', 'ignore', 'pipe'], detached: true }, 'KILL');
      n.child = child;
      n.stderr = '';
      liveChildren.add(child);
      child.stderr!.setEncoding('utf8');
      child.stderr!.on('data', (chunk: string) => {
        n.stderr = (n.stderr + chunk).slice(-stderrKeepChars);
      });
      n.exited = new Promise((resolveExit) => {
        child.once('error', (error) => {
          liveChildren.delete(child);
          resolveExit(`cannot run ${java.command}: ${error.message}`);
        });
        child.once('close', (code, signal) => {
          liveChildren.delete(child);
          if (n.child === child) n.child = undefined;
          resolveExit(signal ? `signal ${signal}` : `exit code ${code}`);
        });
      });
      recordChildren();
    }

    const bootstrapServers = nodes.map((n) => `127.0.0.1:${n.brokerPort}`).join(',');
    const clientOptions = {
      logLevel: logLevel.NOTHING, connectionTimeout: 1_000, requestTimeout: 5_000,
      retry: { retries: 3, initialRetryTime: 100, maxRetryTime: 1_000 },
    };
    const kafka = new Kafka({ clientId: 'embedded-kafka', brokers: bootstrapServers.split(','), ...clientOptions });

    /** Whether broker n itself answers and lists itself as serving (started and unfenced). */
    async function serving(n: Node): Promise<boolean> {
      // Asked directly: the cluster's metadata still lists a killed broker until its session expires.
      const admin = new Kafka({ clientId: 'embedded-kafka-ready', brokers: [`127.0.0.1:${n.brokerPort}`], ...clientOptions, retry: { retries: 0 } }).admin();
      try {
        await admin.connect();
        const { brokers } = await admin.describeCluster();
        return brokers.some((b) => b.nodeId === n.id);
      } catch {
        return false;
      } finally {
        await admin.disconnect().catch(() => {});
      }
    }

    /** Resolves once every node in `watched` serves; rejects with one line if one exits first. */
    async function waitForBrokers(watched: Node[], timeoutMs: number): Promise<void> {
      let failure: string | undefined;
      for (const n of watched) {
        void n.exited!.then((exit) => {
          failure ??= explainBrokerFailure(n.id, n.stderr, exit, join(n.dir, 'server.log'));
        });
      }
      let pending = watched;
      await pollUntil(async () => {
        if (failure) throw new LocalStackError(failure);
        const up = await Promise.all(pending.map(serving));
        pending = pending.filter((_, i) => !up[i]);
        return pending.length === 0;
      }, {
        timeoutMs, intervalMs: 200,
        what: () => failure ?? `embedded Kafka brokers ${pending.map((n) => n.id).join(', ')} were not ready within ${timeoutMs} ms; see ${join(dataDir, 'node-*', 'server.log')}`,
      });
    }

    async function stopNode(n: Node, signal: NodeJS.Signals): Promise<void> {
      const child = n.child;
      if (!child) return;
      if (signal !== 'SIGKILL') child.kill('SIGCONT'); // a paused broker cannot handle SIGTERM
      child.kill(signal);
      const timer = setTimeout(() => child.kill('SIGKILL'), stopGraceMs);
      await n.exited;
      clearTimeout(timer);
    }

    const nodeById = (id: number): Node => {
      const n = nodes.find((x) => x.id === id);
      if (!n) throw new LocalStackError(`no broker ${id} (brokers are 1..${count})`);
      return n;
    };

    let stopping: Promise<void> | undefined;
    const stop = (): Promise<void> => {
      stopping ??= (async () => {
        await Promise.all(nodes.map((n) => stopNode(n, 'SIGTERM')));
        lock.release();
      })();
      return stopping;
    };

    try {
      nodes.forEach(spawnNode);
      await waitForBrokers(nodes, readyTimeoutMs);
      if (options.topics?.length) await ensureTopics(kafka, options.topics);
    } catch (error) {
      await stop();
      throw error;
    }

    return {
      bootstrapServers,
      brokers: bootstrapServers.split(','),
      brokerIds: nodes.map((n) => n.id),
      dataDir,
      pid: (id) => nodeById(id).child?.pid,
      kill: (id) => stopNode(nodeById(id), 'SIGKILL'),
      pause: (id) => void nodeById(id).child?.kill('SIGSTOP'),
      resume: (id) => void nodeById(id).child?.kill('SIGCONT'),
      async restart(id) {
        const n = nodeById(id);
        if (stopping) throw new LocalStackError('the embedded Kafka was stopped');
        if (n.child) throw new LocalStackError(`broker ${id} is running`);
        await assertPortFree(n.brokerPort, 'KAFKA_PORT', `embedded Kafka broker ${id}`);
        spawnNode(n);
        await waitForBrokers([n], readyTimeoutMs);
      },
      async createTopic(name, partitions, configs) {
        await ensureTopics(kafka, [{ name, partitions, configs }]);
      },
      stop,
    };
  }
}
