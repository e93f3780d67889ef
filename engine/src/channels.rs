//! Broadcast channels by key, for live fan-out: a channel is created by its first subscriber
//! and dropped when a send finds nobody listening; quiet abandoned channels are swept whenever
//! the map has doubled since the last sweep (amortised O(1)), so memory follows the live
//! subscriptions. The hub's topics and the frontends' presence signals both live in one.

use parking_lot::Mutex;
use std::collections::HashMap;
use std::hash::Hash;
use tokio::sync::broadcast;

/// The smallest map that gets swept.
const MIN_SWEEP: usize = 64;

struct Map<K, T> {
    senders: HashMap<K, broadcast::Sender<T>>,
    sweep_at: usize,
}

/// Keyed broadcast channels of `T`, each buffering `capacity` values per subscriber.
pub struct Channels<K, T> {
    map: Mutex<Map<K, T>>,
    capacity: usize,
}

impl<K: Hash + Eq + Copy, T: Clone> Channels<K, T> {
    pub fn new(capacity: usize) -> Self {
        Self {
            map: Mutex::new(Map {
                senders: HashMap::new(),
                sweep_at: MIN_SWEEP,
            }),
            capacity: capacity.max(1),
        }
    }

    /// Values sent to `key` from now on.
    pub fn subscribe(&self, key: K) -> broadcast::Receiver<T> {
        let mut map = self.map.lock();
        if map.senders.len() >= map.sweep_at {
            map.senders.retain(|_, sender| sender.receiver_count() > 0);
            map.sweep_at = MIN_SWEEP.max(2 * map.senders.len());
        }
        let capacity = self.capacity;
        map.senders
            .entry(key)
            .or_insert_with(|| broadcast::channel(capacity).0)
            .subscribe()
    }

    /// Sends `value` to the subscribers of each of `keys` (one lock for all of them).
    pub fn send(&self, keys: impl IntoIterator<Item = K>, value: &T) {
        let senders = &mut self.map.lock().senders;
        for key in keys {
            if let Some(sender) = senders.get(&key)
                && sender.send(value.clone()).is_err()
            {
                // Nobody listens any more.
                senders.remove(&key);
            }
        }
    }

    /// The keys that have subscribers now.
    pub fn keys(&self) -> Vec<K> {
        self.map
            .lock()
            .senders
            .iter()
            .filter(|(_, sender)| sender.receiver_count() > 0)
            .map(|(key, _)| *key)
            .collect()
    }

    /// Channels kept (those with subscribers and, until swept, a few without).
    pub fn len(&self) -> usize {
        self.map.lock().senders.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn abandoned_quiet_channels_are_swept_and_live_ones_deliver() {
        let channels = Channels::<u32, u8>::new(4);
        for key in 0..MIN_SWEEP as u32 {
            drop(channels.subscribe(key));
        }
        let mut kept = channels.subscribe(1000);
        assert_eq!(
            channels.len(),
            1,
            "the abandoned ones went, the live one stayed"
        );
        channels.send([1000, 7], &9);
        assert_eq!(kept.try_recv().unwrap(), 9);
    }
}
