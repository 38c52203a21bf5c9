// `npm run bench`: every figure side by side with its baseline, measured in the same run.
// `npm run bench -- ingest e2e`: only the benches named.
import { closeSync, openSync, statSync, unlinkSync, writeSync } from 'node:fs';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startEmbeddedKafka } from '../localstack/kafka/embedded.ts';
import { startEmbeddedClickHouse } from '../localstack/clickhouse/embedded.ts';
import { benchIngest } from './ingest.ts';
import { benchJwt } from './jwt.ts';
import { benchWriter } from './writer.ts';
import { benchReader } from './reader.ts';
import { benchColdStart } from './coldstart.ts';
import { benchEndToEnd } from './e2e.ts';
import { benchGzip } from './gzip.ts';
import { markdownTable, type Row } from './stats.ts';

type Bench = () => Promise<{ rows: Row[]; json: Record<string, unknown> }>;

const topic = 'bench.events';

/** Ingest handler vs raw produce, on an embedded Kafka of its own (3 brokers, as the product's topics need). */
const ingest: Bench = async () => {
  const dataDir = await mkdtemp(join(tmpdir(), 'ugc-bench-kafka-'));
  try {
    const kafka = await startEmbeddedKafka({ dataDir, brokers: 3, port: 0, topics: [{ name: topic, partitions: 6, configs: { 'min.insync.replicas': '2' } }] });
    try {
      return await benchIngest(kafka, topic);
    } finally {
      await kafka.stop();
    }
  } finally {
    await rm(dataDir, { recursive: true, force: true });
  }
};

/** Read API vs raw bound query, on its own embedded ClickHouse. */
const reader: Bench = async () => {
  const dataDir = await mkdtemp(join(tmpdir(), 'ugc-bench-reader-'));
  const clickhouse = await startEmbeddedClickHouse({ dataDir, port: 0 });
  try {
    return await benchReader(clickhouse.url);
  } finally {
    await clickhouse.stop();
    await rm(dataDir, { recursive: true, force: true });
  }
};

const rows: Row[] = [];
const results: Record<string, unknown> = { at: new Date().toISOString(), node: process.version };
const benches = [['ingest', ingest], ['jwt', benchJwt], ['writer', benchWriter], ['reader', reader], ['coldstart', benchColdStart], ['gzip', benchGzip], ['e2e', benchEndToEnd]] as const;
const wanted = process.argv.slice(2);
const unknown = wanted.filter((w) => !benches.some(([name]) => name === w));
if (unknown.length > 0) {
  console.error(`unknown bench ${unknown.join(', ')}; the benches are ${benches.map(([name]) => name).join(', ')}`);
  process.exit(2);
}
await mkdir(new URL('./results/', import.meta.url), { recursive: true });
const stamp = Date.now();
// The in-process benches' functions log a line or two per request on stdout, as in Lambda. Those go to a file
// beside the figures, not to the terminal: a terminal (or a pipe's reader) taking 20,000 lines a second
// competes with the brokers for the cores, which made the handler's latency tail the terminal's.
const logPath = new URL(`./results/bench-${stamp}.log`, import.meta.url).pathname;
const logFd = openSync(logPath, 'w');
const terminalWrite = process.stdout.write.bind(process.stdout);
process.stdout.write = ((chunk: string | Uint8Array, ...rest: unknown[]) => {
  const encoding = typeof rest[0] === 'string' ? (rest[0] as BufferEncoding) : undefined;
  writeSync(logFd, typeof chunk === 'string' ? Buffer.from(chunk, encoding) : chunk);
  const callback = rest.find((arg) => typeof arg === 'function') as ((error: null) => void) | undefined;
  if (callback) process.nextTick(callback, null);
  return true;
}) as typeof process.stdout.write;
console.error(`[bench] the functions' log lines go to ${logPath}`);
const started = performance.now();
// A module that throws costs only its own rows: the others' figures are still printed and written.
const failed: { name: string; error: string }[] = [];
for (const [name, run] of benches.filter(([name]) => wanted.length === 0 || wanted.includes(name))) {
  console.error(`[bench] ${name} …`);
  try {
    const { rows: measured, json } = await run();
    rows.push(...measured);
    Object.assign(results, json);
  } catch (error) {
    const message = error instanceof Error ? (error.stack ?? error.message) : String(error);
    failed.push({ name, error: message });
    console.error(`[bench] ${name} failed: ${message}`);
  }
}
if (failed.length > 0) results.failed = failed;
results.durationS = Math.round((performance.now() - started) / 1000);
process.stdout.write = terminalWrite as typeof process.stdout.write; // what comes after the benches goes to the terminal
closeSync(logFd);
if (statSync(logPath).size === 0) unlinkSync(logPath);
terminalWrite(`${markdownTable(rows)}\n`);
const file = new URL(`./results/bench-${stamp}.json`, import.meta.url);
await writeFile(file, JSON.stringify(results, null, 2));
terminalWrite(`\nfigures written to ${file.pathname} (${results.durationS} s)\n`);
for (const { name, error } of failed) terminalWrite(`\nbench ${name} FAILED, so its rows are missing above: ${error.split('\n')[0]}\n`);
process.exit(failed.length > 0 ? 1 : 0);
