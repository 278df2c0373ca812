-- usage_events holds only what its hourly rollup can hold: usage_hourly.hour is a DateTime
-- (1970-01-01 .. 2106-02-07 06:28:15 UTC), and an event outside it was stored as it came in
-- usage_events while usage_hourly clamped its hour, so the views disagreed with the raw table.
-- The engine now refuses such a row (VIOLATED_CONSTRAINT); the sink dead-letters it to
-- dlq_events (error_kind 'unwritable', with the engine's reason) and writes the rest.
ALTER TABLE usage_events
    ADD CONSTRAINT IF NOT EXISTS occurred_at_in_rollup_range
    CHECK occurred_at >= toDateTime64('1970-01-01 00:00:00', 6, 'UTC')
      AND occurred_at < toDateTime64('2106-02-07 06:00:00', 6, 'UTC');
