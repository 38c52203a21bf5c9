-- Per film and day: progress reports, unique viewers, average watch depth, ratings.
-- Kept by an aggregating materialized view, so the dashboard reads a few rows per film-day.
-- A retried batch is dropped whole by the insert's deduplication token before it reaches this
-- view; an event sent twice by a client in two requests is counted twice here (the events table
-- removes it by event_id: use events FINAL for exact counts).
CREATE TABLE IF NOT EXISTS film_daily_stats
(
    day           Date,
    film_id       String,
    progress_events SimpleAggregateFunction(sum, UInt64),
    viewers       AggregateFunction(uniq, String),
    watch_depth   AggregateFunction(avg, Float64),
    ratings       SimpleAggregateFunction(sum, UInt64),
    score         AggregateFunction(avg, UInt8)
)
ENGINE = AggregatingMergeTree
PARTITION BY toYYYYMM(day)
ORDER BY (film_id, day);

CREATE MATERIALIZED VIEW IF NOT EXISTS film_daily_stats_mv TO film_daily_stats AS
SELECT
    toDate(occurred_at) AS day,
    film_id,
    toUInt64(countIf(event_type = 'film_progress')) AS progress_events,
    uniqStateIf(user_id, event_type = 'film_progress') AS viewers,
    avgStateIf(least(toFloat64(assumeNotNull(position_s)) / greatest(assumeNotNull(duration_s), 1), 1.0),
               event_type = 'film_progress' AND ifNull(duration_s, 0) > 0) AS watch_depth,
    toUInt64(countIf(event_type = 'film_rating')) AS ratings,
    avgStateIf(assumeNotNull(score), event_type = 'film_rating') AS score
FROM events
WHERE film_id != '' AND event_type IN ('film_progress', 'film_rating')
GROUP BY day, film_id;

-- What analysts query: one row per film and day.
CREATE VIEW IF NOT EXISTS film_daily_stats_v AS
SELECT
    day,
    film_id,
    sum(progress_events) AS progress_events,
    uniqMerge(viewers) AS viewers,
    avgMerge(watch_depth) AS avg_watch_depth,
    sum(ratings) AS ratings,
    avgMerge(score) AS avg_score
FROM film_daily_stats
GROUP BY day, film_id;
