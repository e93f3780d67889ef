//! girok-engine: where commands become events and events become views.
//!
//! A command is validated ([`command`]), checked against the write model and appended by the
//! [`sequencer`] on the log writer thread (group commit, see girok-storage), and acknowledged
//! with its seq once durable. Timely/differential workers ([`dataflow`]) tail the log and
//! maintain the [`views`]; the [`hub`] pushes committed events to live subscribers; [`replay`]
//! rebuilds every view from the log. [`Engine`] ties these together for the frontends, which
//! never touch storage directly.

pub mod accounts;
pub mod background;
pub mod channels;
mod chat;
pub mod command;
pub mod dataflow;
mod engine;
pub mod error;
pub mod feed;
pub mod hot;
pub mod hub;
pub mod limits;
pub mod log_report;
mod message_record;
mod offline;
pub mod replay;
pub mod search;
pub mod sequencer;
pub mod text;
pub mod views;
pub mod write_model;
pub mod write_rates;

pub use chat::{
    HistoryQuery, Member, Message, MessagePage, RoomCursor, RoomInfo, RoomsPage, RoomsQuery,
};
pub use command::{Ack, Command};
pub use engine::{Engine, EngineConfig, EngineStatus, LogStatus, ViewStatus, read_events};
pub use error::{Error, ErrorKind, Result};
/// Storage settings, named through the engine: nothing above it names storage.
pub use girok_storage::{DEFAULT_MAX_OPEN_FILES, Durability, StoreConfig, WriterConfig};
pub use hub::{Hub, LiveEvent, Topic};
pub use log_report::{LogReport, log_report};
pub use offline::{Offline, ReplayOptions};
