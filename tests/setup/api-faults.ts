// A proxy in front of serverless offline that browser tests point the page at, to see what the
// browser sent (path, encoding, the unload form's token) and to inject the API's faults a
// browser must survive: a 503 with Retry-After, or an API that cannot be reached at all.
import { createServer, request, type IncomingMessage } from 'node:http';
import type { AddressInfo } from 'node:net';
import { gunzipSync } from 'node:zlib';

/** One POST /v1/events as the proxy saw it. */
export interface SeenBatch {
  at: number;
  /** `unload`: text/plain with the token in the body (sendBeacon or fetch keepalive); `ordinary`: Bearer + JSON. */
  form: 'unload' | 'ordinary';
  gzip: boolean;
  eventIds: string[];
  /** The unload form's token, or the Authorization header's. */
  token: string | undefined;
  /** The token's claims, read (not verified): whose batch it is, and until when the token was valid. */
  sub: string; iat: number; exp: number;
  /** What the browser got: the API's status, the injected 503, or `dropped` (connection destroyed). */
  outcome: number | 'dropped';
}

export interface ApiFaults {
  readonly url: string;
  readonly batches: SeenBatch[];
  /** Answers the next `count` POST /v1/events of `viewer` with 503 and `Retry-After: retryAfterS`, as the ingest does when Kafka is down. */
  fail503(viewer: string, count: number, retryAfterS: number): void;
  /** While `viewer` is down, each of their POST /v1/events has its connection destroyed: the browser sees a network error. */
  setDown(viewer: string, down: boolean): void;
  stop(): Promise<void>;
}

const readBody = (req: IncomingMessage) => new Promise<Buffer>((resolve, reject) => {
  const chunks: Buffer[] = [];
  req.on('data', (c: Buffer) => chunks.push(c)).once('end', () => resolve(Buffer.concat(chunks))).once('error', reject);
});

function claimsOf(token: string | undefined): { sub: string; iat: number; exp: number } {
  try {
    const claims = JSON.parse(Buffer.from(token!.split('.')[1]!, 'base64url').toString('utf8')) as { sub?: unknown; iat?: number; exp?: number };
    return { sub: String(claims.sub), iat: Number(claims.iat), exp: Number(claims.exp) };
  } catch {
    return { sub: '', iat: NaN, exp: NaN };
  }
}

/** Starts the proxy on a free loopback port, forwarding to `target` (serverless offline's URL). */
export async function startApiFaults(target: string): Promise<ApiFaults> {
  const upstream = new URL(target);
  const batches: SeenBatch[] = [];
  const failing = new Map<string, { count: number; retryAfterS: number }>();
  const down = new Set<string>();

  const server = createServer((req, res) => {
    void (async () => {
      const body = await readBody(req);
      const isBatch = req.method === 'POST' && req.url?.split('?')[0] === '/v1/events';
      let seen: SeenBatch | undefined;
      if (isBatch) {
        const gzip = req.headers['content-encoding'] === 'gzip';
        const form = String(req.headers['content-type']).startsWith('text/plain') ? 'unload' : 'ordinary';
        let parsed: { token?: string; events?: { event_id?: string }[] } = {};
        try {
          parsed = JSON.parse((gzip ? gunzipSync(body) : body).toString('utf8')) as typeof parsed;
        } catch { /* the API answers it */ }
        const token = parsed.token ?? req.headers.authorization?.replace(/^Bearer /, '');
        seen = { at: Date.now(), form, gzip, eventIds: (parsed.events ?? []).map((e) => String(e.event_id)), token, ...claimsOf(token), outcome: 'dropped' };
        batches.push(seen);
        if (down.has(seen.sub)) return req.socket.destroy();
        const fail = failing.get(seen.sub);
        if (fail && fail.count > 0) {
          fail.count--;
          seen.outcome = 503;
          // As the API answers it through API Gateway's CORS (serverless.yml httpApi.cors).
          res.writeHead(503, {
            'content-type': 'application/json', 'retry-after': String(fail.retryAfterS),
            'access-control-allow-origin': req.headers.origin ?? '*', 'access-control-expose-headers': 'Retry-After,WWW-Authenticate',
          });
          return res.end(JSON.stringify({ code: 'kafka_unavailable', message: 'injected by the test proxy' }));
        }
      }
      const forwarded = request({
        host: upstream.hostname, port: upstream.port, method: req.method, path: req.url,
        headers: { ...req.headers, host: upstream.host },
      }, (answer) => {
        if (seen) seen.outcome = answer.statusCode ?? 0;
        res.writeHead(answer.statusCode ?? 502, answer.headers);
        answer.pipe(res);
      });
      forwarded.once('error', () => res.destroy());
      forwarded.end(body);
    })().catch(() => res.destroy());
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', () => resolve()));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    batches,
    fail503: (viewer, count, retryAfterS) => { failing.set(viewer, { count, retryAfterS }); },
    setDown: (viewer, value) => { if (value) down.add(viewer); else down.delete(viewer); },
    stop: () => new Promise<void>((resolve) => {
      server.closeAllConnections();
      server.close(() => resolve());
    }),
  };
}
