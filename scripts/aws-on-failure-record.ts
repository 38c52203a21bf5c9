/**
 * What AWS Lambda writes to a Kafka on-failure destination (`kafka://topic`), as AWS documents it:
 * https://docs.aws.amazon.com/lambda/latest/dg/kafka-on-failure-destination.html#kafka-ofd-record-format
 *
 * Each message's value is one JSON document: the invocation record AWS also sends to SQS/SNS/S3
 * destinations (requestContext, responseContext, version, timestamp, KafkaBatchInfo) plus
 * `payload`, the Kafka event the function failed on (base64 key and value, headers as byte arrays,
 * records grouped by "topic-partition"). The page does not say whether one message carries one
 * failed record or the whole batch (its example has one record and `batchSize` 1), nor which
 * Kafka headers the message has: so every record of `payload` is read, and `npm run redrive`
 * replays a record once per run however many messages carry it.
 */
import type { IHeaders, KafkaMessage } from 'kafkajs';
import type { MSKRecord } from 'aws-lambda';
import * as z from '../shared/zod.ts';

const awsKafkaRecord = z.object({
  topic: z.string(),
  partition: z.int(),
  offset: z.int(),
  timestamp: z.number(),
  timestampType: z.enum(['CREATE_TIME', 'LOG_APPEND_TIME']),
  key: z.optional(z.string()),
  value: z.nullish(z.string()),
  headers: z._default(z.array(z.record(z.string(), z.array(z.int()))), []),
});

/** The documented on-failure record; fields redrive does not use are kept but not required. */
const awsOnFailureRecord = z.object({
  requestContext: z.object({
    condition: z.string(),
    approximateInvokeCount: z.optional(z.number()),
    functionArn: z.optional(z.string()),
    requestId: z.optional(z.string()),
  }),
  responseContext: z.optional(z.object({ functionError: z.optional(z.string()), statusCode: z.optional(z.number()) })),
  version: z.string(),
  timestamp: z.optional(z.string()),
  KafkaBatchInfo: z.record(z.string(), z.unknown()),
  payload: z.object({
    eventSource: z.enum(['aws:kafka', 'SelfManagedKafka']),
    records: z.record(z.string(), z.array(awsKafkaRecord)),
  }),
});

export type AwsOnFailureRecord = z.infer<typeof awsOnFailureRecord>;

/** One failed record out of an on-failure message, ready to be checked and produced again. */
export interface FailedRecord {
  /** As the writer receives it, so the writer's own decoder decides. */
  record: MSKRecord;
  /** `<topic>/<partition>/<offset>` where the record was first read. */
  origin: string;
  /** Why AWS gave it up, in words: the condition and the function's error kind. */
  reason: string;
  key: Buffer | null;
  value: Buffer | null;
  headers: IHeaders;
}

/** The on-failure record in a message's value, or undefined when the value is not one. */
export function parseAwsOnFailureRecord(value: Buffer | null): AwsOnFailureRecord | undefined {
  if (!value || value[0] !== 0x7b /* { */) return undefined;
  let json: unknown;
  try {
    json = JSON.parse(value.toString('utf8'));
  } catch {
    return undefined;
  }
  const parsed = awsOnFailureRecord.safeParse(json);
  return parsed.success ? parsed.data : undefined;
}

/** Every failed record an AWS on-failure message carries, in topic-partition and offset order. */
export function awsFailedRecords(message: KafkaMessage): FailedRecord[] | undefined {
  const failure = parseAwsOnFailureRecord(message.value);
  if (!failure) return undefined;
  const { condition } = failure.requestContext;
  const functionError = failure.responseContext?.functionError;
  const reason = `event source mapping: ${condition}${functionError ? ` (function error: ${functionError})` : ''}`;
  return Object.keys(failure.payload.records).sort().flatMap((group) =>
    [...failure.payload.records[group]!].sort((a, b) => a.offset - b.offset).map((record) => {
      const headers: IHeaders = {};
      for (const header of record.headers) {
        for (const [name, bytes] of Object.entries(header)) headers[name] = Buffer.from(bytes);
      }
      return {
        record: { ...record, key: record.key ?? '', value: record.value ?? '' },
        origin: `${record.topic}/${record.partition}/${record.offset}`,
        reason,
        key: record.key === undefined ? null : Buffer.from(record.key, 'base64'),
        value: record.value ? Buffer.from(record.value, 'base64') : null,
        headers,
      };
    }));
}
