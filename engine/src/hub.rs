//! The live hub: publishes every committed event to the subscribers of its topics, once it is
//! durable (a subscriber never sees an event that a crash of girok could take back; see
//! `Stager::durability` for what a power loss may). Events come
//! straight from the log writer's durable feed, decoded once; only a hub that fell behind
//! reads from the log. Each event is shared by every subscriber as a [`LiveEvent`], which
//! renders it once per wire format, so delivery does no work per subscriber beyond a queue
//! push. The decoded event is also kept in the hot-object cache, for the reads that
//! follow. Frontends (WebSocket, GraphQL subscriptions, QUIC) subscribe through this API.

use crate::channels::Channels;
use crate::hot::HotObjects;
use crate::tailer::Tailer;
use girok_schemas::{Event, Payload, RoomId, Seq, UserId, decode_event};
use girok_storage::Store;
use parking_lot::Mutex;
use std::any::Any;
use std::sync::Arc;
use tokio::sync::broadcast;

/// Events per topic a slow subscriber may fall behind before it sees `Lagged` (and should
/// catch up from the log by seq).
pub const DEFAULT_TOPIC_CAPACITY: usize = 1024;
/// Log entries read per step while catching up.
const CHUNK: usize = 1024;

/// What a subscriber listens to.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Topic {
    /// Every event of one room.
    Room(RoomId),
    /// Events addressed to one user: being added to or removed from a room.
    User(UserId),
    /// One user's random matching: their ticket opening and closing, a match made or ended.
    /// Apart from `User` so that neither kind of follower wakes for the other's events.
    Matching(UserId),
    /// Every event in the log.
    Log,
    /// Every revocation of a session (`SessionRevoked`), so that connections living under a
    /// session end with it.
    Sessions,
}

/// A committed event as live subscribers share it, with its renderings: a frontend turns the
/// event into its wire frame once ([`LiveEvent::rendered`]) and every subscriber of that
/// frontend sends the same bytes.
pub struct LiveEvent {
    event: Arc<Event>,
    renderings: Mutex<Vec<(&'static str, Arc<dyn Any + Send + Sync>)>>,
}

impl LiveEvent {
    /// The event, shared with the hot-object cache.
    pub fn new(event: Arc<Event>) -> Self {
        Self {
            event,
            renderings: Mutex::new(Vec::new()),
        }
    }

    /// The event rendered as `format` (a name the frontend picks, one per wire format): made
    /// by `render` for the first subscriber that asks, shared with every later one.
    pub fn rendered<T: Clone + Send + Sync + 'static>(
        &self,
        format: &'static str,
        render: impl FnOnce(&Event) -> T,
    ) -> T {
        let mut renderings = self.renderings.lock();
        if let Some(found) = renderings
            .iter()
            .find(|(name, _)| *name == format)
            .and_then(|(_, value)| value.downcast_ref::<T>())
        {
            return found.clone();
        }
        let value = render(&self.event);
        renderings.retain(|(name, _)| *name != format);
        renderings.push((format, Arc::new(value.clone())));
        value
    }
}

impl std::ops::Deref for LiveEvent {
    type Target = Event;

    fn deref(&self) -> &Event {
        &self.event
    }
}

impl std::fmt::Debug for LiveEvent {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.event.fmt(f)
    }
}

/// Topic subscriptions.
pub struct Hub {
    topics: Channels<Topic, Arc<LiveEvent>>,
    /// The last seq published (how far behind the durable head live delivery is).
    published: std::sync::atomic::AtomicU64,
}

impl Hub {
    /// A hub whose topics buffer `capacity` events per subscriber.
    pub fn new(capacity: usize) -> Self {
        Self {
            topics: Channels::new(capacity),
            published: std::sync::atomic::AtomicU64::new(0),
        }
    }

