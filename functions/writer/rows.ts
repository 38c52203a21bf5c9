import type { AcceptedEvent } from '../../shared/events.ts';
import type { RecordPosition } from './decode.ts';

/** One row of the `events` table (clickhouse/migrations/001_events.sql). */
export interface EventRow {
  event_id: string;
  event_type: string;
  schema_version: number;
  user_id: string;
  film_id: string;
  occurred_at: string;
  received_at: string;
  client_ts: string | null;
  request_id: string;
  position_s: number | null;
  duration_s: number | null;
  score: number | null;
  action: string | null;
  url: string | null;
  referrer: string | null;
  element: string | null;
  query: string | null;
  results_count: number | null;
  kafka_topic: string;
  kafka_partition: number;
  kafka_offset: number;
}

/** Maps an accepted event to its ClickHouse row; fields a type lacks are NULL. */
export function toClickHouseRow(event: AcceptedEvent, position: RecordPosition): EventRow {
  const field = <K extends string>(name: K): unknown => (name in event ? (event as Record<string, unknown>)[name] : undefined);
  const text = (name: string) => (typeof field(name) === 'string' ? (field(name) as string) : null);
  const int = (name: string) => (typeof field(name) === 'number' ? (field(name) as number) : null);
  const clientTs = event.client_ts === undefined ? null : new Date(event.client_ts).toISOString();
  return {
    event_id: event.event_id,
    event_type: event.type,
    schema_version: event.schema_version,
    user_id: event.user_id,
    film_id: text('film_id') ?? '',
    occurred_at: event.occurred_at,
    received_at: event.received_at,
    client_ts: clientTs,
    request_id: event.request_id,
    position_s: int('position_s'),
    duration_s: int('duration_s'),
    score: int('score'),
    action: text('action'),
    url: text('url'),
    referrer: text('referrer'),
    element: text('element'),
    query: text('query'),
    results_count: int('results_count'),
    kafka_topic: position.topic,
    kafka_partition: position.partition,
    kafka_offset: position.offset,
  };
}
