-- Reviews and likes (the `review` and `like` events of shared/events.ts): their fields' columns in
-- `events`, each viewer's current review of each film, each viewer's current like of each film and
-- review, and per-film counts. The per-viewer tables carry the viewer in user_id (erasure deletes by it).
ALTER TABLE events ADD COLUMN IF NOT EXISTS review_text Nullable(String), ADD COLUMN IF NOT EXISTS reviewer_id Nullable(String);

-- Each viewer's current review of each film: a newer review (by event time) replaces the earlier
-- one, whatever the order of arrival (the version column, as in film_progress_latest). Read with FINAL.
CREATE TABLE IF NOT EXISTS film_reviews_latest
(
    film_id     String,
    user_id     String,
    review_text String,
    score       Nullable(UInt8),
    occurred_at DateTime64(3, 'UTC'),
    event_id    UUID
)
ENGINE = ReplacingMergeTree(occurred_at)
ORDER BY (film_id, user_id)
SETTINGS non_replicated_deduplication_window = 10000;

CREATE MATERIALIZED VIEW IF NOT EXISTS film_reviews_latest_mv TO film_reviews_latest AS
SELECT film_id, user_id, assumeNotNull(review_text) AS review_text, score, occurred_at, event_id
FROM events
WHERE event_type = 'review';

-- Each viewer's latest like or unlike of each film (reviewer_id '') and of each review (the
-- reviewer's id): the newest action by event time holds. Read with FINAL.
CREATE TABLE IF NOT EXISTS film_likes_latest
(
    film_id     String,
    reviewer_id String,
    user_id     String,
    liked       UInt8,
    occurred_at DateTime64(3, 'UTC'),
    event_id    UUID
)
ENGINE = ReplacingMergeTree(occurred_at)
ORDER BY (film_id, reviewer_id, user_id)
SETTINGS non_replicated_deduplication_window = 10000;

CREATE MATERIALIZED VIEW IF NOT EXISTS film_likes_latest_mv TO film_likes_latest AS
SELECT film_id, ifNull(reviewer_id, '') AS reviewer_id, user_id, toUInt8(action = 'like') AS liked, occurred_at, event_id
FROM events
WHERE event_type = 'like';

-- What analysts query: per film, its current reviews (one per viewer), their average score (of
-- those that gave one), the viewers who like the film now, and the current likes of its reviews.
CREATE VIEW IF NOT EXISTS film_review_counts_v AS
SELECT
    film_id,
    reviews.reviews AS reviews,
    reviews.avg_review_score AS avg_review_score,
    likes.film_likes AS film_likes,
    likes.review_likes AS review_likes
FROM
(
    SELECT film_id, count() AS reviews, avgOrNull(score) AS avg_review_score
    FROM film_reviews_latest FINAL
    GROUP BY film_id
) AS reviews
FULL OUTER JOIN
(
    SELECT film_id, countIf(liked = 1 AND reviewer_id = '') AS film_likes, countIf(liked = 1 AND reviewer_id != '') AS review_likes
    FROM film_likes_latest FINAL
    GROUP BY film_id
) AS likes
USING film_id;
