import { randomUUID } from 'node:crypto';
import type { APIGatewayProxyEventV2, APIGatewayProxyStructuredResultV2, Context } from 'aws-lambda';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { signDevToken } from '../../localstack/dev-token.ts';
import { createClickHouse } from '../../shared/clickhouse.ts';
import { HttpError } from '../../shared/errors.ts';
import { createProgressReader } from '../../functions/reader/progress.ts';
import { migratedDatabase, stackEnv } from '../setup/context.ts';

// The reader handler in-process against the shared embedded ClickHouse, in a database of its own.
const secret = 'a-reader-secret-of-sufficient-length';
let db: Awaited<ReturnType<typeof migratedDatabase>>;
let handler: (event: APIGatewayProxyEventV2, context: Context) => Promise<APIGatewayProxyStructuredResultV2>;

beforeAll(async () => {
  const env = stackEnv();
  db = await migratedDatabase(env.CLICKHOUSE_URL!, 'reader');
  Object.assign(process.env, { CLICKHOUSE_URL: env.CLICKHOUSE_URL, CLICKHOUSE_DATABASE: db.database, JWT_SECRET: secret });
  ({ handler } = (await import('../../functions/reader/handler.ts')) as unknown as { handler: typeof handler });
});

afterAll(async () => {
  await db?.drop();
});

interface ProgressRow { user_id: string; film_id: string; position_s: number; duration_s: number | null; occurred_at: string }

async function insertProgress(rows: ProgressRow[]): Promise<void> {
  await db.client.insert({ table: 'film_progress_latest', values: rows.map((r) => ({ ...r, event_id: randomUUID() })), format: 'JSONEachRow' });
}

async function get(routeKey: string, { userId, filmId, query, token }: { userId?: string; filmId?: string; query?: Record<string, string>; token?: string }) {
  const authorization = token ?? (userId ? `Bearer ${await signDevToken(userId, { secret })}` : undefined);
  const event = {
    routeKey, headers: authorization ? { authorization } : {}, isBase64Encoded: false,
    pathParameters: filmId === undefined ? undefined : { film_id: filmId },
    queryStringParameters: query, requestContext: { requestId: randomUUID() },
  } as unknown as APIGatewayProxyEventV2;
  const res = await handler(event, { awsRequestId: randomUUID() } as Context);
  return { status: res.statusCode, headers: res.headers ?? {}, body: JSON.parse(String(res.body)) as Record<string, unknown> };
}

const filmRoute = 'GET /v1/films/{film_id}/progress';
const listRoute = 'GET /v1/progress';

