/**
 * npm start's expected failures that are said before any broker starts: a port of serverless
 * offline, of the embedded ClickHouse or of the embedded Kafka taken by something else, no Java,
 * and a ClickHouse data dir in use by another running stack. Each is one line on stderr naming
 * the port, directory or Java and what to change, exit code 1, and nothing left running. (The
 * Kafka data dir case is in embedded-kafka.test.ts: it needs a cluster of its own.)
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { createServer, type Server } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { startEmbeddedClickHouse } from '../../localstack/clickhouse/embedded.ts';
import { freePort, freePortRange } from '../../localstack/ports.ts';
import { mentioning, npmStartUntilExit } from '../setup/processes.ts';

const dirs: string[] = [];
afterAll(async () => {
  await Promise.all(dirs.map((d) => rm(d, { recursive: true, force: true })));
});

async function freshEnv(): Promise<Record<string, string>> {
  const kafkaDataDir = await mkdtemp(join(tmpdir(), 'ugc-start-fail-kafka-'));
  const clickhouseDataDir = await mkdtemp(join(tmpdir(), 'ugc-start-fail-ch-'));
  dirs.push(kafkaDataDir, clickhouseDataDir);
  return {
    HTTP_PORT: String(await freePort()), LAMBDA_PORT: String(await freePort()), DEMO_PORT: String(await freePort()),
    CLICKHOUSE_PORT: String(await freePort()), KAFKA_PORT: String((await freePortRange(6))[0]),
    KAFKA_DATA_DIR: kafkaDataDir, CLICKHOUSE_DATA_DIR: clickhouseDataDir,
  };
}

/** Something else listening on the port (a dev server, say), on all interfaces. */
function holdPort(port: number): Promise<Server> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(port, () => resolve(server));
  });
}

function theOneLine(stderr: string): string {
  const lines = stderr.split('\n').filter((l) => l.trim() !== '');
  expect(lines, stderr).toHaveLength(1);
  expect(stderr).not.toMatch(/\bat .+:\d+:\d+/);
  expect(lines[0]).toMatch(/^npm start: /);
  return lines[0]!;
}

describe("npm start's expected failures, before any broker starts", () => {
  // KAFKA_PORT is the first of 6 ports freshEnv found free together (the cluster needs the whole
  // run); it is checked once Java and the jars are found, while the ClickHouse server starts beside it.
  const portSettings = [['HTTP_PORT', 'HTTP API'], ['LAMBDA_PORT', 'Lambda invoke API'], ['CLICKHOUSE_PORT', 'ClickHouse'], ['KAFKA_PORT', 'embedded Kafka']] as const;
  for (const [variable, what] of portSettings) {
    it(`${variable} taken by another program: one line naming the port and ${variable}, exit code 1, nothing left running`, async () => {
      const env = await freshEnv();
      const held = await holdPort(Number(env[variable]));
      try {
        const started = performance.now();
        const { code, stderr } = await npmStartUntilExit(env);
        expect(code).toBe(1);
        const line = theOneLine(stderr);
        expect(line).toContain(`port ${env[variable]}`);
        expect(line).toContain(variable);
        expect(line).toContain(what);
        console.log(JSON.stringify({ variable, ms: Math.round(performance.now() - started), line }));
        expect(mentioning([env.KAFKA_DATA_DIR!, env.CLICKHOUSE_DATA_DIR!])).toEqual([]);
      } finally {
        await new Promise((r) => held.close(r));
      }
    }, 180_000);
  }

  it('no Java: one line naming JDK 17+, KAFKA_BROKERS and the compose file, exit code 1, nothing left running', async () => {
    const env = await freshEnv();
    const { code, stderr } = await npmStartUntilExit({ ...env, KAFKA_JAVA: '/nonexistent' });
    expect(code).toBe(1);
    const line = theOneLine(stderr);
    expect(line).toContain('JDK 17+');
    expect(line).toContain('KAFKA_BROKERS');
    expect(line).toContain('compose.yml');
    expect(mentioning([env.KAFKA_DATA_DIR!, env.CLICKHOUSE_DATA_DIR!])).toEqual([]);
  }, 180_000);

  it('a ClickHouse data dir another running stack uses: one line naming the dir, its owner and CLICKHOUSE_DATA_DIR, and the running server keeps serving', async () => {
    const env = await freshEnv();
    const running = await startEmbeddedClickHouse({ dataDir: env.CLICKHOUSE_DATA_DIR!, port: 0 });
    try {
      const { code, stderr } = await npmStartUntilExit(env);
      expect(code).toBe(1);
      const line = theOneLine(stderr);
      expect(line).toContain(env.CLICKHOUSE_DATA_DIR!);
      expect(line).toContain('CLICKHOUSE_DATA_DIR');
      expect(line).toContain('embedded ClickHouse server');
      expect(mentioning([env.KAFKA_DATA_DIR!])).toEqual([]);
      const res = await fetch(`${running.url}/?query=SELECT%201`);
      expect((await res.text()).trim()).toBe('1');
    } finally {
      await running.stop();
    }
  }, 120_000);
});
