import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { createServer as createHttpServer, type Server } from 'node:http';
import { connect, createServer, type Server as NetServer } from 'node:net';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Kafka, logLevel, type Admin } from 'kafkajs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startEmbeddedKafka, type EmbeddedKafka } from '../../localstack/kafka/embedded.ts';
import { defaultJarsCacheDir, ensureKafkaJars, jarPath, jarsManifest, type LockedJar } from '../../localstack/kafka/jars.ts';
import { eventually, freePort } from '../setup/context.ts';
import { consumerTimings, readTopic, whileTopicUnknown } from '../setup/kafka.ts';
import { alive, mentioning, waitUntilGone } from '../setup/processes.ts';

const repoRoot = fileURLToPath(new URL('../..', import.meta.url));
const manifest = JSON.parse(readFileSync(jarsManifest, 'utf8')) as { jars: LockedJar[] };
const sharedJarCache = process.env.KAFKA_JARS_DIR || defaultJarsCacheDir;
const sha256 = (bytes: Uint8Array): string => createHash('sha256').update(bytes).digest('hex');
const tmpDirs: string[] = [];
const tmp = async (prefix: string): Promise<string> => {
  const dir = await mkdtemp(join(tmpdir(), prefix));
  tmpDirs.push(dir);
  return dir;
};
afterAll(async () => {
  await Promise.all(tmpDirs.map((d) => rm(d, { recursive: true, force: true })));
});

/** Pids of live processes whose command line mentions `needle` (a data dir): the brokers' JVMs. */
const processesMentioning = (needle: string): number[] => mentioning([needle]);

function canConnect(host: string, port: number): Promise<boolean> {
  return new Promise((resolveConnect) => {
    const socket = connect({ host, port });
    socket.setTimeout(3_000, () => { socket.destroy(); resolveConnect(false); });
    socket.once('connect', () => { socket.destroy(); resolveConnect(true); });
    socket.once('error', () => resolveConnect(false));
  });
}

/** The message a failing start rejects with (it must reject). */
async function failureOf(start: Promise<unknown>): Promise<string> {
  try {
    await start;
  } catch (error) {
    return error instanceof Error ? error.message : String(error);
  }
  throw new Error('it started, but it should have failed');
}

/** An expected failure is one line that does not carry a stack trace. */
function expectOneLine(message: string): void {
  expect(message).not.toContain('\n');
  expect(message).not.toMatch(/\bat .+:\d+:\d+/);
  expect(message.length).toBeGreaterThan(20);
}

function holdPort(port: number): Promise<NetServer> {
  return new Promise((resolveHold, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(port, '127.0.0.1', () => resolveHold(server));
  });
}

const kafkaClient = (cluster: EmbeddedKafka, clientId: string) => new Kafka({
  clientId, brokers: cluster.brokers, logLevel: logLevel.NOTHING,
  connectionTimeout: 3_000, retry: { retries: 8, initialRetryTime: 200, maxRetryTime: 2_000 },
});

async function withAdmin<T>(kafka: Kafka, use: (admin: Admin) => Promise<T>): Promise<T> {
  const admin = kafka.admin();
  await admin.connect();
  try {
    return await use(admin);
  } finally {
    await admin.disconnect();
  }
}

/** Committed offsets of a group, partition → offset. */
async function committed(kafka: Kafka, groupId: string, topic: string): Promise<Record<number, string>> {
  const [offsets] = await withAdmin(kafka, (admin) => admin.fetchOffsets({ groupId, topics: [topic] }));
  return Object.fromEntries(offsets!.partitions.map((p) => [p.partition, p.offset]));
}

