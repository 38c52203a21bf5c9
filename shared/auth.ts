import { jwtVerify, errors as joseErrors, type JWTPayload } from 'jose';
import { z } from 'zod';
import { env } from './config.ts';
import { HttpError } from './errors.ts';

/** Token settings shared by every function that serves viewers. */
export const authEnv = {
  JWT_SECRET: z.string().min(16, 'JWT_SECRET must be at least 16 characters'),
  JWT_ISSUER: z.string().optional(),
  JWT_AUDIENCE: z.string().optional(),
  JWT_USER_CLAIM: env.string('sub'),
  JWT_CLOCK_TOLERANCE_S: env.int(5),
};

export interface AuthSettings {
  JWT_SECRET: string;
  JWT_ISSUER?: string | undefined;
  JWT_AUDIENCE?: string | undefined;
  JWT_USER_CLAIM: string;
  JWT_CLOCK_TOLERANCE_S: number;
}

export interface Viewer { userId: string; claims: JWTPayload }

const realm = 'Bearer realm="ugc-ingest"';

function unauthorized(code: string, message: string, cause?: unknown): HttpError {
  const error = code === 'missing_token' ? '' : `, error="invalid_token", error_description="${message}"`;
  return new HttpError(401, code, message, { 'WWW-Authenticate': `${realm}${error}` }, { cause });
}

/**
 * Builds a verifier for `Authorization: Bearer <jwt>` headers: HS256 only (alg pinned, so never
 * `none` and no HS/RS confusion), exp/nbf with a small tolerance, iss/aud when configured.
 * The user id comes from the verified claim, never from the request body.
 */
export function createViewerVerifier(settings: AuthSettings): (authorization: string | undefined) => Promise<Viewer> {
  const key = new TextEncoder().encode(settings.JWT_SECRET);
  return async (authorization) => {
    const match = authorization?.match(/^Bearer\s+(\S+)\s*$/i);
    if (!match?.[1]) throw unauthorized('missing_token', 'an Authorization: Bearer token is required');
    try {
      const { payload } = await jwtVerify(match[1], key, {
        algorithms: ['HS256'],
        issuer: settings.JWT_ISSUER,
        audience: settings.JWT_AUDIENCE,
        clockTolerance: settings.JWT_CLOCK_TOLERANCE_S,
      });
      const userId = payload[settings.JWT_USER_CLAIM];
      if (typeof userId !== 'string' || userId === '') {
        throw unauthorized('invalid_token', `the token has no ${settings.JWT_USER_CLAIM} claim`);
      }
      return { userId, claims: payload };
    } catch (cause) {
      if (cause instanceof HttpError) throw cause;
      if (cause instanceof joseErrors.JWTExpired) throw unauthorized('token_expired', 'the token has expired', cause);
      throw unauthorized('invalid_token', 'the token is invalid', cause);
    }
  };
}
