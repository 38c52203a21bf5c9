import { SignJWT, UnsecuredJWT } from 'jose';
import { describe, expect, it } from 'vitest';
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

  it('refuses expired, not-yet-valid, wrong-issuer, wrong-key, unsigned and malformed tokens', async () => {
    const now = Math.floor(Date.now() / 1000);
    expect((await rejection(`Bearer ${await sign((j) => j.setExpirationTime(now - 60))}`)).code).toBe('token_expired');
    expect((await rejection(`Bearer ${await sign((j) => j.setExpirationTime('5m').setNotBefore(now + 600))}`)).statusCode).toBe(401);
    expect((await rejection(`Bearer ${await sign((j) => j.setExpirationTime('5m').setIssuer('evil'))}`)).statusCode).toBe(401);
    expect((await rejection(`Bearer ${await sign((j) => j.setExpirationTime('5m'), 'another-secret-of-enough-length')}`)).statusCode).toBe(401);
    const unsigned = new UnsecuredJWT({}).setSubject('viewer-7').setIssuer('auth').setAudience('ugc').setExpirationTime('5m').encode();
    expect((await rejection(`Bearer ${unsigned}`)).code).toBe('invalid_token');
    expect((await rejection('Bearer not.a.jwt')).code).toBe('invalid_token');
    expect((await rejection('Basic dXNlcjpwYXNz')).code).toBe('missing_token');
  });
});