describe('the embedded Kafka cluster (real Apache Kafka, 3 KRaft nodes)', () => {
  let dataDir: string;
  let cluster: EmbeddedKafka;
  let kafka: Kafka;

  beforeAll(async () => {
    dataDir = await tmp('ugc-ek-');
    cluster = await startEmbeddedKafka({ dataDir });
    kafka = kafkaClient(cluster, 'embedded-kafka-test');
  }, 180_000);

  afterAll(async () => {
    await cluster?.stop();
  }, 60_000);

  it('has 3 brokers, each its own JVM', async () => {
    const { brokers } = await withAdmin(kafka, (admin) => admin.describeCluster());
    expect(brokers.map((b) => b.nodeId).sort()).toEqual([1, 2, 3]);
    const pids = cluster.brokerIds.map((id) => cluster.pid(id));
    expect(new Set(pids).size).toBe(3);
    for (const pid of pids) expect(readFileSync(`/proc/${pid}/cmdline`, 'utf8')).toContain('kafka.Kafka');
  });

  it('creates topics with 3 replicas and min.insync.replicas 2, by default and as configured', async () => {
    await cluster.createTopic('ek.create-topic', 3);
    // As the stack creates the product's topics (ensureTopics with their min.insync.replicas).
    await cluster.createTopic('ek.ensure-topics', 2, { 'min.insync.replicas': '2' });
    // Each broker learns of a new topic from the controller on its own: ask until all of them know.
    await eventually(() => withAdmin(kafka, async (admin) => {
      const { topics } = await admin.fetchTopicMetadata({ topics: ['ek.create-topic', 'ek.ensure-topics'] });
      for (const t of topics) {
        for (const p of t.partitions) expect(p.replicas, `${t.name}/${p.partitionId}`).toHaveLength(3);
      }
      const { resources } = await admin.describeConfigs({
        includeSynonyms: false,
        resources: ['ek.create-topic', 'ek.ensure-topics'].map((name) => ({ type: 2 /* TOPIC */, name, configNames: ['min.insync.replicas'] })),
      });
      for (const r of resources) {
        expect(r.configEntries.find((e) => e.configName === 'min.insync.replicas')?.configValue, r.resourceName).toBe('2');
      }
      return true;
    }), 30_000, 'both topics in every broker\'s metadata');
  });

  it('does not create a topic on first use: producing to an unknown topic fails', async () => {
    const producer = kafka.producer({ retry: { retries: 2, initialRetryTime: 100, maxRetryTime: 500 } });
    await producer.connect();
    try {
      await expect(producer.send({ topic: 'ek.never-created', messages: [{ value: 'x' }] })).rejects.toThrow(/does not host this topic-partition|UNKNOWN_TOPIC|not exist/i);
    } finally {
      await producer.disconnect();
    }
    const topics = await withAdmin(kafka, (admin) => admin.listTopics());
    expect(topics).not.toContain('ek.never-created');
  });

  it('accepts an idempotent producer (acks=all) and delivers each message once', async () => {
    const topic = 'ek.idempotent';
    await cluster.createTopic(topic, 3);
    const producer = kafka.producer({ idempotent: true, maxInFlightRequests: 1 });
    await producer.connect();
    try {
      await producer.send({ topic, acks: -1, messages: Array.from({ length: 50 }, (_, i) => ({ key: `k${i % 5}`, value: `m${i}` })) });
    } finally {
      await producer.disconnect();
    }
    const read = await readTopic(cluster.brokers, topic, 50, { timeoutMs: 60_000, settleMs: 1_000 });
    expect(read.map((m) => m.value!.toString()).sort()).toEqual(Array.from({ length: 50 }, (_, i) => `m${i}`).sort());
  }, 90_000);

  it('listens on 127.0.0.1 only', async () => {
    const n1 = readFileSync(join(dataDir, 'node-1', 'server.properties'), 'utf8');
    const listeners = n1.match(/^listeners=(.*)$/m)?.[1];
    expect(listeners).toBeDefined();
    for (const l of listeners!.split(',')) expect(l).toMatch(/^\w+:\/\/127\.0\.0\.1:\d+$/);
    const port = Number(cluster.brokers[0]!.split(':')[1]);
    expect(await canConnect('127.0.0.1', port)).toBe(true);
    // Another address of this machine (all of 127/8 is loopback on Linux) does not reach it.
    expect(await canConnect('127.0.0.2', port)).toBe(false);
  });

  it('refuses, in one line, a second cluster on a data dir a running cluster uses, and the running one keeps serving', async () => {
    const lockFile = join(dataDir, 'embedded-kafka.lock');
    const before = readFileSync(lockFile, 'utf8');
    const message = await failureOf(startEmbeddedKafka({ dataDir, readyTimeoutMs: 60_000 }));
    expectOneLine(message);
    expect(message).toContain(dataDir);
    expect(message).toMatch(/already used/);
    expect(message).toContain('KAFKA_DATA_DIR');
    // The failed start neither took the lock away nor touched the running brokers.
    expect(readFileSync(lockFile, 'utf8')).toBe(before);
    for (const id of cluster.brokerIds) expect(alive(cluster.pid(id)!)).toBe(true);
    const { brokers } = await withAdmin(kafka, (admin) => admin.describeCluster());
    expect(brokers).toHaveLength(3);
  }, 90_000);

  it('refuses a data dir in use by a cluster of another process (a second npm start), in one line', async () => {
    const script = join(await tmp('ugc-ek-script-'), 'second.mts');
    await writeFile(script, [
      `import { startEmbeddedKafka } from ${JSON.stringify(join(repoRoot, 'localstack/kafka/embedded.ts'))};`,
      `try { await startEmbeddedKafka({ dataDir: ${JSON.stringify(dataDir)} }); console.log('started'); process.exit(0); }`,
      `catch (e) { console.error(e instanceof Error ? e.message : String(e)); process.exit(1); }`,
    ].join('\n'));
    const child = spawn(process.execPath, ['--import', 'tsx', script], { cwd: repoRoot, stdio: ['ignore', 'pipe', 'pipe'] });
    let stderr = '';
    let stdout = '';
    child.stderr.on('data', (c: Buffer) => { stderr += c.toString(); });
    child.stdout.on('data', (c: Buffer) => { stdout += c.toString(); });
    const code = await new Promise<number | null>((r) => child.once('close', r));
    expect(stdout).toBe('');
    expect(code).toBe(1);
    expectOneLine(stderr.trim());
    expect(stderr).toMatch(new RegExp(`already used by another embedded Kafka cluster \\(pid ${process.pid}\\)`));
  }, 90_000);

  /** A topic with messages and a group that committed partition 0 to its end (30) and partition 1 not at all. */
  async function writeAndCommit(tag: string) {
    const topic = `ek.durable-${tag}`;
    const groupId = `ek-group-${tag}`;
    await cluster.createTopic(topic, 3);
    const values = await produceAndCommit(kafka, topic, groupId, tag);
    const offsetsBefore = await committed(kafka, groupId, topic);
    expect(offsetsBefore[0]).toBe('30');
    return { topic, groupId, values, offsetsBefore };
  }

  /** Starts the cluster again on the same data dir: every message and the group's offsets are still there. */
  async function expectKeptAfterStart({ topic, groupId, values, offsetsBefore }: Awaited<ReturnType<typeof writeAndCommit>>) {
    cluster = await startEmbeddedKafka({ dataDir });
    kafka = kafkaClient(cluster, 'embedded-kafka-test');
    const read = await readTopic(cluster.brokers, topic, values.length, { timeoutMs: 60_000, settleMs: 1_000 });
    expect(read.map((m) => m.value!.toString()).sort()).toEqual([...values].sort());
    // After an unclean stop the group coordinator loads the offsets topic on its own time, and may
    // answer "no offset" (-1) until it has: lost offsets still fail here, after 30 s.
    let after: Awaited<ReturnType<typeof committed>> | undefined;
    await eventually(async () => {
      after = await committed(kafka, groupId, topic);
      return JSON.stringify(after) === JSON.stringify(offsetsBefore) ? true : undefined;
    }, 30_000, 'the group\'s committed offsets').catch(() => {});
    expect(after).toEqual(offsetsBefore);
  }

  it('keeps its data and committed group offsets across stop() and a start on the same data dir', async () => {
    const kept = await writeAndCommit('stop');

    const pids = cluster.brokerIds.map((id) => cluster.pid(id)!);
    await cluster.stop();
    expect(await waitUntilGone(pids, 1_000)).toEqual([]);
    expect(processesMentioning(dataDir)).toEqual([]);

    await expectKeptAfterStart(kept);
  }, 240_000);

  it('keeps its data and committed group offsets across kill -9 of all three JVMs', async () => {
    const kept = await writeAndCommit('kill');

    const pids = cluster.brokerIds.map((id) => cluster.pid(id)!);
    for (const pid of pids) process.kill(pid, 'SIGKILL');
    expect(await waitUntilGone(pids)).toEqual([]);
    // The JVMs died without a shutdown: Kafka's own lock files and unflushed segments stay as they were.
    expect(existsSync(join(dataDir, 'node-1', 'data', 'meta.properties'))).toBe(true);
    await cluster.stop(); // nothing to stop: it releases the data dir's lock, as the end of our process would

    await expectKeptAfterStart(kept);
  }, 240_000);

  it('stop() leaves no JVM behind', async () => {
    const pids = cluster.brokerIds.map((id) => cluster.pid(id)!);
    expect(pids.every(alive)).toBe(true);
    expect(processesMentioning(dataDir).sort()).toEqual([...pids].sort());
    await cluster.stop();
    expect(pids.filter(alive)).toEqual([]);
    expect(processesMentioning(dataDir)).toEqual([]);
    expect(existsSync(join(dataDir, 'embedded-kafka.lock'))).toBe(false);
  }, 60_000);
});

