/**
 * What the emulator writes to the on-failure Kafka topic once a batch has used up its retries.
 *
 * AWS's Kafka on-failure destination ("kafka://topic") receives a JSON document per message: the
 * invocation record plus the failed Kafka event (scripts/aws-on-failure-record.ts, which
 * `npm run redrive` reads too). The emulator does not write that layout: each failed record is
 * re-produced byte for byte (key, value, original headers) with extra headers, the writer's own
 * dead-letter headers (functions/writer/dead-letter.ts) and more, so one layout serves both.
 */
import type { IHeaders, KafkaMessage, Message } from 'kafkajs';
import { deadLetterHeaderPrefix, deadLetterHeaders } from '../../functions/writer/dead-letter.ts';

/** Headers added to every dead-lettered record. */
export const eventSourceDeadLetterHeaders = {
  ...deadLetterHeaders,
  timestamp: `${deadLetterHeaderPrefix}original-timestamp`,
  /** 'event-source-mapping': the function kept failing (the writer uses its own reasons). */
  source: `${deadLetterHeaderPrefix}source`,
  errorType: `${deadLetterHeaderPrefix}error-type`,
  attempts: `${deadLetterHeaderPrefix}attempts`,
  consumerGroup: `${deadLetterHeaderPrefix}consumer-group`,
  functionName: `${deadLetterHeaderPrefix}function`,
  failedAt: `${deadLetterHeaderPrefix}failed-at`,
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
