/**
 * Local stand-in for AWS Lambda's Kafka event source mapping (ESM), for `msk` and `kafka` events.
 *
 * What it does, as AWS does:
 * - one consumer group (the configured ConsumerGroupId) on one topic;
 * - an event holds at most `batchSize` records (and stays under Lambda's 6 MB payload), collected
 *   for at most the batching window; records of several partitions share one event, grouped
 *   under "topic-partition", each partition in offset order;
 * - the function is invoked synchronously; offsets are committed only after it succeeded;
 * - a failed batch is retried with exponential backoff, `maximumRetryAttempts` times (-1: forever;
 *   AWS caps -1 at 10 when an on-failure destination is set, and so does this);
 * - retries used up: the records go to the on-failure Kafka topic (see dead-letter.ts), or with no
 *   destination are discarded with an error log (AWS drops them too), and the offsets are committed;
 * - startingPosition applies only to partitions the group has no committed offset for.
 *
 * How: kafkajs eachBatch with auto-resolve and auto-commit off. Fetched records are resolved
 * (kafkajs' in-memory fetch position) as they are buffered, so fetching continues while a batch
 * is invoked; Kafka only learns an offset through the explicit commit after a successful invoke.
 * One event is in flight at a time, so per-partition order holds trivially. The buffer is bounded:
 * when full, fetching pauses.
 */
import { randomUUID } from 'node:crypto';
import {
  Kafka,
  logLevel as kafkaLogLevel,
  Partitioners,
  type Consumer,
  type ConsumerConfig,
  type EachBatchPayload,
  type KafkaConfig,
  type KafkaMessage,
  type LogEntry,
  type Producer,
} from 'kafkajs';
import {
  buildKafkaEvent,
  recordJsonBytes,
  toAwsKafkaRecord,
  type AwsKafkaEvent,
  type AwsKafkaRecord,
  type EventSourceKind,
} from './aws-kafka-event.ts';
import { toEventSourceDeadLetter, type BatchFailure } from './dead-letter.ts';

export type StartingPosition = 'TRIM_HORIZON' | 'LATEST' | 'AT_TIMESTAMP';

export type EventSourceLogLevel = 'debug' | 'info' | 'warn' | 'error';

/** Receives every log line as a message plus structured fields. */
export type EventSourceLogger = (level: EventSourceLogLevel, msg: string, fields: Record<string, unknown>) => void;

export interface RetryBackoff {
  /** Delay before the first retry. Default 500 ms. */
  initialMs?: number;
  /** Upper bound of a delay. Default 30 000 ms. */
  maxMs?: number;
  /** Growth per retry. Default 2. */
  multiplier?: number;
}

export interface KafkaEventSourceConfig {
  /** Brokers to consume from (locally: the embedded broker, whatever serverless.yml says). */
  brokers: string[];
  topic: string;
  consumerGroupId: string;
  /** 'msk' → eventSource 'aws:kafka' with eventSourceArn; 'kafka' → 'SelfManagedKafka'. */
  kind: 'msk' | 'kafka';
  /** Required for 'msk'. */
  eventSourceArn?: string;
  /** The event's `bootstrapServers`. Default: `brokers` joined with commas. */
  bootstrapServers?: string;
  /** Records per event, at most. AWS default 100. */
  batchSize?: number;
  /** How long records are gathered before an event is sent. AWS default for Kafka: 0.5 s. */
  maximumBatchingWindowSeconds?: number;
  /** Where a group with no committed offset starts. Default TRIM_HORIZON (osls' default). */
  startingPosition?: StartingPosition;
  /** For AT_TIMESTAMP: Unix time in seconds, as in AWS's StartingPositionTimestamp. */
  startingPositionTimestamp?: number;
  /** Retries after the first failed invoke; -1 (default, as AWS): until it succeeds. */
  maximumRetryAttempts?: number;
  retryBackoff?: RetryBackoff;
  /** The on-failure destination: a Kafka topic on the same cluster. */
  onFailure?: { topic: string };
  /** Invokes the function synchronously; must reject when the function fails. */
  invoke: (event: AwsKafkaEvent) => Promise<unknown>;
  /** Named in logs and dead-letter headers. */
  functionName?: string;
  logger?: EventSourceLogger;
  clientId?: string;
  /** Consumer tuning; the defaults suit the embedded broker (see DESIGN.md). */
  consumer?: Partial<Omit<ConsumerConfig, 'groupId'>>;
  /** Extra kafkajs client settings (ssl, sasl, …). */
  kafka?: Partial<Omit<KafkaConfig, 'brokers'>>;
  /** Event payload limit. Default: Lambda's 6 MB synchronous invoke limit. */
  maxPayloadBytes?: number;
  /** How long start() waits for the first group join. Default 30 s. */
  joinTimeoutMs?: number;
}

