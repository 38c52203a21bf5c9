import Ajv2020 from 'ajv/dist/2020.js';
import addFormats from 'ajv-formats';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { checkEvent, parseEvents } from '../../functions/ingest/parse.ts';
import { eventTypes, registryExamples, wellFormedText } from '../../shared/events.ts';
import { HttpError } from '../../shared/errors.ts';
import { buildOpenApiDocument } from '../../shared/openapi.ts';
import { edgeValues, fieldsOf, mutationsOf, withField, withoutField } from './event-edges.ts';

// The document is what generators and clients read: it must call an event or a batch valid exactly
// when the ingest accepts it, or a client built from it would send what the server refuses.
const limits = { maxBodyBytes: 1 << 20, maxEvents: 5 };
const document = buildOpenApiDocument({ maxEventsPerRequest: limits.maxEvents, maxBodyBytes: limits.maxBodyBytes });
const ajv = new Ajv2020({ strict: false, allErrors: false });
addFormats(ajv);
ajv.addSchema(document, 'openapi.json');
const schema = (name: string) => ajv.getSchema(`openapi.json#/components/schemas/${name}`)!;
// Plus the rule the document states in words, since no pattern for it is readable by generators
// (shared/openapi.ts, wellFormedInWords): a string with a lone surrogate is refused.
const wellFormedThroughout = (value: unknown): boolean => typeof value === 'string' ? wellFormedText.test(value)
  : typeof value === 'object' && value !== null ? Object.values(value).every(wellFormedThroughout) : true;
const documentAcceptsEvent = (value: unknown) => (schema('ClientEvent')(value) as boolean) && wellFormedThroughout(value);
// A batch's `contains` asks for one ClientEvent, the rule in words included.
const documentAcceptsBatch = (value: unknown) => (schema('EventBatch')(value) as boolean) && (value as { events: unknown[] }).events.some(documentAcceptsEvent);
// Through JSON, as a body arrives (own __proto__ keys included, as JSON.parse makes them).
const asReceived = (value: unknown): unknown => JSON.parse(JSON.stringify(value) ?? 'null');
const valid = eventTypes.map((type) => registryExamples(type)[0]!);

/** The ingest's answer to a batch: 202 when some event is valid, else the 4xx it throws or returns. */
function ingestStatus(batch: unknown): 202 | 400 | 413 {
  try {
    return parseEvents(batch, limits).valid.length > 0 ? 202 : 400;
  } catch (error) {
    return (error as HttpError).statusCode as 400 | 413;
  }
}

describe('the OpenAPI document agrees with the ingest', () => {
  it('calls an event valid exactly when the ingest accepts it: every edge value in every field, then 5,000 mutated events', { timeout: 120_000 }, () => {
    const disagreements: string[] = [];
    let accepted = 0;
    const check = (value: unknown) => {
      const item = asReceived(value);
      const server = checkEvent(item).ok;
      if (documentAcceptsEvent(item) !== server) disagreements.push(`${JSON.stringify(item).slice(0, 200)}: server ${server ? 'accepts' : 'refuses'}`);
      if (server) accepted++;
    };
    for (const base of valid) {
      check(base);
      for (const field of fieldsOf(base)) {
        check(withoutField(base, field));
        for (const value of edgeValues) check(withField(base, field, value));
      }
    }
    fc.assert(fc.property(mutationsOf(valid), (event) => check(event)), { numRuns: 5_000 });
    expect(disagreements.slice(0, 20), `${disagreements.length} events judged differently`).toEqual([]);
    expect(accepted).toBeGreaterThan(100);
  });

  it('calls a batch valid exactly when the ingest answers it 202: one valid event is enough, the others come back in rejected', () => {
    const bad = { type: 'film_progress', film_id: 'f1', position_s: -1 };
    const cases: [unknown, number][] = [
      [{ events: [valid[0]] }, 202],
      [{ events: [valid[0], bad, 'x', null] }, 202],
      [{ events: [bad, 'x'] }, 400],
      [{ events: [] }, 400],
      [{ events: valid[0] }, 400],
      [{ events: [valid[0]], extra: 1 }, 400],
      [{ events: Array(limits.maxEvents + 1).fill(valid[0]) }, 413],
    ];
    for (const [batch, status] of cases) {
      expect(ingestStatus(batch), JSON.stringify(batch)).toBe(status);
      expect(documentAcceptsBatch(batch), JSON.stringify(batch)).toBe(status === 202);
    }
    const items = fc.oneof(fc.constantFrom(...valid), mutationsOf(valid), fc.jsonValue());
    fc.assert(fc.property(fc.array(items, { maxLength: limits.maxEvents + 2 }), (events) => {
      const batch = asReceived({ events });
      expect(documentAcceptsBatch(batch), JSON.stringify(batch).slice(0, 300)).toBe(ingestStatus(batch) === 202);
    }), { numRuns: 2_000 });
  });
});
