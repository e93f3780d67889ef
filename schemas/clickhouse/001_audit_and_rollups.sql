-- girok analytics, version 1: audit events and the rollups of the dataflow.
-- Statements are separated by a line holding only `;`. Tables are created in the configured
-- database (the sink sets it as the session's default). ClickHouse 18.16 or newer.

-- One row per log event. Exactly once: the sink resumes after max(seq).
CREATE TABLE IF NOT EXISTS audit_events (
    seq UInt64,
    time DateTime('UTC'),
    time_ms Int64,
    type String,
    actor String,
    target String,
    ip String,
    user_agent String,
    payload String
) ENGINE = MergeTree PARTITION BY toYYYYMM(time) ORDER BY seq
;
-- Each rollup is four objects: `<name>_diffs` (Null engine) receives the dataflow's signed
-- diffs, each stamped with the seq of the event that caused it; `<name>_mv` folds them into
-- `<name>_state` (AggregatingMergeTree: merges add the signed counts and keep the highest seq,
-- which is where the sink resumes); `<name>` is the view analysts query.
CREATE TABLE IF NOT EXISTS events_per_type_hourly_diffs (bucket DateTime('UTC'), key String, n Int64, seq UInt64) ENGINE = Null
;
CREATE TABLE IF NOT EXISTS events_per_type_hourly_state (bucket DateTime('UTC'), key String, n AggregateFunction(sum, Int64), max_seq AggregateFunction(max, UInt64)) ENGINE = AggregatingMergeTree ORDER BY (bucket, key)
;
CREATE MATERIALIZED VIEW IF NOT EXISTS events_per_type_hourly_mv TO events_per_type_hourly_state AS SELECT bucket, key, sumState(n) AS n, maxState(seq) AS max_seq FROM events_per_type_hourly_diffs GROUP BY bucket, key
;
CREATE VIEW IF NOT EXISTS events_per_type_hourly AS SELECT bucket AS hour, key AS type, sumMerge(n) AS events FROM events_per_type_hourly_state GROUP BY hour, type
;
CREATE TABLE IF NOT EXISTS active_users_daily_diffs (bucket DateTime('UTC'), key String, n Int64, seq UInt64) ENGINE = Null
;
CREATE TABLE IF NOT EXISTS active_users_daily_state (bucket DateTime('UTC'), key String, n AggregateFunction(sum, Int64), max_seq AggregateFunction(max, UInt64)) ENGINE = AggregatingMergeTree ORDER BY (bucket, key)
;
CREATE MATERIALIZED VIEW IF NOT EXISTS active_users_daily_mv TO active_users_daily_state AS SELECT bucket, key, sumState(n) AS n, maxState(seq) AS max_seq FROM active_users_daily_diffs GROUP BY bucket, key
;
CREATE VIEW IF NOT EXISTS active_users_daily AS SELECT toDate(bucket) AS day, key AS user_id, sumMerge(n) AS active FROM active_users_daily_state GROUP BY day, user_id
;
CREATE TABLE IF NOT EXISTS messages_per_room_daily_diffs (bucket DateTime('UTC'), key String, n Int64, seq UInt64) ENGINE = Null
;
CREATE TABLE IF NOT EXISTS messages_per_room_daily_state (bucket DateTime('UTC'), key String, n AggregateFunction(sum, Int64), max_seq AggregateFunction(max, UInt64)) ENGINE = AggregatingMergeTree ORDER BY (bucket, key)
;
CREATE MATERIALIZED VIEW IF NOT EXISTS messages_per_room_daily_mv TO messages_per_room_daily_state AS SELECT bucket, key, sumState(n) AS n, maxState(seq) AS max_seq FROM messages_per_room_daily_diffs GROUP BY bucket, key
;
CREATE VIEW IF NOT EXISTS messages_per_room_daily AS SELECT toDate(bucket) AS day, key AS room_id, sumMerge(n) AS messages FROM messages_per_room_daily_state GROUP BY day, room_id
;
CREATE TABLE IF NOT EXISTS feed_daily_diffs (bucket DateTime('UTC'), key String, n Int64, seq UInt64) ENGINE = Null
;
CREATE TABLE IF NOT EXISTS feed_daily_state (bucket DateTime('UTC'), key String, n AggregateFunction(sum, Int64), max_seq AggregateFunction(max, UInt64)) ENGINE = AggregatingMergeTree ORDER BY (bucket, key)
;
CREATE MATERIALIZED VIEW IF NOT EXISTS feed_daily_mv TO feed_daily_state AS SELECT bucket, key, sumState(n) AS n, maxState(seq) AS max_seq FROM feed_daily_diffs GROUP BY bucket, key
;
CREATE VIEW IF NOT EXISTS feed_daily AS SELECT toDate(bucket) AS day, key AS kind, sumMerge(n) AS count FROM feed_daily_state GROUP BY day, kind
;
CREATE TABLE IF NOT EXISTS logins_hourly_diffs (bucket DateTime('UTC'), key String, n Int64, seq UInt64) ENGINE = Null
;
CREATE TABLE IF NOT EXISTS logins_hourly_state (bucket DateTime('UTC'), key String, n AggregateFunction(sum, Int64), max_seq AggregateFunction(max, UInt64)) ENGINE = AggregatingMergeTree ORDER BY (bucket, key)
;
CREATE MATERIALIZED VIEW IF NOT EXISTS logins_hourly_mv TO logins_hourly_state AS SELECT bucket, key, sumState(n) AS n, maxState(seq) AS max_seq FROM logins_hourly_diffs GROUP BY bucket, key
;
CREATE VIEW IF NOT EXISTS logins_hourly AS SELECT bucket AS hour, key AS outcome, sumMerge(n) AS logins FROM logins_hourly_state GROUP BY hour, outcome
