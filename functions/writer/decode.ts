import { createHash } from 'node:crypto';
import type { MSKEvent, MSKRecord } from 'aws-lambda';
import type { AcceptedEvent, EventType } from '../../shared/events.ts';
import * as compiled from '../../shared/generated/accepted-event-validators.ts';
import { toClickHouseRow, type EventRow } from './rows.ts';

// Hand-written rather than @aws-lambda-powertools/kafka's kafkaConsumer (DESIGN.md's default): with
// these same compiled validators as its Standard Schema, it took 117 ms per 10,000 records against
// 29 ms here (it awaits per record and re-checks each value with a regex), and its JSON deserializer
// logs an unparsable value whole and passes it on as a string instead of failing the record.

/** Where a record sits in Kafka. */
export interface RecordPosition { topic: string; partition: number; offset: number }

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
 * The batch's insert_deduplication_token: its offset ranges and a digest of what is at those offsets
 * (each event's id, or a poison record's bytes). A redelivered batch has the same records, so the
 * same token, and ClickHouse drops the repeated insert. The digest keeps different events at reused
 * offsets (a recreated topic, a restarted in-memory broker) from being mistaken for a repeat and
 * dropped. Event ids, not whole values: the table keeps one row per id anyway, and hashing ids
 * costs a tenth as much on a 10,000-record batch. Records are added in batch order (batchRecords).
 */
class BatchToken {
  private readonly ranges: string[] = [];
  private readonly digested: (string | number)[] = [];
  private group: RecordPosition | undefined;
  private first = 0;

  /** One record, in batch order: its event id, or a poison record's bytes. */
  add(position: RecordPosition, what: string): void {
    if (!this.group || position.partition !== this.group.partition || position.topic !== this.group.topic) {
      this.closeGroup();
      this.first = position.offset;
    }
    this.group = position;
    this.digested.push(position.offset, what);
  }

  toString(): string {
    this.closeGroup();
    this.group = undefined;
    return `${this.ranges.join(',')}/${createHash('sha256').update(this.digested.join('\n')).digest('base64url').slice(0, 22)}`;
  }

  private closeGroup(): void {
    if (this.group) this.ranges.push(`${this.group.topic}-${this.group.partition}:${this.first}-${this.group.offset}`);
  }
}

/**
 * The whole batch in one pass, in batch order: its rows, its poison records and its token. Only
 * rows are kept, so a parsed event dies young instead of surviving to a second pass (GC).
 */
export function decodeBatch(event: MSKEvent): { records: number; rows: EventRow[]; poison: PoisonRecord[]; token: string } {
  const records = batchRecords(event);
  const rows: EventRow[] = [];
  const poison: PoisonRecord[] = [];
  const token = new BatchToken();
  for (const record of records) {
    const position = positionOf(record);
    const decoded = decodeValue(record.value ?? '');
    if (typeof decoded === 'string') {
      token.add(position, record.value ?? '');
      poison.push({ ok: false, position, record, reason: decoded });
    } else {
      token.add(position, decoded.event_id);
      rows.push(toClickHouseRow(decoded, position));
    }
  }
  return { records: records.length, rows, poison, token: token.toString() };
}
