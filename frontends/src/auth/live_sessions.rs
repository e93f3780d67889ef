//! The sessions that live connections (`/ws`, `/graphql/ws`) run under, so that ending a
//! session ends its sockets at once. Logout, `revokeSession`, a password change and a reused
//! refresh token all commit `SessionRevoked`, which the hub publishes on
//! [`Topic::Sessions`]; one task follows that topic and wakes every connection watching the
//! revoked session. A connection also ends when its session expires (a cookie connection
//! lives as long as its session, refreshes included), and one under a Bearer token when the
//! token stops being accepted (its `exp` plus the leeway), unless the client gave it a fresh
//! one. Signing a connection in here also counts it for its user, up to
//! `ws.max_sockets_per_user` (at least 1); when a user's last live connection ends, an open
//! matching ticket of theirs is closed (`disconnected`), so nobody waits who cannot hear of
//! their match.

use crate::auth::Principal;
use girok_engine::{Engine, LiveEvent, Topic};
use girok_schemas::{Payload, SessionId, UserId};
use parking_lot::Mutex;
use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, Weak};
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use tokio::sync::{broadcast, watch};

/// Why a live connection's session ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Ending {
    /// The session ended: revoked (logout, `revokeSession`, a password change, a reused
    /// refresh token) or expired.
    Revoked,
    /// The access token the connection signed in with is no longer accepted.
    Expired,
}

impl Ending {
    /// The stable error code clients see.
    pub fn code(self) -> &'static str {
        match self {
            Ending::Revoked => "SESSION_ENDED",
            Ending::Expired => "TOKEN_EXPIRED",
        }
    }

    pub fn message(self) -> &'static str {
        match self {
            Ending::Revoked => "the session of this connection has ended; sign in again",
            Ending::Expired => {
                "the access token of this connection expired; send a fresh one (an auth frame) \
                 or reconnect"
            }
        }
    }
}

/// Revocation watches by session, and the live connections of each user.
pub struct LiveSessions {
    watched: Mutex<Watched>,
    max_per_user: usize,
    engine: Weak<Engine>,
}

/// A user has `ws.max_sockets_per_user` live connections already.
#[derive(Debug)]
pub struct TooManySockets(pub usize);

impl std::fmt::Display for TooManySockets {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} live connections per user at most (ws.max_sockets_per_user): close one first",
            self.0
        )
    }
}

#[derive(Default)]
struct Watched {
    sessions: HashMap<SessionId, Session>,
    users: HashMap<UserId, usize>,
}

/// One watched session: set to `true` once revoked; removed when nobody watches it.
struct Session {
    revoked: watch::Sender<bool>,
    watchers: usize,
}

impl LiveSessions {
    /// Starts following the revocations `engine` commits; each user may have
    /// `max_per_user` live connections.
    pub fn start(engine: &Arc<Engine>, max_per_user: usize) -> Arc<Self> {
        let sessions = Arc::new(Self {
            watched: Mutex::default(),
            max_per_user: max_per_user.max(1),
            engine: Arc::downgrade(engine),
        });
        let revocations = engine.hub().subscribe(Topic::Sessions);
        tokio::spawn(follow(
            Arc::downgrade(engine),
            Arc::downgrade(&sessions),
            revocations,
        ));
        sessions
    }

