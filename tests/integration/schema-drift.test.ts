import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { AnySchemaObject } from 'ajv';
import { eventFields, type EventFieldSpec } from '../../scripts/generate-validators.ts';
import { eventColumns } from '../../functions/writer/rows.ts';
import { migratedDatabase, stackEnv } from '../setup/context.ts';

// The registry (shared/events.ts) against the table the migrations build, read from ClickHouse
// itself: every field needs a column that can hold each of its values, and every column the writer
// does not fill needs a DEFAULT (else its field is gone and the column silently fills with NULL).

interface Column { name: string; type: string; default_type: string }

const integerRanges: Record<string, [number, number]> = {
  UInt8: [0, 2 ** 8 - 1], UInt16: [0, 2 ** 16 - 1], UInt32: [0, 2 ** 32 - 1], UInt64: [0, Number.MAX_SAFE_INTEGER],
  Int8: [-(2 ** 7), 2 ** 7 - 1], Int16: [-(2 ** 15), 2 ** 15 - 1], Int32: [-(2 ** 31), 2 ** 31 - 1], Int64: [Number.MIN_SAFE_INTEGER, Number.MAX_SAFE_INTEGER],
};

/** The column type without LowCardinality / Nullable, and whether it holds NULL. */
function baseType(type: string): { base: string; nullable: boolean } {
  let base = type;
  let nullable = false;
  for (;;) {
    const wrapped = base.match(/^(LowCardinality|Nullable)\((.*)\)$/);
    if (!wrapped) return { base, nullable };
    if (wrapped[1] === 'Nullable') nullable = true;
    base = wrapped[2]!;
  }
}

/** Why a column of type `base` cannot hold every value `schema` allows, or undefined if it can. */
function incompatibility(schema: AnySchemaObject, base: string): string | undefined {
  if (schema.allOf?.length === 1) return incompatibility(schema.allOf[0], base);
  if (schema.anyOf) {
    // A time as ISO 8601 or epoch milliseconds: the writer stores it as an instant.
    if ((schema.anyOf as AnySchemaObject[]).some((b) => b.format === 'date-time')) return /^DateTime64\(3/.test(base) ? undefined : 'a time needs DateTime64(3)';
    return (schema.anyOf as AnySchemaObject[]).map((b) => incompatibility(b, base)).find(Boolean);
  }
  if (schema.format === 'date-time') return /^DateTime64\(3/.test(base) ? undefined : 'a time needs DateTime64(3)';
  if (schema.format === 'uuid') return base === 'UUID' || base === 'String' ? undefined : 'a UUID needs UUID or String';
  if (schema.type === 'string') {
    const values: unknown[] | undefined = schema.enum ?? (schema.const === undefined ? undefined : [schema.const]);
    const enumValues = base.match(/^Enum(?:8|16)\((.*)\)$/)?.[1];
    if (values && enumValues) return values.every((v) => enumValues.includes(`'${String(v)}'`)) ? undefined : `the Enum lacks one of ${values.join(', ')}`;
    return base === 'String' ? undefined : 'text needs String';
  }
  if (schema.type === 'integer') {
    const range = integerRanges[base];
    if (!range) return 'an integer needs an integer type';
    const min = schema.minimum ?? (schema.exclusiveMinimum === undefined ? Number.MIN_SAFE_INTEGER : schema.exclusiveMinimum + 1);
    const max = schema.maximum ?? (schema.exclusiveMaximum === undefined ? Number.MAX_SAFE_INTEGER : schema.exclusiveMaximum - 1);
    return min >= range[0] && max <= range[1] ? undefined : `integers ${min}..${max} do not fit ${base}`;
  }
  return `no rule for JSON Schema ${JSON.stringify(schema)}: extend this test`;
}

/** Every way the table and the registry disagree, one line each; empty when they agree. */
function drift(columns: Column[], fields: EventFieldSpec[] = eventFields()): string[] {
  const byName = new Map(columns.map((c) => [c.name, c]));
  const problems: string[] = [];
  for (const field of fields) {
    const column = byName.get(field.column);
    const types = Object.keys(field.schemas).join(', ');
    if (!column) {
      problems.push(`field ${field.field} (${types}) has no column ${field.column} in events: add it in a new migration`);
      continue;
    }
    const { base, nullable } = baseType(column.type);
    for (const [type, schema] of Object.entries(field.schemas)) {
      const why = incompatibility(schema, base);
      if (why) problems.push(`field ${field.field} (${type}): column ${column.name} ${column.type} cannot hold it: ${why}`);
    }
    if (field.optional && !nullable && !column.default_type) {
      problems.push(`field ${field.field} is absent from some events: column ${column.name} ${column.type} needs Nullable or a DEFAULT`);
    }
  }
  const written = new Set<string>(eventColumns);
  for (const column of columns) {
    if (!written.has(column.name) && !column.default_type) {
      problems.push(`column ${column.name} ${column.type} has no field in the registry (shared/events.ts) and no DEFAULT: its field is gone`);
    }
  }
  for (const column of eventColumns) if (!byName.has(column)) problems.push(`the writer fills column ${column}, which events lacks`);
  return problems;
}

let db: Awaited<ReturnType<typeof migratedDatabase>>;
const describeEvents = async () => (await db.client.query({ query: 'DESCRIBE TABLE events', format: 'JSONEachRow' })).json<Column>();

beforeAll(async () => {
  db = await migratedDatabase(stackEnv().CLICKHOUSE_URL!, 'drift');
});

afterAll(async () => {
  await db?.drop();
});

describe('the events table and the event registry', () => {
  it('agree: every registry field has a column of a compatible type, and every column a field or a DEFAULT', async () => {
    const columns = await describeEvents();
    expect(drift(columns)).toEqual([]);
    // Not vacuous: the registry's fields are all there, the newest types' too.
    expect(columns.map((c) => c.name)).toEqual(expect.arrayContaining(eventFields().map((f) => f.column)));
    expect(eventFields().map((f) => f.field)).toEqual(expect.arrayContaining(['review_text', 'reviewer_id', 'score', 'action']));
  });

  it('names each drift: a field whose column was dropped, a column whose field is gone, a column too narrow', async () => {
    await db.client.command({ query: 'ALTER TABLE events DROP COLUMN element' });
    await db.client.command({ query: 'ALTER TABLE events ADD COLUMN mood Nullable(String)' });
    await db.client.command({ query: 'ALTER TABLE events MODIFY COLUMN results_count Nullable(UInt16)' });
    expect(drift(await describeEvents())).toEqual([
      'field element (click) has no column element in events: add it in a new migration',
      'field results_count (search): column results_count Nullable(UInt16) cannot hold it: integers 0..4294967295 do not fit UInt16',
      'column mood Nullable(String) has no field in the registry (shared/events.ts) and no DEFAULT: its field is gone',
      'the writer fills column element, which events lacks',
    ]);
  });
});
