// The demo page of `npm start`: a canvas "film" that reports progress through the browser SDK
// and offers "continue from mm:ss" from the read API. LOCAL ONLY: it mints viewer tokens for
// anyone who asks, with the stack's dev secret.
import { readFile } from 'node:fs/promises';
import { createServer, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { fileURLToPath } from 'node:url';
import { buildSdk } from '../../sdk/build.ts';
import { signDevToken } from '../dev-token.ts';
import type { PipelineView } from '../pipeline/collector.ts';
import { pipelinePage } from '../pipeline/page.ts';

export interface DemoServerOptions {
  /** 0 picks a free port. */
  port: number;
  /** The API's base URL (serverless offline), which the page calls cross-origin. */
  apiUrl: string;
  /** The secret the stack verifies tokens with; the demo signs viewer tokens with it. */
  jwtSecret: string;
  jwtIssuer?: string;
  jwtAudience?: string;
  host?: string;
  /** The local pipeline's readings: served as the live page /pipeline. */
  pipeline?: PipelineView;
}

export interface DemoServer { readonly url: string; readonly pipelineUrl?: string; stop(): Promise<void> }

const publicDir = fileURLToPath(new URL('./public/', import.meta.url));
const viewerId = /^[\w.-]{1,64}$/;

/** Serves /demo (page, script, SDK bundle) and /demo/token (dev tokens). */
export async function startDemoServer(options: DemoServerOptions): Promise<DemoServer> {
  const host = options.host ?? '127.0.0.1';
  // Built once at start, from source: the page always runs the SDK as it is in the repo.
  const [sdk, page, player, pipeline] = await Promise.all([
    buildSdk().then((b) => b.code),
    readFile(`${publicDir}index.html`, 'utf8'),
    readFile(`${publicDir}player.js`, 'utf8'),
    options.pipeline ? pipelinePage(options.pipeline) : undefined,
  ]);
  const apiOrigin = new URL(options.apiUrl).origin;
  // Nothing from the internet: scripts from this server only, requests to this server and the API.
  const csp = `default-src 'self'; connect-src 'self' ${apiOrigin}; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:`;
  const send = (res: ServerResponse, status: number, type: string, body: string, headers: Record<string, string> = {}) => {
    res.writeHead(status, { 'content-type': type, 'cache-control': 'no-store', 'content-security-policy': csp, ...headers });
    res.end(body);
  };

  const server = createServer((req, res) => {
    const url = new URL(req.url ?? '/', 'http://demo');
    if (req.method !== 'GET' && req.method !== 'HEAD') return send(res, 405, 'text/plain', 'method not allowed', { allow: 'GET, HEAD' });
    switch (url.pathname) {
      case '/':
        return send(res, 302, 'text/plain', 'see /demo', { location: '/demo' });
      case '/demo':
      case '/demo/':
        return send(res, 200, 'text/html; charset=utf-8', page);
      case '/demo/player.js':
        return send(res, 200, 'text/javascript; charset=utf-8', player);
      case '/demo/sdk.js':
        return send(res, 200, 'text/javascript; charset=utf-8', sdk);
      case '/demo/config.json':
        return send(res, 200, 'application/json', JSON.stringify({ apiUrl: options.apiUrl }));
      case '/demo/token': {
        const viewer = url.searchParams.get('viewer') ?? 'viewer-1';
        if (!viewerId.test(viewer)) return send(res, 400, 'application/json', JSON.stringify({ code: 'invalid_viewer' }));
        // ?ttl=N: a token that expires in N seconds (5..3600), for a page left open past its token's life.
        const ttl = Number(url.searchParams.get('ttl') ?? 3600);
        if (!Number.isInteger(ttl) || ttl < 5 || ttl > 3600) return send(res, 400, 'application/json', JSON.stringify({ code: 'invalid_ttl' }));
        signDevToken(viewer, { secret: options.jwtSecret, expiresIn: `${ttl}s`, issuer: options.jwtIssuer, audience: options.jwtAudience })
          .then((token) => send(res, 200, 'application/json', JSON.stringify({ token, note: 'dev token minted by the local demo server' })))
          .catch(() => send(res, 500, 'application/json', JSON.stringify({ code: 'internal_error' })));
        return;
      }
      default: {
        const answer = pipeline?.(url.pathname);
        if (answer) return send(res, answer.status, answer.type, answer.body);
        return send(res, 404, 'text/plain', 'not found');
      }
    }
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(options.port, host, () => resolve());
  });
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://${host}:${port}/demo`,
    ...(pipeline ? { pipelineUrl: `http://${host}:${port}/pipeline` } : {}),
    stop: () => new Promise<void>((resolve) => {
      server.closeAllConnections();
      server.close(() => resolve());
    }),
  };
}
