-- Every accepted event, one row each. Typed columns for the common fields and for each event
-- type's own fields (NULL where a type has none).
-- Deduplication: the sorting key ends with event_id and every column before it is fixed at ingest
-- (occurred_at travels in the Kafka message), so a redelivered event is the same key and
-- ReplacingMergeTree keeps one copy (FINAL / after merges). Retried insert blocks are dropped at
-- once by insert_deduplication_token within non_replicated_deduplication_window.
CREATE TABLE IF NOT EXISTS events
(
    event_id       UUID,
    event_type     LowCardinality(String),
    schema_version UInt16,
    user_id        String,
    film_id        String DEFAULT '',
    occurred_at    DateTime64(3, 'UTC'),
    received_at    DateTime64(3, 'UTC'),
    client_ts      Nullable(DateTime64(3, 'UTC')),
    request_id     String,
    position_s     Nullable(UInt32),
    duration_s     Nullable(UInt32),
    score          Nullable(UInt8),
    action         LowCardinality(Nullable(String)),
    url            Nullable(String),
    referrer       Nullable(String),
    element        Nullable(String),
    query          Nullable(String),
    results_count  Nullable(UInt32),
    kafka_topic    LowCardinality(String),
    kafka_partition UInt32,
    kafka_offset   UInt64,
    inserted_at    DateTime64(3, 'UTC') DEFAULT now64(3)
)
ENGINE = ReplacingMergeTree
PARTITION BY toYYYYMM(occurred_at)
ORDER BY (event_type, film_id, occurred_at, event_id)
SETTINGS non_replicated_deduplication_window = 10000;
