//! Hot objects: bounded in-memory caches that let reads answer without a trip to fjall, and
//! so without a hop to a blocking thread. Two kinds:
//!
//! - **Log events by seq** (the bodies of posts, comments and messages, and their edits).
//!   Events never change, so these are never invalidated; they are filled as the hub publishes
//!   each committed event ("on write") and by reads that missed.
//! - **User profiles**, **session states**, **room records**, **memberships** and **post
//!   liveness**, which writes change. The log writer drops the
//!   entries a batch changed right after the batch commits and before any of its commands is
//!   answered ([`girok_storage::Stager::committed`]), so a read after an acknowledged write
//!   never sees the old value; a revoked session stops working at once.
//!
//! A read that missed fills the cache with what it read from the store; if a write changed that
//! entry meanwhile, the fill must not put the old value back. [`Guarded`] makes that so: a fill
//! notes its stripe's epoch before reading the store and inserts only if no invalidation of the
//! stripe came in between (under the stripe's lock, which invalidations take too).
//!
//! Every cache has an explicit bound (`[cache]` in the configuration) and counts its hits and
//! misses (`girok_cache_lookups_total{cache, result}`).

use crate::accounts::UserView;
use crate::records::member_of_key;
use girok_schemas::proto::RoomRecord;
use girok_schemas::{Event, EventId, Payload, RoomId, Seq, SessionId, UserId};
use girok_storage::{Table, WrittenKeys};
use parking_lot::Mutex;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;
use quick_cache::Weighter;
use quick_cache::sync::Cache;
use std::hash::{BuildHasher, Hash};
use std::sync::Arc;

/// The bounds of the hot-object caches.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HotConfig {
    /// Bytes of decoded events (approximate: the text they carry plus a fixed overhead).
    pub event_bytes: u64,
    /// User profiles.
    pub users: usize,
    /// Session states.
    pub sessions: usize,
    /// Room records.
    pub rooms: usize,
    /// Answers to "is this user a member of this room" (yes or no).
    pub memberships: usize,
    /// Answers to "is this post live, and at which seq".
    pub posts: usize,
}

impl Default for HotConfig {
    fn default() -> Self {
        Self {
            event_bytes: 128 << 20,
            users: 100_000,
            sessions: 100_000,
            rooms: 100_000,
            memberships: 500_000,
            posts: 500_000,
        }
    }
}

/// What the session check needs of a session record.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct SessionState {
    pub user: Option<UserId>,
    pub revoked: bool,
    pub expires_ms: i64,
}

/// The caches.
pub struct HotObjects {
    events: Cache<Seq, Arc<Event>, EventWeight>,
    users: Guarded<UserId, Arc<UserView>>,
    sessions: Guarded<SessionId, SessionState>,
    rooms: Guarded<RoomId, Arc<RoomRecord>>,
    members: Guarded<(RoomId, UserId), bool>,
    /// A post's seq by id while it is live (`None`: deleted, or no such post).
    posts: Guarded<EventId, Option<Seq>>,
    metrics: HotMetrics,
}

impl HotObjects {
    pub fn new(config: HotConfig) -> Self {
        let event_bytes = config.event_bytes.max(1 << 20);
        Self {
            // quick_cache sizes its tables from an estimate of the item count.
            events: Cache::with_weighter(
                (event_bytes / 512).max(1024) as usize,
                event_bytes,
                EventWeight,
            ),
            users: Guarded::new(config.users.max(16)),
            sessions: Guarded::new(config.sessions.max(16)),
            rooms: Guarded::new(config.rooms.max(16)),
            members: Guarded::new(config.memberships.max(16)),
            posts: Guarded::new(config.posts.max(16)),
            metrics: HotMetrics::default(),
        }
    }

    /// Forgets every cached record a committed batch wrote (called by the log writer before
    /// any of the batch's commands is answered). Each cache mirrors one write-model table.
    pub(crate) fn forget(&self, written: &WrittenKeys) {
        forget_keys(written, Table::UseridUser, UserId::from_slice, &self.users);
        forget_keys(
            written,
            Table::SessionidSession,
            SessionId::from_slice,
            &self.sessions,
        );
        forget_keys(written, Table::PostidPost, EventId::from_slice, &self.posts);
        forget_keys(written, Table::RoomidRoom, RoomId::from_slice, &self.rooms);
        forget_keys(
            written,
            Table::RoomidUseridMember,
            member_of_key,
            &self.members,
        );
    }

    /// Forgets every cached object: after the store reopened (a healed storage error), writes
    /// that were committed but never made durable may be gone.
    pub(crate) fn clear(&self) {
        self.users.clear();
        self.sessions.clear();
        self.rooms.clear();
        self.members.clear();
        self.posts.clear();
        self.events.clear();
    }

    /// Keeps an event that reads may ask for (post, comment and message bodies, and their
    /// edits); other events are left out.
    pub(crate) fn remember_event(&self, event: &Arc<Event>) {
        self.events.fill(event.seq, event.clone(), ());
    }

