/**
 * The configuration of one event source mapping, AWS's defaults, and the checks AWS makes when a
 * mapping is created. Pure: resolveEventSourceSettings() turns a config into the numbers the
 * emulator runs with, or throws ConfigError.
 */
import type { ConsumerConfig, KafkaConfig } from 'kafkajs';
import { ConfigError } from '../../shared/errors.ts';
import type { AwsKafkaEvent, EventSourceKind } from './aws-kafka-event.ts';
import { bufferCapacity } from './batching.ts';
import type { EventSourceLogger } from './log.ts';
import { effectiveRetryLimit, type RetryBackoff } from './retry.ts';

export type StartingPosition = 'TRIM_HORIZON' | 'LATEST' | 'AT_TIMESTAMP';

export interface KafkaEventSourceConfig {
  /** Brokers to consume from (locally: the embedded Kafka, whatever serverless.yml says). */
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
  /** Consumer tuning; the defaults (6 s session, 1 s heartbeats) make local groups settle quickly. */
  consumer?: Partial<Omit<ConsumerConfig, 'groupId'>>;
  /** Extra kafkajs client settings (ssl, sasl, …). */
  kafka?: Partial<Omit<KafkaConfig, 'brokers'>>;
  /** Event payload limit. Default: Lambda's 6 MB synchronous invoke limit. */
  maxPayloadBytes?: number;
  /** How long start() waits for the first group join. Default 30 s. */
  joinTimeoutMs?: number;
}

/** What the emulator runs with, every default applied. */
export interface EventSourceSettings {
  readonly source: EventSourceKind;
  readonly batchSize: number;
  readonly windowMs: number;
  /** Bytes of records one event may carry. */
  readonly maxBatchBytes: number;
  /** Retries after the first failure; -1: no limit. */
  readonly retryLimit: number;
  /** Records buffered at most before fetching pauses. */
  readonly bufferCapacity: number;
  readonly startingPosition: StartingPosition;
  readonly joinTimeoutMs: number;
}

const defaults = {
  batchSize: 100,
  maximumBatchingWindowSeconds: 0.5,
  startingPosition: 'TRIM_HORIZON' as StartingPosition,
  maximumRetryAttempts: -1,
  maxPayloadBytes: 6 * 1024 * 1024,
  joinTimeoutMs: 30_000,
};

// Room for the event's own keys (eventSource, eventSourceArn, bootstrapServers, "topic-partition" keys).
const envelopeReserveBytes = 64 * 1024;

/** Applies the defaults and refuses what AWS refuses, naming the setting. */
export function resolveEventSourceSettings(config: KafkaEventSourceConfig): EventSourceSettings {
  const bootstrapServers = config.bootstrapServers ?? config.brokers.join(',');
  let source: EventSourceKind;
  if (config.kind === 'msk') {
    if (!config.eventSourceArn) throw new ConfigError('an msk event source needs eventSourceArn');
    source = { kind: 'msk', eventSourceArn: config.eventSourceArn, bootstrapServers };
  } else {
    source = { kind: 'kafka', bootstrapServers };
  }
  if (config.brokers.length === 0) throw new ConfigError('no brokers given');
  const batchSize = config.batchSize ?? defaults.batchSize;
  if (!Number.isInteger(batchSize) || batchSize < 1) {
    throw new ConfigError(`batchSize must be a positive integer, got ${config.batchSize}`);
  }
  const retryLimit = effectiveRetryLimit(config.maximumRetryAttempts ?? defaults.maximumRetryAttempts, config.onFailure !== undefined);
  if (!Number.isInteger(retryLimit) || retryLimit < -1) {
    throw new ConfigError(`maximumRetryAttempts must be an integer >= -1, got ${config.maximumRetryAttempts}`);
  }
  const startingPosition = config.startingPosition ?? defaults.startingPosition;
  if (startingPosition === 'AT_TIMESTAMP' && config.startingPositionTimestamp === undefined) {
    throw new ConfigError('AT_TIMESTAMP needs startingPositionTimestamp (Unix seconds)');
  }
  if (config.onFailure?.topic === config.topic) {
    // AWS refuses this too: a failing record would loop forever.
    throw new ConfigError('the on-failure topic must differ from the source topic');
  }
  return {
    source,
    batchSize,
    windowMs: Math.max(0, (config.maximumBatchingWindowSeconds ?? defaults.maximumBatchingWindowSeconds) * 1000),
    maxBatchBytes: (config.maxPayloadBytes ?? defaults.maxPayloadBytes) - envelopeReserveBytes,
    retryLimit,
    bufferCapacity: bufferCapacity(batchSize),
    startingPosition,
    joinTimeoutMs: config.joinTimeoutMs ?? defaults.joinTimeoutMs,
  };
}
