//! Random matching: a queue of tickets in the log, pairs decided by the sequencer, a chat room
//! for every match. The same shape as every domain: its [`MatchingCommand`]s (`command.rs`),
//! the write-time rules and decisions the sequencer runs (`stage.rs`, over what `state.rs`
//! keeps in memory: the open tickets of `pool.rs`, the current matches, the pairs apart of
//! `apart.rs`, the tickets', matches' and skip exclusions' rows it writes behind (`rows.rs`,
//! `skips.rs`); and the blocks of `blocks.rs`), its effect on the write model (`apply.rs`),
//! and its reads (`reads.rs`, the `Engine` methods); `matcher.rs` submits a wave when time
//! relaxes or expires a waiting ticket; `updates.rs` reads an event as one user's news.

mod apart;
pub(crate) mod apply;
pub(crate) mod blocks;
mod command;
pub(crate) mod matcher;
mod pool;
mod reads;
pub(crate) mod rows;
mod skips;
mod stage;
mod state;
mod updates;

pub use command::MatchingCommand;
pub use pool::MatchRules;
pub use reads::{CurrentMatch, MatchingStatus, QueuedTicket};
pub use stage::MatchingConfig;
pub(crate) use stage::{MatchingStage, PoolGauge};
pub use updates::MatchingUpdate;
