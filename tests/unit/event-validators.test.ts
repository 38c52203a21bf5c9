import { readFile } from 'node:fs/promises';
import type { MSKRecord } from 'aws-lambda';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { decodeRecord } from '../../functions/writer/decode.ts';
import { columnsFile, generateColumnsSource, generateValidatorsSource, validatorsFile } from '../../scripts/generate-validators.ts';
import { acceptedEvent, eventTypes, registryExamples } from '../../shared/events.ts';
import { edgeValues, fieldsOf, mutationsOf, withField, withoutField } from './event-edges.ts';

// The writer checks records with validators compiled from the registry; the ingest checks with
// zod itself. They must agree, or the writer would dead-letter events the ingest accepted.
const record = (value: unknown): MSKRecord => ({
  topic: 't', partition: 0, offset: 0, timestamp: 0, timestampType: 'CREATE_TIME', key: '', headers: [],
  value: Buffer.from(JSON.stringify(value) ?? '').toString('base64'),
});
const writerAccepts = (value: unknown) => decodeRecord(record(value)).ok;
const zodAccepts = (value: unknown) => acceptedEvent.safeParse(JSON.parse(JSON.stringify(value) ?? 'null')).success;
// The writer ignores fields the registry does not know (a newer ingest's); zod, like the ingest, refuses them.
const knownFields = new Map(acceptedEvent.def.options.map((option) => [option.shape.type.def.values[0] as string, new Set(Object.keys(option.shape))]));
function withoutUnknownFields(value: unknown): unknown {
  if (!value || typeof value !== 'object' || Array.isArray(value)) return value;
  const known = knownFields.get((value as { type?: unknown }).type as string);
  return known ? Object.fromEntries(Object.entries(value).filter(([key]) => known.has(key))) : value;
}

const enrichment = {
  event_id: '0190b6b0-0000-7000-8000-000000000001', user_id: 'viewer-1', received_at: '2026-11-23T10:00:00.000Z',
  occurred_at: '2026-11-23T10:00:00.000Z', request_id: 'r1', schema_version: 1,
};
// An example of every registered type, and both forms of client_ts.
const valid = [
  ...eventTypes.map((type) => registryExamples(type)[0]!),
  { type: 'film_progress', film_id: 'f1', position_s: 0, client_ts: '2026-01-01T00:00:00+14:00' },
  { type: 'film_rating', film_id: 'f1', score: 8, client_ts: 1746130500000 },
].map((event) => ({ ...event, ...enrichment }));

const mutated = mutationsOf(valid);

describe('the writer\'s compiled validators', () => {
  it("and the writer's columns are generated from the current registry (run `npm run generate` after changing shared/events.ts)", async () => {
    expect(generateValidatorsSource()).toBe(await readFile(validatorsFile, 'utf8'));
    expect(generateColumnsSource()).toBe(await readFile(columnsFile, 'utf8'));
  });

  it('accept exactly the values zod accepts, fields it does not know aside: every edge value in every field, then random combinations', { timeout: 180_000 }, () => {
    let accepted = 0;
    let rejected = 0;
    const check = (value: unknown) => {
      const zod = zodAccepts(withoutUnknownFields(value));
      expect(writerAccepts(value), JSON.stringify(value)?.slice(0, 300)).toBe(zod);
      if (zod) accepted++;
      else rejected++;
    };
    for (const base of valid) {
      check(base);
      for (const field of fieldsOf(base)) {
        check(withoutField(base, field));
        for (const value of edgeValues) check(withField(base, field, value));
      }
    }
    fc.assert(fc.property(fc.oneof(mutated, fc.jsonValue()), check), { numRuns: 10_000 });
    console.log(`compiled validators vs zod: ${accepted} accepted and ${rejected} rejected by both, 0 disagreements`);
    // Only worth something if both sides were exercised.
    expect(accepted).toBeGreaterThan(500);
    expect(rejected).toBeGreaterThan(500);
  }); // about 36,000 checks: every edge value in every field of every type, then 10,000 random ones

  it('give dead-letter reasons that name the field and the rule', () => {
    const reason = (value: unknown) => { const d = decodeRecord(record(value)); return d.ok ? undefined : d.reason; };
    const base = valid[0]!;
    expect(reason({ ...base, position_s: 'ten' })).toBe('invalid event: position_s must be integer');
    expect(reason({ ...base, event_id: 'nope' })).toBe('invalid event: event_id must be uuid');
    expect(reason({ ...base, film_id: 'a\ud800' })).toBe('invalid event: film_id must be Unicode text without lone surrogates');
    // A field from a newer ingest is ignored: the event is stored, not dead-lettered.
    expect(reason({ ...base, colour: 'red' })).toBeUndefined();
    expect(reason({ ...base, type: 'teleport' })).toBe(`invalid event: type must be one of ${eventTypes.join(', ')}`);
    expect(reason([1, 2])).toBe('invalid event: must be a JSON object');
    const { user_id: _, ...anonymous } = base;
    expect(reason(anonymous)).toBe("invalid event: must have required property 'user_id'");
  });
});
