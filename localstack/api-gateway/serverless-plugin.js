/**
 * osls plugin, offline only: hands the functions a body with a Content-Encoding (gzip) as API
 * Gateway does, base64-encoded with `isBase64Encoded: true`. serverless offline decodes every
 * body as UTF-8 unless its Content-Type is application/octet-stream or multipart, which mangles
 * compressed bytes. So, for a request with a Content-Encoding, its own parsed `content-type`
 * header is set to application/octet-stream before serverless offline sees it: it then takes the
 * binary path. The function still gets the request's own headers (serverless offline builds the
 * event's headers from the raw ones).
 */
import http from 'node:http';

let patched = false;

/** Marks requests with a content coding as binary for serverless offline's HTTP server. */
function treatEncodedBodiesAsBinary() {
  if (patched) return;
  patched = true;
  const emit = http.Server.prototype.emit;
  http.Server.prototype.emit = function emitRequest(type, request, ...rest) {
    const coding = type === 'request' ? request.headers['content-encoding'] : undefined;
    if (coding && coding.trim().toLowerCase() !== 'identity') request.headers['content-type'] = 'application/octet-stream';
    return emit.call(this, type, request, ...rest);
  };
}

export default class ApiGatewayBodiesPlugin {
  constructor() {
    this.hooks = {
      'before:offline:start:init': treatEncodedBodiesAsBinary,
      'before:offline:start': treatEncodedBodiesAsBinary,
    };
  }
}
