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
  // Plain property reads: this runs 10,000 times per batch. Fields a type lacks read as undefined.
  const fields = event as Partial<Record<string, unknown>>;
  return {
    event_id: event.event_id,
    event_type: event.type,
    schema_version: event.schema_version,
    user_id: event.user_id,
    film_id: text(fields.film_id) ?? '',
    occurred_at: event.occurred_at,
    received_at: event.received_at,
    client_ts: event.client_ts === undefined ? null : new Date(event.client_ts).toISOString(),
    request_id: event.request_id,
    position_s: int(fields.position_s),
    duration_s: int(fields.duration_s),
    score: int(fields.score),
    action: text(fields.action),
    url: text(fields.url),
    referrer: text(fields.referrer),
    element: text(fields.element),
    query: text(fields.query),
    results_count: int(fields.results_count),
    kafka_topic: position.topic,
    kafka_partition: position.partition,
    kafka_offset: position.offset,
  };
}

const text = (value: unknown): string | null => (typeof value === 'string' ? value : null);
const int = (value: unknown): number | null => (typeof value === 'number' ? value : null);
