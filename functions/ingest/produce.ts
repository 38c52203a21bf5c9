import type { Kafka, Message, Producer } from 'kafkajs';
import { CompressionTypes } from '../../shared/kafka.ts';
import { HttpError } from '../../shared/errors.ts';

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

function withDeadline<T>(work: Promise<T>, ms: number): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`no acknowledgement within ${ms} ms`)), ms);
  });
  return Promise.race([work, timeout]).finally(() => clearTimeout(timer));
}

/**
 * Sends messages and resolves only once every in-sync replica acknowledged them (acks -1).
 * Connects lazily and reconnects after a failure; gives up at the deadline.
 */
export function createEventProducer(producer: Producer, topic: string) {
  let connected: Promise<void> | undefined;
  return async function produce(messages: Message[], deadlineMs: number): Promise<void> {
    try {
      await withDeadline((async () => {
        connected ??= producer.connect();
        await connected;
        await producer.send({ topic, acks: -1, compression: CompressionTypes.GZIP, messages });
      })(), deadlineMs);
    } catch (cause) {
      if (isTooLarge(cause)) {
        throw new HttpError(413, 'payload_too_large', 'the events are larger than Kafka accepts in one request; send fewer per request', {}, { cause });
      }
      connected = undefined;
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
      await withDeadline((async () => { await admin.connect(); await admin.describeCluster(); })(), 2_000);
      reachable = true;
    } catch {
      reachable = false;
    }
    last = { at: Date.now(), reachable };
    return reachable;
  };
}
