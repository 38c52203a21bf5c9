import { randomUUID } from 'node:crypto';
import { Kafka, logLevel } from 'kafkajs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startOffline, type Offline } from '../../localstack/offline.ts';
import { signDevToken } from '../../localstack/dev-token.ts';
import { eventually, freePort, settled } from '../setup/context.ts';
import { ownPipeline, type OwnPipeline } from '../setup/pipeline.ts';
import { readTopic } from '../setup/kafka.ts';

const secret = 'an-e2e-secret-of-sufficient-length';
let offline: Offline;
let pipeline: OwnPipeline;

beforeAll(async () => {
  pipeline = await ownPipeline('e2e');
  offline = await startOffline({
    env: { ...pipeline.env, JWT_SECRET: secret },
    httpPort: await freePort(),
    lambdaPort: await freePort(),
  });
}, 180_000);

afterAll(async () => {
  await offline?.stop();
  await pipeline?.drop();
});

describe('through serverless offline over HTTP', () => {
  it('a POST with a signed token ends as a row in ClickHouse, for the user in the token', async () => {
    const userId = `viewer-${randomUUID()}`;
    const eventId = randomUUID();
    const res = await fetch(`${offline.url}/v1/events`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', authorization: `Bearer ${await signDevToken(userId, { secret })}` },
      body: JSON.stringify({ type: 'film_progress', event_id: eventId, film_id: 'tt0111161', position_s: 120, duration_s: 8520 }),
    });
    expect(res.status).toBe(202);
    expect(await res.json()).toEqual({ accepted: 1, rejected: [] });

    const row = await eventually(async () => {
      const result = await pipeline.db.client.query({
        query: 'SELECT user_id, film_id, position_s, event_type FROM events WHERE event_id = {id:UUID}',
        query_params: { id: eventId },
        format: 'JSONEachRow',
      });
      return (await result.json())[0];
    }, 30_000, 'the event in ClickHouse');
    expect(row).toEqual({ user_id: userId, film_id: 'tt0111161', position_s: 120, event_type: 'film_progress' });

    // The view's rows commit after the events part, so a read right after may not see them yet.
    const latest = await settled(async () => (await pipeline.db.client.query({
      query: 'SELECT position_s FROM film_progress_latest FINAL WHERE user_id = {u:String}',
      query_params: { u: userId },
      format: 'JSONEachRow',
    })).json(), [{ position_s: 120 }]);
    expect(latest).toEqual([{ position_s: 120 }]);
  });

  it('sends a poison record to the dead-letter topic with its reason (the bundled writer produces)', async () => {
    const { env } = pipeline;
    const marker = randomUUID();
    const brokers = env.KAFKA_BROKERS!.split(',');
    const kafka = new Kafka({ brokers, logLevel: logLevel.NOTHING });
    const producer = kafka.producer({ idempotent: true, maxInFlightRequests: 1 });
    await producer.connect();
    await producer.send({ topic: env.KAFKA_TOPIC!, messages: [{ key: marker, value: JSON.stringify({ type: 'teleport', marker }) }] });
    await producer.disconnect();
    const [dead] = await readTopic(brokers, env.KAFKA_DLQ_TOPIC!, 1,
      { timeoutMs: 30_000, match: (m) => String(m.value).includes(marker) });
    expect(String(dead!.headers?.['dlq-reason'])).toMatch(/^invalid event: type must be one of film_progress/);
  });

  it('refuses a request without a valid token with 401 and a code', async () => {
    const res = await fetch(`${offline.url}/v1/events`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', authorization: 'Bearer forged.token.here' },
      body: JSON.stringify({ type: 'film_rating', film_id: 'f', score: 5 }),
    });
    expect(res.status).toBe(401);
    expect(res.headers.get('www-authenticate')).toMatch(/^Bearer/);
    expect(await res.json()).toMatchObject({ code: 'invalid_token' });
  });

  it('answers a request whose function fails as API Gateway does: 500 {"message":"Internal Server Error"}, the reason in the log only', async () => {
    // A reader whose configuration is malformed: its cold start throws, naming the variable.
    const broken = await startOffline({ env: { ...pipeline.env, JWT_SECRET: secret, READ_MAX_LIMIT: 'banana' }, httpPort: await freePort(), lambdaPort: await freePort() });
    let output = '';
    broken.process.stdout?.on('data', (chunk: Buffer) => (output += chunk.toString()));
    broken.process.stderr?.on('data', (chunk: Buffer) => (output += chunk.toString()));
    try {
      const res = await fetch(`${broken.url}/v1/progress`, { headers: { authorization: `Bearer ${await signDevToken('v', { secret })}` } });
      const body = await res.text();
      // (offline's HTTP server adds a charset to every text type; API Gateway sends application/json alone)
      expect({ status: res.status, type: res.headers.get('content-type')?.split(';')[0], body }).toEqual({ status: 500, type: 'application/json', body: '{"message":"Internal Server Error"}' });
      await eventually(async () => expect(output, "the reason, in offline's log").toContain('READ_MAX_LIMIT'), 10_000, 'the reason in the log');
      // The other functions are untouched.
      expect((await fetch(`${broken.url}/v1/health`)).status).toBe(200);
    } finally {
      await broken.stop();
    }
  }, 180_000);

  it('answers malformed JSON with 400, never a 5xx', async () => {
    const res = await fetch(`${offline.url}/v1/events`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', authorization: `Bearer ${await signDevToken('v', { secret })}` },
      body: '{"type":',
    });
    expect(res.status).toBe(400);
    expect(await res.json()).toMatchObject({ code: 'malformed_json' });
  });

  it('answers every kind of JSON value as the whole body with a 4xx and a code, as on AWS, where the body is always text', async () => {
    const token = `Bearer ${await signDevToken('v', { secret })}`;
    const answers: string[] = [];
    for (const [path, body] of [['/v1/events', 'false'], ['/v1/events', '0'], ['/v1/events', 'null'], ['/v1/events', 'true'], ['/v1/events', '[]'],
      ['/v1/events', '"text"'], ['/v1/events', '-1.5'], ['/v1/films/tt1/progress', 'false'], ['/v1/films/tt1/progress', '0'], ['/v1/films/tt1/progress', 'null']] as const) {
      const res = await fetch(`${offline.url}${path}`, { method: 'POST', headers: { 'content-type': 'application/json', authorization: token }, body });
      const answer = (await res.json()) as { code?: string };
      answers.push(`${path} ${body} -> ${res.status} ${answer.code}`);
    }
    for (const line of answers) expect(line).toMatch(/-> 4\d\d [a-z_]+$/);
  });

  it('takes a film id in the path as the viewer sent it, decoded once: 50%off and a%41b stay themselves', async () => {
    const token = `Bearer ${await signDevToken(`viewer-${randomUUID()}`, { secret })}`;
    for (const filmId of ['50%off', 'a%41b']) {
      const path = `${offline.url}/v1/films/${encodeURIComponent(filmId)}/progress`;
      const posted = await fetch(path, { method: 'POST', headers: { 'content-type': 'application/json', authorization: token }, body: JSON.stringify({ position_s: 42, duration_s: 100 }) });
      expect(posted.status, filmId).toBe(202);
      const progress = await eventually(async () => {
        const res = await fetch(path, { headers: { authorization: token } });
        return res.status === 200 ? ((await res.json()) as { film_id: string; position_s: number }) : undefined;
      }, 20_000, `${filmId} readable`);
      expect(progress).toMatchObject({ film_id: filmId, position_s: 42 });
    }
  });
});
