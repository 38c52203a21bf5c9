/**
 * Local stand-in for AWS Lambda's Kafka event source mapping (ESM), for `msk` and `kafka` events.
 *
 * What it does, as AWS does:
 * - one consumer group (the configured ConsumerGroupId) on one topic;
 * - an event holds at most `batchSize` records (and stays under Lambda's 6 MB payload), collected
 *   for at most the batching window; records of several partitions share one event, grouped
 *   under "topic-partition", each partition in offset order (batching.ts, aws-kafka-event.ts);
 * - the function is invoked synchronously; offsets are committed only after it succeeded (commit.ts);
 * - a failed batch is retried with exponential backoff, `maximumRetryAttempts` times (-1: forever;
 *   AWS caps -1 at 10 when an on-failure destination is set, and so does this; retry.ts);
 * - retries used up: the records go to the on-failure Kafka topic (see dead-letter.ts), or with no
 *   destination are discarded with an error log (AWS drops them too), and the offsets are committed;
 * - startingPosition applies only to partitions the group has no committed offset for (start-offsets.ts).
 *
 * How: kafkajs eachBatch with auto-resolve and auto-commit off. Fetched records are resolved
 * (kafkajs' in-memory fetch position) as they are buffered, so fetching continues while a batch
 * is invoked; Kafka only learns an offset through the explicit commit after a successful invoke.
 * One event is in flight at a time, so per-partition order holds trivially. The buffer is bounded:
 * when full, fetching pauses. Rebalances: rebalance.ts. This class only wires those units to kafkajs.
 */
import { randomUUID } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import { Kafka, logLevel as kafkaLogLevel, Partitioners, type Consumer, type EachBatchPayload } from 'kafkajs';
import { whileTopicUnknown } from '../../shared/kafka-topic-wait.ts';
import { createSender, type Sender } from '../../shared/kafka-sender.ts';
import { LocalStackError } from '../errors.ts';
import { buildKafkaEvent, recordJsonBytes, toAwsKafkaRecord } from './aws-kafka-event.ts';
import { Backpressure, offsetRanges, RecordBuffer, type BufferedRecord } from './batching.ts';
import { planCommit } from './commit.ts';
import { resolveEventSourceSettings, type EventSourceSettings, type KafkaEventSourceConfig } from './config.ts';
import { toEventSourceDeadLetter, type BatchFailure } from './dead-letter.ts';
import { eventSourceLogger, fromKafkajsLog, type EventSourceLogLevel } from './log.ts';
import { PartitionOwnership } from './rebalance.ts';
import { afterFailedAttempt, describeError, retryDelayMs } from './retry.ts';
import { resolveStartOffsets } from './start-offsets.ts';
import { WakeableSleep } from './wakeable-sleep.ts';

export { type KafkaEventSourceConfig, type StartingPosition } from './config.ts';
export { eventSourceLogger, type EventSourceLogger, type EventSourceLogLevel } from './log.ts';

type Fields = Record<string, unknown>;

/** Runs one event source mapping: start() joins the group and begins delivering; stop() ends it. */
export class KafkaEventSource {
  readonly #config: KafkaEventSourceConfig;
  readonly #settings: EventSourceSettings;
  readonly #log: (level: EventSourceLogLevel, msg: string, fields?: Fields) => void;
  readonly #buffer: RecordBuffer;
  readonly #backpressure: Backpressure;
  readonly #sleep = new WakeableSleep();
  #ownership = new PartitionOwnership();

  #kafka: Kafka | undefined;
  #consumer: Consumer | undefined;
  #sender: Sender | undefined;
  #loop: Promise<void> | undefined;
  #stopping = false;
  #stopped: Promise<void> | undefined;