/** Produces 60 messages (acks=all), then a group consumes and commits the first 30 of them. */
async function produceAndCommit(kafka: Kafka, topic: string, groupId: string, tag: string): Promise<string[]> {
  const values = Array.from({ length: 60 }, (_, i) => `${tag}-${i}`);
  const producer = kafka.producer({ idempotent: true, maxInFlightRequests: 1 });
  await producer.connect();
  try {
    // One partition each for the first 30 and the rest, so "the first 30" is a committed offset.
    await producer.send({ topic, acks: -1, messages: values.slice(0, 30).map((value) => ({ value, partition: 0 })) });
    await producer.send({ topic, acks: -1, messages: values.slice(30).map((value) => ({ value, partition: 1 })) });
  } finally {
    await producer.disconnect();
  }
  const consumer = kafka.consumer({ groupId, ...consumerTimings });
  await consumer.connect();
  try {
    await whileTopicUnknown(() => consumer.subscribe({ topic, fromBeginning: true }));
    let seen = 0;
    await new Promise<void>((resolveRead, reject) => {
      const timer = setTimeout(() => reject(new Error(`read ${seen} of 30`)), 60_000);
      consumer.run({
        autoCommit: false,
        eachMessage: async ({ partition, message }) => {
          if (partition !== 0) return;
          seen++;
          await consumer.commitOffsets([{ topic, partition, offset: String(Number(message.offset) + 1) }]);
          if (seen === 30) { clearTimeout(timer); resolveRead(); }
        },
      }).catch(reject);
    });
  } finally {
    await consumer.disconnect();
  }
  return values;
}

