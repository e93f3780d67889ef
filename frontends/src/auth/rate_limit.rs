//! Login rate limits per account (however it is named) and per client IP, and registration
//! limits per client IP (in memory, never logged). A refused attempt gets 429 with
//! Retry-After and costs no password hash.

use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};
use std::num::NonZeroU32;
use std::time::Duration;

/// Keys kept before old, idle ones are dropped.
const MAX_TRACKED: usize = 100_000;

pub struct LoginLimiter {
    per_account: DefaultKeyedRateLimiter<String>,
    per_ip: DefaultKeyedRateLimiter<String>,
    registrations_per_ip: DefaultKeyedRateLimiter<String>,
}

fn quota(per_minute: u32) -> Quota {
    Quota::per_minute(NonZeroU32::new(per_minute.max(1)).unwrap_or(NonZeroU32::MIN))
}

/// Takes one attempt of `key` from `limiter`, or says how long to wait.
fn take(limiter: &DefaultKeyedRateLimiter<String>, key: &str) -> Result<(), Duration> {
    if limiter.len() > MAX_TRACKED {
        limiter.retain_recent();
    }
    limiter
        .check_key(&key.to_owned())
        .map_err(|not_until| not_until.wait_time_from(DefaultClock::default().now()))
}

impl LoginLimiter {
    pub fn new(
        per_account_per_minute: u32,
        per_ip_per_minute: u32,
        registrations_per_ip_per_minute: u32,
    ) -> Self {
        Self {
            per_account: RateLimiter::keyed(quota(per_account_per_minute)),
            per_ip: RateLimiter::keyed(quota(per_ip_per_minute)),
            registrations_per_ip: RateLimiter::keyed(quota(registrations_per_ip_per_minute)),
        }
    }

    /// A login attempt from `ip`: `Err(wait)` past the address's budget.
    pub fn check_ip(&self, ip: &str) -> Result<(), Duration> {
        take(&self.per_ip, ip)
    }

    /// A login attempt at `account` (its id when the name or email typed finds one, else
    /// what was typed): `Err(wait)` past the account's budget, however it was named.
    pub fn check_account(&self, account: &str) -> Result<(), Duration> {
        take(&self.per_account, &account.to_lowercase())
    }

    /// A registration from `ip`: `Err(wait)` past the address's budget.
    pub fn check_registration(&self, ip: &str) -> Result<(), Duration> {
        take(&self.registrations_per_ip, ip)
    }
}

/// Takes one from a connection's budget (a socket's sends or resumes); when it is spent, the
/// wait in milliseconds.
pub fn wait_if_spent(budget: &governor::DefaultDirectRateLimiter) -> Option<u64> {
    let not_until = budget.check().err()?;
    let wait = not_until.wait_time_from(governor::clock::Clock::now(budget.clock()));
    Some(girok_engine::error::retry_millis(wait))
}
