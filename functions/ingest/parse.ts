import { gunzipSync } from 'node:zlib';
import { clientEvent, type ClientEvent, type EventType } from '../../shared/events.ts';
import { HttpError } from '../../shared/errors.ts';
import * as compiled from '../../shared/generated/client-event-validators.ts';

export interface Rejection { index: number; code: string; message: string }
export interface ParsedEvents { valid: { index: number; event: ClientEvent }[]; rejected: Rejection[] }

export interface BodyLimits { maxBodyBytes: number; maxEvents: number }

export interface BodyOptions {
  /** The request's Content-Encoding: absent, `identity` or `gzip`. */
  contentEncoding?: string | undefined;
  /** Also take `text/plain` (the unload form of POST /v1/events, a CORS-simple request). */
  allowPlainText?: boolean;
}

const jsonType = /^application\/(?:[\w.+-]+\+)?json\s*(?:;|$)/i;
const plainTextType = /^text\/plain\s*(?:;|$)/i;

/** Whether a Content-Type is text/plain (with or without a charset), as sendBeacon sends a string. */
export const isPlainText = (contentType: string | undefined): boolean => plainTextType.test(contentType ?? '');

/**
 * Decodes an API Gateway body (maybe base64, maybe gzip) and checks its type and size. The
 * limit holds for the bytes received and again for the inflated body.
 */
export function readJsonBody(
  body: string | undefined,
  isBase64Encoded: boolean,
  contentType: string | undefined,
  limits: BodyLimits,
  { contentEncoding, allowPlainText = false }: BodyOptions = {},
): unknown {
  if (!contentType || !(jsonType.test(contentType) || (allowPlainText && isPlainText(contentType)))) {
    throw new HttpError(415, 'unsupported_media_type', `Content-Type must be application/json${allowPlainText ? ' or text/plain' : ''}`);
  }
  const received = isBase64Encoded ? Buffer.from(body ?? '', 'base64') : Buffer.from(body ?? '', 'utf8');
  if (received.byteLength > limits.maxBodyBytes) {
    throw new HttpError(413, 'payload_too_large', `the body exceeds ${limits.maxBodyBytes} bytes`);
  }
  if (received.byteLength === 0) throw new HttpError(400, 'empty_body', 'the body is empty');
  const raw = decodeContent(received, contentEncoding, limits.maxBodyBytes);
  if (raw.byteLength === 0) throw new HttpError(400, 'empty_body', 'the body is empty');
  try {
    return JSON.parse(raw.toString('utf8'));
  } catch {
    throw new HttpError(400, 'malformed_json', 'the body is not valid JSON');
  }
}

/**
 * Undoes Content-Encoding. gzip is inflated with a cap: zlib stops (and throws) as soon as the
 * output passes maxBytes, so a small body that would inflate to gigabytes (a zip bomb) costs
 * at most maxBytes of memory before its 413.
 */
export function decodeContent(bytes: Buffer, contentEncoding: string | undefined, maxBytes: number): Buffer {
  const coding = contentEncoding?.trim().toLowerCase();
  if (!coding || coding === 'identity') return bytes;
  if (coding !== 'gzip' && coding !== 'x-gzip') {
    throw new HttpError(415, 'unsupported_content_encoding', 'Content-Encoding must be gzip, or absent');
  }
  try {
    return gunzipSync(bytes, { maxOutputLength: maxBytes });
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ERR_BUFFER_TOO_LARGE') {
      throw new HttpError(413, 'payload_too_large', `the decompressed body exceeds ${maxBytes} bytes`);
    }
    throw new HttpError(400, 'malformed_gzip', 'the body is not valid gzip');
  }
}

/**
 * Splits the unload form `{ token, events }` into its token and its events, so the token is
 * never validated, enriched or produced as part of an event. `token` is undefined if absent.
 */
