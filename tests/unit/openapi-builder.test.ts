import { createHash } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { describe, expect, it } from 'vitest';
import { pathsOf, ref, type Route } from '../../shared/openapi-builder.ts';
import { buildOpenApiDocument, renderDocsPage, type OpenApiOptions } from '../../shared/openapi.ts';

// Golden files of the served bytes (GET /v1/openapi.json; GET /v1/docs by its hash), written from
// the document as it was a literal: the builder must keep them byte for byte. After a change to the
// document that is meant, rewrite them: `npx vitest run --project unit tests/unit/openapi-builder.test.ts -u`.
const optionSets: Record<string, OpenApiOptions> = {
  // What functions/ingest/handler.ts passes with the defaults of functions/ingest/config.ts.
  'ingest-defaults': { maxEventsPerRequest: 500, maxBodyBytes: 1_048_576 },
  // Every option given, none at its default.
  configured: { maxEventsPerRequest: 50, maxBodyBytes: 65_536, maxProgressLimit: 40, serverUrl: 'https://ugc.example.test' },
};
const fixture = (name: string) => new URL(`./fixtures/${name}`, import.meta.url);

describe('the OpenAPI document, as served', () => {
  for (const [name, options] of Object.entries(optionSets)) {
    it(`is the same bytes as the golden file for the ${name} options`, async () => {
      const served = JSON.stringify(buildOpenApiDocument(options));
      const file = `openapi.${name}.json`;
      // Structure first, so a failure shows where they differ; the bytes then also hold the key order.
      const golden = await readFile(fixture(file), 'utf8').catch(() => undefined);
      if (golden !== undefined) expect(JSON.parse(served)).toEqual(JSON.parse(golden));
      await expect(served).toMatchFileSnapshot(fixture(file).pathname);
    });
  }

  // By its hash: a golden HTML file would repeat the page template's lines (and count as duplicated code).
  it('renders the same docs page, byte for byte', () => {
    const page = renderDocsPage(buildOpenApiDocument(optionSets['ingest-defaults']!));
    expect(createHash('sha256').update(page).digest('hex')).toMatchInlineSnapshot(`"8a5dcc7deb629ddf11abc9077590b674cd1050fb7ac5024704fd070132958242"`);
  });
});

describe('pathsOf: routes as data become the paths', () => {
  const retryAfter = { description: 'wait', required: true, schema: { type: 'string' } };
  // Written in an order of its own: the operation's keys come out in the builder's.
  const routes: Route[] = [
    { responses: { 200: { description: 'ok', schema: ref('Thing'), example: { id: 1 } } }, summary: 'Read a thing', operationId: 'getThing', path: '/things/{id}', method: 'get' },
    { method: 'get', path: '/health', operationId: 'getHealth', summary: 'Health', responses: { 200: { description: 'page', mediaType: 'text/html', schema: { type: 'string' } } } },
    {
      method: 'post', path: '/things/{id}', operationId: 'postThing', summary: 'Write a thing', security: [{ token: [] }],
      body: { 'application/json': { schema: ref('Thing') } },
      responses: { 503: { description: 'Down', codes: ['down', 'keys_down'] }, 202: { description: 'taken', schema: ref('Accepted') } },
    },
  ];
  const paths = pathsOf(routes, { 503: { 'Retry-After': retryAfter } }) as Record<string, Record<string, Record<string, unknown>>>;

  it('groups the routes by path in the order given, and writes each operation in one key order', () => {
    expect(Object.keys(paths)).toEqual(['/things/{id}', '/health']);
    expect(Object.keys(paths['/things/{id}']!)).toEqual(['get', 'post']);
    expect(Object.keys(paths['/things/{id}']!.get!)).toEqual(['operationId', 'summary', 'responses']);
    expect(Object.keys(paths['/things/{id}']!.post!)).toEqual(['operationId', 'summary', 'security', 'requestBody', 'responses']);
    expect(paths['/things/{id}']!.post!.requestBody).toEqual({ required: true, content: { 'application/json': { schema: ref('Thing') } } });
  });

  it('answers in the media type given (JSON unless said), leaving out an example or headers not given', () => {
    expect(paths['/things/{id}']!.get!.responses).toEqual({ 200: { description: 'ok', content: { 'application/json': { schema: ref('Thing'), example: { id: 1 } } } } });
    expect(JSON.stringify(paths['/health']!.get!.responses)).toBe('{"200":{"description":"page","content":{"text/html":{"schema":{"type":"string"}}}}}');
  });

  it("makes an error status the Error schema narrowed to the route's codes, with its status's headers, statuses in ascending order", () => {
    const responses = paths['/things/{id}']!.post!.responses as Record<string, unknown>;
    expect(Object.keys(responses)).toEqual(['202', '503']);
    expect(responses[503]).toEqual({
      description: 'Down. Codes: down, keys_down',
      headers: { 'Retry-After': retryAfter },
      content: { 'application/json': { schema: { allOf: [ref('Error')], properties: { code: { enum: ['down', 'keys_down'] } } }, example: { code: 'down', message: 'Down' } } },
    });
  });
});
