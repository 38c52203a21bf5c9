import { randomUUID, generateKeyPairSync, createHmac } from 'node:crypto';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import type { APIGatewayProxyEventV2, Context } from 'aws-lambda';
import fc from 'fast-check';
import { SignJWT, createLocalJWKSet, exportJWK } from 'jose';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createViewerVerifier } from '../../shared/auth.ts';
import { HttpError } from '../../shared/errors.ts';
import { eventSchemas, eventTypes, registryExamples } from '../../shared/events.ts';
import * as z from '../../shared/zod.ts';
import { stackEnv } from '../setup/context.ts';
import { quietProductLogs, report, type IngestHandler } from './harness.ts';
import { productTopicConfigs, testTopics } from '../setup/kafka.ts';

// Bad requests and forged tokens against the ingest handler in-process, configured as deployed
// (1 MiB bodies, 500 events): every answer is a 4xx with a machine-readable code, never a 5xx,
// never a 202, and memory stays bounded.
const topic = `abuse-${randomUUID().slice(0, 8)}`;
const secret = 'an-abuse-suite-secret-of-sufficient-length';
const issuer = 'https://auth.cinema.example';
const audience = 'ugc-ingest';
let handler: IngestHandler;
let topics: ReturnType<typeof testTopics> | undefined;
let goodToken: string;

beforeAll(async () => {
  quietProductLogs();
  // Its own topic on the shared cluster: nothing here stops a broker.
  const brokers = stackEnv().KAFKA_BROKERS!;
  topics = testTopics(brokers.split(','));
  await topics.create({ name: topic, partitions: 1, configs: productTopicConfigs });
  Object.assign(process.env, {
    KAFKA_BROKERS: brokers, KAFKA_TOPIC: topic,
    JWT_SECRET: secret, JWT_ISSUER: issuer, JWT_AUDIENCE: audience,
    MAX_BODY_BYTES: '1048576', MAX_EVENTS_PER_REQUEST: '500', PRODUCE_TIMEOUT_MS: '2000',
    POWERTOOLS_LOG_LEVEL: 'SILENT', POWERTOOLS_METRICS_DISABLED: 'true',
  });
  ({ handler } = (await import('../../functions/ingest/handler.ts')) as unknown as { handler: IngestHandler });
  goodToken = await sign({ sub: 'fuzz-viewer' });
}, 60_000);

afterAll(async () => {
  await topics?.drop();
});

function sign(claims: Record<string, unknown>, { key = new TextEncoder().encode(secret) as Uint8Array | ReturnType<typeof generateKeyPairSync>['privateKey'], alg = 'HS256', exp = '1h' as string | number, iss = issuer, aud = audience } = {}): Promise<string> {
  let jwt = new SignJWT(claims).setProtectedHeader({ alg, typ: 'JWT' }).setIssuedAt();
  if (exp !== '') jwt = jwt.setExpirationTime(exp);
  if (iss) jwt = jwt.setIssuer(iss);
  if (aud) jwt = jwt.setAudience(aud);
  return jwt.sign(key as Uint8Array);
}

interface Request { routeKey?: string; body?: string; isBase64Encoded?: boolean; /** null: no Content-Type header */ contentType?: string | null; authorization?: string; filmId?: string }

async function call({ routeKey = 'POST /v1/events', body, isBase64Encoded = false, contentType = 'application/json', authorization = `Bearer ${goodToken}`, filmId }: Request) {
  const headers: Record<string, string> = { authorization };
  if (contentType !== null) headers['content-type'] = contentType;
  const event = {
    version: '2.0', routeKey, rawPath: routeKey.split(' ')[1], body, isBase64Encoded, headers,
    pathParameters: filmId === undefined ? undefined : { film_id: filmId },
    requestContext: { requestId: randomUUID(), http: { method: 'POST' } },
  } as unknown as APIGatewayProxyEventV2;
  const context = { awsRequestId: randomUUID(), getRemainingTimeInMillis: () => 10_000 } as unknown as Context;
  const res = await handler(event, context);
  let parsed: { code?: unknown } = {};
  try { parsed = JSON.parse(String(res.body)) as { code?: unknown }; } catch { /* checked below */ }
  return { status: res.statusCode ?? 0, code: parsed.code };
}

// --- generators of requests that must all be refused -----------------------------------------

