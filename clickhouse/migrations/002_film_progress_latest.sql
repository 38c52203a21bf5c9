-- Each viewer's latest position in each film ("continue watching").
-- The version column is the event time: a late, older progress event never replaces a newer
-- position (ReplacingMergeTree keeps the row with the greatest version, not the last inserted).
CREATE TABLE IF NOT EXISTS film_progress_latest
(
    user_id     String,
    film_id     String,
    position_s  UInt32,
    duration_s  Nullable(UInt32),
    occurred_at DateTime64(3, 'UTC'),
    event_id    UUID
)
ENGINE = ReplacingMergeTree(occurred_at)
ORDER BY (user_id, film_id);

CREATE MATERIALIZED VIEW IF NOT EXISTS film_progress_latest_mv TO film_progress_latest AS
SELECT user_id, film_id, assumeNotNull(position_s) AS position_s, duration_s, occurred_at, event_id
FROM events
WHERE event_type = 'film_progress';
