//! The `Seq` scalar: a log position. Serialized as a JSON number (seqs stay far below 2^53);
//! accepted as a number or a decimal string.

use async_graphql::{InputValueError, InputValueResult, Scalar, ScalarType, Value};

/// A log sequence number.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Seq(pub u64);

#[Scalar(name = "Seq")]
impl ScalarType for Seq {
    fn parse(value: Value) -> InputValueResult<Self> {
        match &value {
            Value::Number(n) => n
                .as_u64()
                .map(Seq)
                .ok_or_else(|| InputValueError::custom("a seq is a non-negative integer")),
            Value::String(s) => s
                .parse()
                .map(Seq)
                .map_err(|_| InputValueError::custom("a seq is a non-negative integer")),
            _ => Err(InputValueError::expected_type(value)),
        }
    }

    fn to_value(&self) -> Value {
        Value::Number(self.0.into())
    }
}
