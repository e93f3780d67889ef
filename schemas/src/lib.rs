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

/// Types generated from the `.proto` files, in modules named after their packages (the QUIC
/// frames refer to the log's envelope by its package path).
mod generated {
    pub mod girok {
        pub mod v1 {
            #![allow(missing_docs, clippy::all)]
            include!(concat!(env!("OUT_DIR"), "/girok.v1.rs"));
        }
        pub mod quic {
            pub mod v1 {
                #![allow(missing_docs, clippy::all)]
                include!(concat!(env!("OUT_DIR"), "/girok.quic.v1.rs"));
            }
        }
    }
}

/// The frames of girok/1, the QUIC protocol (`proto/girok/quic/v1/frames.proto`).
pub use generated::girok::quic::v1 as quic;
/// Types generated from `proto/girok/v1/*.proto`: the log's envelope and events, the write
/// model's records.
pub use generated::girok::v1 as proto;

pub use codec::{decode_event, encode_event, envelope_of, peek_type};
pub use event::{Event, Membership, Payload};
pub use ids::{EventId, RoomId, Seq, SessionId, UserId};
pub use wire::{DecodeError, FORMAT_VERSION};
