//! What a matching event means to one of the users it concerns: the one reading of the log
//! that every live transport (the WebSocket `matching` topic, GraphQL's `matchingUpdated`,
//! later QUIC) renders in its own words.

use girok_schemas::{Event, EventId, Payload, RoomId, Seq, UserId};

/// A change of a user's place in random matching.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum MatchingUpdate {
    /// Their ticket opened.
    Queued {
        ticket: EventId,
        tags: Vec<String>,
        language: Option<String>,
    },
    /// They were matched with `partner`; the match room is `room`.
    Matched {
        room: RoomId,
        partner: UserId,
        shared_tags: Vec<String>,
        /// How long they waited.
        waited_ms: i64,
    },
    /// Their ticket waited past its time.
    Expired { ticket_seq: Seq },
    /// Their ticket closed because they left the queue or lost their last connection
    /// (`reason`: `left`, `disconnected`).
    Dequeued { ticket_seq: Seq, reason: String },
    /// Their match in `room` ended; `by_me` when they skipped, else their partner did.
    Skipped { room: RoomId, by_me: bool },
}

impl MatchingUpdate {
    /// `event` as `user` sees it, if it is about their place in matching. A ticket closed by
    /// a match says nothing of its own: the match does.
    pub fn of(event: &Event, user: UserId) -> Option<MatchingUpdate> {
        match &event.payload {
            Payload::TicketOpened { tags, language } if event.actor == Some(user) => {
                Some(MatchingUpdate::Queued {
                    ticket: event.id,
                    tags: tags.clone(),
                    language: language.clone(),
                })
            }
            Payload::TicketClosed {
                user: owner,
                ticket_seq,
                reason,
                ..
            } if *owner == user => match reason.as_str() {
                super::stage::reason::MATCHED => None,
                super::stage::reason::EXPIRED => Some(MatchingUpdate::Expired {
                    ticket_seq: *ticket_seq,
                }),
                _ => Some(MatchingUpdate::Dequeued {
                    ticket_seq: *ticket_seq,
                    reason: reason.clone(),
                }),
            },
            Payload::Matched {
                room,
                user_a,
                user_b,
                shared_tags,
                wait_a_ms,
                wait_b_ms,
                ..
            } if *user_a == user || *user_b == user => {
                let (partner, waited_ms) = if *user_a == user {
                    (*user_b, *wait_a_ms)
                } else {
                    (*user_a, *wait_b_ms)
                };
                Some(MatchingUpdate::Matched {
                    room: *room,
                    partner,
                    shared_tags: shared_tags.clone(),
                    waited_ms,
                })
            }
            Payload::MatchSkipped { room, partner, .. }
                if event.actor == Some(user) || *partner == user =>
            {
                Some(MatchingUpdate::Skipped {
                    room: *room,
                    by_me: event.actor == Some(user),
                })
            }
            _ => None,
        }
    }

    /// The frame name transports use: `queued`, `matched`, `expired`, `dequeued`, `skipped`.
    pub fn kind(&self) -> &'static str {
        match self {
            MatchingUpdate::Queued { .. } => "queued",
            MatchingUpdate::Matched { .. } => "matched",
            MatchingUpdate::Expired { .. } => "expired",
            MatchingUpdate::Dequeued { .. } => "dequeued",
            MatchingUpdate::Skipped { .. } => "skipped",
        }
    }
}
