import type { MSKEvent } from 'aws-lambda';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { EventSourceLogger } from '../../localstack/event-source/kafka-event-source.ts';
import { eventually } from '../setup/context.ts';
import { compare, eventMessage, report, sleep, startPipeline, waitForRows, type Invoke, type Pipeline } from './harness.ts';

// The writer's consumer group rebalancing while batches are in flight: a second event source
// mapping instance joins the group, takes partitions, and leaves again, while events stream in.
// Nothing may be lost, and FINAL holds each event once (raw rows of a re-cut batch may repeat until a merge).
let pipeline: Pipeline;

beforeAll(async () => {
  pipeline = await startPipeline({ partitions: 6 });
}, 90_000);

afterAll(async () => {
  await pipeline?.stop();
}, 60_000);

/** What one event source instance did: its batches, the one in flight, its assignments. */
interface Member { batches: number; inFlight: number; assignments: number[][]; uncommittedAfterRebalance: number; commitFailures: number }

const member = (): Member => ({ batches: 0, inFlight: 0, assignments: [], uncommittedAfterRebalance: 0, commitFailures: 0 });

/** The writer, slowed so a rebalance finds batches in flight: some before their insert, some written and not yet committed. */
function slowWriter(m: Member): Invoke {
  return async (event) => {
    m.inFlight += 1;
    m.batches += 1;
    try {
      await sleep(60);
      const result = await pipeline.writer(event as MSKEvent, pipeline.writerContext());
      await sleep(120);
      return result;
    } finally {
      m.inFlight -= 1;
    }
  };
}

function watch(m: Member): EventSourceLogger {
  return (_level, msg, fields) => {
    if (msg === 'partitions assigned') m.assignments.push(fields.partitions as number[]);
    if (msg.startsWith('partitions reassigned during the batch')) m.uncommittedAfterRebalance += 1;
    if (msg.startsWith('offset commit failed')) m.commitFailures += 1;
  };
}

describe('writer consumer group rebalancing', () => {
  it('a second event source joins the group and leaves while batches are in flight: every event stored, once under FINAL', async () => {
    const topic = await pipeline.newTopic(6);
    const groupId = `${topic}-writer`;
    const a = member();
    const b = member();
    const options = { batchSize: 100, windowSeconds: 0.05, groupId };
    await pipeline.drive(topic, slowWriter(a), { ...options, logger: watch(a) });

    const sent: string[] = [];
    let producing = true;
    // Bounded: at most 400 sends of 20 events (8,000), one every ~40 ms.
    const producer = (async () => {
      for (let tick = 0; tick < 400 && producing; tick++) {
        const batch = Array.from({ length: 20 }, (_, j) => eventMessage(`rebalance-${j % 13}`, tick * 20 + j));
        await pipeline.producer.send({ topic, acks: -1, messages: batch.map((m) => m.message) });
        sent.push(...batch.map((m) => m.eventId));
        await sleep(40);
      }
    })();

    let inFlightAtJoin = 0;
    let inFlightAtLeave = 0;
    let second;
    try {
      await eventually(async () => (a.batches >= 5 ? true : undefined), 30_000, 'five batches by the first instance');
      await eventually(async () => (a.inFlight > 0 ? true : undefined), 10_000, 'a batch in flight');
      inFlightAtJoin = a.inFlight;
      second = await pipeline.drive(topic, slowWriter(b), { ...options, logger: watch(b) });
      await eventually(async () => (b.batches >= 5 ? true : undefined), 30_000, 'five batches by the second instance');
      await eventually(async () => (a.inFlight + b.inFlight > 0 ? true : undefined), 10_000, 'a batch in flight');
      inFlightAtLeave = a.inFlight + b.inFlight;
      await second.stop();
      const batchesAtLeave = a.batches;
      await eventually(async () => (a.batches >= batchesAtLeave + 5 ? true : undefined), 30_000, 'five more batches by the first instance');
    } finally {
      producing = false;
      await producer;
      await second?.stop();
    }

    const where = 'kafka_topic = {t:String}';
    const counts = await waitForRows(pipeline, sent, where, { t: topic });
    const final = await pipeline.finalCount(where, { t: topic });
    const result = compare(sent, counts);
    report('writer group rebalancing', { sent: sent.length, batchesFirst: a.batches, batchesSecond: b.batches,
      assignmentsFirst: a.assignments, assignmentsSecond: b.assignments, inFlightAtJoin, inFlightAtLeave,
      batchesUncommittedAfterRebalance: a.uncommittedAfterRebalance + b.uncommittedAfterRebalance,
      commitFailures: a.commitFailures + b.commitFailures,
      inClickHouse: result.inClickHouse, missing: result.missing.length, extra: result.extra.length,
      duplicateRawRows: result.duplicates.length, finalDistinct: final });
    // The rebalances happened: the second instance owned partitions and wrote batches, the first
    // was assigned three times (alone, shared, alone again).
    expect(b.batches).toBeGreaterThan(0);
    expect(b.assignments.some((p) => p.length > 0)).toBe(true);
    expect(a.assignments.length).toBeGreaterThanOrEqual(3);
    expect(inFlightAtJoin).toBeGreaterThan(0);
    expect(result.missing).toEqual([]);
    expect(result.extra).toEqual([]);
    // A batch written but not committed when its partition moved is read again by the new owner,
    // cut into other batches (as AWS's event source mapping does): other deduplication tokens, so
    // raw rows may hold it twice until a merge. Each event is stored once as the product reads it:
    // ReplacingMergeTree by event_id, FINAL. The raw duplicates are reported above, not forbidden.
    expect(final).toBe(sent.length);
  }, 180_000);
});