describe('reader against the embedded ClickHouse', () => {
  it('answers the latest position by event time, even when an older event was written last', async () => {
    const userId = `viewer-${randomUUID()}`;
    await insertProgress([{ user_id: userId, film_id: 'f1', position_s: 300, duration_s: 6000, occurred_at: '2024-05-01 10:05:00.000' }]);
    await insertProgress([{ user_id: userId, film_id: 'f1', position_s: 120, duration_s: 6000, occurred_at: '2024-05-01 10:00:00.000' }]);
    const res = await get(filmRoute, { userId, filmId: 'f1' });
    expect(res.status).toBe(200);
    expect(res.body).toEqual({ film_id: 'f1', position_s: 300, duration_s: 6000, updated_at: '2024-05-01T10:05:00.000Z' });
    expect(res.headers['Cache-Control']).toBe('private, no-store');
  });

  it('answers 404 progress_not_found for a film the viewer never watched, and never shows another viewer\'s position', async () => {
    const owner = `viewer-${randomUUID()}`;
    await insertProgress([{ user_id: owner, film_id: 'secret-film', position_s: 42, duration_s: null, occurred_at: '2024-05-01 10:00:00.000' }]);
    const other = await get(filmRoute, { userId: `viewer-${randomUUID()}`, filmId: 'secret-film' });
    expect(other).toMatchObject({ status: 404, body: { code: 'progress_not_found' } });
    // A film id shaped like SQL is a value, not SQL.
    const injected = await get(filmRoute, { userId: owner, filmId: encodeURIComponent("x' OR user_id != '") });
    expect(injected).toMatchObject({ status: 404, body: { code: 'progress_not_found' } });
  });

  it('lists the viewer\'s films newest first, honours ?limit=, and answers an empty list for a new viewer', async () => {
    const userId = `viewer-${randomUUID()}`;
    await insertProgress([
      { user_id: userId, film_id: 'old', position_s: 10, duration_s: 100, occurred_at: '2024-05-01 08:00:00.000' },
      { user_id: userId, film_id: 'newest', position_s: 30, duration_s: null, occurred_at: '2024-05-03 08:00:00.000' },
      { user_id: userId, film_id: 'middle', position_s: 20, duration_s: 100, occurred_at: '2024-05-02 08:00:00.000' },
      { user_id: `viewer-${randomUUID()}`, film_id: 'someone-else', position_s: 1, duration_s: 1, occurred_at: '2024-06-01 08:00:00.000' },
    ]);
    const all = await get(listRoute, { userId });
    expect(all.status).toBe(200);
    expect((all.body.items as { film_id: string }[]).map((i) => i.film_id)).toEqual(['newest', 'middle', 'old']);
    expect(all.body.limit).toBe(20);
    const two = await get(listRoute, { userId, query: { limit: '2' } });
    expect((two.body.items as { film_id: string }[]).map((i) => i.film_id)).toEqual(['newest', 'middle']);
    expect(await get(listRoute, { userId: `viewer-${randomUUID()}` })).toMatchObject({ status: 200, body: { items: [] } });
  });

  it('answers 400 invalid_limit and 400 invalid_film_id before touching ClickHouse', async () => {
    const userId = 'viewer-x';
    expect(await get(listRoute, { userId, query: { limit: '0' } })).toMatchObject({ status: 400, body: { code: 'invalid_limit' } });
    expect(await get(listRoute, { userId, query: { limit: '101' } })).toMatchObject({ status: 400, body: { code: 'invalid_limit' } });
    expect(await get(listRoute, { userId, query: { limit: '1; DROP TABLE events' } })).toMatchObject({ status: 400, body: { code: 'invalid_limit' } });
    expect(await get(filmRoute, { userId, filmId: 'x'.repeat(65) })).toMatchObject({ status: 400, body: { code: 'invalid_film_id' } });
  });

  it('answers 401 with a code and WWW-Authenticate without a valid token', async () => {
    const missing = await get(listRoute, {});
    expect(missing).toMatchObject({ status: 401, body: { code: 'missing_token' } });
    const forged = await get(filmRoute, { filmId: 'f1', token: 'Bearer eyJhbGciOiJub25lIn0.eyJzdWIiOiJ4In0.' });
    expect(forged).toMatchObject({ status: 401, body: { code: 'invalid_token' } });
    expect(forged.headers['WWW-Authenticate']).toMatch(/^Bearer/);
  });

  it('reads positions the writer path produced: events → materialized view → film_progress_latest', async () => {
    const userId = `viewer-${randomUUID()}`;
    await db.client.insert({
      table: 'events', format: 'JSONEachRow',
      values: [{ event_id: randomUUID(), event_type: 'film_progress', schema_version: 1, user_id: userId, film_id: 'mv-film',
        occurred_at: '2024-05-01 10:00:00.000', received_at: '2024-05-01 10:00:00.100', request_id: 'r', position_s: 77, duration_s: 600,
        kafka_topic: 't', kafka_partition: 0, kafka_offset: 1 }],
    });
    expect(await get(filmRoute, { userId, filmId: 'mv-film' })).toMatchObject({ status: 200, body: { position_s: 77, duration_s: 600 } });
  });

  it('turns an unreachable ClickHouse into 503 clickhouse_unavailable, never a 500', async () => {
    const settings = { CLICKHOUSE_URL: 'http://127.0.0.1:9', CLICKHOUSE_USER: 'default', CLICKHOUSE_PASSWORD: '', CLICKHOUSE_DATABASE: 'x', CLICKHOUSE_REQUEST_TIMEOUT_MS: 1_000 };
    const client = createClickHouse(settings);
    try {
      const error = await createProgressReader(client).recentProgress('u', 1).catch((e: unknown) => e);
      expect(error).toBeInstanceOf(HttpError);
      expect(error).toMatchObject({ statusCode: 503, code: 'clickhouse_unavailable', headers: { 'Retry-After': '1' } });
    } finally {
      await client.close();
    }
  });
});
