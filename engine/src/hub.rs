//! The live hub: publishes every committed event to the subscribers of its topics. It tails
//! the durable head, so a subscriber never sees an event that a crash could take back. Frontends
//! (WebSocket, GraphQL subscriptions, QUIC) subscribe through this in-process API.

use girok_schemas::{Event, Payload, RoomId, Seq, UserId, decode_event};
use girok_storage::Store;
use parking_lot::Mutex;
use std::collections::HashMap;
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
    topics: Mutex<Topics>,
    capacity: usize,
}

/// The topic map, swept of abandoned topics whenever it reaches `sweep_at` entries.
struct Topics {
    map: HashMap<Topic, broadcast::Sender<Arc<Event>>>,
    sweep_at: usize,
}

/// The smallest map that gets swept.
const MIN_SWEEP: usize = 64;

impl Hub {
    /// A hub whose topics buffer `capacity` events per subscriber.
    pub fn new(capacity: usize) -> Self {
        Self {
            topics: Mutex::new(Topics {
                map: HashMap::new(),
                sweep_at: MIN_SWEEP,
            }),
            capacity: capacity.max(1),
        }
    }

    /// Subscribes to a topic; events the hub publishes from now on arrive in seq order. The
    /// hub runs just behind the durable head, so an event committed right before the call may
    /// be missed: a client that needs no gap resumes from the log by seq.
    pub fn subscribe(&self, topic: Topic) -> broadcast::Receiver<Arc<Event>> {
        let mut topics = self.topics.lock();
        // A topic nobody listens to any more is dropped when an event reaches it; a quiet one
        // never would be, so sweep them out whenever the map has doubled (amortised O(1)).
        if topics.map.len() >= topics.sweep_at {
            topics.map.retain(|_, sender| sender.receiver_count() > 0);
            topics.sweep_at = MIN_SWEEP.max(2 * topics.map.len());
        }
        topics
            .map
            .entry(topic)
            .or_insert_with(|| broadcast::channel(self.capacity).0)
            .subscribe()
    }

    /// Topics with at least one subscriber (and, until swept, a few without).
    pub fn topic_count(&self) -> usize {
        self.topics.lock().map.len()
    }

    fn publish(&self, event: Event) {
        let event = Arc::new(event);
        let topics = &mut self.topics.lock().map;
        let mut send = |topic: Topic| {
            if let Some(sender) = topics.get(&topic)
                && sender.send(event.clone()).is_err()
            {
                // Nobody listens any more: drop the topic.
                topics.remove(&topic);
            }
        };
        send(Topic::Log);
        if let Some(room) = event.payload.room() {
            send(Topic::Room(room));
        }
        if let Payload::MemberJoined { user, .. } | Payload::MemberLeft { user, .. } =
            &event.payload
        {
            send(Topic::User(*user));
        }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn abandoned_quiet_topics_are_swept() {
        let hub = Hub::new(4);
        for _ in 0..MIN_SWEEP {
            drop(hub.subscribe(Topic::Room(RoomId::new_v7())));
        }
        let kept = hub.subscribe(Topic::Room(RoomId::new_v7()));
        assert_eq!(
            hub.topic_count(),
            1,
            "the abandoned topics went, the live one stayed"
        );
        drop(kept);
    }
}
