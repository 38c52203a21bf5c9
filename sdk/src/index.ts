// The browser SDK of ugc-ingest: track events, report film progress, read "continue watching".
// No runtime dependencies; the event types come from the server's registry (type-only import).
import type { ClientEvent } from '../../shared/events.ts';

/** Every event type the ingest accepts. */
export type EventType = ClientEvent['type'];
/** The fields of one event type, without what the SDK fills in itself. */
export type EventProps<T extends EventType> = Omit<Extract<ClientEvent, { type: T }>, 'type' | 'event_id' | 'client_ts'>;

/** An event as the SDK sends it: the ingest's client event with its id and client time set. */
export type QueuedEvent = ClientEvent & { event_id: string; client_ts: string };

/** One film's position, as the read API answers it. */
export interface FilmProgress { film_id: string; position_s: number; duration_s: number | null; updated_at: string }

/** What `fetch` the SDK needs; a fake one in tests. */
export type FetchLike = (url: string, init: {
  method: string; headers: Record<string, string>; body?: string | Uint8Array; keepalive?: boolean;
}) => Promise<{ status: number; headers: { get(name: string): string | null }; json(): Promise<unknown> }>;

/** Where the last reported position of each film is kept: localStorage, or a test's map. */
export interface ProgressStore {
  getItem(key: string): string | null; setItem(key: string, value: string): void; removeItem(key: string): void;
  key(index: number): string | null; readonly length: number;
}

/** Something that emits `pagehide` / `visibilitychange` (window, document, or a test's EventTarget). */
export interface PageEvents { addEventListener(type: string, listener: () => void): void; removeEventListener(type: string, listener: () => void): void }

export interface TrackerOptions {
  /** The API's base URL, e.g. https://api.example.com (no trailing /v1). */
  endpoint: string;
  /** Returns the viewer's access token; called again when the API answers 401. */
  getToken: () => string | Promise<string>;
  /** Send as soon as this many events are queued (default 20; the ingest takes up to 500). */
  batchSize?: number;
  /** Send queued events at least this often (default 5000 ms). */
  flushIntervalMs?: number;
  /** Queue bound: beyond it the oldest events are dropped and counted (default 1000). */
  maxQueue?: number;
  /** Attempts per event on 5xx, 408, 429 / network errors before it is dropped and counted (default 8). */
  maxAttempts?: number;
  /** Backoff: the first retry waits about this long, doubling up to retryMaxMs (defaults 500 / 30000 ms). */
  retryBaseMs?: number;
  retryMaxMs?: number;
  /** Bytes of keepalive bodies the page may have in flight when it is hidden (browsers allow 64 KiB). */
  keepaliveBudget?: number;
  /**
   * How what is queued goes out when the page is hidden: `beacon` (navigator.sendBeacon) or
   * `fetch` (fetch keepalive). Both send a CORS-simple request (text/plain, the token in the
   * body), so no preflight has to finish first. Default: beacon where the browser has it.
   */
  unload?: 'beacon' | 'fetch';
  /** gzip ordinary batches with CompressionStream (default: where the browser has it). */
  gzip?: boolean;
  /** Keeps each film's last reported position, so a reload reads it before the server has it (default: localStorage; null: off). */
  storage?: ProgressStore | null;
  fetch?: FetchLike;
  sendBeacon?: (url: string, body: string) => boolean;
  /** Where pagehide is heard (default: window) and visibilitychange (default: document). */
  window?: PageEvents;
  document?: PageEvents & { visibilityState?: string };
  random?: () => number;
}

/** Counters a page can report or show; nothing is lost silently. */
export interface TrackerStats {
  queued: number;
  /** Events the ingest accepted (202). */
  sent: number;
  /** Oldest events dropped because the queue was full. */
  dropped: number;
  /** Events refused by the ingest (4xx but 408 and 429, or listed as rejected in a 202). */
  rejected: number;
  /** Events dropped after maxAttempts failed sends. */
  failed: number;
  /** Sends retried after a 5xx, 408, 429 or a network error. */
  retries: number;
  /** Events handed to sendBeacon on page hide: the browser sends them, the page never sees the answer. */
  beaconed: number;
}

