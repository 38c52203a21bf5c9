// The SDK's public types. The event and answer types are the server's (type-only imports: nothing
// of the server is bundled).
import type { FilmProgress } from '../../shared/api.ts';
import type { ClientEvent } from '../../shared/events.ts';

/** Every event type the ingest accepts. */
export type EventType = ClientEvent['type'];
/** The fields of one event type, without what the SDK fills in itself. */
export type EventProps<T extends EventType> = Omit<Extract<ClientEvent, { type: T }>, 'type' | 'event_id' | 'client_ts'>;

/** An event as the SDK sends it: the ingest's client event with its id and client time set. */
export type QueuedEvent = ClientEvent & { event_id: string; client_ts: string };

/** One film's position, as the read API answers it; one event as the ingest takes it. */
export type { ClientEvent, FilmProgress };

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
  /** The viewer's recently watched films, newest first (merged with this browser's own reports, like filmProgress); without a limit, the API's default. */
  recentFilms(limit?: number): Promise<FilmProgress[]>;
  stats(): TrackerStats;
  /** Stops timers and page listeners; queued events stay unsent. */
  destroy(): void;
}

/** An answer as the SDK reads it. */
export type Answer = Awaited<ReturnType<FetchLike>>;
