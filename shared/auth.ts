import { createRemoteJWKSet, jwtVerify, errors as joseErrors, type JWTPayload, type JWTVerifyGetKey } from 'jose';
import type { webcrypto } from 'node:crypto';
import QuickLRU from 'quick-lru';
import * as z from './zod.ts';
import { env, type Settings } from './config.ts';
import { ConfigError, HttpError } from './errors.ts';
import { rereadWhenRejected, secretLocation, secretReader, type SecretsSettings } from './secrets.ts';

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

/** The token settings, typed from authEnv. */
export type AuthSettings = Settings<typeof authEnv>;

export interface Viewer { userId: string; claims: JWTPayload }

export type ViewerVerifier = (authorization: string | undefined) => Promise<Viewer>;

const realm = 'Bearer realm="ugc-ingest"';
// Tokens longer than this are refused before any parsing: no real access token is this large.
const maxTokenLength = 8_192;

/** A 401 with the WWW-Authenticate challenge RFC 6750 asks for. */
export function unauthorized(code: string, message: string, cause?: unknown): HttpError {
  const detail = code === 'missing_token' ? '' : `, error="invalid_token", error_description="${message}"`;
  return new HttpError(401, code, message, { 'WWW-Authenticate': `${realm}${detail}` }, { cause });
}

/** The keys (a JWKS, a stored secret) could not be read: not a verdict on the token, so a 503 to retry. */
function keysUnavailable(cause: unknown): HttpError {
  return new HttpError(503, 'auth_keys_unavailable', 'the token keys could not be fetched; retry later', { 'Retry-After': '1' }, { cause });
}

/** The key and the algorithms it may verify: fixed by configuration, never chosen by the token. */
function keySource(settings: AuthSettings): { key: Uint8Array | JWTVerifyGetKey; algorithms: string[] } {
  if (settings.JWT_JWKS_URL && settings.JWT_SECRET) throw new ConfigError('set either JWT_SECRET or JWT_JWKS_URL, not both');
  if (settings.JWT_JWKS_URL) {
    const algorithms = settings.JWT_ALGORITHMS ?? [...asymmetricAlgorithms];
    if (algorithms.includes('HS256')) throw new ConfigError('JWT_ALGORITHMS: HS256 cannot be used with JWT_JWKS_URL');
    return { key: createRemoteJWKSet(new URL(settings.JWT_JWKS_URL), { cooldownDuration: 30_000, cacheMaxAge: 600_000 }), algorithms };
  }
  if (settings.JWT_SECRET) {
    const algorithms = settings.JWT_ALGORITHMS ?? ['HS256'];
    if (algorithms.some((a) => a !== 'HS256')) throw new ConfigError('JWT_ALGORITHMS: only HS256 can be used with JWT_SECRET');
    return { key: new TextEncoder().encode(settings.JWT_SECRET), algorithms };
  }
  throw new ConfigError('JWT_SECRET or JWT_JWKS_URL must be set');
}

const bearerScheme = /^Bearer\b/i;
// The token's characters: base64url and the dots between its parts (and `=` some issuers pad with).
const isTokenChar = (c: number) => (c >= 65 && c <= 90) || (c >= 97 && c <= 122) || (c >= 48 && c <= 57) || c === 45 || c === 95 || c === 46 || c === 61;

/**
 * The token of a `Bearer <token>` header (spaces around it allowed), or undefined when it is
 * empty, too long or has other characters. A loop, not a case-insensitive regex: that cost 1-2 us
 * of an uncached verification's ~40.
 */
function bearerToken(authorization: string): string | undefined {
  let start = 6; // after "Bearer", which bearerScheme checked
  if (authorization.charCodeAt(start) !== 32) return undefined;
  while (authorization.charCodeAt(start) === 32) start++;
  let end = start;
  while (end < authorization.length && isTokenChar(authorization.charCodeAt(end))) end++;
  for (let i = end; i < authorization.length; i++) if (authorization.charCodeAt(i) !== 32) return undefined;
  return end > start && end - start <= maxTokenLength ? authorization.slice(start, end) : undefined;
}

/**
 * The user id from a verified token's claim (`sub`, or JWT_USER_CLAIM). Auth services that issue
 * integer ids get them as their decimal string (`12345` → "12345"), so the same viewer has the
 * same id whichever way the service encodes it. A number JSON cannot hold exactly (beyond 2^53,
 * or a fraction) would name the wrong viewer: refused, as is any other type or an empty string.
 */
