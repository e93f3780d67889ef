//! girok-schemas: the vocabulary every other crate speaks. It defines the event envelope and
//! event types that make up the log, the ids (UUIDv7) that name rooms, users and events, the
//! byte encoding of an event (one format byte + protobuf, from the `.proto` files under
//! `schemas/proto`, which are the source of truth), and the write-model records, and the ClickHouse DDL of the analytics sink. It performs no
//! I/O: storage writes the bytes, the engine decides what they mean.

#[macro_use]
mod payload_table;
pub mod clickhouse;
mod codec;
mod event;
pub mod fixture;
mod ids;
mod json;
mod wire;

pub use json::rfc3339_millis;

/// Types generated from `proto/girok/v1/*.proto`.
pub mod proto {
    #![allow(missing_docs, clippy::all)]
    include!(concat!(env!("OUT_DIR"), "/girok.v1.rs"));
}

pub use codec::{decode_event, encode_event, peek_type};
pub use event::{Event, Payload};
pub use ids::{EventId, RoomId, Seq, SessionId, UserId};
pub use wire::{DecodeError, FORMAT_VERSION};