    // The caches, for `Engine::through_cache`.
    pub(crate) fn events(&self) -> &Cache<Seq, Arc<Event>, EventWeight> {
        &self.events
    }
    pub(crate) fn users(&self) -> &Guarded<UserId, Arc<UserView>> {
        &self.users
    }
    pub(crate) fn sessions(&self) -> &Guarded<SessionId, SessionState> {
        &self.sessions
    }
    pub(crate) fn rooms(&self) -> &Guarded<RoomId, Arc<RoomRecord>> {
        &self.rooms
    }
    pub(crate) fn members(&self) -> &Guarded<(RoomId, UserId), bool> {
        &self.members
    }
    pub(crate) fn posts(&self) -> &Guarded<EventId, Option<Seq>> {
        &self.posts
    }

    /// Counts a batch's lookups in `cache` (`girok_cache_lookups_total`): once per batch, as
    /// a metric family lookup costs about as much as a cache hit.
    pub(crate) fn count(&self, cache: &'static str, hits: u64, misses: u64) {
        self.metrics.count(cache, hits, misses);
    }

    pub fn register_metrics(&self, registry: &mut Registry) {
        registry.register(
            "girok_cache_lookups",
            "Lookups in the hot-object caches, by cache and result (hit or miss)",
            self.metrics.lookups.clone(),
        );
        registry.register(
            "girok_cache_event_bytes",
            "Approximate bytes of decoded events in the event cache",
            self.metrics.event_bytes.clone(),
        );
    }

    /// The event cache's weight, bytes.
    pub fn event_bytes(&self) -> u64 {
        self.events.weight()
    }

    /// Refreshes the gauges (called when metrics are scraped).
    pub fn observe(&self) {
        self.metrics.event_bytes.set(self.event_bytes() as i64);
    }
}

fn forget_keys<K: Hash + Eq + Clone, V: Clone>(
    written: &WrittenKeys,
    table: Table,
    parse: impl Fn(&[u8]) -> Option<K>,
    cache: &Guarded<K, V>,
) {
    for key in written.keys(table).filter_map(parse) {
        cache.invalidate(&key);
    }
}

/// The events reads resolve by seq.
fn is_object(payload: &Payload) -> bool {
    matches!(
        payload,
        Payload::PostCreated { .. }
            | Payload::PostEdited { .. }
            | Payload::CommentAdded { .. }
            | Payload::MessageSent { .. }
            | Payload::MessageEdited { .. }
    )
}

#[derive(Clone)]
pub(crate) struct EventWeight;

impl Weighter<Seq, Arc<Event>> for EventWeight {
    fn weight(&self, _seq: &Seq, event: &Arc<Event>) -> u64 {
        let text = match &event.payload {
            Payload::PostCreated {
                content, media_ids, ..
            }
            | Payload::PostEdited {
                content, media_ids, ..
            } => content.len() + media_ids.iter().map(|m| m.len() + 24).sum::<usize>(),
            Payload::CommentAdded { content, .. } => content.len(),
            Payload::MessageSent { body, .. } | Payload::MessageEdited { body, .. } => body.len(),
            _ => 0,
        };
        // The event itself, the Arc's counts and the cache's own entry.
        (std::mem::size_of::<Event>() + 64 + text) as u64
    }
}

/// Invalidation stripes of a [`Guarded`] cache: a write bumps one stripe's epoch, so a fill
/// of an unrelated key is withdrawn only when it shares the stripe (rarely).
const STRIPES: usize = 64;

/// A bounded cache of values that writes change (see the module's paragraph on fills).
pub(crate) struct Guarded<K, V> {
    cache: Cache<K, V>,
    /// Per stripe, how many invalidations it has seen. A fill checks and inserts under the
    /// stripe's lock, and an invalidation bumps and removes under it, so a fill is either
    /// before an invalidation (which then removes it) or after it (and sees the new epoch):
    /// no reader can find an old value once the invalidation returned.
    epochs: Vec<Mutex<u64>>,
    hasher: foldhash::fast::RandomState,
}

/// Taken before a fill reads the store.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Ticket {
    stripe: usize,
    epoch: u64,
}

impl<K: Hash + Eq + Clone, V: Clone> Guarded<K, V> {
    fn new(capacity: usize) -> Self {
        Self {
            cache: Cache::new(capacity),
            epochs: (0..STRIPES).map(|_| Mutex::new(0)).collect(),
            hasher: foldhash::fast::RandomState::default(),
        }
    }

    fn stripe(&self, key: &K) -> usize {
        (self.hasher.hash_one(key) % STRIPES as u64) as usize
    }

    fn get(&self, key: &K) -> Option<V> {
        self.cache.get(key)
    }

    /// Take this before reading `key` from the store.
    pub fn ticket(&self, key: &K) -> Ticket {
        let stripe = self.stripe(key);
        Ticket {
            stripe,
            epoch: *self.epochs[stripe].lock(),
        }
    }

