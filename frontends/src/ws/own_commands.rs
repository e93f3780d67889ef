//! What a connection's own matching commands append, recognised when it comes by on the
//! connection's `matching` topic. The answer to a `join` already says the ticket (and the
//! match, when the join made one), the answer to a `leave` the ticket's end, and the answer
//! to a `skip` the skip: the topic does
//! not say them again to the connection that sent the command, whose client would only read
//! the same news twice (the user's other connections, and GraphQL subscribers, hear them as
//! usual). Each command's event id is picked before it is queued, so its event cannot come
//! by before the connection knows it.

use girok_schemas::{Event, EventId, Payload, Seq, UserId};
use parking_lot::Mutex;
use std::collections::VecDeque;

/// Ids (and ticket seqs) remembered per connection. A command that is refused appends
/// nothing, and its id waits here until newer ones push it out; past this many commands in
/// flight the oldest ones' events are told on the topic too (a repeat, never a loss).
const REMEMBERED: usize = 128;

#[derive(Default)]
pub(super) struct OwnCommands {
    inner: Mutex<Remembered>,
}

#[derive(Default)]
struct Remembered {
    /// Ids of the events the connection's commands will append first.
    ids: VecDeque<EventId>,
    /// Seqs of tickets the connection's joins opened, until a match names them.
    tickets: VecDeque<Seq>,
}

impl OwnCommands {
    /// A command whose own event will have `id` is about to be queued.
    pub fn sent(&self, id: EventId) {
        push_bounded(&mut self.inner.lock().ids, id);
    }

    /// The command with `id` was refused: its events, should a store that failed its fsync
    /// recover them, are told on the topic (its answer said it failed).
    pub fn forget(&self, id: EventId) {
        take(&mut self.inner.lock().ids, &id);
    }

    /// Whether `event` only repeats, to `me`, the answer to one of this connection's
    /// commands: the ticket its `join` opened, the match that join made at once (its
    /// `matching.matched` has the joiner as actor, a wave's has none), the ticket its `leave`
    /// closed, the skip its `skip` made.
    pub fn answered(&self, event: &Event, me: UserId) -> bool {
        if event.actor != Some(me) {
            return false;
        }
        let mut own = self.inner.lock();
        match &event.payload {
            Payload::TicketOpened { .. } => {
                let mine = take(&mut own.ids, &event.id);
                if mine {
                    push_bounded(&mut own.tickets, event.seq);
                }
                mine
            }
            Payload::MatchSkipped { .. } | Payload::TicketClosed { .. } => {
                take(&mut own.ids, &event.id)
            }
            Payload::Matched {
                user_a,
                ticket_a_seq,
                ticket_b_seq,
                ..
            } => {
                let ticket = if *user_a == me {
                    ticket_a_seq
                } else {
                    ticket_b_seq
                };
                take(&mut own.tickets, ticket)
            }
            _ => false,
        }
    }
}

fn push_bounded<T>(queue: &mut VecDeque<T>, value: T) {
    if queue.len() == REMEMBERED {
        queue.pop_front();
    }
    queue.push_back(value);
}

/// Removes `value` from `queue`; whether it was there.
fn take<T: PartialEq>(queue: &mut VecDeque<T>, value: &T) -> bool {
    match queue.iter().position(|v| v == value) {
        Some(at) => {
            queue.remove(at);
            true
        }
        None => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use girok_schemas::RoomId;

    fn event(seq: Seq, id: EventId, actor: UserId, payload: Payload) -> Event {
        Event {
            seq,
            commit_time_ms: 1,
            id,
            actor: Some(actor),
            payload,
        }
    }

    fn opened() -> Payload {
        Payload::TicketOpened {
            tags: vec![],
            language: None,
        }
    }

    fn matched(a: UserId, b: UserId, ticket_a_seq: Seq, ticket_b_seq: Seq) -> Payload {
        Payload::Matched {
            room: RoomId(EventId::new_v7().0),
            user_a: a,
            user_b: b,
            ticket_a_seq,
            ticket_b_seq,
            shared_tags: vec![],
            wait_a_ms: 5,
            wait_b_ms: 0,
            room_title: Some("Random match".into()),
        }
    }

    #[test]
    fn only_the_events_of_this_connections_commands_are_answered() {
        let (me, partner) = (UserId::new_v7(), UserId::new_v7());
        let own = OwnCommands::default();
        let (join, elsewhere) = (EventId::new_v7(), EventId::new_v7());
        own.sent(join);
        // Another connection's ticket of the same user is told.
        assert!(!own.answered(&event(3, elsewhere, me, opened()), me));
        assert!(own.answered(&event(7, join, me, opened()), me));
        // Once only.
        assert!(!own.answered(&event(7, join, me, opened()), me));
        // The match a wave made (no actor) is told; the one the join made is not.
        let mut by_wave = event(9, EventId::new_v7(), me, matched(partner, me, 2, 7));
        by_wave.actor = None;
        assert!(!own.answered(&by_wave, me));
        let by_join = event(9, EventId::new_v7(), me, matched(partner, me, 2, 7));
        assert!(own.answered(&by_join, me));
        // A match on a ticket another connection opened is told.
        let other = event(12, EventId::new_v7(), me, matched(partner, me, 2, 3));
        assert!(!own.answered(&other, me));
        // The skip this connection sent is not told; the partner's is.
        let skip = EventId::new_v7();
        own.sent(skip);
        let skipped = |id, actor| {
            let room = RoomId(EventId::new_v7().0);
            let payload = Payload::MatchSkipped {
                room,
                partner: me,
                until_ms: 9,
                members_left: true,
            };
            event(14, id, actor, payload)
        };
        assert!(!own.answered(&skipped(EventId::new_v7(), partner), me));
        assert!(own.answered(&skipped(skip, me), me));
        // A refused command's events, if they come after all, are told.
        let refused = EventId::new_v7();
        own.sent(refused);
        own.forget(refused);
        assert!(!own.answered(&event(20, refused, me, opened()), me));
    }

    #[test]
    fn what_it_remembers_is_bounded() {
        let me = UserId::new_v7();
        let own = OwnCommands::default();
        let first = EventId::new_v7();
        own.sent(first);
        for _ in 0..REMEMBERED {
            own.sent(EventId::new_v7());
        }
        assert_eq!(own.inner.lock().ids.len(), REMEMBERED);
        // Pushed out: its ticket is told on the topic (a repeat, not a loss).
        assert!(!own.answered(&event(2, first, me, opened()), me));
    }
}
