import { cacheControl } from './api.ts';
import { eventSchemas, eventTypes, registryExamples } from './events.ts';
import { header, jsonSchema, pathsOf, ref, type Answer, type ErrorStatus, type JsonObject, type Route } from './openapi-builder.ts';

/**
 * The API's operations as data, one entry each, from which the OpenAPI document's `paths` are
 * built. The functions answer them (functions/ingest, functions/reader); the conformance test in
 * tests/e2e/openapi.test.ts calls every route and checks each answer against what is declared here.
 */

/** The facts the routes state, every one given (shared/openapi.ts fills in the defaults). */
export interface RouteLimits { maxEventsPerRequest: number; maxBodyBytes: number; defaultProgressLimit: number; maxProgressLimit: number }

export const securitySchemes = {
  viewerToken: { type: 'http', scheme: 'bearer', bearerFormat: 'JWT', description: "The viewer's access token from the cinema's Auth service; the user id is its `sub` claim." },
};
const viewer = [{ viewerToken: [] }];
// `{}`: the unload form carries its token in the body, which no security scheme can name.
const viewerOrBodyToken = [...viewer, {}];

const unauthorized: ErrorStatus = { description: 'No valid viewer token (see the WWW-Authenticate header)', codes: ['missing_token', 'invalid_token', 'token_expired'] };
const invalidBody: ErrorStatus = { description: 'The body or every event in it is invalid', codes: ['malformed_json', 'malformed_gzip', 'empty_body', 'no_events', 'invalid_events', 'invalid_event', 'no_valid_events'] };
/** What a route that takes events answers; its 400 is the route's own (POST /v1/events adds conflicting_tokens). */
const ingestErrors = (badRequest: ErrorStatus): Record<number, ErrorStatus> => ({
  400: badRequest,
  401: unauthorized,
  413: { description: 'Too large: body bytes (as sent, and inflated) or events per request', codes: ['payload_too_large', 'too_many_events'] },
  415: { description: 'Content-Type is not application/json (or text/plain, the unload form), or Content-Encoding is not gzip', codes: ['unsupported_media_type', 'unsupported_content_encoding'] },
  503: { description: 'Events could not be made durable (Kafka) or token keys could not be read; retry after Retry-After', codes: ['kafka_unavailable', 'auth_keys_unavailable'] },
});
const readerUnavailable: ErrorStatus = { description: 'ClickHouse or the token keys could not be read; retry after Retry-After', codes: ['clickhouse_unavailable', 'auth_keys_unavailable'] };

const retryAfter = header('Seconds to wait before retrying', { type: 'string', pattern: '^[0-9]+$' });
/** Headers each error status always carries. */
const errorHeaders: Record<number, JsonObject> = {
  401: { 'WWW-Authenticate': header('RFC 6750 challenge, e.g. Bearer realm="ugc-ingest", error="invalid_token"', { type: 'string', pattern: '^Bearer realm=' }) },
  503: { 'Retry-After': retryAfter },
};
const privateAnswer = { 'Cache-Control': header("The viewer's own data: never stored by a shared cache", { const: cacheControl.viewerData }) };
const publicAnswer = { 'Cache-Control': header('Cacheable for 5 minutes', { const: cacheControl.document }) };

/** POST /v1/events's examples: every event example of the registry, and a batch of one of each type. */
function eventExamples(): JsonObject {
  const examples: JsonObject = {};
  for (const type of eventTypes) {
    registryExamples(type).forEach((value, i) => { examples[`${type}${i === 0 ? '' : `_${i + 1}`}`] = { summary: `one ${type} event`, value }; });
  }
  examples.batch = {
    summary: 'a batch: one example of every event type',
    value: { events: eventTypes.map((type) => registryExamples(type)[0]).filter(Boolean) },
  };
  return examples;
}

/** The registry's film_progress examples in the simple form: film_id goes to the path. */
const progressExamples = () => Object.fromEntries(registryExamples('film_progress').map((example, i) => {
  const { type: _type, film_id: _filmId, ...value } = example;
  return [`progress${i === 0 ? '' : `_${i + 1}`}`, { summary: `progress in film ${String(example.film_id)}`, value, 'x-path-parameters': { film_id: example.film_id } }];
}));

const filmIdParameter = { name: 'film_id', in: 'path', required: true, schema: jsonSchema(eventSchemas.film_progress.shape.film_id), example: 'tt0111161' };
const filmProgressExample = { film_id: 'tt0111161', position_s: 120, duration_s: 8520, updated_at: '2026-12-01T20:00:00.000Z' };
const accepted: Answer = { description: 'Accepted: every valid event is durable in Kafka (acks=all); invalid ones are listed in `rejected`', schema: ref('Accepted'), example: { accepted: 1, rejected: [] } };

