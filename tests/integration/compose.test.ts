import { execFile } from 'node:child_process';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import { ensureKafkaJars } from '../../localstack/kafka/jars.ts';
import { findJava } from '../../localstack/kafka/java.ts';
import { kafkaVersion } from '../../localstack/kafka/embedded.ts';
import { localClusterId, localOnlySettings, replicationSettings } from '../../localstack/kafka/settings.ts';

// No Docker engine runs here, so the compose file's Kafka settings are run by Kafka itself: the
// embedded Kafka's own jars format each broker's storage with them, as the apache/kafka image does.
const execFileAsync = promisify(execFile);
type Service = { image: string; environment?: Record<string, string | number> };
const compose = parse(await readFile(new URL('../../localstack/compose.yml', import.meta.url), 'utf8'), { merge: true }) as { services: Record<string, Service> };
const brokers = ['kafka-1', 'kafka-2', 'kafka-3'].map((name) => ({ name, env: compose.services[name]!.environment! }));

// The apache/kafka image's own rule: KAFKA_FOO_BAR → foo.bar, __ → _, ___ → -; these are not broker settings.
const notBrokerSettings = new Set(['KAFKA_HEAP_OPTS', 'KAFKA_OPTS', 'KAFKA_LOG4J_OPTS', 'KAFKA_JMX_OPTS', 'KAFKA_VERSION']);
function imageProperties(env: Record<string, string | number>): Record<string, string> {
  const props: Record<string, string> = {};
  for (const [name, value] of Object.entries(env)) {
    if (!name.startsWith('KAFKA_') || notBrokerSettings.has(name)) continue;
    const key = name.slice('KAFKA_'.length).toLowerCase().replaceAll('___', '-').replaceAll('__', '\u0000').replaceAll('_', '.').replaceAll('\u0000', '_');
    props[key] = String(value);
  }
  return props;
}

let java: string;
let classpath: string;
let workDir: string;
beforeAll(async () => {
  java = (await findJava()).command;
  classpath = (await ensureKafkaJars()).join(':');
  workDir = await mkdtemp(join(tmpdir(), 'ugc-compose-kafka-'));
});
afterAll(async () => {
  await rm(workDir, { recursive: true, force: true });
});

/** kafka-storage format, as the image runs it before the broker's first start. */
async function format(props: Record<string, string>, clusterId: string, dir: string): Promise<{ ok: boolean; output: string }> {
  await mkdir(dir, { recursive: true });
  const file = join(dir, 'server.properties');
  await writeFile(file, Object.entries({ ...props, 'log.dirs': join(dir, 'data') }).map(([k, v]) => `${k}=${v}`).join('\n'));
  try {
    const { stdout, stderr } = await execFileAsync(java, ['-Xmx256m', '-cp', classpath, 'kafka.tools.StorageTool', 'format', '-t', clusterId, '-c', file], { timeout: 60_000 });
    return { ok: true, output: stdout + stderr };
  } catch (error) {
    const e = error as { stdout?: string; stderr?: string; message: string };
    return { ok: false, output: `${e.stdout ?? ''}${e.stderr ?? ''}` || e.message };
  }
}

describe('localstack/compose.yml on the real Kafka', () => {
  it("each broker's settings and the cluster id are accepted by Kafka's own storage format", async () => {
    const results = await Promise.all(brokers.map(({ name, env }) => format(imageProperties(env), String(env.CLUSTER_ID), join(workDir, name))));
    for (const [i, { name, env }] of brokers.entries()) {
      const dir = join(workDir, name);
      const result = results[i]!;
      expect(result.ok, `${name}: ${result.output}`).toBe(true);
      expect(result.output).toMatch(/Formatting metadata directory/);
      const meta = await readFile(join(dir, 'data', 'meta.properties'), 'utf8');
      expect(meta).toContain(`cluster.id=${localClusterId}`);
      expect(meta).toContain(`node.id=${env.KAFKA_NODE_ID}`);
    }
  }, 120_000);

  it('Kafka refuses a broker whose settings disagree with the quorum (so the check above can fail)', async () => {
    // A fourth node id that controller.quorum.voters does not list: a controller must be a voter.
    const result = await format(imageProperties({ ...brokers[0]!.env, KAFKA_NODE_ID: 4 }), localClusterId, join(workDir, 'not-a-voter'));
    expect(result.ok).toBe(false);
    expect(result.output).toMatch(/voter|quorum/i);
  }, 60_000);

  it('runs the embedded cluster\'s broker settings and cluster id', () => {
    for (const { name, env } of brokers) {
      expect(env.CLUSTER_ID, name).toBe(localClusterId);
      const props = imageProperties(env);
      for (const [key, value] of Object.entries({ ...replicationSettings, ...localOnlySettings })) {
        expect(props[key], `${name}: ${key}`).toBe(value);
      }
    }
  });

  it('pins the images to the embedded engines\' versions', async () => {
    const kafkaTag = compose.services['kafka-1']!.image.split(':')[1];
    expect(kafkaTag).toBe(await kafkaVersion());
    const chdb = JSON.parse(await readFile(new URL('../../node_modules/@chdb/lib-linux-x64-gnu/package.json', import.meta.url), 'utf8')) as { version: string };
    const [major, minor] = chdb.version.split('.');
    for (const service of ['clickhouse', 'clickhouse-s1r1', 'clickhouse-keeper']) {
      expect(compose.services[service]!.image.split(':')[1], service).toBe(`${major}.${minor}`);
    }
  });
});
