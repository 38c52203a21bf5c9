import { randomUUID } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { APIGatewayProxyEventV2, APIGatewayProxyStructuredResultV2, Context } from 'aws-lambda';
import { gzipSync } from 'node:zlib';
import { SignJWT } from 'jose';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { startEmbeddedKafka, type EmbeddedKafka } from '../../localstack/kafka/embedded.ts';
import { signDevToken } from '../../localstack/dev-token.ts';
import { stackEnv, uniqueName } from '../setup/context.ts';
import { productTopicConfigs, readTopic, testTopics } from '../setup/kafka.ts';

// The ingest handler in-process, on the shared embedded Kafka with a topic of this file's own.
const topic = uniqueName('ingest-test');
const secret = 'an-integration-secret-of-sufficient-length';
type Handler = (event: APIGatewayProxyEventV2, context: Context) => Promise<APIGatewayProxyStructuredResultV2>;
let brokers: string[];
let topics: ReturnType<typeof testTopics>;
let handler: Handler;

/** A fresh ingest container (config read at import, clients created once) for these brokers. */
async function coldStartIngest(kafkaBrokers: string): Promise<Handler> {
  Object.assign(process.env, {
    KAFKA_BROKERS: kafkaBrokers, KAFKA_TOPIC: topic,
    JWT_SECRET: secret, MAX_BODY_BYTES: '65536', MAX_EVENTS_PER_REQUEST: '50', PRODUCE_TIMEOUT_MS: '3000',
  });
  vi.resetModules();
  return ((await import('../../functions/ingest/handler.ts')) as unknown as { handler: Handler }).handler;
}

beforeAll(async () => {
  const env = stackEnv();
  brokers = env.KAFKA_BROKERS!.split(',');
  topics = testTopics(brokers);
  await topics.create({ name: topic, partitions: 4, configs: productTopicConfigs });
  handler = await coldStartIngest(env.KAFKA_BROKERS!);
});

afterAll(async () => {
  await topics?.drop();
});

const context = (remainingMs = 10_000) =>
  ({ awsRequestId: randomUUID(), getRemainingTimeInMillis: () => remainingMs }) as unknown as Context;

async function post(body: string, { userId = 'viewer-1', contentType = 'application/json', token, via = handler }: { userId?: string; contentType?: string; token?: string; via?: Handler } = {}) {
  const authorization = `Bearer ${token ?? (await signDevToken(userId, { secret }))}`;
  const event = {
    routeKey: 'POST /v1/events', rawPath: '/v1/events', body, isBase64Encoded: false,
    headers: { 'content-type': contentType, authorization },
    requestContext: { requestId: randomUUID() },
  } as unknown as APIGatewayProxyEventV2;
  const res = await via(event, context());
  return { status: res.statusCode, headers: res.headers ?? {}, body: JSON.parse(String(res.body)) as Record<string, unknown> };
}

