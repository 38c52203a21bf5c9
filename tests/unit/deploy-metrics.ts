import { Readable } from 'node:stream';
import { randomUUID } from 'node:crypto';
import type { APIGatewayProxyEventV2, Context, MSKEvent } from 'aws-lambda';
import { vi } from 'vitest';
import { signDevToken } from '../../localstack/dev-token.ts';

/** One metric as CloudWatch files it: namespace, name and the full dimension set (its identity). */
export interface EmittedMetric { namespace: string; name: string; dimensions: Record<string, string> }

const secret = 'a-secret-for-the-metrics-capture-only';

/** The CloudWatch metrics in the EMF documents a process writes to stdout while `run` runs. */
async function captureEmf(run: () => Promise<void>): Promise<EmittedMetric[]> {
  const lines: string[] = [];
  const write = process.stdout.write.bind(process.stdout);
  const spy = vi.spyOn(process.stdout, 'write').mockImplementation(((chunk: string | Uint8Array, ...rest: unknown[]) => {
    const text = String(chunk);
    if (text.includes('"_aws"')) { lines.push(...text.split('\n').filter(Boolean)); return true; }
    return write(chunk, ...(rest as []));
  }) as typeof process.stdout.write);
  try {
    await run();
  } finally {
    spy.mockRestore();
  }
  return lines.flatMap((line) => {
    const doc = JSON.parse(line) as { _aws: { CloudWatchMetrics: { Namespace: string; Dimensions: string[][]; Metrics: { Name: string }[] }[] } } & Record<string, unknown>;
    return doc._aws.CloudWatchMetrics.flatMap(({ Namespace, Dimensions, Metrics }) =>
      Dimensions.flatMap((keys) => Metrics.map(({ Name }) => ({
        namespace: Namespace, name: Name, dimensions: Object.fromEntries(keys.map((k) => [k, String(doc[k])])),
      }))));
  });
}

/** A fresh container of a function (its config and clients are made at import) with this environment. */
async function coldStart<T>(module: string, env: Record<string, string>): Promise<T> {
  vi.resetModules();
  Object.assign(process.env, env);
  return (await import(module)) as T;
}

const context = () => ({ awsRequestId: randomUUID(), functionName: 'capture', getRemainingTimeInMillis: () => 10_000 }) as unknown as Context;

/**
 * The metrics the ingest and the writer emit, captured from their EMF output: the real handlers,
 * with the namespace and service names the packaged template gives them, on fake Kafka and
 * ClickHouse clients, driven through what a dashboard and the alarms must show (accepted events,
 * rejected events and requests, a request Kafka did not acknowledge, a batch with a poison record).
 */