export function userIdFromClaim(payload: JWTPayload, claim: string): string {
  const value = payload[claim];
  if (value === undefined || value === null) throw unauthorized('invalid_token', `the token has no ${claim} claim`);
  if (typeof value === 'string' && value !== '') return value;
  if (typeof value === 'number' && Number.isSafeInteger(value)) return String(value);
  throw unauthorized('invalid_token', `the token's ${claim} claim must be a non-empty string or an integer`);
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
  // jose imports a secret given as bytes into a CryptoKey on every call (about 100 us, most of
  // an uncached verification): import it once, on first use.
  let hmacKey: Promise<webcrypto.CryptoKey> | undefined;
  const importHmacKey = (bytes: Uint8Array) => (hmacKey ??= crypto.subtle.importKey('raw', bytes, { name: 'HMAC', hash: 'SHA-256' }, false, ['verify']));
  const verifyOptions = {
    algorithms: source.algorithms,
    issuer: settings.JWT_ISSUER,
    audience: settings.JWT_AUDIENCE,
    clockTolerance: settings.JWT_CLOCK_TOLERANCE_S,
    // An access token without exp would never expire: a leaked one would work forever.
    requiredClaims: ['exp'],
  };
  // quick-lru keeps between JWT_CACHE_SIZE and twice that many tokens (two generations, no per-hit bookkeeping).
  const cache = settings.JWT_CACHE_SIZE > 0 ? new QuickLRU<string, Viewer>({ maxSize: settings.JWT_CACHE_SIZE }) : undefined;

  async function verifyToken(token: string): Promise<Viewer> {
    const { payload } = source.key instanceof Uint8Array
      ? await jwtVerify(token, await importHmacKey(source.key), verifyOptions)
      // Separate call: jose's overloads take a key or a key resolver, not their union.
      : await jwtVerify(token, source.key, verifyOptions);
    return { userId: userIdFromClaim(payload, settings.JWT_USER_CLAIM), claims: payload };
  }

  return async (authorization) => {
    if (!authorization || !bearerScheme.test(authorization)) throw unauthorized('missing_token', 'an Authorization: Bearer token is required');
    const token = bearerToken(authorization);
    if (!token) throw unauthorized('invalid_token', 'the token is malformed');
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
      if (cause instanceof joseErrors.JWTClaimValidationFailed) throw unauthorized('invalid_token', claimProblem(cause), cause);
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

/** What is wrong with a claim, in words a client can act on (the code stays invalid_token, as RFC 6750 has it). */
function claimProblem({ claim, reason }: joseErrors.JWTClaimValidationFailed): string {
  if (claim === 'exp' && reason === 'missing') return 'the token has no exp claim: an access token must expire';
  if (claim === 'nbf') return 'the token is not valid yet: its nbf is in the future';
  if (claim === 'iss') return reason === 'missing' ? 'the token has no iss claim' : 'the token was issued by another issuer';
  if (claim === 'aud') return reason === 'missing' ? 'the token has no aud claim' : 'the token is meant for another audience';
  return reason === 'missing' ? `the token has no ${claim} claim` : `the token's ${claim} claim is not acceptable`;
}

/**
 * The verifier for the configured key source. With JWT_SECRET_PARAMETER / JWT_SECRET_SECRET_ARN
 * the HS256 secret is read on the first request and cached (see shared/secrets.ts); when the
 * stored secret rotates, the verifier is rebuilt. A store that cannot be read answers 503.
 */
export function createConfiguredViewerVerifier(
  settings: AuthSettings & SecretsSettings,
  { readSecret }: { readSecret?: (options?: { fresh?: boolean }) => Promise<string> } = {},
): ViewerVerifier {
  const source = { name: 'JWT_SECRET', value: settings.JWT_SECRET, parameterName: settings.JWT_SECRET_PARAMETER, secretId: settings.JWT_SECRET_SECRET_ARN };
  const location = secretLocation(source);
  // The deployed key sources: without iss and aud checks, any token the auth service signs for
  // another audience (or another issuer sharing the key) would be accepted.
  if ((location === 'ssm' || location === 'secretsManager' || settings.JWT_JWKS_URL) && !(settings.JWT_ISSUER && settings.JWT_AUDIENCE)) {
    throw new ConfigError('JWT_ISSUER and JWT_AUDIENCE must be set with a stored JWT secret or JWT_JWKS_URL');
  }
  if (location === 'value' || location === undefined) return createViewerVerifier(settings);
  if (settings.JWT_JWKS_URL) throw new ConfigError('set either a JWT secret or JWT_JWKS_URL, not both');
  const secret = rereadWhenRejected(readSecret ?? secretReader(source, { maxAgeS: settings.SECRETS_MAX_AGE_S }));
  let current: { secret: string; verify: ViewerVerifier } | undefined;
  async function verifier(): Promise<ViewerVerifier> {
    let value: string;
    try {
      value = await secret.read();
    } catch (cause) {
      throw keysUnavailable(cause);
    }
    if (value.length < 16) throw new ConfigError('JWT secret from the store: must be at least 16 characters');
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
