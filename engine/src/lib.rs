//! girok-engine: where commands become events and events become views.
//!
//! A command is validated ([`command`]), checked against the write model and appended by the
//! sequencer on the log writer thread (group commit, see girok-storage), and acknowledged
//! with its seq once durable. Timely/differential workers (the dataflow) tail the log and
//! maintain the [`views`]; the [`hub`] pushes committed events to live subscribers; replay
//! rebuilds every view from the log. The public face is [`Engine`] for a server and
//! [`Offline`] for the command line on a data directory no server holds; the sequencer, the
//! write model, the dataflow runtime and replay are private. Nobody above the engine touches
//! storage.

pub mod accounts;
pub mod background;
mod channels;
mod chat;
pub mod command;
mod dataflow;
mod engine;
pub mod error;
pub mod feed;
pub mod hot;
pub mod hub;
pub mod limits;
mod log_report;
mod message_record;
mod offline;
mod replay;
pub mod search;
mod sequencer;
pub mod text;
pub mod views;
mod write_model;
pub mod write_rates;

pub use channels::Channels;
pub use chat::{
    HistoryQuery, Member, Message, MessagePage, RoomCursor, RoomInfo, RoomsPage, RoomsQuery,
};
pub use command::{Ack, Command};
pub use engine::{Engine, EngineConfig, EngineStatus, LogStatus, ViewStatus};
pub use error::{Error, ErrorKind, Result};
/// Storage settings, named through the engine: nothing above it names storage.
pub use girok_storage::{DEFAULT_MAX_OPEN_FILES, Durability, StoreConfig, WriterConfig};
pub use hub::{Hub, LiveEvent, Topic};
pub use log_report::LogReport;
pub use offline::{Offline, ReplayOptions};
pub use replay::ReplayReport;
pub use write_model::Entry as WriteModelEntry;
