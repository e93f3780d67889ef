//! The durable head of the log, observable from threads (blocking, with a timeout) and from
//! async tasks. The writer moves it only after a batch is durable (fsynced, or written to the
//! OS when none of its commands asks for an fsync: [`crate::Stager::durability`]), so a reader
//! that stays at or below the head never sees an entry that a crash of girok could take back
//! (nor, past the last fsync, a power loss anything but a tail of such entries).

use crate::Seq;
use parking_lot::{Condvar, Mutex};
use std::thread::Thread;
use std::time::Duration;
use tokio::sync::watch;

/// The highest durable seq (0 while the log is empty).
pub struct HeadSignal {
    head: Mutex<Seq>,
    changed: Condvar,
    watch: watch::Sender<Seq>,
    /// Threads that park (timely workers) and must be unparked when the head moves.
    parked: Mutex<Vec<Thread>>,
}

impl HeadSignal {
    pub(crate) fn new(head: Seq) -> Self {
        Self {
            head: Mutex::new(head),
            changed: Condvar::new(),
            watch: watch::Sender::new(head),
            parked: Mutex::new(Vec::new()),
        }
    }

    pub(crate) fn advance(&self, head: Seq) {
        self.advance_then(head, || {});
    }

    /// Moves the head to `head`, runs `first`, then wakes whoever waits for the head: what
    /// `first` does (the writer hands the batch to its durable feed) is done by the time a
    /// woken reader looks, while a reader that looks meanwhile already sees the new head.
    pub(crate) fn advance_then(&self, head: Seq, first: impl FnOnce()) {
        *self.head.lock() = head;
        first();
        self.changed.notify_all();
        self.watch.send_replace(head);
        self.unpark_all();
    }

    /// Registers a thread that parks while idle; it is unparked whenever the head moves.
    pub fn unpark_on_advance(&self, thread: Thread) {
        self.parked.lock().push(thread);
    }

    /// Forgets a registered thread.
    pub fn forget_thread(&self, id: std::thread::ThreadId) {
        self.parked.lock().retain(|t| t.id() != id);
    }

    /// Unparks every registered thread (used to make them notice a stop request).
    pub fn unpark_all(&self) {
        for thread in self.parked.lock().iter() {
            thread.unpark();
        }
    }

    /// The current durable head.
    pub fn get(&self) -> Seq {
        *self.head.lock()
    }

    /// Blocks until the head exceeds `seen` or `timeout` passes; returns the head.
    pub fn wait_past(&self, seen: Seq, timeout: Duration) -> Seq {
        let mut head = self.head.lock();
        if *head <= seen {
            self.changed.wait_for(&mut head, timeout);
        }
        *head
    }

    /// An async receiver of head changes.
    pub fn subscribe(&self) -> watch::Receiver<Seq> {
        self.watch.subscribe()
    }
}
