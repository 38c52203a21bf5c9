import { randomUUID } from 'node:crypto';
import { readFile, rm } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';
import { gzipSync } from 'node:zlib';
import Ajv2020 from 'ajv/dist/2020.js';
import { parse as parseYaml } from 'yaml';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startOffline, type Offline } from '../../localstack/offline.ts';
import { signDevToken } from '../../localstack/dev-token.ts';
import { clientEvent, eventTypes, wellFormedText } from '../../shared/events.ts';
import { acceptedResponseSchema, healthResponseSchema } from '../../shared/api.ts';
import { eventually, freePort } from '../setup/context.ts';
import { ownPipeline, type OwnPipeline } from '../setup/pipeline.ts';

// Every example in the served OpenAPI document is posted to the live handler (serverless offline).
const secret = 'an-openapi-e2e-secret-of-sufficient-length';
// Its own build folder, so it does not share .esbuild with the other offline test file.
const workFolder = `.esbuild-openapi-${process.pid}`;
let offline: Offline;
type Json = Record<string, any>; // eslint-disable-line @typescript-eslint/no-explicit-any
let spec: Json;
let pipeline: OwnPipeline;

beforeAll(async () => {
  // The reader's routes read this database: the writer stores what the ingest routes accept.
  pipeline = await ownPipeline('openapi');
  offline = await startOffline({
    env: { ...pipeline.env, JWT_SECRET: secret, ESBUILD_WORK_FOLDER: workFolder },
    httpPort: await freePort(),
    lambdaPort: await freePort(),
  });
  const res = await fetch(`${offline.url}/v1/openapi.json`);
  expect(res.status).toBe(200);
  expect(res.headers.get('content-type')).toMatch(/^application\/json/);
  spec = await res.json() as Json;
}, 180_000);

afterAll(async () => {
  await offline?.stop();
  await pipeline?.drop();
  await rm(fileURLToPath(new URL(`../../${workFolder}`, import.meta.url)), { recursive: true, force: true });
});

/** Every (path, method, example) with a request body example. */
function requestExamples(): { path: string; method: string; name: string; value: unknown; pathParameters: Record<string, string> }[] {
  return Object.entries(spec.paths as Json).flatMap(([path, methods]) => Object.entries(methods as Json).flatMap(([method, op]) =>
    Object.entries((op as Json).requestBody?.content?.['application/json']?.examples ?? {}).map(([name, example]) => ({
      path, method, name, value: (example as Json).value, pathParameters: (example as Json)['x-path-parameters'] ?? {},
    }))));
}

/** `METHOD /path` of every httpApi event in serverless.yml: what API Gateway routes. */
async function stackRoutes(): Promise<string[]> {
  const yml = parseYaml(await readFile(fileURLToPath(new URL('../../serverless.yml', import.meta.url)), 'utf8')) as Json;
  return Object.values(yml.functions as Json).flatMap((fn) => ((fn as Json).events ?? []) as Json[])
    .filter((e) => typeof e.httpApi === 'string').map((e) => e.httpApi as string);
}

const documentedRoutes = () => Object.entries(spec.paths as Json).flatMap(([path, methods]) => Object.keys(methods as Json).map((m) => `${m.toUpperCase()} ${path}`));

/**
 * Checks an answer against the document: its status is one the operation declares, every header
 * the document requires is there and matches its schema, and the body matches the schema of its
 * content type. Returns the operation's `METHOD /path status`.
 */
