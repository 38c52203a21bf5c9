import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { fileURLToPath } from 'node:url';
import type { MSKEvent } from 'aws-lambda';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { KafkaEventSource } from '../../localstack/event-source/kafka-event-source.ts';
import type { RedriveReport } from '../../scripts/redrive.ts';
import { eventually } from '../setup/context.ts';
import { enrich, toKafkaMessage } from '../../functions/ingest/messages.ts';
import { clientEvent, eventTypes } from '../../shared/events.ts';
import { eventMessage, readUpTo, report, startPipeline, testKafka, type Pipeline, type WriterHandler } from '../reliability/harness.ts';

// Dead letters replayed by `npm run redrive` (the CLI itself, in a child process, as ops run it),
// on the shared embedded Kafka and a ClickHouse of this file's own. The records are dead-lettered
// for a transient reason, the way it happens in production: ClickHouse is down, the event source
// mapping gives the batch up after its retries and moves it, valid events included, to the
// dead-letter topic. Once ClickHouse is back those events pass the writer's validation again;
// poison records in the same topic do not, and stay.
const repoRoot = fileURLToPath(new URL('../..', import.meta.url));
const run = promisify(execFile);
let pipeline: Pipeline;
const sources: KafkaEventSource[] = [];
const groupId = 'redrive-test-writer';

beforeAll(async () => {
  pipeline = await startPipeline({ partitions: 3 });
}, 90_000);

afterAll(async () => {
  await Promise.allSettled(sources.map((s) => s.stop()));
  await pipeline?.stop();
});

/** The event source mapping as deployed with an on-failure topic: few retries, then the dead-letter topic. */
async function startWriterSource(): Promise<KafkaEventSource> {
  const source = new KafkaEventSource({
    brokers: pipeline.brokers, topic: pipeline.topic, consumerGroupId: groupId, kind: 'msk',
    eventSourceArn: 'arn:aws:kafka:us-east-1:000000000000:cluster/redrive/1', batchSize: 100, maximumBatchingWindowSeconds: 0.2,
    maximumRetryAttempts: 1, retryBackoff: { initialMs: 100, maxMs: 200 }, onFailure: { topic: pipeline.dlqTopic },
    invoke: (event) => pipeline.writer(event as MSKEvent, pipeline.writerContext()), logger: () => {},
  });
  sources.push(source);
  await source.start();
  return source;
}

/** `npm run redrive -- …args` on this file's topics (or `eventsTopic`); its JSON report. */
async function redriveCli(...args: string[]): Promise<RedriveReport> {
  return redriveCliTo(pipeline.topic, ...args);
}

async function redriveCliTo(eventsTopic: string, ...args: string[]): Promise<RedriveReport> {
  const { stdout } = await run(process.execPath, ['--import', 'tsx', 'scripts/redrive.ts', ...args, '--json'], {
    cwd: repoRoot,
    env: { ...process.env, KAFKA_BROKERS: pipeline.bootstrapServers, KAFKA_TOPIC: eventsTopic, KAFKA_DLQ_TOPIC: pipeline.dlqTopic, POWERTOOLS_LOG_LEVEL: 'SILENT' },
    timeout: 60_000,
  });
  return JSON.parse(stdout.trim().split('\n').at(-1)!) as RedriveReport;
}

async function endOffsets(topic: string): Promise<number> {
  const admin = testKafka(pipeline.brokers, 'redrive-test-offsets').admin();
  await admin.connect();
  try {
    return (await admin.fetchTopicOffsets(topic)).reduce((sum, p) => sum + Number(p.high), 0);
  } finally {
    await admin.disconnect();
  }
}

const byEventId = (ids: string[]) => ({ where: 'toString(event_id) IN {ids:Array(String)}', params: { ids } });

