//! Login rate limits per username and per client IP (in memory, never logged). A refused
//! attempt gets 429 with Retry-After and costs no password hash.

use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};
use std::num::NonZeroU32;
use std::time::Duration;

/// Keys kept before old, idle ones are dropped.
const MAX_TRACKED: usize = 100_000;

pub struct LoginLimiter {
    per_username: DefaultKeyedRateLimiter<String>,
    per_ip: DefaultKeyedRateLimiter<String>,
}

fn quota(per_minute: u32) -> Quota {
    Quota::per_minute(NonZeroU32::new(per_minute.max(1)).unwrap_or(NonZeroU32::MIN))
}

impl LoginLimiter {
    pub fn new(per_username_per_minute: u32, per_ip_per_minute: u32) -> Self {
        Self {
            per_username: RateLimiter::keyed(quota(per_username_per_minute)),
            per_ip: RateLimiter::keyed(quota(per_ip_per_minute)),
        }
    }

    /// `Err(wait)` when the attempt is over either limit.
    pub fn check(&self, username: &str, ip: &str) -> Result<(), Duration> {
        for (limiter, key) in [
            (&self.per_ip, ip.to_owned()),
            (&self.per_username, username.to_lowercase()),
        ] {
            if limiter.len() > MAX_TRACKED {
                limiter.retain_recent();
            }
            if let Err(not_until) = limiter.check_key(&key) {
                return Err(not_until.wait_time_from(DefaultClock::default().now()));
            }
        }
        Ok(())
    }
}
