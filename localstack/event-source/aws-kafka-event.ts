/**
 * The event AWS Lambda's Kafka event source mapping hands to a function, built from kafkajs
 * messages. Pure functions: no Kafka, no clock.
 *
 * Shape (AWS docs "Using Lambda with Amazon MSK" / "… self-managed Apache Kafka"):
 *   { eventSource: 'aws:kafka' | 'SelfManagedKafka', eventSourceArn (MSK only),
 *     bootstrapServers: 'host:port,host:port',
 *     records: { '<topic>-<partition>': [{ topic, partition, offset, timestamp, timestampType,
 *                                          key?, value, headers: [{ name: number[] }] }] } }
 */
import type { KafkaMessage } from 'kafkajs';

/** One record as AWS delivers it: base64 key and value, headers as byte arrays. */
export interface AwsKafkaRecord {
  topic: string;
  partition: number;
  offset: number;
  timestamp: number;
  timestampType: 'CREATE_TIME' | 'LOG_APPEND_TIME';
  /** Absent when the Kafka record has no key (Powertools' decoder treats it as optional too). */
  key?: string;
  /** Base64; '' for a null value (tombstone), so `value` stays a string as @types/aws-lambda says. */
  value: string;
  headers: Record<string, number[]>[];
}

interface AwsKafkaEventBase {
  bootstrapServers: string;
  records: Record<string, AwsKafkaRecord[]>;
}

/** What an `msk` event delivers (aws-lambda's MSKEvent, with the key optional). */
export interface MskEvent extends AwsKafkaEventBase {
  eventSource: 'aws:kafka';
  eventSourceArn: string;
}

/** What a `kafka` (self-managed) event delivers (aws-lambda's SelfManagedKafkaEvent). */
export interface SelfManagedKafkaEvent extends AwsKafkaEventBase {
  eventSource: 'SelfManagedKafka';
}

export type AwsKafkaEvent = MskEvent | SelfManagedKafkaEvent;

/** Which of the two event flavours to build. */
export type EventSourceKind =
  | { kind: 'msk'; eventSourceArn: string; bootstrapServers: string }
  | { kind: 'kafka'; bootstrapServers: string };

/** Header values as kafkajs decodes them: repeated keys become arrays, null values stay null. */
type HeaderValue = Buffer | string | null | undefined;

// kafkajs keeps the batch's timestamp type on each message at runtime but not in its types.
interface MessageWithBatchContext {
  batchContext?: { timestampType?: number };
}

const LOG_APPEND_TIME = 1;

/** Bytes of a header value; a null header value becomes an empty array. */
function headerBytes(value: HeaderValue): number[] {
  if (value === null || value === undefined) return [];
  return [...(typeof value === 'string' ? Buffer.from(value) : value)];
}

/**
 * kafkajs headers (an object, repeated names merged into arrays) → AWS's list of one-entry
 * objects. One entry per value; repeated names keep their value order.
 */
export function toAwsHeaders(headers: KafkaMessage['headers']): Record<string, number[]>[] {
  const out: Record<string, number[]>[] = [];
  for (const [name, value] of Object.entries(headers ?? {})) {
    const values: HeaderValue[] = Array.isArray(value) ? value : [value as HeaderValue];
    for (const v of values) out.push({ [name]: headerBytes(v) });
  }
  return out;
}

/** One kafkajs message of `topic`/`partition` → the record AWS would deliver. */
export function toAwsKafkaRecord(topic: string, partition: number, message: KafkaMessage): AwsKafkaRecord {
  const timestampType =
    (message as KafkaMessage & MessageWithBatchContext).batchContext?.timestampType === LOG_APPEND_TIME
      ? 'LOG_APPEND_TIME'
      : 'CREATE_TIME';
  // Spread keeps AWS's key order: topic, partition, offset, timestamp, timestampType, key, value, headers.
  const key = message.key ? { key: message.key.toString('base64') } : {};
  return {
    topic,
    partition,
    offset: Number(message.offset),
    timestamp: Number(message.timestamp),
    timestampType,
    ...key,
    value: message.value ? message.value.toString('base64') : '',
    headers: toAwsHeaders(message.headers),
  };
}

/** The `records` key AWS groups a record under. */
export function recordGroupKey(topic: string, partition: number): string {
  return `${topic}-${partition}`;
}

/** Records (in delivery order) → the AWS event, grouped by "topic-partition" in first-seen order. */
export function buildKafkaEvent(source: EventSourceKind, records: readonly AwsKafkaRecord[]): AwsKafkaEvent {
  const grouped: Record<string, AwsKafkaRecord[]> = {};
  for (const record of records) {
    (grouped[recordGroupKey(record.topic, record.partition)] ??= []).push(record);
  }
  return source.kind === 'msk'
    ? { eventSource: 'aws:kafka', eventSourceArn: source.eventSourceArn, bootstrapServers: source.bootstrapServers, records: grouped }
    : { eventSource: 'SelfManagedKafka', bootstrapServers: source.bootstrapServers, records: grouped };
}

/** JSON size of a record inside an event, to keep an event under Lambda's 6 MB payload limit. */
export function recordJsonBytes(record: AwsKafkaRecord): number {
  // +1 for the comma between array elements.
  return Buffer.byteLength(JSON.stringify(record)) + 1;
}
