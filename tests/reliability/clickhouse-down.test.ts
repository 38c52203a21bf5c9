import type { MSKEvent } from 'aws-lambda';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { compare, eventMessage, report, sleep, startPipeline, waitForRows, type Pipeline } from './harness.ts';

// ClickHouse stops in the middle of a steady stream and comes back: the writer's failed batches
// are retried (offsets not committed) and every event lands exactly once.
let pipeline: Pipeline;

beforeAll(async () => {
  pipeline = await startPipeline({ partitions: 3 });
}, 90_000);

afterAll(async () => {
  await pipeline?.stop();
});

describe('ClickHouse down during a steady stream', () => {
  it('loses nothing and writes no duplicate row after ClickHouse returns', async () => {
    const topic = await pipeline.newTopic(3);
    let invocations = 0;
    let failures = 0;
    // While ClickHouse restarts and merges are stopped again, invocations wait at this gate, so
    // no insert lands in a window where a merge could hide a duplicate.
    let gate: Promise<void> | undefined;
    await pipeline.drive(topic, async (event) => {
      if (gate) await gate;
      invocations += 1;
      try {
        return await pipeline.writer(event as MSKEvent, pipeline.writerContext());
      } catch (error) {
        failures += 1;
        throw error;
      }
    }, { batchSize: 100, windowSeconds: 0.1 });

    const sent: string[] = [];
    const produceTick = async (tick: number) => {
      const batch = Array.from({ length: 40 }, (_, j) => eventMessage(`viewer-${j % 9}`, tick * 40 + j));
      await pipeline.producer.send({ topic, acks: -1, messages: batch.map((b) => b.message) });
      sent.push(...batch.map((b) => b.eventId));
    };
    // Steady stream: 40 events every 100 ms; ClickHouse down from tick 10 until the writer has failed a few times.
    let tick = 0;
    for (; tick < 10; tick++) { await produceTick(tick); await sleep(100); }
    await pipeline.stopClickHouse();
    const failuresBefore = failures;
    const downUntil = Date.now() + 2_000;
    while (Date.now() < downUntil || failures < failuresBefore + 2) { await produceTick(tick++); await sleep(100); if (tick > 200) break; }
    let open: () => void = () => {};
    gate = new Promise((r) => (open = r));
    await pipeline.startClickHouse();
    gate = undefined;
    open();
    for (const end = tick + 10; tick < end; tick++) { await produceTick(tick); await sleep(100); }

    const counts = await waitForRows(pipeline, sent, 'kafka_topic = {t:String}', { t: topic });
    const result = compare(sent, counts);
    report('clickhouse down', { sent: sent.length, inClickHouse: result.inClickHouse, missing: result.missing.length,
      extra: result.extra.length, duplicates: result.duplicates.length, invocations, failedInvocations: failures });
    expect(failures).toBeGreaterThanOrEqual(2);
    expect(result.missing).toEqual([]);
    expect(result.extra).toEqual([]);
    expect(result.duplicates).toEqual([]);
  }, 120_000);
});
