import { clientEvent, type ClientEvent } from '../../shared/events.ts';
import { HttpError } from '../../shared/errors.ts';

export interface Rejection { index: number; code: string; message: string }
export interface ParsedEvents { valid: { index: number; event: ClientEvent }[]; rejected: Rejection[] }

export interface BodyLimits { maxBodyBytes: number; maxEvents: number }

/** Decodes an API Gateway body (maybe base64) and checks its type and size. */
export function readJsonBody(
  body: string | undefined,
  isBase64Encoded: boolean,
  contentType: string | undefined,
  limits: BodyLimits,
): unknown {
  if (!contentType || !/^application\/(?:[\w.+-]+\+)?json\s*(?:;|$)/i.test(contentType)) {
    throw new HttpError(415, 'unsupported_media_type', 'Content-Type must be application/json');
  }
  const raw = isBase64Encoded ? Buffer.from(body ?? '', 'base64') : Buffer.from(body ?? '', 'utf8');
  if (raw.byteLength > limits.maxBodyBytes) {
    throw new HttpError(413, 'payload_too_large', `the body exceeds ${limits.maxBodyBytes} bytes`);
  }
  if (raw.byteLength === 0) throw new HttpError(400, 'empty_body', 'the body is empty');
  try {
    return JSON.parse(raw.toString('utf8'));
  } catch {
    throw new HttpError(400, 'malformed_json', 'the body is not valid JSON');
  }
}

/** Accepts one event or `{ events: [...] }`; validates each against the registry on its own. */
export function parseEvents(payload: unknown, limits: BodyLimits): ParsedEvents {
  const isBatch = typeof payload === 'object' && payload !== null && !Array.isArray(payload) && 'events' in payload;
  const items: unknown[] = isBatch ? toArray((payload as { events: unknown }).events) : [payload];
  if (items.length === 0) throw new HttpError(400, 'no_events', 'events must not be empty');
  if (items.length > limits.maxEvents) {
    throw new HttpError(413, 'too_many_events', `at most ${limits.maxEvents} events per request`);
  }
  const parsed: ParsedEvents = { valid: [], rejected: [] };
  items.forEach((item, index) => {
    const result = clientEvent.safeParse(item);
    if (result.success) parsed.valid.push({ index, event: result.data });
    else {
      const issue = result.error.issues[0];
      const where = issue?.path.length ? `${issue.path.join('.')}: ` : '';
      parsed.rejected.push({ index, code: 'invalid_event', message: `${where}${issue?.message ?? 'invalid event'}` });
    }
  });
  return parsed;
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
  return { events: [{ ...body, type: 'film_progress', film_id: filmId ? decodePathParameter(filmId) : filmId }] };
}

/** Percent-decodes a path parameter; malformed encoding (`%ZZ`, a cut `%E0%A4`) is the client's error. */
function decodePathParameter(value: string): string {
  try {
    return decodeURIComponent(value);
  } catch {
    throw new HttpError(400, 'invalid_event', 'film_id: malformed percent-encoding');
  }
}
