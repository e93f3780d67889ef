//! Whether the log takes writes. A storage error is classified when it happens: a transient
//! one (no space left, no file descriptors left, a quota) puts the store in the degraded
//! state, where writes are refused at once and the writer retries until the cause is gone and
//! the database reopens; any other (an I/O error of the device, corruption) is fatal: the
//! writer stops and girok should exit and recover at the next start, as after a crash.

use crate::Error;
use parking_lot::Mutex;
use serde::Serialize;
use std::sync::atomic::{AtomicU8, Ordering};

/// The state of the log.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum StorageState {
    /// Writes are accepted.
    Ok,
    /// A transient storage error: writes are refused until the writer heals the store.
    Degraded,
    /// A fatal storage error, or the writer is gone: no more writes in this process.
    Failed,
}

impl StorageState {
    /// The value of the `girok_log_state` gauge.
    pub fn gauge(self) -> i64 {
        match self {
            StorageState::Ok => 0,
            StorageState::Degraded => 1,
            StorageState::Failed => 2,
        }
    }

    fn from_u8(value: u8) -> Self {
        match value {
            0 => StorageState::Ok,
            1 => StorageState::Degraded,
            _ => StorageState::Failed,
        }
    }
}

/// The state and the error that caused it.
#[derive(Default)]
pub(crate) struct Health {
    state: AtomicU8,
    reason: Mutex<Option<String>>,
}

impl Health {
    pub(crate) fn state(&self) -> StorageState {
        StorageState::from_u8(self.state.load(Ordering::Acquire))
    }

    /// The error behind the current state (none when `Ok`).
    pub(crate) fn reason(&self) -> Option<String> {
        self.reason.lock().clone()
    }

    /// Moves to `state` because of `reason`; the state after. A fatal state is never left,
    /// and a state kept keeps its first reason (the errors that follow one are its echoes).
    /// Checked and changed under one lock, so a fatal error is never overwritten.
    pub(crate) fn set(&self, state: StorageState, reason: Option<String>) -> StorageState {
        let mut current_reason = self.reason.lock();
        let current = self.state();
        if current == StorageState::Failed {
            return current;
        }
        if current != state || current_reason.is_none() {
            *current_reason = reason;
        }
        self.state.store(state.gauge() as u8, Ordering::Release);
        state
    }
}

/// Whether `error`, met in state `now`, may clear by itself (space or descriptors freed) or
/// is fatal.
pub(crate) fn is_transient(error: &Error, now: StorageState) -> bool {
    /// ENFILE, EMFILE on Linux (a full disk and a quota have `ErrorKind`s of their own).
    const TRANSIENT_OS_ERRORS: [i32; 2] = [23, 24];
    if let Error::Locked(_) = error {
        // A reopen found the old database not yet released.
        return true;
    }
    if let Error::Fjall(fjall::Error::Poisoned) = error {
        // The echo of an earlier failure: transient if that one was. A poisoned database
        // whose cause girok never saw is not something to retry.
        return now == StorageState::Degraded;
    }
    let mut cause: Option<&(dyn std::error::Error + 'static)> = Some(error);
    while let Some(current) = cause {
        if let Some(io) = current.downcast_ref::<std::io::Error>() {
            return matches!(
                io.kind(),
                std::io::ErrorKind::StorageFull | std::io::ErrorKind::QuotaExceeded
            ) || io
                .raw_os_error()
                .is_some_and(|code| TRANSIENT_OS_ERRORS.contains(&code));
        }
        cause = current.source();
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn full_disks_and_descriptor_limits_are_transient_device_errors_are_not() {
        let io = |code| Error::Fjall(fjall::Error::Io(std::io::Error::from_raw_os_error(code)));
        let ok = StorageState::Ok;
        assert!(is_transient(&io(28), ok), "ENOSPC");
        assert!(is_transient(&io(24), ok), "EMFILE");
        assert!(is_transient(&io(122), ok), "EDQUOT");
        let enfile = Error::Io(std::io::Error::from_raw_os_error(23));
        assert!(is_transient(&enfile, ok), "ENFILE");
        assert!(!is_transient(&io(5), ok), "EIO");
        assert!(!is_transient(&Error::BadKey, ok));
        let poisoned = Error::Fjall(fjall::Error::Poisoned);
        assert!(is_transient(&poisoned, StorageState::Degraded));
        assert!(
            !is_transient(&poisoned, ok),
            "a poison girok did not see happen"
        );
    }

    #[test]
    fn a_failed_state_is_never_left() {
        let health = Health::default();
        health.set(StorageState::Degraded, Some("full".into()));
        health.set(StorageState::Degraded, Some("poisoned".into()));
        assert_eq!(health.state(), StorageState::Degraded);
        assert_eq!(
            health.reason().as_deref(),
            Some("full"),
            "the first cause stays"
        );
        health.set(StorageState::Failed, Some("EIO".into()));
        assert_eq!(health.set(StorageState::Ok, None), StorageState::Failed);
        assert_eq!(health.state(), StorageState::Failed);
        assert_eq!(health.reason().as_deref(), Some("EIO"));
    }
}
