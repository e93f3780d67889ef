//! Events for tests. The frozen fixture log: the events that `tests/fixtures/log-v1.bin`
//! holds, and its file format (records of `seq: u64 BE`, `len: u32 BE`, `len` bytes of encoded
//! event). The file was written once by format version 1 (`cargo run -p girok-schemas
//! --example write_fixture`) and is checked in; `tests/fixture.rs` proves every later girok
//! still decodes it. And one random match in both the forms a log may hold ([`MatchCycle`]).

use crate::{Event, EventId, Payload, RoomId, Seq, UserId};
use uuid::Uuid;

/// The events of the fixture, with fixed ids and times.
pub fn fixture_events() -> Vec<Event> {
    let alice = UserId(Uuid::from_u128(0x0190_0000_0000_7000_8000_0000_0000_00a1));
    let bob = UserId(Uuid::from_u128(0x0190_0000_0000_7000_8000_0000_0000_00b0));
    let room = RoomId(Uuid::from_u128(0x0190_0000_0000_7000_8000_0000_0000_0001));
    let at = |seq: Seq| 1_767_225_600_000 + seq as i64 * 1_000;
    let id = |seq: Seq| {
        EventId(Uuid::from_u128(
            0x0190_0000_0000_7000_8000_0000_0001_0000 + seq as u128,
        ))
    };
    let payloads = [
        (
            alice,
            Payload::RoomCreated {
                room,
                title: "general".into(),
                direct_with: None,
            },
        ),
        (alice, Payload::MemberJoined { room, user: alice }),
        (bob, Payload::MemberJoined { room, user: bob }),
        (
            alice,
            Payload::MessageSent {
                room,
                body: "hello, 세계".into(),
                client_id: Some("a-1".into()),
                reply_to: None,
                attachments: Vec::new(),
            },
        ),
        (
            bob,
            Payload::MessageSent {
                room,
                body: "hi alice".into(),
                client_id: None,
                reply_to: None,
                attachments: Vec::new(),
            },
        ),
        (bob, Payload::MemberLeft { room, user: bob }),
    ];
    payloads
        .into_iter()
        .zip(1..)
        .map(|((actor, payload), seq)| Event {
            seq,
            commit_time_ms: at(seq),
            id: id(seq),
            actor: Some(actor),
            payload,
        })
        .collect()
}

/// Writes records in the fixture file format.
pub fn write_records(records: &[(Seq, Vec<u8>)]) -> Vec<u8> {
    let mut out = Vec::new();
    for (seq, bytes) in records {
        out.extend_from_slice(&seq.to_be_bytes());
        out.extend_from_slice(&(bytes.len() as u32).to_be_bytes());
        out.extend_from_slice(bytes);
    }
    out
}

/// Reads records in the fixture file format; `None` if the file is truncated.
pub fn read_records(mut file: &[u8]) -> Option<Vec<(Seq, Vec<u8>)>> {
    let mut records = Vec::new();
    while !file.is_empty() {
        let seq = Seq::from_be_bytes(file.get(..8)?.try_into().ok()?);
        let len = u32::from_be_bytes(file.get(8..12)?.try_into().ok()?) as usize;
        records.push((seq, file.get(12..12 + len)?.to_vec()));
        file = &file[12 + len..];
    }
    Some(records)
}

/// One random match from both tickets to its end, as girok writes it now (`one_event`: the
/// match opens its room and the skip closes it, with `roomTitle` and `membersLeft`) or as logs
/// from before those fields have it (the room's `chat.*` events beside them). Ann waits, Bob's
/// join makes the match (both with the tag `hiking`), Ann skips. The match and the skip have
/// the same seqs (6 and 7) and times in both forms, so what the write model keeps of them
/// compares equal.
pub struct MatchCycle {
    /// Both tickets' openings up to the match, which is last.
    pub until_matched: Vec<Event>,
    /// The skip (and, in the older form, both leaving).
    pub skip: Vec<Event>,
}

impl MatchCycle {
    pub fn new(ann: UserId, bob: UserId, room: RoomId, one_event: bool) -> Self {
        let title = "Random match: hiking".to_owned();
        let event = |seq, actor, payload| Event {
            seq,
            commit_time_ms: 1_700_000_000_000,
            id: EventId::new_v7(),
            actor,
            payload,
        };
        let opened = || Payload::TicketOpened {
            tags: vec!["hiking".into()],
            language: None,
        };
        let matched = Payload::Matched {
            room,
            user_a: ann,
            user_b: bob,
            ticket_a_seq: 1,
            ticket_b_seq: 2,
            shared_tags: vec!["hiking".into()],
            wait_a_ms: 5,
            wait_b_ms: 0,
            room_title: one_event.then(|| title.clone()),
        };
        let skipped = Payload::MatchSkipped {
            room,
            partner: bob,
            until_ms: 1_700_000_100_000,
            members_left: one_event,
        };
        let mut until_matched = vec![event(1, Some(ann), opened()), event(2, Some(bob), opened())];
        let mut skip = vec![event(7, Some(ann), skipped)];
        if !one_event {
            let created = Payload::RoomCreated {
                room,
                title,
                direct_with: None,
            };
            until_matched.push(event(3, None, created));
            for (seq, user) in [(4, ann), (5, bob)] {
                until_matched.push(event(seq, None, Payload::MemberJoined { room, user }));
            }
            for (seq, user) in [(8, ann), (9, bob)] {
                skip.push(event(seq, Some(ann), Payload::MemberLeft { room, user }));
            }
        }
        until_matched.push(event(6, Some(bob), matched));
        Self {
            until_matched,
            skip,
        }
    }

    /// The `matching.matched` event.
    pub fn matched(&self) -> &Event {
        &self.until_matched[self.until_matched.len() - 1]
    }

    /// Every event, in log order.
    pub fn events(&self) -> impl Iterator<Item = &Event> {
        self.until_matched.iter().chain(&self.skip)
    }
}