// From the registry: every type, a valid event of each (its first example, without the optional
// envelope), and each field's kind and the names it declares.
const types: string[] = eventTypes;
const validBase: Record<string, Record<string, unknown>> = Object.fromEntries(eventTypes.map((type) => {
  const { event_id: _id, client_ts: _ts, ...base } = registryExamples(type)[0]!;
  return [type, base];
}));
const typeSchemas = Object.fromEntries(eventTypes.map((type) => [type, z.toJSONSchema(eventSchemas[type], { io: 'input' }) as { properties: Record<string, { type?: string; maxLength?: number }> }]));
const declaredFields = (type: string) => Object.keys(typeSchemas[type]!.properties);
/** Values field `field` of `type` never accepts, by the kind its schema declares. */
const brokenValue = (type: string, field: string) => {
  const schema = typeSchemas[type]!.properties[field]!;
  return schema.type === 'integer' || schema.type === 'number' ? notANumber : notAString(schema.maxLength ?? 2_048);
};
const unicodeEdge = fc.constantFrom('\ud800', '\udfff', 'a\ud83d', '\u0000', '\u202e', '\ufeff', '\u{10ffff}', 'Ω≈ç√', '\u2028\u2029');
// Values no field of the given kind accepts (so a generated event is always invalid).
const notANumber = fc.oneof(fc.string(), fc.boolean(), fc.constant(null), fc.array(fc.nat(), { maxLength: 3 }), fc.object({ maxDepth: 1 }),
  fc.constantFrom(0.5, -1, -0.0001, 1e300, Number.MAX_SAFE_INTEGER + 2, '1', '0x10'));
/** Values a text field of at most `max` characters never accepts. */
const notAString = (max: number) => fc.oneof(fc.integer(), fc.boolean(), fc.constant(null), fc.array(fc.string(), { maxLength: 3 }), fc.object({ maxDepth: 1 }),
  fc.constantFrom(''), fc.string({ minLength: max + 1, maxLength: max + 1_000 }), unicodeEdge.map((u) => `x${u}`).filter((s) => /\p{Cs}/u.test(s)));
/** A valid event with one field broken: wrong type, out of range, unknown field, bad id or timestamp. */
const brokenEvent = fc.constantFrom(...types).chain((type) => {
  const base = validBase[type]!;
  const fields = Object.keys(base).filter((f) => f !== 'type');
  return fc.oneof(
    fc.constantFrom(...fields).chain((field) => brokenValue(type, field).map((v) => ({ ...base, [field]: v }))),
    fc.string().filter((t) => !types.includes(t)).map((t) => ({ ...base, type: t })),
    fc.constant(Object.fromEntries(Object.entries(base).filter(([k]) => k === 'type'))),
    fc.string({ minLength: 1, maxLength: 10 }).filter((k) => !(k in base) && !declaredFields(type).includes(k)).map((k) => ({ ...base, [k]: 1 })),
    fc.oneof(fc.string(), fc.integer(), fc.constant('00000000-0000-0000-0000-00000000000g')).map((id) => ({ ...base, event_id: id })),
    fc.oneof(fc.constantFrom('yesterday', '2026-13-01T00:00:00Z', '2026-01-01', -1, 1.5, 1e16, true)).map((ts) => ({ ...base, client_ts: ts })),
    fc.constantFrom({ ...base, user_id: 'someone-else' }, { ...base, received_at: '2020-01-01T00:00:00Z' }),
  );
});

const badBody = fc.oneof(
  // broken JSON: truncated or garbled valid JSON, or random text
  fc.tuple(brokenEvent, fc.nat()).map(([e, cut]) => { const s = JSON.stringify({ events: [e] }); return s.slice(0, cut % s.length); }).filter((s) => { try { JSON.parse(s); return false; } catch { return true; } }),
  fc.string({ unit: 'binary', minLength: 1 }).filter((s) => { try { JSON.parse(s); return false; } catch { return true; } }),
  // wrong types at the top
  fc.oneof(fc.constant(null), fc.integer(), fc.string(), fc.boolean(), fc.array(fc.anything(), { maxLength: 5 })).map((v) => JSON.stringify(v)),
  fc.oneof(fc.constant(null), fc.integer(), fc.string(), fc.object()).map((events) => JSON.stringify({ events })),
  fc.constant(JSON.stringify({ events: [] })),
  // invalid events, alone or in batches
  brokenEvent.map((e) => JSON.stringify(e)),
  fc.array(brokenEvent, { minLength: 1, maxLength: 20 }).map((events) => JSON.stringify({ events })),
  // unicode edge cases inside fields and keys, and as invalid UTF-8 escapes
  fc.tuple(fc.constantFrom(...types), unicodeEdge).map(([type, u]) => JSON.stringify({ ...validBase[type], type: `${type}${u}` })),
  unicodeEdge.map((u) => JSON.stringify({ [`type${u}`]: 'click', url: '/', element: 'e' })),
  // deep nesting
  fc.integer({ min: 1_000, max: 200_000 }).map((n) => `${'['.repeat(n)}${']'.repeat(n)}`),
  fc.integer({ min: 1_000, max: 100_000 }).map((n) => `{"events":[{"type":"click","url":"/","element":${'['.repeat(n)}${']'.repeat(n)}}]}`),
  fc.integer({ min: 1_000, max: 50_000 }).map((n) => `{"events":[${'{"a":'.repeat(n)}1${'}'.repeat(n)}]}`),
  // too many events
  fc.integer({ min: 501, max: 2_000 }).map((n) => JSON.stringify({ events: Array.from({ length: n }, () => validBase.click) })),
);

