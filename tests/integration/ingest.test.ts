import { randomUUID } from 'node:crypto';
import type { APIGatewayProxyEventV2, APIGatewayProxyStructuredResultV2, Context } from 'aws-lambda';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startEmbeddedBroker, type EmbeddedBroker } from '../../localstack/kafka/broker.ts';
import { signDevToken } from '../../localstack/dev-token.ts';
import { readTopic } from '../setup/kafka.ts';

// This file runs the ingest handler in-process against its own broker, so it can take it down.
const topic = `ingest-test-${randomUUID().slice(0, 8)}`;
const secret = 'an-integration-secret-of-sufficient-length';
let broker: EmbeddedBroker;
let handler: (event: APIGatewayProxyEventV2, context: Context) => Promise<APIGatewayProxyStructuredResultV2>;

beforeAll(async () => {
  broker = await startEmbeddedBroker({ brokers: 3, topics: [{ name: topic, partitions: 4 }] });
  Object.assign(process.env, {
    KAFKA_BROKERS: broker.bootstrapServers, KAFKA_TOPIC: topic, KAFKA_IDEMPOTENT: 'false',
    JWT_SECRET: secret, MAX_BODY_BYTES: '65536', MAX_EVENTS_PER_REQUEST: '50', PRODUCE_TIMEOUT_MS: '3000',
  });
  ({ handler } = (await import('../../functions/ingest/handler.ts')) as unknown as { handler: typeof handler });
});

afterAll(async () => {
  await broker?.stop();
});

const context = (remainingMs = 10_000) =>
  ({ awsRequestId: randomUUID(), getRemainingTimeInMillis: () => remainingMs }) as unknown as Context;

async function post(body: string, { userId = 'viewer-1', contentType = 'application/json', token }: { userId?: string; contentType?: string; token?: string } = {}) {
  const authorization = `Bearer ${token ?? (await signDevToken(userId, { secret }))}`;
  const event = {
    routeKey: 'POST /v1/events', rawPath: '/v1/events', body, isBase64Encoded: false,
    headers: { 'content-type': contentType, authorization },
    requestContext: { requestId: randomUUID() },
  } as unknown as APIGatewayProxyEventV2;
  const res = await handler(event, context());
  return { status: res.statusCode, headers: res.headers ?? {}, body: JSON.parse(String(res.body)) as Record<string, unknown> };
}

describe('ingest against the embedded Kafka broker', () => {
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
    const messages = (await readTopic(broker.brokers, topic, 1, { settleMs: 1_000 })).filter((m) => String(m.key) === userId);
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

    const messages = (await readTopic(broker.brokers, topic, 2)).filter((m) => String(m.key) === userId);
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

  it('answers 503 with Retry-After, never 202, while every broker is down; 202 again once they are back', async () => {
    await broker.brokerDown(-1);
    try {
      const started = Date.now();
      const res = await post(JSON.stringify({ type: 'click', url: '/home', element: 'play' }));
      expect(res).toMatchObject({ status: 503, body: { code: 'kafka_unavailable' } });
      expect(res.headers['Retry-After']).toBeDefined();
      expect(Date.now() - started).toBeLessThan(9_500);
    } finally {
      await broker.brokerUp(-1);
    }
    const again = await post(JSON.stringify({ type: 'click', url: '/home', element: 'play' }));
    expect(again.status).toBe(202);
  });
});