  constructor(config: KafkaEventSourceConfig) {
    this.#config = config;
    const logger = config.logger ?? eventSourceLogger();
    const base = { function: config.functionName, topic: config.topic, groupId: config.consumerGroupId };
    this.#log = (level, msg, fields = {}) => logger(level, msg, { ...base, ...fields });
    this.#settings = resolveEventSourceSettings(config);
    this.#buffer = new RecordBuffer(this.#settings);
    this.#backpressure = new Backpressure(this.#settings.bufferCapacity, {
      pause: () => {
        this.#consumer?.pause([{ topic: config.topic }]);
        this.#log('debug', 'buffer full, fetching paused', { buffered: this.#buffer.size });
      },
      resume: () => this.#consumer?.resume([{ topic: config.topic }]),
    });
  }

  /** Joins the consumer group; resolves once partitions are assigned and delivery has begun. */
  async start(): Promise<void> {
    if (this.#kafka) throw new LocalStackError('already started');
    const { config } = this;
    const settings = this.#settings;
    this.#kafka = new Kafka({
      clientId: config.clientId ?? `kafka-event-source-${config.functionName ?? config.consumerGroupId}`,
      brokers: config.brokers,
      logLevel: kafkaLogLevel.WARN,
      logCreator: () => (entry) => {
        const { level, msg, fields } = fromKafkajsLog(entry);
        this.#log(level, msg, fields);
      },
      ...config.kafka,
    });
    this.#ownership = new PartitionOwnership(await this.#startOffsets(this.#kafka));

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
    await whileTopicUnknown(() => consumer.subscribe({ topic: config.topic, fromBeginning: settings.startingPosition === 'TRIM_HORIZON' }));
    await consumer.run({ autoCommit: false, eachBatchAutoResolve: false, eachBatch: (payload) => this.#onBatch(payload) });
    // The timer is cancelled once the join is decided; race() handles the AbortError that leaves behind.
    const joinDecided = new AbortController();
    try {
      await Promise.race([
        firstJoin,
        sleep(settings.joinTimeoutMs, undefined, { signal: joinDecided.signal }).then(() => {
          throw new LocalStackError(`consumer group ${config.consumerGroupId} not joined after ${settings.joinTimeoutMs} ms`);
        }),
      ]);
    } catch (error) {
      await consumer.disconnect().catch(() => {});
      throw error;
    } finally {
      joinDecided.abort();
    }
    this.#loop = this.#deliverLoop();
    this.#log('info', 'event source started', {
      brokers: config.brokers,
      batchSize: settings.batchSize,
      batchingWindowMs: settings.windowMs,
      startingPosition: settings.startingPosition,
      retryLimit: settings.retryLimit,
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
      this.#sleep.wake();
      await this.#loop;
      await this.#consumer?.disconnect().catch((error: unknown) => {
        this.#log('warn', 'consumer disconnect failed', describeError(error));
      });
      await this.#sender?.disconnect().catch(() => {});
      this.#log('info', 'event source stopped', { undelivered: this.#buffer.size });
    })();
    return this.#stopped;
  }

  get config(): Readonly<KafkaEventSourceConfig> {
    return this.#config;
  }

  async #startOffsets(kafka: Kafka): Promise<Map<number, string>> {
    if (this.#settings.startingPosition === 'TRIM_HORIZON') return new Map();
    const admin = kafka.admin();
    await admin.connect();
    try {
      const { topic, consumerGroupId: groupId, startingPositionTimestamp: timestampS } = this.#config;
      const offsets = await resolveStartOffsets(admin, { topic, groupId, position: this.#settings.startingPosition, timestampS });
      if (offsets.size > 0) this.#log('debug', 'start offsets resolved', { startOffsets: Object.fromEntries(offsets) });
      return offsets;
    } finally {
      await admin.disconnect();
    }
  }

  #onGroupJoin(assigned: number[]): void {
    const { owned, seeks } = this.#ownership.join(assigned);
    this.#buffer.keepPartitions(owned);
    for (const { partition, offset } of seeks) this.#consumer?.seek({ topic: this.#config.topic, partition, offset });
    this.#log('info', 'partitions assigned', { partitions: assigned });
    // Fetching paused for a full buffer resumes only after a batch is taken: the records that
    // filled it may just have been dropped with the partitions taken away.
    this.#backpressure.relieve(this.#buffer.size);
  }

  async #onBatch({ batch, resolveOffset, heartbeat, isRunning, isStale }: EachBatchPayload): Promise<void> {
    const { partition } = batch;
    for (const message of batch.messages) {
      if (this.#stopping || !isRunning() || isStale()) break;
      const offset = BigInt(message.offset);
      if (this.#ownership.isRefetch(partition, offset)) {
        resolveOffset(message.offset); // already buffered, in flight or committed
        continue;
      }
      // The rest stays unresolved, so kafkajs fetches it again after resume().
      if (this.#backpressure.isFull(this.#buffer.size)) break;
      this.#ownership.fetched(partition, offset);
      resolveOffset(message.offset);
      const record = toAwsKafkaRecord(batch.topic, partition, message);
      this.#buffer.push({ partition, message, record, bytes: recordJsonBytes(record), arrivedAt: Date.now(), join: this.#ownership.joins });
    }
    this.#sleep.wake();
    await heartbeat();
  }

  /** Sleeps `ms` unless stop() is called. */
  async #sleepUnlessStopping(ms: number): Promise<void> {
    const until = Date.now() + ms;
    while (!this.#stopping && Date.now() < until) await this.#sleep.sleep(until - Date.now());
  }

  async #deliverLoop(): Promise<void> {
    while (!this.#stopping) {
      const now = Date.now();
      if (!this.#buffer.isDue(now)) {
        await this.#sleep.sleep(this.#buffer.msUntilWindowCloses(now) ?? 60_000);
        continue;
      }
      const batch = this.#buffer.take();
      this.#backpressure.relieve(this.#buffer.size);
      try {
        await this.#deliver(batch);
      } catch (error) {
        // Only a bug lands here; never let it end the loop silently.
        this.#log('error', 'delivery failed unexpectedly', describeError(error));
      }
    }
  }

  async #deliver(batch: BufferedRecord[]): Promise<void> {
    const event = buildKafkaEvent(this.#settings.source, batch.map((r) => r.record));
    const fields = { batchId: randomUUID(), records: batch.length, offsets: offsetRanges(this.#config.topic, batch) };
    const leftForNextTime = () => this.#log('warn', 'stopping: failed batch left uncommitted, it will be delivered again', fields);
    for (let attempt = 1; ; attempt += 1) {
      const startedAt = Date.now();
      try {
        await this.#config.invoke(event);
      } catch (error) {
        const described = describeError(error);
        this.#log('warn', 'invoke failed', { ...fields, attempt, durationMs: Date.now() - startedAt, ...described });
        if (this.#stopping) return leftForNextTime();
        const next = afterFailedAttempt(attempt, this.#settings.retryLimit, this.#config.retryBackoff);
        if (next.action === 'give-up') return this.#giveUp(batch, { ...described, attempts: attempt }, fields);
        this.#log('info', 'retrying batch', { ...fields, retry: attempt, delayMs: next.delayMs });
        await this.#sleepUnlessStopping(next.delayMs);
        if (this.#stopping) return leftForNextTime();
        continue;
      }
      this.#log('info', 'batch delivered', { ...fields, attempt, durationMs: Date.now() - startedAt });
      return this.#commit(batch, fields);
    }
  }

  /** Retries are used up: dead-letter (or drop) the batch and move on. */
  async #giveUp(batch: BufferedRecord[], failure: Pick<BatchFailure, 'errorType' | 'errorMessage' | 'attempts'>, fields: Fields): Promise<void> {
    const destination = this.#config.onFailure?.topic;
    if (!destination) {
      this.#log('error', 'retries exhausted and no on-failure destination: batch discarded', { ...fields, ...failure });
      return this.#commit(batch, fields);
    }
    const full: BatchFailure = { ...failure, consumerGroupId: this.#config.consumerGroupId, functionName: this.#config.functionName, failedAt: new Date() };
    const messages = batch.map((r) => toEventSourceDeadLetter({ topic: this.#config.topic, partition: r.partition, message: r.message }, full));
    // Never commit past records that did not reach the destination: keep trying, as AWS does.
    for (let attempt = 0; !this.#stopping; attempt += 1) {
      try {
        await this.#deadLetterSender().send({ topic: destination, acks: -1, messages });
        this.#log('error', 'retries exhausted: batch sent to the on-failure topic', { ...fields, ...failure, onFailureTopic: destination });
        return this.#commit(batch, fields);
      } catch (error) {
        this.#log('error', 'writing to the on-failure topic failed', { ...fields, onFailureTopic: destination, ...describeError(error) });
        await this.#sleepUnlessStopping(retryDelayMs(attempt, this.#config.retryBackoff));
      }
    }
  }

  #deadLetterSender(): Sender {
    if (!this.#sender) {
      const kafka = this.#kafka;
      if (!kafka) throw new Error('not started');
      // Idempotent, as the functions' producers, and replaced after a failed send as theirs are (shared/kafka.ts).
      this.#sender = createSender(() => kafka.producer({
        allowAutoTopicCreation: false,
        idempotent: true,
        maxInFlightRequests: 1,
        createPartitioner: Partitioners.DefaultPartitioner,
      }));
    }
    return this.#sender;
  }

  async #commit(batch: BufferedRecord[], fields: Fields): Promise<void> {
    const plan = planCommit(batch, (partition, join) => this.#ownership.ownedSinceJoin(partition, join));
    if (plan.lost.length > 0) this.#log('warn', 'partitions reassigned during the batch: their offsets are not committed', { ...fields, partitions: plan.lost });
    if (plan.offsets.length === 0) return;
    const offsets = plan.offsets.map(({ partition, offset }) => ({ topic: this.#config.topic, partition, offset }));
    try {
      await this.#consumer?.commitOffsets(offsets);
      this.#ownership.committed(offsets.map((o) => o.partition));
      this.#log('debug', 'offsets committed', { ...fields, committed: offsets });
    } catch (error) {
      // E.g. a rebalance took the partition: its new owner delivers these records again.
      this.#log('warn', 'offset commit failed; records may be delivered again', { ...fields, ...describeError(error) });
    }
  }
}

/** Creates and starts an event source; see KafkaEventSource. */
export async function startKafkaEventSource(config: KafkaEventSourceConfig): Promise<KafkaEventSource> {
  const source = new KafkaEventSource(config);
  await source.start();
  return source;
}
