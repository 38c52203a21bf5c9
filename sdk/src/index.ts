// The browser SDK of ugc-ingest: track events, report film progress, read "continue watching".
// No runtime dependencies; the event and answer types come from the server (type-only imports).
// Its parts: transport.ts (token, requests), queue.ts (batches and retries), unload.ts (page hide),
// local.ts (this browser's own reports and what a hidden page kept); this file wires them.
import { createLocalStore } from './local.ts';
import { createQueue } from './queue.ts';
import { createTransport } from './transport.ts';
import { hideChunks } from './unload.ts';
import type { ClientEvent, EventProps, EventType, FetchLike, FilmProgress, PageEvents, ProgressStore, QueuedEvent, Tracker, TrackerOptions } from './types.ts';

export type * from './types.ts';

/** Creates a tracker: a bounded queue sent in batches, retried with backoff, flushed on page hide. */
export function createTracker(options: TrackerOptions): Tracker {
  const { batchSize = 20, maxQueue = 1_000, keepaliveBudget = 65_536 } = options;
  const g = globalThis as unknown as {
    fetch?: FetchLike; window?: PageEvents; document?: PageEvents & { visibilityState?: string };
    navigator?: { sendBeacon?(url: string, body: string): boolean; onLine?: boolean }; localStorage?: ProgressStore; CompressionStream?: unknown;
  };
  const nav = g.navigator;
  const beacon = options.sendBeacon ?? (nav?.sendBeacon ? (url: string, body: string) => nav.sendBeacon!(url, body) : undefined);
  const useBeacon = (options.unload ?? 'beacon') === 'beacon' && beacon !== undefined;
  let storage: ProgressStore | null | undefined;
  try {
    // Reading localStorage throws where storage is blocked (sandboxed frames, some private modes).
    storage = options.storage !== undefined ? options.storage : g.localStorage;
  } catch { /* no storage: read the server only */ }
  const win = options.window ?? g.window;
  const doc = options.document ?? g.document;
  const base = options.endpoint.replace(/\/+$/, '');
  const transport = createTransport({
    base, getToken: options.getToken, send: options.fetch ?? ((url, init) => g.fetch!(url, init)), gzip: options.gzip ?? typeof g.CompressionStream === 'function',
  });
  const queue = createQueue(transport, {
    batchSize, flushIntervalMs: options.flushIntervalMs ?? 5_000, maxQueue, maxAttempts: options.maxAttempts ?? 8,
    retryBaseMs: options.retryBaseMs ?? 500, retryMaxMs: options.retryMaxMs ?? 30_000, random: options.random ?? Math.random,
  });
  const local = createLocalStore(storage, transport.subject, maxQueue);
  // Kept under the viewer's key, so only once a token says who it is.
  const keep = (events: QueuedEvent[]) => { if (transport.heldToken()) local.keep(events); };

  /**
   * The page may be going away: send everything now, in the unload form where it fits (see
   * unload.ts). Each chunk goes one way only: sendBeacon (or fetch keepalive), or an ordinary
   * request, re-queued if it fails.
   */
  function flushOnHide(): void {
    if (queue.size() === 0) return;
    const events = queue.takeAll();
    // An expired token (a timer throttled in a background tab, a laptop that slept) would be a 401
    // no beacon can read: such a hide sends ordinary requests, which fetch a new token.
    const token = transport.validToken();
    // What may not arrive (the API was failing, the browser is offline, no valid token) is also
    // kept for the next load of the page, which sends it again with the same event_ids.
    if (queue.failing() || !token || nav?.onLine === false) keep(events);
    for (const { events: chunk, unloadBody } of hideChunks(events, { token, budget: keepaliveBudget, batchSize, inFlight: queue.keepaliveInFlight })) {
      if (unloadBody && useBeacon && beacon!(`${base}/v1/events`, unloadBody)) {
        queue.counts.beaconed += chunk.length;
        continue;
      }
      // An ordinary request needs a preflight, which Chromium, Firefox and WebKit all cancel when
      // the page closes or navigates (tests/e2e/engines.test.ts: 0 of 12 each): a chunk the beacon
      // refused (its quota) goes as fetch keepalive, no preflight either, and is kept for the next load too.
      if (!unloadBody || useBeacon) keep(chunk);
      void queue.send(chunk, unloadBody);
    }
  }

  // Fetched now, so the first send on page hide already has it; then what an earlier load kept goes out.
  transport.refreshToken().then(() => {
    const kept = local.takeKept();
    if (kept.length > 0) queue.putFront(kept);
  }, () => {});
  const onPageHide = () => flushOnHide();
  const onVisibility = () => { if (doc?.visibilityState === 'hidden') flushOnHide(); };
  win?.addEventListener('pagehide', onPageHide);
  doc?.addEventListener('visibilitychange', onVisibility);

  return {
    track: (type, props) => void queue.enqueue({ ...props, type } as unknown as ClientEvent),
    progress(filmId, positionS, durationS) {
      if (!Number.isFinite(positionS)) return;
      const event = queue.enqueue({
        type: 'film_progress', film_id: filmId, position_s: Math.max(0, Math.floor(positionS)),
        ...(durationS === undefined || !Number.isFinite(durationS) ? {} : { duration_s: Math.max(0, Math.floor(durationS)) }),
      }) as QueuedEvent & { type: 'film_progress' };
      // Under the viewer's key: once there is a token.
      if (transport.heldToken()) local.remember(event);
      else transport.refreshToken().then(() => local.remember(event), () => {});
    },
    flush: queue.flush,
    async filmProgress(filmId) {
      let server: FilmProgress | null;
      try {
        const res = await transport.call(`/v1/films/${encodeURIComponent(filmId)}/progress`, 'GET');
        if (res.status !== 200 && res.status !== 404) throw new Error(`film progress: HTTP ${res.status}`);
        server = res.status === 404 ? null : ((await res.json()) as FilmProgress);
      } catch (error) {
        // The API is unreachable: this browser's own report still answers "continue from".
        const own = local.report(filmId);
        if (own) return own;
        throw error;
      }
      return local.newer(server, local.report(filmId));
    },
    async recentFilms(limit) {
      // Without a limit, the API's own default (and the number it answers with).
      const res = await transport.call(`/v1/progress${limit === undefined ? '' : `?limit=${limit}`}`, 'GET');
      if (res.status !== 200) throw new Error(`recent films: HTTP ${res.status}`);
      const answer = (await res.json()) as { items: FilmProgress[]; limit: number };
      const films = new Map(answer.items.map((item) => [item.film_id, item]));
      for (const own of local.reports()) films.set(own.film_id, local.newer(films.get(own.film_id), own)!);
      return [...films.values()].sort((a, b) => (a.updated_at < b.updated_at ? 1 : -1)).slice(0, limit ?? answer.limit);
    },
    stats: () => ({ queued: queue.size(), ...queue.counts }),
    destroy() {
      queue.stop();
      transport.stop();
      win?.removeEventListener('pagehide', onPageHide);
      doc?.removeEventListener('visibilitychange', onVisibility);
    },
  };
}

let current: Tracker | undefined;
const active = (): Tracker => {
  if (!current) throw new Error('ugc: call init() first');
  return current;
};

/** Starts the page's tracker; later calls replace it. */
export function init(options: TrackerOptions): Tracker {
  current?.destroy();
  return (current = createTracker(options));
}
/** Queues one event on the page's tracker. */
export const track = <T extends EventType>(type: T, props: EventProps<T>): void => active().track(type, props);
/** Queues a film_progress event on the page's tracker. */
export const progress = (filmId: string, positionS: number, durationS?: number): void => active().progress(filmId, positionS, durationS);
/** Sends what the page's tracker has queued. */
export const flush = (): Promise<void> => active().flush();
