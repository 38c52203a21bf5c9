import { randomUUID } from 'node:crypto';
import { v7 as uuidv7 } from 'uuid';
import { describe, expect, it } from 'vitest';
import { filmProgressPayload, parseEvents, readJsonBody } from '../../functions/ingest/parse.ts';
import { enrich, toKafkaMessage } from '../../functions/ingest/messages.ts';
import { createEventProducer } from '../../functions/ingest/produce.ts';
import { KafkaJSConnectionError, KafkaJSNonRetriableError, KafkaJSProtocolError, type Producer } from 'kafkajs';
import { HttpError } from '../../shared/errors.ts';

const limits = { maxBodyBytes: 1024, maxEvents: 3 };
const progress = { type: 'film_progress', film_id: 'f1', position_s: 10, duration_s: 100 };

function httpError(fn: () => unknown): HttpError {
  try { fn(); } catch (error) { if (error instanceof HttpError) return error; throw error; }
  throw new Error('expected an HttpError');
}

describe('ingest request parsing', () => {
  it('refuses a body that is not JSON by content type with 415', () => {
    expect(httpError(() => readJsonBody('{}', false, 'text/plain', limits))).toMatchObject({ statusCode: 415, code: 'unsupported_media_type' });
    expect(httpError(() => readJsonBody('{}', false, undefined, limits)).statusCode).toBe(415);
  });

  it('accepts application/json with a charset and decodes base64 bodies', () => {
    expect(readJsonBody('{"a":1}', false, 'application/json; charset=utf-8', limits)).toEqual({ a: 1 });
    expect(readJsonBody(Buffer.from('{"a":2}').toString('base64'), true, 'application/json', limits)).toEqual({ a: 2 });
  });

  it('answers 413 to a body over the limit and 400 malformed_json to broken JSON', () => {
    expect(httpError(() => readJsonBody('x'.repeat(1025), false, 'application/json', limits)).statusCode).toBe(413);
    expect(httpError(() => readJsonBody('{"a":', false, 'application/json', limits))).toMatchObject({ statusCode: 400, code: 'malformed_json' });
  });

  it('takes one event or a batch, and rejects each bad event with its index and reason', () => {
    expect(parseEvents(progress, limits).valid).toHaveLength(1);
    const parsed = parseEvents({ events: [progress, { ...progress, position_s: -1 }, { type: 'nope' }] }, limits);
    expect(parsed.valid.map((v) => v.index)).toEqual([0]);
    expect(parsed.rejected.map((r) => r.index)).toEqual([1, 2]);
    expect(parsed.rejected[0]!.message).toContain('position_s');
  });

  it('rejects unknown fields rather than dropping them silently', () => {
    const parsed = parseEvents({ ...progress, user_id: 'someone-else' }, limits);
    expect(parsed.valid).toHaveLength(0);
    expect(parsed.rejected[0]!.message).toMatch(/user_id|unrecognized/i);
  });

  it('refuses more events than allowed with 413, and an empty batch with 400', () => {
    expect(httpError(() => parseEvents({ events: [progress, progress, progress, progress] }, limits)).statusCode).toBe(413);
    expect(httpError(() => parseEvents({ events: [] }, limits)).statusCode).toBe(400);
  });
});

