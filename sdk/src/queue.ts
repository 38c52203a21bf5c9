// The SDK's queue: events wait in a bounded queue and go out in batches; a batch that fails with a
// 5xx, 408, 429 or a network error is retried with backoff, with the same event ids.
import { bodyOf, byteSize } from './unload.ts';
import type { Transport } from './transport.ts';
import type { ClientEvent, QueuedEvent, TrackerStats } from './types.ts';

/** A random UUID v4; crypto.randomUUID exists only in secure contexts. */
function uuid(): string {
  if (typeof crypto.randomUUID === 'function') return crypto.randomUUID();
  const b = crypto.getRandomValues(new Uint8Array(16));
  b[6] = (b[6]! & 15) | 64;
  b[8] = (b[8]! & 63) | 128;
  const h = [...b].map((x) => x.toString(16).padStart(2, '0')).join('');
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-${h.slice(12, 16)}-${h.slice(16, 20)}-${h.slice(20)}`;
}

export interface QueueOptions {
  batchSize: number; flushIntervalMs: number; maxQueue: number; maxAttempts: number;
  retryBaseMs: number; retryMaxMs: number; random: () => number;
}

export interface EventQueue {
  /** Queues an event with a new event_id and the client time; returns it as queued. */
  enqueue(event: ClientEvent): QueuedEvent;
  /** Sends everything queued now; resolves when the queue is empty or waiting for a retry. */
  flush(): Promise<void>;
  /** Takes every queued event (the page is being hidden) and stops the timer. */
  takeAll(): QueuedEvent[];
  /** Puts events ahead of the queue (what an earlier load kept) and sends them. */
  putFront(events: QueuedEvent[]): void;
  /** Sends one batch, as an ordinary request or, with `unloadBody`, as fetch keepalive; resolves true if the queue may go on. */
  send(batch: QueuedEvent[], unloadBody?: string): Promise<boolean>;
  /** Whether the last send failed (the API is failing or unreachable). */
  failing(): boolean;
  /** Keepalive body bytes not settled yet. */
  keepaliveInFlight(): number;
  /** The counters; the caller adds what it sends itself (beaconed). */
  readonly counts: Omit<TrackerStats, 'queued'>;
  size(): number;
  stop(): void;
}

export function createQueue(transport: Transport, o: QueueOptions): EventQueue {
  const counts = { sent: 0, dropped: 0, rejected: 0, failed: 0, retries: 0, beaconed: 0 };
  let queue: QueuedEvent[] = [];
  let sending: Promise<void> | undefined;
  let timer: ReturnType<typeof setTimeout> | undefined;
  let retryAt = 0;
  /** Failed sends in a row, whichever batch: the backoff grows with them while the API is unreachable. */
  let failures = 0;
  /** Failed sends per event: batches sent side by side on page hide fail together, and are re-chunked later. */
  const tries = new WeakMap<QueuedEvent, number>();
  /** Keepalive body bytes not settled yet, across page hides. */
  let keepaliveBytes = 0;

  function schedule(ms: number): void {
    clearTimeout(timer);
    timer = setTimeout(() => void flush(), ms);
  }

  function bound(): void {
    if (queue.length > o.maxQueue) {
      counts.dropped += queue.length - o.maxQueue;
      queue = queue.slice(-o.maxQueue);
    }
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
      return n < o.maxAttempts;
    });
    counts.failed += batch.length - kept.length;
    if (kept.length === 0) return true;
    counts.retries++;
    queue = [...kept, ...queue];
    bound();
    const cap = Math.min(o.retryMaxMs, o.retryBaseMs * 2 ** (failures - 1));
    // Equal jitter: spread retries of many pages without ever retrying at once.
    const delay = Math.max(cap / 2 + o.random() * (cap / 2), retryAfterS * 1000);
    retryAt = Date.now() + delay;
    schedule(delay);
    return false;
  }

  async function send(batch: QueuedEvent[], unloadBody?: string): Promise<boolean> {
    // Counted before the first await, so the next chunk of a page hide sees it.
    const inFlight = unloadBody ? byteSize(unloadBody) : 0;
    keepaliveBytes += inFlight;
    let res;
    try {
      res = unloadBody ? await transport.postUnload(unloadBody) : await transport.call('/v1/events', 'POST', bodyOf(batch));
    } catch {
      return retryLater(batch, 0);
    } finally {
      keepaliveBytes -= inFlight;
    }
    const { status } = res;
    // The page lived on and the token in the body had expired: again as an ordinary request, which fetches a new one.
    if (unloadBody && status === 401) {
      transport.forgetToken();
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
          if (!(await send(queue.splice(0, o.batchSize)))) return;
        }
      } finally {
        sending = undefined;
      }
    })();
    return sending;
  }

  return {
    enqueue(event) {
      const queued = { ...event, event_id: uuid(), client_ts: new Date().toISOString() } as QueuedEvent;
      queue.push(queued);
      bound();
      if (Date.now() >= retryAt) {
        if (queue.length >= o.batchSize) void flush();
        else if (!timer) schedule(o.flushIntervalMs);
      }
      return queued;
    },
    flush,
    takeAll() {
      clearTimeout(timer);
      timer = undefined;
      return queue.splice(0);
    },
    putFront(events) {
      queue = [...events, ...queue].slice(-o.maxQueue);
      void flush();
    },
    send,
    failing: () => failures > 0,
    keepaliveInFlight: () => keepaliveBytes,
    counts,
    size: () => queue.length,
    stop: () => clearTimeout(timer),
  };
}
