import * as z from './zod.ts';
import { acceptedResponseSchema, errorResponseSchema, filmProgressResponseSchema, healthResponseSchema, progressLimits, progressListResponseSchema } from './api.ts';
import { eventSchemas, eventTypes, type EventType } from './events.ts';
import { jsonSchema, ref, type JsonObject } from './openapi-builder.ts';
import { apiPaths, securitySchemes, type RouteLimits } from './openapi-routes.ts';

/**
 * The API's OpenAPI 3.1 document, generated from the event registry (shared/events.ts) and the
 * route list (shared/openapi-routes.ts): request schemas and examples come from `eventSchemas`, so
 * the document cannot drift from validation. Served by the ingest function at GET /v1/openapi.json,
 * and as a page at GET /v1/docs.
 */

type ProgressLimit = 'defaultProgressLimit' | 'maxProgressLimit';
/** What the document states that is configuration; the progress limits default to the reader's (shared/api.ts). */
export type OpenApiOptions = Omit<RouteLimits, ProgressLimit> & Partial<Pick<RouteLimits, ProgressLimit>> & { serverUrl?: string };

const componentName = (type: EventType) => `${type.split('_').map((w) => w[0]!.toUpperCase() + w.slice(1)).join('')}Event`;

// The simple progress form: film_id and type come from the path.
const filmProgressBody = z.omit(eventSchemas.film_progress, { type: true, film_id: true });
/** The component schemas written from zod schemas, by name, besides the events'. */
const zodComponents = {
  FilmProgressBody: filmProgressBody,
  FilmProgress: filmProgressResponseSchema,
  ProgressList: progressListResponseSchema,
  Accepted: acceptedResponseSchema,
  Error: errorResponseSchema,
  Health: healthResponseSchema,
};

/** The document's schemas: one per event type (from the registry), the forms that carry events, and every answer's. */
function componentSchemas(maxEventsPerRequest: number): JsonObject {
  const schemas: JsonObject = {};
  for (const type of eventTypes) schemas[componentName(type)] = jsonSchema(eventSchemas[type]);
  schemas.ClientEvent = {
    description: 'One event as the browser sends it; `type` selects the schema.',
    oneOf: eventTypes.map((type) => ref(componentName(type))),
    discriminator: { propertyName: 'type', mapping: Object.fromEntries(eventTypes.map((type) => [type, ref(componentName(type)).$ref])) },
  };
  // Each event is checked on its own, so one bad event does not lose the others: a batch is valid when
  // at least one of its events is (`contains`), and the rest come back in the 202's `rejected`.
  const batchEvents = {
    type: 'array',
    items: { description: 'An event, checked on its own against ClientEvent; one that fails is listed in `rejected` of the 202' },
    contains: ref('ClientEvent'),
    minItems: 1,
    maxItems: maxEventsPerRequest,
    description: 'At least one ClientEvent (else 400 no_valid_events); every other item is answered in `rejected`',
  };
  schemas.EventBatch = {
    type: 'object',
    properties: { events: batchEvents },
    required: ['events'],
    additionalProperties: false,
    description: 'Several events in one request; each is validated on its own.',
  };
  schemas.UnloadBatch = {
    type: 'object',
    properties: {
      token: { type: 'string', description: "The viewer's access token, verified exactly like the Authorization header's" },
      events: batchEvents,
    },
    required: ['token', 'events'],
    additionalProperties: false,
    description: 'The unload form: a batch with the token in the body, sent as text/plain (a CORS-simple request, no preflight) by navigator.sendBeacon or fetch keepalive.',
  };
  for (const [name, schema] of Object.entries(zodComponents)) schemas[name] = jsonSchema(schema);
  return schemas;
}

