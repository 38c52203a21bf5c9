import { Logger } from '@aws-lambda-powertools/logger';
import type { LogLevel } from '@aws-lambda-powertools/logger/types';
import { Metrics, MetricUnit } from '@aws-lambda-powertools/metrics';
import type { MiddlewareObj, Request } from '@middy/core';
import type { APIGatewayProxyEventV2, Context } from 'aws-lambda';
import type { HttpHandlerResult } from './http.ts';

/**
 * Telemetry both functions share, created once per container: Powertools' structured JSON logger
 * and CloudWatch metrics in Embedded Metric Format (EMF: JSON lines on stdout, no API calls).
 * Service name and namespace come from POWERTOOLS_SERVICE_NAME / POWERTOOLS_METRICS_NAMESPACE.
 * Never log a token or a full body: log counts, codes and ids.
 */
export const logger = createLogger(process.env.POWERTOOLS_SERVICE_NAME || 'ugc-ingest');

/**
 * A Powertools Logger for one service. The functions, the local stack and the scripts all log
 * through one, so every JSON line has the same keys: level, message, timestamp, service, then the
 * fields. A `logLevel` given here wins over POWERTOOLS_LOG_LEVEL.
 */
export function createLogger(serviceName: string, logLevel?: LogLevel): Logger {
  return new Logger({ serviceName, ...(logLevel === undefined ? {} : { logLevel }) });
}

export const metrics = new Metrics({
  namespace: process.env.POWERTOOLS_METRICS_NAMESPACE || 'UgcIngest',
  serviceName: process.env.POWERTOOLS_SERVICE_NAME || 'ugc-ingest',
});

/** Metric names, in one place so dashboards and alarms can be written against them. */
export const metricNames = {
  requests: 'Requests',
  eventsAccepted: 'EventsAccepted',
  eventsRejected: 'EventsRejected',
  requestsRejected: 'RequestsRejected',
  produceLatency: 'ProduceLatency',
  batchSize: 'BatchSize',
  rowsWritten: 'RowsWritten',
  deadLettered: 'DeadLettered',
  insertLatency: 'InsertLatency',
} as const;

/** Counts by a `code` dimension (one EMF document per code, so the main set keeps its dimensions). */
export function countByCode(name: string, counts: Map<string, number>): void {
  for (const [code, count] of counts) {
    const single = metrics.singleMetric();
    single.addDimension('code', code);
    single.addMetric(name, MetricUnit.Count, count);
  }
}

export { MetricUnit };

/** The `code` of a JSON error answer a route returned rather than threw (e.g. 400 no_valid_events, 503 from health). */
function answerCode(body: string | undefined): unknown {
  if (!body?.startsWith('{')) return undefined;
  try {
    return (JSON.parse(body) as { code?: unknown }).code;
  } catch {
    return undefined;
  }
}

/**
 * One log line per HTTP request (route, status, error code, duration; never the token or the body),
 * a Requests count for every request (so no invocation flushes an empty metric set) and a
 * RequestsRejected metric by code for every 4xx/5xx. Use it before httpErrors(), so its
 * onError sees the answer httpErrors made.
 */
export function httpAccessLog(): MiddlewareObj<APIGatewayProxyEventV2, HttpHandlerResult, Error, Context> {
  const startedAt = new WeakMap<object, number>();
  const finish = (request: Request<APIGatewayProxyEventV2, HttpHandlerResult, Error, Context>) => {
    const status = request.response?.statusCode ?? 500;
    const started = startedAt.get(request);
    const durationMs = started === undefined ? undefined : Math.round(performance.now() - started);
    let code: string | undefined;
    if (status >= 400) {
      const found = (request.error as { code?: unknown } | null | undefined)?.code ?? answerCode(request.response?.body);
      code = typeof found === 'string' ? found : 'internal_error';
    }
    const fields = { status, ...(code ? { code } : {}), durationMs };
    if (status >= 500) logger.error('request failed', { ...fields, error: request.error ?? undefined });
    else logger.info('request', fields);
    metrics.addMetric(metricNames.requests, MetricUnit.Count, 1);
    if (code) countByCode(metricNames.requestsRejected, new Map([[code, 1]]));
  };
  return {
    before: (request) => {
      startedAt.set(request, performance.now());
      logger.appendKeys({ requestId: request.event.requestContext?.requestId, route: request.event.routeKey });
    },
    after: finish,
    onError: finish,
  };
}
