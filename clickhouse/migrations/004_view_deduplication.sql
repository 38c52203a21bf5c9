-- A batch redelivered by the event source carries the same insert_deduplication_token. ClickHouse
-- drops the repeated block from `events`, but still pushes it into the materialized views; with a
-- deduplication window on their target tables (and the writer's
-- deduplicate_blocks_in_dependent_materialized_views), the views drop it too, so film_daily_stats
-- does not count a redelivered batch twice.
ALTER TABLE film_daily_stats MODIFY SETTING non_replicated_deduplication_window = 10000;

ALTER TABLE film_progress_latest MODIFY SETTING non_replicated_deduplication_window = 10000;