/** Thrown by start() when the configuration cannot work. */
export class EventSourceConfigError extends Error {
  override readonly name = 'EventSourceConfigError';
}

interface BufferedRecord {
  partition: number;
  message: KafkaMessage;
  record: AwsKafkaRecord;
  bytes: number;
  arrivedAt: number;
  /** The group join (#joins) during which it was fetched. */
  join: number;
}

const defaults = {
  batchSize: 100,
  maximumBatchingWindowSeconds: 0.5,
  startingPosition: 'TRIM_HORIZON' as StartingPosition,
  maximumRetryAttempts: -1,
  maxPayloadBytes: 6 * 1024 * 1024,
  joinTimeoutMs: 30_000,
  backoff: { initialMs: 500, maxMs: 30_000, multiplier: 2 },
  // AWS applies at most 10 retries when retries are infinite and an on-failure destination is set.
  retriesWithDestination: 10,
};

// Room for the event's own keys (eventSource, eventSourceArn, bootstrapServers, "topic-partition" keys).
const envelopeReserveBytes = 64 * 1024;

const levelRank: Record<EventSourceLogLevel, number> = { debug: 10, info: 20, warn: 30, error: 40 };

/** A logger writing one JSON object per line to stdout, dropping levels below `minLevel`. */
export function jsonLineLogger(
  minLevel: EventSourceLogLevel = 'info',
  write: (line: string) => void = (line) => process.stdout.write(`${line}\n`),
): EventSourceLogger {
  return (level, msg, fields) => {
    if (levelRank[level] < levelRank[minLevel]) return;
    write(JSON.stringify({ time: new Date().toISOString(), level, component: 'kafka-event-source', msg, ...fields }));
  };
}

/** Delay before retry number `retry` (0-based): exponential, capped. */
export function retryDelayMs(retry: number, backoff: RetryBackoff = {}): number {
  const { initialMs, maxMs, multiplier } = { ...defaults.backoff, ...backoff };
  return Math.min(maxMs, initialMs * multiplier ** retry);
}

/** Retries allowed after the first failure; -1 means no limit. */
export function effectiveRetryLimit(maximumRetryAttempts: number, hasDestination: boolean): number {
  return maximumRetryAttempts < 0 && hasDestination ? defaults.retriesWithDestination : maximumRetryAttempts;
}

/** errorType / errorMessage of whatever an invoke rejected with. */
export function describeError(error: unknown): { errorType: string; errorMessage: string } {
  if (error instanceof Error) {
    const errorType = (error as Error & { errorType?: unknown }).errorType;
    return { errorType: typeof errorType === 'string' ? errorType : error.name, errorMessage: error.message };
  }
  return { errorType: 'Error', errorMessage: String(error) };
}

/** Runs one event source mapping: start() joins the group and begins delivering; stop() ends it. */
export class KafkaEventSource {
  readonly #config: KafkaEventSourceConfig;
  readonly #log: (level: EventSourceLogLevel, msg: string, fields?: Record<string, unknown>) => void;
  readonly #source: EventSourceKind;
  readonly #batchSize: number;
  readonly #windowMs: number;
  readonly #maxRecordBytes: number;
  readonly #retryLimit: number;
  readonly #maxBuffered: number;

  #kafka: Kafka | undefined;
  #consumer: Consumer | undefined;
  #producer: Producer | undefined;
  #loop: Promise<void> | undefined;
  #stopping = false;
  #stopped: Promise<void> | undefined;
  #paused = false;
  #wakeUp: (() => void) | undefined;

