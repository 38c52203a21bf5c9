import { gunzipSync } from 'node:zlib';
import fc from 'fast-check';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { createTracker, type FetchLike, type QueuedEvent, type TrackerOptions } from '../../sdk/src/index.ts';
import { clientEvent } from '../../shared/events.ts';

type Reply = number | 'network' | { status: number; body?: unknown; headers?: Record<string, string> };
interface Call { status: number | 'network'; url: string; method: string; headers: Record<string, string>; body?: string; keepalive?: boolean; events: QueuedEvent[]; token?: string }

/** A request's body as text (inflated if gzipped), its events and, in the unload form, its token. */
function bodyOf(init: Parameters<FetchLike>[1]): { body: string | undefined; events: QueuedEvent[]; token?: string } {
  if (init.body === undefined) return { body: undefined, events: [] };
  const body = typeof init.body === 'string' ? init.body : gunzipSync(init.body).toString('utf8');
  const { events, token } = JSON.parse(body) as { events: QueuedEvent[]; token?: string };
  return { body, events, ...(token === undefined ? {} : { token }) };
}

/** A fake fetch: answers from a script (then 202 for everything), records every request. */
function fakeFetch(script: Reply[] = []) {
  const calls: Call[] = [];
  const fetch: FetchLike = async (url, init) => {
    const parsed = bodyOf(init);
    const { events } = parsed;
    const reply = script.shift() ?? 202;
    calls.push({ status: typeof reply === 'object' ? reply.status : reply, url, ...init, ...parsed });
    if (reply === 'network') throw new TypeError('Failed to fetch');
    const { status, body, headers = {} } = typeof reply === 'number' ? { status: reply, body: undefined } : reply;
    const answer = body ?? (status === 202 ? { accepted: events.length, rejected: [] } : { code: 'x', message: 'x' });
    return { status, headers: { get: (name: string) => headers[name.toLowerCase()] ?? null }, json: async () => answer };
  };
  return { fetch, calls };
}

function tracker(options: Partial<TrackerOptions> & { fetch: FetchLike }) {
  return createTracker({ endpoint: 'https://api.test/', getToken: () => 'token-1', random: () => 0, gzip: false, storage: null, ...options });
}

/**
 * A fetch that answers 202 only when release() is called, and refuses a keepalive request whose body
 * would take the keepalive bytes in flight beyond 64 KiB, as browsers do.
 */
function pendingFetch() {
  const calls: Call[] = [];
  const waiting: (() => void)[] = [];
  let keepaliveInFlight = 0;
  const fetch: FetchLike = (url, init) => {
    const parsed = bodyOf(init);
    const { events } = parsed;
    const size = init.keepalive ? new TextEncoder().encode(parsed.body!).length : 0;
    if (keepaliveInFlight + size > 65_536) {
      calls.push({ status: 'network', url, ...init, ...parsed });
      return Promise.reject(new TypeError('Failed to fetch'));
    }
    keepaliveInFlight += size;
    calls.push({ status: 202, url, ...init, ...parsed });
    return new Promise((resolve) => waiting.push(() => {
      keepaliveInFlight -= size;
      resolve({ status: 202, headers: { get: () => null }, json: async () => ({ accepted: events.length, rejected: [] }) });
    }));
  };
  return { fetch, calls, release: () => { for (const answer of waiting.splice(0)) answer(); } };
}

const sentIds = (calls: Call[]) => calls.flatMap((c) => c.events.map((e) => e.event_id));
/** How many requests carried each event. */
const triesById = (calls: Call[]) => {
  const tries = new Map<string, number>();
  for (const id of sentIds(calls)) tries.set(id, (tries.get(id) ?? 0) + 1);
  return tries;
};

beforeEach(() => { vi.useFakeTimers(); });
afterEach(() => { vi.useRealTimers(); });

