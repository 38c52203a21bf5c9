import type { MSKEvent } from 'aws-lambda';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildKafkaEvent } from '../../localstack/event-source/aws-kafka-event.ts';
import { eventually } from '../setup/context.ts';
import { compare, eventMessage, report, sleep, startPipeline, waitForRows, type Pipeline } from './harness.ts';

// Faults of the real ClickHouse server (the embedded one is ClickHouse's own HTTP server): the
// server down when the writer starts, stopped in the middle of a steady stream, kill -9 in the
// middle of an insert and just after one, SIGSTOP for longer than the client's request timeout
// (5 s here). For each, the fault is asserted to have happened, and
// every event produced is in ClickHouse exactly once (merges are stopped: a duplicate row shows).
let pipeline: Pipeline;

beforeAll(async () => {
  pipeline = await startPipeline({ partitions: 3 });
}, 90_000);

afterAll(async () => {
  await pipeline?.stop();
});

/** The writer behind a gate (closed while ClickHouse restarts), counting invocations and the errors they threw. */
function gatedWriter() {
  const state = { invocations: 0, inFlight: 0, succeeded: 0, errors: [] as string[], gate: undefined as Promise<void> | undefined };
  const invoke = async (event: unknown) => {
    if (state.gate) await state.gate;
    state.invocations += 1;
    state.inFlight += 1;
    try {
      const result = await pipeline.writer(event as MSKEvent, pipeline.writerContext());
      state.succeeded += 1;
      return result;
    } catch (error) {
      state.errors.push(String((error as { code?: unknown }).code ?? error));
      throw error;
    } finally {
      state.inFlight -= 1;
    }
  };
  /** Runs `restart` with invocations held at the gate, so none lands before merges are stopped again. */
  const whileHeld = async (restart: () => Promise<void>) => {
    let open: () => void = () => {};
    state.gate = new Promise((r) => (open = r));
    try {
      await restart();
    } finally {
      state.gate = undefined;
      open();
    }
  };
  return { state, invoke, whileHeld };
}

/** Produces `count` events to `topic` in sends of `perSend`, remembering their ids in `sent`. */
async function produce(topic: string, sent: string[], from: number, count: number, perSend = 200): Promise<void> {
  for (let i = from; i < from + count; i += perSend) {
    const batch = Array.from({ length: Math.min(perSend, from + count - i) }, (_, j) => eventMessage(`viewer-${(i + j) % 13}`, i + j));
    await pipeline.producer.send({ topic, acks: -1, messages: batch.map((b) => b.message) });
    sent.push(...batch.map((b) => b.eventId));
  }
}

/** Waits for every sent event, then checks each is stored once; `figures` are read after the wait, for the report. */
async function expectEachOnce(name: string, topic: string, sent: string[], figures: () => Record<string, unknown>) {
  const counts = await waitForRows(pipeline, sent, 'kafka_topic = {t:String}', { t: topic });
  const result = compare(sent, counts);
  report(name, { sent: sent.length, inClickHouse: result.inClickHouse, missing: result.missing.length, extra: result.extra.length,
    duplicates: result.duplicates.length, ...figures() });
  expect(result.missing).toEqual([]);
  expect(result.extra).toEqual([]);
  expect(result.duplicates).toEqual([]);
}

