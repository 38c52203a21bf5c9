/**
 * Synchronous (RequestResponse) invoke through serverless-offline's Lambda API
 * (`POST /2015-03-31/functions/<name>/invocations`), as an event source mapping invokes.
 */
import { connect } from 'node:net';
import { LambdaInvokeError } from '../errors.ts';
import { pollUntil } from '../wait.ts';

interface LambdaErrorPayload {
  errorType?: unknown;
  errorMessage?: unknown;
  Message?: unknown;
}

function parseErrorPayload(body: string): LambdaErrorPayload {
  try {
    const parsed: unknown = JSON.parse(body);
    return typeof parsed === 'object' && parsed !== null ? (parsed as LambdaErrorPayload) : {};
  } catch {
    return {};
  }
}

/**
 * Returns `invoke(event)` for one function: resolves with the function's result, rejects with
 * LambdaInvokeError on a function error (X-Amz-Function-Error / x-amzn-ErrorType) or a non-2xx reply.
 */
export function createLambdaInvoker(options: { endpoint: string; functionName: string; timeoutMs?: number }) {
  const url = `${options.endpoint.replace(/\/$/, '')}/2015-03-31/functions/${encodeURIComponent(options.functionName)}/invocations`;
  return async (event: unknown): Promise<unknown> => {
    const response = await fetch(url, {
      method: 'POST',
      headers: { 'content-type': 'application/json', 'x-amz-invocation-type': 'RequestResponse' },
      body: JSON.stringify(event),
      signal: AbortSignal.timeout(options.timeoutMs ?? 15 * 60_000),
    });
    const body = await response.text();
    const functionError = response.headers.get('x-amz-function-error') ?? response.headers.get('x-amzn-errortype');
    if (functionError || !response.ok) {
      const payload = parseErrorPayload(body);
      const errorType = typeof payload.errorType === 'string' ? payload.errorType : (functionError ?? `HTTP ${response.status}`);
      const message =
        typeof payload.errorMessage === 'string'
          ? payload.errorMessage
          : typeof payload.Message === 'string'
            ? payload.Message
            : body.slice(0, 500);
      throw new LambdaInvokeError(message, errorType, response.status);
    }
    if (body === '') return undefined;
    try {
      return JSON.parse(body) as unknown;
    } catch {
      return body;
    }
  };
}

/** Resolves once something accepts TCP connections on host:port (polling), or rejects after timeoutMs. */
export async function waitForPort(host: string, port: number, timeoutMs: number, isCancelled: () => boolean = () => false): Promise<void> {
  const listens = () => new Promise<boolean>((resolve) => {
    const socket = connect({ host, port });
    socket.once('connect', () => {
      socket.destroy();
      resolve(true);
    });
    socket.once('error', () => resolve(false));
  });
  await pollUntil(async () => isCancelled() || (await listens()), {
    timeoutMs, intervalMs: 200, what: `nothing listens on ${host}:${port} after ${timeoutMs} ms`,
  });
}