describe('sdk: batching', () => {
  it('sends one POST /v1/events per full batch, with the token, JSON body and events the ingest registry accepts', async () => {
    const { fetch, calls } = fakeFetch();
    const t = tracker({ fetch, batchSize: 3 });
    t.track('page_view', { url: '/films' });
    t.track('click', { url: '/films', element: 'play' });
    expect(calls).toHaveLength(0);
    t.progress('tt0111161', 61.9, 8520.4);
    await vi.advanceTimersByTimeAsync(0);
    expect(calls).toHaveLength(1);
    expect(calls[0]).toMatchObject({ url: 'https://api.test/v1/events', method: 'POST', headers: { authorization: 'Bearer token-1', 'content-type': 'application/json' } });
    expect(calls[0]!.events.map((e) => e.type)).toEqual(['page_view', 'click', 'film_progress']);
    expect(calls[0]!.events[2]).toMatchObject({ film_id: 'tt0111161', position_s: 61, duration_s: 8520 });
    for (const event of calls[0]!.events) expect(clientEvent.safeParse(event).success).toBe(true);
    expect(new Set(sentIds(calls)).size).toBe(3);
    expect(t.stats()).toMatchObject({ queued: 0, sent: 3 });
  });

  it('sends a partial batch after the flush interval, not before', async () => {
    const { fetch, calls } = fakeFetch();
    const t = tracker({ fetch, batchSize: 10, flushIntervalMs: 5_000 });
    t.track('search', { query: 'heat', results_count: 3 });
    await vi.advanceTimersByTimeAsync(4_999);
    expect(calls).toHaveLength(0);
    await vi.advanceTimersByTimeAsync(1);
    expect(calls).toHaveLength(1);
    expect(t.stats()).toMatchObject({ queued: 0, sent: 1 });
  });

  it('drains a queue larger than batchSize in consecutive batches, in order', async () => {
    const { fetch, calls } = fakeFetch();
    const t = tracker({ fetch, batchSize: 4, flushIntervalMs: 60_000 });
    for (let i = 0; i < 10; i++) t.progress('f', i);
    await t.flush();
    expect(calls.map((c) => c.events.length)).toEqual([4, 4, 2]);
    expect(calls.flatMap((c) => c.events.map((e) => 'position_s' in e && e.position_s))).toEqual([0, 1, 2, 3, 4, 5, 6, 7, 8, 9]);
  });
});

describe('sdk: retries', () => {
  it('retries 503 and network errors with backoff, keeping the same event_ids, then counts them sent', async () => {
    const { fetch, calls } = fakeFetch([503, 'network', 202]);
    const t = tracker({ fetch, retryBaseMs: 1_000 });
    t.progress('f', 10);
    t.track('film_rating', { film_id: 'f', score: 9 });
    await t.flush();
    expect(calls).toHaveLength(1);
    // random() = 0: equal jitter waits half the cap: 500 ms, then 1000 ms.
    await vi.advanceTimersByTimeAsync(499);
    expect(calls).toHaveLength(1);
    await vi.advanceTimersByTimeAsync(1);
    expect(calls).toHaveLength(2);
    await vi.advanceTimersByTimeAsync(1_000);
    expect(calls).toHaveLength(3);
    expect(calls[1]!.events).toEqual(calls[0]!.events);
    expect(calls[2]!.events).toEqual(calls[0]!.events);
    expect(t.stats()).toMatchObject({ sent: 2, retries: 2, queued: 0, failed: 0 });
  });

  it('waits at least Retry-After before retrying a 503', async () => {
    const { fetch, calls } = fakeFetch([{ status: 503, headers: { 'retry-after': '3' } }]);
    const t = tracker({ fetch, retryBaseMs: 100 });
    t.progress('f', 1);
    await t.flush();
    await vi.advanceTimersByTimeAsync(2_999);
    expect(calls).toHaveLength(1);
    await vi.advanceTimersByTimeAsync(1);
    expect(calls).toHaveLength(2);
  });

  it('retries a 429 (stage throttling, honouring Retry-After) and a 408 like a 503, then counts the events sent', async () => {
    for (const [reply, waitMs] of [[{ status: 429, headers: { 'retry-after': '2' } }, 2_000], [{ status: 408 }, 50]] as const) {
      const { fetch, calls } = fakeFetch([reply]);
      const t = tracker({ fetch, retryBaseMs: 100 });
      t.progress('f', 1);
      t.progress('f', 2);
      await t.flush();
      await vi.advanceTimersByTimeAsync(waitMs - 1);
      expect(calls).toHaveLength(1);
      await vi.advanceTimersByTimeAsync(1);
      expect(calls).toHaveLength(2);
      expect(calls[1]!.events).toEqual(calls[0]!.events);
      expect(t.stats()).toMatchObject({ sent: 2, rejected: 0, retries: 1, failed: 0, queued: 0 });
      t.destroy();
    }
  });

  it('never retries a 4xx: the batch is dropped and counted as rejected', async () => {
    for (const status of [400, 403, 413, 415, 422]) {
      const { fetch, calls } = fakeFetch([status]);
      const t = tracker({ fetch });
      t.progress('f', 1);
      t.progress('f', 2);
      await t.flush();
      await vi.advanceTimersByTimeAsync(120_000);
      expect(calls).toHaveLength(1);
      expect(t.stats()).toMatchObject({ rejected: 2, sent: 0, retries: 0, queued: 0 });
      t.destroy();
    }
  });

  it('counts the events a 202 lists as rejected', async () => {
    const { fetch } = fakeFetch([{ status: 202, body: { accepted: 1, rejected: [{ index: 1, code: 'invalid_event', message: 'm' }] } }]);
    const t = tracker({ fetch });
    t.progress('f', 1);
    t.progress('f', 2);
    await t.flush();
    expect(t.stats()).toMatchObject({ sent: 1, rejected: 1 });
  });

  it('gives up after maxAttempts and counts the batch as failed', async () => {
    const { fetch, calls } = fakeFetch([503, 503, 503]);
    const t = tracker({ fetch, maxAttempts: 3, retryBaseMs: 10 });
    t.progress('f', 1);
    await t.flush();
    await vi.advanceTimersByTimeAsync(60_000);
    expect(calls).toHaveLength(3);
    expect(t.stats()).toMatchObject({ failed: 1, sent: 0, retries: 2, queued: 0 });
  });

  it('on 401 asks getToken for a new token and repeats the request once with it', async () => {
    const { fetch, calls } = fakeFetch([401]);
    const tokens = ['expired', 'fresh'];
    const getToken = vi.fn(async () => tokens.shift()!);
    const t = tracker({ fetch, getToken });
    t.progress('f', 5);
    await t.flush();
    expect(getToken).toHaveBeenCalledTimes(2);
    expect(calls.map((c) => c.headers.authorization)).toEqual(['Bearer expired', 'Bearer fresh']);
    expect(calls[1]!.events).toEqual(calls[0]!.events);
    expect(t.stats()).toMatchObject({ sent: 1, rejected: 0 });
  });

  it('drops a batch still refused with 401 after the refresh, without looping', async () => {
    const { fetch, calls } = fakeFetch([401, 401]);
    const t = tracker({ fetch });
    t.progress('f', 5);
    await t.flush();
    await vi.advanceTimersByTimeAsync(60_000);
    expect(calls).toHaveLength(2);
    expect(t.stats()).toMatchObject({ rejected: 1, sent: 0 });
  });
});

