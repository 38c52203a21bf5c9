// Facts of the HTTP API that a function's answers and the OpenAPI document (shared/openapi.ts) both
// state: one home each, so the document cannot promise what the function does not do. The answers'
// schemas too: the document's component schemas are made from them, and the types below from them.
import * as z from './zod.ts';

/** `GET /v1/progress`: films answered without `?limit=`, and the most `?limit=` may ask for (the reader's READ_DEFAULT_LIMIT and READ_MAX_LIMIT default to these). */
export const progressLimits = { defaultLimit: 20, maxLimit: 100 } as const;

/** Cache-Control of the answers: a viewer's own data is never kept by a shared cache; the document may be, for 5 minutes. */
export const cacheControl = { viewerData: 'private, no-store', document: 'public, max-age=300' } as const;

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

/** One film's position, as the read API answers it (the SDK takes this type too). */
export type FilmProgress = z.output<typeof filmProgressResponseSchema>;
