-- Per-viewer queries (a viewer's history over time: support, exports, journeys): the rows again,
-- sorted by viewer and time, as a projection, so `WHERE user_id = …` reads only that viewer's
-- granules. The table's own order serves per-film queries. The cost is a second sorted copy of
-- the rows: disk, and CPU at insert and merge. A query with FINAL reads the table, not this copy.
-- On ReplacingMergeTree a projection needs a rule for the merges that drop duplicates: rebuild it.
ALTER TABLE events MODIFY SETTING deduplicate_merge_projection_mode = 'rebuild';

ALTER TABLE events ADD PROJECTION IF NOT EXISTS by_viewer (SELECT * ORDER BY user_id, occurred_at);

-- Rows stored before this migration get the projection in the background (a mutation).
ALTER TABLE events MATERIALIZE PROJECTION by_viewer;