describe('ingest enrichment and Kafka message', () => {
  const receivedAt = new Date('2026-11-23T10:00:00.000Z');

  it('takes the user from the token, keys the message by user, and carries type headers', () => {
    const event = parseEvents(progress, limits).valid[0]!.event;
    const accepted = enrich(event, { userId: 'u-42', requestId: 'req-1', receivedAt });
    expect(accepted).toMatchObject({ user_id: 'u-42', received_at: receivedAt.toISOString(), request_id: 'req-1', schema_version: 1 });
    expect(accepted.event_id).toMatch(/^[0-9a-f-]{36}$/);
    const message = toKafkaMessage(accepted);
    expect(message.key).toBe('u-42');
    expect(JSON.parse(String(message.value))).toEqual(accepted);
    expect(message.headers).toEqual({ 'event-type': 'film_progress', 'schema-version': '1' });
  });

  it('keeps a client event_id so client retries are idempotent', () => {
    const eventId = '0190b6b0-0000-7000-8000-000000000001';
    const event = parseEvents({ ...progress, event_id: eventId }, limits).valid[0]!.event;
    expect(enrich(event, { userId: 'u', requestId: 'r', receivedAt }).event_id).toBe(eventId);
  });

  it('gives every retry of an event (same event_id) the same event time when the client sets it: client_ts or a UUIDv7 id', () => {
    const later = new Date(receivedAt.getTime() + 7_000);
    const timeOf = (payload: object, at: Date) => enrich(parseEvents({ ...progress, ...payload }, limits).valid[0]!.event, { userId: 'u', requestId: 'r', receivedAt: at }).occurred_at;
    const withClientTs = { event_id: randomUUID(), client_ts: '2026-11-23T09:59:59.000Z' };
    expect(timeOf(withClientTs, later)).toBe(timeOf(withClientTs, receivedAt));
    // A v7 id's time (here a minute before it reached us) is the event time.
    const v7 = { event_id: uuidv7({ msecs: receivedAt.getTime() - 60_000 }) };
    expect(timeOf(v7, receivedAt)).toBe('2026-11-23T09:59:00.000Z');
    expect(timeOf(v7, later)).toBe(timeOf(v7, receivedAt));
    // A random (v4) id says no time: the server clock, so a retry the server stored twice differs.
    expect(timeOf({ event_id: randomUUID() }, receivedAt)).toBe(receivedAt.toISOString());
  });

  it('uses the client time as event time unless it is in the future or more than 30 days old', () => {
    const occurredAt = (clientTs: string | number) =>
      enrich(parseEvents({ ...progress, client_ts: clientTs }, limits).valid[0]!.event, { userId: 'u', requestId: 'r', receivedAt }).occurred_at;
    expect(occurredAt('2026-11-23T09:59:00.000Z')).toBe('2026-11-23T09:59:00.000Z');
    expect(occurredAt('2026-11-23T10:04:00.000Z')).toBe('2026-11-23T10:04:00.000Z');
    expect(occurredAt(Date.parse('2026-11-24T00:00:00Z'))).toBe(receivedAt.toISOString());
    expect(occurredAt('2026-10-25T10:00:00.000+00:00')).toBe('2026-10-25T10:00:00.000Z');
    // Older would scatter one batch over many monthly partitions (ClickHouse refuses more than 100 in one insert).
    expect(occurredAt('2026-10-23T09:59:00.000Z')).toBe(receivedAt.toISOString());
    expect(occurredAt(0)).toBe(receivedAt.toISOString());
  });

  it('refuses a client time that no ClickHouse column can hold, whatever its UTC offset', () => {
    // Year 9999 at -14:00 is year 10000 in UTC: once, such an event failed every insert of its batch.
    for (const clientTs of ['9999-12-31T23:59:59-14:00', '2200-01-01T00:00:00Z', '1969-12-31T23:59:59Z', '0000-01-01T00:00:00+01:00', Date.UTC(2200, 0, 1)]) {
      const { rejected } = parseEvents({ ...progress, client_ts: clientTs }, limits);
      expect(rejected, String(clientTs)).toHaveLength(1);
      expect(rejected[0]!.message).toContain('client_ts');
    }
    expect(parseEvents({ ...progress, client_ts: '9999-12-31T23:59:59-14:00' }, limits).rejected[0]!.message).toContain('between the years 1970 and 2199');
    expect(parseEvents({ ...progress, client_ts: '2199-12-31T23:59:59-14:00' }, limits).valid).toHaveLength(1);
  });
});

describe('the simple progress form', () => {
  it('is the same as one film_progress event for the film in the path', () => {
    const parsed = parseEvents(filmProgressPayload('tt%2F1', { position_s: 30, duration_s: 100 }), limits);
    expect(parsed.valid[0]!.event).toEqual({ type: 'film_progress', film_id: 'tt/1', position_s: 30, duration_s: 100 });
  });

  it('cannot be used to smuggle another type or film, and refuses non-objects', () => {
    expect(filmProgressPayload('f1', { type: 'film_rating', film_id: 'other', position_s: 1 }).events[0]).toMatchObject({ type: 'film_progress', film_id: 'f1' });
    expect(httpError(() => filmProgressPayload('f1', [1]))).toMatchObject({ statusCode: 400 });
    expect(parseEvents(filmProgressPayload('f1', { position_s: 'ten' }), limits).rejected).toHaveLength(1);
    // A batch of other types sent to the progress route is one invalid progress event, not a batch.
    const smuggled = parseEvents(filmProgressPayload('f1', { events: [{ type: 'search', query: 'q', results_count: 1 }] }), limits);
    expect(smuggled.valid).toHaveLength(0);
    expect(smuggled.rejected).toHaveLength(1);
  });
});

describe('producing to Kafka', () => {
  const failingWith = (error: Error) => createEventProducer({ connect: async () => {}, send: async () => { throw error; } } as unknown as Producer, 'ugc.events');
  // As kafkajs makes them from the broker's answer (error code 10), and as its retrier passes them on.
  const tooLarge = new KafkaJSProtocolError(Object.assign(new Error('The request included a message larger than the max message size the server will accept'),
    { type: 'MESSAGE_TOO_LARGE', code: 10, retriable: false }));

  it('answers 413 when the brokers refuse the messages as too large: a retry could never succeed', async () => {
    // (kafkajs's types omit the options its retrier passes: `new KafkaJSNonRetriableError(e, { cause })`.)
    const NonRetriable = KafkaJSNonRetriableError as unknown as new (e: Error, options: { cause: Error }) => Error;
    for (const error of [tooLarge, new NonRetriable(tooLarge, { cause: tooLarge })]) {
      await expect(failingWith(error)([{ value: 'x' }], 1_000)).rejects.toMatchObject({ statusCode: 413, code: 'payload_too_large' });
    }
  });

  it('answers 503 (retry later) when Kafka cannot be reached', async () => {
    await expect(failingWith(new KafkaJSConnectionError('Connection error: ECONNREFUSED'))([{ value: 'x' }], 1_000))
      .rejects.toMatchObject({ statusCode: 503, code: 'kafka_unavailable' });
  });
});
