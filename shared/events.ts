import * as z from './zod.ts';

/**
 * The event registry: the single source of truth for what a viewer can send.
 * TypeScript types, runtime validation and the ClickHouse row mapping all derive from it.
 */
export const SCHEMA_VERSION = 1;

// Only whole Unicode text: a lone UTF-16 surrogate (valid in JSON as "\ud800") cannot be stored
// by ClickHouse's JSON input, and one such event would fail every insert of its batch. A regex,
// not a refine, so the JSON Schema (OpenAPI, the writer's compiled validators) carries the rule too.
// Spelled with UTF-16 ranges, not \P{Cs}: request generators that read the OpenAPI document know
// no Unicode property classes (one generated nothing for 3 of 6 operations). It means the same
// with or without the u flag: any code unit outside the surrogates, or a high one followed by a low one.
export const wellFormedText = /^(?:[^\uD800-\uDFFF]|[\uD800-\uDBFF][\uDC00-\uDFFF])*$/u;
const text = (max: number) =>
  z.string().check(z.minLength(1), z.maxLength(max), z.regex(wellFormedText, 'must be valid Unicode text (no lone surrogates)'));
/** A film id: what every event, path and read takes as one. */
export const maxFilmIdLength = 64;
export const filmId = text(maxFilmIdLength);
const score = z.int().check(z.minimum(1), z.maximum(10));
/**
 * A review's text, in Unicode code points (what zod and JSON Schema count; an emoji is one, a ZWJ
 * family several). 4,000 is ~600 words, room for a considered review; a page's textarea can take
 * `maxlength="4000"` (it counts UTF-16 units, so never more). At most 16 KB of UTF-8, so a review at
 * the bound fits a request, a Kafka message and the SDK's 64 KiB page-hide budget beside other events.
 */
export const maxReviewTextLength = 4_000;
const url = text(2048);
// Largest value of the UInt32 columns the counters are stored in (wider values would wrap silently).
const maxUInt32 = 4_294_967_295;
// Times are stored as DateTime64, which every ClickHouse version holds from 1900 to 2299: accept
// years 1970-2199 only, so even with a UTC offset of ±14 h a time converts to a storable instant.
// (A year-9999 time with a negative offset became year 10000, which failed the writer's whole insert.)
export const storableYears = /^(?:19[7-9]\d|2[01]\d\d)-/;
const maxEpochMs = Date.UTC(2200, 0, 1) - 1;
// The format note keeps JSON Schema (OpenAPI, the writer's validators) saying date-time: zod drops it beside a second pattern.
const isoTime = (options: { offset: boolean }) =>
  z.iso.datetime(options).check(z.regex(storableYears, 'must be a time between the years 1970 and 2199')).register(z.globalRegistry, { format: 'date-time' });
/** A client clock further ahead of the server than this is not trusted as the event time (the ingest uses ours). */
export const maxClockSkewMs = 5 * 60_000;
/** A client time older than this is not trusted as the event time either: it would scatter a batch over old partitions. */
export const maxEventAgeMs = 30 * 24 * 3_600_000;

/** Fields common to every event, as the browser sends them. */
const envelope = {
  event_id: z.optional(z.uuid()).register(z.globalRegistry, {
    description: 'Makes retries idempotent: send the same id again and the event is stored once. Give the event its time too '
      + '(client_ts, or make this a UUIDv7, whose time is used), so every retry has the same event time; a time the server '
      + 'does not trust (see client_ts) is replaced by the server clock, which differs between retries.',
  }),
  // Client clock, ISO 8601 or epoch milliseconds; the server clock is authoritative (received_at).
  client_ts: z.optional(z.union([isoTime({ offset: true }), z.int().check(z.minimum(0), z.maximum(maxEpochMs))])).register(z.globalRegistry, {
    description: `When the event happened, by the client clock (ISO 8601 or epoch ms, years 1970-2199); more than ${maxClockSkewMs / 60_000} `
      + `minutes ahead of the server or more than ${maxEventAgeMs / 86_400_000} days behind it, the server time is used.`,
  }),
};

