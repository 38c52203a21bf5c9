import { createHmac, generateKeyPairSync, timingSafeEqual, verify as cryptoVerify } from 'node:crypto';
import { SignJWT, createLocalJWKSet, exportJWK } from 'jose';
import { createViewerVerifier } from '../shared/auth.ts';
import { fmt, median, type Row } from './stats.ts';

const rounds = 5;
const secret = 'bench-secret-of-sufficient-length';

/** Runs `op` `n` times and returns operations per second. */
async function rate(n: number, op: () => unknown): Promise<number> {
  const start = performance.now();
  for (let i = 0; i < n; i++) await op();
  return n / ((performance.now() - start) / 1000);
}

/**
 * JWT verification as the ingest does it (cached, uncached HS256, uncached RS256 via a key set)
 * vs the bare crypto of the same token: HMAC-SHA256 + constant-time compare, `crypto.verify`.
 * Rounds alternate, so both sides see the same machine load.
 */
export async function benchJwt(): Promise<{ rows: Row[]; json: Record<string, unknown> }> {
  const settings = { JWT_SECRET: secret, JWT_USER_CLAIM: 'sub', JWT_CLOCK_TOLERANCE_S: 5 };
  const hsToken = await new SignJWT({}).setProtectedHeader({ alg: 'HS256', typ: 'JWT' }).setSubject('bench-viewer').setIssuedAt().setExpirationTime('1h')
    .sign(new TextEncoder().encode(secret));
  const rsa = generateKeyPairSync('rsa', { modulusLength: 2048 });
  const rsToken = await new SignJWT({}).setProtectedHeader({ alg: 'RS256', kid: 'k1' }).setSubject('bench-viewer').setIssuedAt().setExpirationTime('1h')
    .sign(rsa.privateKey);
  const jwks = createLocalJWKSet({ keys: [{ ...(await exportJWK(rsa.publicKey)), kid: 'k1', alg: 'RS256' }] });

  const cached = createViewerVerifier({ ...settings, JWT_CACHE_SIZE: 10_000 });
  const uncachedHs = createViewerVerifier({ ...settings, JWT_CACHE_SIZE: 0 });
  const uncachedRs = createViewerVerifier({ JWT_USER_CLAIM: 'sub', JWT_CLOCK_TOLERANCE_S: 5, JWT_CACHE_SIZE: 0 }, { key: jwks });

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

  const cases = [
    { name: 'JWT verify, cached (verifies/s)', op: () => cached(`Bearer ${hsToken}`), n: 200_000, baseline: 'HMAC-SHA256', raw: rawHmac, rawN: 100_000, target: '≥ 1 (faster than raw HMAC)', min: 1 },
    { name: 'JWT verify, uncached HS256 (verifies/s)', op: () => uncachedHs(`Bearer ${hsToken}`), n: 20_000, baseline: 'HMAC-SHA256', raw: rawHmac, rawN: 100_000, target: '', min: 0 },
    { name: 'JWT verify, uncached RS256 (verifies/s)', op: () => uncachedRs(`Bearer ${rsToken}`), n: 3_000, baseline: 'crypto.verify RSA-SHA256', raw: rawRsa, rawN: 3_000, target: '', min: 0 },
  ];
  const rows: Row[] = [];
  const json: Record<string, unknown> = {};
  for (const c of cases) {
    await rate(Math.ceil(c.n / 10), c.op); // warm up
    await rate(Math.ceil(c.rawN / 10), c.raw);
    const measured: number[] = [];
    const baseline: number[] = [];
    for (let r = 0; r < rounds; r++) {
      measured.push(await rate(Math.ceil(c.n / rounds), c.op));
      baseline.push(await rate(Math.ceil(c.rawN / rounds), c.raw));
    }
    const m = median(measured);
    const b = median(baseline);
    const ratio = m / b;
    rows.push({ benchmark: c.name, measured: fmt(m), baseline: `${c.baseline} ${fmt(b)}`, ratio: fmt(ratio, 2), target: c.target,
      verdict: c.target ? (ratio >= c.min ? 'ok' : 'MISSED') : '' });
    json[c.name] = { per_s: m, baseline_per_s: b, ratio, rounds };
  }
  return { rows, json: { jwt: json } };
}
