import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { GCProfiler, setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import type { Context, MSKEvent } from 'aws-lambda';
import { startEmbeddedClickHouse } from '../localstack/clickhouse/embedded.ts';
import { buildKafkaEvent, type AwsKafkaRecord } from '../localstack/event-source/aws-kafka-event.ts';
import { migrate } from '../clickhouse/migrate.ts';
import { createClickHouse } from '../shared/clickhouse.ts';
import { clientEvent } from '../shared/events.ts';
import { enrich, toKafkaMessage } from '../functions/ingest/messages.ts';
import { eventColumns, jsonCompactChunks, rowObject } from '../functions/writer/rows.ts';
import { batchRecords, decodeBatch, decodeRows, fromBase64 } from '../functions/writer/decode.ts';
import { fmt, inTurn, median, pairedRatio, type Row } from './stats.ts';

const rounds = 11;
const recordsPerEvent = 10_000;

/** A 10,000-record AWS-shaped Kafka event at offsets starting from `base` (so each round has its own token). */
function awsEvent(base: number): MSKEvent {
  const records: AwsKafkaRecord[] = [];
  for (let i = 0; i < recordsPerEvent; i++) {
    const event = clientEvent.parse({ type: 'film_progress', film_id: `film-${i % 50}`, position_s: i, duration_s: 6000 });
    const message = toKafkaMessage(enrich(event, { userId: `viewer-${i % 97}`, requestId: 'bench', receivedAt: new Date() }));
    const partition = i % 6;
    records.push({ topic: 'bench.events', partition, offset: base + Math.floor(i / 6), timestamp: Date.now(), timestampType: 'CREATE_TIME',
      key: Buffer.from(String(message.key)).toString('base64'), value: Buffer.from(String(message.value)).toString('base64'),
      headers: [{ 'event-type': [...Buffer.from('film_progress')] }, { 'schema-version': [...Buffer.from('1')] }] });
  }
  return buildKafkaEvent({ kind: 'msk', eventSourceArn: 'arn:aws:kafka:us-east-1:000000000000:cluster/bench/1', bootstrapServers: '127.0.0.1:9092' }, records) as MSKEvent;
}

/**
 * Writer handler on a 10,000-record event vs raw `@clickhouse/client` inserts of the same rows
 * (already mapped, each insert with a token of its own) into the same table: as objects in JSONEachRow (the client's everyday
 * insert) and as arrays in JSONCompactEachRow (the writer's own format, so the writer's overhead
 * shows alone). Rounds rotate which side goes first; each ratio is the median of per-round ratios.
 * Own ClickHouse server.
 */
export async function benchWriter(): Promise<{ rows: Row[]; json: Record<string, unknown> }> {
  const dataDir = await mkdtemp(join(tmpdir(), 'ugc-bench-writer-'));
  const clickhouse = await startEmbeddedClickHouse({ dataDir, port: 0 });
  const settings = { CLICKHOUSE_URL: clickhouse.url, CLICKHOUSE_USER: 'default', CLICKHOUSE_PASSWORD: '', CLICKHOUSE_DATABASE: 'bench_writer', CLICKHOUSE_REQUEST_TIMEOUT_MS: 60_000 };
  const admin = createClickHouse(settings, 'default');
  const raw = createClickHouse(settings);
  try {
    await migrate(admin, raw, settings.CLICKHOUSE_DATABASE);
    // Every side writes the same event ids: without this, merges collapse them and the row check below cannot tell.
    await raw.command({ query: 'SYSTEM STOP MERGES events' });
    // The same insert into a table that stores nothing: what the server spends receiving and parsing the
    // body, the part a streamed body can overlap with decoding. The rest of an insert (the part, its
    // projection, the materialized views) starts after the body's last byte.
    await raw.command({ query: 'CREATE TABLE events_parse_only AS events ENGINE = Null' });
    Object.assign(process.env, {
      CLICKHOUSE_URL: clickhouse.url, CLICKHOUSE_DATABASE: settings.CLICKHOUSE_DATABASE, CLICKHOUSE_REQUEST_TIMEOUT_MS: '60000',
      KAFKA_BROKERS: process.env.KAFKA_BROKERS || '127.0.0.1:9', POWERTOOLS_LOG_LEVEL: 'ERROR', POWERTOOLS_METRICS_DISABLED: 'true',
    });
    const { handler, insertSettings } = (await import('../functions/writer/handler.ts')) as unknown as {
      handler: (e: MSKEvent, c: Context) => Promise<unknown>; insertSettings: (token: string) => Record<string, string | number> };
    const context = { awsRequestId: 'bench', getRemainingTimeInMillis: () => 60_000 } as unknown as Context;
    // Each round's event and the baselines' rows are built just before the round (untimed): a heap
    // holding every round's 10,000 records would slow GC in a way a Lambda, with one batch, never sees.
    const roundInput = (r: number) => {
      const event = awsEvent(r * recordsPerEvent);
      // The baselines insert the very rows the writer would build, without decoding them.
      const { rows } = decodeBatch(event);
      return { round: r, event, rows, objects: rows.map(rowObject) };
    };
    // The baselines insert the writer's very rows, so block deduplication could drop them unwritten. insert_deduplicate: 0
    // cannot stop it on every server (ClickHouse 26's deduplicate_insert overrides it); a token of their own per
    // insert does, and gives the server the same deduplication bookkeeping as the writer's insert.
    const rawSettings = (side: string, round: number) => ({ async_insert: 0 as const, insert_deduplication_token: `bench-${side}-${round}` });
    type Input = ReturnType<typeof roundInput>;
    const sides: Record<'writer' | 'objects' | 'arrays' | 'parseOnly', (input: Input) => Promise<unknown>> = {
      writer: (input) => handler(input.event, context),
      objects: (input) => raw.insert({ table: 'events', values: input.objects, format: 'JSONEachRow', clickhouse_settings: rawSettings('objects', input.round) }),
      // The writer's own insert (format, columns, settings: deduplication in the materialized views too), so only what the writer adds differs.
      arrays: (input) => raw.insert({ table: 'events', values: input.rows, format: 'JSONCompactEachRow', columns: [...eventColumns],
        clickhouse_settings: insertSettings(`bench-arrays-${input.round}`) }),
      parseOnly: (input) => raw.insert({ table: 'events_parse_only', values: input.rows, format: 'JSONCompactEachRow', columns: [...eventColumns],
        clickhouse_settings: insertSettings(`bench-parse-${input.round}`) }),
    };
    const names = Object.keys(sides) as (keyof typeof sides)[];
    const warmUp = roundInput(rounds);
    for (const name of names) await sides[name](warmUp);
    const rates: Record<keyof typeof sides, number[]> = { writer: [], objects: [], arrays: [], parseOnly: [] };
    // Where the writer's time goes: its decoding alone (base64, JSON, validation, rows, token), in each round too.
    const decodeMs: number[] = [];
    // The least any writer must do before its insert: parse each base64 value as decode.ts does, with no
    // validation, no rows and no token.
    const floorMs: number[] = [];
    // The writer's whole body, built with nothing to send it to: its decoding and its rows' JSONCompactEachRow text.
    const bodyMs: number[] = [];
    const buildBody = (event: MSKEvent) => {
      for (const chunk of jsonCompactChunks(decodeRows(batchRecords(event), []))) void chunk;
    };
    const parseValues = (event: MSKEvent) => {
      for (const { value } of batchRecords(event)) JSON.parse(fromBase64(value));
    };
    for (let r = 0; r < rounds; r++) {
      const input = roundInput(r);
      // In turn, so the collection of the round's freshly built input does not always land in the same one.
      for (const [list, decode] of inTurn([[decodeMs, decodeBatch], [floorMs, parseValues], [bodyMs, buildBody]] as const, r)) {
        const start = performance.now();
        decode(input.event);
        list.push(performance.now() - start);
      }
      for (const name of inTurn(names, r)) {
        const start = performance.now();
        await sides[name](input);
        rates[name].push(recordsPerEvent / ((performance.now() - start) / 1000));
      }
    }
    const heap = await peakHeap(() => awsEvent((rounds + 1) * recordsPerEvent), (event) => handler(event, context));
    const [count] = await (await raw.query({ query: 'SELECT count() AS n FROM events', format: 'JSONEachRow' })).json<{ n: string }>();
    const expected = (names.length - 1) * (rounds + 1) * recordsPerEvent + recordsPerEvent; // parseOnly stores nothing
    if (Number(count?.n) !== expected) throw new Error(`writer bench: ${count?.n} rows, expected ${expected}`);
    const writer = median(rates.writer);
    const vsObjects = pairedRatio(rates.writer, rates.objects);
    const vsArrays = pairedRatio(rates.writer, rates.arrays);
    const ms = (list: number[]) => list.map((rate) => (recordsPerEvent / rate) * 1000);
    // What no streaming overlaps: the insert's work once its body has ended (writing the part, its projection, the views).
    const afterBody = median(ms(rates.arrays)) - median(ms(rates.parseOnly));
    // The batch's decoded size: its JSON values, and its rows as the insert sends them.
    const sizing = roundInput(0);
    const jsonMb = Object.values(sizing.event.records).flat().reduce((n, record) => n + Buffer.from(record.value, 'base64').byteLength, 0) / 2 ** 20;
    const rowsMb = sizing.rows.reduce((n, row) => n + Buffer.byteLength(JSON.stringify(row)) + 1, 0) / 2 ** 20;
    return {
      rows: [
        { benchmark: 'writer, 10,000-record event (rows/s)', measured: fmt(writer), baseline: `raw @clickhouse/client insert, objects in JSONEachRow ${fmt(median(rates.objects))}`,
          ratio: fmt(vsObjects, 2), target: '', verdict: '' },
        { benchmark: 'writer, 10,000-record event (rows/s)', measured: fmt(writer), baseline: `raw insert as the writer makes it (JSONCompactEachRow arrays, its settings) ${fmt(median(rates.arrays))}`,
          ratio: fmt(vsArrays, 2), target: '≥ 0.9', verdict: vsArrays >= 0.9 ? 'ok' : 'MISSED' },
        { benchmark: 'writer, 10,000-record event: where the time goes (ms, medians)', measured: `${fmt(median(ms(rates.writer)), 1)} in all`,
          baseline: `raw insert ${fmt(median(ms(rates.arrays)), 1)} + decoding ${fmt(median(decodeMs), 1)} = ${fmt(median(ms(rates.arrays)) + median(decodeMs), 1)}`,
          ratio: fmt(median(ms(rates.arrays)) / (median(ms(rates.arrays)) + median(decodeMs)), 2), target: '(raw / (raw + decoding))', verdict: '' },
        { benchmark: 'writer, 10,000-record event: the ceiling without overlap (ms, medians)',
          measured: `decoding ${fmt(median(decodeMs), 1)}: base64 + JSON.parse ${fmt(median(floorMs), 1)}, validation, rows and token ${fmt(median(decodeMs.map((d, i) => d - floorMs[i]!)), 1)}`,
          baseline: `raw insert ${fmt(median(ms(rates.arrays)), 1)} + base64 + JSON.parse ${fmt(median(floorMs), 1)} = ${fmt(median(ms(rates.arrays)) + median(floorMs), 1)}`,
          ratio: fmt(median(ms(rates.arrays)) / (median(ms(rates.arrays)) + median(floorMs)), 2), target: '(raw / (raw + base64 + JSON.parse), of medians)', verdict: '' },
        { benchmark: 'writer, 10,000-record event: the ceiling with a streamed body (ms, medians)',
          measured: `the writer's body built alone (decoding + JSONCompactEachRow text) ${fmt(median(bodyMs), 1)}; the server: parsing ${fmt(median(ms(rates.parseOnly)), 1)} (the insert into a Null table), then ${fmt(afterBody, 1)} after the last byte`,
          baseline: `body ${fmt(median(bodyMs), 1)} + after the last byte ${fmt(afterBody, 1)} = ${fmt(median(bodyMs) + afterBody, 1)}, the least a streamed writer can take`,
          ratio: fmt(median(ms(rates.arrays)) / (median(bodyMs) + afterBody), 2), target: '(raw / (body + after the last byte))', verdict: '' },
        { benchmark: 'writer, 10,000-record event: peak heap (MB)', measured: fmt(heap.peakMb, 1),
          baseline: `the batch: ${fmt(heap.eventMb, 1)} as the AWS event, ${fmt(jsonMb, 1)} of JSON values decoded, ${fmt(rowsMb, 1)} as rows`, ratio: '', target: '', verdict: '' },
      ],
      json: { writer: { rows_per_s: writer, raw_objects_rows_per_s: median(rates.objects), raw_arrays_rows_per_s: median(rates.arrays),
        ratio_vs_objects: vsObjects, ratio_vs_arrays: vsArrays, rounds, records_per_event: recordsPerEvent,
        writer_ms: ms(rates.writer), raw_objects_ms: ms(rates.objects), raw_arrays_ms: ms(rates.arrays), parse_only_ms: ms(rates.parseOnly), decode_ms: decodeMs, parse_floor_ms: floorMs, body_ms: bodyMs,
        peak_heap_mb: heap.peakMb, event_mb: heap.eventMb, json_values_mb: jsonMb, rows_json_mb: rowsMb } },
    };
  } finally {
    await Promise.allSettled([admin.close(), raw.close()]);
    await clickhouse.stop();
    await rm(dataDir, { recursive: true, force: true });
  }
}

/**
 * The heap the writer adds while it handles one batch: the most used at any garbage collection
 * (the heap is at a local peak just before one) or at any turn of the event loop, above what was
 * used once the batch's event was built; and the event's own size.
 */
async function peakHeap(build: () => MSKEvent, handle: (event: MSKEvent) => Promise<unknown>): Promise<{ peakMb: number; eventMb: number }> {
  setFlagsFromString('--expose-gc');
  const gc = runInNewContext('gc') as () => void;
  gc();
  const empty = process.memoryUsage().heapUsed;
  const event = build();
  gc();
  const start = process.memoryUsage().heapUsed;
  let peak = start;
  const sampler = setInterval(() => { peak = Math.max(peak, process.memoryUsage().heapUsed); }, 1);
  const profiler = new GCProfiler();
  profiler.start();
  try {
    await handle(event);
  } finally {
    clearInterval(sampler);
  }
  for (const { beforeGC } of profiler.stop().statistics) peak = Math.max(peak, beforeGC.heapStatistics.usedHeapSize);
  return { peakMb: (peak - start) / 2 ** 20, eventMb: (start - empty) / 2 ** 20 };
}
