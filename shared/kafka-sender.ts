// Kept apart from kafka.ts (config, secrets, logger) so the local event source emulator can use it too.
import { CompressionTypes, type Message, type Producer, type ProducerRecord } from 'kafkajs';
import { SharedRequestError } from './errors.ts';

/** Sends through idempotent producers that each carry one produce request at a time; a failed one is dropped. */
export interface Sender {
  /**
   * Resolves once the brokers acknowledged the record (as `record.acks` asks). With `signal`, a
   * record still waiting for a producer when it aborts is not sent, and the send rejects.
   */
  send(record: ProducerRecord, options?: { signal?: AbortSignal }): Promise<void>;
  /** Disconnects every producer, idle or busy; sends still waiting, and any after, are refused. */
  disconnect(): Promise<void>;
}

export interface SenderOptions {
  /** Produce requests in flight at once, each on a producer of its own. Default 2. */
  maxProducers?: number;
  /** Records waiting together go out in one request up to this many bytes of keys and values. Default 256 KiB. */
  maxBatchBytes?: number;
  /** For records sent without a compression of their own: see {@link requestCompression}. */
  compression?: SizedCompression;
}

/** A codec for requests of at least `minBytes` of keys and values; smaller ones go uncompressed. */
export interface SizedCompression { codec: CompressionTypes; minBytes: number }

/** The codec `compression` gives a request of these messages. */
export function requestCompression(messages: Message[], compression: SizedCompression | undefined): CompressionTypes {
  return compressionOf(recordBytes(messages), compression) ?? CompressionTypes.None;
}

function compressionOf(bytes: number, compression: SizedCompression | undefined): CompressionTypes | undefined {
  return compression && bytes >= compression.minBytes ? compression.codec : undefined;
}

interface Pending {
  record: ProducerRecord;
  bytes: number;
  resolve: () => void;
  reject: (error: unknown) => void;
  /** waiting: in the queue; taken: in a batch whose producer is connecting; sent: on the wire; aborted: given up before it was sent. */
  state: 'waiting' | 'taken' | 'sent' | 'aborted';
  signal?: AbortSignal;
  onAbort?: () => void;
}

interface Lease { producer: Producer; connected: Promise<void> }

/**
 * A sender that gives each produce request a producer of its own while it runs (an idle one, or a
 * new one, up to `maxProducers`) and drops a producer whose request failed. kafkajs rolls a
 * partition's sequence number back when a produce request fails, even when the broker wrote the
 * batch (the ack lost to a timeout or a dropped connection). Any other batch sent next on that
 * producer reuses the number, and the broker acknowledges it as a duplicate without storing it: a
 * 202 for an event never written. Its own retry of the same batch is safe (the broker recognises
 * it); so a producer carries one request at a time, and a producer that failed is replaced: a new
 * one has a new producer id, its sequences start afresh.
 *
 * Sends that arrive while every producer is busy wait, and go out together in the next request, as
 * the Java producer batches what accumulates while a request is in flight. In a Lambda container
 * (one invocation at a time) every send is a request of its own; in an in-process offline run many
 * concurrent invocations share the brokers' per-request cost, which on a small machine is what
 * limits the rate (three JVM brokers, acks=all). Waiting sends keep their order within a request
 * (two requests in flight may reorder, which the writer's tables do not mind: they keep the latest
 * by event time). A request's outcome is each of its sends' outcome: if it fails, all of them fail
 * (a 503 each, and the clients' retries carry the same event ids).
 */