describe('sdk: bounded queue', () => {
  it('keeps at most maxQueue events while the API is down, dropping the oldest and counting them', async () => {
    const { fetch, calls } = fakeFetch(['network']);
    const t = tracker({ fetch, maxQueue: 5, batchSize: 50, retryBaseMs: 10_000 });
    t.progress('f', 0);
    await t.flush(); // fails; the event waits for its retry
    for (let i = 1; i <= 7; i++) t.progress('f', i);
    expect(t.stats()).toMatchObject({ queued: 5, dropped: 3 });
    await vi.advanceTimersByTimeAsync(10_000);
    expect(calls).toHaveLength(2);
    expect(calls[1]!.events.map((e) => 'position_s' in e && e.position_s)).toEqual([3, 4, 5, 6, 7]);
    expect(t.stats()).toMatchObject({ queued: 0, sent: 5, dropped: 3 });
  });

  it('accounts for every tracked event exactly once under any mix of failures (property)', async () => {
    await fc.assert(fc.asyncProperty(
      fc.array(fc.constantFrom<Reply>(202, 503, 500, 'network', 400, 401), { maxLength: 30 }),
      fc.integer({ min: 1, max: 40 }),
      fc.integer({ min: 1, max: 10 }),
      async (script, events, maxQueue) => {
        const { fetch, calls } = fakeFetch([...script]);
        const t = tracker({ fetch, maxQueue, batchSize: 3, maxAttempts: 4, retryBaseMs: 10, retryMaxMs: 100 });
        for (let i = 0; i < events; i++) { t.progress('f', i); await vi.advanceTimersByTimeAsync(1); }
        await vi.advanceTimersByTimeAsync(120_000);
        const s = t.stats();
        t.destroy();
        expect(s.queued).toBe(0);
        expect(s.sent + s.dropped + s.rejected + s.failed).toBe(events);
        // An event_id is accepted at most once: retries reuse it, nothing is sent after a 202.
        const accepted = calls.filter((c) => c.status === 202);
        expect(new Set(sentIds(accepted)).size).toBe(sentIds(accepted).length);
      },
    ), { numRuns: 100 });
  });
});

