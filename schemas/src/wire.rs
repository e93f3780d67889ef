//! How values are stored in the log's protobuf messages, apart from any event: the format
//! byte, why bytes do not decode, and [`WireField`], the conversion of each payload field's
//! type to and from its protobuf field (which the table of event types uses per field).

use crate::ids::{EventId, RoomId, SessionId, UserId};

/// The format byte written in front of every encoded event.
pub const FORMAT_VERSION: u8 = 1;

/// Why bytes read from the log are not an event this girok understands.
#[derive(Debug, thiserror::Error)]
pub enum DecodeError {
    #[error("empty log entry")]
    Empty,
    #[error("log entry has format version {0}; this girok reads version {FORMAT_VERSION}")]
    UnsupportedFormat(u8),
    #[error("malformed protobuf envelope: {0}")]
    Protobuf(#[from] prost::DecodeError),
    #[error("field `{0}` is not a 16-byte UUID")]
    InvalidId(&'static str),
}

/// How a payload field is stored in its protobuf message: ids as 16 bytes (an optional id as
/// no bytes when absent), an optional text as the empty string where the `.proto` field is not
/// `optional`, everything else as it is.
pub(crate) trait WireField<W>: Sized {
    fn to_wire(&self) -> W;
    /// `field` names the protobuf field in the error.
    fn from_wire(wire: W, field: &'static str) -> Result<Self, DecodeError>;
}

impl<T: Clone> WireField<T> for T {
    fn to_wire(&self) -> T {
        self.clone()
    }
    fn from_wire(wire: T, _field: &'static str) -> Result<T, DecodeError> {
        Ok(wire)
    }
}

impl WireField<String> for Option<String> {
    fn to_wire(&self) -> String {
        self.clone().unwrap_or_default()
    }
    fn from_wire(wire: String, _field: &'static str) -> Result<Self, DecodeError> {
        Ok(Some(wire).filter(|text| !text.is_empty()))
    }
}

macro_rules! id_wire_fields {
    ($($id:ty),*) => {$(
        impl WireField<Vec<u8>> for $id {
            fn to_wire(&self) -> Vec<u8> {
                self.as_bytes().to_vec()
            }
            fn from_wire(wire: Vec<u8>, field: &'static str) -> Result<Self, DecodeError> {
                <$id>::from_slice(&wire).ok_or(DecodeError::InvalidId(field))
            }
        }

        impl WireField<Vec<u8>> for Option<$id> {
            fn to_wire(&self) -> Vec<u8> {
                self.map(|id| id.as_bytes().to_vec()).unwrap_or_default()
            }
            fn from_wire(wire: Vec<u8>, field: &'static str) -> Result<Self, DecodeError> {
                match wire.as_slice() {
                    [] => Ok(None),
                    _ => WireField::from_wire(wire, field).map(Some),
                }
            }
        }

        impl WireField<Vec<Vec<u8>>> for Vec<$id> {
            fn to_wire(&self) -> Vec<Vec<u8>> {
                self.iter().map(|id| id.as_bytes().to_vec()).collect()
            }
            fn from_wire(wire: Vec<Vec<u8>>, field: &'static str) -> Result<Self, DecodeError> {
                wire.into_iter().map(|id| WireField::from_wire(id, field)).collect()
            }
        }
    )*};
}

id_wire_fields!(RoomId, UserId, EventId, SessionId);

/// A non-default value of a payload field's type, for tests that cover every event type.
#[cfg(test)]
pub(crate) trait Sample {
    fn sample() -> Self;
}

#[cfg(test)]
mod samples {
    use super::Sample;
    use crate::ids::{EventId, RoomId, SessionId, UserId};

    macro_rules! samples {
        ($($ty:ty => $value:expr),* $(,)?) => {$(
            impl Sample for $ty {
                fn sample() -> Self {
                    $value
                }
            }
        )*};
    }

    samples! {
        RoomId => RoomId::new_v7(),
        UserId => UserId::new_v7(),
        EventId => EventId::new_v7(),
        SessionId => SessionId::new_v7(),
        u64 => 42,
        bool => true,
        i64 => 1_700_000_000_123,
        String => "sample".into(),
        Vec<u8> => vec![7; 32],
        Vec<String> => vec!["a".into(), "b".into()],
        Vec<u64> => vec![3, 5],
        Vec<UserId> => vec![UserId::new_v7(), UserId::new_v7()],
        Vec<EventId> => vec![EventId::new_v7()],
    }

    impl<T: Sample> Sample for Option<T> {
        fn sample() -> Self {
            Some(T::sample())
        }
    }
}