describe('npm run redrive', () => {
  it('replays dead letters that pass now, once each even when run twice, and leaves the poison with its reason', async () => {
    const events = Array.from({ length: 20 }, (_, i) => eventMessage(`redrive-viewer-${i % 4}`, i));
    const ids = events.map((e) => e.eventId);
    const { where, params } = byEventId(ids);

    // 1. ClickHouse down: the mapping retries, then moves the whole batch to the dead-letter topic.
    await pipeline.stopClickHouse();
    await pipeline.producer.send({ topic: pipeline.topic, acks: -1, messages: [
      ...events.map((e) => e.message),
      { key: 'poison', value: '{"type":"click",' },
    ] });
    const failing = await startWriterSource();
    const givenUp = await readUpTo(pipeline.brokers, pipeline.dlqTopic, 21, 60_000);
    await failing.stop();
    expect(givenUp).toHaveLength(21);
    // The events were given up by the mapping (the poison record may have been dead-lettered by the
    // writer itself, when a batch held it alone and no insert was needed).
    const givenUpEvents = givenUp.filter((m) => ids.some((id) => String(m.value).includes(id)));
    expect(givenUpEvents).toHaveLength(20);
    expect(givenUpEvents.every((m) => String(m.headers?.['dlq-source']) === 'event-source-mapping')).toBe(true);

    // 2. ClickHouse back; the writer runs on, and dead-letters a poison record itself.
    await pipeline.startClickHouse();
    await startWriterSource();
    await pipeline.producer.send({ topic: pipeline.topic, acks: -1, messages: [{ key: 'poison', value: JSON.stringify({ type: 'teleport' }) }] });
    await eventually(async () => ((await endOffsets(pipeline.dlqTopic)) >= 22 ? true : undefined), 30_000, 'the writer to dead-letter the poison record');
    expect(await pipeline.finalCount(where, params)).toBe(0);

    // 3. Dry run: counts by reason, produces nothing.
    const eventsEnd = await endOffsets(pipeline.topic);
    const dry = await redriveCli('--from-offset', '0');
    expect(dry.read).toBe(22);
    expect(dry.replayed).toBe(0);
    expect(dry.replayable.reduce((n, c) => n + c.records, 0)).toBe(20);
    expect(dry.replayable.every((c) => /ClickHouse|ECONNREFUSED|connect|fetch/i.test(c.reason))).toBe(true);
    expect(dry.stillFailingByReason.map((c) => c.reason).sort()).toEqual([`invalid event: type must be one of ${eventTypes.join(', ')}`, 'value is not JSON']);
    expect(await endOffsets(pipeline.topic)).toBe(eventsEnd);

    // 4. --apply: the 20 go back to the events topic and the running writer stores them, once.
    const applied = await redriveCli('--from-offset', '0', '--apply');
    expect(applied.replayed).toBe(20);
    expect(applied.stillFailing.map((f) => f.now).sort()).toEqual(dry.stillFailing.map((f) => f.now).sort());
    await eventually(async () => ((await pipeline.finalCount(where, params)) === 20 ? true : undefined), 30_000, 'the replayed events in ClickHouse');
    expect([...(await pipeline.rowCounts(where, params)).values()].every((n) => n === 1)).toBe(true);

    // Same key (so partition), same event_id, as the originals.
    const copies = (await readUpTo(pipeline.brokers, pipeline.topic, 42, 20_000)).filter((m) => m.key?.toString() !== 'poison');
    const original = new Map(events.map((e) => [e.eventId, String(e.message.key)]));
    const replays = copies.filter((m) => m.headers?.['redriven-from'] !== undefined);
    expect(replays).toHaveLength(20);
    for (const m of replays) {
      const id = (JSON.parse(String(m.value)) as { event_id: string }).event_id;
      expect(m.key?.toString()).toBe(original.get(id));
      expect(m.partition).toBe(copies.find((c) => c.headers?.['redriven-from'] === undefined && String(c.value) === String(m.value))?.partition);
    }

    // 5. Again: produced again (raw rows show the second insert, merges being stopped), stored once by event_id.
    const again = await redriveCli('--from-offset', '0', '--apply');
    expect(again.replayed).toBe(20);
    await eventually(async () => ([...(await pipeline.rowCounts(where, params)).values()].every((n) => n === 2) ? true : undefined), 30_000, 'the second replay written');
    expect(await pipeline.finalCount(where, params)).toBe(20);

    // 6. From a time after everything: nothing to read.
    const later = await redriveCli('--from-time', new Date(Date.now() + 60_000).toISOString());
    expect(later.read).toBe(0);
    report('redrive', { deadLetters: dry.read, replayable: dry.replayable, stillFailing: dry.stillFailingByReason, rowsFinalAfterTwoRuns: 20 });
  }, 180_000);

  it('replays what a writer deployed before the registry knew an event type dead-lettered, once the current writer runs', async () => {
    // The deploy order that makes it happen: the ingest already accepts `search`, the writer still
    // runs a registry without it. The same writer code, with its compiled validators as they were.
    vi.resetModules();
    vi.doMock('../../shared/generated/accepted-event-validators.ts', async (importOriginal) => {
      const original = await importOriginal<{ validatorsByType: Record<string, unknown>; validatorFor: (value: unknown) => unknown }>();
      const unknownSearch = Object.assign(() => false, { errors: [{ instancePath: '/type', keyword: 'const', message: 'is unknown to this writer', params: {} }] });
      const validatorFor = (value: unknown) => ((value as { type?: unknown } | null)?.type === 'search' ? unknownSearch : original.validatorFor(value));
      return { ...original, search: unknownSearch, validatorsByType: { ...original.validatorsByType, search: unknownSearch }, validatorFor };
    });
    const { handler: oldWriter } = (await import('../../functions/writer/handler.ts')) as unknown as { handler: WriterHandler };
    vi.doUnmock('../../shared/generated/accepted-event-validators.ts');
    vi.resetModules();
    const { handler: currentWriter } = (await import('../../functions/writer/handler.ts')) as unknown as { handler: WriterHandler };

    const topic = await pipeline.newTopic(3);
    const from = await endOffsets(pipeline.dlqTopic);
    const searches = Array.from({ length: 5 }, (_, i) => enrich(clientEvent.parse({ type: 'search', query: `noir ${i}`, results_count: i }), { userId: `searcher-${i}`, requestId: `req-${i}`, receivedAt: new Date() }));
    const ids = searches.map((e) => e.event_id);
    const { where, params } = byEventId(ids);
    const old = await pipeline.drive(topic, (e) => oldWriter(e as MSKEvent, pipeline.writerContext()), { groupId: `${topic}-writer` });
    await pipeline.producer.send({ topic, acks: -1, messages: searches.map(toKafkaMessage) });
    await eventually(async () => ((await endOffsets(pipeline.dlqTopic)) >= from + 5 ? true : undefined), 30_000, 'the old writer to dead-letter the searches');
    await old.stop();
    expect(await pipeline.finalCount(where, params)).toBe(0);

    // The writer with the current registry is deployed; the dead letters are replayed to it.
    await pipeline.drive(topic, (e) => currentWriter(e as MSKEvent, pipeline.writerContext()), { groupId: `${topic}-writer` });
    const applied = await redriveCliTo(topic, '--from-offset', String(from), '--apply');
    expect(applied.read).toBe(5);
    expect(applied.replayable).toEqual([{ reason: 'invalid event: type is unknown to this writer', records: 5 }]);
    expect(applied.replayed).toBe(5);
    await eventually(async () => ((await pipeline.finalCount(where, params)) === 5 ? true : undefined), 30_000, 'the searches in ClickHouse');
    const stored = await pipeline.query<{ query: string }>(`SELECT query FROM events FINAL WHERE ${where} ORDER BY query`, params);
    expect(stored.map((r) => r.query)).toEqual(searches.map((e) => (e as { query: string }).query));
    report('redrive after a registry change', { deadLettered: 5, replayed: applied.replayed, stored: stored.length });
  }, 120_000);

  it('refuses a run without a starting point in one line', async () => {
    const failure = await run(process.execPath, ['--import', 'tsx', 'scripts/redrive.ts'], { cwd: repoRoot, env: { ...process.env, KAFKA_BROKERS: pipeline.bootstrapServers } })
      .then(() => undefined, (error: { code: number; stderr: string }) => error);
    expect(failure?.code).toBe(2);
    expect(failure?.stderr.trim()).toBe('redrive: give one of --from-offset N or --from-time <ISO 8601 time>');
  });
});
