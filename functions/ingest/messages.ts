import { parse as parseUuid, v7 as uuidv7, version as uuidVersion } from 'uuid';
import type { Message } from 'kafkajs';
import { SCHEMA_VERSION, eventHeaders, maxClockSkewMs, maxEventAgeMs, type AcceptedEvent, type ClientEvent } from '../../shared/events.ts';


export interface Enrichment { userId: string; requestId: string; receivedAt: Date }

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
  return {
    ...event,
    event_id: event.event_id ?? uuidv7(),
    user_id: userId,
    received_at: receivedAt.toISOString(),
    occurred_at: (trusted ? clientTime : receivedAt).toISOString(),
    request_id: requestId,
    schema_version: SCHEMA_VERSION,
  };
}

/** One Kafka message per event, keyed by viewer so each viewer's events stay in order. */
export function toKafkaMessage(event: AcceptedEvent): Message {
  return {
    key: event.user_id,
    value: JSON.stringify(event),
    headers: { [eventHeaders.type]: event.type, [eventHeaders.schemaVersion]: String(event.schema_version) },
  };
}
