//! Per-user write rates, checked where every chat and feed command enters the engine
//! ([`crate::Engine::enqueue`]), so that GraphQL, REST, WebSocket (and later QUIC) share one
//! budget per user and kind of write: messages (sends, edits, deletes), posts, comments,
//! likes, follows, rooms (creating rooms, opening direct rooms, adding and removing
//! members), matching (joining the queue, skipping a match) and media uploads. A write past
//! its budget is refused at once with `RATE_LIMITED` and how long to wait; nothing of it is
//! written. Token buckets (governor), in memory only.

use crate::command::Command;
use crate::error::{Error, Result};
use crate::write_kind::WriteKind;
use girok_schemas::UserId;
use governor::clock::Clock;
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};
use serde::{Deserialize, Serialize};
use std::num::NonZeroU32;
use std::sync::atomic::{AtomicU32, Ordering};

/// Users tracked per kind before idle ones are dropped.
const MAX_TRACKED: usize = 100_000;

/// One budget: writes per minute, and how many may come at once.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Rate {
    /// Sustained writes per minute; 0: no limit.
    pub per_minute: u32,
    /// Writes that may come at once after a quiet spell.
    pub burst: u32,
}

impl Rate {
    pub const fn new(per_minute: u32, burst: u32) -> Self {
        Self { per_minute, burst }
    }
}

/// The budget of each kind of write, per user.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct WriteRates {
    pub messages: Rate,
    pub posts: Rate,
    pub comments: Rate,
    pub likes: Rate,
    pub follows: Rate,
    pub rooms: Rate,
    /// Joins of the matching queue and skips of a match.
    pub matching: Rate,
    /// Media upload requests (and one-step uploads).
    pub media: Rate,
}

impl Default for WriteRates {
    fn default() -> Self {
        Self {
            messages: Rate::new(1_800, 100),
            posts: Rate::new(30, 10),
            comments: Rate::new(60, 20),
            likes: Rate::new(300, 60),
            follows: Rate::new(60, 30),
            rooms: Rate::new(120, 30),
            matching: Rate::new(30, 10),
            media: Rate::new(60, 20),
        }
    }
}

impl WriteRates {
    /// No budget at all: what an engine opened as a library (tools, benchmarks) starts with;
    /// the server's configuration sets [`WriteRates::default`].
    pub fn unlimited() -> Self {
        let none = Rate::new(0, 0);
        Self {
            messages: none,
            posts: none,
            comments: none,
            likes: none,
            follows: none,
            rooms: none,
            matching: none,
            media: none,
        }
    }
}

/// The budget a command spends from; none for accounts (their own limits apply).
fn kind(command: &Command) -> Option<WriteKind> {
    match command {
        Command::Chat(command) => command.write_kind(),
        Command::Feed(command) => command.write_kind(),
        Command::Matching(command) => command.write_kind(),
        Command::Media(command) => command.write_kind(),
        Command::Account(_) => None,
    }
}

/// The buckets.
pub(crate) struct WriteLimiter {
    buckets: [Option<DefaultKeyedRateLimiter<UserId>>; 8],
    checks: AtomicU32,
}

/// Checks between two looks at how many users are tracked.
const HOUSEKEEPING_EVERY: u32 = 4096;

fn bucket(rate: Rate) -> Option<DefaultKeyedRateLimiter<UserId>> {
    let per_minute = NonZeroU32::new(rate.per_minute)?;
    let burst = NonZeroU32::new(rate.burst).unwrap_or(NonZeroU32::MIN);
    Some(RateLimiter::keyed(
        Quota::per_minute(per_minute).allow_burst(burst),
    ))
}

impl WriteLimiter {
    pub fn new(rates: &WriteRates) -> Self {
        Self {
            buckets: [
                bucket(rates.messages),
                bucket(rates.posts),
                bucket(rates.comments),
                bucket(rates.likes),
                bucket(rates.follows),
                bucket(rates.rooms),
                bucket(rates.matching),
                bucket(rates.media),
            ],
            checks: AtomicU32::new(0),
        }
    }

    /// Takes one write of `command`'s kind from `actor`'s budget, or says how long to wait.
    pub fn check(&self, actor: UserId, command: &Command) -> Result<()> {
        let Some(kind) = kind(command) else {
            return Ok(());
        };
        let Some(limiter) = &self.buckets[kind as usize] else {
            return Ok(());
        };
        // Housekeeping now and then, not on every write (`len` visits every shard), of every
        // kind's budgets (a rare kind's would otherwise seldom be looked at).
        if self
            .checks
            .fetch_add(1, Ordering::Relaxed)
            .is_multiple_of(HOUSEKEEPING_EVERY)
        {
            for tracked in self.buckets.iter().flatten() {
                if tracked.len() > MAX_TRACKED {
                    tracked.retain_recent();
                }
            }
        }
        limiter
            .check_key(&actor)
            .map_err(|not_until| Error::RateLimited {
                what: kind.name(),
                retry_after: not_until.wait_time_from(limiter.clock().now()),
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::chat::ChatCommand;
    use crate::feed::FeedCommand;
    use girok_schemas::RoomId;

    #[test]
    fn each_user_and_kind_has_its_own_budget() {
        let rates = WriteRates {
            messages: Rate::new(60, 2),
            posts: Rate::new(0, 0),
            ..WriteRates::default()
        };
        let limiter = WriteLimiter::new(&rates);
        let (ann, bob) = (UserId::new_v7(), UserId::new_v7());
        let send = Command::Chat(ChatCommand::SendMessage {
            room: RoomId::new_v7(),
            body: "hi".into(),
            client_id: None,
            reply_to: None,
            attachments: Vec::new(),
        });
        assert!(limiter.check(ann, &send).is_ok());
        assert!(limiter.check(ann, &send).is_ok());
        let refused = limiter.check(ann, &send).unwrap_err();
        assert_eq!(refused.code(), "RATE_LIMITED");
        assert!(refused.retry_after().is_some());
        assert!(limiter.check(bob, &send).is_ok(), "another user's budget");
        let post = Command::Feed(FeedCommand::CreatePost {
            content: "x".into(),
            media_ids: vec![],
        });
        for _ in 0..100 {
            assert!(limiter.check(ann, &post).is_ok(), "0 per minute: no limit");
        }
    }
}
