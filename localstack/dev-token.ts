import { SignJWT } from 'jose';
import { fileURLToPath } from 'node:url';

/** The HS256 secret offline runs use when JWT_SECRET is not set. Never used in a deployed stage. */
export const devJwtSecret = 'ugc-ingest-local-dev-secret-not-for-production';

/** Signs a viewer token like the cinema's Auth service does (HS256, sub = user id). */
export async function signDevToken(
  userId: string,
  { secret = devJwtSecret, expiresIn = '24h', issuer, audience }: { secret?: string; expiresIn?: string | number; issuer?: string; audience?: string } = {},
): Promise<string> {
  let jwt = new SignJWT({}).setProtectedHeader({ alg: 'HS256', typ: 'JWT' }).setSubject(userId).setIssuedAt().setExpirationTime(expiresIn);
  if (issuer) jwt = jwt.setIssuer(issuer);
  if (audience) jwt = jwt.setAudience(audience);
  return jwt.sign(new TextEncoder().encode(secret));
}

// `npm run token -- <user-id>`: prints a token for curl.
if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  console.log(await signDevToken(process.argv[2] ?? 'viewer-1', {
    secret: process.env.JWT_SECRET || devJwtSecret,
    issuer: process.env.JWT_ISSUER || undefined,
    audience: process.env.JWT_AUDIENCE || undefined,
  }));
}