    /// Counts a live connection of `principal` (refused past the user's ceiling, unless
    /// `renewing` an already counted connection) and returns what resolves when its session
    /// is revoked or expires, or its access token stops being accepted; dropping that ends
    /// the count and the watch.
    pub fn sign_in(
        self: &Arc<Self>,
        engine: Arc<Engine>,
        principal: Principal,
        renewing: bool,
    ) -> Result<impl Future<Output = Ending> + Send + 'static, TooManySockets> {
        let mut watch = self.watch(principal, renewing)?;
        // The token's last accepted second, as a Unix millisecond.
        let token_until = principal
            .accepted_until
            .map(|second| second.saturating_add(1).saturating_mul(1000));
        Ok(async move {
            loop {
                // The session as the write model has it now: a revocation committed before
                // the watch began is there already (its caches are dropped before the hub
                // publishes it). A read that fails says nothing: look again in a while.
                let session_until = match engine.active_session_until(principal.session).await {
                    Ok(Some((owner, until))) if owner == principal.user => until,
                    Ok(_) => return Ending::Revoked,
                    Err(_) => now_ms().saturating_add(RECHECK_MS),
                };
                let deadline = token_until.map_or(session_until, |t| t.min(session_until));
                tokio::select! {
                    () = watch.revoked() => return Ending::Revoked,
                    () = tokio::time::sleep(millis_until(deadline)) => {}
                }
                if token_until.is_some_and(|t| t <= now_ms()) {
                    return Ending::Expired;
                }
                // The session's expiry came (or a failed read's wait ended): a refresh may
                // have moved it; the next look says.
            }
        })
    }

    fn watch(
        self: &Arc<Self>,
        principal: Principal,
        renewing: bool,
    ) -> Result<Watch, TooManySockets> {
        let mut watched = self.watched.lock();
        let connections = watched.users.entry(principal.user).or_insert(0);
        if *connections >= self.max_per_user && !renewing {
            return Err(TooManySockets(self.max_per_user));
        }
        *connections += 1;
        let session = watched
            .sessions
            .entry(principal.session)
            .or_insert_with(|| Session {
                revoked: watch::channel(false).0,
                watchers: 0,
            });
        session.watchers += 1;
        Ok(Watch {
            receiver: session.revoked.subscribe(),
            sessions: self.clone(),
            principal,
        })
    }

    fn revoke(&self, session: SessionId) {
        if let Some(watched) = self.watched.lock().sessions.get(&session) {
            watched.revoked.send_replace(true);
        }
    }

    /// Sessions watched now (for the lag fallback).
    fn sessions(&self) -> Vec<SessionId> {
        self.watched.lock().sessions.keys().copied().collect()
    }
}

/// One live connection, counted for its user, watching its session.
struct Watch {
    receiver: watch::Receiver<bool>,
    sessions: Arc<LiveSessions>,
    principal: Principal,
}

impl Watch {
    async fn revoked(&mut self) {
        while !*self.receiver.borrow_and_update() {
            if self.receiver.changed().await.is_err() {
                return std::future::pending().await;
            }
        }
    }
}

impl Drop for Watch {
    fn drop(&mut self) {
        let mut watched = self.sessions.watched.lock();
        let Principal { user, session, .. } = self.principal;
        if let Some(entry) = watched.sessions.get_mut(&session) {
            entry.watchers -= 1;
            if entry.watchers == 0 {
                watched.sessions.remove(&session);
            }
        }
        let mut last = false;
        if let Some(connections) = watched.users.get_mut(&user) {
            *connections -= 1;
            if *connections == 0 {
                watched.users.remove(&user);
                last = true;
            }
        }
        drop(watched);
        if last {
            self.sessions.last_connection_gone(user);
        }
    }
}

impl LiveSessions {
    /// `user` has no live connection any more: their open matching ticket, if any, closes.
    fn last_connection_gone(&self, user: UserId) {
        let (Some(engine), Ok(runtime)) =
            (self.engine.upgrade(), tokio::runtime::Handle::try_current())
        else {
            return; // the server is stopping: nothing to close for
        };
        runtime.spawn(async move {
            if let Err(error) = engine.matching_disconnected(user).await {
                tracing::debug!(%user, %error, "matching ticket of a gone connection not closed");
            }
        });
    }
}

/// Wakes the watchers of every revoked session; if it falls behind the hub, asks the write
/// model about every watched session instead.
async fn follow(
    engine: Weak<Engine>,
    sessions: Weak<LiveSessions>,
    mut revocations: broadcast::Receiver<Arc<LiveEvent>>,
) {
    loop {
        let received = revocations.recv().await;
        let Some(sessions) = sessions.upgrade() else {
            return;
        };
        match received {
            Ok(event) => {
                if let Payload::SessionRevoked { session, .. } = &event.payload {
                    sessions.revoke(*session);
                }
            }
            Err(broadcast::error::RecvError::Lagged(_)) => {
                let Some(engine) = engine.upgrade() else {
                    return;
                };
                for session in sessions.sessions() {
                    if let Ok(None) = engine.active_session(session).await {
                        sessions.revoke(session);
                    }
                }
            }
            Err(broadcast::error::RecvError::Closed) => return,
        }
    }
}

/// How long a watch waits to look at its session again after a failed read.
const RECHECK_MS: i64 = 60_000;

fn now_ms() -> i64 {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    i64::try_from(now.as_millis()).unwrap_or(i64::MAX)
}

/// How long until the Unix millisecond `until`.
fn millis_until(until: i64) -> Duration {
    Duration::from_millis(u64::try_from(until.saturating_sub(now_ms())).unwrap_or(0))
}
