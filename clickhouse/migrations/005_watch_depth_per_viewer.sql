-- Average watch depth counts each viewer once: how far each viewer got in each film each day (the
-- furthest position they reported). 003 averaged every progress report, and reports come every few
-- seconds of playback, so a viewer who watched a whole film counted as about half of it.
-- The furthest position is a max, so a redelivered or duplicated event cannot change it.
CREATE TABLE IF NOT EXISTS film_daily_viewers
(
    day        Date,
    film_id    String,
    user_id    String,
    max_depth  SimpleAggregateFunction(max, Float64)
)
ENGINE = AggregatingMergeTree
PARTITION BY toYYYYMM(day)
ORDER BY (film_id, day, user_id);

CREATE MATERIALIZED VIEW IF NOT EXISTS film_daily_viewers_mv TO film_daily_viewers AS
SELECT
    toDate(occurred_at) AS day,
    film_id,
    user_id,
    max(least(toFloat64(assumeNotNull(position_s)) / greatest(assumeNotNull(duration_s), 1), 1.0)) AS max_depth
FROM events
WHERE event_type = 'film_progress' AND film_id != '' AND ifNull(duration_s, 0) > 0
GROUP BY day, film_id, user_id;

-- The view sees new inserts only: the events already stored are added once here (a row the view
-- also took in meanwhile changes nothing, since the depth is a max).
INSERT INTO film_daily_viewers
SELECT
    toDate(occurred_at) AS day,
    film_id,
    user_id,
    max(least(toFloat64(assumeNotNull(position_s)) / greatest(assumeNotNull(duration_s), 1), 1.0)) AS max_depth
FROM events
WHERE event_type = 'film_progress' AND film_id != '' AND ifNull(duration_s, 0) > 0
GROUP BY day, film_id, user_id;

-- What analysts query: the same columns as before, avg_watch_depth now per viewer (nan when no
-- viewer reported a duration that day).
CREATE OR REPLACE VIEW film_daily_stats_v AS
SELECT
    stats.day AS day,
    stats.film_id AS film_id,
    stats.progress_events AS progress_events,
    stats.viewers AS viewers,
    if(depth.viewers_with_depth > 0, depth.avg_watch_depth, nan) AS avg_watch_depth,
    stats.ratings AS ratings,
    stats.avg_score AS avg_score
FROM
(
    SELECT day, film_id, sum(progress_events) AS progress_events, uniqMerge(viewers) AS viewers,
           sum(ratings) AS ratings, avgMerge(score) AS avg_score
    FROM film_daily_stats
    GROUP BY day, film_id
) AS stats
LEFT JOIN
(
    SELECT day, film_id, avg(depth) AS avg_watch_depth, count() AS viewers_with_depth
    FROM (SELECT day, film_id, user_id, max(max_depth) AS depth FROM film_daily_viewers GROUP BY day, film_id, user_id)
    GROUP BY day, film_id
) AS depth
ON stats.day = depth.day AND stats.film_id = depth.film_id;