// The registered `examples` only document (the OpenAPI document shows and tests them); validation is unchanged.
export const eventSchemas = {
  film_progress: z.strictObject({
    type: z.literal('film_progress'),
    ...envelope,
    film_id: filmId,
    position_s: z.int().check(z.minimum(0), z.maximum(1_000_000)),
    duration_s: z.optional(z.int().check(z.minimum(0), z.maximum(1_000_000))),
  }).register(z.globalRegistry, { examples: [
    { type: 'film_progress', film_id: 'tt0111161', position_s: 120, duration_s: 8520 },
    { type: 'film_progress', event_id: '0190c3d2-7a4b-7c1e-9f00-5a1b2c3d4e5f', client_ts: '2025-05-01T20:15:00.000Z', film_id: 'tt0068646', position_s: 3600 },
  ] }),
  film_rating: z.strictObject({
    type: z.literal('film_rating'),
    ...envelope,
    film_id: filmId,
    score,
  }).register(z.globalRegistry, { examples: [{ type: 'film_rating', film_id: 'tt0111161', score: 9 }] }),
  bookmark: z.strictObject({
    type: z.literal('bookmark'),
    ...envelope,
    film_id: filmId,
    action: z.enum(['add', 'remove']),
  }).register(z.globalRegistry, { examples: [{ type: 'bookmark', film_id: 'tt0468569', action: 'add', client_ts: 1746130500000 }] }),
  page_view: z.strictObject({
    type: z.literal('page_view'),
    ...envelope,
    url,
    referrer: z.optional(url),
  }).register(z.globalRegistry, { examples: [{ type: 'page_view', url: '/films/tt0111161', referrer: '/search?q=shawshank' }] }),
  click: z.strictObject({
    type: z.literal('click'),
    ...envelope,
    url,
    element: text(256),
  }).register(z.globalRegistry, { examples: [{ type: 'click', url: '/films/tt0111161', element: 'play-button' }] }),
  search: z.strictObject({
    type: z.literal('search'),
    ...envelope,
    query: text(512),
    results_count: z.int().check(z.minimum(0), z.maximum(maxUInt32)),
  }).register(z.globalRegistry, { examples: [{ type: 'search', query: 'shawshank', results_count: 3 }] }),
  review: z.strictObject({
    type: z.literal('review'),
    ...envelope,
    film_id: filmId,
    review_text: text(maxReviewTextLength).register(z.globalRegistry, {
      description: `The review, 1 to ${maxReviewTextLength} Unicode code points (an emoji is one, a ZWJ sequence several). `
        + 'A newer review by the same viewer of the same film (by event time) replaces the earlier one.',
    }),
    score: z.optional(score),
  }).register(z.globalRegistry, { examples: [
    { type: 'review', film_id: 'tt0111161', review_text: 'Hope is a good thing, maybe the best of things. 🎬', score: 10 },
    { type: 'review', film_id: 'tt0068646', review_text: 'فيلم رائع، تمثيل لا يُنسى' },
  ] }),
  like: z.strictObject({
    type: z.literal('like'),
    ...envelope,
    film_id: filmId,
    reviewer_id: z.optional(text(256)).register(z.globalRegistry, {
      description: "Absent: the viewer likes or unlikes the film. Present: that viewer's review of the film (reviews are one per viewer and film).",
    }),
    action: z.enum(['like', 'unlike']).register(z.globalRegistry, { description: 'The latest action of a viewer on a film or review (by event time) holds.' }),
  }).register(z.globalRegistry, { examples: [
    { type: 'like', film_id: 'tt0111161', action: 'like' },
    { type: 'like', film_id: 'tt0111161', reviewer_id: 'viewer-42', action: 'unlike' },
  ] }),
} as const;

export type EventType = keyof typeof eventSchemas;
/** Every event type, in registry order (what lists of types, in code and tests, iterate over). */
export const eventTypes = Object.keys(eventSchemas) as EventType[];

/** The `examples` an event schema carries in its metadata (the OpenAPI document's, and tests' valid events). */
export function registryExamples(type: EventType): Record<string, unknown>[] {
  const meta = z.globalRegistry.get(eventSchemas[type]) as { examples?: Record<string, unknown>[] } | undefined;
  return meta?.examples ?? [];
}
type EventSchema = (typeof eventSchemas)[EventType];
const schemaList = Object.values(eventSchemas) as [EventSchema, ...EventSchema[]];

/** One event as the client sends it. */
export const clientEvent = z.discriminatedUnion('type', schemaList);
export type ClientEvent = z.infer<typeof clientEvent>;

/** What the ingest adds to every event from trusted sources (token, clock, request). */
const enrichment = {
  event_id: z.uuid(),
  user_id: text(Number.MAX_SAFE_INTEGER),
  received_at: isoTime({ offset: false }),
  occurred_at: isoTime({ offset: false }),
  request_id: text(256),
  // Stored as UInt16: a wider value would wrap silently.
  schema_version: z.int().check(z.positive(), z.maximum(65_535)),
};

/** A type's schema extended with the enrichment: what the writer reads from Kafka. */
function acceptedForm<T extends EventSchema>(schema: T) {
  return z.extend(schema, enrichment);
}
type AcceptedSchema<K extends EventType> = ReturnType<typeof acceptedForm<(typeof eventSchemas)[K]>>;

/**
 * One event as it travels in Kafka: the client event enriched by the ingest. A discriminated
 * union of extended objects, not an intersection: zod checks an intersection twice and merges,
 * which made validation 3-4× slower on the writer's 10,000-record batches.
 */
export const acceptedEvent = z.discriminatedUnion('type', schemaList.map(acceptedForm) as [AcceptedSchema<EventType>, ...AcceptedSchema<EventType>[]]);
export type AcceptedEvent = z.infer<typeof acceptedEvent>;
/** Every field name of any accepted event type: the writer stores each in a column of `events`. */
export type EventField = AcceptedEvent extends infer E ? (E extends unknown ? keyof E : never) : never;

/** Kafka header names the ingest sets on every message. */
export const eventHeaders = { type: 'event-type', schemaVersion: 'schema-version' } as const;
