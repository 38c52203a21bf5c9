import { randomUUID } from 'node:crypto';
import type { Message } from 'kafkajs';
import type { MSKEvent } from 'aws-lambda';
import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildKafkaEvent, type AwsKafkaRecord } from '../../localstack/event-source/aws-kafka-event.ts';
import { enrich, toKafkaMessage } from '../../functions/ingest/messages.ts';
import type { AnySchemaObject } from 'ajv';
import * as z from '../../shared/zod.ts';
import { clientEvent, eventSchemas, eventTypes } from '../../shared/events.ts';
import { eventFields } from '../../scripts/generate-validators.ts';
import { compare, eventMessage, readUpTo, report, seededRandom, startPipeline, waitForRows, type Pipeline } from './harness.ts';

// Poison records mixed into a stream, and the other side of the contract: every event the
// ingest accepts (answers 202 for) must be one the writer can store, or one bad request would
// fail whole batches of other viewers' events.
let pipeline: Pipeline;

beforeAll(async () => {
  pipeline = await startPipeline({ partitions: 3 });
}, 90_000);

afterAll(async () => {
  await pipeline?.stop();
});

const poisonKinds: { kind: string; reason: RegExp; message: (i: number) => Message }[] = [
  { kind: 'not json', reason: /not JSON/, message: () => ({ key: 'p', value: '{"type":"click",' }) },
  { kind: 'empty value', reason: /not JSON/, message: () => ({ key: 'p', value: '' }) },
  { kind: 'tombstone', reason: /not JSON/, message: () => ({ key: 'p', value: null }) },
  { kind: 'binary garbage', reason: /not JSON/, message: (i) => ({ key: null, value: Buffer.from([0xff, 0xfe, 0x00, i % 256, 0x80]) }) },
  { kind: 'json array', reason: /invalid event/, message: () => ({ key: 'p', value: '[1,2,3]' }) },
  { kind: 'json number', reason: /invalid event/, message: () => ({ key: 'p', value: '42' }) },
  { kind: 'unknown type', reason: /invalid event/, message: () => ({ key: 'p', value: JSON.stringify({ ...accepted(), type: 'teleport' }) }) },
  { kind: 'client event, not enriched', reason: /invalid event/, message: () => ({ key: 'p', value: JSON.stringify({ type: 'click', url: '/', element: 'e' }) }) },
  { kind: 'wrong field type', reason: /invalid event/, message: () => ({ key: 'p', value: JSON.stringify({ ...accepted(), position_s: 'ten' }) }) },
  { kind: 'bad event_id', reason: /invalid event/, message: () => ({ key: 'p', value: JSON.stringify({ ...accepted(), event_id: 'not-a-uuid' }) }) },
  // (An unknown extra field is not poison for the writer: it tolerates fields a newer ingest may add.)
  { kind: 'missing user_id', reason: /invalid event/, message: () => ({ key: 'p', value: JSON.stringify({ ...accepted(), user_id: undefined }) }) },
  // What an ingest before the lone-surrogate check could have put in Kafka: must not fail its batch.
  { kind: 'lone surrogate', reason: /invalid event/, message: () => ({ key: 'p', value: JSON.stringify({ ...accepted(), film_id: 'a\ud800' }) }) },
  { kind: 'huge string', reason: /invalid event/, message: () => ({ key: 'p', value: JSON.stringify({ ...accepted(), film_id: 'x'.repeat(200_000) }) }) },
];

function accepted(): Record<string, unknown> {
  return JSON.parse(String(eventMessage('poison-base', 1).message.value)) as Record<string, unknown>;
}

