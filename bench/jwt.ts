import { createHmac, generateKeyPairSync, timingSafeEqual, verify as cryptoVerify } from 'node:crypto';
import { SignJWT, createLocalJWKSet, exportJWK, jwtVerify } from 'jose';
import { createViewerVerifier } from '../shared/auth.ts';
import { fmt, median, pairedRatio, type Row } from './stats.ts';

// Many short rounds, the order alternating: the shared machine's load changes within a second.
const rounds = 60;
const secret = 'bench-secret-of-sufficient-length';
const issuer = 'https://auth.bench.example';
const audience = 'ugc-ingest';

/** Runs `op` `n` times and returns operations per second. */
async function rate(n: number, op: () => unknown): Promise<number> {
  const start = performance.now();
  for (let i = 0; i < n; i++) await op();
  return n / ((performance.now() - start) / 1000);
}

interface Baseline { name: string; op: () => unknown; n: number; target?: number }

/**
 * JWT verification as the ingest does it (cached, uncached HS256, uncached RS256 via a key set)
 * vs jose's own `jwtVerify` of the same token with the key prepared once (a CryptoKey imported
 * once, a key set built once) and the same checks: the library's floor, so the ratio is what the
 * verifier adds. Beside it the bare crypto of the same token (HMAC-SHA256 + constant-time compare,
 * `crypto.verify`): the physical floor. Each round runs every side back to back; ratios are the
 * median of per-round ratios.
 */
export async function benchJwt(): Promise<{ rows: Row[]; json: Record<string, unknown> }> {
  const settings = { JWT_SECRET: secret, JWT_USER_CLAIM: 'sub', JWT_CLOCK_TOLERANCE_S: 5, JWT_ISSUER: issuer, JWT_AUDIENCE: audience };
  const sign = (alg: string) => new SignJWT({}).setProtectedHeader({ alg, typ: 'JWT', kid: 'k1' }).setSubject('bench-viewer').setIssuer(issuer)
    .setAudience(audience).setIssuedAt().setNotBefore('0s').setExpirationTime('1h');
  const hsToken = await sign('HS256').sign(new TextEncoder().encode(secret));
  const rsa = generateKeyPairSync('rsa', { modulusLength: 2048 });
  const rsToken = await sign('RS256').sign(rsa.privateKey);
  const jwks = createLocalJWKSet({ keys: [{ ...(await exportJWK(rsa.publicKey)), kid: 'k1', alg: 'RS256' }] });

  const cached = createViewerVerifier({ ...settings, JWT_CACHE_SIZE: 10_000 });
  const uncachedHs = createViewerVerifier({ ...settings, JWT_CACHE_SIZE: 0 });
  const { JWT_SECRET: _, ...asymmetric } = settings;
  const uncachedRs = createViewerVerifier({ ...asymmetric, JWT_CACHE_SIZE: 0 }, { key: jwks });

  // jose's floor: the same checks the verifier asks for, the key prepared once.
  const joseOptions = (algorithms: string[]) => ({ algorithms, issuer, audience, clockTolerance: 5, requiredClaims: ['exp'] });
  const hmacKey = await crypto.subtle.importKey('raw', new TextEncoder().encode(secret), { name: 'HMAC', hash: 'SHA-256' }, false, ['verify']);
  const joseHs = () => jwtVerify(hsToken, hmacKey, joseOptions(['HS256']));
  const joseRs = () => jwtVerify(rsToken, jwks, joseOptions(['RS256', 'ES256']));

  const [hsHead, hsBody, hsSig] = hsToken.split('.') as [string, string, string];
  const hsInput = `${hsHead}.${hsBody}`;
  const hsSigBytes = Buffer.from(hsSig, 'base64url');
  const rawHmac = () => {
    const mac = createHmac('sha256', secret).update(hsInput).digest();
    if (!timingSafeEqual(mac, hsSigBytes)) throw new Error('bad hmac');
  };
  const [rsHead, rsBody, rsSig] = rsToken.split('.') as [string, string, string];
  const rsInput = Buffer.from(`${rsHead}.${rsBody}`);
  const rsSigBytes = Buffer.from(rsSig, 'base64url');
  const rawRsa = () => {
    if (!cryptoVerify('RSA-SHA256', rsInput, rsa.publicKey, rsSigBytes)) throw new Error('bad rsa');
  };

  // Each header built once: a request's header arrives as one string.
  const hsHeader = `Bearer ${hsToken}`;
  const rsHeader = `Bearer ${rsToken}`;
  const cases: { name: string; op: () => unknown; n: number; baselines: Baseline[] }[] = [
    { name: 'JWT verify, cached (verifies/s)', op: () => cached(hsHeader), n: 200_000,
      baselines: [{ name: 'HMAC-SHA256', op: rawHmac, n: 100_000, target: 1 }] },
    { name: 'JWT verify, uncached HS256 (verifies/s)', op: () => uncachedHs(hsHeader), n: 20_000,
      baselines: [{ name: 'jose jwtVerify, CryptoKey imported once', op: joseHs, n: 20_000, target: 0.9 }, { name: 'HMAC-SHA256 (physical floor)', op: rawHmac, n: 100_000 }] },
    { name: 'JWT verify, uncached RS256 (verifies/s)', op: () => uncachedRs(rsHeader), n: 12_000,
      baselines: [{ name: 'jose jwtVerify, key set built once', op: joseRs, n: 12_000, target: 0.9 }, { name: 'crypto.verify RSA-SHA256 (physical floor)', op: rawRsa, n: 3_000 }] },
  ];
  const rows: Row[] = [];
  const json: Record<string, unknown> = {};
  for (const c of cases) {
    await rate(Math.ceil(c.n / 10), c.op); // warm up
    for (const b of c.baselines) await rate(Math.ceil(b.n / 10), b.op);
    const measured: number[] = [];
    const baselines = c.baselines.map((): number[] => []);
    for (let r = 0; r < rounds; r++) {
      const measure = async () => measured.push(await rate(Math.ceil(c.n / rounds), c.op));
      if (r % 2 === 0) await measure();
      for (let i = 0; i < c.baselines.length; i++) baselines[i]!.push(await rate(Math.ceil(c.baselines[i]!.n / rounds), c.baselines[i]!.op));
      if (r % 2 === 1) await measure();
    }
    const m = median(measured);
    json[c.name] = { per_s: m, rounds };
    c.baselines.forEach((b, i) => {
      const ratio = pairedRatio(measured, baselines[i]!);
      const target = b.target === undefined ? '' : b.target === 1 ? '≥ 1 (faster than raw HMAC)' : `≥ ${b.target}`;
      rows.push({ benchmark: c.name, measured: fmt(m), baseline: `${b.name} ${fmt(median(baselines[i]!))}`, ratio: fmt(ratio, 2), target,
        verdict: b.target === undefined ? '' : ratio >= b.target ? 'ok' : 'MISSED' });
      (json[c.name] as Record<string, unknown>)[b.name] = { per_s: median(baselines[i]!), ratio };
    });
  }
  return { rows, json: { jwt: json } };
}