export function createSender(newProducer: () => Producer, options: SenderOptions = {}): Sender {
  const maxProducers = options.maxProducers ?? 2;
  const maxBatchBytes = options.maxBatchBytes ?? 256 * 1024;
  const idle: Lease[] = [];
  const all = new Set<Producer>();
  const waiting: Pending[] = [];
  let closed = false;

  function lease(): Lease | undefined {
    const reused = idle.pop();
    if (reused) return reused;
    if (all.size >= maxProducers) return undefined;
    const producer = newProducer();
    all.add(producer);
    return { producer, connected: producer.connect() };
  }

  /** The oldest waiting send and those behind it that fit one request with it (same acks, compression, timeout). */
  function takeBatch(): Pending[] {
    const first = waiting.shift()!;
    const batch = [first];
    let bytes = first.bytes;
    // Only from the front of the queue, so the order is kept.
    while (waiting.length > 0 && bytes < maxBatchBytes) {
      const next = waiting[0]!;
      if (!sameRequest(first.record, next.record) || bytes + next.bytes > maxBatchBytes) break;
      batch.push(waiting.shift()!);
      bytes += next.bytes;
    }
    for (const p of batch) p.state = 'taken';
    return batch;
  }

  function pump(): void {
    while (!closed && waiting.length > 0) {
      let next: Lease | undefined;
      try {
        next = lease();
      } catch (error) {
        for (const p of takeBatch()) settle(p, error);
        continue;
      }
      if (!next) return;
      void run(next, takeBatch());
    }
  }

  /** Ends a send: resolved without an error, rejected with it. */
  function settle(p: Pending, error?: unknown): void {
    if (p.onAbort) p.signal!.removeEventListener('abort', p.onAbort);
    if (error === undefined) p.resolve();
    else p.reject(error);
  }

  async function run(current: Lease, taken: Pending[]): Promise<void> {
    let batch: Pending[] = [];
    try {
      await current.connected;
      // A new producer may take seconds to connect (a broker down): what was given up meanwhile stays unsent.
      batch = taken.filter((p) => p.state === 'taken');
      if (batch.length === 0) {
        if (all.has(current.producer)) idle.push(current);
        return;
      }
      for (const p of batch) p.state = 'sent';
      const [{ record }] = batch as [Pending];
      const bytes = batch.reduce((sum, p) => sum + p.bytes, 0);
      const compression = record.compression ?? compressionOf(bytes, options.compression);
      if (batch.length === 1) await current.producer.send({ ...record, compression });
      else {
        await current.producer.sendBatch({
          acks: record.acks, timeout: record.timeout, compression,
          topicMessages: batch.map((p) => ({ topic: p.record.topic, messages: p.record.messages })),
        });
      }
      if (all.has(current.producer)) idle.push(current);
      for (const p of batch) settle(p);
    } catch (error) {
      all.delete(current.producer);
      void current.producer.disconnect().catch(() => {});
      if (batch.length === 0) batch = taken.filter((p) => p.state === 'taken'); // connecting failed
      const failure = batch.length > 1 ? new SharedRequestError(error, batch.length) : error;
      for (const p of batch) settle(p, failure);
    } finally {
      pump();
    }
  }

  return {
    send(record, { signal } = {}) {
      return new Promise<void>((resolve, reject) => {
        if (closed) return reject(new Error('the sender was disconnected'));
        if (signal?.aborted) return reject(signal.reason);
        const pending: Pending = { record, bytes: recordBytes(record.messages), resolve, reject, state: 'waiting', signal };
        if (signal) {
          pending.onAbort = () => {
            if (pending.state === 'sent' || pending.state === 'aborted') return;
            const at = waiting.indexOf(pending);
            if (at >= 0) waiting.splice(at, 1);
            pending.state = 'aborted';
            reject(signal.reason);
          };
          signal.addEventListener('abort', pending.onAbort, { once: true });
        }
        waiting.push(pending);
        pump();
      });
    },
    async disconnect() {
      closed = true;
      for (const p of waiting.splice(0)) settle(p, new Error('the sender was disconnected'));
      const producers = [...all];
      all.clear();
      idle.length = 0;
      await Promise.all(producers.map((p) => p.disconnect()));
    },
  };
}

function sameRequest(a: ProducerRecord, b: ProducerRecord): boolean {
  return a.acks === b.acks && a.compression === b.compression && a.timeout === b.timeout;
}

function recordBytes(messages: Message[]): number {
  let bytes = 0;
  for (const { key, value } of messages) bytes += byteLength(key) + byteLength(value);
  return bytes;
}

function byteLength(data: Message['value'] | Message['key']): number {
  if (data == null) return 0;
  return typeof data === 'string' ? Buffer.byteLength(data) : data.length;
}
