import { v7 as uuidv7 } from 'uuid';
import type { Message } from 'kafkajs';
import { SCHEMA_VERSION, eventHeaders, type AcceptedEvent, type ClientEvent } from '../../shared/events.ts';

// A client clock more than this far ahead of ours is not trusted as the event time.
const maxClockSkewMs = 5 * 60_000;

export interface Enrichment { userId: string; requestId: string; receivedAt: Date }

/** Adds what only the server may say: who (from the token), when, and a stable event id (UUIDv7: time-ordered). */
export function enrich(event: ClientEvent, { userId, requestId, receivedAt }: Enrichment): AcceptedEvent {
  const clientTime = event.client_ts === undefined ? undefined : new Date(event.client_ts);
  const trusted = clientTime && !Number.isNaN(clientTime.getTime()) && clientTime.getTime() <= receivedAt.getTime() + maxClockSkewMs;
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
