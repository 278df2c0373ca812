-- One dlq_events row per bad line: the stream dead-letters each bad line of a JSON Lines
-- message on its own (meterline.messages.DeadLetter.line_index), and a key of
-- (topic, partition, offset) collapsed them into one row. line_index joins the sorting key in
-- the same ALTER that adds it (ClickHouse allows that only for a new column without a default
-- expression; UInt32's own default, 0, names the one line of a single-event message, so rows
-- written before keep their meaning). value_size and value_sha256 describe the whole original
-- value (NULL from senders older than these fields); truncated says value_b64 holds its head.
-- Re-running the ALTER is harmless: every column exists, and the key is already this one.
ALTER TABLE dlq_events
    ADD COLUMN IF NOT EXISTS line_index UInt32 AFTER `offset`,
    ADD COLUMN IF NOT EXISTS line_count UInt32 DEFAULT 1 AFTER line_index,
    ADD COLUMN IF NOT EXISTS value_size Nullable(UInt64) AFTER value_b64,
    ADD COLUMN IF NOT EXISTS value_sha256 Nullable(String) AFTER value_size,
    ADD COLUMN IF NOT EXISTS truncated Bool AFTER value_sha256,
    MODIFY ORDER BY (topic, `partition`, `offset`, line_index);
