//! girok-analytics: the ClickHouse sink (not built yet; its own issue). Its role: read
//! committed events from the log by seq and write audit rows and dataflow rollups into
//! ClickHouse in batches, off the acknowledgement path, resuming exactly once from what
//! ClickHouse already holds, behind a circuit breaker. Until then girok runs with analytics off.