describe('the embedded Kafka refuses to start, in one line that says what to do', () => {
  it('when a port it needs is taken', async () => {
    const port = await freePort();
    const held = await holdPort(port);
    try {
      const message = await failureOf(startEmbeddedKafka({ dataDir: await tmp('ugc-ek-port-'), port }));
      expectOneLine(message);
      expect(message).toContain(`port ${port}`);
      expect(message).toContain('KAFKA_PORT');
    } finally {
      held.close();
    }
  }, 60_000);

  it('when another Kafka version wrote the data dir', async () => {
    const dataDir = await tmp('ugc-ek-version-');
    await writeFile(join(dataDir, 'kafka-version'), '5.0.0\n');
    const message = await failureOf(startEmbeddedKafka({ dataDir }));
    expectOneLine(message);
    expect(message).toContain('Kafka 5.0.0');
    expect(message).toContain('KAFKA_DATA_DIR');
    expect(existsSync(join(dataDir, 'node-1', 'data', 'meta.properties'))).toBe(false);
  }, 60_000);

  it('when the data dir holds Kafka data the embedded Kafka did not write', async () => {
    const dataDir = await tmp('ugc-ek-foreign-');
    await mkdir(join(dataDir, 'node-1', 'data'), { recursive: true });
    await writeFile(join(dataDir, 'node-1', 'data', 'meta.properties'), 'cluster.id=someone-elses\nnode.id=1\nversion=1\n');
    const message = await failureOf(startEmbeddedKafka({ dataDir }));
    expectOneLine(message);
    expect(message).toContain('kafka-version');
    expect(message).toContain(dataDir);
    expect(readFileSync(join(dataDir, 'node-1', 'data', 'meta.properties'), 'utf8')).toContain('someone-elses');
  }, 60_000);

  it('when KAFKA_JAVA names a java that does not exist', async () => {
    const saved = process.env.KAFKA_JAVA;
    process.env.KAFKA_JAVA = '/nonexistent/bin/java';
    try {
      const message = await failureOf(startEmbeddedKafka({ dataDir: await tmp('ugc-ek-java-') }));
      expectOneLine(message);
      expect(message).toContain('/nonexistent/bin/java');
      expect(message).toContain('JDK 17+');
      expect(message).toContain('KAFKA_BROKERS');
      expect(message).toContain('compose.yml');
    } finally {
      if (saved === undefined) delete process.env.KAFKA_JAVA;
      else process.env.KAFKA_JAVA = saved;
    }
  });
});

