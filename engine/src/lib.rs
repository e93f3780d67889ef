//! girok-engine: where commands become events and events become views.
//!
//! A command is validated ([`Command`]), checked against the write model and appended by the
//! sequencer on the log writer thread (group commit, see girok-storage), and acknowledged
//! with its seq once durable. Timely/differential workers (the dataflow) tail the log and
//! maintain the [`views`]; the [`hub`] pushes committed events to live subscribers; replay
//! rebuilds every view from the log. The public face is [`Engine`] for a server and
//! [`Offline`] for the command line on a data directory no server holds; the sequencer, the
//! write model, the dataflow runtime and replay are private. Nobody above the engine touches
//! storage.

pub mod accounts;
mod ack;
pub mod background;
mod channels;
mod chat;
mod command;
mod dataflow;
mod engine;
pub mod error;
pub mod feed;
pub mod hot;
pub mod hub;
pub mod limits;
mod live;
mod log_reads;
mod log_report;
pub mod matching;
pub mod media;
mod memory;
mod offline;
mod records;
mod replay;
pub mod search;
mod sequencer;
mod sink_state;
mod staging;
mod tailer;
pub mod text;
pub mod views;
mod write_kind;
mod write_model;
pub mod write_rates;

pub use ack::Ack;
pub use channels::Channels;
pub use chat::{
    ChatCommand, HistoryQuery, Member, Message, MessagePage, RoomCursor, RoomInfo, RoomsPage,
    RoomsQuery,
};
pub use command::Command;
pub use engine::{Engine, EngineConfig, EngineStatus, LogStatus, VIEWS_DIR, ViewStatus};
pub use error::{Error, ErrorKind, Result};
pub use girok_storage::{BlobConfig, S3Config};
/// Storage settings, named through the engine: nothing above it names storage.
pub use girok_storage::{
    DEFAULT_BACKGROUND_SYNC, DEFAULT_BUSY_BATCH_INTERVAL_US, DEFAULT_BUSY_CPU_PERCENT,
    DEFAULT_MAX_OPEN_FILES, DEFAULT_WRITE_BUFFER_BYTES, Durability, Pacing, StoreConfig,
    WriterConfig, sched::DEFAULT_WORKERS_NICENESS,
};
pub use hub::{Hub, LiveEvent, Topic};
pub use live::{Follow, FollowEnd, FollowOptions, LiveScope, OnLag, Start};
pub use log_report::LogReport;
pub use matching::{MatchingCommand, MatchingConfig, MatchingStatus};
pub use media::{MediaCommand, MediaConfig, MediaInfo, MediaVariant, UploadGrant};
pub use offline::{Offline, ReplayOptions};
pub use replay::ReplayReport;
pub use sink_state::{SINKS_DIR, SinkCheckpoint, SinkState};
pub use tailer::{LogEntry, LogSource, Retry, Tailer};
pub use write_model::Entry as WriteModelEntry;
