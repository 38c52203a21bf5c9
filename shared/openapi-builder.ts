import * as z from './zod.ts';
import { wellFormedText } from './events.ts';

/**
 * The small builder the OpenAPI document (shared/openapi.ts) is made with: zod schemas become its
 * JSON Schemas, routes declared as data (shared/openapi-routes.ts) become its `paths`.
 */

export type JsonObject = Record<string, unknown>;

/** A reference to one of the document's component schemas. */
export const ref = (name: string) => ({ $ref: `#/components/schemas/${name}` });

/** A header that an answer always carries. */
export const header = (description: string, schema: JsonObject = { type: 'string' }) => ({ description, required: true, schema });

/** JSON Schema (2020-12, as OpenAPI 3.1 uses) of a zod schema's input, without the `$schema` key. */
export function jsonSchema(schema: z.ZodMiniType): JsonObject {
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

/** A success answer: its schema in one media type (JSON unless said), with an example where one helps. */
export interface Answer { description: string; headers?: JsonObject; mediaType?: string; schema: JsonObject; example?: unknown }

/** An error status of a route: what it means, and every machine-readable `code` the route answers with it. */
export interface ErrorStatus { description: string; codes: string[] }

/** One operation of the API, as data; `body` is its (required) request body by media type. */
export interface Route {
  method: 'get' | 'post';
  path: string;
  operationId: string;
  summary: string;
  description?: string;
  security?: JsonObject[];
  parameters?: JsonObject[];
  body?: Record<string, JsonObject>;
  responses: Record<number, Answer | ErrorStatus>;
}

/** The document's `paths`: the routes grouped by path, in the order given; `errorHeaders` are the headers every error of a status carries. */
export function pathsOf(routes: Route[], errorHeaders: Record<number, JsonObject> = {}): JsonObject {
  const paths: Record<string, JsonObject> = {};
  for (const route of routes) (paths[route.path] ??= {})[route.method] = operationOf(route, errorHeaders);
  return paths;
}

// The key order is the builder's (OpenAPI's usual one), not the order a route happens to be written in.
function operationOf({ operationId, summary, description, security, parameters, body, responses }: Route, errorHeaders: Record<number, JsonObject>): JsonObject {
  return definedOnly({
    operationId, summary, description, security, parameters,
    requestBody: body && { required: true, content: body },
    responses: Object.fromEntries(Object.entries(responses).map(([status, response]) =>
      [status, 'codes' in response ? errorResponse(response, errorHeaders[Number(status)]) : answerResponse(response)])),
  });
}

function answerResponse({ description, headers, mediaType = 'application/json', schema, example }: Answer): JsonObject {
  return definedOnly({ description, headers, content: { [mediaType]: definedOnly({ schema, example }) } });
}

// Every error is the Error component with its `code` narrowed to the codes this route answers with.
function errorResponse({ description, codes }: ErrorStatus, headers: JsonObject | undefined): JsonObject {
  return definedOnly({
    description: `${description}. Codes: ${codes.join(', ')}`,
    headers,
    content: { 'application/json': { schema: { allOf: [ref('Error')], properties: { code: { enum: codes } } }, example: { code: codes[0], message: description } } },
  });
}

// An absent part is left out of the document, not written as undefined.
const definedOnly = (object: JsonObject): JsonObject => Object.fromEntries(Object.entries(object).filter(([, value]) => value !== undefined));
