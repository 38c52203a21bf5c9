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

/** Every record of the batch, in topic-partition then offset order. */
export function batchRecords(event: MSKEvent): MSKRecord[] {
  return Object.keys(event.records ?? {})
    .sort()
    .flatMap((key) => [...(event.records[key] ?? [])].sort((a, b) => Number(a.offset) - Number(b.offset)));
}

/**
 * A token that names the batch by its offset ranges: a redelivered batch has the same records,
 * so the same token, and ClickHouse drops the repeated insert.
 */
export function deduplicationToken(records: MSKRecord[]): string {
  const ranges = new Map<string, { first: number; last: number }>();
  for (const record of records) {
    const key = `${record.topic}-${record.partition}`;
    const offset = Number(record.offset);
    const range = ranges.get(key);
    if (!range) ranges.set(key, { first: offset, last: offset });
    else {
      range.first = Math.min(range.first, offset);
      range.last = Math.max(range.last, offset);
    }
  }
  return [...ranges.entries()].sort(([a], [b]) => a.localeCompare(b)).map(([key, r]) => `${key}:${r.first}-${r.last}`).join(',');
}