describe('sdk: page hide', () => {
  it('flushes the queue with keepalive on pagehide, synchronously, before the page is gone', async () => {
    const { fetch, calls } = fakeFetch();
    const window = new EventTarget();
    const t = tracker({ fetch, window, flushIntervalMs: 60_000 });
    t.progress('f', 1);
    await t.flush(); // the first send fetches and caches the token
    t.progress('f', 2);
    t.track('click', { url: '/watch', element: 'close' });
    window.dispatchEvent(new Event('pagehide'));
    // No await in between: the browser may freeze the page right after the handler returns.
    expect(calls).toHaveLength(2);
    expect(calls[1]).toMatchObject({ keepalive: true, method: 'POST' });
    expect(calls[1]!.events.map((e) => e.type)).toEqual(['film_progress', 'click']);
    expect(t.stats().queued).toBe(0);
  });

  it('fetches the token at init, so a page hidden before its first send still sends synchronously', async () => {
    const { fetch, calls } = fakeFetch();
    const window = new EventTarget();
    const getToken = vi.fn(async () => 'early');
    const t = tracker({ fetch, window, getToken, flushIntervalMs: 60_000 });
    await vi.advanceTimersByTimeAsync(0);
    t.progress('f', 42);
    window.dispatchEvent(new Event('pagehide'));
    expect(calls).toHaveLength(1);
    expect(calls[0]).toMatchObject({ keepalive: true, token: 'early', headers: { 'content-type': 'text/plain' } });
    expect(getToken).toHaveBeenCalledTimes(1);
  });

  it('flushes when the document becomes hidden, and not when it becomes visible', async () => {
    const { fetch, calls } = fakeFetch();
    const document = Object.assign(new EventTarget(), { visibilityState: 'visible' });
    const t = tracker({ fetch, document, flushIntervalMs: 60_000, getToken: () => 'tok' });
    t.progress('f', 1);
    document.dispatchEvent(new Event('visibilitychange'));
    await vi.advanceTimersByTimeAsync(0);
    expect(calls).toHaveLength(0);
    document.visibilityState = 'hidden';
    document.dispatchEvent(new Event('visibilitychange'));
    await vi.advanceTimersByTimeAsync(0);
    expect(calls).toHaveLength(1);
    expect(calls[0]!.keepalive).toBe(true);
  });

  it('keeps keepalive bodies within the 64 KiB budget; what does not fit goes as ordinary requests, each event once', async () => {
    const { fetch, calls } = fakeFetch();
    const window = new EventTarget();
    const t = tracker({ fetch, window, batchSize: 500, flushIntervalMs: 60_000, maxQueue: 1_000 });
    t.progress('warm', 0);
    await t.flush();
    const query = 'q'.repeat(480);
    for (let i = 0; i < 300; i++) t.track('search', { query, results_count: i });
    window.dispatchEvent(new Event('pagehide'));
    const hide = calls.slice(1);
    const keepaliveBytes = hide.filter((c) => c.keepalive).reduce((sum, c) => sum + new TextEncoder().encode(c.body!).length, 0);
    expect(keepaliveBytes).toBeLessThanOrEqual(65_536);
    expect(keepaliveBytes).toBeGreaterThan(60_000);
    expect(hide.some((c) => !c.keepalive)).toBe(true);
    const ids = sentIds(hide);
    expect(ids).toHaveLength(300);
    expect(new Set(ids).size).toBe(300);
  });

  it('counts keepalive bytes still in flight from an earlier hide: no request beyond 64 KiB, every event sent once', async () => {
    const { fetch, calls, release } = pendingFetch();
    const window = new EventTarget();
    const document = Object.assign(new EventTarget(), { visibilityState: 'hidden' });
    const t = tracker({ fetch, window, document, batchSize: 500, flushIntervalMs: 60_000 });
    await vi.advanceTimersByTimeAsync(0); // the token is cached
    // Events of one size: the first hide leaves less than one event's body of the budget.
    const query = 'q'.repeat(480);
    for (let i = 0; i < 150; i++) t.track('search', { query, results_count: 0 });
    document.dispatchEvent(new Event('visibilitychange'));
    t.track('search', { query, results_count: 0 }); // the last event, while those bodies are in flight
    window.dispatchEvent(new Event('pagehide'));
    expect(calls.filter((c) => c.status === 'network')).toEqual([]);
    expect(calls.filter((c) => c.keepalive).reduce((sum, c) => sum + new TextEncoder().encode(c.body!).length, 0)).toBeGreaterThan(60_000);
    expect(t.stats().queued).toBe(0);
    release();
    await vi.advanceTimersByTimeAsync(0);
    // Settled bodies free the budget for the next hide.
    t.track('click', { url: '/watch', element: 'close' });
    window.dispatchEvent(new Event('pagehide'));
    expect(calls.at(-1)).toMatchObject({ keepalive: true, status: 202 });
    release();
    await vi.advanceTimersByTimeAsync(60_000);
    expect(calls.filter((c) => c.status === 'network')).toEqual([]);
    expect([...triesById(calls).values()]).toEqual(Array(152).fill(1));
    expect(t.stats()).toMatchObject({ sent: 152, retries: 0, failed: 0, dropped: 0, queued: 0 });
  });

  it('counts tries per batch: batches sent side by side on hide are each tried maxAttempts times before they count as failed', async () => {
    // Offline throughout, or but for one of the 8 batches sent on hide (its success resets no other batch's tries).
    for (const hideReplies of [Array(8).fill('network'), ['network', 'network', 202, ...Array(5).fill('network')]] as Reply[][]) {
      const { fetch, calls } = fakeFetch(['network', ...hideReplies, ...Array(200).fill('network')]);
      const window = new EventTarget();
      const t = tracker({ fetch, window, batchSize: 20, maxAttempts: 8, retryBaseMs: 10, retryMaxMs: 1_000, flushIntervalMs: 60_000 });
      for (let i = 0; i < 160; i++) t.progress('f', i);
      await vi.advanceTimersByTimeAsync(0); // the first full batch fails once; all 160 wait for its retry
      expect(t.stats()).toMatchObject({ queued: 160, retries: 1 });
      window.dispatchEvent(new Event('pagehide'));
      await vi.advanceTimersByTimeAsync(0);
      const sent = hideReplies.includes(202) ? 20 : 0;
      expect(calls).toHaveLength(9);
      expect(t.stats()).toMatchObject({ sent, failed: 0, queued: 160 - sent });
      await vi.advanceTimersByTimeAsync(600_000);
      const accepted = new Set(sentIds(calls.filter((c) => c.status === 202)));
      const tries = [...triesById(calls)].filter(([id]) => !accepted.has(id)).map(([, n]) => n);
      expect(tries).toEqual(Array(160 - sent).fill(8));
      expect(t.stats()).toMatchObject({ sent, failed: 160 - sent, queued: 0 });
      t.destroy();
    }
  });
});