describe('fuzzing the ingest with bad requests', () => {
  it('answers at least 10,000 generated bad requests with a 4xx and a code: no 5xx, no 202, no crash, bounded memory', async () => {
    setFlagsFromString('--expose-gc');
    const gc = runInNewContext('gc') as () => void;
    const statuses = new Map<number, number>();
    const failures: string[] = [];
    let cases = 0;
    const check = async (request: Request, label: string) => {
      cases += 1;
      let result: { status: number; code: unknown };
      try {
        result = await call(request);
      } catch (error) {
        failures.push(`${label}: handler threw ${String(error)}`);
        return;
      }
      statuses.set(result.status, (statuses.get(result.status) ?? 0) + 1);
      if (result.status < 400 || result.status >= 500 || typeof result.code !== 'string') {
        failures.push(`${label}: ${result.status} ${String(result.code)} for ${JSON.stringify(request).slice(0, 300)}`);
      }
    };
    // Warm up, then measure memory around the whole run.
    for (let i = 0; i < 200; i++) await check({ body: '{' }, 'warm-up');
    gc();
    const heapBefore = process.memoryUsage().heapUsed;
    const rssBefore = process.memoryUsage().rss;

    await fc.assert(fc.asyncProperty(badBody, async (body) => { await check({ body }, 'body'); }), { numRuns: 7_000, seed: 1 });
    // Bodies as API Gateway sends binary: base64 of garbage or of bad JSON.
    await fc.assert(fc.asyncProperty(fc.oneof(fc.uint8Array({ minLength: 1, maxLength: 200 }).map((b) => Buffer.from(b).toString('base64')),
      badBody.map((s) => Buffer.from(s).toString('base64')), fc.string({ minLength: 1 })), async (body) => {
      await check({ body, isBase64Encoded: true }, 'base64');
    }), { numRuns: 1_000, seed: 2 });
    // Wrong or missing content types, with a valid body.
    await fc.assert(fc.asyncProperty(fc.oneof(
      fc.constantFrom(null, '', 'text/plain', 'application/x-www-form-urlencoded', 'multipart/form-data; boundary=x', 'application/jsonp',
        'application/json-patch', 'json', 'application/xml', 'text/json', ' application/json'),
      fc.string().filter((s) => !/^application\/(?:[\w.+-]+\+)?json\s*(?:;|$)/i.test(s)),
    ), async (contentType) => {
      await check({ body: JSON.stringify(validBase.click), contentType }, 'content-type');
    }), { numRuns: 1_000, seed: 3 });
    // The film progress route: bad path parameters (empty, huge, a lone surrogate) and bodies. API Gateway
    // hands path parameters over decoded, so a '%' in one is the film id's own character, not bad input.
    await fc.assert(fc.asyncProperty(fc.oneof(
      fc.constantFrom('', 'x'.repeat(65), 'x'.repeat(100_000), '\ud800', 'a\udc00b', '\udc00\ud800'),
      fc.string({ unit: 'binary', minLength: 65 }),
      fc.string({ maxLength: 20 }).map((s) => `${s}\ud800`),
    ), fc.oneof(fc.constant(JSON.stringify({ position_s: 1 })), badBody), async (filmId, body) => {
      await check({ routeKey: 'POST /v1/films/{film_id}/progress', filmId, body }, 'film route');
    }), { numRuns: 1_000, seed: 4 });
    // Oversize bodies (> 1 MiB), plain and base64: fewer cases, each costs a megabyte.
    for (let i = 0; i < 30; i++) {
      const big = JSON.stringify({ events: [{ ...validBase.search, query: 'q'.repeat(1_048_576 + i * 1000) }] });
      await check({ body: big }, 'oversize');
      await check({ body: Buffer.from(big).toString('base64'), isBase64Encoded: true }, 'oversize base64');
    }
    // Missing, malformed and oversize Authorization headers.
    await fc.assert(fc.asyncProperty(fc.oneof(
      fc.constantFrom('', 'Bearer', 'Bearer ', 'Basic dXNlcjpwYXNz', `bearer${goodToken}`, `Token ${goodToken}`, `Bearer ${goodToken}!`, `Bearer  ${goodToken} x`),
      fc.string(), fc.string({ unit: 'binary' }).map((s) => `Bearer ${s}`),
    ), async (authorization) => {
      await check({ body: JSON.stringify(validBase.click), authorization }, 'authorization');
    }), { numRuns: 1_000, seed: 5 });

    gc();
    const heapAfter = process.memoryUsage().heapUsed;
    const rssAfter = process.memoryUsage().rss;
    const byStatus = Object.fromEntries([...statuses].sort(([a], [b]) => a - b));
    report('fuzz', { cases, byStatus, failures: failures.length, heapBeforeMB: Math.round(heapBefore / 1e6), heapAfterMB: Math.round(heapAfter / 1e6),
      rssBeforeMB: Math.round(rssBefore / 1e6), rssAfterMB: Math.round(rssAfter / 1e6) });
    // One example per kind of failure, so a regression names its cause.
    const kinds = new Map<string, string>();
    for (const f of failures) kinds.set(f.split(' for ')[0]!.replace(/threw .*/, 'threw'), f.slice(0, 400));
    expect([...kinds.values()]).toEqual([]);
    expect(cases).toBeGreaterThanOrEqual(10_000);
    // Generous: a leak of even a few hundred bytes per request would pass 10,000 requests' worth of garbage.
    expect(heapAfter - heapBefore).toBeLessThan(64 * 1024 * 1024);
  }, 240_000);
});

