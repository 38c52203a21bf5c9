// `npm run bench`: every figure side by side with its baseline, measured in the same run.
import { mkdir, writeFile } from 'node:fs/promises';
import { startEmbeddedBroker } from '../localstack/kafka/broker.ts';
import { benchIngest } from './ingest.ts';
import { benchJwt } from './jwt.ts';
import { benchWriter } from './writer.ts';
import { benchColdStart } from './coldstart.ts';
import { markdownTable, type Row } from './stats.ts';

const topic = 'bench.events';
const broker = await startEmbeddedBroker({ brokers: 3, topics: [{ name: topic, partitions: 6 }] });
const rows: Row[] = [];
const results: Record<string, unknown> = { at: new Date().toISOString(), node: process.version };
try {
  for (const run of [() => benchIngest(broker, topic), benchJwt, benchWriter, benchColdStart]) {
    const { rows: measured, json } = await run();
    rows.push(...measured);
    Object.assign(results, json);
  }
} finally {
  await broker.stop();
}
console.log(markdownTable(rows));
await mkdir(new URL('./results/', import.meta.url), { recursive: true });
const file = new URL(`./results/bench-${Date.now()}.json`, import.meta.url);
await writeFile(file, JSON.stringify(results, null, 2));
console.log(`\nfigures written to ${file.pathname}`);
process.exit(0);