describe('sdk: the unload form (no preflight)', () => {
  it('sends page-hide batches as fetch keepalive, text/plain with the token in the body and no Authorization header', async () => {
    const { fetch, calls } = fakeFetch();
    const window = new EventTarget();
    const t = tracker({ fetch, window, unload: 'fetch', flushIntervalMs: 60_000 });
    await vi.advanceTimersByTimeAsync(0);
    t.progress('f', 7);
    window.dispatchEvent(new Event('pagehide'));
    expect(calls).toHaveLength(1);
    expect(calls[0]).toMatchObject({ url: 'https://api.test/v1/events', method: 'POST', keepalive: true, token: 'token-1' });
    // CORS-simple: no header beyond a safelisted Content-Type.
    expect(calls[0]!.headers).toEqual({ 'content-type': 'text/plain' });
    expect(calls[0]!.events.map((e) => e.type)).toEqual(['film_progress']);
    await vi.advanceTimersByTimeAsync(0);
    expect(t.stats()).toMatchObject({ sent: 1, queued: 0 });
  });

  it('with a beacon, hands each chunk to sendBeacon once and never also to fetch; what sendBeacon refuses goes as fetch keepalive', async () => {
    const { fetch, calls } = fakeFetch();
    const beacons: { url: string; body: string }[] = [];
    let accept = true;
    const sendBeacon = (url: string, body: string) => { if (accept) beacons.push({ url, body }); return accept; };
    const window = new EventTarget();
    const t = tracker({ fetch, window, sendBeacon, flushIntervalMs: 60_000 });
    await vi.advanceTimersByTimeAsync(0);
    t.progress('f', 1);
    t.track('click', { url: '/watch', element: 'close' });
    window.dispatchEvent(new Event('pagehide'));
    expect(calls).toHaveLength(0);
    expect(beacons).toHaveLength(1);
    expect(beacons[0]!.url).toBe('https://api.test/v1/events');
    const body = JSON.parse(beacons[0]!.body) as { token: string; events: QueuedEvent[] };
    expect(body.token).toBe('token-1');
    expect(body.events.map((e) => e.type)).toEqual(['film_progress', 'click']);
    expect(t.stats()).toMatchObject({ beaconed: 2, queued: 0 });
    accept = false;
    t.progress('f', 2);
    window.dispatchEvent(new Event('pagehide'));
    expect(beacons).toHaveLength(1);
    await vi.advanceTimersByTimeAsync(0);
    // Refused: fetch keepalive in the unload form (no preflight, which a closing page cancels), not an ordinary request.
    expect(calls).toHaveLength(1);
    expect(calls[0]).toMatchObject({ keepalive: true, token: 'token-1', headers: { 'content-type': 'text/plain' } });
    expect(calls[0]!.headers.authorization).toBeUndefined();
    expect(t.stats()).toMatchObject({ beaconed: 2, sent: 1, queued: 0 });
  });

  it('when the token in the body has expired (401), sends the batch again as an ordinary request with a new token', async () => {
    const { fetch, calls } = fakeFetch([401]);
    const window = new EventTarget();
    let n = 0;
    const t = tracker({ fetch, window, unload: 'fetch', getToken: () => `token-${++n}`, flushIntervalMs: 60_000, retryBaseMs: 10 });
    await vi.advanceTimersByTimeAsync(0);
    t.progress('f', 3);
    window.dispatchEvent(new Event('pagehide'));
    await vi.advanceTimersByTimeAsync(100);
    expect(calls.map((c) => [c.status, c.token ?? c.headers.authorization])).toEqual([[401, 'token-1'], [202, 'Bearer token-2']]);
    expect(calls[1]!.events[0]!.event_id).toBe(calls[0]!.events[0]!.event_id);
    expect(t.stats()).toMatchObject({ sent: 1, rejected: 0 });
  });
});

