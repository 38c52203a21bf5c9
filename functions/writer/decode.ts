import { createHash } from 'node:crypto';
import type { MSKEvent, MSKRecord } from 'aws-lambda';
import { acceptedEvent, type AcceptedEvent } from '../../shared/events.ts';

/** Where a record sits in Kafka. */
export interface RecordPosition { topic: string; partition: number; offset: number }

export type DecodedRecord =
  | { ok: true; position: RecordPosition; event: AcceptedEvent }
  | { ok: false; position: RecordPosition; record: MSKRecord; reason: string };

/** Decodes one AWS Kafka record (base64 JSON value) and validates it against the registry. */
export function decodeRecord(record: MSKRecord): DecodedRecord {
  const position = { topic: record.topic, partition: record.partition, offset: Number(record.offset) };
  let value: unknown;
  try {
    value = JSON.parse(Buffer.from(record.value ?? '', 'base64').toString('utf8'));
  } catch {
    return { ok: false, position, record, reason: 'value is not JSON' };
  }
  const parsed = acceptedEvent.safeParse(value);
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    return { ok: false, position, record, reason: `invalid event: ${issue?.path.join('.') ?? ''} ${issue?.message ?? ''}`.trim() };
  }
  return { ok: true, position, event: parsed.data };
}

/** Kafka order: topic, partition, offset (plain comparisons: localeCompare is slow on 10,000 records). */
function byPosition(a: MSKRecord, b: MSKRecord): number {
  if (a.topic !== b.topic) return a.topic < b.topic ? -1 : 1;
  return a.partition - b.partition || Number(a.offset) - Number(b.offset);
}

/** Every record of the batch, in topic-partition then offset order. */
export function batchRecords(event: MSKEvent): MSKRecord[] {
  return Object.keys(event.records ?? {})
    .sort()
    .flatMap((key) => [...(event.records[key] ?? [])].sort((a, b) => Number(a.offset) - Number(b.offset)));
}

/**
 * A token that names the batch by its offset ranges and a digest of its values: a redelivered
 * batch has the same records, so the same token, and ClickHouse drops the repeated insert.
 * The digest keeps different data at reused offsets (a recreated topic, a restarted in-memory
 * broker) from being mistaken for a repeat and silently dropped.
 */
export function deduplicationToken(records: MSKRecord[]): string {
  const ranges = new Map<string, { first: number; last: number }>();
  const digest = createHash('sha256');
  for (const record of [...records].sort(byPosition)) {
    const key = `${record.topic}-${record.partition}`;
    const offset = Number(record.offset);
    const range = ranges.get(key);
    if (!range) ranges.set(key, { first: offset, last: offset });
    else range.last = offset;
    digest.update(`${key}:${offset}:${record.value ?? ''}\n`);
  }
  const offsets = [...ranges.entries()].map(([key, r]) => `${key}:${r.first}-${r.last}`).join(',');
  return `${offsets}/${digest.digest('base64url').slice(0, 22)}`;
}