  #pending: BufferedRecord[] = [];
  #pendingBytes = 0;
  /** Next offset to buffer per partition: after a rejoin kafkajs refetches from the committed offset. */
  readonly #nextOffset = new Map<number, bigint>();
  /** Start offsets of partitions the group has never committed; re-applied on every join until a commit. */
  readonly #startOffsets = new Map<number, string>();
  /** AT_TIMESTAMP scanning: skip records older than this (ms) until the first newer one. */
  readonly #skipBefore = new Map<number, number>();
  /** Group joins so far, and for each partition we own, the join that gave it to us. */
  #joins = 0;
  readonly #ownedSince = new Map<number, number>();

  constructor(config: KafkaEventSourceConfig) {
    this.#config = config;
    const logger = config.logger ?? jsonLineLogger();
    const base = { function: config.functionName, topic: config.topic, groupId: config.consumerGroupId };
    this.#log = (level, msg, fields = {}) => logger(level, msg, { ...base, ...fields });

    const bootstrapServers = config.bootstrapServers ?? config.brokers.join(',');
    if (config.kind === 'msk') {
      if (!config.eventSourceArn) throw new EventSourceConfigError('an msk event source needs eventSourceArn');
      this.#source = { kind: 'msk', eventSourceArn: config.eventSourceArn, bootstrapServers };
    } else {
      this.#source = { kind: 'kafka', bootstrapServers };
    }
    if (config.brokers.length === 0) throw new EventSourceConfigError('no brokers given');
    this.#batchSize = config.batchSize ?? defaults.batchSize;
    if (!Number.isInteger(this.#batchSize) || this.#batchSize < 1) {
      throw new EventSourceConfigError(`batchSize must be a positive integer, got ${config.batchSize}`);
    }
    this.#windowMs = Math.max(0, (config.maximumBatchingWindowSeconds ?? defaults.maximumBatchingWindowSeconds) * 1000);
    this.#maxRecordBytes = (config.maxPayloadBytes ?? defaults.maxPayloadBytes) - envelopeReserveBytes;
    this.#retryLimit = effectiveRetryLimit(
      config.maximumRetryAttempts ?? defaults.maximumRetryAttempts,
      config.onFailure !== undefined,
    );
    if (!Number.isInteger(this.#retryLimit) || this.#retryLimit < -1) {
      throw new EventSourceConfigError(`maximumRetryAttempts must be an integer >= -1, got ${config.maximumRetryAttempts}`);
    }
    this.#maxBuffered = Math.max(2 * this.#batchSize, 100);
    const position = config.startingPosition ?? defaults.startingPosition;
    if (position === 'AT_TIMESTAMP' && config.startingPositionTimestamp === undefined) {
      throw new EventSourceConfigError('AT_TIMESTAMP needs startingPositionTimestamp (Unix seconds)');
    }
    if (config.onFailure?.topic === config.topic) {
      // AWS refuses this too: a failing record would loop forever.
      throw new EventSourceConfigError('the on-failure topic must differ from the source topic');
    }
  }

  /** Joins the consumer group; resolves once partitions are assigned and delivery has begun. */
  async start(): Promise<void> {
    if (this.#kafka) throw new EventSourceConfigError('already started');
    const { config } = this;
    this.#kafka = new Kafka({
      clientId: config.clientId ?? `kafka-event-source-${config.functionName ?? config.consumerGroupId}`,
      brokers: config.brokers,
      logLevel: kafkaLogLevel.WARN,
      logCreator: () => (entry: LogEntry) => this.#kafkajsLog(entry),
      ...config.kafka,
    });
    await this.#resolveStartOffsets(this.#kafka);

    const consumer = this.#kafka.consumer({
      groupId: config.consumerGroupId,
      sessionTimeout: 6_000,
      heartbeatInterval: 1_000,
      maxWaitTimeInMs: 500,
      allowAutoTopicCreation: false,
      ...config.consumer,
    });
    this.#consumer = consumer;

    let joined: () => void = () => {};
    const firstJoin = new Promise<void>((resolve) => (joined = resolve));
    consumer.on(consumer.events.GROUP_JOIN, ({ payload }) => {
      this.#onGroupJoin(payload.memberAssignment[config.topic] ?? []);
      joined();
    });
    consumer.on(consumer.events.CRASH, ({ payload }) => {
      this.#log('error', 'consumer crashed', { error: payload.error.message, restart: payload.restart });
    });

    await consumer.connect();
    await consumer.subscribe({ topic: config.topic, fromBeginning: this.#position === 'TRIM_HORIZON' });
    await consumer.run({
      autoCommit: false,
      eachBatchAutoResolve: false,
      eachBatch: (payload) => this.#onBatch(payload),
    });
    const joinTimeoutMs = config.joinTimeoutMs ?? defaults.joinTimeoutMs;
    let timer: NodeJS.Timeout | undefined;
    try {
      await Promise.race([
        firstJoin,
        new Promise<never>((_, reject) => {
          timer = setTimeout(
            () => reject(new Error(`consumer group ${config.consumerGroupId} not joined after ${joinTimeoutMs} ms`)),
            joinTimeoutMs,
          );
        }),
      ]);
    } catch (error) {
      await consumer.disconnect().catch(() => {});
      throw error;
    } finally {
      clearTimeout(timer);
    }
    this.#loop = this.#deliverLoop();
    this.#log('info', 'event source started', {
      brokers: config.brokers,
      batchSize: this.#batchSize,
      batchingWindowMs: this.#windowMs,
      startingPosition: this.#position,
      retryLimit: this.#retryLimit,
      onFailureTopic: config.onFailure?.topic,
    });
  }

  /**
   * Stops fetching, lets an in-flight invoke finish (and commits it if it succeeded; a failed one
   * is not retried and stays uncommitted), then leaves the group. Records not yet sent stay
   * uncommitted and are delivered again next time, by a real broker (the embedded one keeps nothing
   * across restarts).
   */
  stop(): Promise<void> {
    this.#stopped ??= (async () => {
      this.#stopping = true;
      this.#wake();
      await this.#loop;
      await this.#consumer?.disconnect().catch((error: unknown) => {
        this.#log('warn', 'consumer disconnect failed', describeError(error));
      });
      await this.#producer?.disconnect().catch(() => {});
      this.#log('info', 'event source stopped', { undelivered: this.#pending.length });
    })();
    return this.#stopped;
  }

  get config(): Readonly<KafkaEventSourceConfig> {
    return this.#config;
  }

  get #position(): StartingPosition {
    return this.#config.startingPosition ?? defaults.startingPosition;
  }

  // --- starting position -------------------------------------------------------------------

  async #resolveStartOffsets(kafka: Kafka): Promise<void> {
    const position = this.#position;
    // TRIM_HORIZON is kafkajs' fromBeginning; the others need explicit offsets, resolved before
    // joining so that records produced after start() resolves are never skipped.
    if (position === 'TRIM_HORIZON') return;
    const { topic, consumerGroupId } = this.#config;
    const admin = kafka.admin();
    await admin.connect();
    try {
      const [committed] = await admin.fetchOffsets({ groupId: consumerGroupId, topics: [topic] });
      const fresh = (committed?.partitions ?? []).filter((p) => Number(p.offset) < 0).map((p) => p.partition);
      if (fresh.length === 0) return;
      const watermarks = new Map((await admin.fetchTopicOffsets(topic)).map((p) => [p.partition, p]));
      if (position === 'LATEST') {
        for (const partition of fresh) this.#startOffsets.set(partition, watermarks.get(partition)?.high ?? '0');
        return;
      }
      const timestampMs = Math.round((this.#config.startingPositionTimestamp ?? 0) * 1000);
      const byTimestamp = new Map(
        (await admin.fetchTopicOffsetsByTimestamp(topic, timestampMs)).map((p) => [p.partition, p.offset]),
      );
      for (const partition of fresh) {
        const low = watermarks.get(partition)?.low ?? '0';
        const high = watermarks.get(partition)?.high ?? '0';
        const found = byTimestamp.get(partition) ?? high;
        if (BigInt(found) < BigInt(high)) {
          this.#startOffsets.set(partition, found);
        } else if (BigInt(low) < BigInt(high)) {
          // "Nothing at or after T" – or a broker that cannot look offsets up by time (the embedded
          // mock answers -1 to every such query). Scan from the start, skipping older records:
          // the same first offset a real ListOffsets would give.
          this.#startOffsets.set(partition, low);
          this.#skipBefore.set(partition, timestampMs);
        } else {
          this.#startOffsets.set(partition, high);
        }
      }
    } finally {
      await admin.disconnect();
    }
    this.#log('debug', 'start offsets resolved', { startOffsets: Object.fromEntries(this.#startOffsets) });
  }

  #onGroupJoin(assigned: number[]): void {
    const mine = new Set(assigned);
    this.#joins += 1;
    // A partition kept through the rebalance was owned by no one else meanwhile; a new one may have been.
    for (const partition of [...this.#ownedSince.keys()]) if (!mine.has(partition)) this.#ownedSince.delete(partition);
    for (const partition of mine) if (!this.#ownedSince.has(partition)) this.#ownedSince.set(partition, this.#joins);
    // Partitions taken away: the new owner reads them from the committed offset.
    const kept = this.#pending.filter((r) => mine.has(r.partition));
    if (kept.length !== this.#pending.length) {
      this.#pending = kept;
      this.#pendingBytes = kept.reduce((sum, r) => sum + r.bytes, 0);
    }
    for (const partition of [...this.#nextOffset.keys()]) if (!mine.has(partition)) this.#nextOffset.delete(partition);
    for (const [partition, offset] of this.#startOffsets) {
      if (mine.has(partition)) this.#consumer?.seek({ topic: this.#config.topic, partition, offset });
    }
    this.#log('info', 'partitions assigned', { partitions: assigned });
    // Fetching paused for a full buffer resumes only after a batch is taken: the records that
    // filled it may just have been dropped with the partitions taken away.
    this.#resumeFetchingIfRoom();
  }

  // --- fetching ------------------------------------------------------------------------------

  async #onBatch({ batch, resolveOffset, heartbeat, isRunning, isStale }: EachBatchPayload): Promise<void> {
    const { partition } = batch;
    for (const message of batch.messages) {
      if (this.#stopping || !isRunning() || isStale()) break;
      const offset = BigInt(message.offset);
      const expected = this.#nextOffset.get(partition);
      if (expected !== undefined && offset < expected) {
        resolveOffset(message.offset); // already buffered, in flight or committed
        continue;
      }
      if (this.#pending.length >= this.#maxBuffered) {
        // The rest stays unresolved, so kafkajs fetches it again after resume().
        this.#pauseFetching();
        break;
      }
      this.#nextOffset.set(partition, offset + 1n);
      resolveOffset(message.offset);
      const skipBefore = this.#skipBefore.get(partition);
      if (skipBefore !== undefined) {
        if (Number(message.timestamp) < skipBefore) continue;
        this.#skipBefore.delete(partition);
      }
      const record = toAwsKafkaRecord(batch.topic, partition, message);
      const bytes = recordJsonBytes(record);
      this.#pending.push({ partition, message, record, bytes, arrivedAt: Date.now(), join: this.#joins });
      this.#pendingBytes += bytes;
    }
    this.#wake();
    await heartbeat();
  }

  #pauseFetching(): void {
    if (this.#paused) return;
    this.#paused = true;
    this.#consumer?.pause([{ topic: this.#config.topic }]);
    this.#log('debug', 'buffer full, fetching paused', { buffered: this.#pending.length });
  }

  #resumeFetchingIfRoom(): void {
    if (!this.#paused || this.#pending.length >= this.#maxBuffered / 2) return;
    this.#paused = false;
    this.#consumer?.resume([{ topic: this.#config.topic }]);
  }

  // --- delivering ----------------------------------------------------------------------------

  #wake(): void {
    const wakeUp = this.#wakeUp;
    this.#wakeUp = undefined;
    wakeUp?.();
  }

  /** Sleeps up to `ms`, or less when new records arrive or stop() is called. */
  #sleepOrWake(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const done = (): void => {
        clearTimeout(timer);
        resolve();
      };
      const timer = setTimeout(done, ms);
      this.#wakeUp = done;
    });
  }

  /** Sleeps `ms` unless stop() is called. */
  async #sleepUnlessStopping(ms: number): Promise<void> {
    const until = Date.now() + ms;
    while (!this.#stopping && Date.now() < until) await this.#sleepOrWake(until - Date.now());
  }

  #batchIsDue(now: number): boolean {
    const first = this.#pending[0];
    if (!first) return false;
    return (
      this.#pending.length >= this.#batchSize ||
      this.#pendingBytes >= this.#maxRecordBytes ||
      now >= first.arrivedAt + this.#windowMs
    );
  }

  async #deliverLoop(): Promise<void> {
    while (!this.#stopping) {
      const now = Date.now();
      const first = this.#pending[0];
      if (!this.#batchIsDue(now)) {
        await this.#sleepOrWake(first ? first.arrivedAt + this.#windowMs - now : 60_000);
        continue;
      }
      const batch = this.#takeBatch();
      this.#resumeFetchingIfRoom();
      try {
        await this.#deliver(batch);
      } catch (error) {
        // Only a bug lands here; never let it end the loop silently.
        this.#log('error', 'delivery failed unexpectedly', describeError(error));
      }
    }
  }

  /** The oldest pending records: at most batchSize, within the payload limit (at least one). */
  #takeBatch(): BufferedRecord[] {
    let count = 0;
    let bytes = 0;
    for (const r of this.#pending) {
      if (count >= this.#batchSize || (count > 0 && bytes + r.bytes > this.#maxRecordBytes)) break;
      count += 1;
      bytes += r.bytes;
    }
    const batch = this.#pending.splice(0, count);
    this.#pendingBytes -= bytes;
    return batch;
  }

  async #deliver(batch: BufferedRecord[]): Promise<void> {
    const event = buildKafkaEvent(this.#source, batch.map((r) => r.record));
    const batchId = randomUUID();
    const fields = { batchId, records: batch.length, offsets: offsetRanges(this.#config.topic, batch) };
    for (let attempt = 1; ; attempt += 1) {
      const startedAt = Date.now();
      try {
        await this.#config.invoke(event);
      } catch (error) {
        const retriesDone = attempt - 1;
        const described = describeError(error);
        this.#log('warn', 'invoke failed', { ...fields, attempt, durationMs: Date.now() - startedAt, ...described });
        if (this.#stopping) {
          this.#log('warn', 'stopping: failed batch left uncommitted, it will be delivered again', fields);
          return;
        }
        if (this.#retryLimit >= 0 && retriesDone >= this.#retryLimit) {
          await this.#giveUp(batch, { ...described, attempts: attempt }, fields);
          return;
        }
        const delayMs = retryDelayMs(retriesDone, this.#config.retryBackoff);
        this.#log('info', 'retrying batch', { ...fields, retry: attempt, delayMs });
        await this.#sleepUnlessStopping(delayMs);
        if (this.#stopping) {
          this.#log('warn', 'stopping: failed batch left uncommitted, it will be delivered again', fields);
          return;
        }
        continue;
      }
      this.#log('info', 'batch delivered', { ...fields, attempt, durationMs: Date.now() - startedAt });
      await this.#commit(batch, fields);
      return;
    }
  }

  /** Retries are used up: dead-letter (or drop) the batch and move on. */
  async #giveUp(
    batch: BufferedRecord[],
    failure: { errorType: string; errorMessage: string; attempts: number },
    fields: Record<string, unknown>,
  ): Promise<void> {
    const destination = this.#config.onFailure?.topic;
    if (!destination) {
      this.#log('error', 'retries exhausted and no on-failure destination: batch discarded', { ...fields, ...failure });
      await this.#commit(batch, fields);
      return;
    }
    const full: BatchFailure = {
      ...failure,
      consumerGroupId: this.#config.consumerGroupId,
      functionName: this.#config.functionName,
      failedAt: new Date(),
    };
    const messages = batch.map((r) =>
      toEventSourceDeadLetter({ topic: this.#config.topic, partition: r.partition, message: r.message }, full),
    );
    // Never commit past records that did not reach the destination: keep trying, as AWS does.
    for (let attempt = 0; !this.#stopping; attempt += 1) {
      try {
        const producer = await this.#deadLetterProducer();
        await producer.send({ topic: destination, acks: -1, messages });
        this.#log('error', 'retries exhausted: batch sent to the on-failure topic', {
          ...fields,
          ...failure,
          onFailureTopic: destination,
        });
        await this.#commit(batch, fields);
        return;
      } catch (error) {
        this.#log('error', 'writing to the on-failure topic failed', { ...fields, onFailureTopic: destination, ...describeError(error) });
        await this.#sleepUnlessStopping(retryDelayMs(attempt, this.#config.retryBackoff));
      }
    }
  }

  async #deadLetterProducer(): Promise<Producer> {
    if (!this.#producer) {
      if (!this.#kafka) throw new Error('not started');
      // Not idempotent: the embedded broker cannot do it (DESIGN.md); duplicates are tolerated downstream.
      const producer = this.#kafka.producer({
        allowAutoTopicCreation: false,
        idempotent: false,
        createPartitioner: Partitioners.DefaultPartitioner,
      });
      await producer.connect();
      this.#producer = producer;
    }
    return this.#producer;
  }

  async #commit(batch: BufferedRecord[], fields: Record<string, unknown>): Promise<void> {
    const next = new Map<number, bigint>();
    const lost = new Set<number>();
    for (const r of batch) {
      // Taken away while this batch was in flight (even if given back since): another member may have
      // committed past it, and Kafka would accept our older offset over theirs. Theirs stands.
      const since = this.#ownedSince.get(r.partition);
      if (since === undefined || since > r.join) lost.add(r.partition);
      const offset = BigInt(r.message.offset) + 1n;
      if (offset > (next.get(r.partition) ?? -1n)) next.set(r.partition, offset);
    }
    for (const partition of lost) next.delete(partition);
    if (lost.size > 0) this.#log('warn', 'partitions reassigned during the batch: their offsets are not committed', { ...fields, partitions: [...lost] });
    if (next.size === 0) return;
    const offsets = [...next].map(([partition, offset]) => ({
      topic: this.#config.topic,
      partition,
      offset: offset.toString(),
    }));
    try {
      await this.#consumer?.commitOffsets(offsets);
      for (const { partition } of offsets) this.#startOffsets.delete(partition);
      this.#log('debug', 'offsets committed', { ...fields, committed: offsets });
    } catch (error) {
      // E.g. a rebalance took the partition: its new owner delivers these records again.
      this.#log('warn', 'offset commit failed; records may be delivered again', { ...fields, ...describeError(error) });
    }
  }

  #kafkajsLog({ level, label, log }: LogEntry): void {
    const { message, timestamp: _timestamp, logger: _logger, ...rest } = log as Record<string, unknown>;
    const ours: EventSourceLogLevel =
      level === kafkaLogLevel.ERROR ? 'error' : level === kafkaLogLevel.WARN ? 'warn' : level === kafkaLogLevel.INFO ? 'info' : 'debug';
    this.#log(ours, `kafkajs: ${String(message)}`, { kafkajs: { label, ...rest } });
  }
}

/** "topic-partition" → [first offset, last offset] of a batch, for logs. */
function offsetRanges(topic: string, batch: BufferedRecord[]): Record<string, [number, number]> {
  const ranges: Record<string, [number, number]> = {};
  for (const r of batch) {
    const key = `${topic}-${r.partition}`;
    const range = ranges[key];
    if (range) range[1] = r.record.offset;
    else ranges[key] = [r.record.offset, r.record.offset];
  }
  return ranges;
}

/** Creates and starts an event source; see KafkaEventSource. */
export async function startKafkaEventSource(config: KafkaEventSourceConfig): Promise<KafkaEventSource> {
  const source = new KafkaEventSource(config);
  await source.start();
  return source;
}
