/**
 * Compiles the event registry (shared/events.ts) into what the writer and the ingest need without
 * zod at run time:
 * - standalone validators: zod's JSON Schema of each accepted (writer) and client (ingest) event
 *   type, compiled by ajv to plain functions at build time, so a 10,000-record batch is checked in
 *   a few milliseconds with no compiler at cold start;
 * - the `events` column of every field (functions/writer/rows.ts maps rows with it; its types fail
 *   to compile when a registry field has no generated column).
 * `npm run generate` rewrites the files; a unit test fails when they are stale.
 */
import { writeFile } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';
import { Ajv, type AnySchemaObject } from 'ajv';
import standaloneCode from 'ajv/dist/standalone/index.js';
import * as z from '../shared/zod.ts';
import { acceptedEvent, clientEvent, storableYears, wellFormedText } from '../shared/events.ts';

export const validatorsFile = fileURLToPath(new URL('../shared/generated/accepted-event-validators.ts', import.meta.url));
export const columnsFile = fileURLToPath(new URL('../shared/generated/event-columns.ts', import.meta.url));

/** One field of the registry as the `events` table stores it. */
export interface EventFieldSpec {
  field: string;
  column: string;
  /** The field's JSON Schema (inlined) in each type that has it, by type. */
  schemas: Record<string, AnySchemaObject>;
  /** Some type lacks it or makes it optional: its column must be Nullable or have a DEFAULT. */
  optional: boolean;
  /** A client time (epoch ms or ISO 8601 with any offset): stored as a UTC instant. */
  time: boolean;
}

// The discriminator is stored as event_type; every other field in the column of its own name.
const columnNames: Record<string, string> = { type: 'event_type' };

/** Every field of every accepted event type, in registry order, with its column. */
export function eventFields(): EventFieldSpec[] {
  const { oneOf } = z.toJSONSchema(acceptedEvent, { io: 'input', target: 'draft-7' }) as { oneOf: AnySchemaObject[] };
  const fields = new Map<string, EventFieldSpec>();
  for (const type of oneOf) {
    const name = String(type.properties.type.const);
    for (const [field, schema] of Object.entries(type.properties as Record<string, AnySchemaObject>)) {
      const spec = fields.get(field) ?? { field, column: columnNames[field] ?? field, schemas: {}, optional: false, time: false };
      spec.schemas[name] = schema;
      spec.optional ||= !(type.required as string[]).includes(field);
      // An integer beside a date-time is epoch ms or ISO: normalized. The ingest's own times are UTC ISO already.
      const branches = (schema.anyOf ?? []) as AnySchemaObject[];
      spec.time ||= branches.some((b) => b.type === 'integer') && branches.some((b) => b.format === 'date-time');
      fields.set(field, spec);
    }
  }
  for (const spec of fields.values()) spec.optional ||= Object.keys(spec.schemas).length < oneOf.length;
  return [...fields.values()];
}
export const clientValidatorsFile = fileURLToPath(new URL('../shared/generated/client-event-validators.ts', import.meta.url));

// Patterns whose meaning no `format` states.
const readablePatterns: Record<string, string> = {
  [wellFormedText.source]: 'Unicode text without lone surrogates',
  [storableYears.source]: 'a time between the years 1970 and 2199',
};

/** What a failed `pattern` means, for the dead-letter reason (the patterns themselves are unreadable). */
function patternNames(schema: unknown, names: Record<string, string> = {}, format?: string): Record<string, string> {
  if (Array.isArray(schema)) schema.forEach((s) => patternNames(s, names, format));
  else if (schema && typeof schema === 'object') {
    const node = schema as { pattern?: string; format?: string };
    // zod splits a format's pattern and a second pattern into allOf under the node with the format.
    const nodeFormat = node.format ?? format;
    if (node.pattern) names[node.pattern] = readablePatterns[node.pattern] ?? nodeFormat ?? node.pattern;
    Object.values(schema).forEach((s) => patternNames(s, names, nodeFormat));
  }
  return names;
}

/** The writer's validators of accepted events (Kafka records). */
export function generateValidatorsSource(): string {
  // A tolerant reader: a field its type does not declare is removed from the event (removeAdditional),
  // not a reason to dead-letter it, so records from a newer ingest (a rollback, a staged deploy)
  // still land. Removed, not kept: a field of another type (a `score` on film_progress) would reach
  // its column unchecked. The ingest, which faces clients, keeps refusing unknown fields.
  return compileUnion(acceptedEvent, { removeAdditional: 'all' });
}

/**
 * The ingest's validators of client events: its fast path (functions/ingest/parse.ts), as strict
 * as zod (an unknown field fails); zod itself words the error of an event that failed.
 */
