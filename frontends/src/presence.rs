//! Presence and typing: who is online (a live WebSocket whose heartbeats arrived within the
//! last 60 s) and who is typing in which room (for 5 s after their last `typing` frame). Kept
//! in memory only, never logged: it is lost on restart, which is what presence should do.
//! Changes are pushed to the room's live subscribers as [`Signal`]s.

use girok_engine::Channels;
use girok_schemas::{RoomId, UserId};
use parking_lot::Mutex;
use std::collections::HashMap;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use tokio::sync::broadcast;

/// A user counts as online this long after their last heartbeat.
pub const ONLINE_TTL: Duration = Duration::from_secs(60);
/// Heartbeats closer together than this tell nothing new (a connection reports at most this
/// often, keeping the registry's lock off the path of every frame).
pub const HEARTBEAT_EVERY: Duration = Duration::from_secs(5);
/// A typing indicator lasts this long after it was last pushed.
pub const TYPING_TTL: Duration = Duration::from_secs(5);
/// A user's typing in a room is pushed to its subscribers at most this often, however many
/// `typing` frames arrive (the fan-out of one frame is every subscriber of the room).
pub const TYPING_RESEND: Duration = Duration::from_secs(1);
/// The smallest typing map that gets swept of rooms nobody typed in lately.
const MIN_TYPING_SWEEP: usize = 64;
/// Ephemeral signals buffered per room for a slow subscriber (older ones are dropped: a lost
/// typing indicator does no harm).
const SIGNAL_CAPACITY: usize = 256;

/// An ephemeral change in a room, pushed to its live subscribers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Signal {
    Typing { room: RoomId, user: UserId },
    Presence { user: UserId, online: bool },
}

#[derive(Clone, Copy)]
struct Seen {
    connections: u32,
    at: Instant,
    wall_ms: i64,
}

/// What one user's presence looks like to others.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Status {
    pub online: bool,
    /// When a heartbeat last arrived (ms since the epoch); `None` since the server started.
    pub last_seen_ms: Option<i64>,
}

/// Who typed where: per room, per user, when their typing was last pushed.
struct Typing {
    rooms: HashMap<RoomId, HashMap<UserId, Instant>>,
    /// Rooms whose indicators all expired are dropped when the map reaches this size.
    sweep_at: usize,
}

/// The presence registry.
pub struct Presence {
    seen: Mutex<HashMap<UserId, Seen>>,
    typing: Mutex<Typing>,
    signals: Channels<RoomId, Signal>,
}

impl Default for Presence {
    fn default() -> Self {
        Self {
            seen: Mutex::new(HashMap::new()),
            typing: Mutex::new(Typing {
                rooms: HashMap::new(),
                sweep_at: MIN_TYPING_SWEEP,
            }),
            signals: Channels::new(SIGNAL_CAPACITY),
        }
    }
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

impl Presence {
    /// A connection of `user` opened; `true` when the user just came online.
    pub fn connected(&self, user: UserId) -> bool {
        let mut seen = self.seen.lock();
        let entry = seen.entry(user).or_insert(Seen {
            connections: 0,
            at: Instant::now(),
            wall_ms: now_ms(),
        });
        let was_online = entry.connections > 0 && entry.at.elapsed() < ONLINE_TTL;
        entry.connections += 1;
        entry.at = Instant::now();
        entry.wall_ms = now_ms();
        !was_online
    }

    /// A heartbeat (any frame or pong) from one of the user's connections.
    pub fn heartbeat(&self, user: UserId) {
        if let Some(entry) = self.seen.lock().get_mut(&user) {
            entry.at = Instant::now();
            entry.wall_ms = now_ms();
        }
    }

    /// A connection closed; `true` when the user just went offline.
    pub fn disconnected(&self, user: UserId) -> bool {
        let mut seen = self.seen.lock();
        match seen.get_mut(&user) {
            Some(entry) => {
                entry.connections = entry.connections.saturating_sub(1);
                entry.connections == 0
            }
            None => false,
        }
    }

    pub fn status(&self, user: UserId) -> Status {
        match self.seen.lock().get(&user) {
            Some(seen) => Status {
                online: seen.connections > 0 && seen.at.elapsed() < ONLINE_TTL,
                last_seen_ms: Some(seen.wall_ms),
            },
            None => Status {
                online: false,
                last_seen_ms: None,
            },
        }
    }

    /// `user` is typing in `room` (the caller checked membership). Pushed to the room's
    /// subscribers unless it was pushed less than [`TYPING_RESEND`] ago.
    pub fn typing(&self, room: RoomId, user: UserId) {
        let now = Instant::now();
        {
            let mut typing = self.typing.lock();
            if typing.rooms.len() >= typing.sweep_at {
                typing.rooms.retain(|_, users| {
                    users.retain(|_, at| at.elapsed() < TYPING_TTL);
                    !users.is_empty()
                });
                typing.sweep_at = MIN_TYPING_SWEEP.max(2 * typing.rooms.len());
            }
            let users = typing.rooms.entry(room).or_default();
            if users
                .get(&user)
                .is_some_and(|at| now.duration_since(*at) < TYPING_RESEND)
            {
                return;
            }
            users.insert(user, now);
        }
        self.signal(room, Signal::Typing { room, user });
    }

    /// `user` types in `room`, if they are a member (every frontend's `typing` goes here).
    pub async fn member_typing(
        &self,
        engine: &girok_engine::Engine,
        room: RoomId,
        user: UserId,
    ) -> Result<(), girok_engine::Error> {
        engine.require_member(user, room).await?;
        self.typing(room, user);
        Ok(())
    }

    /// Who typed in `room` within the last [`TYPING_TTL`].
    pub fn typing_in(&self, room: RoomId) -> Vec<UserId> {
        let mut typing = self.typing.lock();
        let Some(users) = typing.rooms.get_mut(&room) else {
            return Vec::new();
        };
        users.retain(|_, at| at.elapsed() < TYPING_TTL);
        let mut current: Vec<UserId> = users.keys().copied().collect();
        if current.is_empty() {
            typing.rooms.remove(&room);
        }
        current.sort();
        current
    }

    /// Pushes a signal to the room's live subscribers, if any.
    pub fn signal(&self, room: RoomId, signal: Signal) {
        self.signals.send([room], &signal);
    }

    /// The room's ephemeral signals from now on.
    pub fn subscribe(&self, room: RoomId) -> broadcast::Receiver<Signal> {
        self.signals.subscribe(room)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn online_while_connected_offline_after_the_last_connection() {
        let presence = Presence::default();
        let user = UserId::new_v7();
        assert!(!presence.status(user).online);
        assert!(presence.connected(user), "came online");
        assert!(!presence.connected(user), "a second tab is no change");
        assert!(presence.status(user).online);
        assert!(!presence.disconnected(user));
        assert!(presence.disconnected(user), "went offline");
        let status = presence.status(user);
        assert!(!status.online && status.last_seen_ms.is_some());
    }

    #[test]
    fn typing_reaches_subscribers_and_is_listed() {
        let presence = Presence::default();
        let (room, user) = (RoomId::new_v7(), UserId::new_v7());
        let mut signals = presence.subscribe(room);
        presence.typing(room, user);
        assert_eq!(signals.try_recv().unwrap(), Signal::Typing { room, user });
        presence.typing(room, user);
        assert!(
            signals.try_recv().is_err(),
            "not pushed again within a second"
        );
        assert_eq!(presence.typing_in(room), vec![user]);
        assert!(presence.typing_in(RoomId::new_v7()).is_empty());
    }
}