/** Builds the document; the ingest function builds it once per container. */
export function buildOpenApiDocument({ serverUrl, defaultProgressLimit = progressLimits.defaultLimit, maxProgressLimit = progressLimits.maxLimit, ...limits }: OpenApiOptions): JsonObject {
  return {
    openapi: '3.1.0',
    info: {
      title: 'ugc-ingest',
      version: '1',
      description: 'User-generated events of the online cinema: where a viewer stopped a film, ratings, reviews, likes, bookmarks, '
        + 'page views, clicks and searches. Generated from the event registry (shared/events.ts).',
    },
    ...(serverUrl ? { servers: [{ url: serverUrl }] } : {}),
    components: { schemas: componentSchemas(limits.maxEventsPerRequest), securitySchemes },
    paths: apiPaths({ ...limits, defaultProgressLimit, maxProgressLimit }),
  };
}

const escapeHtml = (s: string) => s.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
const pre = (value: unknown) => `<pre>${escapeHtml(JSON.stringify(value, null, 2))}</pre>`;

/** A self-contained HTML page (no scripts, no CDN) rendered from the document. */
export function renderDocsPage(document: JsonObject): string {
  const info = document.info as { title: string; version: string; description: string };
  const paths = document.paths as Record<string, Record<string, JsonObject>>;
  const components = document.components as { schemas: Record<string, unknown> };
  const operations = Object.entries(paths).flatMap(([path, methods]) => Object.entries(methods).map(([method, op]) => {
    const responses = op.responses as Record<string, { description: string }>;
    const body = op.requestBody as { content: Record<string, { examples?: Record<string, { summary?: string; value: unknown }> }> } | undefined;
    const examples = Object.entries(body?.content['application/json']?.examples ?? {});
    return `<section id="${escapeHtml(String(op.operationId))}">
<h2><span class="method ${method}">${method.toUpperCase()}</span> <code>${escapeHtml(path)}</code></h2>
<p>${escapeHtml(String(op.summary ?? ''))}${op.security ? ' <em>Requires <code>Authorization: Bearer &lt;viewer JWT&gt;</code>.</em>' : ''}</p>
${op.description ? `<p>${escapeHtml(String(op.description))}</p>` : ''}
${examples.length ? `<h3>Request examples</h3>${examples.map(([name, ex]) => `<details><summary>${escapeHtml(name)}: ${escapeHtml(ex.summary ?? '')}</summary>${pre(ex.value)}</details>`).join('\n')}` : ''}
<h3>Responses</h3>
<table><tbody>${Object.entries(responses).map(([status, r]) => `<tr><td><code>${status}</code></td><td>${escapeHtml(r.description)}</td></tr>`).join('')}</tbody></table>
</section>`;
  }));
  const schemas = Object.entries(components.schemas)
    .map(([name, schema]) => `<details id="schema-${escapeHtml(name)}"><summary><code>${escapeHtml(name)}</code></summary>${pre(schema)}</details>`)
    .join('\n');
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>${escapeHtml(info.title)} API v${escapeHtml(info.version)}</title>
<style>
body{font:15px/1.5 system-ui,sans-serif;max-width:60rem;margin:2rem auto;padding:0 1rem;color:#222}
h2{border-top:1px solid #ddd;padding-top:1rem}.method{font:bold 13px monospace;padding:.15rem .5rem;border-radius:4px;color:#fff}
.post{background:#2a7ae2}.get{background:#2e9e5b}pre{background:#f5f5f5;padding:.75rem;overflow:auto;font-size:13px}
table{border-collapse:collapse}td{border:1px solid #ddd;padding:.25rem .5rem;vertical-align:top}summary{cursor:pointer}
</style></head><body>
<h1>${escapeHtml(info.title)} <small>API v${escapeHtml(info.version)}</small></h1>
<p>${escapeHtml(info.description)}</p>
<p>Machine-readable: <a href="/v1/openapi.json"><code>/v1/openapi.json</code></a> (OpenAPI ${escapeHtml(String(document.openapi))}).</p>
${operations.join('\n')}
<h2>Schemas</h2>
${schemas}
</body></html>`;
}
