import { randomUUID } from 'node:crypto';
import type { APIGatewayProxyEventV2, APIGatewayProxyStructuredResultV2, Context } from 'aws-lambda';
import { Kafka, logLevel, type Message } from 'kafkajs';
import type { EmbeddedKafka } from '../localstack/kafka/embedded.ts';
import { createProducer, eventCompression, requestCompression } from '../shared/kafka.ts';
import { signDevToken } from '../localstack/dev-token.ts';
import { fmt, inTurn, median, pairedRatio, percentile, type Row } from './stats.ts';

type Handler = (event: APIGatewayProxyEventV2, context: Context) => Promise<APIGatewayProxyStructuredResultV2>;

const rounds = 6;
const brokerWarmUpMs = 8_000;
const secret = 'bench-secret-of-sufficient-length';

function eventsBody(batch: number): string {
  const events = Array.from({ length: batch }, (_, i) => ({ type: 'film_progress', film_id: `film-${i % 50}`, position_s: i, duration_s: 6000 }));
  return JSON.stringify(batch === 1 ? events[0] : { events });
}

/**
 * Ingest handler (warm, cached token) vs raw kafkajs produce of the same messages to the same
 * brokers with the same producer settings (idempotent, acks=all, gzip from 1 KiB), alternating rounds so
 * both see the same machine load.
 */
export async function benchIngest(kafka: EmbeddedKafka, topic: string): Promise<{ rows: Row[]; json: Record<string, unknown> }> {
  Object.assign(process.env, { KAFKA_BROKERS: kafka.bootstrapServers, KAFKA_TOPIC: topic, KAFKA_IDEMPOTENT: 'true', JWT_SECRET: secret });
  const { handler } = (await import('../functions/ingest/handler.ts')) as unknown as { handler: Handler };
  const token = await signDevToken('bench-viewer', { secret });
  const context = { awsRequestId: 'bench', getRemainingTimeInMillis: () => 10_000 } as unknown as Context;
  const request = (body: string) => ({
    routeKey: 'POST /v1/events', body, isBase64Encoded: false,
    headers: { 'content-type': 'application/json', authorization: `Bearer ${token}` },
    requestContext: { requestId: randomUUID() },
  }) as unknown as APIGatewayProxyEventV2;

  // The production producer (shared/kafka.ts) on a plain client: what the handler adds is all that differs.
  const rawSettings = { KAFKA_BROKERS: kafka.brokers, KAFKA_CLIENT_ID: 'bench-raw', KAFKA_IDEMPOTENT: true, KAFKA_SSL: false };
  const raw = createProducer(new Kafka({ clientId: 'bench-raw', brokers: kafka.brokers, logLevel: logLevel.NOTHING }), rawSettings);
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
    const handlerRates: number[] = [];
    const rawRates: number[] = [];
    const latencies: number[] = [];
    const rawLatencies: number[] = [];
    const sides = {
      handler: { rates: handlerRates, latencies, call: async () => {
        const res = await handler(request(body), context);
        if (res.statusCode !== 202) throw new Error(`handler answered ${res.statusCode}: ${res.body}`);
      } },
      raw: { rates: rawRates, latencies: rawLatencies,
        call: () => raw.send({ topic, acks: -1, compression: requestCompression(messages, eventCompression), messages }) },
    };
    // Warm up both sides in turn (connections, JIT, the token cache) and the brokers: freshly started JVMs still
    // compile their produce path, and the first few thousand requests' p99 was 2-3x the steady state (10-13 ms
    // against 4-5), a cost the side that ran first took alone.
    const warmUntil = performance.now() + brokerWarmUpMs;
    while (performance.now() < warmUntil) {
      await sides.handler.call();
      await sides.raw.call();
    }
    for (let round = 0; round < rounds; round++) {
      for (const side of inTurn([sides.handler, sides.raw], round)) {
        const start = performance.now();
        for (let i = 0; i < requests; i++) {
          const t = performance.now();
          await side.call();
          side.latencies.push(performance.now() - t);
        }
        side.rates.push((requests * batch) / ((performance.now() - start) / 1000));
      }
    }
    const handlerRate = median(handlerRates);
    const rawRate = median(rawRates);
    // Median of per-round ratios: each round runs both sides back to back, so a slow spell of the shared machine hits both.
    const ratio = pairedRatio(handlerRates, rawRates);
    rows.push({
      benchmark: `ingest handler, batch ${batch} (events/s)`, measured: fmt(handlerRate), baseline: `raw kafkajs send ${fmt(rawRate)}`,
      ratio: fmt(ratio, 2), target: batch === 100 ? '≥ 0.8' : '', verdict: batch === 100 ? (ratio >= 0.8 ? 'ok' : 'MISSED') : '',
    });
    const p50 = percentile(latencies, 50);
    const p99 = percentile(latencies, 99);
    const rawP50 = percentile(rawLatencies, 50);
    const rawP99 = percentile(rawLatencies, 99);
    rows.push({
      benchmark: `ingest handler, batch ${batch} latency p50 / p99 (ms)`, measured: `${fmt(p50, 2)} / ${fmt(p99, 2)}`,
      baseline: `raw kafkajs send ${fmt(rawP50, 2)} / ${fmt(rawP99, 2)}`, ratio: '',
      target: batch === 1 ? 'p99 ≤ 5' : '', verdict: batch === 1 ? (p99 <= 5 ? 'ok' : 'MISSED') : '',
    });
    json[`ingest_batch_${batch}`] = { events_per_s: handlerRate, raw_events_per_s: rawRate, ratio, p50_ms: p50, p99_ms: p99, raw_p50_ms: rawP50, raw_p99_ms: rawP99, rounds };
  }
  await raw.disconnect();
  return { rows, json };
}
