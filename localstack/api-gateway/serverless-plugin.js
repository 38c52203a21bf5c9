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
 */
import http from 'node:http';

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

export default class ApiGatewayBodiesPlugin {
  constructor() {
    this.hooks = {
      'before:offline:start:init': handOverBodiesAsText,
      'before:offline:start': handOverBodiesAsText,
    };
  }
}
