import { randomUUID } from 'node:crypto';
import type { APIGatewayProxyEventV2, APIGatewayProxyStructuredResultV2, Context } from 'aws-lambda';
import { Kafka, logLevel, CompressionTypes, type Message } from 'kafkajs';
import type { EmbeddedBroker } from '../localstack/kafka/broker.ts';
import { signDevToken } from '../localstack/dev-token.ts';
import { fmt, median, percentile, type Row } from './stats.ts';

type Handler = (event: APIGatewayProxyEventV2, context: Context) => Promise<APIGatewayProxyStructuredResultV2>;

const rounds = 5;
const secret = 'bench-secret-of-sufficient-length';

function eventsBody(batch: number): string {
  const events = Array.from({ length: batch }, (_, i) => ({ type: 'film_progress', film_id: `film-${i % 50}`, position_s: i, duration_s: 6000 }));
  return JSON.stringify(batch === 1 ? events[0] : { events });
}

/**
 * Ingest handler (warm, cached token) vs raw kafkajs produce of the same messages to the same
 * broker, alternating rounds so both see the same machine load.
 */
export async function benchIngest(broker: EmbeddedBroker, topic: string): Promise<{ rows: Row[]; json: Record<string, unknown> }> {
  Object.assign(process.env, { KAFKA_BROKERS: broker.bootstrapServers, KAFKA_TOPIC: topic, KAFKA_IDEMPOTENT: 'false', JWT_SECRET: secret });
  const { handler } = (await import('../functions/ingest/handler.ts')) as unknown as { handler: Handler };
  const token = await signDevToken('bench-viewer', { secret });
  const context = { awsRequestId: 'bench', getRemainingTimeInMillis: () => 10_000 } as unknown as Context;
  const request = (body: string) => ({
    routeKey: 'POST /v1/events', body, isBase64Encoded: false,
    headers: { 'content-type': 'application/json', authorization: `Bearer ${token}` },
    requestContext: { requestId: randomUUID() },
  }) as unknown as APIGatewayProxyEventV2;

  const raw = new Kafka({ clientId: 'bench-raw', brokers: broker.brokers, logLevel: logLevel.NOTHING }).producer();
  await raw.connect();
  const rows: Row[] = [];
  const json: Record<string, unknown> = {};
  for (const [batch, requests] of [[1, 2_000], [100, 100]] as const) {
    const body = eventsBody(batch);
    // The raw baseline sends what the handler sends: the same enriched values, keyed by user.
    const messages: Message[] = (JSON.parse(body).events ?? [JSON.parse(body)]).map((e: object) => ({
      key: 'bench-viewer',
      value: JSON.stringify({ ...e, event_id: randomUUID(), user_id: 'bench-viewer', received_at: new Date().toISOString(),
        occurred_at: new Date().toISOString(), request_id: randomUUID(), schema_version: 1 }),
      headers: { 'event-type': 'film_progress', 'schema-version': '1' },
    }));
    for (let i = 0; i < 20; i++) await handler(request(body), context); // warm up: connect, JIT, token cache
    const handlerRates: number[] = [];
    const rawRates: number[] = [];
    const latencies: number[] = [];
    for (let round = 0; round < rounds; round++) {
      let start = performance.now();
      for (let i = 0; i < requests; i++) {
        const t = performance.now();
        const res = await handler(request(body), context);
        latencies.push(performance.now() - t);
        if (res.statusCode !== 202) throw new Error(`handler answered ${res.statusCode}: ${res.body}`);
      }
      handlerRates.push((requests * batch) / ((performance.now() - start) / 1000));
      start = performance.now();
      for (let i = 0; i < requests; i++) await raw.send({ topic, acks: -1, compression: CompressionTypes.GZIP, messages });
      rawRates.push((requests * batch) / ((performance.now() - start) / 1000));
    }
    const handlerRate = median(handlerRates);
    const rawRate = median(rawRates);
    const ratio = handlerRate / rawRate;
    rows.push({
      benchmark: `ingest handler, batch ${batch} (events/s)`, measured: fmt(handlerRate), baseline: `raw kafkajs send ${fmt(rawRate)}`,
      ratio: fmt(ratio, 2), target: batch === 100 ? '≥ 0.5' : '', verdict: batch === 100 ? (ratio >= 0.5 ? 'ok' : 'MISSED') : '',
    });
    const p50 = percentile(latencies, 50);
    const p99 = percentile(latencies, 99);
    rows.push({
      benchmark: `ingest handler, batch ${batch} latency p50 / p99 (ms)`, measured: `${fmt(p50, 2)} / ${fmt(p99, 2)}`, baseline: '', ratio: '',
      target: batch === 1 ? 'p99 ≤ 5' : '', verdict: batch === 1 ? (p99 <= 5 ? 'ok' : 'MISSED') : '',
    });
    json[`ingest_batch_${batch}`] = { events_per_s: handlerRate, raw_events_per_s: rawRate, ratio, p50_ms: p50, p99_ms: p99, rounds };
  }
  await raw.disconnect();
  return { rows, json };
}
