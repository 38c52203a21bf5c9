import { setTimeout as sleep } from 'node:timers/promises';
import { SignJWT, UnsecuredJWT } from 'jose';
import { describe, expect, it, vi } from 'vitest';
import { createViewerVerifier } from '../../shared/auth.ts';
import { HttpError } from '../../shared/errors.ts';

const secret = 'a-test-secret-of-sufficient-length';
const verify = createViewerVerifier({ JWT_SECRET: secret, JWT_USER_CLAIM: 'sub', JWT_CLOCK_TOLERANCE_S: 5, JWT_CACHE_SIZE: 100, JWT_ISSUER: 'auth', JWT_AUDIENCE: 'ugc' });
const sign = (build: (jwt: SignJWT) => SignJWT, key = secret) =>
  build(new SignJWT({}).setProtectedHeader({ alg: 'HS256' }).setSubject('viewer-7').setIssuer('auth').setAudience('ugc'))
    .sign(new TextEncoder().encode(key));

async function rejection(authorization: string | undefined): Promise<HttpError> {
  const error = await verify(authorization).then(() => undefined, (e: unknown) => e);
  if (!(error instanceof HttpError)) throw new Error(`expected an HttpError, got ${String(error)}`);
  return error;
}

describe('viewer token verification', () => {
  it('takes the user id from the verified sub', async () => {
    const token = await sign((j) => j.setExpirationTime('5m'));
    await expect(verify(`Bearer ${token}`)).resolves.toMatchObject({ userId: 'viewer-7' });
  });

  it('answers 401 with WWW-Authenticate when the token is missing', async () => {
    const error = await rejection(undefined);
    expect(error).toMatchObject({ statusCode: 401, code: 'missing_token' });
    expect(error.headers['WWW-Authenticate']).toMatch(/^Bearer/);
  });

  it('refuses expired, never-expiring, not-yet-valid, wrong-issuer, wrong-key, unsigned and malformed tokens', async () => {
    const now = Math.floor(Date.now() / 1000);
    // Each with what a client can act on: the message, and the challenge's error_description.
    const noExp = await rejection(`Bearer ${await sign((j) => j)}`);
    expect(noExp).toMatchObject({ statusCode: 401, code: 'invalid_token', message: 'the token has no exp claim: an access token must expire' });
    expect(noExp.headers['WWW-Authenticate']).toContain('error_description="the token has no exp claim: an access token must expire"');
    expect((await rejection(`Bearer ${await sign((j) => j.setExpirationTime(now - 60))}`)).code).toBe('token_expired');
    expect(await rejection(`Bearer ${await sign((j) => j.setExpirationTime('5m').setNotBefore(now + 600))}`))
      .toMatchObject({ statusCode: 401, code: 'invalid_token', message: 'the token is not valid yet: its nbf is in the future' });
    expect(await rejection(`Bearer ${await sign((j) => j.setExpirationTime('5m').setIssuer('evil'))}`))
      .toMatchObject({ statusCode: 401, code: 'invalid_token', message: 'the token was issued by another issuer' });
    expect(await rejection(`Bearer ${await sign((j) => j.setExpirationTime('5m').setAudience('another-api'))}`))
      .toMatchObject({ statusCode: 401, code: 'invalid_token', message: 'the token is meant for another audience' });
    expect((await rejection(`Bearer ${await sign((j) => j.setExpirationTime('5m'), 'another-secret-of-enough-length')}`)).statusCode).toBe(401);
    const unsigned = new UnsecuredJWT({}).setSubject('viewer-7').setIssuer('auth').setAudience('ugc').setExpirationTime('5m').encode();
    expect((await rejection(`Bearer ${unsigned}`)).code).toBe('invalid_token');
    expect((await rejection('Bearer not.a.jwt')).code).toBe('invalid_token');
    expect((await rejection('Basic dXNlcjpwYXNz')).code).toBe('missing_token');
  });
});