export function generateClientValidatorsSource(): string {
  return compileUnion(clientEvent, { removeAdditional: false });
}

function compileUnion(union: typeof acceptedEvent | typeof clientEvent, { removeAdditional }: { removeAdditional: 'all' | false }): string {
  // inlineRefs: false keeps a shared definition one function instead of a copy in each of the six validators.
  const ajv = new Ajv({ validateFormats: false, strict: true, logger: false, inlineRefs: false, removeAdditional, code: { source: true, esm: true, lines: true } });
  // The whole union at once, so zod puts what the types share (envelope, enrichment, text rules) in
  // definitions: one copy of each in the bundle. Each type's schema refers to them.
  const { oneOf: types, definitions } = z.toJSONSchema(union, { io: 'input', target: 'draft-7', reused: 'ref' }) as AnySchemaObject;
  // One root holding the shared definitions and every type, so the types' references to a
  // definition compile to one function (separate roots would each compile their own copy).
  const root = 'events';
  const byType = Object.fromEntries((types as AnySchemaObject[]).map((schema) => [String(schema.properties.type.const), schema]));
  ajv.addSchema({ $id: root, definitions: { ...definitions, ...byType } }, root);
  const exports = Object.fromEntries(Object.keys(byType).map((type) => [type, `${root}#/definitions/${type}`]));
  const names: Record<string, string> = {};
  patternNames(definitions, names);
  patternNames(types, names);
  const code = standaloneCode(ajv, exports);
  // Standalone code requires ajv's runtime helpers even as ESM; import the one it uses instead.
  const runtime = /const (func\d+) = require\("ajv\/dist\/runtime\/ucs2length"\)\.default;/;
  const body = code.replace(/^"use strict";\n?/, '').replace(runtime, 'const $1 = ucs2length.default ?? ucs2length;');
  if (/\brequire\(/.test(body)) throw new Error(`generated validators need an ajv runtime helper not imported here: ${body.match(/.*require\(.*/)?.[0]}`);
  return [
    '// Generated by scripts/generate-validators.ts from shared/events.ts. Do not edit: run `npm run generate`.',
    '// @ts-nocheck',
    // ajv's runtime helper is CommonJS: its function is `default` under Node's interop, the module itself under others.
    "import ucs2length from 'ajv/dist/runtime/ucs2length.js';",
    body,
    `export const patternNames = ${JSON.stringify(names, null, 2)};`,
    '/** Each type\'s validator, by type (its keys name the types these validators know). */',
    `export const validatorsByType = { ${Object.keys(byType).map((type) => `${type}: ${type}`).join(', ')} };`,
    '/**',
    ' * The validator of the type an event value names; undefined for a value that is not an object or',
    ' * names no known type. A switch on string constants: no lookup object, no allocation per event.',
    ' */',
    'export function validatorFor(value) {',
    "  if (typeof value !== 'object' || value === null || Array.isArray(value)) return undefined;",
    '  switch (value.type) {',
    ...Object.keys(byType).map((type) => `    case ${JSON.stringify(type)}: return ${type};`),
    '    default: return undefined;',
    '  }',
    '}',
    '',
  ].join('\n');
}

/**
 * The generated columns module: typed TypeScript (rows.ts checks it against the registry's types),
 * with the row mapping written out field by field: named property reads are about twice as fast
 * as a loop over field names on the writer's 10,000-record batches.
 */
export function generateColumnsSource(): string {
  const fields = eventFields();
  const entries = fields.map(({ field, column, time }) => `  { field: '${field}', column: '${column}', time: ${time} },`);
  const values = fields.map(({ field, time }) => (time
    ? `    fields.${field} === undefined ? null : new Date(fields.${field}).toISOString(),`
    : `    fields.${field} ?? null,`));
  return [
    '// Generated by scripts/generate-validators.ts from shared/events.ts. Do not edit: run `npm run generate`.',
    "import type { EventField } from '../events.ts';",
    '',
    '/** Every field of the registry with its column in `events`; `time`: a client time, stored as a UTC instant. */',
    'export const eventFieldColumns = [',
    ...entries,
    '] as const;',
    '',
    '/** An event\'s field values in `eventFieldColumns` order: NULL where its type lacks the field. */',
    'export function eventFieldValues(fields: Readonly<Partial<Record<EventField, string | number>>>): (string | number | null)[] {',
    '  return [',
    ...values,
    '  ];',
    '}',
    '',
  ].join('\n');
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  await writeFile(validatorsFile, generateValidatorsSource());
  await writeFile(columnsFile, generateColumnsSource());
  await writeFile(clientValidatorsFile, generateClientValidatorsSource());
  console.log(`wrote ${validatorsFile}, ${columnsFile} and ${clientValidatorsFile}`);
}