    /// The last seq the hub published to live subscribers.
    pub fn published(&self) -> Seq {
        self.published.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Subscribes to a topic; events the hub publishes from now on arrive in seq order. The
    /// hub runs just behind the durable head, so an event committed right before the call may
    /// be missed: a client that needs no gap resumes from the log by seq.
    pub fn subscribe(&self, topic: Topic) -> broadcast::Receiver<Arc<LiveEvent>> {
        self.topics.subscribe(topic)
    }

    /// Topics with at least one subscriber (and, until swept, a few without).
    pub fn topic_count(&self) -> usize {
        self.topics.len()
    }

    fn publish(&self, hot: &HotObjects, seq: Seq, bytes: &[u8]) {
        self.published
            .store(seq, std::sync::atomic::Ordering::Relaxed);
        let event = match decode_event(bytes) {
            Ok(event) => event,
            Err(error) => {
                tracing::error!(seq, %error, "hub skipped an undecodable event");
                return;
            }
        };
        let room = event.payload.room().map(Topic::Room);
        // Whoever joins or leaves a room hears it on their own topic (a match's room too).
        let members = event.memberships().map(|m| Topic::User(m.user));
        let addressed: [Option<Topic>; 2] = match &event.payload {
            Payload::TicketClosed { user, .. } => [Some(Topic::Matching(*user)), None],
            Payload::TicketOpened { .. } => [event.actor.map(Topic::Matching), None],
            Payload::Matched { user_a, user_b, .. } => [
                Some(Topic::Matching(*user_a)),
                Some(Topic::Matching(*user_b)),
            ],
            Payload::MatchSkipped { partner, .. } => [
                event.actor.map(Topic::Matching),
                Some(Topic::Matching(*partner)),
            ],
            Payload::SessionRevoked { .. } => [Some(Topic::Sessions), None],
            _ => [None, None],
        };
        // Members (a room's topic, a user's own) see a match and a skip without what is each
        // user's own; the matching topics and the log's see the event whole.
        let shown = event
            .for_members()
            .map(|e| Arc::new(LiveEvent::new(Arc::new(e))));
        let event = Arc::new(event);
        hot.remember_event(&event);
        let whole = Arc::new(LiveEvent::new(event));
        let addressed = std::iter::once(Topic::Log).chain(addressed.into_iter().flatten());
        let to_members = room.into_iter().chain(members);
        match shown {
            Some(shown) => {
                self.topics.send(addressed, &whole);
                self.topics.send(to_members, &shown);
            }
            None => self.topics.send(addressed.chain(to_members), &whole),
        }
    }
}

/// The hub's publishing loop on a thread of its own: on the async runtime, among thousands
/// of socket tasks, the one task that publishes for all of them got its turn once per round
/// of the whole queue, and under a flood it fell tens of thousands of events behind the log
/// (`girok_hub_lag_events`) while every subscriber waited for it. On its own thread (with a
/// small runtime for its waits) it takes the CPU as the kernel shares it out, and its
/// broadcasts wake the subscribers on the main runtime.
pub(crate) struct HubThread {
    /// Sent, or dropped with an engine that was never shut down: either ends the loop.
    stop: tokio::sync::oneshot::Sender<()>,
    thread: std::thread::JoinHandle<()>,
}

impl HubThread {
    /// Starts publishing every event after `after`.
    pub fn start(
        hub: Arc<Hub>,
        store: Arc<Store>,
        hot: Arc<HotObjects>,
        after: Seq,
    ) -> std::io::Result<Self> {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let thread = std::thread::Builder::new()
            .name("girok-hub".into())
            .spawn(move || {
                crate::background::latency_critical("hub");
                runtime.block_on(async move {
                    tokio::select! {
                        () = run(hub, store, hot, after) => {}
                        _ = stopped => {}
                    }
                });
            })?;
        Ok(Self { stop, thread })
    }

    /// Stops publishing and waits for the thread (blocking).
    pub fn stop(self) {
        let _ = self.stop.send(());
        if self.thread.join().is_err() {
            tracing::error!("the hub thread panicked");
        }
    }
}

/// Publishes every event after `after` as it becomes durable, until stopped ([`HubThread`]):
/// from the writer's durable feed, and from the log only for what the feed cannot give (what
/// came before the hub listened, what it dropped while the hub lagged behind it, a gap).
pub(crate) async fn run(hub: Arc<Hub>, store: Arc<Store>, hot: Arc<HotObjects>, after: Seq) {
    hub.published
        .store(after, std::sync::atomic::Ordering::Relaxed);
    // Listen before looking at the head, so every batch past it arrives on the feed.
    let mut feed = store.durable_batches();
    let mut next = after + 1;
    let mut tail = Tailer::new(store.clone(), next, None, "hub");
    let mut behind = true;
    loop {
        // The head moves before the feed gets a batch, so a catch-up up to the head covers
        // everything the feed skipped; the feed's copies of it are passed over below.
        while behind && next <= store.head().get() {
            tail.seek(next);
            next = catch_up(&hub, &mut tail, &hot).await;
        }
        behind = false;
        match feed.recv().await {
            Ok(batch) if batch.first_seq > next => behind = true, // a gap: the log has it
            Ok(batch) => {
                let from = next;
                for (seq, bytes) in batch.iter().skip_while(|(seq, _)| *seq < from) {
                    hub.publish(&hot, seq, bytes);
                    next = seq + 1;
                }
            }
            // Fell behind the feed: the log has what was dropped.
            Err(broadcast::error::RecvError::Lagged(_)) => behind = true,
            Err(broadcast::error::RecvError::Closed) => return,
        }
    }
}

/// Publishes one chunk of durable log entries from the tailer's position; the seq after them.
/// The read blocks the hub's own thread, where nothing else runs.
async fn catch_up(hub: &Hub, tail: &mut Tailer<Arc<Store>>, hot: &HotObjects) -> Seq {
    match tail.next_chunk(CHUNK) {
        Ok(entries) => {
            if entries.is_empty() {
                // The head moved but the entries are not readable yet: never spin.
                tokio::time::sleep(std::time::Duration::from_millis(1)).await;
            }
            for (seq, bytes) in &entries {
                hub.publish(hot, *seq, bytes);
            }
        }
        Err(retry) => tokio::time::sleep(retry.after).await,
    }
    // A long catch-up must not hold off a stop request (the read itself never yields).
    tokio::task::yield_now().await;
    tail.position()
}