export function takeBodyToken(payload: unknown): { token: unknown; payload: unknown } {
  if (typeof payload !== 'object' || payload === null || Array.isArray(payload) || !('token' in payload)) return { token: undefined, payload };
  const { token, ...rest } = payload as Record<string, unknown>;
  return { token, payload: rest };
}

/** Accepts one event or `{ events: [...] }`; validates each against the registry on its own. */
export function parseEvents(payload: unknown, limits: BodyLimits): ParsedEvents {
  const isBatch = typeof payload === 'object' && payload !== null && !Array.isArray(payload) && 'events' in payload;
  if (isBatch) {
    // A batch is `events` and nothing else, as the document's EventBatch says (additionalProperties: false).
    const extra = Object.keys(payload).filter((key) => key !== 'events');
    if (extra.length > 0) throw new HttpError(400, 'invalid_events', `a batch has only events; unknown: ${extra.slice(0, 5).join(', ')}`);
  }
  const items: unknown[] = isBatch ? toArray((payload as { events: unknown }).events) : [payload];
  if (items.length === 0) throw new HttpError(400, 'no_events', 'events must not be empty');
  if (items.length > limits.maxEvents) {
    throw new HttpError(413, 'too_many_events', `at most ${limits.maxEvents} events per request`);
  }
  const parsed: ParsedEvents = { valid: [], rejected: [] };
  items.forEach((item, index) => {
    const checked = checkEvent(item);
    if (checked.ok) parsed.valid.push({ index, event: checked.event });
    else parsed.rejected.push({ index, code: 'invalid_event', message: checked.message });
  });
  return parsed;
}

export type CheckedEvent = { ok: true; event: ClientEvent } | { ok: false; message: string };

type Validator = (data: unknown) => boolean;
// The registry compiled to plain functions (scripts/generate-validators.ts), as strict as zod:
// zod's checks were ~10 us an event, more than the rest of a 100-event request's handling.
// Typed here: the generated module is unchecked JavaScript; this fails to compile when it lacks a type.
const validatorFor: (item: unknown) => Validator | undefined = compiled.validatorFor;
compiled.validatorsByType satisfies Record<EventType, Validator>;

/** Whether the compiled validator of the item's type accepts it. */
function passesCompiled(item: unknown): item is ClientEvent {
  const validate = validatorFor(item);
  return validate !== undefined && validate(item);
}

/**
 * One event checked by zod alone: the reference the fast path must equal, and the words for an
 * event the fast path refused (zod's first issue, with its path).
 */
export function checkEventWithZod(item: unknown): CheckedEvent {
  const result = clientEvent.safeParse(item);
  if (result.success) return { ok: true, event: result.data };
  const issue = result.error.issues[0];
  const where = issue?.path.length ? `${issue.path.join('.')}: ` : '';
  return { ok: false, message: `${where}${issue?.message ?? 'invalid event'}` };
}

/**
 * One event checked: the compiled validators decide, zod words the error of an event they
 * refused (and has the last word: an event zod accepts is accepted).
 */
export function checkEvent(item: unknown): CheckedEvent {
  return passesCompiled(item) ? { ok: true, event: item } : checkEventWithZod(item);
}

function toArray(events: unknown): unknown[] {
  if (!Array.isArray(events)) throw new HttpError(400, 'invalid_events', 'events must be an array');
  return events;
}

/**
 * The simple form `POST /v1/films/{film_id}/progress {position_s, duration_s?}` as a batch of one
 * event: a body with its own `events` is then an unknown field, not a batch of any type and film.
 */
export function filmProgressPayload(filmId: string | undefined, body: unknown): { events: [unknown] } {
  if (typeof body !== 'object' || body === null || Array.isArray(body)) {
    throw new HttpError(400, 'invalid_event', 'the body must be a JSON object');
  }
  // As it comes: API Gateway's HTTP API (and serverless offline) hand path parameters over decoded;
  // decoding again turned a film id "a%41b" into "aAb" and refused "50%off".
  return { events: [{ ...body, type: 'film_progress', film_id: filmId }] };
}
