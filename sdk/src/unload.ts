// How what is queued leaves a page that is going away: chunks of the unload form (text/plain, the
// token in the body: no preflight, so the browser can finish them after unload) that fit the
// browser's keepalive budget, and, for what does not fit or has no valid token, ordinary requests.
import type { QueuedEvent } from './types.ts';

const encoder = new TextEncoder();
/** Bytes of a text as sent. */
export const byteSize = (text: string) => encoder.encode(text).length;
// hideChunks sizes bodies from these shapes: the empty body + each event and a comma, minus one.
export const bodyOf = (events: QueuedEvent[]) => JSON.stringify({ events });
export const unloadBodyOf = (token: string, events: QueuedEvent[]) => JSON.stringify({ token, events });

/** A chunk of a hidden page's events, and its unload-form body; without one, it goes as an ordinary request. */
export interface HideChunk { events: QueuedEvent[]; unloadBody?: string }

/**
 * Splits the events into chunks of at most `batchSize`. Browsers refuse keepalive bodies beyond
 * `budget` (64 KiB) in flight in total, including those of an earlier hide (visibilitychange, then
 * pagehide): unload chunks fill what is left of it (`inFlight()`, read again for each chunk, after
 * the previous one was handed over), the rest are ordinary chunks of up to a budget each. Without
 * a valid `token`, every chunk is ordinary.
 */
export function* hideChunks(events: QueuedEvent[], { token, budget, batchSize, inFlight }: {
  token: string | undefined; budget: number; batchSize: number; inFlight: () => number;
}): Generator<HideChunk> {
  // Bytes of each event in a body, with its comma: a body of n events is the empty body - 1 + their sum.
  const sizes = events.map((event) => byteSize(JSON.stringify(event)) + 1);
  const empty = byteSize(token ? unloadBodyOf(token, []) : bodyOf([])) - 1;
  for (let i = 0; i < events.length;) {
    const room = budget - inFlight();
    let size = empty + sizes[i]!;
    const fits = token !== undefined && size <= room;
    const limit = fits ? room : budget;
    let end = i + 1;
    while (end < events.length && end - i < batchSize && size + sizes[end]! <= limit) size += sizes[end++]!;
    const chunk = events.slice(i, end);
    i = end;
    yield fits ? { events: chunk, unloadBody: unloadBodyOf(token, chunk) } : { events: chunk };
  }
}