function conformance() {
  const ajv = new Ajv2020({ strict: false, allErrors: true, validateFormats: false });
  ajv.addSchema(spec, 'openapi.json');
  const pointer = (...parts: string[]) => parts.map((p) => p.replace(/~/g, '~0').replace(/\//g, '~1')).join('/');
  const routeOf = (method: string, url: string) => {
    const path = new URL(url, 'http://x').pathname;
    const template = Object.keys(spec.paths).find((p) => new RegExp(`^${p.replace(/\{\w+\}/g, '[^/]+')}$`).test(path));
    if (!template || !spec.paths[template][method.toLowerCase()]) throw new Error(`${method} ${path} is not in the document`);
    return template;
  };
  return async (method: string, url: string, res: Response): Promise<string> => {
    const path = routeOf(method, url);
    const operation = spec.paths[path][method.toLowerCase()] as Json;
    const where = `${method} ${url} ${res.status}`;
    const declared = operation.responses[String(res.status)] as Json | undefined;
    expect(declared, `${where}: status not documented`).toBeDefined();
    for (const [name, header] of Object.entries((declared!.headers ?? {}) as Json)) {
      const value = res.headers.get(name);
      if ((header as Json).required) expect(value, `${where}: header ${name}`).not.toBeNull();
      if (value !== null) expect(ajv.validate((header as Json).schema, value), `${where}: header ${name}=${value} ${ajv.errorsText()}`).toBe(true);
    }
    const mediaType = (res.headers.get('content-type') ?? '').split(';')[0]!.trim();
    const content = declared!.content?.[mediaType] as Json | undefined;
    expect(content, `${where}: content type ${mediaType} not documented`).toBeDefined();
    const body = mediaType === 'application/json' ? await res.json() : await res.text();
    const valid = ajv.validate({ $ref: `openapi.json#/${pointer('paths', path, method.toLowerCase(), 'responses', String(res.status), 'content', mediaType, 'schema')}` }, body);
    expect(valid, `${where}: ${ajv.errorsText()} in ${JSON.stringify(body).slice(0, 300)}`).toBe(true);
    return `${method} ${path} ${res.status}`;
  };
}

describe('the OpenAPI document, served by the ingest function', () => {
  it('is OpenAPI 3.1 with bearer JWT security, every route of serverless.yml, and a schema and example for every registered event type', async () => {
    expect(spec.openapi).toBe('3.1.0');
    expect(spec.components.securitySchemes.viewerToken).toEqual(expect.objectContaining({ type: 'http', scheme: 'bearer', bearerFormat: 'JWT' }));
    // Exactly the routes serverless.yml gives API Gateway, no more, no fewer.
    expect(documentedRoutes().sort()).toEqual((await stackRoutes()).sort());
    const oneOf = spec.components.schemas.ClientEvent.oneOf.map((r: Json) => r.$ref);
    expect(oneOf).toHaveLength(eventTypes.length);
    const examples = requestExamples().filter((e) => e.path === '/v1/events');
    for (const type of eventTypes) expect(examples.some((e) => (e.value as Json).type === type), type).toBe(true);
    for (const example of examples.filter((e) => e.name !== 'batch')) expect(clientEvent.safeParse(example.value).success, example.name).toBe(true);
    // Patterns request generators can read: no Unicode property classes (\p{…}), which need the u
    // flag that JSON Schema's regexes do not promise; each compiles without it.
    const patterns = JSON.stringify(spec).match(/"pattern":"(?:[^"\\]|\\.)*"/g)?.map((p) => JSON.parse(`{${p}}`).pattern as string) ?? [];
    expect(patterns.length).toBeGreaterThan(0);
    // The no-lone-surrogates rule is said in words (no generator reads it as a pattern), and still checked.
    expect(patterns).not.toContain(wellFormedText.source);
    expect(JSON.stringify(spec.components.schemas.FilmRatingEvent ?? spec.components.schemas)).toContain('a lone UTF-16 surrogate');
    for (const pattern of new Set(patterns)) {
      expect(pattern, pattern).not.toMatch(/\\[pP]\{/);
      expect(() => new RegExp(pattern), pattern).not.toThrow();
    }
  });

  it('every request example, posted with a signed token, is accepted with 202 as documented', async () => {
    const token = await signDevToken('openapi-viewer', { secret });
    const examples = requestExamples();
    expect(examples.length).toBeGreaterThanOrEqual(eventTypes.length + 2);
    for (const example of examples) {
      const url = example.path.replace(/\{(\w+)\}/g, (_, name: string) => encodeURIComponent(example.pathParameters[name] ?? ''));
      const res = await fetch(`${offline.url}${url}`, {
        method: example.method.toUpperCase(),
        headers: { 'content-type': 'application/json', authorization: `Bearer ${token}` },
        body: JSON.stringify(example.value),
      });
      const body = await res.json() as Json;
      expect({ example: example.name, status: res.status, body }).toMatchObject({ example: example.name, status: 202 });
      expect(Object.keys(spec.paths[example.path][example.method].responses)).toContain(String(res.status));
      const accepted = acceptedResponseSchema.parse(body);
      expect(accepted.rejected).toEqual([]);
      expect(accepted.accepted).toBe(Array.isArray((example.value as Json).events) ? (example.value as Json).events.length : 1);
    }
  });

  it('answers every route, with good and bad input, with a status, headers and body the document declares', async () => {
    const validate = conformance();
    const viewer = `openapi-${randomUUID().slice(0, 8)}`;
    const token = await signDevToken(viewer, { secret });
    const auth = { authorization: `Bearer ${token}` };
    const jsonAuth = { 'content-type': 'application/json', ...auth };
    const progress = { type: 'film_progress', film_id: 'tt0111161', position_s: 120, duration_s: 8520 };
    const batch = JSON.stringify({ events: [progress] });
    const bomb = gzipSync(Buffer.alloc(64 * 1024 * 1024));
    const calls: [string, string, number, RequestInit?][] = [
      ['POST', '/v1/events', 202, { headers: jsonAuth, body: batch }],
      ['POST', '/v1/events', 202, { headers: { ...jsonAuth, 'content-encoding': 'gzip' }, body: gzipSync(batch) }],
      ['POST', '/v1/events', 202, { headers: { 'content-type': 'text/plain;charset=UTF-8' }, body: JSON.stringify({ token, events: [progress] }) }],
      ['POST', '/v1/events', 401, { headers: { 'content-type': 'application/json' }, body: batch }],
      ['POST', '/v1/events', 401, { headers: { 'content-type': 'text/plain' }, body: batch }],
      ['POST', '/v1/events', 401, { headers: { 'content-type': 'text/plain' }, body: JSON.stringify({ token: `${token}x`, events: [progress] }) }],
      ['POST', '/v1/events', 400, { headers: { 'content-type': 'text/plain', ...auth }, body: JSON.stringify({ token, events: [progress] }) }],
      ['POST', '/v1/events', 400, { headers: jsonAuth, body: '{"events":' }],
      ['POST', '/v1/events', 400, { headers: { ...jsonAuth, 'content-encoding': 'gzip' }, body: 'not gzip' }],
      ['POST', '/v1/events', 400, { headers: jsonAuth, body: '{"type":"film_rating","film_id":"f","score":99}' }],
      ['POST', '/v1/events', 413, { headers: { ...jsonAuth, 'content-encoding': 'gzip' }, body: bomb }],
      ['POST', '/v1/events', 415, { headers: { 'content-type': 'application/xml', ...auth }, body: '<e/>' }],
      ['POST', '/v1/events', 415, { headers: { ...jsonAuth, 'content-encoding': 'br' }, body: batch }],
      ['POST', '/v1/films/tt0111161/progress', 202, { headers: jsonAuth, body: '{"position_s":30,"duration_s":8520}' }],
      ['POST', '/v1/films/tt0111161/progress', 400, { headers: jsonAuth, body: '{"position_s":"ten"}' }],
      ['POST', '/v1/films/tt0111161/progress', 401, { headers: { 'content-type': 'application/json' }, body: '{"position_s":30}' }],
      ['POST', '/v1/films/tt0111161/progress', 415, { headers: { 'content-type': 'text/plain', ...auth }, body: '{"position_s":30}' }],
      ['GET', '/v1/health', 200],
      ['GET', '/v1/openapi.json', 200],
      ['GET', '/v1/docs', 200],
      ['GET', '/v1/films/never-watched/progress', 404, { headers: auth }],
      ['GET', `/v1/films/${'x'.repeat(65)}/progress`, 400, { headers: auth }],
      ['GET', '/v1/films/tt0111161/progress', 401],
      ['GET', '/v1/progress?limit=0', 400, { headers: auth }],
      ['GET', '/v1/progress?limit=ten', 400, { headers: auth }],
      ['GET', '/v1/progress', 401, { headers: { authorization: 'Bearer not.a.jwt' } }],
    ];
    const called = new Set<string>();
    for (const [method, url, status, init] of calls) {
      const res = await fetch(`${offline.url}${url}`, { method, ...init });
      expect(`${method} ${url} → ${res.status}`).toBe(`${method} ${url} → ${status}`);
      called.add(await validate(method, url, res));
    }
    // The reads answer 200 once the writer stored what was posted above.
    const stored = await eventually(async () => {
      const res = await fetch(`${offline.url}/v1/films/tt0111161/progress`, { headers: auth });
      return res.status === 200 ? res : undefined;
    }, 20_000, 'the posted progress through the read API');
    called.add(await validate('GET', '/v1/films/tt0111161/progress', stored));
    for (const url of ['/v1/progress', '/v1/progress?limit=1']) {
      const res = await fetch(`${offline.url}${url}`, { headers: auth });
      expect(res.status).toBe(200);
      called.add(await validate('GET', url, res));
    }
    // Every route was called and answered as documented.
    expect([...called].map((c) => c.replace(/ \d+$/, '')).filter((v, i, a) => a.indexOf(v) === i).sort()).toEqual((await stackRoutes()).sort());
  }, 120_000);

  it('has a self-contained human-readable page at /v1/docs', async () => {
    const res = await fetch(`${offline.url}/v1/docs`);
    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).toMatch(/^text\/html/);
    const html = await res.text();
    expect(html).toMatch(/^<!doctype html>/);
    for (const path of Object.keys(spec.paths)) expect(html).toContain(`<code>${path}</code>`);
    for (const type of eventTypes) expect(html).toContain(type);
    // Nothing loaded from elsewhere: no scripts, no external stylesheets or fonts.
    expect(html).not.toMatch(/<script|<link|https?:\/\/(?!json-schema\.org)/);
  });
});
