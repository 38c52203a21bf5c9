import { readFile } from 'node:fs/promises';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { checkEvent, parseEvents, type CheckedEvent } from '../../functions/ingest/parse.ts';
import { clientEvent, eventTypes } from '../../shared/events.ts';
import { clientValidatorsFile, generateClientValidatorsSource } from '../../scripts/generate-validators.ts';
import { edgeValues, fieldsOf, mutationsOf, withField, withoutField } from './event-edges.ts';

// The ingest decides with the compiled validators and words a refusal with zod: the verdict and
// the message must be zod's own for every input, or clients would see other answers than before.
const valid = [
  { type: 'film_progress', film_id: 'f1', position_s: 120, duration_s: 6000 },
  { type: 'film_progress', film_id: 'f1', position_s: 0, client_ts: '2026-01-01T00:00:00+14:00', event_id: '0190b6b0-0000-7000-8000-000000000001' },
  { type: 'film_rating', film_id: 'f1', score: 8, client_ts: 1746130500000 },
  { type: 'bookmark', film_id: 'f1', action: 'remove' },
  { type: 'page_view', url: '/films/f1', referrer: '/search' },
  { type: 'click', url: '/films/f1', element: 'play' },
  { type: 'search', query: 'shawshank', results_count: 3 },
];
// The ingest's validation before the fast path, word for word: zod alone, its first issue with its path.
function zodAlone(item: unknown): CheckedEvent {
  const result = clientEvent.safeParse(item);
  if (result.success) return { ok: true, event: result.data };
  const issue = result.error.issues[0];
  const where = issue?.path.length ? `${issue.path.join('.')}: ` : '';
  return { ok: false, message: `${where}${issue?.message ?? 'invalid event'}` };
}
// What the ingest adds, and a client must not send: refused by both as unknown fields.
const serverFields = ['user_id', 'received_at', 'occurred_at', 'request_id', 'schema_version'];

describe('the ingest\'s fast validation', () => {
  it('is generated from the current registry (run `npm run generate` after changing shared/events.ts)', async () => {
    expect(generateClientValidatorsSource()).toBe(await readFile(clientValidatorsFile, 'utf8'));
  });

  it('gives zod\'s verdict and zod\'s message for every edge value in every field, then 10,000 random events and JSON values', { timeout: 180_000 }, () => {
    let accepted = 0;
    let rejected = 0;
    const messages = new Set<string>();
    const check = (value: unknown) => {
      // Through JSON, as a body arrives (own __proto__ keys included, as JSON.parse makes them).
      const item: unknown = JSON.parse(JSON.stringify(value) ?? 'null');
      const zod = zodAlone(item);
      expect(checkEvent(item), JSON.stringify(value)?.slice(0, 300)).toEqual(zod);
      if (zod.ok) accepted++;
      else {
        rejected++;
        messages.add(zod.message);
      }
    };
    for (const base of valid) {
      check(base);
      for (const field of [...fieldsOf(base), ...serverFields]) {
        check(withoutField(base, field));
        for (const value of edgeValues) check(withField(base, field, value));
      }
    }
    fc.assert(fc.property(fc.oneof({ weight: 4, arbitrary: mutationsOf(valid) }, { weight: 1, arbitrary: fc.jsonValue() }), check), { numRuns: 10_000 });
    console.log(`ingest fast path vs zod: ${accepted} accepted and ${rejected} rejected alike, ${messages.size} distinct messages, 0 disagreements`);
    // Only worth something if both sides and many kinds of refusal were exercised.
    expect(accepted).toBeGreaterThan(500);
    expect(rejected).toBeGreaterThan(5_000);
    expect(messages.size).toBeGreaterThan(30);
  });

  it('answers a batch as before: valid events in order, each refusal with its index and zod\'s words', () => {
    const events = [valid[0], { ...valid[0], position_s: -1 }, { ...valid[3], action: 'toggle' }, valid[6], { type: 'teleport' }, 'x'];
    const { valid: ok, rejected } = parseEvents({ events }, { maxBodyBytes: 1 << 20, maxEvents: 500 });
    expect(ok).toEqual([{ index: 0, event: valid[0] }, { index: 3, event: valid[6] }]);
    expect(rejected).toEqual([
      { index: 1, code: 'invalid_event', message: 'position_s: Too small: expected number to be >=0' },
      { index: 2, code: 'invalid_event', message: 'action: Invalid option: expected one of "add"|"remove"' },
      { index: 4, code: 'invalid_event', message: `type: Invalid discriminator value. Expected ${eventTypes.map((t) => `'${t}'`).join(' | ')}` },
      { index: 5, code: 'invalid_event', message: 'Invalid input: expected object, received string' },
    ]);
  });
});
