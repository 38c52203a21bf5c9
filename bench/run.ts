// `npm run bench`: every figure side by side with its baseline, measured in the same run.
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startEmbeddedBroker } from '../localstack/kafka/broker.ts';
import { startEmbeddedClickHouse } from '../localstack/clickhouse/embedded.ts';
import { benchIngest } from './ingest.ts';
import { benchJwt } from './jwt.ts';
import { benchWriter } from './writer.ts';
import { benchReader } from './reader.ts';
import { benchColdStart } from './coldstart.ts';
import { benchEndToEnd } from './e2e.ts';
import { markdownTable, type Row } from './stats.ts';

type Bench = () => Promise<{ rows: Row[]; json: Record<string, unknown> }>;

const topic = 'bench.events';

/** Ingest handler vs raw produce, on its own embedded broker. */
const ingest: Bench = async () => {
  const broker = await startEmbeddedBroker({ brokers: 3, topics: [{ name: topic, partitions: 6 }] });
  try {
    return await benchIngest(broker, topic);
  } finally {
    await broker.stop();
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
const started = performance.now();
for (const [name, run] of [['ingest', ingest], ['jwt', benchJwt], ['writer', benchWriter], ['reader', reader], ['coldstart', benchColdStart], ['e2e', benchEndToEnd]] as const) {
  console.error(`[bench] ${name} …`);
  const { rows: measured, json } = await run();
  rows.push(...measured);
  Object.assign(results, json);
}
results.durationS = Math.round((performance.now() - started) / 1000);
console.log(markdownTable(rows));
await mkdir(new URL('./results/', import.meta.url), { recursive: true });
const file = new URL(`./results/bench-${Date.now()}.json`, import.meta.url);
await writeFile(file, JSON.stringify(results, null, 2));
console.log(`\nfigures written to ${file.pathname} (${results.durationS} s)`);
process.exit(0);
