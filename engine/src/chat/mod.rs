//! Chat: rooms (group and direct), members, read receipts and messages. The same shape as every
//! domain: its [`ChatCommand`]s (`command.rs`, validated before submission), the write-time
//! rules the sequencer runs (`stage.rs`), its effect on the write model (`apply.rs`), and its
//! reads (`reads.rs`, the `Engine` methods). A message's write-model facts are found through
//! `message_record.rs`, who is in a room through `membership.rs`.

pub(crate) mod apply;
mod command;
pub(crate) mod membership;
pub(crate) mod message_record;
mod reads;
mod stage;

pub use command::ChatCommand;
pub(crate) use reads::message_of;
pub use reads::{
    HistoryQuery, Member, Message, MessagePage, RoomCursor, RoomInfo, RoomsPage, RoomsQuery,
};
pub(crate) use stage::ChatStage;