describe('token abuse', () => {
  it('accepts none of: alg none, HS/RS confusion, wrong key, expired, future nbf, wrong iss/aud, no sub, tampered, truncated, 1 MB', async () => {
    const rsa = generateKeyPairSync('rsa', { modulusLength: 2048 });
    const publicPem = rsa.publicKey.export({ type: 'spki', format: 'pem' }).toString();
    const b64 = (v: unknown) => Buffer.from(typeof v === 'string' ? v : JSON.stringify(v)).toString('base64url');
    const now = Math.floor(Date.now() / 1000);
    const claims = { sub: 'attacker', iss: issuer, aud: audience, iat: now, exp: now + 3600 };
    const hmac = (input: string, key: string | Buffer, alg = 'sha256') => createHmac(alg, key).update(input).digest('base64url');
    const unsignedHs = (header: object, payload: object, key: string | Buffer) => {
      const input = `${b64(header)}.${b64(payload)}`;
      return `${input}.${hmac(input, key)}`;
    };
    const [, goodPayload] = goodToken.split('.');
    const forged: Record<string, string> = {
      'alg none': `${b64({ alg: 'none', typ: 'JWT' })}.${b64(claims)}.`,
      'alg none, signature kept': `${b64({ alg: 'none' })}.${b64(claims)}.${goodToken.split('.')[2]}`,
      'alg NONE': `${b64({ alg: 'NONE' })}.${b64(claims)}.`,
      'HS256 signed with the RS public key': unsignedHs({ alg: 'HS256', typ: 'JWT' }, claims, publicPem),
      'HS256, wrong secret': unsignedHs({ alg: 'HS256' }, claims, 'another-secret-of-sufficient-length'),
      'HS512 with the right secret': (() => { const i = `${b64({ alg: 'HS512' })}.${b64(claims)}`; return `${i}.${hmac(i, secret, 'sha512')}`; })(),
      'RS256 signed by an RSA key': await sign(claims, { key: rsa.privateKey, alg: 'RS256' }),
      expired: await sign({ sub: 'attacker' }, { exp: now - 3600 }),
      'expired beyond the tolerance': await sign({ sub: 'attacker' }, { exp: now - 10 }),
      'nbf in the future': await sign({ sub: 'attacker', nbf: now + 3600 }),
      'wrong iss': await sign({ sub: 'attacker' }, { iss: 'https://evil.example' }),
      'no iss': await sign({ sub: 'attacker' }, { iss: '' }),
      'wrong aud': await sign({ sub: 'attacker' }, { aud: 'another-api' }),
      'no aud': await sign({ sub: 'attacker' }, { aud: '' }),
      'no sub': await sign({}),
      'empty sub': await sign({ sub: '' }),
      // An integer sub is a user id (its decimal string); a fraction or an unsafe integer is not.
      'fractional sub': await sign({ sub: 42.5 }),
      'sub beyond 2^53': await sign({ sub: 2 ** 53 }),
      'object sub': await sign({ sub: { id: 'attacker' } }),
      'payload swapped, signature kept': `${goodToken.split('.')[0]}.${b64({ ...JSON.parse(Buffer.from(goodPayload!, 'base64url').toString()), sub: 'attacker' })}.${goodToken.split('.')[2]}`,
      'signature bit flip': goodToken.slice(0, -2) + (goodToken.endsWith('A') ? 'BB' : 'AA'),
      'crit header': unsignedHs({ alg: 'HS256', crit: ['exp'] }, claims, secret),
      'jku header, wrong secret': unsignedHs({ alg: 'HS256', jku: 'https://evil.example/jwks' }, claims, 'another-secret-of-sufficient-length'),
      'five segments (JWE-like)': `${goodToken}.x.y`,
      'one segment': goodPayload!,
      '1 MB token': `${b64({ alg: 'HS256' })}.${'A'.repeat(1_048_576)}.${'B'.repeat(43)}`,
    };
    for (let cut = 1; cut < goodToken.length; cut += 7) forged[`truncated at ${cut}`] = goodToken.slice(0, cut);

    const viaHandler: Record<string, number> = {};
    for (const [name, token] of Object.entries(forged)) {
      viaHandler[name] = (await call({ body: JSON.stringify(validBase.click), authorization: `Bearer ${token}` })).status;
    }
    // The JWKS (RS256/ES256) configuration, with a local key set: HS/RS confusion and alg none.
    const jwks = createLocalJWKSet({ keys: [{ ...(await exportJWK(rsa.publicKey)), kid: 'k1', alg: 'RS256' }] });
    const rsVerifier = createViewerVerifier({ JWT_USER_CLAIM: 'sub', JWT_CLOCK_TOLERANCE_S: 5, JWT_CACHE_SIZE: 100, JWT_ISSUER: issuer, JWT_AUDIENCE: audience }, { key: jwks });
    const otherRsa = generateKeyPairSync('rsa', { modulusLength: 2048 });
    const rsCases: Record<string, string> = {
      'HS256 signed with the RS public key (PEM)': unsignedHs({ alg: 'HS256', kid: 'k1' }, claims, publicPem),
      'HS256 signed with the RS public key (DER)': unsignedHs({ alg: 'HS256', kid: 'k1' }, claims, rsa.publicKey.export({ type: 'spki', format: 'der' })),
      'alg none': `${b64({ alg: 'none', kid: 'k1' })}.${b64(claims)}.`,
      'RS256 by another key': await new SignJWT(claims).setProtectedHeader({ alg: 'RS256', kid: 'k1' }).sign(otherRsa.privateKey),
      'RS256 expired': await new SignJWT({ ...claims, exp: now - 60 }).setProtectedHeader({ alg: 'RS256', kid: 'k1' }).sign(rsa.privateKey),
    };
    const viaRsVerifier: Record<string, number | string> = {};
    for (const [name, token] of Object.entries(rsCases)) {
      try {
        await rsVerifier(`Bearer ${token}`);
        viaRsVerifier[name] = 'ACCEPTED';
      } catch (error) {
        viaRsVerifier[name] = error instanceof HttpError ? error.statusCode : `threw ${String(error)}`;
      }
    }
    // Controls: the right tokens are accepted, so the refusals above are about the forgery.
    const control = (await call({ body: JSON.stringify({ ...validBase.click, element: 'control' }) })).status;
    const rsControl = (await rsVerifier(`Bearer ${await new SignJWT(claims).setProtectedHeader({ alg: 'RS256', kid: 'k1' }).sign(rsa.privateKey)}`)).userId;

    const accepted = [...Object.entries(viaHandler).filter(([, s]) => s < 400 || s >= 500), ...Object.entries(viaRsVerifier).filter(([, s]) => s !== 401)];
    report('token abuse', { forgedTokens: Object.keys(forged).length + Object.keys(rsCases).length, accepted: accepted.length,
      statuses: [...new Set(Object.values(viaHandler))], controlStatus: control, rsControl });
    expect(accepted).toEqual([]);
    expect(control).toBe(202);
    expect(rsControl).toBe('attacker');
  }, 60_000);
});