describe('the HS256 key', () => {
  it('is imported once per verifier, also when its first tokens arrive together', async () => {
    // Signed first: signing with the secret's bytes imports a key of its own.
    const tokens = await Promise.all(['a', 'b', 'c', 'd'].map((sub) => sign((j) => j.setSubject(sub).setExpirationTime('5m'))));
    const uncached = createViewerVerifier({ JWT_SECRET: secret, JWT_USER_CLAIM: 'sub', JWT_CLOCK_TOLERANCE_S: 5, JWT_CACHE_SIZE: 0, JWT_ISSUER: 'auth', JWT_AUDIENCE: 'ugc' });
    const importKey = vi.spyOn(crypto.subtle, 'importKey');
    try {
      const viewers = await Promise.all(tokens.map((token) => uncached(`Bearer ${token}`)));
      await uncached(`Bearer ${tokens[0]}`);
      expect(viewers.map((v) => v.userId)).toEqual(['a', 'b', 'c', 'd']);
      expect(importKey).toHaveBeenCalledTimes(1);
    } finally {
      importKey.mockRestore();
    }
  });
});

describe('numeric user ids', () => {
  const signClaims = (claims: Record<string, unknown>) => new SignJWT(claims).setProtectedHeader({ alg: 'HS256' })
    .setIssuer('auth').setAudience('ugc').setExpirationTime('5m').sign(new TextEncoder().encode(secret));
  const byClaim = createViewerVerifier({ JWT_SECRET: secret, JWT_USER_CLAIM: 'uid', JWT_CLOCK_TOLERANCE_S: 5, JWT_CACHE_SIZE: 0, JWT_ISSUER: 'auth', JWT_AUDIENCE: 'ugc' });

  it('takes an integer sub (and an integer JWT_USER_CLAIM) as its decimal string', async () => {
    await expect(verify(`Bearer ${await signClaims({ sub: 12345 })}`)).resolves.toMatchObject({ userId: '12345' });
    await expect(verify(`Bearer ${await signClaims({ sub: 0 })}`)).resolves.toMatchObject({ userId: '0' });
    await expect(byClaim(`Bearer ${await signClaims({ uid: 9007199254740991 })}`)).resolves.toMatchObject({ userId: '9007199254740991' });
    await expect(byClaim(`Bearer ${await signClaims({ uid: 'u-1' })}`)).resolves.toMatchObject({ userId: 'u-1' });
  });

  it('says the claim must be a string or an integer, never "has no sub claim", for a sub it cannot use', async () => {
    for (const sub of [1.5, 2 ** 53 + 2, true, { id: 1 }, [1], '']) {
      const error = await rejection(`Bearer ${await signClaims({ sub })}`);
      expect(error, JSON.stringify(sub)).toMatchObject({ statusCode: 401, code: 'invalid_token', message: "the token's sub claim must be a non-empty string or an integer" });
    }
    const error = await byClaim(`Bearer ${await signClaims({ uid: 1.25, sub: 'x' })}`).catch((e: unknown) => e);
    expect(error).toMatchObject({ statusCode: 401, message: "the token's uid claim must be a non-empty string or an integer" });
  });

  it('says "has no sub claim" only when there is none', async () => {
    expect(await rejection(`Bearer ${await signClaims({})}`)).toMatchObject({ statusCode: 401, message: 'the token has no sub claim' });
    const error = await byClaim(`Bearer ${await signClaims({ sub: 'x' })}`).catch((e: unknown) => e);
    expect(error).toMatchObject({ statusCode: 401, message: 'the token has no uid claim' });
  });
});

