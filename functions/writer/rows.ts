import type { AcceptedEvent, EventField } from '../../shared/events.ts';
import { eventFieldColumns, eventFieldValues } from '../../shared/generated/event-columns.ts';

/** Where a record sits in Kafka. */
export interface RecordPosition { topic: string; partition: number; offset: number }

// The field columns come from the registry (`npm run generate`), so a new event type's fields reach
// the table with no edit here. These fail to compile when the generated list and the registry
// disagree: a field with no column (generate was not run), or a column whose field is gone.
type GeneratedField = (typeof eventFieldColumns)[number]['field'];
const everyFieldHasAColumn: [Exclude<EventField, GeneratedField>] extends [never] ? true : { fieldsWithoutColumn: Exclude<EventField, GeneratedField> } = true;
const everyColumnHasAField: [Exclude<GeneratedField, EventField>] extends [never] ? true : { columnsWithoutField: Exclude<GeneratedField, EventField> } = true;
void everyFieldHasAColumn;
void everyColumnHasAField;
// A field's value goes to its column as is (or as an instant, for a client time): only scalars can.
type FieldValue = AcceptedEvent extends infer E ? (E extends unknown ? E[keyof E] : never) : never;
const everyFieldIsScalar: [Exclude<FieldValue, string | number | undefined>] extends [never] ? true : { unstorableValues: Exclude<FieldValue, string | number | undefined> } = true;
void everyFieldIsScalar;

/** Where each row came from in Kafka, after the fields. */
const kafkaColumns = ['kafka_topic', 'kafka_partition', 'kafka_offset'] as const;

/** A column of `events` the writer fills. */
export type EventColumn = (typeof eventFieldColumns)[number]['column'] | (typeof kafkaColumns)[number];
/** One value of a row: a field a type lacks is NULL (ClickHouse stores a column's DEFAULT where it has one). */
export type ColumnValue = string | number | null;

/**
 * The `events` columns the writer fills, in the order of each row: rows go as JSONCompactEachRow,
 * arrays under this column list, which ClickHouse parses faster than objects (no key to match a
 * row) and which is ~40% fewer bytes on the wire. Never empty, as the client's `columns` type
 * asks: the Kafka columns close it (TypeScript cannot see that past the leading spread).
 */
export const eventColumns = [...eventFieldColumns.map((c) => c.column), ...kafkaColumns] as readonly EventColumn[] as readonly [EventColumn, ...EventColumn[]];

/** One row of the `events` table, in `eventColumns` order. */
export type EventRow = ColumnValue[];

/** Maps an accepted event to its ClickHouse row; fields a type lacks are NULL. */
export function toClickHouseRow(event: AcceptedEvent, position: RecordPosition): EventRow {
  const row = eventFieldValues(event as Partial<Record<EventField, string | number>>);
  row.push(position.topic, position.partition, position.offset);
  return row;
}

/** A row as an object keyed by column (for JSONEachRow and for reading in tests). */
export function rowObject(row: EventRow): Record<EventColumn, ColumnValue> {
  return Object.fromEntries(eventColumns.map((column, i) => [column, row[i] ?? null])) as Record<EventColumn, ColumnValue>;
}

/**
 * Rows as JSONCompactEachRow text, in chunks of about `chunkChars`: the insert's body as a stream
 * of a few dozen writes, not one per row (a write per row cost more than the decoding it overlaps).
 */
export function* jsonCompactChunks(rows: Iterable<EventRow>, chunkChars = 64 * 1024): Generator<string, void, undefined> {
  let chunk = '';
  for (const row of rows) {
    chunk += `${JSON.stringify(row)}\n`;
    if (chunk.length >= chunkChars) {
      yield chunk;
      chunk = '';
    }
  }
  if (chunk !== '') yield chunk;
}
