//! The live hub: publishes every committed event to the subscribers of its topics. It tails
//! the durable head, so a subscriber never sees an event that a crash could take back. Frontends
//! (WebSocket, GraphQL subscriptions, QUIC) subscribe through this in-process API.

use crate::channels::Channels;
use girok_schemas::{Event, Payload, RoomId, Seq, UserId, decode_event};
use girok_storage::Store;
use std::sync::Arc;
use tokio::sync::broadcast;

/// Events per topic a slow subscriber may fall behind before it sees `Lagged` (and should
/// resume from the log by seq).
pub const DEFAULT_TOPIC_CAPACITY: usize = 1024;
/// Log entries read per step while catching up.
const CHUNK: usize = 1024;

/// What a subscriber listens to.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Topic {
    /// Every event of one room.
    Room(RoomId),
    /// Events addressed to one user (today: being added to or removed from a room).
    User(UserId),
    /// Every event in the log.
    Log,
}

/// Topic subscriptions.
pub struct Hub {
    topics: Channels<Topic, Arc<Event>>,
}

impl Hub {
    /// A hub whose topics buffer `capacity` events per subscriber.
    pub fn new(capacity: usize) -> Self {
        Self {
            topics: Channels::new(capacity),
        }
    }

    /// Subscribes to a topic; events the hub publishes from now on arrive in seq order. The
    /// hub runs just behind the durable head, so an event committed right before the call may
    /// be missed: a client that needs no gap resumes from the log by seq.
    pub fn subscribe(&self, topic: Topic) -> broadcast::Receiver<Arc<Event>> {
        self.topics.subscribe(topic)
    }

    /// Topics with at least one subscriber (and, until swept, a few without).
    pub fn topic_count(&self) -> usize {
        self.topics.len()
    }

    fn publish(&self, event: Event) {
        let room = event.payload.room().map(Topic::Room);
        let user = match &event.payload {
            Payload::MemberJoined { user, .. } | Payload::MemberLeft { user, .. } => {
                Some(Topic::User(*user))
            }
            _ => None,
        };
        let topics = std::iter::once(Topic::Log).chain(room).chain(user);
        self.topics.send(topics, &Arc::new(event));
    }
}

/// Publishes every event after `after` as it becomes durable, until the task is aborted.
pub(crate) async fn run(hub: Arc<Hub>, store: Arc<Store>, after: Seq) {
    let mut tail = Some(store.tail(after + 1));
    loop {
        let Some(mut reader) = tail.take() else {
            return;
        };
        // fjall is synchronous: read chunks off the async runtime.
        let read = tokio::task::spawn_blocking(move || {
            let chunk = reader.next_chunk(CHUNK, None);
            (reader, chunk)
        })
        .await;
        let Ok((reader, chunk)) = read else {
            return; // runtime shutting down
        };
        match chunk {
            Ok(entries) if entries.is_empty() => {
                if !reader.wait_async().await {
                    return;
                }
            }
            Ok(entries) => {
                for (seq, bytes) in entries {
                    match decode_event(&bytes) {
                        Ok(event) => hub.publish(event),
                        Err(error) => {
                            tracing::error!(seq, %error, "hub skipped an undecodable event")
                        }
                    }
                }
            }
            Err(error) => {
                tracing::error!(%error, at = reader.position(), "hub cannot read the log; retrying");
                tokio::time::sleep(std::time::Duration::from_millis(100)).await;
            }
        }
        tail = Some(reader);
    }
}
