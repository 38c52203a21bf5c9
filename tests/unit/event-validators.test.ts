import { readFile } from 'node:fs/promises';
import type { MSKRecord } from 'aws-lambda';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { decodeRecord } from '../../functions/writer/decode.ts';
import { generateValidatorsSource, validatorsFile } from '../../scripts/generate-validators.ts';
import { acceptedEvent } from '../../shared/events.ts';

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
const valid = [
  { type: 'film_progress', film_id: 'f1', position_s: 120, duration_s: 6000 },
  { type: 'film_progress', film_id: 'f1', position_s: 0, client_ts: '2026-01-01T00:00:00+14:00' },
  { type: 'film_rating', film_id: 'f1', score: 8, client_ts: 1746130500000 },
  { type: 'bookmark', film_id: 'f1', action: 'remove' },
  { type: 'page_view', url: '/films/f1', referrer: '/search' },
  { type: 'click', url: '/films/f1', element: 'play' },
  { type: 'search', query: 'shawshank', results_count: 3 },
].map((event) => ({ ...event, ...enrichment }));

// Values at the edges of the registry's rules: lengths (zod counts code points) around every
// limit, surrogates, integer bounds, date and uuid forms, wrong JSON types.
const limits = [0, 1, 63, 64, 65, 255, 256, 257, 511, 512, 513, 2047, 2048, 2049];
const edgeValues: unknown[] = [
  ...limits.flatMap((n) => ['x'.repeat(n), '\u{1f3ac}'.repeat(n), `${'x'.repeat(Math.max(n - 1, 0))}\ud800`]),
  'a\ud800', '\udfff', '\ud83d\ude00', '\u0000', 'é',
  '2026-11-23T10:00:00Z', '2026-11-23T10:00:00.123456Z', '2026-02-29T10:00:00Z', '2024-02-29T10:00:00Z', '2026-11-23T10:00:00+01:00',
  '2026-11-23T24:00:00Z', '2026-11-23 10:00:00Z', '2026-11-23', '2026-11-23T10:00Z',
  '0190b6b0-0000-7000-8000-000000000002', '0190B6B0-0000-7000-8000-000000000001', '00000000-0000-0000-0000-000000000000',
  '0190b6b0-0000-0000-8000-000000000001', 'not-a-uuid',
  'film_progress', 'film_rating', 'bookmark', 'page_view', 'click', 'search', 'add', 'remove', 'other',
  0, -1, 1, 10, 11, 1.5, 1_000_000, 1_000_001, 4_294_967_295, 4_294_967_296, 253_402_300_799_999, 253_402_300_800_000,
  Number.MAX_SAFE_INTEGER, 2 ** 53, 1e300,
  null, true, false, [], {}, ['a'], { a: 1 },
];
const optional = ['event_id', 'client_ts', 'duration_s', 'referrer'];
const fieldsOf = (base: object) => [...Object.keys(base), ...optional, '__proto__', 'constructor', 'extra'];
// Own properties even for __proto__, as JSON.parse makes them.
const withField = (event: object, field: string, value: unknown) =>
  Object.defineProperty({ ...event }, field, { value, enumerable: true, writable: true, configurable: true });
const withoutField = (event: object, field: string) => Object.fromEntries(Object.entries(event).filter(([key]) => key !== field));
// Several changes at once, with random values too.
const mutated = fc.constantFrom(...valid).chain((base) => {
  const value = fc.oneof(fc.constantFrom(...edgeValues), fc.string({ unit: 'binary', maxLength: 6 }), fc.integer(), fc.double(), fc.uuid().map(String));
  const change = fc.oneof(
    { weight: 8, arbitrary: fc.tuple(fc.constantFrom(...fieldsOf(base)), value).map(([field, v]) => (e: object) => withField(e, field, v)) },
    { weight: 1, arbitrary: fc.constantFrom(...fieldsOf(base)).map((field) => (e: object) => withoutField(e, field)) },
  );
  return fc.array(change, { minLength: 1, maxLength: 3 }).map((changes) => changes.reduce((e, apply) => apply(e), base as object));
});

describe('the writer\'s compiled validators', () => {
  it('are generated from the current registry (run `npm run generate` after changing shared/events.ts)', async () => {
    expect(generateValidatorsSource()).toBe(await readFile(validatorsFile, 'utf8'));
  });

  it('accept exactly the values zod accepts, fields it does not know aside: every edge value in every field, then random combinations', () => {
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
  });

  it('give dead-letter reasons that name the field and the rule', () => {
    const reason = (value: unknown) => { const d = decodeRecord(record(value)); return d.ok ? undefined : d.reason; };
    const base = valid[0]!;
    expect(reason({ ...base, position_s: 'ten' })).toBe('invalid event: position_s must be integer');
    expect(reason({ ...base, event_id: 'nope' })).toBe('invalid event: event_id must be uuid');
    expect(reason({ ...base, film_id: 'a\ud800' })).toBe('invalid event: film_id must be Unicode text without lone surrogates');
    // A field from a newer ingest is ignored: the event is stored, not dead-lettered.
    expect(reason({ ...base, colour: 'red' })).toBeUndefined();
    expect(reason({ ...base, type: 'teleport' })).toMatch(/^invalid event: type must be one of film_progress, .*search$/);
    expect(reason([1, 2])).toBe('invalid event: must be a JSON object');
    const { user_id: _, ...anonymous } = base;
    expect(reason(anonymous)).toBe("invalid event: must have required property 'user_id'");
  });
});
