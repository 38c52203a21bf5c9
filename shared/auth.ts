import { createRemoteJWKSet, jwtVerify, errors as joseErrors, type JWTPayload, type JWTVerifyGetKey } from 'jose';
import QuickLRU from 'quick-lru';
import * as z from './zod.ts';
import { env } from './config.ts';
import { HttpError } from './errors.ts';
import { rereadWhenRejected, secretLocation, secretReader } from './secrets.ts';

const asymmetricAlgorithms = ['RS256', 'ES256'] as const;

/** Token settings shared by every function that serves viewers. Exactly one key source. */
export const authEnv = {
  // HS256 shared secret, as the cinema's Auth service issues tokens today.
  JWT_SECRET: z.optional(z.string().check(z.minLength(16, 'must be at least 16 characters'))),
  // Deployed stages: the same secret read from SSM Parameter Store (SecureString) or Secrets Manager.
  JWT_SECRET_PARAMETER: env.parameterName(),
  JWT_SECRET_SECRET_ARN: env.optionalString(),
  // Or a JWKS URL (RS256/ES256); keys are cached and rotated by jose.
  JWT_JWKS_URL: z.optional(env.url()),
  JWT_ALGORITHMS: z.optional(z.pipe(env.list(), z.array(z.enum(['HS256', ...asymmetricAlgorithms])))),
  JWT_ISSUER: env.optionalString(),
  JWT_AUDIENCE: env.optionalString(),
  JWT_USER_CLAIM: env.string('sub'),
  JWT_CLOCK_TOLERANCE_S: env.int(5),
  JWT_CACHE_SIZE: env.int(10_000, 0),
};

export interface AuthSettings {
  JWT_SECRET?: string | undefined;
  JWT_SECRET_PARAMETER?: string | undefined;
  JWT_SECRET_SECRET_ARN?: string | undefined;
  JWT_JWKS_URL?: string | undefined;
  JWT_ALGORITHMS?: string[] | undefined;
  JWT_ISSUER?: string | undefined;
  JWT_AUDIENCE?: string | undefined;
  JWT_USER_CLAIM: string;
  JWT_CLOCK_TOLERANCE_S: number;
  JWT_CACHE_SIZE: number;
}

export interface Viewer { userId: string; claims: JWTPayload }

export type ViewerVerifier = (authorization: string | undefined) => Promise<Viewer>;

const realm = 'Bearer realm="ugc-ingest"';
// Tokens longer than this are refused before any parsing: no real access token is this large.
const maxTokenLength = 8_192;

function unauthorized(code: string, message: string, cause?: unknown): HttpError {
  const detail = code === 'missing_token' ? '' : `, error="invalid_token", error_description="${message}"`;
  return new HttpError(401, code, message, { 'WWW-Authenticate': `${realm}${detail}` }, { cause });
}

/** The keys (a JWKS, a stored secret) could not be read: not a verdict on the token, so a 503 to retry. */
function keysUnavailable(cause: unknown): HttpError {
  return new HttpError(503, 'auth_keys_unavailable', 'the token keys could not be fetched; retry later', { 'Retry-After': '1' }, { cause });
}

/** The key and the algorithms it may verify: fixed by configuration, never chosen by the token. */
function keySource(settings: AuthSettings): { key: Uint8Array | JWTVerifyGetKey; algorithms: string[] } {
  if (settings.JWT_JWKS_URL && settings.JWT_SECRET) throw new Error('set either JWT_SECRET or JWT_JWKS_URL, not both');
  if (settings.JWT_JWKS_URL) {
    const algorithms = settings.JWT_ALGORITHMS ?? [...asymmetricAlgorithms];
    if (algorithms.includes('HS256')) throw new Error('JWT_ALGORITHMS: HS256 cannot be used with JWT_JWKS_URL');
    return { key: createRemoteJWKSet(new URL(settings.JWT_JWKS_URL), { cooldownDuration: 30_000, cacheMaxAge: 600_000 }), algorithms };
  }
  if (settings.JWT_SECRET) {
    const algorithms = settings.JWT_ALGORITHMS ?? ['HS256'];
    if (algorithms.some((a) => a !== 'HS256')) throw new Error('JWT_ALGORITHMS: only HS256 can be used with JWT_SECRET');
    return { key: new TextEncoder().encode(settings.JWT_SECRET), algorithms };
  }
  throw new Error('JWT_SECRET or JWT_JWKS_URL must be set');
}

/**
 * Builds a verifier for `Authorization: Bearer <jwt>` headers: signature with the configured key,
 * alg pinned (never `none`, no HS/RS confusion), exp/nbf with a small tolerance, iss/aud when
 * configured. The user id comes from the verified claim, never from the request body.
 * Verified tokens are remembered until they expire (bounded LRU), so a viewer's repeated
 * requests cost no crypto; a token that fails is never remembered.
 */
