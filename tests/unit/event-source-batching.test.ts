import { describe, expect, it } from 'vitest';
import { Backpressure, bufferCapacity, offsetRanges, RecordBuffer } from '../../localstack/event-source/batching.ts';

const limits = { batchSize: 3, windowMs: 500, maxBatchBytes: 100 };
const record = (partition: number, bytes: number, arrivedAt: number, tag = '') => ({ partition, bytes, arrivedAt, tag });

function filled(records: ReturnType<typeof record>[], batchLimits = limits) {
  const buffer = new RecordBuffer<ReturnType<typeof record>>(batchLimits);
  for (const r of records) buffer.push(r);
  return buffer;
}

describe('event source batching', () => {
  it('is not due while empty, and waits for the oldest record’s window', () => {
    const buffer = filled([]);
    expect(buffer.isDue(1_000_000)).toBe(false);
    expect(buffer.msUntilWindowCloses(0)).toBeUndefined();
    buffer.push(record(0, 10, 1_000));
    buffer.push(record(0, 10, 1_300));
    expect(buffer.isDue(1_499)).toBe(false);
    expect(buffer.msUntilWindowCloses(1_200)).toBe(300);
    expect(buffer.isDue(1_500)).toBe(true);
  });

  it('is due at once with batchSize records or the payload limit, before the window ends', () => {
    expect(filled([record(0, 1, 0), record(0, 1, 0), record(1, 1, 0)]).isDue(1)).toBe(true);
    expect(filled([record(0, 1, 0), record(1, 1, 0)]).isDue(1)).toBe(false);
    expect(filled([record(0, 60, 0), record(1, 40, 0)]).isDue(1)).toBe(true);
  });

  it('takes the oldest batchSize records, in arrival order, and keeps the rest', () => {
    const buffer = filled(['a', 'b', 'c', 'd'].map((tag, i) => record(i % 2, 1, i, tag)));
    expect(buffer.take().map((r) => r.tag)).toEqual(['a', 'b', 'c']);
    expect(buffer.size).toBe(1);
    expect(buffer.take().map((r) => r.tag)).toEqual(['d']);
    expect(buffer.take()).toEqual([]);
  });

  it('stops a batch before the payload limit, but always takes at least one record', () => {
    const buffer = filled([record(0, 150, 0, 'huge'), record(0, 60, 0, 'x'), record(0, 50, 0, 'y'), record(0, 10, 0, 'z')]);
    expect(buffer.take().map((r) => r.tag)).toEqual(['huge']);
    expect(buffer.take().map((r) => r.tag)).toEqual(['x']);
    // Its bytes left with the batch: 'y' + 'z' (60 bytes) are no longer due by size.
    expect(buffer.isDue(1)).toBe(false);
    expect(buffer.take().map((r) => r.tag)).toEqual(['y', 'z']);
  });

  it('drops the records of partitions taken away, and their bytes with them', () => {
    const buffer = filled([record(0, 60, 0, 'a'), record(1, 30, 0, 'b'), record(2, 20, 0, 'c')]);
    expect(buffer.isDue(1)).toBe(true);
    buffer.keepPartitions(new Set([1]));
    expect(buffer.size).toBe(1);
    expect(buffer.isDue(1)).toBe(false);
    expect(buffer.take().map((r) => r.tag)).toEqual(['b']);
  });

  it('buffers two batches, and at least 100 records', () => {
    expect(bufferCapacity(10)).toBe(100);
    expect(bufferCapacity(500)).toBe(1_000);
  });

  it('gives each partition of a batch its first and last offset, for logs', () => {
    const at = (partition: number, offset: number) => ({ partition, record: { offset } });
    expect(offsetRanges('ugc', [at(1, 5), at(0, 9), at(1, 6), at(1, 8)])).toEqual({ 'ugc-1': [5, 8], 'ugc-0': [9, 9] });
  });
});

describe('event source backpressure', () => {
  function gate(capacity: number) {
    const calls: string[] = [];
    return { calls, backpressure: new Backpressure(capacity, { pause: () => calls.push('pause'), resume: () => calls.push('resume') }) };
  }

  it('pauses fetching once when the buffer is full, and takes nothing while full', () => {
    const { calls, backpressure } = gate(4);
    expect(backpressure.isFull(3)).toBe(false);
    expect(backpressure.isFull(4)).toBe(true);
    expect(backpressure.isFull(5)).toBe(true);
    expect(calls).toEqual(['pause']);
  });

  it('resumes only once the buffer is half empty', () => {
    const { calls, backpressure } = gate(4);
    backpressure.relieve(0);
    expect(calls).toEqual([]); // never paused: nothing to resume
    backpressure.isFull(4);
    backpressure.relieve(3);
    backpressure.relieve(2);
    expect(calls).toEqual(['pause']);
    backpressure.relieve(1);
    backpressure.relieve(0);
    expect(calls).toEqual(['pause', 'resume']);
    expect(backpressure.isFull(4)).toBe(true);
    expect(calls).toEqual(['pause', 'resume', 'pause']);
  });
});
