//! The frozen fixture log: the events that `tests/fixtures/log-v1.bin` holds, and its file
//! format (records of `seq: u64 BE`, `len: u32 BE`, `len` bytes of encoded event). The file was
//! written once by format version 1 (`cargo run -p girok-schemas --example write_fixture`) and
//! is checked in; `tests/fixture.rs` proves every later girok still decodes it.

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
