import { randomUUID } from 'node:crypto';
import { parse as parseUuid, version as uuidVersion } from 'uuid';
import type { Message } from 'kafkajs';
import { SCHEMA_VERSION, eventHeaders, maxClockSkewMs, maxEventAgeMs, type AcceptedEvent, type ClientEvent } from '../../shared/events.ts';


export interface Enrichment { userId: string; requestId: string; receivedAt: Date }

/**
 * A UUIDv7 (RFC 9562): the Unix milliseconds, then 74 random bits, taken from Node's randomUUID
 * (which draws from a pooled entropy buffer). uuid's v7 asked the system for 16 bytes per id,
 * several times the cost of the rest of an event's enrichment.
 */
function uuidv7(): string {
  const time = Date.now().toString(16).padStart(12, '0');
  // randomUUID is xxxxxxxx-xxxx-4xxx-Vxxx-xxxxxxxxxxxx: keep what follows its version digit.
  return `${time.slice(0, 8)}-${time.slice(8)}-7${randomUUID().slice(15)}`;
}

// A request's events share its receivedAt: format it once, not twice per event.
let lastTime = Number.NaN;
let lastIso = '';
function isoTime(date: Date): string {
  const time = date.getTime();
  if (time !== lastTime) {
    lastTime = time;
    lastIso = date.toISOString();
  }
  return lastIso;
}

/** A UUIDv7's own time: its first 48 bits, Unix milliseconds when the client made the id. */
function uuidv7Time(id: string): Date | undefined {
  if (uuidVersion(id) !== 7) return undefined;
  return new Date(parseUuid(id).subarray(0, 6).reduce((ms, byte) => ms * 256 + byte, 0));
}

/** Adds what only the server may say: who (from the token), when, and a stable event id (UUIDv7: time-ordered). */
export function enrich(event: ClientEvent, { userId, requestId, receivedAt }: Enrichment): AcceptedEvent {
  // The event time is part of the events table's sorting key, so a client's retry of an event
  // (same event_id) must get the same one, or FINAL keeps both copies: the client's clock when
  // the event says it (client_ts, else a UUIDv7 event_id's own time), else ours. Not a client time
  // far from ours: too far ahead is a wrong clock, too old would scatter a batch over old partitions.
  const clientTime = event.client_ts !== undefined ? new Date(event.client_ts) : event.event_id ? uuidv7Time(event.event_id) : undefined;
  const skew = clientTime ? clientTime.getTime() - receivedAt.getTime() : Number.NaN;
  const trusted = clientTime && skew <= maxClockSkewMs && skew >= -maxEventAgeMs;
  // Object.assign, not an object spread: V8 (Node 20) took ~25x as long for `{ ...event, event_id, … }`.
  return Object.assign({}, event, {
    event_id: event.event_id ?? uuidv7(),
    user_id: userId,
    received_at: isoTime(receivedAt),
    occurred_at: trusted ? clientTime.toISOString() : isoTime(receivedAt),
    request_id: requestId,
    schema_version: SCHEMA_VERSION,
  });
}

/** One Kafka message per event, keyed by viewer so each viewer's events stay in order. */
export function toKafkaMessage(event: AcceptedEvent): Message {
  return {
    key: event.user_id,
    value: JSON.stringify(event),
    headers: { [eventHeaders.type]: event.type, [eventHeaders.schemaVersion]: String(event.schema_version) },
  };
}
