//! The sessions that live connections (`/ws`, `/graphql/ws`) run under, so that ending a
//! session ends its sockets at once. Logout, `revokeSession`, a password change and a reused
//! refresh token all commit `SessionRevoked`, which the hub publishes on
//! [`Topic::Sessions`]; one task follows that topic and wakes every connection watching the
//! revoked session. A connection under a Bearer token also ends when the token stops being
//! accepted (its `exp` plus the leeway), unless the client gave it a fresh one. Signing a
//! connection in here also counts it for its user, up to `ws.max_sockets_per_user`.

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
    /// The session was revoked (logout, `revokeSession`, a password change, a reused
    /// refresh token).
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
        });
        let revocations = engine.hub().subscribe(Topic::Sessions);
        tokio::spawn(follow(
            Arc::downgrade(engine),
            Arc::downgrade(&sessions),
            revocations,
        ));
        sessions
    }

    /// Counts a live connection of `principal` (refused past the user's ceiling) and
    /// returns what resolves when its session is revoked or its credential stops being
    /// accepted; dropping that ends the count and the watch.
    pub fn sign_in(
        self: &Arc<Self>,
        engine: Arc<Engine>,
        principal: Principal,
    ) -> Result<impl Future<Output = Ending> + Send + 'static, TooManySockets> {
        let mut watch = self.watch(principal)?;
        Ok(async move {
            // A revocation committed before the watch began is in the write model already
            // (its caches are dropped before the hub publishes it). A read that fails says
            // nothing: the watch goes on.
            if let Ok(owner) = engine.active_session(principal.session).await
                && owner != Some(principal.user)
            {
                return Ending::Revoked;
            }
            drop(engine);
            let expiry = async {
                match principal.accepted_until {
                    Some(until) => tokio::time::sleep(seconds_until(until)).await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                () = watch.revoked() => Ending::Revoked,
                () = expiry => Ending::Expired,
            }
        })
    }

    fn watch(self: &Arc<Self>, principal: Principal) -> Result<Watch, TooManySockets> {
        let mut watched = self.watched.lock();
        let connections = watched.users.entry(principal.user).or_insert(0);
        if *connections >= self.max_per_user {
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
        if let Some(connections) = watched.users.get_mut(&user) {
            *connections -= 1;
            if *connections == 0 {
                watched.users.remove(&user);
            }
        }
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

/// How long until the Unix second `until` has passed.
fn seconds_until(until: i64) -> Duration {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    let end = Duration::from_secs(until.max(0) as u64 + 1);
    end.saturating_sub(now)
}
