//! Every keyspace girok keeps, declared once. Names follow `key_value`; integer keys are
//! big-endian so that byte order is numeric order.

/// A fjall keyspace of girok's database.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Table {
    /// The log: `seq (u64 BE) -> encoded event`. The only source of truth.
    SeqEvent,
    /// Write model: `room id (16) -> RoomRecord`.
    RoomidRoom,
    /// Write model: `room id (16) ++ user id (16) -> ()` for each current member.
    RoomidUseridMember,
    /// Write model: `actor (16) ++ client id -> IdempotentAck` for idempotent sends.
    ActorClientidAck,
}

impl Table {
    /// All tables, in declaration order.
    pub const ALL: [Table; 4] = [
        Table::SeqEvent,
        Table::RoomidRoom,
        Table::RoomidUseridMember,
        Table::ActorClientidAck,
    ];

    /// The keyspace name on disk.
    pub fn name(self) -> &'static str {
        match self {
            Table::SeqEvent => "seq_event",
            Table::RoomidRoom => "roomid_room",
            Table::RoomidUseridMember => "roomid_userid_member",
            Table::ActorClientidAck => "actor_clientid_ack",
        }
    }

    pub(crate) fn index(self) -> usize {
        self as usize
    }
}
