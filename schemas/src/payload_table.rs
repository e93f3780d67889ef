//! The macro behind [`Payload`](crate::Payload): one table in `event.rs` lists every event type
//! once (its variant, dotted type name, fields, the protobuf field each is stored in and its
//! JSON name), and this macro derives from it the enum, the type names, the conversion to and
//! from the protobuf `oneof` (through `wire.rs`) and the JSON form. A new event type is a
//! `.proto` message plus one entry in the table (and its arms in `Payload::target` and, for a
//! chat event, `Payload::room`, in the same file); the `oneof`'s exhaustive match makes the
//! compiler ask for the entry.
//!
//! A field reads `name: Type = proto_field [json]`, where `json` is `"jsonName"`, empty (not
//! shown), `redacted "jsonName"` (shown as `<redacted>`) or `time "jsonName"` (milliseconds
//! shown as RFC 3339).

macro_rules! define_payloads {
    ($(
        $(#[$meta:meta])*
        $variant:ident = $type_name:literal {
            $( $(#[$field_meta:meta])* $field:ident : $ty:ty = $wire:ident [$($json:tt)*] ),* $(,)?
        }
    ),* $(,)?) => {
        /// What happened. `Unknown` keeps the type name of an event written by a newer girok.
        #[derive(Clone, Debug, PartialEq, Eq)]
        pub enum Payload {
            $(
                $(#[$meta])*
                $variant { $( $(#[$field_meta])* $field: $ty, )* },
            )*
            Unknown { type_name: String },
        }

        impl Payload {
            /// The dotted type name stored in the envelope.
            pub fn type_name(&self) -> &str {
                match self {
                    $( Payload::$variant { .. } => $type_name, )*
                    Payload::Unknown { type_name } => type_name,
                }
            }

            /// The protobuf `oneof` member; `None` for `Unknown`, whose bytes were not kept.
            pub(crate) fn to_wire(&self) -> Option<$crate::proto::envelope::Payload> {
                use $crate::wire::WireField;
                match self {
                    $(
                        Payload::$variant { $($field),* } => Some(
                            $crate::proto::envelope::Payload::$variant($crate::proto::$variant {
                                $( $wire: <$ty as WireField<_>>::to_wire($field), )*
                            }),
                        ),
                    )*
                    Payload::Unknown { .. } => None,
                }
            }

            /// The payload of a protobuf `oneof` member.
            pub(crate) fn from_wire(
                wire: $crate::proto::envelope::Payload,
            ) -> Result<Payload, $crate::wire::DecodeError> {
                use $crate::wire::WireField;
                Ok(match wire {
                    $(
                        $crate::proto::envelope::Payload::$variant(wire) => Payload::$variant {
                            $( $field: <$ty as WireField<_>>::from_wire(wire.$wire, stringify!($wire))?, )*
                        },
                    )*
                })
            }

            /// The payload's fields as a JSON object (`null` for `Unknown`).
            pub(crate) fn fields_json(&self) -> serde_json::Value {
                match self {
                    $(
                        Payload::$variant { $($field),* } => {
                            let mut object = serde_json::Map::new();
                            $( json_field!(object, $field, $($json)*); )*
                            serde_json::Value::Object(object)
                        }
                    )*
                    Payload::Unknown { .. } => serde_json::Value::Null,
                }
            }

            /// One payload of every type, each field set to a non-default sample value (the
            /// codec's round-trip test covers every type through it).
            #[cfg(test)]
            pub(crate) fn samples() -> Vec<Payload> {
                use $crate::wire::Sample;
                vec![ $( Payload::$variant { $( $field: <$ty as Sample>::sample(), )* }, )* ]
            }
        }
    };
}

/// One field of a payload's JSON object, as its table entry says.
macro_rules! json_field {
    ($object:ident, $value:ident,) => {
        let _ = $value;
    };
    ($object:ident, $value:ident, redacted $name:literal) => {
        let _ = $value;
        $object.insert($name.into(), serde_json::Value::from("<redacted>"));
    };
    ($object:ident, $value:ident, time $name:literal) => {
        $object.insert(
            $name.into(),
            serde_json::Value::from($crate::json::rfc3339_millis(*$value)),
        );
    };
    ($object:ident, $value:ident, $name:literal) => {
        $object.insert($name.into(), $crate::json::to_json($value));
    };
}
