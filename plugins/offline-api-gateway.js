/**
 * osls plugin, offline only: hands the functions the body API Gateway's HTTP API (payload 2.0)
 * would, always the request's own text (base64 with `isBase64Encoded: true` when binary).
 * serverless offline mends what it hands over by the request's parsed `content-type`, which it
 * reads from the request's headers object (the function's event is built from the raw headers, so
 * the function still sees the request's own):
 * - a body with a Content-Encoding (gzip): offline decodes every body as UTF-8 unless its type is
 *   binary, which mangles compressed bytes, so it is marked application/octet-stream and takes
 *   offline's binary path, base64 as on AWS;
 * - a JSON body: offline parses it itself, and hands a falsy parse (`false`, `0`, `null`) over as
 *   that value, not as text (the ingest then failed on a body that was not a string), so it is
 *   marked text/plain and handed over as the text it is.
 * And answers as API Gateway does when the function fails (it throws, its cold start throws, or it
 * times out): 500 `{"message":"Internal Server Error"}`. serverless offline answers an HTTP API
 * (payload 2.0) function's error with a 200 whose body is the error and its stack trace.
 */
import http from 'node:http';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { pathToFileURL } from 'node:url';

const jsonType = /^application\/(?:[\w.+-]+\+)?json\s*(?:;|$)/i;

let patched = false;

/** What serverless offline should take a request's body for, by its content coding and type. */
export function offlineContentType(headers) {
  const coding = headers['content-encoding'];
  if (coding && coding.trim().toLowerCase() !== 'identity') return 'application/octet-stream';
  if (jsonType.test(headers['content-type'] ?? '')) return 'text/plain; charset=utf-8';
  return undefined;
}

/** Marks requests for serverless offline's HTTP server so each body reaches the function as its text. */
function handOverBodiesAsText() {
  if (patched) return;
  patched = true;
  const emit = http.Server.prototype.emit;
  http.Server.prototype.emit = function emitRequest(type, request, ...rest) {
    const contentType = type === 'request' ? offlineContentType(request.headers) : undefined;
    if (contentType) request.headers['content-type'] = contentType;
    return emit.call(this, type, request, ...rest);
  };
}

/** API Gateway's answer to an HTTP API request whose function failed, word for word. */
export const functionFailedAnswer = Object.freeze({
  statusCode: 500,
  headers: { 'Content-Type': 'application/json' },
  body: '{"message":"Internal Server Error"}',
  isBase64Encoded: false,
});

const isHttpApiEvent = (event) => event?.version === '2.0' && typeof event?.requestContext?.http === 'object';
const servesHttpApi = Symbol('servesHttpApi');
let failuresPatched = false;

/**
 * Makes serverless offline's functions answer an HTTP API event they failed as API Gateway does.
 * Its HTTP server sets a function's event right before it runs it, on the same instance; other
 * invocations (the Lambda invoke API the event source emulator calls) still see the error.
 */
async function answerFailuresAsApiGateway(log) {
  if (failuresPatched) return;
  failuresPatched = true;
  // Not in the package's exports; the same file offline loads, so the same class.
  const offlineDir = dirname(createRequire(import.meta.url).resolve('serverless-offline'));
  const { default: LambdaFunction } = await import(pathToFileURL(join(offlineDir, 'lambda/LambdaFunction.js')).href);
  const { setEvent, runHandler } = LambdaFunction.prototype;
  LambdaFunction.prototype.setEvent = function setHttpApiEvent(event) {
    this[servesHttpApi] = isHttpApiEvent(event);
    return setEvent.call(this, event);
  };
  LambdaFunction.prototype.runHandler = async function runAsApiGateway() {
    if (!this[servesHttpApi]) return runHandler.call(this);
    try {
      return await runHandler.call(this);
    } catch (error) {
      // On AWS the function's error goes to its log, and the client sees only the 500.
      log.error(`(λ: ${this.functionName}) failed, answered 500 as API Gateway would: ${error?.stack ?? error}`);
      return { ...functionFailedAnswer };
    }
  };
}

export default class ApiGatewayPlugin {
  constructor(_serverless, _options, { log } = {}) {
    const prepare = async () => {
      handOverBodiesAsText();
      await answerFailuresAsApiGateway(log ?? console);
    };
    this.hooks = {
      'before:offline:start:init': prepare,
      'before:offline:start': prepare,
    };
  }
}
