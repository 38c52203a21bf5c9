// How the SDK talks to the API: the viewer's token (fetched ahead of its `exp`), ordinary requests
// (gzipped where the browser can, repeated once after a 401) and the unload form's requests.
import type { Answer, FetchLike } from './types.ts';

/** A token's claims, read (not verified): `sub` keeps viewers apart in one browser, `exp` says when to fetch the next. */
function claimsOf(token: string): { sub?: unknown; exp?: unknown } {
  try {
    return JSON.parse(atob(token.split('.')[1]!.replace(/-/g, '+').replace(/_/g, '/'))) as { sub?: unknown };
  } catch {
    return {};
  }
}
/** Milliseconds until the token's `exp` by this browser's clock (Infinity without one). */
const msLeft = (token: string) => {
  const { exp } = claimsOf(token);
  return typeof exp === 'number' ? exp * 1000 - Date.now() : Infinity;
};

/** gzip bytes of a body, through the browser's CompressionStream. */
const gzipped = async (body: string) =>
  new Uint8Array(await new Response(new Blob([body]).stream().pipeThrough(new CompressionStream('gzip'))).arrayBuffer());

export interface Transport {
  /** One request with the current token (a body gzipped if it may); on 401 the token is fetched again and the request repeated once. */
  call(path: string, method: string, body?: string): Promise<Answer>;
  /** An unload-form body as fetch keepalive with no custom header: a CORS-simple request. */
  postUnload(body: string): Promise<Answer>;
  /** The token held now, expired or not. */
  heldToken(): string | undefined;
  /** The token held now if it has not expired (a page hide cannot wait for a new one). */
  validToken(): string | undefined;
  /** The held token's viewer (`sub`), '' before the first token. */
  subject(): string;
  /** Fetches a token now (one getToken() at a time). */
  refreshToken(): Promise<string>;
  /** Drops the held token: the next request fetches a new one. */
  forgetToken(): void;
  stop(): void;
}

export function createTransport({ base, getToken, send, gzip }: {
  base: string; getToken: () => string | Promise<string>; send: FetchLike; gzip: boolean;
}): Transport {
  let token: string | undefined;
  let tokenRequest: Promise<string> | undefined;
  let tokenTimer: ReturnType<typeof setTimeout> | undefined;
  // One getToken() at a time; the result is kept so a send on page hide needs no await. The next
  // one is fetched ahead of `exp` (a minute before, or at 3/4 of a short life; at least 5 s on,
  // so an app handing out the same old token is not asked in a loop), so the token a page holds
  // when it is hidden is still valid: a beacon cannot read a 401 and send again.
  const refreshToken = () => (tokenRequest ??= (async () => {
    try {
      const fresh = (token = await getToken());
      const left = msLeft(fresh);
      clearTimeout(tokenTimer);
      if (left < Infinity) tokenTimer = setTimeout(() => refreshToken().catch(() => {}), Math.max(left - 60_000, left * 0.75, 5_000));
      return fresh;
    } finally {
      tokenRequest = undefined;
    }
  })());
  const validToken = () => (token && msLeft(token) > 0 ? token : undefined);

  return {
    async call(path, method, body) {
      const payload = body && gzip ? await gzipped(body) : body;
      const request = async () => send(base + path, {
        method,
        headers: {
          authorization: `Bearer ${validToken() ?? await refreshToken()}`,
          ...(body ? { 'content-type': 'application/json', ...(gzip ? { 'content-encoding': 'gzip' } : {}) } : {}),
        },
        body: payload,
      });
      const res = await request();
      if (res.status !== 401) return res;
      await refreshToken();
      return request();
    },
    postUnload: (body) => send(`${base}/v1/events`, { method: 'POST', headers: { 'content-type': 'text/plain' }, body, keepalive: true }),
    heldToken: () => token,
    validToken,
    subject: () => String(claimsOf(token ?? '').sub ?? ''),
    refreshToken,
    forgetToken: () => { token = undefined; },
    stop: () => clearTimeout(tokenTimer),
  };
}
