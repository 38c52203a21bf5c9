// Bad and borderline events for the tests that compare a compiled validator with zod (the
// writer's, tests/unit/event-validators.test.ts; the ingest's, tests/unit/ingest-validation.test.ts).
import fc from 'fast-check';
import { eventFields } from '../../scripts/generate-validators.ts';
import { eventTypes, maxReviewTextLength } from '../../shared/events.ts';

// Values at the edges of the registry's rules: lengths (zod counts code points) around every
// limit, surrogates, integer bounds, date and uuid forms, wrong JSON types.
const limits = [0, 1, 63, 64, 65, 255, 256, 257, 511, 512, 513, 2047, 2048, 2049, maxReviewTextLength, maxReviewTextLength + 1];
export const edgeValues: unknown[] = [
  ...limits.flatMap((n) => ['x'.repeat(n), '\u{1f3ac}'.repeat(n), `${'x'.repeat(Math.max(n - 1, 0))}\ud800`]),
  'a\ud800', '\udfff', '\ud83d\ude00', '\u0000', 'é',
  '2026-11-23T10:00:00Z', '2026-11-23T10:00:00.123456Z', '2026-02-29T10:00:00Z', '2024-02-29T10:00:00Z', '2026-11-23T10:00:00+01:00',
  '2026-11-23T24:00:00Z', '2026-11-23 10:00:00Z', '2026-11-23', '2026-11-23T10:00Z',
  '0190b6b0-0000-7000-8000-000000000002', '0190B6B0-0000-7000-8000-000000000001', '00000000-0000-0000-0000-000000000000',
  '0190b6b0-0000-0000-8000-000000000001', 'not-a-uuid',
  ...eventTypes, 'add', 'remove', 'like', 'unlike', 'other',
  0, -1, 1, 10, 11, 1.5, 1_000_000, 1_000_001, 4_294_967_295, 4_294_967_296, 253_402_300_799_999, 253_402_300_800_000,
  Number.MAX_SAFE_INTEGER, 2 ** 53, 1e300,
  null, true, false, [], {}, ['a'], { a: 1 },
];
const optional = eventFields().filter((f) => f.optional).map((f) => f.field);
export const fieldsOf = (base: object) => [...Object.keys(base), ...optional, '__proto__', 'constructor', 'extra'];
// Own properties even for __proto__, as JSON.parse makes them.
export const withField = (event: object, field: string, value: unknown) =>
  Object.defineProperty({ ...event }, field, { value, enumerable: true, writable: true, configurable: true });
export const withoutField = (event: object, field: string) => Object.fromEntries(Object.entries(event).filter(([key]) => key !== field));
/** Valid events with one to three changes each (a field set to an edge or random value, or removed). */
export const mutationsOf = (valid: object[]) => fc.constantFrom(...valid).chain((base) => {
  const value = fc.oneof(fc.constantFrom(...edgeValues), fc.string({ unit: 'binary', maxLength: 6 }), fc.integer(), fc.double(), fc.uuid().map(String));
  const change = fc.oneof(
    { weight: 8, arbitrary: fc.tuple(fc.constantFrom(...fieldsOf(base)), value).map(([field, v]) => (e: object) => withField(e, field, v)) },
    { weight: 1, arbitrary: fc.constantFrom(...fieldsOf(base)).map((field) => (e: object) => withoutField(e, field)) },
  );
  return fc.array(change, { minLength: 1, maxLength: 3 }).map((changes) => changes.reduce((e, apply) => apply(e), base as object));
});