describe('viewer token verification with a JWKS URL (RS256/ES256)', async () => {
  const { createServer } = await import('node:http');
  const { exportJWK, exportSPKI, generateKeyPair } = await import('jose');
  const { publicKey, privateKey } = await generateKeyPair('RS256', { extractable: true });
  const jwk = { ...(await exportJWK(publicKey)), kid: 'k1', alg: 'RS256', use: 'sig' };
  let fetches = 0;
  let keyServer: 'up' | 'error' | 'html' | 'not a key set' = 'up';
  const server = createServer((_req, res) => {
    fetches += 1;
    if (keyServer === 'error') res.writeHead(500).end('oops');
    else if (keyServer === 'html') res.writeHead(200, { 'content-type': 'text/html' }).end('<html>bad gateway</html>');
    else if (keyServer === 'not a key set') res.writeHead(200, { 'content-type': 'application/json' }).end('{"keys":"none"}');
    else res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ keys: [jwk] }));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const address = server.address() as { port: number };
  const jwksVerify = createViewerVerifier({
    JWT_JWKS_URL: `http://127.0.0.1:${address.port}/.well-known/jwks.json`,
    JWT_USER_CLAIM: 'sub', JWT_CLOCK_TOLERANCE_S: 5, JWT_CACHE_SIZE: 100,
  });
  const { afterAll } = await import('vitest');
  afterAll(() => new Promise<void>((resolve) => server.close(() => resolve())));

  it('verifies an RS256 token with the key fetched from the JWKS', async () => {
    const token = await new SignJWT({}).setProtectedHeader({ alg: 'RS256', kid: 'k1' }).setSubject('viewer-rs').setExpirationTime('5m').sign(privateKey);
    await expect(jwksVerify(`Bearer ${token}`)).resolves.toMatchObject({ userId: 'viewer-rs' });
  });

  it('refuses an HS256 token signed with the public key as secret (HS/RS confusion)', async () => {
    // The classic attack: the server's public key (PEM), used as an HMAC secret.
    const publicPem = new TextEncoder().encode(await exportSPKI(publicKey));
    const confused = await new SignJWT({}).setProtectedHeader({ alg: 'HS256', kid: 'k1' }).setSubject('attacker').setExpirationTime('5m').sign(publicPem);
    const error = await jwksVerify(`Bearer ${confused}`).then(() => undefined, (e: unknown) => e);
    expect(error).toBeInstanceOf(HttpError);
    expect((error as HttpError).statusCode).toBe(401);
  });

  it('answers 503 (retry), not 401 (give up), while the key server fails, and verifies again once it is back', async () => {
    const token = await new SignJWT({}).setProtectedHeader({ alg: 'RS256', kid: 'k1' }).setSubject('viewer-outage').setExpirationTime('5m').sign(privateKey);
    for (const failure of ['error', 'html', 'not a key set'] as const) {
      keyServer = failure;
      // A fresh verifier: nothing fetched or remembered yet, as in a new Lambda container.
      const verifier = createViewerVerifier({ JWT_JWKS_URL: `http://127.0.0.1:${address.port}/jwks/${failure}`, JWT_USER_CLAIM: 'sub', JWT_CLOCK_TOLERANCE_S: 5, JWT_CACHE_SIZE: 0 });
      await expect(verifier(`Bearer ${token}`), failure).rejects.toMatchObject({ statusCode: 503, code: 'auth_keys_unavailable' });
    }
    keyServer = 'up';
    const verifier = createViewerVerifier({ JWT_JWKS_URL: `http://127.0.0.1:${address.port}/jwks/back`, JWT_USER_CLAIM: 'sub', JWT_CLOCK_TOLERANCE_S: 5, JWT_CACHE_SIZE: 0 });
    await expect(verifier(`Bearer ${token}`)).resolves.toMatchObject({ userId: 'viewer-outage' });
  });

  it('remembers a verified token until exp, so repeated requests cost no verification', async () => {
    const token = await new SignJWT({}).setProtectedHeader({ alg: 'RS256', kid: 'k1' }).setSubject('viewer-cached').setExpirationTime('5m').sign(privateKey);
    const before = fetches;
    const first = await jwksVerify(`Bearer ${token}`);
    const second = await jwksVerify(`Bearer ${token}`);
    expect(second).toBe(first);
    expect(fetches - before).toBeLessThanOrEqual(1); // the key set at most once (other tests may have fetched it)
  });
});

describe('verified-token cache', () => {
  it('never serves a token that failed, nor one past its exp', async () => {
    const cached = createViewerVerifier({ JWT_SECRET: secret, JWT_USER_CLAIM: 'sub', JWT_CLOCK_TOLERANCE_S: 0, JWT_CACHE_SIZE: 10 });
    const bad = await sign((j) => j.setExpirationTime('5m'), 'another-secret-of-enough-length');
    await expect(cached(`Bearer ${bad}`)).rejects.toBeInstanceOf(HttpError);
    await expect(cached(`Bearer ${bad}`)).rejects.toBeInstanceOf(HttpError);
    const shortLived = await sign((j) => j.setExpirationTime(Math.floor(Date.now() / 1000) + 1));
    await expect(cached(`Bearer ${shortLived}`)).resolves.toMatchObject({ userId: 'viewer-7' });
    await sleep(1_100);
    await expect(cached(`Bearer ${shortLived}`)).rejects.toMatchObject({ code: 'token_expired' });
  });

  it('refuses a huge token before parsing it', async () => {
    await expect(verify(`Bearer ${'a'.repeat(1_000_000)}`)).rejects.toMatchObject({ statusCode: 401, code: 'invalid_token' });
  });
});