describe('sdk: gzip', () => {
  it('gzips ordinary batches with CompressionStream and says so in Content-Encoding', async () => {
    vi.useRealTimers();
    const { fetch, calls } = fakeFetch();
    const t = tracker({ fetch, gzip: true, batchSize: 100, flushIntervalMs: 60_000 });
    for (let i = 0; i < 100; i++) t.progress('tt0111161', i, 8520);
    await t.flush();
    expect(calls).toHaveLength(1);
    expect(calls[0]!.headers).toMatchObject({ 'content-type': 'application/json', 'content-encoding': 'gzip' });
    expect(calls[0]!.events).toHaveLength(100);
    const wire = (calls[0] as unknown as { body: string }).body;
    expect(wire).toContain('"events"');
    expect(t.stats()).toMatchObject({ sent: 100 });
  });
});

/** A localStorage stand-in. */
function memoryStore() {
  const map = new Map<string, string>();
  return {
    map,
    getItem: (k: string) => map.get(k) ?? null, setItem: (k: string, v: string) => { map.set(k, v); }, removeItem: (k: string) => { map.delete(k); },
    key: (i: number) => [...map.keys()][i] ?? null, get length() { return map.size; },
  };
}
const jwtFor = (sub: string | number) => `h.${Buffer.from(JSON.stringify({ sub })).toString('base64url')}.s`;

describe('sdk: read your own progress', () => {
  const at = (iso: string) => ({ film_id: 'f', position_s: 4, duration_s: 600, updated_at: iso });
  function readApi(answer: { status: number; body?: unknown }) {
    const fetch: FetchLike = async (url) => ({ status: url.includes('/v1/events') ? 202 : answer.status, headers: { get: () => null }, json: async () => answer.body ?? { accepted: 1, rejected: [] } });
    return fetch;
  }

  it('answers the position reported last in this browser while the server still has an older one, or none', async () => {
    const storage = memoryStore();
    const options = { storage, getToken: () => jwtFor('alice'), flushIntervalMs: 60_000 };
    await vi.advanceTimersByTimeAsync(0);
    const writer = tracker({ ...options, fetch: readApi({ status: 404 }) });
    await vi.advanceTimersByTimeAsync(0);
    writer.progress('f', 12.7, 600);
    // A reload: a new tracker on the same storage, before the writer stored the position.
    const reloaded = tracker({ ...options, fetch: readApi({ status: 200, body: at('2000-01-01T00:00:00.000Z') }) });
    expect(await reloaded.filmProgress('f')).toMatchObject({ film_id: 'f', position_s: 12, duration_s: 600 });
    expect(await tracker({ ...options, fetch: readApi({ status: 404 }) }).filmProgress('f')).toMatchObject({ position_s: 12 });
    expect(await tracker({ ...options, fetch: readApi({ status: 503 }) }).filmProgress('f')).toMatchObject({ position_s: 12 });
    expect(await tracker({ ...options, fetch: readApi({ status: 404 }) }).filmProgress('other')).toBeNull();
    const recent = await tracker({ ...options, fetch: readApi({ status: 200, body: { items: [{ ...at('2000-01-01T00:00:00.000Z'), film_id: 'g' }, at('2000-01-01T00:00:00.000Z')] } }) }).recentFilms(5);
    expect(recent.map((r) => [r.film_id, r.position_s])).toEqual([['f', 12], ['g', 4]]);
  });

  it('answers the server once it has a newer position (another device), and forgets its own', async () => {
    const storage = memoryStore();
    const options = { storage, getToken: () => jwtFor(12345), flushIntervalMs: 60_000 };
    const writer = tracker({ ...options, fetch: readApi({ status: 404 }) });
    await vi.advanceTimersByTimeAsync(0);
    writer.progress('f', 12, 600);
    expect([...storage.map.keys()]).toEqual(['ugc:progress:12345:f']);
    const later = new Date(Date.now() + 60_000).toISOString();
    expect(await tracker({ ...options, fetch: readApi({ status: 200, body: at(later) }) }).filmProgress('f')).toMatchObject({ position_s: 4, updated_at: later });
    expect(storage.map.size).toBe(0);
  });

  it('asks for recent films without a limit of its own: the API answers its default, and the SDK keeps to the limit it answered', async () => {
    const urls: string[] = [];
    const films = ['a', 'b', 'c'].map((film_id, i) => ({ film_id, position_s: i, duration_s: null, updated_at: `2026-01-0${i + 1}T00:00:00.000Z` }));
    const storage = memoryStore();
    const own = tracker({ storage, fetch: readApi({ status: 404 }), getToken: () => jwtFor('carol'), flushIntervalMs: 60_000 });
    await vi.advanceTimersByTimeAsync(0);
    own.progress('d', 5);
    const fetch: FetchLike = async (url) => {
      urls.push(url);
      return { status: 200, headers: { get: () => null }, json: async () => ({ items: films.slice(0, 2), limit: 2 }) };
    };
    const recent = await tracker({ storage, fetch, getToken: () => jwtFor('carol') }).recentFilms();
    expect(urls.filter((url) => url.includes('/v1/progress'))).toEqual(['https://api.test/v1/progress']);
    // This browser's newer report of d, then the server's two: kept to the 2 the API answered.
    expect(recent.map((film) => film.film_id)).toEqual(['d', 'b']);
  });

  it('keeps each viewer of one browser apart', async () => {
    const storage = memoryStore();
    const alice = tracker({ storage, fetch: readApi({ status: 404 }), getToken: () => jwtFor('alice'), flushIntervalMs: 60_000 });
    await vi.advanceTimersByTimeAsync(0);
    alice.progress('f', 30);
    expect(await tracker({ storage, fetch: readApi({ status: 404 }), getToken: () => jwtFor('bob') }).filmProgress('f')).toBeNull();
    expect(await tracker({ storage, fetch: readApi({ status: 200, body: { items: [] } }), getToken: () => jwtFor('bob') }).recentFilms()).toEqual([]);
    expect(await tracker({ storage, fetch: readApi({ status: 404 }), getToken: () => jwtFor('alice') }).filmProgress('f')).toMatchObject({ position_s: 30 });
  });
});

