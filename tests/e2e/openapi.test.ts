import { rm } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startOffline, type Offline } from '../../localstack/offline.ts';
import { signDevToken } from '../../localstack/dev-token.ts';
import { clientEvent, eventTypes } from '../../shared/events.ts';
import { acceptedResponseSchema, errorResponseSchema, healthResponseSchema } from '../../shared/openapi.ts';
import { freePort, stackEnv } from '../setup/context.ts';

// Every example in the served OpenAPI document is posted to the live handler (serverless offline).
const secret = 'an-openapi-e2e-secret-of-sufficient-length';
// Its own build folder, so it does not share .esbuild with the other offline test file.
const workFolder = `.esbuild-openapi-${process.pid}`;
let offline: Offline;
type Json = Record<string, any>; // eslint-disable-line @typescript-eslint/no-explicit-any
let spec: Json;

beforeAll(async () => {
  offline = await startOffline({
    env: { ...stackEnv(), JWT_SECRET: secret, ESBUILD_WORK_FOLDER: workFolder },
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
  await rm(fileURLToPath(new URL(`../../${workFolder}`, import.meta.url)), { recursive: true, force: true });
});

/** Every (path, method, example) with a request body example. */
function requestExamples(): { path: string; method: string; name: string; value: unknown; pathParameters: Record<string, string> }[] {
  return Object.entries(spec.paths as Json).flatMap(([path, methods]) => Object.entries(methods as Json).flatMap(([method, op]) =>
    Object.entries((op as Json).requestBody?.content?.['application/json']?.examples ?? {}).map(([name, example]) => ({
      path, method, name, value: (example as Json).value, pathParameters: (example as Json)['x-path-parameters'] ?? {},
    }))));
}

describe('the OpenAPI document, served by the ingest function', () => {
  it('is OpenAPI 3.1 with bearer JWT security, every route, and a schema and example for every registered event type', () => {
    expect(spec.openapi).toBe('3.1.0');
    expect(spec.components.securitySchemes.viewerToken).toEqual(expect.objectContaining({ type: 'http', scheme: 'bearer', bearerFormat: 'JWT' }));
    expect(Object.keys(spec.paths)).toEqual(['/v1/events', '/v1/films/{film_id}/progress', '/v1/health', '/v1/openapi.json', '/v1/docs']);
    const oneOf = spec.components.schemas.ClientEvent.oneOf.map((r: Json) => r.$ref);
    expect(oneOf).toHaveLength(eventTypes.length);
    const examples = requestExamples().filter((e) => e.path === '/v1/events');
    for (const type of eventTypes) expect(examples.some((e) => (e.value as Json).type === type), type).toBe(true);
    for (const example of examples.filter((e) => e.name !== 'batch')) expect(clientEvent.safeParse(example.value).success, example.name).toBe(true);
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

  it('answers the documented error statuses with the documented error body', async () => {
    const example = requestExamples()[0]!;
    const cases: [number, RequestInit][] = [
      [401, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(example.value) }],
      [415, { method: 'POST', headers: { 'content-type': 'text/plain', authorization: `Bearer ${await signDevToken('v', { secret })}` }, body: 'x' }],
      [400, { method: 'POST', headers: { 'content-type': 'application/json', authorization: `Bearer ${await signDevToken('v', { secret })}` }, body: '{"type":"film_rating","film_id":"f","score":99}' }],
    ];
    for (const [status, init] of cases) {
      const res = await fetch(`${offline.url}/v1/events`, init);
      expect(res.status).toBe(status);
      expect(spec.paths['/v1/events'].post.responses).toHaveProperty(String(status));
      errorResponseSchema.parse(await res.json());
    }
    const health = await fetch(`${offline.url}/v1/health`);
    expect(spec.paths['/v1/health'].get.responses).toHaveProperty(String(health.status));
    // The stack's broker is up: the bundled ingest (plugins/esbuild.cjs trims kafkajs) must say so.
    expect(healthResponseSchema.parse(await health.json())).toMatchObject({ status: 'ok', kafka: 'reachable' });
  });

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
