//! The storage crate's one error type.

use std::path::PathBuf;

/// Anything that can go wrong below the engine.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("data directory {0} is in use by another girok process")]
    Locked(PathBuf),
    #[error("storage I/O failed: {0}")]
    Fjall(#[from] fjall::Error),
    #[error("I/O error: {0}")]
    Io(#[from] std::io::Error),
    #[error("the log writer has stopped; no more writes are accepted")]
    Closed,
    #[error("the log writer's queue is full ({0} commands waiting)")]
    QueueFull(usize),
    #[error("storage is unavailable: {0}")]
    Unavailable(String),
    #[error("view store I/O failed: {0}")]
    Views(String),
    #[error("object store: {0}")]
    Blob(String),
    #[error("log entry key is not an 8-byte sequence number")]
    BadKey,
}

/// Result with the storage error.
pub type Result<T, E = Error> = std::result::Result<T, E>;
