import { createHash } from 'node:crypto';
import type { MSKEvent, MSKRecord } from 'aws-lambda';
import type { AcceptedEvent, EventType } from '../../shared/events.ts';
import * as compiled from '../../shared/generated/accepted-event-validators.ts';
import { toClickHouseRow, type EventRow, type RecordPosition } from './rows.ts';

// Hand-written rather than @aws-lambda-powertools/kafka's kafkaConsumer (DESIGN.md's default): with
// these same compiled validators as its Standard Schema, it took 117 ms per 10,000 records against
// 29 ms here (it awaits per record and re-checks each value with a regex), and its JSON deserializer
// logs an unparsable value whole and passes it on as a string instead of failing the record.


/** A record that cannot be written: it goes to the dead-letter topic with the reason. */
export interface PoisonRecord { ok: false; position: RecordPosition; record: MSKRecord; reason: string }
export type DecodedRecord = { ok: true; position: RecordPosition; event: AcceptedEvent } | PoisonRecord;

interface ValidationError { instancePath: string; keyword: string; message?: string; params: Record<string, unknown> }
type Validator = ((data: unknown) => boolean) & { errors?: ValidationError[] | null };

// The registry compiled to plain functions (scripts/generate-validators.ts): zod's checks cost
// ~3 us a record, a quarter of a 10,000-record batch's time next to its insert.
// Typed here: the generated module is unchecked JavaScript; this fails to compile when it lacks a type.
const validatorFor: (value: unknown) => Validator | undefined = compiled.validatorFor;
const knownTypes = Object.keys(compiled.validatorsByType satisfies Record<EventType, Validator>).join(', ');
const patternNames: Record<string, string> = compiled.patternNames;

/** Why a value is not an accepted event, in words for the dead-letter reason. */
function invalidReason(value: unknown): string | undefined {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) return 'invalid event: must be a JSON object';
  const validate = validatorFor(value);
  if (!validate) return `invalid event: type must be one of ${knownTypes}`;
  if (validate(value)) return undefined;
  const error = validate.errors?.[0];
  const field = error?.instancePath.slice(1).replaceAll('/', '.');
  const message = error?.keyword === 'pattern' ? `must be ${patternNames[String(error.params.pattern)] ?? 'well-formed'}` : error?.message ?? 'invalid';
  return `invalid event: ${field ? `${field} ` : ''}${message}`;
}

// One scratch buffer for every value: a Buffer per record is garbage that 10,000-record batches pay for in GC.
let scratch = Buffer.allocUnsafe(64 * 1024);
/** A record's base64 value as text. Exported for the bench, whose floor decodes as the writer does. */
export function fromBase64(base64: string): string {
  if (base64.length > scratch.length) scratch = Buffer.allocUnsafe(base64.length);
  return scratch.toString('utf8', 0, scratch.write(base64, 0, 'base64'));
}

/**
 * A record's base64 JSON value as an accepted event, or the reason it is not one (a string). No
 * wrapper object: this runs 10,000 times per batch.
 */
function decodeValue(base64: string): AcceptedEvent | string {
  let value: unknown;
  try {
    value = JSON.parse(fromBase64(base64));
  } catch {
    return 'value is not JSON';
  }
  return invalidReason(value) ?? (value as AcceptedEvent);
}

const positionOf = (record: MSKRecord): RecordPosition => ({ topic: record.topic, partition: record.partition, offset: Number(record.offset) });

/** Decodes one AWS Kafka record (base64 JSON value) and validates it against the registry. */
export function decodeRecord(record: MSKRecord): DecodedRecord {
  const position = positionOf(record);
  const decoded = decodeValue(record.value ?? '');
  return typeof decoded === 'string' ? { ok: false, position, record, reason: decoded } : { ok: true, position, event: decoded };
}

/** Every record of the batch, in topic-partition then offset order. */
export function batchRecords(event: MSKEvent): MSKRecord[] {
  const records: MSKRecord[] = [];
  for (const key of Object.keys(event.records ?? {}).sort()) {
    const group = event.records[key] ?? [];
    // AWS hands each partition's records in offset order: check before paying for a sort.
    const inOrder = group.every((record, i) => i === 0 || Number(group[i - 1]!.offset) < Number(record.offset));
    for (const record of inOrder ? group : [...group].sort((a, b) => Number(a.offset) - Number(b.offset))) records.push(record);
  }
  return records;
}

/**
 * The batch's insert_deduplication_token: its offset ranges and a digest of the records' bytes at
 * those offsets, as AWS handed them. A redelivered batch has the same records, so the same token,
 * and ClickHouse drops the repeated insert; the digest keeps different events at reused offsets (a
 * recreated topic) from being mistaken for a repeat and dropped. Made before any record is decoded,
 * so the insert can stream its rows as they are decoded. `records` in batch order (batchRecords).
 */
export function batchToken(records: readonly MSKRecord[]): string {
  const ranges: string[] = [];
  const digest = createHash('sha256');
  let group: MSKRecord | undefined;
  let first = 0;
  const closeGroup = () => {
    if (group) ranges.push(`${group.topic}-${group.partition}:${first}-${group.offset}`);
  };
  for (const record of records) {
    if (!group || record.partition !== group.partition || record.topic !== group.topic) {
      closeGroup();
      first = Number(record.offset);
    }
    group = record;
    digest.update(`${record.offset}\n`);
    digest.update(record.value ?? '');
    digest.update('\n');
  }
  closeGroup();
  return `${ranges.join(',')}/${digest.digest('base64url').slice(0, 22)}`;
}

/**
 * The batch's rows in batch order, each decoded when it is pulled (the insert's stream pulls them
 * as ClickHouse takes them); a poison record goes to `poison` instead. A parsed event dies young:
 * only its row is kept, and only until it is sent.
 */
export function* decodeRows(records: readonly MSKRecord[], poison: PoisonRecord[]): Generator<EventRow, void, undefined> {
  for (const record of records) {
    const position = positionOf(record);
    const decoded = decodeValue(record.value ?? '');
    if (typeof decoded === 'string') poison.push({ ok: false, position, record, reason: decoded });
    else yield toClickHouseRow(decoded, position);
  }
}

/** The whole batch at once: its rows, its poison records and its token (tests and the bench). */
export function decodeBatch(event: MSKEvent): { records: number; rows: EventRow[]; poison: PoisonRecord[]; token: string } {
  const records = batchRecords(event);
  const poison: PoisonRecord[] = [];
  const rows = [...decodeRows(records, poison)];
  return { records: records.length, rows, poison, token: batchToken(records) };
}