    /// Keeps what a read found, unless a write to the stripe came after the ticket.
    pub fn fill(&self, key: K, value: V, ticket: Ticket) {
        let epoch = self.epochs[ticket.stripe].lock();
        if *epoch == ticket.epoch {
            self.cache.insert(key, value);
        }
    }

    /// Forgets `key`: called after the write that changed it committed.
    pub fn invalidate(&self, key: &K) {
        let mut epoch = self.epochs[self.stripe(key)].lock();
        *epoch += 1;
        self.cache.remove(key);
    }

    /// Forgets everything, withdrawing fills in progress.
    fn clear(&self) {
        let mut epochs: Vec<_> = self.epochs.iter().map(|e| e.lock()).collect();
        for epoch in &mut epochs {
            **epoch += 1;
        }
        self.cache.clear();
    }
}

/// A cache the read paths look keys up in and fill after reading the store: the shape
/// [`crate::Engine`]'s batched lookups work with.
pub(crate) trait Fillable<K, V>: Send + Sync + 'static {
    type Ticket: Copy + Send + 'static;
    fn lookup(&self, key: &K) -> Option<V>;
    fn ticket(&self, key: &K) -> Self::Ticket;
    fn fill(&self, key: K, value: V, ticket: Self::Ticket);
}

impl<K, V> Fillable<K, V> for Guarded<K, V>
where
    K: Hash + Eq + Clone + Send + Sync + 'static,
    V: Clone + Send + Sync + 'static,
{
    type Ticket = Ticket;
    fn lookup(&self, key: &K) -> Option<V> {
        self.get(key)
    }
    fn ticket(&self, key: &K) -> Ticket {
        Guarded::ticket(self, key)
    }
    fn fill(&self, key: K, value: V, ticket: Ticket) {
        Guarded::fill(self, key, value, ticket)
    }
}

/// Events never change: no tickets.
impl Fillable<Seq, Arc<Event>> for Cache<Seq, Arc<Event>, EventWeight> {
    type Ticket = ();
    fn lookup(&self, seq: &Seq) -> Option<Arc<Event>> {
        self.get(seq)
    }
    fn ticket(&self, _: &Seq) {}
    fn fill(&self, _: Seq, event: Arc<Event>, _: ()) {
        if is_object(&event.payload) {
            self.insert(event.seq, event);
        }
    }
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct LookupLabel {
    cache: &'static str,
    result: &'static str,
}

#[derive(Default)]
struct HotMetrics {
    lookups: Family<LookupLabel, Counter>,
    event_bytes: Gauge,
}

impl HotMetrics {
    fn count(&self, cache: &'static str, hits: u64, misses: u64) {
        for (result, n) in [("hit", hits), ("miss", misses)] {
            if n > 0 {
                self.lookups
                    .get_or_create(&LookupLabel { cache, result })
                    .inc_by(n);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_fill_that_raced_an_invalidation_is_withdrawn() {
        let cache: Guarded<u32, &str> = Guarded::new(100);
        let ticket = cache.ticket(&7);
        // The write lands (and invalidates) while the fill is reading the old value.
        cache.invalidate(&7);
        cache.fill(7, "old", ticket);
        assert_eq!(cache.get(&7), None);
        // A fill that ran before the write's invalidation is removed by it.
        let ticket = cache.ticket(&7);
        cache.fill(7, "old", ticket);
        cache.invalidate(&7);
        assert_eq!(cache.get(&7), None);
        // A fill that started after the write is kept.
        let ticket = cache.ticket(&7);
        cache.fill(7, "new", ticket);
        assert_eq!(cache.get(&7), Some("new"));
        cache.invalidate(&7);
        assert_eq!(cache.get(&7), None);
    }

    #[test]
    fn only_objects_are_remembered_and_the_event_cache_is_bounded() {
        let hot = HotObjects::new(HotConfig {
            event_bytes: 1 << 20,
            users: 16,
            sessions: 16,
            rooms: 16,
            memberships: 16,
            posts: 16,
        });
        let event = |seq: Seq, payload: Payload| {
            Arc::new(Event {
                seq,
                commit_time_ms: 0,
                id: girok_schemas::EventId::new_v7(),
                actor: None,
                payload,
            })
        };
        let post = |seq| {
            event(
                seq,
                Payload::PostCreated {
                    content: "x".repeat(1000),
                    media_ids: Vec::new(),
                    mentions: Vec::new(),
                },
            )
        };
        hot.remember_event(&post(1));
        hot.remember_event(&event(
            2,
            Payload::UserFollowed {
                user: UserId::new_v7(),
            },
        ));
        assert!(hot.events.get(&1).is_some());
        assert!(hot.events.get(&2).is_none());
        for seq in 3..10_000 {
            hot.remember_event(&post(seq));
        }
        assert!(hot.events.weight() <= 1 << 20, "{}", hot.events.weight());
        assert!(hot.events.len() < 10_000);
    }
}
