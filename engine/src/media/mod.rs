//! Media: uploads to an object store, processed off the request path into variants, served
//! to whoever may read them, used by posts and avatars. The same shape as every domain: its
//! [`MediaCommand`]s (`command.rs`), the write-time rules the sequencer runs (`stage.rs`),
//! their effect on the write model (`apply.rs`, over the rows of `rows.rs`) and its reads
//! (`reads.rs`, and the writes of `uploads.rs`, `Engine` methods); `process.rs` is the image
//! pipeline, `processor.rs` the pool that runs it, `sweeper.rs` removes what is due,
//! `signing.rs` signs the local store's upload URLs, `runtime.rs` holds the running parts.

pub(crate) mod apply;
mod command;
mod config;
pub mod process;
mod processor;
mod reads;
mod rows;
mod runtime;
mod signing;
mod stage;
mod sweeper;
mod uploads;

pub(crate) use command::check_media_list;
pub use command::{MediaCommand, ProcessOutcome};
pub use config::{MEDIA_DIR, MediaConfig};
pub use reads::{MediaInfo, MediaVariant};
pub(crate) use runtime::MediaRuntime;
pub(crate) use stage::{check_usable, check_usable_ids, stage};
pub use uploads::UploadGrant;