export function createViewerVerifier(settings: AuthSettings, options: { key?: JWTVerifyGetKey } = {}): ViewerVerifier {
  const source = options.key
    ? { key: options.key, algorithms: settings.JWT_ALGORITHMS ?? [...asymmetricAlgorithms] }
    : keySource(settings);
  // quick-lru keeps between JWT_CACHE_SIZE and twice that many tokens (two generations, no per-hit bookkeeping).
  const cache = settings.JWT_CACHE_SIZE > 0 ? new QuickLRU<string, Viewer>({ maxSize: settings.JWT_CACHE_SIZE }) : undefined;

  async function verifyToken(token: string): Promise<Viewer> {
    const verifyOptions = {
      algorithms: source.algorithms,
      issuer: settings.JWT_ISSUER,
      audience: settings.JWT_AUDIENCE,
      clockTolerance: settings.JWT_CLOCK_TOLERANCE_S,
      // An access token without exp would never expire: a leaked one would work forever.
      requiredClaims: ['exp'],
    };
    const { payload } = source.key instanceof Uint8Array
      ? await jwtVerify(token, source.key, verifyOptions)
      // Separate call: jose's overloads take a key or a key resolver, not their union.
      : await jwtVerify(token, source.key, verifyOptions);
    const userId = payload[settings.JWT_USER_CLAIM];
    if (typeof userId !== 'string' || userId === '') {
      throw unauthorized('invalid_token', `the token has no ${settings.JWT_USER_CLAIM} claim`);
    }
    return { userId, claims: payload };
  }

  return async (authorization) => {
    const match = authorization?.match(/^Bearer +([A-Za-z0-9_\-.=]+) *$/i);
    if (!authorization || !/^Bearer\b/i.test(authorization)) throw unauthorized('missing_token', 'an Authorization: Bearer token is required');
    if (!match?.[1] || match[1].length > maxTokenLength) throw unauthorized('invalid_token', 'the token is malformed');
    const token = match[1];
    const cached = cache?.get(token);
    if (cached) return cached;
    try {
      const viewer = await verifyToken(token);
      // Remembered until exp (required above), so an expired token is never served from cache.
      const ttl = (viewer.claims.exp ?? 0) * 1000 - Date.now();
      if (cache && ttl > 0) cache.set(token, viewer, { maxAge: ttl });
      return viewer;
    } catch (cause) {
      if (cause instanceof HttpError) throw cause;
      if (cause instanceof joseErrors.JWTExpired) throw unauthorized('token_expired', 'the token has expired', cause);
      // Not a verdict on the token: the key set could not be fetched (network, timeout, an answer
      // other than 200, a body that is not a key set; jose throws its base JOSEError for those).
      // A 401 would make clients give up the events; a 503 makes them retry.
      const keySetFailed = cause instanceof joseErrors.JWKSTimeout || cause instanceof joseErrors.JWKSInvalid
        || !(cause instanceof joseErrors.JOSEError) || cause.constructor === joseErrors.JOSEError;
      if (keySetFailed) throw keysUnavailable(cause);
      throw unauthorized('invalid_token', 'the token is invalid', cause);
    }
  };
}

/**
 * The verifier for the configured key source. With JWT_SECRET_PARAMETER / JWT_SECRET_SECRET_ARN
 * the HS256 secret is read on the first request and cached (see shared/secrets.ts); when the
 * stored secret rotates, the verifier is rebuilt. A store that cannot be read answers 503.
 */
export function createConfiguredViewerVerifier(
  settings: AuthSettings,
  { readSecret, maxAgeS }: { readSecret?: (options?: { fresh?: boolean }) => Promise<string>; maxAgeS?: number } = {},
): ViewerVerifier {
  const source = { name: 'JWT_SECRET', value: settings.JWT_SECRET, parameterName: settings.JWT_SECRET_PARAMETER, secretId: settings.JWT_SECRET_SECRET_ARN };
  const location = secretLocation(source);
  // The deployed key sources: without iss and aud checks, any token the auth service signs for
  // another audience (or another issuer sharing the key) would be accepted.
  if ((location === 'ssm' || location === 'secretsManager' || settings.JWT_JWKS_URL) && !(settings.JWT_ISSUER && settings.JWT_AUDIENCE)) {
    throw new Error('JWT_ISSUER and JWT_AUDIENCE must be set with a stored JWT secret or JWT_JWKS_URL');
  }
  if (location === 'value' || location === undefined) return createViewerVerifier(settings);
  if (settings.JWT_JWKS_URL) throw new Error('set either a JWT secret or JWT_JWKS_URL, not both');
  const secret = rereadWhenRejected(readSecret ?? secretReader(source, { maxAgeS }));
  let current: { secret: string; verify: ViewerVerifier } | undefined;
  async function verifier(): Promise<ViewerVerifier> {
    let value: string;
    try {
      value = await secret.read();
    } catch (cause) {
      throw keysUnavailable(cause);
    }
    if (value.length < 16) throw new Error('JWT secret from the store: must be at least 16 characters');
    if (current?.secret !== value) current = { secret: value, verify: createViewerVerifier({ ...settings, JWT_SECRET: value, JWT_SECRET_PARAMETER: undefined, JWT_SECRET_SECRET_ARN: undefined }) };
    return current.verify;
  }
  return async (authorization) => {
    const verify = await verifier();
    try {
      return await verify(authorization);
    } catch (error) {
      // A good signature with another secret: the auth service may have rotated it. Read the store
      // again (at most every 30 s) and, if the secret changed, verify with the new one.
      if (!(error instanceof HttpError && error.cause instanceof joseErrors.JWSSignatureVerificationFailed)) throw error;
      secret.rejected();
      const again = await verifier();
      if (again === verify) throw error;
      return again(authorization);
    }
  };
}
