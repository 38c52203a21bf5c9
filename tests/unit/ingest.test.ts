import { randomUUID } from 'node:crypto';
import { v7 as uuidv7, validate as validateUuid, version as uuidVersion } from 'uuid';
import { describe, expect, it, vi } from 'vitest';
import { gzipSync } from 'node:zlib';
import { filmProgressPayload, parseEvents, readJsonBody, takeBodyToken } from '../../functions/ingest/parse.ts';
import { enrich, toKafkaMessage } from '../../functions/ingest/messages.ts';
import { createEventProducer } from '../../functions/ingest/produce.ts';
import { createSender, type Sender } from '../../shared/kafka.ts';
import { CompressionTypes, KafkaJSConnectionError, KafkaJSNonRetriableError, KafkaJSProtocolError, type Message, type Producer, type ProducerBatch, type ProducerRecord } from 'kafkajs';
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

  it('takes text/plain only where the unload form is allowed, and splits its token from its events', () => {
    const body = JSON.stringify({ token: 'a.b.c', events: [progress] });
    expect(readJsonBody(body, false, 'text/plain;charset=UTF-8', limits, { allowPlainText: true })).toEqual({ token: 'a.b.c', events: [progress] });
    expect(httpError(() => readJsonBody(body, false, 'text/plain', limits))).toMatchObject({ statusCode: 415 });
    const { token, payload } = takeBodyToken(JSON.parse(body));
    expect(token).toBe('a.b.c');
    expect(payload).toEqual({ events: [progress] });
    // A single event carrying the token: the token is taken out, never validated or produced with it.
    expect(takeBodyToken({ ...progress, token: 't' })).toEqual({ token: 't', payload: progress });
    expect(takeBodyToken([1])).toEqual({ token: undefined, payload: [1] });
  });

  it('inflates a gzip body (base64, as API Gateway hands it over) and refuses other codings with 415', () => {
    const body = JSON.stringify({ events: [progress, progress] });
    const gzipped = gzipSync(body).toString('base64');
    expect(readJsonBody(gzipped, true, 'application/json', limits, { contentEncoding: 'gzip' })).toEqual(JSON.parse(body));
    expect(readJsonBody(gzipped, true, 'application/json', limits, { contentEncoding: ' GZIP ' })).toEqual(JSON.parse(body));
    expect(readJsonBody(body, false, 'application/json', limits, { contentEncoding: 'identity' })).toEqual(JSON.parse(body));
    expect(httpError(() => readJsonBody(gzipped, true, 'application/json', limits, { contentEncoding: 'br' }))).toMatchObject({ statusCode: 415, code: 'unsupported_content_encoding' });
  });

  it('answers broken gzip with 400 malformed_gzip, and gzip of broken JSON with malformed_json', () => {
    const gzipped = gzipSync(JSON.stringify({ events: [progress] }));
    const cases = [Buffer.from('not gzip at all'), gzipped.subarray(0, gzipped.length - 6), Buffer.concat([gzipped.subarray(0, 12), Buffer.alloc(8, 0xff), gzipped.subarray(20)])];
    for (const broken of cases) {
      expect(httpError(() => readJsonBody(broken.toString('base64'), true, 'application/json', limits, { contentEncoding: 'gzip' }))).toMatchObject({ statusCode: 400, code: 'malformed_gzip' });
    }
    expect(httpError(() => readJsonBody(gzipSync('{"a":').toString('base64'), true, 'application/json', limits, { contentEncoding: 'gzip' }))).toMatchObject({ statusCode: 400, code: 'malformed_json' });
    expect(httpError(() => readJsonBody(gzipSync('').toString('base64'), true, 'application/json', limits, { contentEncoding: 'gzip' }))).toMatchObject({ statusCode: 400, code: 'empty_body' });
  });

  it('caps the inflated size at maxBodyBytes: a body over it, and a zip bomb, get 413', () => {
    const over = gzipSync(JSON.stringify({ events: [{ ...progress, film_id: 'x'.repeat(1100) }] }));
    expect(over.length).toBeLessThan(limits.maxBodyBytes);
    expect(httpError(() => readJsonBody(over.toString('base64'), true, 'application/json', limits, { contentEncoding: 'gzip' }))).toMatchObject({ statusCode: 413, code: 'payload_too_large' });
    // 64 MiB of zeros in 64 KiB: refused at the first MiB inflated (bench/gzip.ts measures the memory).
    const bomb = gzipSync(Buffer.alloc(64 * 1024 * 1024), { level: 9 });
    const bombLimits = { maxBodyBytes: 1_048_576, maxEvents: 500 };
    expect(bomb.length).toBeLessThan(bombLimits.maxBodyBytes);
    expect(httpError(() => readJsonBody(bomb.toString('base64'), true, 'application/json', bombLimits, { contentEncoding: 'gzip' }))).toMatchObject({ statusCode: 413, message: 'the decompressed body exceeds 1048576 bytes' });
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

  it('makes each event without an id a distinct UUIDv7 of the current millisecond, which the registry accepts', () => {
    const event = parseEvents(progress, limits).valid[0]!.event;
    const before = Date.now();
    const ids = Array.from({ length: 1_000 }, () => enrich(event, { userId: 'u', requestId: 'r', receivedAt }).event_id);
    const after = Date.now();
    expect(new Set(ids).size).toBe(ids.length);
    for (const id of ids) {
      expect(validateUuid(id) && uuidVersion(id)).toBe(7);
      const ms = parseInt(id.replaceAll('-', '').slice(0, 12), 16);
      expect(ms).toBeGreaterThanOrEqual(before);
      expect(ms).toBeLessThanOrEqual(after);
      // The variant bits (RFC 9562: 10xx), and the ingest's own schema takes it back.
      expect(id[19]).toMatch(/[89ab]/);
      expect(parseEvents({ ...progress, event_id: id }, limits).rejected).toEqual([]);
    }
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
    // The path parameter as API Gateway hands it over: decoded once already, so taken as it is.
    const parsed = parseEvents(filmProgressPayload('50%off/1', { position_s: 30, duration_s: 100 }), limits);
    expect(parsed.valid[0]!.event).toEqual({ type: 'film_progress', film_id: '50%off/1', position_s: 30, duration_s: 100 });
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
  const failingWith = (error: Error) => createEventProducer(createSender(() => ({ connect: async () => {}, disconnect: async () => {}, send: async () => { throw error; } }) as unknown as Producer), 'ugc.events');
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

  it('gives up at the deadline with an aborted signal, and leaves no timer behind however the send ends', async () => {
    vi.useFakeTimers();
    try {
      const signals: AbortSignal[] = [];
      const outcomes = [async () => {}, async () => { throw new KafkaJSConnectionError('Connection error: ECONNRESET'); }, () => new Promise<void>(() => {})];
      const sender = { send: (_record, options) => { signals.push(options!.signal!); return outcomes.shift()!(); }, disconnect: async () => {} } satisfies Sender;
      const produce = createEventProducer(sender, 'ugc.events');
      await produce([{ value: 'acknowledged' }], 1_000);
      expect(vi.getTimerCount()).toBe(0);
      await expect(produce([{ value: 'failed' }], 1_000)).rejects.toMatchObject({ statusCode: 503 });
      expect(vi.getTimerCount()).toBe(0);
      const hanging = produce([{ value: 'never acknowledged' }], 50).catch((error: unknown) => error);
      await vi.advanceTimersByTimeAsync(50);
      expect(await hanging).toMatchObject({ statusCode: 503, cause: new Error('no acknowledgement within 50 ms') });
      expect(signals.map((s) => s.aborted)).toEqual([false, false, true]);
      expect(vi.getTimerCount()).toBe(0);
    } finally {
      vi.useRealTimers();
    }
  });

  /** Fake producers that record their requests, each outcome taken in turn: 'fail', 'hang' or ok. */
  function fakeProducers(outcomes: string[], options?: Parameters<typeof createSender>[1], connectMs = 0) {
    const made: { sends: number; inFlight: number; maxInFlight: number; disconnected: boolean; requests: string[][]; compressions: (number | undefined)[] }[] = [];
    const sender = createSender(() => {
      const stats = { sends: 0, inFlight: 0, maxInFlight: 0, disconnected: false, requests: [] as string[][], compressions: [] as (number | undefined)[] };
      made.push(stats);
      const request = async (values: string[], compression?: number) => {
        stats.sends += 1;
        stats.requests.push(values);
        stats.compressions.push(compression);
        stats.inFlight += 1;
        stats.maxInFlight = Math.max(stats.maxInFlight, stats.inFlight);
        const outcome = outcomes.shift();
        try {
          await new Promise((r) => setTimeout(r, 5));
          if (outcome === 'fail') throw new KafkaJSConnectionError('Connection error: ECONNRESET');
          if (outcome === 'too-large') throw new KafkaJSProtocolError({ type: 'MESSAGE_TOO_LARGE', code: 10, retriable: false, message: 'too large' } as unknown as Error);
          if (outcome === 'hang') await new Promise(() => {});
          return [];
        } finally {
          stats.inFlight -= 1;
        }
      };
      const values = (messages: Message[]) => messages.map((m) => String(m.value));
      return {
        connect: () => new Promise((r) => setTimeout(r, connectMs)),
        disconnect: async () => { stats.disconnected = true; },
        send: async (record: ProducerRecord) => request(values(record.messages), record.compression),
        sendBatch: async (batch: ProducerBatch) => request(batch.topicMessages!.flatMap((t) => values(t.messages)), batch.compression),
      } as unknown as Producer;
    }, options);
    return { sender, made };
  }

  it('never sends again through a producer whose send failed or is still running (kafkajs rolled its sequence back)', async () => {
    // kafkajs rolls a partition's sequence back when a request fails even if the broker wrote it;
    // another batch on that producer would reuse it and be acknowledged as a duplicate, not stored.
    const { sender, made } = fakeProducers(['fail', 'ok', 'hang', 'ok', 'ok']);
    const produce = createEventProducer(sender, 'ugc.events');
    await expect(produce([{ value: 'a' }], 1_000)).rejects.toMatchObject({ statusCode: 503 });
    await produce([{ value: 'b' }], 1_000);
    await expect(produce([{ value: 'c' }], 50)).rejects.toMatchObject({ statusCode: 503 }); // given up at the deadline
    await produce([{ value: 'd' }], 1_000);
    await produce([{ value: 'e' }], 1_000);
    // 1: failed and dropped; 2: b, then c, which still hangs; 3: d and e.
    expect(made.map((p) => p.sends)).toEqual([1, 2, 2]);
    expect(made[0]!.disconnected).toBe(true);
  });

  it('gives concurrent sends producers of their own up to maxProducers, one request in flight each, and reuses them once idle', async () => {
    const { sender, made } = fakeProducers([], { maxProducers: 4 });
    await Promise.all(Array.from({ length: 4 }, () => sender.send({ topic: 't', messages: [{ value: 'x' }] })));
    await Promise.all(Array.from({ length: 4 }, () => sender.send({ topic: 't', messages: [{ value: 'x' }] })));
    expect(made).toHaveLength(4);
    expect(made.every((p) => p.maxInFlight === 1 && p.sends === 2)).toBe(true);
    await sender.disconnect();
    expect(made.every((p) => p.disconnected)).toBe(true);
  });

  const send = (sender: Sender, value: string, options?: { signal?: AbortSignal }) => sender.send({ topic: 't', acks: -1, messages: [{ value }] }, options);

  it('sends that wait for a busy producer go out together in the next request, in the order they came', async () => {
    const { sender, made } = fakeProducers([], { maxProducers: 1 });
    await Promise.all(['a', 'b', 'c', 'd'].map((v) => send(sender, v)));
    expect(made).toHaveLength(1);
    expect(made[0]!.requests).toEqual([['a'], ['b', 'c', 'd']]);
  });

  it('puts no more than maxBatchBytes of keys and values in one request; a larger send goes alone', async () => {
    const { sender, made } = fakeProducers([], { maxProducers: 1, maxBatchBytes: 10 });
    await Promise.all(['first', 'aaaa', 'bbbb', 'cccc', 'a-larger-value', 'dd'].map((v) => send(sender, v)));
    expect(made[0]!.requests).toEqual([['first'], ['aaaa', 'bbbb'], ['cccc'], ['a-larger-value'], ['dd']]);
  });

  it('fails every send of a request that failed, drops its producer, and goes on with the sends behind it', async () => {
    const { sender, made } = fakeProducers(['ok', 'fail'], { maxProducers: 1 });
    const outcomes = await Promise.allSettled(['a', 'b', 'c'].map((v) => send(sender, v)));
    expect(outcomes.map((o) => o.status)).toEqual(['fulfilled', 'rejected', 'rejected']);
    await send(sender, 'd');
    expect(made.map((p) => p.requests)).toEqual([[['a'], ['b', 'c']], [['d']]]);
    expect(made[0]!.disconnected).toBe(true);
  });

  it('compresses a request of at least minBytes (one send or several together), and none below', async () => {
    const { sender, made } = fakeProducers([], { maxProducers: 1, compression: { codec: CompressionTypes.GZIP, minBytes: 1000 } });
    await send(sender, 'x'.repeat(999));
    await send(sender, 'x'.repeat(1000));
    await Promise.all([send(sender, 'first'), send(sender, 'y'.repeat(600)), send(sender, 'z'.repeat(600))]);
    // None: no codec given to kafkajs (undefined).
    expect(made[0]!.compressions).toEqual([undefined, CompressionTypes.GZIP, undefined, CompressionTypes.GZIP]);
  });

  it('does not send what was given up while its new producer was still connecting', async () => {
    const { sender, made } = fakeProducers([], { maxProducers: 1 }, 50);
    const controller = new AbortController();
    const given = send(sender, 'given-up', { signal: controller.signal });
    setTimeout(() => controller.abort(new Error('no acknowledgement within 10 ms')), 10);
    await expect(given).rejects.toThrow('no acknowledgement');
    await send(sender, 'later');
    expect(made.flatMap((p) => p.requests)).toEqual([['later']]);
  });

  it('refuses the sends still waiting when it is disconnected, and any after', async () => {
    const { sender, made } = fakeProducers(['hang'], { maxProducers: 1 });
    void send(sender, 'stuck').catch(() => {});
    const waiting = send(sender, 'waiting');
    await sender.disconnect();
    await expect(waiting).rejects.toThrow('disconnected');
    await expect(send(sender, 'after')).rejects.toThrow('disconnected');
    expect(made).toHaveLength(1);
  });

  it('answers 413 for events too large alone, and 503 when the request they shared with others was too large', async () => {
    const alone = createEventProducer(fakeProducers(['too-large']).sender, 'ugc.events');
    await expect(alone([{ value: 'big' }], 1_000)).rejects.toMatchObject({ statusCode: 413 });
    const { sender } = fakeProducers(['ok', 'too-large'], { maxProducers: 1 });
    const produce = createEventProducer(sender, 'ugc.events');
    const outcomes = await Promise.allSettled([produce([{ value: 'a' }], 1_000), produce([{ value: 'b' }], 1_000), produce([{ value: 'c' }], 1_000)]);
    expect(outcomes.map((o) => (o.status === 'rejected' ? (o.reason as HttpError).statusCode : 202))).toEqual([202, 503, 503]);
  });

  it('does not send what was given up while it waited for a producer', async () => {
    const { sender, made } = fakeProducers(['hang'], { maxProducers: 1 });
    void send(sender, 'stuck').catch(() => {});
    const controller = new AbortController();
    const waiting = send(sender, 'given-up', { signal: controller.signal });
    controller.abort(new Error('no acknowledgement within 1 ms'));
    await expect(waiting).rejects.toThrow('no acknowledgement');
    await new Promise((r) => setTimeout(r, 20));
    expect(made.flatMap((p) => p.requests)).toEqual([['stuck']]);
  });
});