describe('ClickHouse server faults', () => {
  it('the server down when the writer starts: its first invocations fail, nothing is committed, every event lands once after it starts', async () => {
    await pipeline.stopClickHouse(); // before the writer's first invocation: its client has never connected
    const topic = await pipeline.newTopic(3);
    const writer = gatedWriter();
    await pipeline.drive(topic, writer.invoke, { batchSize: 100, windowSeconds: 0.1 });
    const sent: string[] = [];
    await produce(topic, sent, 0, 600, 100);
    await eventually(async () => writer.state.errors.length >= 3 || undefined, 30_000, 'three failed invocations');
    expect(writer.state.errors.every((code) => code === 'ECONNREFUSED'), writer.state.errors.join(', ')).toBe(true);
    await writer.whileHeld(() => pipeline.startClickHouse());
    await produce(topic, sent, 600, 400, 100);
    await expectEachOnce('clickhouse down at writer start', topic, sent, () => ({ invocations: writer.state.invocations, failedInvocations: writer.state.errors.length }));
  }, 120_000);

  it('the server stopped in the middle of a steady stream, then back: failed batches are retried, nothing lost, no duplicate row', async () => {
    const topic = await pipeline.newTopic(3);
    const writer = gatedWriter();
    await pipeline.drive(topic, writer.invoke, { batchSize: 100, windowSeconds: 0.1 });
    const sent: string[] = [];
    // Steady stream: 40 events every 100 ms; ClickHouse down from tick 10 until the writer has failed a few times.
    let tick = 0;
    const produceTick = async () => {
      await produce(topic, sent, tick++ * 40, 40, 40);
      await sleep(100);
    };
    while (tick < 10) await produceTick();
    await pipeline.stopClickHouse();
    const failuresBefore = writer.state.errors.length;
    const downUntil = Date.now() + 2_000;
    while ((Date.now() < downUntil || writer.state.errors.length < failuresBefore + 2) && tick < 200) await produceTick();
    await writer.whileHeld(() => pipeline.startClickHouse());
    for (const end = tick + 10; tick < end;) await produceTick();
    expect(writer.state.errors.length - failuresBefore).toBeGreaterThanOrEqual(2);
    await expectEachOnce('clickhouse down', topic, sent, () => ({ invocations: writer.state.invocations, failedInvocations: writer.state.errors.length }));
  }, 120_000);

  it('kill -9 of the server in the middle of an insert, then a restart: the cut batch is retried and stored once', async () => {
    const topic = await pipeline.newTopic(3);
    const writer = gatedWriter();
    const sent: string[] = [];
    await produce(topic, sent, 0, 6_000); // a backlog: the first batches are 2,000 records, inserts of tens of ms
    const victim = pipeline.clickhouse;
    // Killed while ClickHouse itself lists the writer's insert as running, and frozen first (SIGSTOP):
    // if, 100 ms into the freeze, no invocation has finished and one is in flight, its answer can no
    // longer come, so the kill lands mid-insert. Otherwise the server goes on (SIGCONT) and the next
    // insert is tried. (Killing on sight alone raced with the insert's answer on a busy machine.)
    let killed: { whileRunning: string } | undefined;
    const watcher = (async () => {
      const deadline = Date.now() + 60_000;
      while (!killed && Date.now() < deadline) {
        const running = await pipeline.query<{ query_id: string }>(
          "SELECT query_id FROM system.processes WHERE query LIKE 'INSERT INTO events %' AND query NOT LIKE '%system.processes%'").catch(() => []);
        if (running.length > 0 && writer.state.inFlight > 0) {
          const succeeded = writer.state.succeeded;
          process.kill(victim.pid, 'SIGSTOP');
          await sleep(100);
          if (writer.state.inFlight > 0 && writer.state.succeeded === succeeded && writer.state.errors.length === 0) {
            process.kill(victim.pid, 'SIGKILL');
            killed = { whileRunning: running[0]!.query_id };
          } else {
            process.kill(victim.pid, 'SIGCONT');
          }
        }
        await sleep(2);
      }
    })();
    await pipeline.drive(topic, writer.invoke, { batchSize: 2_000, windowSeconds: 0.5 });
    await watcher;
    try {
      expect(killed, 'an insert was running when the server was killed').toBeDefined();
      await eventually(async () => writer.state.errors.length >= 1 || undefined, 30_000, 'the cut invocation to fail');
      // The invocation whose insert was cut: its connection broke (reset, or a write into it while the body
      // streamed), not refused (that would be a later one).
      expect(writer.state.errors[0]).toMatch(/^(ECONNRESET|EPIPE)$/);
    } finally {
      // Whatever the verdict, the next tests get a server.
      if (killed) await writer.whileHeld(() => pipeline.startClickHouse());
    }
    await produce(topic, sent, 6_000, 1_000);
    await expectEachOnce('clickhouse kill -9 mid-insert', topic, sent, () => ({ killedDuring: killed!.whileRunning, invocations: writer.state.invocations,
      failedInvocations: writer.state.errors.length, errors: [...new Set(writer.state.errors)].join(' ') }));
  }, 120_000);

  it('kill -9 of the server just after an insert was answered, then the batch again after the restart: dropped by its token', async () => {
    const topic = await pipeline.newTopic(1);
    const batch = Array.from({ length: 500 }, (_, i) => eventMessage(`viewer-${i % 13}`, i));
    const event = buildKafkaEvent({ kind: 'msk', eventSourceArn: 'arn:aws:kafka:us-east-1:000000000000:cluster/reliability/1', bootstrapServers: pipeline.bootstrapServers },
      batch.map(({ message }, offset) => ({ topic, partition: 0, offset, timestamp: Date.now(), timestampType: 'CREATE_TIME' as const,
        key: Buffer.from(String(message.key)).toString('base64'), value: Buffer.from(String(message.value)).toString('base64'), headers: [] }))) as MSKEvent;
    await pipeline.writer(event, pipeline.writerContext());
    process.kill(pipeline.clickhouse.pid, 'SIGKILL'); // before any merge or flush could tidy up after it
    await pipeline.startClickHouse();
    await pipeline.writer(event, pipeline.writerContext()); // AWS redelivers the batch whose invocation it saw fail
    // The restarted server's counters start at 0: this one is the redelivered insert's block.
    const [dropped] = await pipeline.query<{ n: string }>("SELECT value AS n FROM system.events WHERE event = 'DuplicatedInsertedBlocks'");
    const sent = batch.map((b) => b.eventId);
    await expectEachOnce('clickhouse kill -9 after an insert', topic, sent, () => ({ droppedBlocks: Number(dropped?.n ?? 0) }));
    expect(Number(dropped?.n ?? 0), 'the redelivered insert was dropped as a duplicate block').toBeGreaterThanOrEqual(1);
  }, 120_000);

  it('SIGSTOP of the server for longer than the request timeout, then SIGCONT: inserts time out and are retried, every event once', async () => {
    const topic = await pipeline.newTopic(3);
    const writer = gatedWriter();
    await pipeline.drive(topic, writer.invoke, { batchSize: 200, windowSeconds: 0.1 });
    const sent: string[] = [];
    await produce(topic, sent, 0, 1_000, 100);
    await waitForRows(pipeline, sent, 'kafka_topic = {t:String}', { t: topic });
    const stoppedFor = 7_000; // the client's request timeout is 5 s (CLICKHOUSE_REQUEST_TIMEOUT_MS)
    const failuresBefore = writer.state.errors.length;
    process.kill(pipeline.clickhouse.pid, 'SIGSTOP');
    try {
      const until = Date.now() + stoppedFor;
      for (let i = 1_000; Date.now() < until; i += 100) {
        await produce(topic, sent, i, 100, 100);
        await sleep(200);
      }
    } finally {
      process.kill(pipeline.clickhouse.pid, 'SIGCONT');
    }
    const timedOut = writer.state.errors.slice(failuresBefore);
    await produce(topic, sent, 100_000, 500, 100);
    await expectEachOnce('clickhouse SIGSTOP', topic, sent, () => ({ stoppedMs: stoppedFor, invocations: writer.state.invocations,
      failedWhileStopped: timedOut.length, errors: [...new Set(timedOut)].join(' ') }));
    expect(timedOut.length, 'invocations failed while the server was stopped').toBeGreaterThanOrEqual(1);
    expect(timedOut.every((error) => /Timeout error/.test(error)), timedOut.join(', ')).toBe(true);
  }, 120_000);
});