/** A token whose payload the SDK reads (sub, exp in seconds); its signature is the server's business. */
const jwtExpiring = (sub: string, n: number, inS: number) =>
  `h.${Buffer.from(JSON.stringify({ sub, n, exp: Math.floor(Date.now() / 1000) + inS })).toString('base64url')}.s`;
const tokenNumber = (token: string | undefined) => (JSON.parse(Buffer.from(token!.replace('Bearer ', '').split('.')[1]!, 'base64url').toString()) as { n: number }).n;

describe('sdk: a token still valid when the page is hidden', () => {
  it('asks getToken for the next token a minute before exp, so a page open past its first token\'s life sends its last position with a valid one', async () => {
    const { fetch, calls } = fakeFetch();
    const window = new EventTarget();
    let n = 0;
    const getToken = vi.fn(() => jwtExpiring('alice', ++n, 600));
    const t = tracker({ fetch, window, unload: 'fetch', getToken, flushIntervalMs: 3_600_000 });
    await vi.advanceTimersByTimeAsync(0);
    expect(getToken).toHaveBeenCalledTimes(1);
    await vi.advanceTimersByTimeAsync(539_000);
    expect(getToken).toHaveBeenCalledTimes(1);
    await vi.advanceTimersByTimeAsync(1_000);
    expect(getToken).toHaveBeenCalledTimes(2);
    // Open for 25 minutes, two tokens' lives and a half: each was replaced before it expired.
    await vi.advanceTimersByTimeAsync(1_500_000 - 540_000);
    expect(getToken).toHaveBeenCalledTimes(3);
    t.progress('f', 1_500);
    window.dispatchEvent(new Event('pagehide'));
    expect(calls).toHaveLength(1);
    expect(tokenNumber(calls[0]!.token)).toBe(3);
    t.destroy();
  });

  it('refreshes a short-lived token at 3/4 of its life, and never sooner than 5 s after the last', async () => {
    const { fetch } = fakeFetch();
    let n = 0;
    const short = vi.fn(() => jwtExpiring('alice', ++n, 20));
    const t = tracker({ fetch, getToken: short });
    await vi.advanceTimersByTimeAsync(14_000);
    expect(short).toHaveBeenCalledTimes(1);
    await vi.advanceTimersByTimeAsync(1_000);
    expect(short).toHaveBeenCalledTimes(2);
    t.destroy();
    // An app that hands out the same expired token is asked every 5 s, not in a loop.
    const stale = vi.fn(() => jwtExpiring('alice', 0, -30));
    const u = tracker({ fetch, getToken: stale });
    await vi.advanceTimersByTimeAsync(12_000);
    expect(stale).toHaveBeenCalledTimes(3);
    u.destroy();
  });

  it('with a token that expired anyway (a throttled timer), the hide batch goes as an ordinary request with a new token, and is kept for the next load', async () => {
    const { fetch, calls } = fakeFetch();
    const window = new EventTarget();
    const storage = memoryStore();
    let n = 0;
    const t = tracker({ fetch, window, storage, getToken: () => jwtExpiring('alice', ++n, 600), flushIntervalMs: 3_600_000 });
    await vi.advanceTimersByTimeAsync(0);
    // The clock moves past exp without the refresh timer having run.
    vi.setSystemTime(Date.now() + 700_000);
    t.progress('f', 700);
    window.dispatchEvent(new Event('pagehide'));
    expect(storage.map.get('ugc:queue:alice')).toContain('"position_s":700');
    await vi.advanceTimersByTimeAsync(0);
    expect(calls).toHaveLength(1);
    expect(calls[0]!.keepalive).toBeUndefined();
    expect(tokenNumber(calls[0]!.headers.authorization)).toBe(2);
    t.destroy();
  });
});

