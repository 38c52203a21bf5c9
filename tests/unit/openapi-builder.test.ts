import { createHash } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { describe, expect, it } from 'vitest';
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
