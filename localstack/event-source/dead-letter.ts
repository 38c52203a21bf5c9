/**
 * What the emulator writes to the on-failure Kafka topic once a batch has used up its retries.
 *
 * AWS's Kafka on-failure destination ("kafka://topic") receives "the actual failed records along
 * with failure metadata"; AWS does not document the metadata layout. Here each failed record is
 * re-produced byte for byte (key, value, original headers) with extra headers, named like the
 * writer's own dead-letter headers (functions/writer/dead-letter.ts) so one tool reads both.
 */
import type { IHeaders, KafkaMessage, Message } from 'kafkajs';

/** Headers added to every dead-lettered record. */
export const eventSourceDeadLetterHeaders = {
  reason: 'dlq-reason',
  topic: 'dlq-original-topic',
  partition: 'dlq-original-partition',
  offset: 'dlq-original-offset',
  timestamp: 'dlq-original-timestamp',
  /** 'event-source-mapping': the function kept failing (the writer uses its own reasons). */
  source: 'dlq-source',
  errorType: 'dlq-error-type',
  attempts: 'dlq-attempts',
  consumerGroup: 'dlq-consumer-group',
  functionName: 'dlq-function',
  failedAt: 'dlq-failed-at',
} as const;

/** Why a batch was given up. */
export interface BatchFailure {
  errorType: string;
  errorMessage: string;
  /** Invocations made, the first one included. */
  attempts: number;
  consumerGroupId: string;
  functionName?: string;
  failedAt: Date;
}

/** A record as it was consumed. */
export interface ConsumedRecord {
  topic: string;
  partition: number;
  message: KafkaMessage;
}

const maxReasonChars = 1_000;

/** The failed record plus headers saying where it came from and why it failed. */
export function toEventSourceDeadLetter({ topic, partition, message }: ConsumedRecord, failure: BatchFailure): Message {
  const h = eventSourceDeadLetterHeaders;
  const headers: IHeaders = { ...(message.headers ?? {}) };
  const reason = `${failure.errorType}: ${failure.errorMessage}`.slice(0, maxReasonChars);
  headers[h.reason] = reason;
  headers[h.topic] = topic;
  headers[h.partition] = String(partition);
  headers[h.offset] = message.offset;
  headers[h.timestamp] = message.timestamp;
  headers[h.source] = 'event-source-mapping';
  headers[h.errorType] = failure.errorType;
  headers[h.attempts] = String(failure.attempts);
  headers[h.consumerGroup] = failure.consumerGroupId;
  if (failure.functionName) headers[h.functionName] = failure.functionName;
  headers[h.failedAt] = failure.failedAt.toISOString();
  return { key: message.key, value: message.value, headers, timestamp: message.timestamp };
}
