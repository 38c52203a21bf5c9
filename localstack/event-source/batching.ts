/**
 * Batching, as the event source mapping does it: records wait in a bounded buffer until a batch is
 * due (batchSize records, the payload limit, or the oldest record's batching window has passed);
 * a batch is the oldest records, at most batchSize and within the payload limit. A full buffer
 * pauses fetching until it is half empty. Pure: the caller passes the time, and the pause/resume.
 */
import type { KafkaMessage } from 'kafkajs';
import { recordGroupKey, type AwsKafkaRecord } from './aws-kafka-event.ts';

/** A fetched record waiting for its batch. */
export interface BufferedRecord {
  partition: number;
  message: KafkaMessage;
  record: AwsKafkaRecord;
  /** Its JSON size inside an event (recordJsonBytes). */
  bytes: number;
  arrivedAt: number;
  /** The group join (PartitionOwnership.joins) during which it was fetched. */
  join: number;
}

/** When a batch is due and how large it may be. */
export interface BatchLimits {
  readonly batchSize: number;
  readonly windowMs: number;
  readonly maxBatchBytes: number;
}

/** Records buffered at most: two batches, and no fewer than 100 so small batches still pipeline. */
export function bufferCapacity(batchSize: number): number {
  return Math.max(2 * batchSize, 100);
}

/** The records fetched and not yet taken into a batch, oldest first. */
export class RecordBuffer<R extends Pick<BufferedRecord, 'partition' | 'bytes' | 'arrivedAt'> = BufferedRecord> {
  #records: R[] = [];
  #bytes = 0;

  constructor(private readonly limits: BatchLimits) {}

  get size(): number {
    return this.#records.length;
  }

  push(record: R): void {
    this.#records.push(record);
    this.#bytes += record.bytes;
  }

  /** A batch can be taken now: enough records, enough bytes, or the oldest has waited its window. */
  isDue(now: number): boolean {
    const first = this.#records[0];
    if (!first) return false;
    return this.#records.length >= this.limits.batchSize || this.#bytes >= this.limits.maxBatchBytes || now >= first.arrivedAt + this.limits.windowMs;
  }

  /** How long until the oldest record's window closes; undefined when nothing waits. */
  msUntilWindowCloses(now: number): number | undefined {
    const first = this.#records[0];
    return first ? first.arrivedAt + this.limits.windowMs - now : undefined;
  }

  /** Removes and returns the oldest records: at most batchSize, within the payload limit, at least one. */
  take(): R[] {
    let count = 0;
    let bytes = 0;
    for (const r of this.#records) {
      if (count >= this.limits.batchSize || (count > 0 && bytes + r.bytes > this.limits.maxBatchBytes)) break;
      count += 1;
      bytes += r.bytes;
    }
    this.#bytes -= bytes;
    return this.#records.splice(0, count);
  }

  /** Drops the records of partitions not in `owned` (taken away by a rebalance). */
  keepPartitions(owned: ReadonlySet<number>): void {
    const kept = this.#records.filter((r) => owned.has(r.partition));
    if (kept.length === this.#records.length) return;
    this.#records = kept;
    this.#bytes = kept.reduce((sum, r) => sum + r.bytes, 0);
  }
}

/**
 * Pauses fetching when the buffer is full and resumes it once the buffer is half empty, so that
 * fetching is not switched on and off for every record.
 */
export class Backpressure {
  #paused = false;

  constructor(
    private readonly capacity: number,
    private readonly fetching: { pause(): void; resume(): void },
  ) {}

  /** True when a buffer of `size` records takes no more; fetching is paused then. */
  isFull(size: number): boolean {
    if (size < this.capacity) return false;
    if (!this.#paused) {
      this.#paused = true;
      this.fetching.pause();
    }
    return true;
  }

  /** Resumes a paused fetch when a buffer of `size` records has room again. */
  relieve(size: number): void {
    if (!this.#paused || size >= this.capacity / 2) return;
    this.#paused = false;
    this.fetching.resume();
  }
}

/** "topic-partition" → [first offset, last offset] of a batch, for logs. */
export function offsetRanges(topic: string, batch: readonly { partition: number; record: Pick<AwsKafkaRecord, 'offset'> }[]): Record<string, [number, number]> {
  const ranges: Record<string, [number, number]> = {};
  for (const r of batch) {
    const key = recordGroupKey(topic, r.partition);
    const range = ranges[key];
    if (range) range[1] = r.record.offset;
    else ranges[key] = [r.record.offset, r.record.offset];
  }
  return ranges;
}
