//! The circuit breaker of seed 002: 5 consecutive failures open it; after 30 s it lets trials
//! through (half open); 2 successes in a row close it, one failure opens it again. While it is
//! open the sink does not call ClickHouse at all: it waits, and the log keeps everything.

use std::time::{Duration, Instant};

/// Where the breaker is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BreakerState {
    Closed,
    Open,
    HalfOpen,
}

impl BreakerState {
    pub fn name(self) -> &'static str {
        match self {
            BreakerState::Closed => "closed",
            BreakerState::Open => "open",
            BreakerState::HalfOpen => "half_open",
        }
    }
}

/// A circuit breaker with seed 002's thresholds by default.
#[derive(Debug)]
pub struct CircuitBreaker {
    failures_to_open: u32,
    reset_after: Duration,
    successes_to_close: u32,
    state: BreakerState,
    failures: u32,
    successes: u32,
    opened_at: Option<Instant>,
}

impl CircuitBreaker {
    pub fn new(failures_to_open: u32, reset_after: Duration, successes_to_close: u32) -> Self {
        Self {
            failures_to_open: failures_to_open.max(1),
            reset_after,
            successes_to_close: successes_to_close.max(1),
            state: BreakerState::Closed,
            failures: 0,
            successes: 0,
            opened_at: None,
        }
    }

    pub fn state(&self) -> BreakerState {
        self.state
    }

    /// May a call go through now? If not, how long until a trial may.
    pub fn allow(&mut self, now: Instant) -> Result<(), Duration> {
        if self.state == BreakerState::Open {
            let opened = self.opened_at.unwrap_or(now);
            let reopen = opened + self.reset_after;
            if now < reopen {
                return Err(reopen - now);
            }
            self.state = BreakerState::HalfOpen;
            self.successes = 0;
        }
        Ok(())
    }

    pub fn record_success(&mut self) {
        self.failures = 0;
        if self.state == BreakerState::HalfOpen {
            self.successes += 1;
            if self.successes >= self.successes_to_close {
                self.state = BreakerState::Closed;
                self.opened_at = None;
            }
        }
    }

    pub fn record_failure(&mut self, now: Instant) {
        self.successes = 0;
        self.failures += 1;
        if self.state == BreakerState::HalfOpen || self.failures >= self.failures_to_open {
            self.state = BreakerState::Open;
            self.opened_at = Some(now);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn five_failures_open_thirty_seconds_half_open_two_successes_close() {
        let mut breaker = CircuitBreaker::new(5, Duration::from_secs(30), 2);
        let t0 = Instant::now();
        for _ in 0..4 {
            assert!(breaker.allow(t0).is_ok());
            breaker.record_failure(t0);
            assert_eq!(breaker.state(), BreakerState::Closed);
        }
        breaker.record_failure(t0);
        assert_eq!(breaker.state(), BreakerState::Open);
        assert_eq!(
            breaker.allow(t0 + Duration::from_secs(10)),
            Err(Duration::from_secs(20))
        );
        // After 30 s: a trial; one success is not enough, a failure reopens at once.
        assert!(breaker.allow(t0 + Duration::from_secs(30)).is_ok());
        assert_eq!(breaker.state(), BreakerState::HalfOpen);
        breaker.record_success();
        assert_eq!(breaker.state(), BreakerState::HalfOpen);
        let t1 = t0 + Duration::from_secs(31);
        breaker.record_failure(t1);
        assert_eq!(breaker.state(), BreakerState::Open);
        assert!(breaker.allow(t1 + Duration::from_secs(29)).is_err());
        assert!(breaker.allow(t1 + Duration::from_secs(30)).is_ok());
        breaker.record_success();
        breaker.record_success();
        assert_eq!(breaker.state(), BreakerState::Closed);
        // A success while closed resets the failure count.
        for _ in 0..4 {
            breaker.record_failure(t1);
        }
        breaker.record_success();
        breaker.record_failure(t1);
        assert_eq!(breaker.state(), BreakerState::Closed);
    }
}