export interface Tracker {
  /** Queues one event of a registered type. */
  track<T extends EventType>(type: T, props: EventProps<T>): void;
  /** Queues a film_progress event; seconds are rounded down to whole seconds. */
  progress(filmId: string, positionS: number, durationS?: number): void;
  /** Sends everything queued now; resolves when the queue is empty or waiting for a retry. */
  flush(): Promise<void>;
  /**
   * The viewer's latest position in a film, or null if they never watched it: the newer (by event
   * time) of the server's and the one this browser reported last, which the writer may not have
   * stored yet.
   */
  filmProgress(filmId: string): Promise<FilmProgress | null>;
  /** The viewer's recently watched films, newest first (merged with this browser's own reports, like filmProgress). */
  recentFilms(limit?: number): Promise<FilmProgress[]>;
  stats(): TrackerStats;
  /** Stops timers and page listeners; queued events stay unsent. */
  destroy(): void;
}

type Answer = Awaited<ReturnType<FetchLike>>;

/** A random UUID v4; crypto.randomUUID exists only in secure contexts. */
function uuid(): string {
  if (typeof crypto.randomUUID === 'function') return crypto.randomUUID();
  const b = crypto.getRandomValues(new Uint8Array(16));
  b[6] = (b[6]! & 15) | 64;
  b[8] = (b[8]! & 63) | 128;
  const h = [...b].map((x) => x.toString(16).padStart(2, '0')).join('');
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-${h.slice(12, 16)}-${h.slice(16, 20)}-${h.slice(20)}`;
}

const encoder = new TextEncoder();
// flushOnHide sizes bodies from these shapes: the empty body + each event and a comma, minus one.
const bodyOf = (events: QueuedEvent[]) => JSON.stringify({ events });
const unloadBodyOf = (token: string, events: QueuedEvent[]) => JSON.stringify({ token, events });

/** gzip bytes of a body, through the browser's CompressionStream. */
const gzipped = async (body: string) =>
  new Uint8Array(await new Response(new Blob([body]).stream().pipeThrough(new CompressionStream('gzip'))).arrayBuffer());

/** A token's claims, read (not verified): `sub` keeps viewers apart in one browser, `exp` says when to fetch the next. */
function claimsOf(token: string): { sub?: unknown; exp?: unknown } {
  try {
    return JSON.parse(atob(token.split('.')[1]!.replace(/-/g, '+').replace(/_/g, '/'))) as { sub?: unknown };
  } catch {
    return {};
  }
}
const subjectOf = (token: string) => String(claimsOf(token).sub ?? '');
/** Milliseconds until the token's `exp` by this browser's clock (Infinity without one). */
const msLeft = (token: string) => {
  const { exp } = claimsOf(token);
  return typeof exp === 'number' ? exp * 1000 - Date.now() : Infinity;
};

/** Creates a tracker: a bounded queue sent in batches, retried with backoff, flushed on page hide. */
export function createTracker(options: TrackerOptions): Tracker {
  const {
    endpoint, getToken, batchSize = 20, flushIntervalMs = 5_000, maxQueue = 1_000, maxAttempts = 8,
    retryBaseMs = 500, retryMaxMs = 30_000, keepaliveBudget = 65_536, random = Math.random,
  } = options;
  const g = globalThis as unknown as {
    fetch?: FetchLike; window?: PageEvents; document?: PageEvents & { visibilityState?: string };
    navigator?: { sendBeacon?(url: string, body: string): boolean; onLine?: boolean }; localStorage?: ProgressStore; CompressionStream?: unknown;
  };
  const send: FetchLike = options.fetch ?? ((url, init) => g.fetch!(url, init));
  const nav = g.navigator;
  const beacon = options.sendBeacon ?? (nav?.sendBeacon ? (url: string, body: string) => nav.sendBeacon!(url, body) : undefined);
  const useBeacon = (options.unload ?? 'beacon') === 'beacon' && beacon !== undefined;
  const gzip = options.gzip ?? typeof g.CompressionStream === 'function';
  let storage: ProgressStore | null | undefined;
  try {
    // Reading localStorage throws where storage is blocked (sandboxed frames, some private modes).
    storage = options.storage !== undefined ? options.storage : g.localStorage;
  } catch { /* no storage: read the server only */ }
  const win = options.window ?? g.window;
  const doc = options.document ?? g.document;
  const base = endpoint.replace(/\/+$/, '');
  const counts = { sent: 0, dropped: 0, rejected: 0, failed: 0, retries: 0, beaconed: 0 };
  let queue: QueuedEvent[] = [];
  let token: string | undefined;
  let sending: Promise<void> | undefined;
  let timer: ReturnType<typeof setTimeout> | undefined;
  let retryAt = 0;
  /** Failed sends in a row, whichever batch: the backoff grows with them while the API is unreachable. */
  let failures = 0;
  /** Failed sends per event: batches sent side by side on page hide fail together, and are re-chunked later. */
  const tries = new WeakMap<QueuedEvent, number>();
  /** Keepalive body bytes not settled yet, across flushOnHide calls. */
  let keepaliveBytes = 0;

  let tokenRequest: Promise<string> | undefined;
  let tokenTimer: ReturnType<typeof setTimeout> | undefined;
  // One getToken() at a time; the result is kept so a send on page hide needs no await. The next
  // one is fetched ahead of `exp` (a minute before, or at 3/4 of a short life; at least 5 s on,
  // so an app handing out the same old token is not asked in a loop), so the token a page holds
  // when it is hidden is still valid: a beacon cannot read a 401 and send again.
  const refreshToken = () => (tokenRequest ??= (async () => {
    try {
      const fresh = (token = await getToken());
      const left = msLeft(fresh);
      clearTimeout(tokenTimer);
      if (left < Infinity) tokenTimer = setTimeout(() => refreshToken().catch(() => {}), Math.max(left - 60_000, left * 0.75, 5_000));
      return fresh;
    } finally {
      tokenRequest = undefined;
    }
  })());

  /** One request with the current token (a body gzipped if it may); on 401 the token is fetched again and the request repeated once. */
  async function call(path: string, method: string, body?: string): Promise<Answer> {
    const payload = body && gzip ? await gzipped(body) : body;
    const request = async () => send(base + path, {
      method,
      headers: {
        authorization: `Bearer ${token && msLeft(token) > 0 ? token : await refreshToken()}`,
        ...(body ? { 'content-type': 'application/json', ...(gzip ? { 'content-encoding': 'gzip' } : {}) } : {}),
      },
      body: payload,
    });
    const res = await request();
    if (res.status !== 401) return res;
    await refreshToken();
    return request();
  }

  function schedule(ms: number): void {
    clearTimeout(timer);
    timer = setTimeout(() => void flush(), ms);
  }

  function enqueue(event: ClientEvent): void {
    queue.push({ ...event, event_id: uuid(), client_ts: new Date().toISOString() } as QueuedEvent);
    if (queue.length > maxQueue) {
      counts.dropped += queue.length - maxQueue;
      queue = queue.slice(-maxQueue);
    }
    if (Date.now() < retryAt) return;
    if (queue.length >= batchSize) void flush();
    else if (!timer) schedule(flushIntervalMs);
  }

  /**
   * Puts a failed batch back at the head of the queue (keeping the bound) and waits before the
   * next try. Events tried maxAttempts times are dropped instead; resolves true if none is left
   * to retry: the queue may go on.
   */
  function retryLater(batch: QueuedEvent[], retryAfterS: number): boolean {
    failures++;
    const kept = batch.filter((event) => {
      const n = (tries.get(event) ?? 0) + 1;
      tries.set(event, n);
      return n < maxAttempts;
    });
    counts.failed += batch.length - kept.length;
    if (kept.length === 0) return true;
    counts.retries++;
    queue = [...kept, ...queue];
    if (queue.length > maxQueue) {
      counts.dropped += queue.length - maxQueue;
      queue = queue.slice(-maxQueue);
    }
    const cap = Math.min(retryMaxMs, retryBaseMs * 2 ** (failures - 1));
    // Equal jitter: spread retries of many pages without ever retrying at once.
    const delay = Math.max(cap / 2 + random() * (cap / 2), retryAfterS * 1000);
    retryAt = Date.now() + delay;
    schedule(delay);
    return false;
  }

  /**
   * Sends one batch; resolves true if the queue may go on. With `unload` (the body of the unload
   * form), as fetch keepalive with no custom header: a CORS-simple request.
   */
  async function sendBatch(batch: QueuedEvent[], unload?: string): Promise<boolean> {
    // Counted before the first await, so flushOnHide sees it for its next chunk.
    const inFlight = unload ? encoder.encode(unload).length : 0;
    keepaliveBytes += inFlight;
    let res: Answer;
    try {
      res = unload
        ? await send(`${base}/v1/events`, { method: 'POST', headers: { 'content-type': 'text/plain' }, body: unload, keepalive: true })
        : await call('/v1/events', 'POST', bodyOf(batch));
    } catch {
      return retryLater(batch, 0);
    } finally {
      keepaliveBytes -= inFlight;
    }
    const { status } = res;
    // The page lived on and the token in the body had expired: again as an ordinary request, which fetches a new one.
    if (unload && status === 401) {
      token = undefined;
      return retryLater(batch, 0);
    }
    // 408 and 429 (stage throttling) say "later", like a 5xx.
    if (status >= 500 || status === 408 || status === 429) return retryLater(batch, Number(res.headers.get('retry-after')) || 0);
    failures = 0;
    if (status === 202 || status === 200) {
      const answer = (await res.json().catch(() => ({}))) as { accepted?: number; rejected?: unknown[] };
      const rejected = answer.rejected?.length ?? 0;
      counts.sent += answer.accepted ?? batch.length - rejected;
      counts.rejected += rejected;
    } else {
      // Other 4xx: the same body would be refused again; never retried.
      counts.rejected += batch.length;
    }
    return true;
  }

  function flush(): Promise<void> {
    clearTimeout(timer);
    timer = undefined;
    retryAt = 0;
    sending ??= (async () => {
      try {
        while (queue.length > 0) {
          if (!(await sendBatch(queue.splice(0, batchSize)))) return;
        }
      } finally {
        sending = undefined;
      }
    })();
    return sending;
  }

  /**
   * The page may be going away: send everything now, in the unload form (text/plain, the token in
   * the body), which needs no preflight, so the browser can finish the requests after unload.
   * Each chunk goes one way only: sendBeacon (or fetch keepalive), or, when it refuses or does not
   * fit, an ordinary request. Browsers refuse keepalive bodies beyond 64 KiB in flight in total,
   * including those of an earlier call (visibilitychange, then pagehide): chunks fill what is
   * left of the budget, the rest go as ordinary requests (of up to a budget each), re-queued if
   * they fail. Without a token yet, everything goes as ordinary requests.
   */
  function flushOnHide(): void {
    if (queue.length === 0) return;
    clearTimeout(timer);
    timer = undefined;
    const events = queue.splice(0);
    // An expired token (a timer throttled in a background tab, a laptop that slept) would be a 401
    // no beacon can read: such a hide sends ordinary requests, which fetch a new token.
    const held = token && msLeft(token) > 0 ? token : undefined;
    // What may not arrive (the API was failing, the browser is offline, no valid token) is also
    // kept for the next load of the page, which sends it again with the same event_ids.
    if (failures || !held || nav?.onLine === false) keep(events);
    // Bytes of each event in a body, with its comma: a body of n events is the empty body - 1 + their sum.
    const sizes = events.map((event) => encoder.encode(JSON.stringify(event)).length + 1);
    const empty = encoder.encode(held ? unloadBodyOf(held, []) : bodyOf([])).length - 1;
    for (let i = 0; i < events.length;) {
      const room = keepaliveBudget - keepaliveBytes;
      let size = empty + sizes[i]!;
      const fits = held !== undefined && size <= room;
      const limit = fits ? room : keepaliveBudget;
      let end = i + 1;
      while (end < events.length && end - i < batchSize && size + sizes[end]! <= limit) size += sizes[end++]!;
      const chunk = events.slice(i, end);
      i = end;
      const body = fits ? unloadBodyOf(held, chunk) : '';
      if (fits && useBeacon && beacon!(`${base}/v1/events`, body)) {
        counts.beaconed += chunk.length;
        continue;
      }
      // An ordinary request needs a preflight, which Chromium, Firefox and WebKit all cancel when
      // the page closes or navigates (tests/e2e/engines.test.ts: 0 of 12 each): a chunk the beacon
      // refused (its quota) goes as fetch keepalive, no preflight either, and is kept for the next load too.
      if (!fits || useBeacon) keep(chunk);
      void sendBatch(chunk, body || undefined);
    }
  }

  // This browser's own reports: one key per viewer and film.
  const storageKey = (filmId: string) => `ugc:progress:${subjectOf(token ?? '')}:${filmId}`;
  const storageRead = (key: string): FilmProgress | undefined => {
    try {
      const value = storage?.getItem(key);
      return value ? (JSON.parse(value) as FilmProgress) : undefined;
    } catch {
      return undefined;
    }
  };
  const storageTry = (act: (store: ProgressStore) => void) => {
    try {
      if (storage) act(storage);
    } catch { /* full or blocked: the server's position still answers */ }
  };
  function remember(event: QueuedEvent & { type: 'film_progress' }): void {
    const save = () => storageTry((store) => store.setItem(storageKey(event.film_id), JSON.stringify({
      film_id: event.film_id, position_s: event.position_s, duration_s: event.duration_s ?? null, updated_at: event.client_ts,
    })));
    if (token) save();
    else refreshToken().then(save, () => {});
  }
  // Events a hidden page could not be sure to deliver, per viewer, for the next load.
  const queueKey = () => `ugc:queue:${subjectOf(token ?? '')}`;
  function keep(events: QueuedEvent[]): void {
    if (token) storageTry((store) => {
      const kept = new Map([...(JSON.parse(store.getItem(queueKey()) ?? '[]') as QueuedEvent[]), ...events].map((e) => [e.event_id, e]));
      store.setItem(queueKey(), JSON.stringify([...kept.values()].slice(-maxQueue)));
    });
  }
  /** Takes what an earlier load of the page kept (this tab sends it now) and sends it. */
  function restore(): void {
    storageTry((store) => {
      const kept = JSON.parse(store.getItem(queueKey()) ?? '[]') as QueuedEvent[];
      store.removeItem(queueKey());
      if (kept.length === 0) return;
      queue = [...kept, ...queue].slice(-maxQueue);
      void flush();
    });
  }
  /** This browser's reports of the current viewer, each newer than the server's (or with none). */
  function ownReports(): FilmProgress[] {
    const prefix = storageKey('');
    const found: FilmProgress[] = [];
    storageTry((store) => {
      for (let i = 0; i < store.length; i++) {
        const key = store.key(i);
        const report = key?.startsWith(prefix) ? storageRead(key) : undefined;
        if (report) found.push(report);
      }
    });
    return found;
  }
  /** The newer of the server's and this browser's position (by event time); a local report the server caught up with is forgotten. */
  function newer(server: FilmProgress | null | undefined, own: FilmProgress | undefined): FilmProgress | null {
    if (!own) return server ?? null;
    if (server && server.updated_at >= own.updated_at) {
      storageTry((store) => store.removeItem(storageKey(own.film_id)));
      return server;
    }
    return own;
  }

  // Fetched now, so the first send on page hide already has it; then what an earlier load kept goes out.
  refreshToken().then(restore, () => {});
  const onPageHide = () => flushOnHide();
  const onVisibility = () => { if (doc?.visibilityState === 'hidden') flushOnHide(); };
  win?.addEventListener('pagehide', onPageHide);
  doc?.addEventListener('visibilitychange', onVisibility);

  return {
    track: (type, props) => enqueue({ ...props, type } as unknown as ClientEvent),
    progress(filmId, positionS, durationS) {
      if (!Number.isFinite(positionS)) return;
      enqueue({
        type: 'film_progress', film_id: filmId, position_s: Math.max(0, Math.floor(positionS)),
        ...(durationS === undefined || !Number.isFinite(durationS) ? {} : { duration_s: Math.max(0, Math.floor(durationS)) }),
      });
      remember(queue.at(-1) as QueuedEvent & { type: 'film_progress' });
    },
    flush,
    async filmProgress(filmId) {
      let server: FilmProgress | null;
      try {
        const res = await call(`/v1/films/${encodeURIComponent(filmId)}/progress`, 'GET');
        if (res.status !== 200 && res.status !== 404) throw new Error(`film progress: HTTP ${res.status}`);
        server = res.status === 404 ? null : ((await res.json()) as FilmProgress);
      } catch (error) {
        // The API is unreachable: this browser's own report still answers "continue from".
        const own = storageRead(storageKey(filmId));
        if (own) return own;
        throw error;
      }
      return newer(server, storageRead(storageKey(filmId)));
    },
    async recentFilms(limit = 20) {
      const res = await call(`/v1/progress?limit=${limit}`, 'GET');
      if (res.status !== 200) throw new Error(`recent films: HTTP ${res.status}`);
      const films = new Map(((await res.json()) as { items: FilmProgress[] }).items.map((item) => [item.film_id, item]));
      for (const own of ownReports()) films.set(own.film_id, newer(films.get(own.film_id), own)!);
      return [...films.values()].sort((a, b) => (a.updated_at < b.updated_at ? 1 : -1)).slice(0, limit);
    },
    stats: () => ({ queued: queue.length, ...counts }),
    destroy() {
      clearTimeout(timer);
      clearTimeout(tokenTimer);
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