/** Every operation, in the document's order. */
export function apiRoutes({ maxEventsPerRequest, maxBodyBytes, defaultProgressLimit, maxProgressLimit }: RouteLimits): Route[] {
  // Not a header parameter: it says how the body is encoded, so a generator would pair it with a plain body.
  const gzipBodies = ` The body may be gzip with Content-Encoding: gzip (inflated with a cap of ${maxBodyBytes} bytes: 413 beyond it, 400 malformed_gzip if it is not gzip).`;
  return [
    {
      method: 'post', path: '/v1/events', operationId: 'postEvents',
      summary: 'Send one event or a batch of events',
      description: `At most ${maxEventsPerRequest} events and ${maxBodyBytes} bytes per request (as sent and inflated). The user id comes from the token, never from the body. `
        + 'Two forms: a Bearer token with an application/json body; or, for pages going away, text/plain with the token in the body (UnloadBatch), '
        + 'which browsers send with no preflight. The body token gets exactly the checks of the header token. A request with both a header '
        + 'token and a body token is refused (400 conflicting_tokens, as RFC 6750 section 2 asks of clients: one method per request) '
        + `rather than guessing which viewer it means.${gzipBodies}`,
      security: viewerOrBodyToken,
      body: {
        'application/json': { schema: { oneOf: [ref('ClientEvent'), ref('EventBatch')] }, examples: eventExamples() },
        'text/plain': { schema: ref('UnloadBatch'), example: { token: '<the viewer JWT>', events: [registryExamples('film_progress')[0]].filter(Boolean) } },
      },
      responses: { 202: accepted, ...ingestErrors({ description: `${invalidBody.description}, or the request carries two tokens`, codes: [...invalidBody.codes, 'conflicting_tokens'] }) },
    },
    {
      method: 'post', path: '/v1/films/{film_id}/progress', operationId: 'postFilmProgress',
      summary: 'Report where the viewer is in a film (the simple form of a film_progress event)',
      description: `The user id comes from the token, the film from the path.${gzipBodies}`,
      security: viewer,
      parameters: [filmIdParameter],
      body: { 'application/json': { schema: ref('FilmProgressBody'), examples: progressExamples() } },
      responses: { 202: accepted, ...ingestErrors(invalidBody) },
    },
    {
      method: 'get', path: '/v1/films/{film_id}/progress', operationId: 'getFilmProgress',
      summary: "The viewer's latest position in a film (by event time)",
      security: viewer,
      parameters: [filmIdParameter],
      responses: {
        200: { description: 'The latest position', headers: privateAnswer, schema: ref('FilmProgress'), example: filmProgressExample },
        400: { description: 'film_id is empty, too long or badly encoded', codes: ['invalid_film_id'] },
        401: unauthorized,
        404: { description: 'The viewer never watched this film', codes: ['progress_not_found'] },
        503: readerUnavailable,
      },
    },
    {
      method: 'get', path: '/v1/progress', operationId: 'getRecentProgress',
      summary: "The viewer's films, most recently watched first",
      security: viewer,
      parameters: [{ name: 'limit', in: 'query', required: false, schema: { type: 'integer', minimum: 1, maximum: maxProgressLimit }, description: `How many films (default ${defaultProgressLimit})` }],
      responses: {
        200: { description: 'The films (an empty list if none)', headers: privateAnswer, schema: ref('ProgressList'), example: { items: [filmProgressExample], limit: defaultProgressLimit } },
        400: { description: `limit is not an integer from 1 to ${maxProgressLimit}`, codes: ['invalid_limit'] },
        401: unauthorized,
        503: readerUnavailable,
      },
    },
    {
      method: 'get', path: '/v1/health', operationId: 'getHealth',
      summary: 'Whether the function can reach Kafka',
      responses: {
        200: { description: 'Kafka is reachable', schema: ref('Health'), example: { status: 'ok', kafka: 'reachable' } },
        503: { description: 'Kafka is unreachable', headers: { 'Retry-After': retryAfter }, schema: ref('Health'), example: { status: 'degraded', code: 'kafka_unavailable', kafka: 'unreachable' } },
      },
    },
    {
      method: 'get', path: '/v1/openapi.json', operationId: 'getOpenApi', summary: 'This document',
      responses: { 200: { description: 'OpenAPI 3.1 document', headers: publicAnswer, schema: { type: 'object', required: ['openapi', 'info', 'paths'] } } },
    },
    {
      method: 'get', path: '/v1/docs', operationId: 'getDocs', summary: 'This document as a page',
      responses: { 200: { description: 'HTML page', headers: publicAnswer, mediaType: 'text/html', schema: { type: 'string' } } },
    },
  ];
}

/** The document's `paths`, built from the routes. */
export const apiPaths = (limits: RouteLimits): JsonObject => pathsOf(apiRoutes(limits), errorHeaders);
