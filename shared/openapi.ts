import * as z from './zod.ts';
import { cacheControl, progressLimits } from './api.ts';
import { eventSchemas, eventTypes, registryExamples, wellFormedText, type EventType } from './events.ts';

/**
 * The API's OpenAPI 3.1 document, generated from the event registry (shared/events.ts): request
 * schemas and examples come from `eventSchemas`, so the document cannot drift from validation.
 * Served by the ingest function at GET /v1/openapi.json, and as a page at GET /v1/docs.
 */

/** One per-event rejection in a 202 or 400 answer. */
export const rejectionSchema = z.object({
  index: z.int().check(z.minimum(0), z.describe('position of the event in the request')),
  code: z.string().check(z.describe('machine-readable reason, e.g. invalid_event')),
  message: z.string(),
});

/** The 202 answer: every valid event is durable in Kafka; invalid ones are listed. */
export const acceptedResponseSchema = z.strictObject({
  accepted: z.int().check(z.minimum(1)),
  rejected: z.array(rejectionSchema),
});

/** Every error answer: a status plus a machine-readable code. */
export const errorResponseSchema = z.object({
  code: z.string().check(z.describe('machine-readable error code')),
  message: z.string(),
  accepted: z.optional(z.literal(0)),
  rejected: z.optional(z.array(rejectionSchema)),
});

export const healthResponseSchema = z.object({
  status: z.enum(['ok', 'degraded']),
  kafka: z.enum(['reachable', 'unreachable']),
  code: z.optional(z.string()),
});

/** One film's position, as the read API answers it (functions/reader). */
export const filmProgressResponseSchema = z.strictObject({
  film_id: z.string(),
  position_s: z.number().check(z.minimum(0)),
  duration_s: z.nullable(z.number().check(z.minimum(0))),
  updated_at: z.iso.datetime().check(z.describe('when the viewer was at this position (the event time)')),
});

/** The viewer's films, most recently watched first. */
export const progressListResponseSchema = z.strictObject({
  items: z.array(filmProgressResponseSchema),
  limit: z.int().check(z.minimum(1)),
});

export interface OpenApiOptions { maxEventsPerRequest: number; maxBodyBytes: number; defaultProgressLimit?: number; maxProgressLimit?: number; serverUrl?: string }

type JsonObject = Record<string, unknown>;

const componentName = (type: EventType) => `${type.split('_').map((w) => w[0]!.toUpperCase() + w.slice(1)).join('')}Event`;
const ref = (name: string) => ({ $ref: `#/components/schemas/${name}` });

/** JSON Schema (2020-12, as OpenAPI 3.1 uses) of a zod schema's input, without the `$schema` key. */
function jsonSchema(schema: z.ZodMiniType): JsonObject {
  const { $schema: _ignored, ...rest } = z.toJSONSchema(schema, { io: 'input', override: wellFormedInWords }) as JsonObject;
  return rest;
}

/**
 * The "no lone surrogates" rule in words, not as its pattern: no regex generators can read says
 * "no unpaired UTF-16 surrogate" (JSON Schema's patterns see code points or code units, as the
 * reader pleases), so a pattern made request generators drop it or generate nothing. The server
 * still checks it (the validators keep the pattern): such a text is refused with 400.
 */
function wellFormedInWords({ jsonSchema: schema }: { jsonSchema: { pattern?: string; description?: string } }): void {
  if (schema.pattern !== wellFormedText.source) return;
  delete schema.pattern;
  schema.description = [schema.description, 'Well-formed Unicode text: a lone UTF-16 surrogate (such as "\\ud800") is refused with 400.'].filter(Boolean).join(' ');
}

// The simple progress form: film_id and type come from the path.
const filmProgressBody = z.omit(eventSchemas.film_progress, { type: true, film_id: true });

interface ErrorStatus { description: string; codes: string[] }

// Every error answer, by status; each route lists the codes it can answer (the conformance test
// in tests/e2e/openapi.test.ts calls every route and checks each answer against this).
const unauthorizedStatus = (codes: string[] = ['missing_token', 'invalid_token', 'token_expired']): ErrorStatus =>
  ({ description: 'No valid viewer token (see the WWW-Authenticate header)', codes });
const invalidBody: ErrorStatus = { description: 'The body or every event in it is invalid', codes: ['malformed_json', 'malformed_gzip', 'empty_body', 'no_events', 'invalid_events', 'invalid_event', 'no_valid_events'] };
/** What a route that takes events answers; its 400 is the route's own (POST /v1/events adds conflicting_tokens). */
const ingestErrors = (badRequest: ErrorStatus): Record<number, ErrorStatus> => ({
  400: badRequest,
  401: unauthorizedStatus(),
  413: { description: 'Too large: body bytes (as sent, and inflated) or events per request', codes: ['payload_too_large', 'too_many_events'] },
  415: { description: 'Content-Type is not application/json (or text/plain, the unload form), or Content-Encoding is not gzip', codes: ['unsupported_media_type', 'unsupported_content_encoding'] },
  503: { description: 'Events could not be made durable (Kafka) or token keys could not be read; retry after Retry-After', codes: ['kafka_unavailable', 'auth_keys_unavailable'] },
});
const readerUnavailable: ErrorStatus = { description: 'ClickHouse or the token keys could not be read; retry after Retry-After', codes: ['clickhouse_unavailable', 'auth_keys_unavailable'] };