describe('sdk: what a hidden page could not deliver survives a reload', () => {
  it('keeps the events of a hide while the API is failing, and the next load sends them with the same event_ids, once', async () => {
    const storage = memoryStore();
    const window = new EventTarget();
    const down = fakeFetch(['network', 'network', 'network']);
    const beaconed: string[] = [];
    const options = { storage, getToken: () => jwtFor('alice'), flushIntervalMs: 60_000, retryBaseMs: 100_000 };
    const before = tracker({ ...options, fetch: down.fetch, window, sendBeacon: (_url, body) => { beaconed.push(body); return true; } });
    await vi.advanceTimersByTimeAsync(0);
    before.progress('f', 1);
    before.progress('f', 2);
    await before.flush();
    expect(down.calls.map((c) => c.status)).toEqual(['network']);
    before.progress('f', 3);
    window.dispatchEvent(new Event('pagehide'));
    // Handed to the beacon, which may or may not get through: kept too.
    expect(beaconed).toHaveLength(1);
    const kept = JSON.parse(storage.map.get('ugc:queue:alice')!) as QueuedEvent[];
    expect(kept.map((e) => (e as { position_s?: number }).position_s)).toEqual([1, 2, 3]);
    before.destroy();

    const up = fakeFetch();
    const after = tracker({ ...options, fetch: up.fetch });
    await vi.advanceTimersByTimeAsync(0);
    expect(sentIds(up.calls)).toEqual(kept.map((e) => e.event_id));
    expect(storage.map.has('ugc:queue:alice')).toBe(false);
    expect(after.stats()).toMatchObject({ sent: 3, queued: 0 });
    // Another viewer of the browser never sends them.
    const bob = fakeFetch();
    tracker({ ...options, fetch: bob.fetch, getToken: () => jwtFor('bob') });
    await vi.advanceTimersByTimeAsync(0);
    expect(bob.calls).toHaveLength(0);
  });

  it('keeps nothing when the API answered and the token is valid: a beacon then is trusted', async () => {
    const storage = memoryStore();
    const window = new EventTarget();
    const { fetch } = fakeFetch();
    const t = tracker({ storage, window, fetch, getToken: () => jwtFor('alice'), sendBeacon: () => true, flushIntervalMs: 60_000 });
    await vi.advanceTimersByTimeAsync(0);
    t.progress('f', 1);
    await t.flush();
    t.progress('f', 2);
    window.dispatchEvent(new Event('pagehide'));
    expect([...storage.map.keys()]).toEqual(['ugc:progress:alice:f']);
    expect(t.stats()).toMatchObject({ sent: 1, beaconed: 1 });
  });
});

describe('sdk: reads', () => {
  it('reads a film position (null on 404) and the recent films through the read API', async () => {
    const calls: string[] = [];
    const fetch: FetchLike = async (url) => {
      calls.push(url);
      const status = url.includes('unseen') ? 404 : 200;
      const body = url.includes('/v1/progress')
        ? { items: [{ film_id: 'a b', position_s: 3, duration_s: null, updated_at: '2024-01-01T00:00:00.000Z' }] }
        : { film_id: 'a b', position_s: 3, duration_s: 10, updated_at: '2024-01-01T00:00:00.000Z' };
      return { status, headers: { get: () => null }, json: async () => body };
    };
    const t = tracker({ fetch });
    expect(await t.filmProgress('a b')).toMatchObject({ position_s: 3 });
    expect(await t.filmProgress('unseen')).toBeNull();
    expect(await t.recentFilms(5)).toHaveLength(1);
    expect(calls).toEqual(['https://api.test/v1/films/a%20b/progress', 'https://api.test/v1/films/unseen/progress', 'https://api.test/v1/progress?limit=5']);
  });
});

describe('sdk: types from the event registry', () => {
  it('accepts each event type\'s own fields and refuses others at compile time (checked by tsc)', () => {
    const { fetch } = fakeFetch();
    const t = tracker({ fetch });
    t.track('film_rating', { film_id: 'f', score: 9 });
    t.track('bookmark', { film_id: 'f', action: 'add' });
    // @ts-expect-error score belongs to film_rating, not bookmark
    t.track('bookmark', { film_id: 'f', score: 9 });
    // @ts-expect-error not a registered event type
    t.track('purchase', { amount: 1 });
    // @ts-expect-error action must be add or remove
    t.track('bookmark', { film_id: 'f', action: 'toggle' });
    // Reviews and likes came with the registry, no SDK edit.
    t.track('review', { film_id: 'f', review_text: 'نعم 🎬', score: 8 });
    t.track('like', { film_id: 'f', reviewer_id: 'viewer-2', action: 'unlike' });
    // @ts-expect-error a like is like or unlike, not a bookmark's add
    t.track('like', { film_id: 'f', action: 'add' });
    // @ts-expect-error a review needs its text
    t.track('review', { film_id: 'f', score: 8 });
    expect(t.stats().queued).toBe(9);
    t.destroy();
  });
});
