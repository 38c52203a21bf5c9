import middy, { type MiddlewareObj, type Request } from '@middy/core';
import { injectLambdaContext } from '@aws-lambda-powertools/logger/middleware';
import { logMetrics } from '@aws-lambda-powertools/metrics/middleware';
import type { APIGatewayProxyEventV2, APIGatewayProxyStructuredResultV2, Context } from 'aws-lambda';
import { HttpError } from './errors.ts';
import { countByCode, logger, metricNames, metrics, MetricUnit } from './telemetry.ts';

export type HttpHandlerResult = APIGatewayProxyStructuredResultV2;

/** A JSON answer. */
export function json(statusCode: number, body: unknown, headers: Record<string, string> = {}): HttpHandlerResult {
  return { statusCode, headers: { 'content-type': 'application/json', ...headers }, body: JSON.stringify(body) };
}

/**
 * Turns thrown errors into JSON answers with a machine-readable code. An HttpError keeps its
 * status; anything else is logged and becomes a 500 that reveals nothing.
 */
export function httpErrors(): MiddlewareObj<APIGatewayProxyEventV2, HttpHandlerResult, Error, Context> {
  return {
    onError: (request) => {
      const { error } = request;
      if (error instanceof HttpError) {
        request.response = json(error.statusCode, { code: error.code, message: error.message }, error.headers);
        return;
      }
      console.error(JSON.stringify({
        level: 'error', msg: 'unhandled error', requestId: request.context.awsRequestId,
        error: error?.message, stack: error?.stack,
      }));
      request.response = json(500, { code: 'internal_error', message: 'internal error' });
    },
  };
}

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

/**
 * An HTTP API function around its router. Order matters: on error, httpErrors answers first, then
 * the access log sees the answer, then metrics are flushed (EMF to stdout) and the logger's
 * per-request keys are cleared.
 */
export function httpFunction(route: (event: APIGatewayProxyEventV2, context: Context) => Promise<HttpHandlerResult>) {
  return middy<APIGatewayProxyEventV2, HttpHandlerResult>()
    .use(injectLambdaContext(logger, { resetKeys: true }))
    .use(logMetrics(metrics, { captureColdStartMetric: true }))
    .use(httpAccessLog())
    .use(httpErrors())
    .handler(route);
}
