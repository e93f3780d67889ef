//! Identifiers. Entities are named by UUIDs (v7 for anything girok creates, so ids sort by
//! creation time); log positions by `Seq`.

use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;
use uuid::Uuid;

/// A position in the log: 1 for the first event, gap-free, strictly increasing.
pub type Seq = u64;

macro_rules! uuid_id {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
        #[serde(transparent)]
        pub struct $name(pub Uuid);

        impl $name {
            /// A new time-ordered (v7) id.
            pub fn new_v7() -> Self {
                Self(Uuid::now_v7())
            }

            /// The id as 16 bytes, the form it takes in the log and in storage keys.
            pub fn as_bytes(&self) -> &[u8; 16] {
                self.0.as_bytes()
            }

            /// Reads an id from its 16-byte form.
            pub fn from_slice(bytes: &[u8]) -> Option<Self> {
                Uuid::from_slice(bytes).ok().map(Self)
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                self.0.fmt(f)
            }
        }

        impl FromStr for $name {
            type Err = uuid::Error;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                Uuid::parse_str(s).map(Self)
            }
        }
    };
}

uuid_id!(
    /// A chat room.
    RoomId
);
uuid_id!(
    /// A user account.
    UserId
);
uuid_id!(
    /// An event; also the id of the entity an event creates when it has no other (a message).
    EventId
);
uuid_id!(
    /// A login session: one refresh-token family.
    SessionId
);

/// The 12 bits a seq-derived id carries where a random v7 id has `rand_a`.
const SEQ_MARK: u16 = 0x5E9;

impl EventId {
    /// The id of the event at `seq`, committed at `time_ms`: a valid v7 UUID (time-ordered
    /// like any other) that carries the seq in its 62 random bits, so that the event can be
    /// found from its id without an index. Messages get such ids.
    pub fn for_seq(time_ms: i64, seq: Seq) -> Self {
        let mut bytes = [0u8; 16];
        bytes[..6].copy_from_slice(&(time_ms.max(0) as u64).to_be_bytes()[2..]);
        bytes[6] = 0x70 | (SEQ_MARK >> 8) as u8;
        bytes[7] = SEQ_MARK as u8;
        bytes[8..].copy_from_slice(&(seq & (u64::MAX >> 2)).to_be_bytes());
        bytes[8] |= 0x80; // the RFC 4122 variant
        Self(Uuid::from_bytes(bytes))
    }

    /// The seq a [`EventId::for_seq`] id names. A random id has the mark by chance once in
    /// 4,096: callers check that the event at the seq has this id.
    pub fn derived_seq(&self) -> Option<Seq> {
        let bytes = self.0.as_bytes();
        let mark = u16::from_be_bytes([bytes[6], bytes[7]]);
        if mark != 0x7000 | SEQ_MARK || bytes[8] & 0xC0 != 0x80 {
            return None;
        }
        let mut seq = [0u8; 8];
        seq.copy_from_slice(&bytes[8..]);
        seq[0] &= 0x3F;
        Some(u64::from_be_bytes(seq))
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn seq_derived_ids_are_v7_and_give_their_seq_back() {
        for seq in [1, 42, 1 << 40, (1 << 62) - 1] {
            let id = EventId::for_seq(1_764_600_000_000, seq);
            assert_eq!(id.0.get_version_num(), 7);
            assert_eq!(id.0.get_variant(), uuid::Variant::RFC4122);
            assert_eq!(id.derived_seq(), Some(seq));
            assert_eq!(id.to_string().parse::<EventId>().unwrap(), id);
        }
        let earlier = EventId::for_seq(1_764_600_000_000, 9);
        let later = EventId::for_seq(1_764_600_000_001, 2);
        assert!(earlier < later, "ordered by time like any v7 id");
        // v7 ids with random bits where the mark goes (ids `new_v7` makes in one millisecond
        // share those bits: a counter runs below them, so all of one millisecond's carry the
        // mark when one does, once in 4,096 milliseconds).
        let random = (0..64)
            .map(|_| {
                let random: [u8; 10] = rand::random();
                let ms = 1_764_600_000_000;
                EventId(uuid::Builder::from_unix_timestamp_millis(ms, &random).into_uuid())
            })
            .filter(|id| id.derived_seq().is_some());
        assert!(random.count() < 4, "random ids rarely carry the mark");
    }
}