describe('poison records', () => {
  it('sends every poison record to the dead-letter topic with its reason, and writes every valid event once', async () => {
    const random = seededRandom(7);
    const topic = await pipeline.newTopic(3);
    const valid: string[] = [];
    const poison = new Map<string, RegExp>();
    for (let chunk = 0; chunk < 6; chunk++) {
      const messages: Message[] = [];
      for (let i = 0; i < 300; i++) {
        if (random() < 0.1) {
          const spec = poisonKinds[Math.floor(random() * poisonKinds.length)]!;
          const id = randomUUID();
          poison.set(id, spec.reason);
          messages.push({ ...spec.message(i), headers: { 'poison-id': id, 'poison-kind': spec.kind } });
        } else {
          const { eventId, message } = eventMessage(`poison-viewer-${i % 11}`, chunk * 300 + i);
          valid.push(eventId);
          messages.push(message);
        }
      }
      await pipeline.producer.send({ topic, acks: -1, messages });
    }
    await pipeline.drive(topic, undefined, { batchSize: 250 });

    const counts = await waitForRows(pipeline, valid, 'kafka_topic = {t:String}', { t: topic });
    const dead = (await readUpTo(pipeline.brokers, pipeline.dlqTopic, poison.size, 30_000))
      .filter((m) => String(m.headers?.['dlq-original-topic']) === topic);
    const deadIds = dead.map((m) => String(m.headers?.['poison-id']));
    const wrongReason = dead.filter((m) => !poison.get(String(m.headers?.['poison-id']))?.test(String(m.headers?.['dlq-reason'])));
    const result = compare(valid, counts);
    report('poison records', { sent: valid.length + poison.size, valid: valid.length, poison: poison.size,
      inClickHouse: result.inClickHouse, missing: result.missing.length, duplicates: result.duplicates.length,
      deadLettered: dead.length, deadLetteredTwice: deadIds.length - new Set(deadIds).size, wrongReason: wrongReason.length });
    expect(new Set(deadIds)).toEqual(new Set(poison.keys()));
    expect(wrongReason.map((m) => `${String(m.headers?.['poison-kind'])}: ${String(m.headers?.['dlq-reason'])}`)).toEqual([]);
    expect(result.missing).toEqual([]);
    expect(result.extra).toEqual([]);
    expect(result.duplicates).toEqual([]);
  }, 90_000);
});

// Strings as browsers can send them, JSON-escaped: lone surrogates, NUL, line separators, emoji.
const edgeChars = ['\ud800', '\udfff', '\ud83d', '\u0000', '\u2028', '\u2029', '\ufeff', '\u{1f3ac}', 'é', '"', '\\', '\n', "'", '\t'];
const text = (max: number) => fc.array(fc.oneof(
  { arbitrary: fc.string({ unit: 'grapheme', maxLength: 4 }), weight: 6 },
  { arbitrary: fc.constantFrom(...edgeChars), weight: 1 },
  { arbitrary: fc.string({ unit: 'binary', maxLength: 2 }), weight: 1 },
), { minLength: 1, maxLength: 8 })
  .map((parts) => parts.join('').slice(0, max)).filter((s) => s.length > 0);
const clientTs = fc.oneof(
  fc.constant(undefined),
  fc.constantFrom(0, 8.64e15, 253_402_300_799_999, 1e15, Date.now()),
  fc.nat({ max: Number.MAX_SAFE_INTEGER }),
  fc.constantFrom('0001-01-01T00:00:00Z', '1899-12-31T23:59:59Z', '9999-12-31T23:59:59.999Z', '2026-01-01T00:00:00+14:00', '1970-01-01T00:00:00.123456789Z'),
);
const isTime = (schema: AnySchemaObject): boolean => JSON.stringify(schema).includes('"format":"date-time"');

/** Values for one field from its JSON Schema: inside its rules, at their edges and just beyond them. */
function fieldValues(schema: AnySchemaObject): fc.Arbitrary<unknown> {
  if (isTime(schema)) return clientTs;
  if (schema.const !== undefined) return fc.constant(schema.const);
  if (schema.enum) return fc.constantFrom(...(schema.enum as unknown[]));
  if (schema.type === 'string') return text(schema.maxLength ?? 64);
  if (schema.type === 'integer') {
    const { minimum: min = 0, maximum: max = Number.MAX_SAFE_INTEGER } = schema as { minimum?: number; maximum?: number };
    return fc.oneof(fc.constantFrom(min, max, min - 1, max + 1, 4_294_967_296, 1e12, Number.MAX_SAFE_INTEGER), fc.integer({ min, max }));
  }
  throw new Error(`no generator for ${JSON.stringify(schema)}: extend fieldValues`);
}

