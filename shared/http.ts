import middy, { type MiddlewareObj } from '@middy/core';
import { injectLambdaContext } from '@aws-lambda-powertools/logger/middleware';
import { logMetrics } from '@aws-lambda-powertools/metrics/middleware';
import type { APIGatewayProxyEventV2, APIGatewayProxyStructuredResultV2, Context } from 'aws-lambda';
import { HttpError } from './errors.ts';
import { httpAccessLog, logger, metrics } from './telemetry.ts';

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
