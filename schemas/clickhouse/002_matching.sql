-- girok analytics, version 2: random matching's rollups, in the shape of version 1's.
-- `matches_hourly`: matches made per hour. `match_waits_hourly`: per hour, how many matched
-- tickets waited each number of milliseconds (the key), from which the view takes the median
-- and the 99th percentile, weighted by those counts: exact, whatever the number of matches.
CREATE TABLE IF NOT EXISTS matches_hourly_diffs (bucket DateTime('UTC'), key String, n Int64, seq UInt64) ENGINE = Null
;
CREATE TABLE IF NOT EXISTS matches_hourly_state (bucket DateTime('UTC'), key String, n AggregateFunction(sum, Int64), max_seq AggregateFunction(max, UInt64)) ENGINE = AggregatingMergeTree ORDER BY (bucket, key)
;
CREATE MATERIALIZED VIEW IF NOT EXISTS matches_hourly_mv TO matches_hourly_state AS SELECT bucket, key, sumState(n) AS n, maxState(seq) AS max_seq FROM matches_hourly_diffs GROUP BY bucket, key
;
CREATE VIEW IF NOT EXISTS matches_hourly AS SELECT bucket AS hour, sumMerge(n) AS matches FROM matches_hourly_state GROUP BY hour
;
CREATE TABLE IF NOT EXISTS match_waits_hourly_diffs (bucket DateTime('UTC'), key String, n Int64, seq UInt64) ENGINE = Null
;
CREATE TABLE IF NOT EXISTS match_waits_hourly_state (bucket DateTime('UTC'), key String, n AggregateFunction(sum, Int64), max_seq AggregateFunction(max, UInt64)) ENGINE = AggregatingMergeTree ORDER BY (bucket, key)
;
CREATE MATERIALIZED VIEW IF NOT EXISTS match_waits_hourly_mv TO match_waits_hourly_state AS SELECT bucket, key, sumState(n) AS n, maxState(seq) AS max_seq FROM match_waits_hourly_diffs GROUP BY bucket, key
;
CREATE VIEW IF NOT EXISTS match_waits_hourly AS SELECT hour, sum(matched) AS tickets, quantileExactWeighted(0.5)(wait_ms, matched) AS wait_p50_ms, quantileExactWeighted(0.99)(wait_ms, matched) AS wait_p99_ms FROM (SELECT bucket AS hour, toUInt64(key) AS wait_ms, toUInt64(greatest(sumMerge(n), 0)) AS matched FROM match_waits_hourly_state GROUP BY hour, wait_ms) WHERE matched > 0 GROUP BY hour