/**
 * A Maven repository on 127.0.0.1 that serves the jars of the shared cache (nothing comes from the
 * internet); `faults` maps a jar's path to what to do instead, for its next requests.
 */
async function localRepository(): Promise<{ url: string; requests: string[]; faults: Map<string, ('corrupt' | 'cut')[]>; close(): Promise<void> }> {
  const requests: string[] = [];
  const faults = new Map<string, ('corrupt' | 'cut')[]>();
  const server: Server = createHttpServer((req, res) => {
    const path = decodeURIComponent(new URL(req.url!, 'http://x').pathname).replace(/^\/+/, '');
    requests.push(path);
    let bytes: Buffer;
    try {
      bytes = readFileSync(join(sharedJarCache, path.replace(/^maven2\//, '')));
    } catch {
      res.writeHead(404).end();
      return;
    }
    const fault = faults.get(path)?.shift();
    if (fault === 'corrupt') {
      const bad = Buffer.from(bytes);
      bad.fill(0x42, 0, Math.min(64, bad.length));
      res.writeHead(200, { 'content-length': bad.length }).end(bad);
    } else if (fault === 'cut') {
      // Promises the whole jar, sends half, and drops the connection.
      res.writeHead(200, { 'content-length': bytes.length });
      res.write(bytes.subarray(0, bytes.length >> 1), () => res.destroy());
    } else {
      res.writeHead(200, { 'content-length': bytes.length }).end(bytes);
    }
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const { port } = server.address() as { port: number };
  return {
    url: `http://127.0.0.1:${port}/maven2`,
    requests,
    faults,
    close: () => new Promise((r) => { server.closeAllConnections(); server.close(() => r()); }),
  };
}

describe("the embedded Kafka's jars", () => {
  let repo: Awaited<ReturnType<typeof localRepository>>;
  // The smallest pinned jar: fewer bytes to corrupt and serve.
  const small = [...manifest.jars].sort((a, b) =>
    readFileSync(join(sharedJarCache, jarPath(a.coords))).length - readFileSync(join(sharedJarCache, jarPath(b.coords))).length)[0]!;
  const smallPath = jarPath(small.coords);
  const partFiles = (dir: string): string[] => {
    const d = dirname(join(dir, smallPath));
    return existsSync(d) ? readdirSync(d).filter((f) => f.endsWith('.part')) : [];
  };

  beforeAll(async () => {
    repo = await localRepository();
  });
  afterAll(async () => {
    await repo?.close();
  });

  it('fills a fresh cache with every pinned jar, each matching its SHA-256', async () => {
    const cacheDir = await tmp('ugc-ek-jars-');
    const fetched: string[] = [];
    const paths = await ensureKafkaJars({ cacheDir, repository: repo.url, onFetch: (c) => fetched.push(c) });
    expect(paths).toHaveLength(manifest.jars.length);
    expect(fetched.sort()).toEqual(manifest.jars.map((j) => j.coords).sort());
    for (const [i, jar] of manifest.jars.entries()) expect(sha256(readFileSync(paths[i]!)), jar.coords).toBe(jar.sha256);

    // A second start reads the cache only.
    const again: string[] = [];
    repo.requests.length = 0;
    await ensureKafkaJars({ cacheDir, repository: repo.url, onFetch: (c) => again.push(c) });
    expect(again).toEqual([]);
    expect(repo.requests).toEqual([]);
  }, 120_000);

  it('fetches a corrupted cached jar again instead of running it', async () => {
    const cacheDir = await tmp('ugc-ek-jars-');
    await ensureKafkaJars({ cacheDir, repository: repo.url, jars: [small] });
    const file = join(cacheDir, smallPath);
    const bytes = await readFile(file);
    bytes.fill(0, 0, Math.min(100, bytes.length));
    await writeFile(file, bytes);
    expect(sha256(await readFile(file))).not.toBe(small.sha256);

    const fetched: string[] = [];
    repo.requests.length = 0;
    await ensureKafkaJars({ cacheDir, repository: repo.url, jars: [small], onFetch: (c) => fetched.push(c) });
    expect(fetched).toEqual([small.coords]);
    expect(repo.requests).toEqual([`maven2/${smallPath}`]);
    expect(sha256(await readFile(file))).toBe(small.sha256);
  });

  it('refuses a jar whose download never matches its SHA-256, and leaves nothing of it in the cache', async () => {
    const cacheDir = await tmp('ugc-ek-jars-');
    repo.faults.set(`maven2/${smallPath}`, ['corrupt', 'corrupt', 'corrupt']);
    repo.requests.length = 0;
    const message = await failureOf(ensureKafkaJars({ cacheDir, repository: repo.url, jars: [small] }));
    repo.faults.delete(`maven2/${smallPath}`);
    expectOneLine(message);
    expect(message).toContain(small.coords);
    expect(message).toContain(small.sha256);
    expect(message).toMatch(/refusing/);
    expect(repo.requests.length).toBeGreaterThanOrEqual(2); // it tried again before giving up
    expect(existsSync(join(cacheDir, smallPath))).toBe(false);
    expect(partFiles(cacheDir)).toEqual([]);
  });

  it('refuses a pinned sum the repository never matches (a wrong sha256 in jars.json)', async () => {
    const cacheDir = await tmp('ugc-ek-jars-');
    const wrong = { coords: small.coords, sha256: '0'.repeat(64) };
    const message = await failureOf(ensureKafkaJars({ cacheDir, repository: repo.url, jars: [wrong] }));
    expectOneLine(message);
    expect(message).toContain(`not the pinned ${wrong.sha256}`);
    expect(existsSync(join(cacheDir, smallPath))).toBe(false);
    expect(partFiles(cacheDir)).toEqual([]);
  });

  it('tries again when the connection drops in the middle of a jar', async () => {
    const cacheDir = await tmp('ugc-ek-jars-');
    repo.faults.set(`maven2/${smallPath}`, ['cut']);
    repo.requests.length = 0;
    const [path] = await ensureKafkaJars({ cacheDir, repository: repo.url, jars: [small] });
    expect(repo.faults.get(`maven2/${smallPath}`)).toEqual([]); // the cut happened
    repo.faults.delete(`maven2/${smallPath}`);
    expect(repo.requests).toHaveLength(2);
    expect(sha256(await readFile(path!))).toBe(small.sha256);
  });

  it('gives up in one line when the connection drops in the middle of a jar every time', async () => {
    const cacheDir = await tmp('ugc-ek-jars-');
    repo.faults.set(`maven2/${smallPath}`, ['cut', 'cut']);
    const message = await failureOf(ensureKafkaJars({ cacheDir, repository: repo.url, jars: [small] }));
    expect(repo.faults.get(`maven2/${smallPath}`)).toEqual([]);
    repo.faults.delete(`maven2/${smallPath}`);
    expectOneLine(message);
    expect(message).toContain(small.coords);
    expect(message).toContain('KAFKA_BROKERS');
    expect(existsSync(join(cacheDir, smallPath))).toBe(false);
    expect(partFiles(cacheDir)).toEqual([]);
  });

  it('says, in one line naming KAFKA_BROKERS, that Maven Central is unreachable with an empty cache', async () => {
    const cacheDir = await tmp('ugc-ek-jars-');
    const closed = await freePort();
    const message = await failureOf(ensureKafkaJars({ cacheDir, repository: `http://127.0.0.1:${closed}/maven2` }));
    expectOneLine(message);
    expect(message).toContain(`127.0.0.1:${closed}`);
    expect(message).toContain('KAFKA_BROKERS');
  });

  it('reads KAFKA_JARS_DIR and KAFKA_MAVEN_REPOSITORY: startEmbeddedKafka fails in one line when the repository is unreachable', async () => {
    const saved = { dir: process.env.KAFKA_JARS_DIR, repo: process.env.KAFKA_MAVEN_REPOSITORY };
    const cacheDir = await tmp('ugc-ek-jars-');
    const closed = await freePort();
    process.env.KAFKA_JARS_DIR = cacheDir;
    process.env.KAFKA_MAVEN_REPOSITORY = `http://127.0.0.1:${closed}/maven2`;
    try {
      const message = await failureOf(startEmbeddedKafka({ dataDir: await tmp('ugc-ek-nojars-') }));
      expectOneLine(message);
      expect(message).toContain('KAFKA_BROKERS');
      expect(readdirSync(cacheDir)).toEqual([]);
    } finally {
      for (const [key, value] of [['KAFKA_JARS_DIR', saved.dir], ['KAFKA_MAVEN_REPOSITORY', saved.repo]] as const) {
        if (value === undefined) delete process.env[key];
        else process.env[key] = value;
      }
    }
  });
});