describe('ingest against the embedded Kafka', () => {
  it('turns POST /v1/films/{film_id}/progress into one film_progress message for the token user', async () => {
    const userId = `viewer-${randomUUID()}`;
    const event = {
      routeKey: 'POST /v1/films/{film_id}/progress', body: JSON.stringify({ position_s: 42, duration_s: 5400 }), isBase64Encoded: false,
      pathParameters: { film_id: 'tt0068646' },
      headers: { 'content-type': 'application/json', authorization: `Bearer ${await signDevToken(userId, { secret })}` },
      requestContext: { requestId: randomUUID() },
    } as unknown as APIGatewayProxyEventV2;
    const res = await handler(event, context());
    expect(res.statusCode).toBe(202);
    const messages = (await readTopic(brokers, topic, 1, { settleMs: 1_000 })).filter((m) => String(m.key) === userId);
    expect(messages).toHaveLength(1);
    expect(JSON.parse(String(messages[0]!.value))).toMatchObject({ type: 'film_progress', film_id: 'tt0068646', position_s: 42, duration_s: 5400, user_id: userId });
  });

  it('answers GET /v1/health with Kafka reachability', async () => {
    const res = await handler({ routeKey: 'GET /v1/health', headers: {}, requestContext: {} } as unknown as APIGatewayProxyEventV2, context());
    expect(res.statusCode).toBe(200);
    expect(JSON.parse(String(res.body))).toEqual({ status: 'ok', kafka: 'reachable' });
  });

  it('produces one message per accepted event, keyed by the token user, with type headers, and answers 202 after the ack', async () => {
    const userId = `viewer-${randomUUID()}`;
    const events = [
      { type: 'film_progress', event_id: randomUUID(), film_id: 'f1', position_s: 60 },
      { type: 'film_rating', event_id: randomUUID(), film_id: 'f1', score: 9 },
      { type: 'film_rating', film_id: 'f1', score: 99 },
    ];
    const res = await post(JSON.stringify({ events }), { userId });
    expect(res.status).toBe(202);
    expect(res.body.accepted).toBe(2);
    expect(res.body.rejected).toEqual([{ index: 2, code: 'invalid_event', message: expect.stringContaining('score') }]);

    const messages = (await readTopic(brokers, topic, 2)).filter((m) => String(m.key) === userId);
    expect(messages).toHaveLength(2);
    // Keyed by user: one partition, in the order sent.
    expect(new Set(messages.map((m) => m.partition)).size).toBe(1);
    const values = messages.map((m) => JSON.parse(String(m.value)) as Record<string, unknown>);
    expect(values.map((v) => v.event_id)).toEqual([events[0]!.event_id, events[1]!.event_id]);
    expect(values[0]).toMatchObject({ type: 'film_progress', user_id: userId, film_id: 'f1', position_s: 60, schema_version: 1 });
    expect(String(messages[1]!.headers?.['event-type'])).toBe('film_rating');
    expect(String(messages[1]!.headers?.['schema-version'])).toBe('1');
  });

  it('answers malformed JSON, wrong content type, oversize bodies and all-invalid batches with 4xx codes', async () => {
    expect(await post('{"type":')).toMatchObject({ status: 400, body: { code: 'malformed_json' } });
    expect(await post('{}', { contentType: 'text/plain' })).toMatchObject({ status: 415, body: { code: 'unsupported_media_type' } });
    expect(await post(JSON.stringify({ type: 'search', query: 'x'.repeat(70_000), results_count: 1 }))).toMatchObject({ status: 413, body: { code: 'payload_too_large' } });
    expect(await post(JSON.stringify({ events: [{ type: 'nope' }] }))).toMatchObject({ status: 400, body: { code: 'no_valid_events' } });
    const forged = await post('{}', { token: 'eyJhbGciOiJub25lIn0.eyJzdWIiOiJ4In0.' });
    expect(forged.status).toBe(401);
    expect(forged.headers['WWW-Authenticate']).toMatch(/^Bearer/);
  });


  it('takes the unload form (text/plain, token in the body) with the header\'s checks: stored for the token\'s user, never with the token', async () => {
    const userId = `viewer-${randomUUID()}`;
    const token = await signDevToken(userId, { secret });
    const lines: string[] = [];
    const write = process.stdout.write.bind(process.stdout);
    const spy = vi.spyOn(process.stdout, 'write').mockImplementation((chunk: string | Uint8Array, ...rest: unknown[]) => {
      lines.push(String(chunk));
      return write(chunk, ...(rest as []));
    });
    const beacon = (body: unknown, headers: Record<string, string> = {}) => handler({
      routeKey: 'POST /v1/events', body: JSON.stringify(body), isBase64Encoded: false,
      headers: { 'content-type': 'text/plain;charset=UTF-8', ...headers }, requestContext: { requestId: randomUUID() },
    } as unknown as APIGatewayProxyEventV2, context());
    try {
      const event = { type: 'film_progress', film_id: 'f-beacon', position_s: 77, event_id: randomUUID() };
      expect((await beacon({ token, events: [event] })).statusCode).toBe(202);
      // Refused: no token, a bad signature, an expired token, a wrong audience's checks are the header's, both tokens at once.
      const expired = await signDevToken(userId, { secret, expiresIn: -60 });
      const forged = await signDevToken(userId, { secret: 'another-secret-of-sufficient-length' });
      const refused = [
        await beacon({ events: [{ ...event, event_id: randomUUID() }] }),
        await beacon({ token: forged, events: [{ ...event, event_id: randomUUID() }] }),
        await beacon({ token: expired, events: [{ ...event, event_id: randomUUID() }] }),
        await beacon({ token: 42, events: [{ ...event, event_id: randomUUID() }] }),
        await beacon({ token, events: [{ ...event, event_id: randomUUID() }] }, { authorization: `Bearer ${token}` }),
      ];
      expect(refused.map((r) => [r.statusCode, JSON.parse(String(r.body)).code])).toEqual([
        [401, 'missing_token'], [401, 'invalid_token'], [401, 'token_expired'], [401, 'invalid_token'], [400, 'conflicting_tokens'],
      ]);
      const messages = await readTopic(brokers, topic, 1, { settleMs: 1_500, match: (m) => String(m.key) === userId });
      expect(messages.map((m) => JSON.parse(String(m.value)).event_id)).toEqual([event.event_id]);
      expect(String(messages[0]!.value)).not.toContain(token);
      expect(lines.join('')).not.toContain(token);
      expect(lines.join('')).not.toContain(forged);
    } finally {
      spy.mockRestore();
    }
  });

  it('stores a gzip batch handed over base64 and refuses a zip bomb with 413 and broken gzip with 400 malformed_gzip', async () => {
    const userId = `viewer-${randomUUID()}`;
    const authorization = `Bearer ${await signDevToken(userId, { secret })}`;
    const gz = (body: Buffer | string) => handler({
      routeKey: 'POST /v1/events', body: gzipSync(body).toString('base64'), isBase64Encoded: true,
      headers: { 'content-type': 'application/json', 'content-encoding': 'gzip', authorization }, requestContext: { requestId: randomUUID() },
    } as unknown as APIGatewayProxyEventV2, context());
    const events = Array.from({ length: 20 }, (_, i) => ({ type: 'film_progress', film_id: 'f-gzip', position_s: i, event_id: randomUUID() }));
    expect((await gz(JSON.stringify({ events }))).statusCode).toBe(202);
    const bomb = await gz(Buffer.alloc(64 * 1024 * 1024, 32));
    expect([bomb.statusCode, JSON.parse(String(bomb.body)).code]).toEqual([413, 'payload_too_large']);
    const broken = await handler({
      routeKey: 'POST /v1/events', body: Buffer.from('not gzip').toString('base64'), isBase64Encoded: true,
      headers: { 'content-type': 'application/json', 'content-encoding': 'gzip', authorization }, requestContext: { requestId: randomUUID() },
    } as unknown as APIGatewayProxyEventV2, context());
    expect([broken.statusCode, JSON.parse(String(broken.body)).code]).toEqual([400, 'malformed_gzip']);
    const messages = await readTopic(brokers, topic, 20, { settleMs: 1_500, match: (m) => String(m.key) === userId });
    expect(messages.map((m) => JSON.parse(String(m.value)).position_s).sort((a, b) => a - b)).toEqual(events.map((e) => e.position_s));
  });

  it('takes an integer sub, and an integer JWT_USER_CLAIM, as the decimal string user id', async () => {
    const numeric = await new SignJWT({ sub: 12345 } as unknown as Record<string, unknown>).setProtectedHeader({ alg: 'HS256' }).setExpirationTime('5m').sign(new TextEncoder().encode(secret));
    expect((await post(JSON.stringify({ type: 'click', url: '/n', element: 'play' }), { token: numeric })).status).toBe(202);
    const fractional = await new SignJWT({ sub: 1.5 } as unknown as Record<string, unknown>).setProtectedHeader({ alg: 'HS256' }).setExpirationTime('5m').sign(new TextEncoder().encode(secret));
    expect(await post(JSON.stringify({ type: 'click', url: '/n', element: 'play' }), { token: fractional })).toMatchObject({ status: 401, body: { message: "the token's sub claim must be a non-empty string or an integer" } });
    process.env.JWT_USER_CLAIM = 'uid';
    let byClaim: Handler;
    try {
      byClaim = await coldStartIngest(brokers.join(','));
    } finally {
      delete process.env.JWT_USER_CLAIM;
    }
    const uid = await new SignJWT({ uid: 987 }).setProtectedHeader({ alg: 'HS256' }).setSubject('ignored').setExpirationTime('5m').sign(new TextEncoder().encode(secret));
    expect((await post(JSON.stringify({ type: 'click', url: '/u', element: 'play' }), { token: uid, via: byClaim })).status).toBe(202);
    const messages = await readTopic(brokers, topic, 2, { settleMs: 1_500, match: (m) => ['12345', '987'].includes(String(m.key)) });
    expect(messages.map((m) => [String(m.key), JSON.parse(String(m.value)).user_id]).sort()).toEqual([['12345', '12345'], ['987', '987']]);
  });
});

