import type { Kafka, Message } from 'kafkajs';
import type { Sender } from '../../shared/kafka.ts';
import { HttpError, SharedRequestError } from '../../shared/errors.ts';

// Kafka refuses these for good whatever the retries: a 503 would have the client retry forever.
const tooLargeForKafka = new Set(['MESSAGE_TOO_LARGE', 'RECORD_LIST_TOO_LARGE']);

/** Whether a kafkajs error (or one it wraps) says the messages are larger than the brokers accept. */
function isTooLarge(error: unknown, depth = 0): boolean {
  if (!error || typeof error !== 'object' || depth > 5) return false;
  const e = error as { type?: unknown; cause?: unknown; originalError?: unknown; errors?: unknown };
  if (typeof e.type === 'string' && tooLargeForKafka.has(e.type)) return true;
  const wrapped = [e.cause, e.originalError, ...(Array.isArray(e.errors) ? e.errors : [])];
  return wrapped.some((inner) => isTooLarge(inner, depth + 1));
}

/** Raised when Kafka did not acknowledge in time: the request answers 503, never 202. */
export function kafkaUnavailable(cause: unknown): HttpError {
  return new HttpError(503, 'kafka_unavailable', 'events could not be made durable; retry later', { 'Retry-After': '1' }, { cause });
}

/** Runs `work`, given up at `ms`: the signal aborts then, so work still queued is not started. */
function withDeadline<T>(work: (signal: AbortSignal) => Promise<T>, ms: number): Promise<T> {
  const controller = new AbortController();
  return new Promise<T>((resolve, reject) => {
    // Work first, then the timer: work that throws at once leaves no timer behind. Its callbacks
    // run later, when `timer` is set, and clear it: one timer per call, gone once the work settles.
    work(controller.signal).then(
      (value) => { clearTimeout(timer); resolve(value); },
      (error: unknown) => { clearTimeout(timer); reject(error); },
    );
    const timer = setTimeout(() => {
      controller.abort(new Error(`no acknowledgement within ${ms} ms`));
      reject(controller.signal.reason);
    }, ms);
  });
}

/**
 * Sends messages and resolves only once every in-sync replica acknowledged them (acks -1).
 * Gives up at the deadline: a send still waiting for a producer is dropped, one in flight keeps
 * its producer until it settles (shared/kafka-sender.ts).
 */
export function createEventProducer(sender: Sender, topic: string) {
  return async function produce(messages: Message[], deadlineMs: number): Promise<void> {
    try {
      await withDeadline((signal) => sender.send({ topic, acks: -1, messages }, { signal }), deadlineMs);
    } catch (cause) {
      // Too large alone: no retry helps. Too large together with other sends (a topic whose
      // max.message.bytes is below the sender's batch bound): a retry may go in a smaller request.
      if (isTooLarge(cause) && !(cause instanceof SharedRequestError)) {
        throw new HttpError(413, 'payload_too_large', 'the events are larger than Kafka accepts in one request; send fewer per request', {}, { cause });
      }
      throw kafkaUnavailable(cause);
    }
  };
}

/** Whether the cluster answers, remembered briefly so health checks cost no round trip each. */
export function createKafkaProbe(kafka: Kafka, cacheMs = 5_000) {
  const admin = kafka.admin();
  let last: { at: number; reachable: boolean } | undefined;
  return async function kafkaReachable(): Promise<boolean> {
    if (last && Date.now() - last.at < cacheMs) return last.reachable;
    let reachable = false;
    try {
      await withDeadline(async () => { await admin.connect(); await admin.describeCluster(); }, 2_000);
      reachable = true;
    } catch {
      reachable = false;
    }
    last = { at: Date.now(), reachable };
    return reachable;
  };
}
