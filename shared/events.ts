import { z } from 'zod';

/**
 * The event registry: the single source of truth for what a viewer can send.
 * TypeScript types, runtime validation and the ClickHouse row mapping all derive from it.
 */
export const SCHEMA_VERSION = 1;

const filmId = z.string().min(1).max(64);
const url = z.string().min(1).max(2048);

/** Fields common to every event, as the browser sends them. */
const envelope = {
  event_id: z.uuid().optional(),
  // Client clock, ISO 8601 or epoch milliseconds; the server clock is authoritative (received_at).
  client_ts: z.union([z.iso.datetime({ offset: true }), z.number().int().nonnegative()]).optional(),
};

export const eventSchemas = {
  film_progress: z.strictObject({
    type: z.literal('film_progress'),
    ...envelope,
    film_id: filmId,
    position_s: z.number().int().min(0).max(1_000_000),
    duration_s: z.number().int().min(0).max(1_000_000).optional(),
  }),
  film_rating: z.strictObject({
    type: z.literal('film_rating'),
    ...envelope,
    film_id: filmId,
    score: z.number().int().min(1).max(10),
  }),
  bookmark: z.strictObject({
    type: z.literal('bookmark'),
    ...envelope,
    film_id: filmId,
    action: z.enum(['add', 'remove']),
  }),
  page_view: z.strictObject({
    type: z.literal('page_view'),
    ...envelope,
    url,
    referrer: url.optional(),
  }),
  click: z.strictObject({
    type: z.literal('click'),
    ...envelope,
    url,
    element: z.string().min(1).max(256),
  }),
  search: z.strictObject({
    type: z.literal('search'),
    ...envelope,
    query: z.string().min(1).max(512),
    results_count: z.number().int().min(0),
  }),
} as const;

export type EventType = keyof typeof eventSchemas;
export const eventTypes = Object.keys(eventSchemas) as EventType[];

/** One event as the client sends it. */
export const clientEvent = z.discriminatedUnion('type', [
  eventSchemas.film_progress,
  eventSchemas.film_rating,
  eventSchemas.bookmark,
  eventSchemas.page_view,
  eventSchemas.click,
  eventSchemas.search,
]);
export type ClientEvent = z.infer<typeof clientEvent>;

/** One event as it travels in Kafka: the client event enriched by the ingest from trusted sources. */
export const acceptedEvent = z.intersection(
  clientEvent,
  z.object({
    event_id: z.uuid(),
    user_id: z.string().min(1),
    received_at: z.iso.datetime(),
    occurred_at: z.iso.datetime(),
    request_id: z.string(),
    schema_version: z.number().int().positive(),
  }),
);
export type AcceptedEvent = z.infer<typeof acceptedEvent>;

/** Kafka header names the ingest sets on every message. */
export const eventHeaders = { type: 'event-type', schemaVersion: 'schema-version' } as const;