// Every broker down: a cluster of this file's own (one broker, so one kill takes all of them down).
// tests/reliability/ covers the whole pipeline through outages; this checks the ingest's answer.
describe('ingest while every Kafka broker is down', () => {
  let dataDir: string;
  let kafka: EmbeddedKafka;
  let ingest: Handler;

  beforeAll(async () => {
    dataDir = await mkdtemp(join(tmpdir(), 'ugc-ingest-test-kafka-'));
    kafka = await startEmbeddedKafka({ dataDir, brokers: 1, port: 0, topics: [{ name: topic, partitions: 4, configs: productTopicConfigs }] });
    ingest = await coldStartIngest(kafka.bootstrapServers);
  }, 120_000);

  afterAll(async () => {
    await kafka?.stop();
    if (dataDir) await rm(dataDir, { recursive: true, force: true });
  });

  it('answers 503 kafka_unavailable with Retry-After, never 202, and 202 again once the broker is back', { timeout: 120_000 }, async () => {
    const click = JSON.stringify({ type: 'click', url: '/home', element: 'play' });
    expect((await post(click, { via: ingest })).status).toBe(202); // connected: the outage comes later
    await kafka.kill(1);
    try {
      const res = await post(click, { via: ingest });
      expect(res).toMatchObject({ status: 503, body: { code: 'kafka_unavailable' } });
      expect(res.headers['Retry-After']).toBeDefined();
    } finally {
      await kafka.restart(1);
    }
    const again = await post(click, { via: ingest });
    expect(again.status).toBe(202);
  });
});