// Every registered type, its fields generated from its schema (event_id aside: the ingest gives
// each event its own, which the check below looks rows up by).
const candidate = fc.oneof(...eventTypes.map((type) => {
  const { properties, required } = z.toJSONSchema(eventSchemas[type], { io: 'input' }) as { properties: Record<string, AnySchemaObject>; required: string[] };
  const fields = Object.entries(properties).filter(([field]) => field !== 'event_id')
    .map(([field, schema]) => [field, required.includes(field) ? fieldValues(schema) : fc.option(fieldValues(schema), { nil: undefined })] as const);
  return fc.record(Object.fromEntries(fields));
})).map((event) => Object.fromEntries(Object.entries(event).filter(([, v]) => v !== undefined)));

// Every column the writer fills from a field, read back comparably: times as epoch ms, ids as text.
const fieldColumns = eventFields().map((f) => ({ ...f, time: Object.values(f.schemas).some(isTime) }));
const readBack = fieldColumns.map(({ column, time, schemas }) => {
  if (time) return `toString(toUnixTimestamp64Milli(${column})) AS ${column}`;
  return Object.values(schemas).some((s) => s.format === 'uuid') ? `toString(${column}) AS ${column}` : column;
}).join(', ');

describe('every accepted event is writable', () => {
  it('stores, unchanged in every field, every event of every registered type the ingest would accept (property-based), so no request can poison a batch', async () => {
    let checkedEvents = 0;
    let fieldsChecked = 0;
    let refusedAtIngest = 0;
    const topic = `accepted-${randomUUID().slice(0, 8)}`;
    let offset = 0;
    await fc.assert(fc.asyncProperty(fc.array(candidate, { minLength: 1, maxLength: 40 }), async (candidates) => {
      // What the ingest does with a body: validate (the gate under test), enrich, serialize.
      const events = candidates.flatMap((c) => {
        const parsed = clientEvent.safeParse(JSON.parse(JSON.stringify(c)));
        if (!parsed.success) refusedAtIngest += 1;
        return parsed.success ? [enrich(parsed.data, { userId: 'prop-viewer', requestId: randomUUID(), receivedAt: new Date() })] : [];
      });
      if (events.length === 0) return;
      const records: AwsKafkaRecord[] = events.map((e) => {
        const message = toKafkaMessage(e);
        return { topic, partition: 0, offset: offset++, timestamp: Date.now(), timestampType: 'CREATE_TIME', key: Buffer.from('prop-viewer').toString('base64'),
          value: Buffer.from(String(message.value)).toString('base64'), headers: [] };
      });
      const batch = buildKafkaEvent({ kind: 'msk', eventSourceArn: 'arn:aws:kafka:us-east-1:000000000000:cluster/reliability/1', bootstrapServers: 'x' }, records) as MSKEvent;
      await pipeline.writer(batch, pipeline.writerContext());
      const stored = await pipeline.query<Record<string, unknown>>(
        `SELECT ${readBack} FROM events WHERE kafka_topic = {t:String} AND kafka_offset >= {from:UInt64}`, { t: topic, from: records[0]!.offset });
      const byId = new Map(stored.map((r) => [r.event_id, r]));
      for (const e of events) {
        const row = byId.get(e.event_id);
        expect(row, `event ${JSON.stringify(e)} not stored`).toBeDefined();
        const sent = e as Record<string, unknown>;
        // Every field, the enrichment's too, reads back as sent; a field the type lacks is NULL ('' for film_id, its DEFAULT).
        for (const { field, column, time } of fieldColumns) {
          const expected = !(field in sent) ? (column === 'film_id' ? '' : null) : time ? String(new Date(sent[field] as string | number).getTime()) : sent[field];
          expect(row![column], `${column} of ${JSON.stringify(e)}`).toEqual(expected);
        }
        fieldsChecked += fieldColumns.length;
      }
      checkedEvents += events.length;
    }), { numRuns: 60, seed: 42, endOnFailure: true });
    report('accepted events are writable', { batches: 60, eventsStored: checkedEvents, fieldsChecked, refusedAtIngest,
      types: eventTypes.length });
    // Both sides of the gate were exercised: generated values beyond the rules were refused.
    expect(checkedEvents).toBeGreaterThan(100);
    expect(refusedAtIngest).toBeGreaterThan(0);
  }, 120_000);
});