export async function emittedMetrics(telemetryEnv: { ingest: Record<string, string>; writer: Record<string, string> }): Promise<EmittedMetric[]> {
  const saved = { ...process.env };
  // Kafka acknowledges every send but those made while `kafkaDown` is set.
  let kafkaDown = false;
  const producer = {
    connect: async () => {}, disconnect: async () => {}, on: () => () => {},
    send: async () => { if (kafkaDown) throw new Error('the broker did not acknowledge'); return []; },
  };
  vi.doMock('../../shared/kafka.ts', async (original) => ({
    ...(await original<typeof import('../../shared/kafka.ts')>()),
    createKafka: () => ({ admin: () => ({ connect: async () => {}, describeCluster: async () => ({}) }) }),
    createProducer: () => producer,
  }));
  vi.doMock('../../shared/clickhouse.ts', async (original) => ({
    ...(await original<typeof import('../../shared/clickhouse.ts')>()),
    // The writer's insert: exec with the body as a stream, read to its end as a server would.
    clickHouseWithStoredPassword: () => Object.assign(async () => ({
      exec: async ({ values }: { values?: AsyncIterable<unknown> }) => {
        for await (const chunk of values ?? []) void chunk;
        return { stream: Readable.from([]) };
      },
    }), { rejected: () => {} }),
  }));
  const common = {
    POWERTOOLS_METRICS_DISABLED: 'false', POWERTOOLS_LOG_LEVEL: 'SILENT', KAFKA_BROKERS: 'fake-broker:9092',
    KAFKA_SASL_MECHANISM: '', KAFKA_SASL_SECRET_ARN: '', KAFKA_TOPIC: 'ugc.events', KAFKA_DLQ_TOPIC: 'ugc.events.dlq',
  };
  try {
    const ingest = await captureEmf(async () => {
      const { handler } = await coldStart<{ handler: (e: APIGatewayProxyEventV2, c: Context) => Promise<unknown> }>(
        '../../functions/ingest/handler.ts',
        { ...common, ...telemetryEnv.ingest, JWT_SECRET: secret, JWT_SECRET_PARAMETER: '', JWT_JWKS_URL: '', JWT_ISSUER: '', JWT_AUDIENCE: '' },
      );
      const post = async (body: unknown, authorization?: string) => handler({
        routeKey: 'POST /v1/events', rawPath: '/v1/events', body: JSON.stringify(body), isBase64Encoded: false,
        headers: { 'content-type': 'application/json', ...(authorization ? { authorization } : {}) },
        requestContext: { requestId: randomUUID() },
      } as unknown as APIGatewayProxyEventV2, context());
      const token = `Bearer ${await signDevToken('viewer-1', { secret })}`;
      const progress = { type: 'film_progress', film_id: 'tt0111161', position_s: 120, duration_s: 8520 };
      await post(progress, token); // 202: produced
      await post({ events: [progress, { type: 'no_such_type' }] }, token); // 202, one event rejected
      await post(progress); // 401: no token
      kafkaDown = true;
      await post(progress, token); // 503 kafka_unavailable
      kafkaDown = false;
    });
    const writer = await captureEmf(async () => {
      const { handler } = await coldStart<{ handler: (e: MSKEvent, c: Context) => Promise<unknown> }>(
        '../../functions/writer/handler.ts',
        { ...common, ...telemetryEnv.writer, CLICKHOUSE_URL: 'http://fake-clickhouse:8123', CLICKHOUSE_PASSWORD_SECRET_ARN: '' },
      );
      const { enrich, toKafkaMessage } = await import('../../functions/ingest/messages.ts');
      const { parseEvents } = await import('../../functions/ingest/parse.ts');
      const [valid] = parseEvents({ type: 'film_rating', film_id: 'tt0111161', score: 8 }, { maxBodyBytes: 4096, maxEvents: 1 }).valid;
      const message = toKafkaMessage(enrich(valid!.event, { userId: 'viewer-1', requestId: 'r1', receivedAt: new Date() }));
      const b64 = (v: unknown) => Buffer.from(String(v)).toString('base64');
      const record = (offset: number, value: string) => ({
        topic: 'ugc.events', partition: 0, offset, timestamp: Date.now(), timestampType: 'CREATE_TIME' as const, key: b64(message.key), value: b64(value),
        headers: Object.entries(message.headers ?? {}).map(([k, v]) => ({ [k]: [...Buffer.from(String(v))] })),
      });
      await handler({
        eventSource: 'aws:kafka', eventSourceArn: 'arn:aws:kafka:eu-west-1:123456789012:cluster/c/1', bootstrapServers: 'fake-broker:9092',
        records: { 'ugc.events-0': [record(0, String(message.value)), record(1, 'not json')] },
      } as MSKEvent, context());
    });
    return [...ingest, ...writer];
  } finally {
    vi.doUnmock('../../shared/kafka.ts');
    vi.doUnmock('../../shared/clickhouse.ts');
    vi.resetModules();
    for (const key of Object.keys(process.env)) if (!(key in saved)) delete process.env[key];
    Object.assign(process.env, saved);
  }
}