const header = (description: string, schema: JsonObject = { type: 'string' }) => ({ description, required: true, schema });
const retryAfter = header('Seconds to wait before retrying', { type: 'string', pattern: '^[0-9]+$' });
/** Headers each error status always carries. */
const errorHeaders: Record<number, JsonObject> = {
  401: { 'WWW-Authenticate': header('RFC 6750 challenge, e.g. Bearer realm="ugc-ingest", error="invalid_token"', { type: 'string', pattern: '^Bearer realm=' }) },
  503: { 'Retry-After': retryAfter },
};

function errorResponses(statuses: Record<number, ErrorStatus>): JsonObject {
  return Object.fromEntries(Object.entries(statuses).map(([status, { description, codes }]) => [status, {
    description: `${description}. Codes: ${codes.join(', ')}`,
    ...(errorHeaders[Number(status)] ? { headers: errorHeaders[Number(status)] } : {}),
    content: { 'application/json': { schema: { allOf: [ref('Error')], properties: { code: { enum: codes } } }, example: { code: codes[0], message: description } } },
  }]));
}

const jsonResponse = (description: string, schema: JsonObject, example: unknown, headers?: JsonObject) =>
  ({ description, ...(headers ? { headers } : {}), content: { 'application/json': { schema, example } } });

/** Builds the document; the ingest function builds it once per container. */
export function buildOpenApiDocument({ maxEventsPerRequest, maxBodyBytes, defaultProgressLimit = progressLimits.defaultLimit, maxProgressLimit = progressLimits.maxLimit, serverUrl }: OpenApiOptions): JsonObject {
  const schemas: JsonObject = {};
  for (const type of eventTypes) schemas[componentName(type)] = jsonSchema(eventSchemas[type]);
  schemas.ClientEvent = {
    description: 'One event as the browser sends it; `type` selects the schema.',
    oneOf: eventTypes.map((type) => ref(componentName(type))),
    discriminator: { propertyName: 'type', mapping: Object.fromEntries(eventTypes.map((type) => [type, `#/components/schemas/${componentName(type)}`])) },
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
  schemas.FilmProgressBody = jsonSchema(filmProgressBody);
  schemas.FilmProgress = jsonSchema(filmProgressResponseSchema);
  schemas.ProgressList = jsonSchema(progressListResponseSchema);
  schemas.Accepted = jsonSchema(acceptedResponseSchema);
  schemas.Error = jsonSchema(errorResponseSchema);
  schemas.Health = jsonSchema(healthResponseSchema);

  const eventExamples: JsonObject = {};
  for (const type of eventTypes) {
    registryExamples(type).forEach((value, i) => { eventExamples[`${type}${i === 0 ? '' : `_${i + 1}`}`] = { summary: `one ${type} event`, value }; });
  }
  eventExamples.batch = {
    summary: 'a batch: one example of every event type',
    value: { events: eventTypes.map((type) => registryExamples(type)[0]).filter(Boolean) },
  };
  const progressExamples = Object.fromEntries(registryExamples('film_progress').map((example, i) => {
    const { type: _type, film_id: _filmId, ...value } = example;
    return [`progress${i === 0 ? '' : `_${i + 1}`}`, { summary: `progress in film ${String(example.film_id)}`, value, 'x-path-parameters': { film_id: example.film_id } }];
  }));
  const accepted = {
    202: {
      description: 'Accepted: every valid event is durable in Kafka (acks=all); invalid ones are listed in `rejected`',
      content: { 'application/json': { schema: ref('Accepted'), example: { accepted: 1, rejected: [] } } },
    },
  };
  // Not a header parameter: it says how the body is encoded, so a generator would pair it with a plain body.
  const gzipBodies = ` The body may be gzip with Content-Encoding: gzip (inflated with a cap of ${maxBodyBytes} bytes: 413 beyond it, 400 malformed_gzip if it is not gzip).`;
  const filmIdParameter = { name: 'film_id', in: 'path', required: true, schema: jsonSchema(eventSchemas.film_progress.shape.film_id), example: 'tt0111161' };
  const privateAnswer = { 'Cache-Control': header("The viewer's own data: never stored by a shared cache", { const: cacheControl.viewerData }) };
  const publicAnswer = { 'Cache-Control': header('Cacheable for 5 minutes', { const: cacheControl.document }) };

  return {
    openapi: '3.1.0',
    info: {
      title: 'ugc-ingest',
      version: '1',
      description: 'User-generated events of the online cinema: where a viewer stopped a film, ratings, reviews, likes, bookmarks, '
        + 'page views, clicks and searches. Generated from the event registry (shared/events.ts).',
    },
    ...(serverUrl ? { servers: [{ url: serverUrl }] } : {}),
    components: {
      schemas,
      securitySchemes: {
        viewerToken: { type: 'http', scheme: 'bearer', bearerFormat: 'JWT', description: "The viewer's access token from the cinema's Auth service; the user id is its `sub` claim." },
      },
    },
    paths: {
      '/v1/events': {
        post: {
          operationId: 'postEvents',
          summary: 'Send one event or a batch of events',
          description: `At most ${maxEventsPerRequest} events and ${maxBodyBytes} bytes per request (as sent and inflated). The user id comes from the token, never from the body. `
            + 'Two forms: a Bearer token with an application/json body; or, for pages going away, text/plain with the token in the body (UnloadBatch), '
            + 'which browsers send with no preflight. The body token gets exactly the checks of the header token. A request with both a header '
            + 'token and a body token is refused (400 conflicting_tokens, as RFC 6750 section 2 asks of clients: one method per request) '
            + `rather than guessing which viewer it means.${gzipBodies}`,
          security: [{ viewerToken: [] }, {}],
          requestBody: {
            required: true,
            content: {
              'application/json': { schema: { oneOf: [ref('ClientEvent'), ref('EventBatch')] }, examples: eventExamples },
              'text/plain': { schema: ref('UnloadBatch'), example: { token: '<the viewer JWT>', events: [registryExamples('film_progress')[0]].filter(Boolean) } },
            },
          },
          responses: {
            ...accepted,
            ...errorResponses(ingestErrors({ description: `${invalidBody.description}, or the request carries two tokens`, codes: [...invalidBody.codes, 'conflicting_tokens'] })),
          },
        },
      },
      '/v1/films/{film_id}/progress': {
        post: {
          operationId: 'postFilmProgress',
          summary: 'Report where the viewer is in a film (the simple form of a film_progress event)',
          description: `The user id comes from the token, the film from the path.${gzipBodies}`,
          security: [{ viewerToken: [] }],
          parameters: [filmIdParameter],
          requestBody: { required: true, content: { 'application/json': { schema: ref('FilmProgressBody'), examples: progressExamples } } },
          responses: { ...accepted, ...errorResponses(ingestErrors(invalidBody)) },
        },
        get: {
          operationId: 'getFilmProgress',
          summary: "The viewer's latest position in a film (by event time)",
          security: [{ viewerToken: [] }],
          parameters: [filmIdParameter],
          responses: {
            200: jsonResponse('The latest position', ref('FilmProgress'), { film_id: 'tt0111161', position_s: 120, duration_s: 8520, updated_at: '2026-12-01T20:00:00.000Z' }, privateAnswer),
            ...errorResponses({
              400: { description: 'film_id is empty, too long or badly encoded', codes: ['invalid_film_id'] },
              401: unauthorizedStatus(),
              404: { description: 'The viewer never watched this film', codes: ['progress_not_found'] },
              503: readerUnavailable,
            }),
          },
        },
      },
      '/v1/progress': {
        get: {
          operationId: 'getRecentProgress',
          summary: "The viewer's films, most recently watched first",
          security: [{ viewerToken: [] }],
          parameters: [{ name: 'limit', in: 'query', required: false, schema: { type: 'integer', minimum: 1, maximum: maxProgressLimit }, description: `How many films (default ${defaultProgressLimit})` }],
          responses: {
            200: jsonResponse('The films (an empty list if none)', ref('ProgressList'), { items: [{ film_id: 'tt0111161', position_s: 120, duration_s: 8520, updated_at: '2026-12-01T20:00:00.000Z' }], limit: defaultProgressLimit }, privateAnswer),
            ...errorResponses({
              400: { description: `limit is not an integer from 1 to ${maxProgressLimit}`, codes: ['invalid_limit'] },
              401: unauthorizedStatus(),
              503: readerUnavailable,
            }),
          },
        },
      },
      '/v1/health': {
        get: {
          operationId: 'getHealth',
          summary: 'Whether the function can reach Kafka',
          responses: {
            200: { description: 'Kafka is reachable', content: { 'application/json': { schema: ref('Health'), example: { status: 'ok', kafka: 'reachable' } } } },
            503: { description: 'Kafka is unreachable', headers: { 'Retry-After': retryAfter }, content: { 'application/json': { schema: ref('Health'), example: { status: 'degraded', code: 'kafka_unavailable', kafka: 'unreachable' } } } },
          },
        },
      },
      '/v1/openapi.json': {
        get: { operationId: 'getOpenApi', summary: 'This document', responses: { 200: { description: 'OpenAPI 3.1 document', headers: publicAnswer, content: { 'application/json': { schema: { type: 'object', required: ['openapi', 'info', 'paths'] } } } } } },
      },
      '/v1/docs': {
        get: { operationId: 'getDocs', summary: 'This document as a page', responses: { 200: { description: 'HTML page', headers: publicAnswer, content: { 'text/html': { schema: { type: 'string' } } } } } },
      },
    },
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
