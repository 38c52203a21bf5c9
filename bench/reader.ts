import { randomUUID } from 'node:crypto';
import type { APIGatewayProxyEventV2, APIGatewayProxyStructuredResultV2, Context } from 'aws-lambda';
import { signDevToken } from '../localstack/dev-token.ts';
import { migrate } from '../clickhouse/migrate.ts';
import { createClickHouse } from '../shared/clickhouse.ts';
import { filmProgressQuery, recentProgressQuery } from '../functions/reader/queries.ts';
import { buildSdk, sdkGzipBudget } from '../sdk/build.ts';
import { logger } from '../shared/telemetry.ts';
import { fmt, percentile, type Row } from './stats.ts';

type Handler = (event: APIGatewayProxyEventV2, context: Context) => Promise<APIGatewayProxyStructuredResultV2>;

const secret = 'bench-secret-of-sufficient-length';
const viewers = 200;
const filmsPerViewer = 20;
const rounds = 5;
const requestsPerRound = 100;
const p99TargetMs = 20;

/**
 * Read API handler (warm, cached tokens) vs the raw @clickhouse/client running the same bound
 * query on the same server, alternating rounds; plus the browser SDK's gzipped size.
 * Seeds its own database (every viewer's films written twice, in separate parts, so FINAL has
 * versions to collapse) and drops it afterwards.
 */
export async function benchReader(clickhouseUrl: string): Promise<{ rows: Row[]; json: Record<string, unknown> }> {
  const database = `bench_reader_${randomUUID().slice(0, 8)}`;
  const settings = { CLICKHOUSE_URL: clickhouseUrl, CLICKHOUSE_USER: 'default', CLICKHOUSE_PASSWORD: '', CLICKHOUSE_DATABASE: database, CLICKHOUSE_REQUEST_TIMEOUT_MS: 30_000 };
  const admin = createClickHouse(settings, 'default');
  const raw = createClickHouse(settings);
  const rows: Row[] = [];
  const json: Record<string, unknown> = {};
  // One access-log line per request would time the terminal, not the handler.
  const logLevel = logger.getLevelName();
  logger.setLogLevel('WARN');
  try {
    await migrate(admin, raw, database);
    for (const version of [0, 1]) {
      const values = [];
      for (let v = 0; v < viewers; v++) {
        for (let f = 0; f < filmsPerViewer; f++) {
          values.push({ user_id: `viewer-${v}`, film_id: `film-${f}`, position_s: version * 1000 + f, duration_s: 6000,
            occurred_at: new Date(Date.UTC(2024, 0, 1, 0, f, version)).toISOString(), event_id: randomUUID() });
        }
      }
      await raw.insert({ table: 'film_progress_latest', values, format: 'JSONEachRow' });
    }

    Object.assign(process.env, { CLICKHOUSE_URL: clickhouseUrl, CLICKHOUSE_DATABASE: database, JWT_SECRET: secret });
    const { handler } = (await import('../functions/reader/handler.ts')) as unknown as { handler: Handler };
    const tokens = await Promise.all(Array.from({ length: viewers }, (_, v) => signDevToken(`viewer-${v}`, { secret })));
    const context = { awsRequestId: 'bench', getRemainingTimeInMillis: () => 6_000 } as unknown as Context;
    let n = 0;
    const next = () => n++ % viewers;

    const routes = [
      {
        name: 'GET /v1/films/{film_id}/progress', key: 'reader_film_progress',
        event: (v: number) => ({ routeKey: 'GET /v1/films/{film_id}/progress', pathParameters: { film_id: `film-${v % filmsPerViewer}` } }),
        bound: (v: number) => filmProgressQuery(`viewer-${v}`, `film-${v % filmsPerViewer}`),
      },
      {
        name: 'GET /v1/progress?limit=20', key: 'reader_recent',
        event: () => ({ routeKey: 'GET /v1/progress', queryStringParameters: { limit: '20' } }),
        bound: (v: number) => recentProgressQuery(`viewer-${v}`, 20),
      },
    ];
    for (const route of routes) {
      const call = (v: number) => handler({
        ...route.event(v), headers: { authorization: `Bearer ${tokens[v]}` }, isBase64Encoded: false, requestContext: { requestId: 'bench' },
      } as unknown as APIGatewayProxyEventV2, context);
      // Warm up: cold start, connection pool, every viewer's token verified once (then cached).
      for (let v = 0; v < viewers; v++) {
        const res = await call(v);
        if (res.statusCode !== 200) throw new Error(`reader answered ${res.statusCode}: ${res.body}`);
      }
      const handlerMs: number[] = [];
      const rawMs: number[] = [];
      for (let round = 0; round < rounds; round++) {
        for (let i = 0; i < requestsPerRound; i++) {
          const v = next();
          const t = performance.now();
          const res = await call(v);
          handlerMs.push(performance.now() - t);
          if (res.statusCode !== 200) throw new Error(`reader answered ${res.statusCode}: ${res.body}`);
        }
        for (let i = 0; i < requestsPerRound; i++) {
          const t = performance.now();
          await (await raw.query({ ...route.bound(next()), format: 'JSONEachRow' })).json();
          rawMs.push(performance.now() - t);
        }
      }
      const [p50, p99, rawP50, rawP99] = [percentile(handlerMs, 50), percentile(handlerMs, 99), percentile(rawMs, 50), percentile(rawMs, 99)];
      rows.push({
        benchmark: `reader ${route.name} latency p50 / p99 (ms)`, measured: `${fmt(p50, 2)} / ${fmt(p99, 2)}`,
        baseline: `raw client query ${fmt(rawP50, 2)} / ${fmt(rawP99, 2)}`, ratio: fmt(p99 / rawP99, 2),
        target: `p99 ≤ ${p99TargetMs}`, verdict: p99 <= p99TargetMs ? 'ok' : 'MISSED',
      });
      json[route.key] = { p50_ms: p50, p99_ms: p99, raw_p50_ms: rawP50, raw_p99_ms: rawP99, requests: handlerMs.length, viewers, films_per_viewer: filmsPerViewer };
    }
  } finally {
    logger.setLogLevel(logLevel);
    await admin.command({ query: `DROP DATABASE IF EXISTS ${database}` }).catch(() => {});
    await Promise.all([raw.close(), admin.close()]);
  }

  const sdk = await buildSdk();
  const unminified = await buildSdk({ minify: false });
  rows.push({
    benchmark: 'browser SDK, minified + gzipped (bytes)', measured: fmt(sdk.gzipBytes), baseline: `unminified gzipped ${fmt(unminified.gzipBytes)}`,
    ratio: fmt(sdk.gzipBytes / unminified.gzipBytes, 2), target: `≤ ${fmt(sdkGzipBudget)}`, verdict: sdk.gzipBytes <= sdkGzipBudget ? 'ok' : 'MISSED',
  });
  json.sdk = { bytes: sdk.bytes, gzip_bytes: sdk.gzipBytes, budget_bytes: sdkGzipBudget };
  return { rows, json };
}
