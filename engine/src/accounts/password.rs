//! Password hashing with argon2id at the OWASP parameters (m = 19 MiB, t = 2, p = 1), on a
//! bounded pool off the async runtime: at most one hash per core runs at a time, so a burst of
//! logins queues here instead of starving other work. About 40 ms per hash on this class of
//! machine, so it bounds logins at roughly 25 per second per core.

use crate::error::{Error, Result};
use argon2::password_hash::phc::PasswordHash;
use argon2::password_hash::{PasswordHasher, PasswordVerifier};
use argon2::{Algorithm, Argon2, Params, Version};
use std::sync::Arc;
use tokio::sync::{OnceCell, Semaphore};

fn argon2() -> Result<Argon2<'static>> {
    let params = Params::new(19 * 1024, 2, 1, None)
        .map_err(|e| Error::Internal(format!("argon2 parameters: {e}")))?;
    Ok(Argon2::new(Algorithm::Argon2id, Version::V0x13, params))
}

/// The bounded hashing pool.
pub struct PasswordPool {
    permits: Arc<Semaphore>,
    /// A hash of a random password, verified against when the user does not exist, so that a
    /// login takes the same time either way.
    dummy: OnceCell<String>,
}

impl PasswordPool {
    pub fn new(threads: usize) -> Self {
        Self {
            permits: Arc::new(Semaphore::new(threads.max(1))),
            dummy: OnceCell::new(),
        }
    }

    async fn run<T: Send + 'static>(
        &self,
        work: impl FnOnce() -> Result<T> + Send + 'static,
    ) -> Result<T> {
        let _permit = self
            .permits
            .acquire()
            .await
            .map_err(|_| Error::Unavailable)?;
        tokio::task::spawn_blocking(work)
            .await
            .map_err(|e| Error::Internal(format!("password task failed: {e}")))?
    }

    /// A new argon2id PHC string for `password`.
    pub async fn hash(&self, password: String) -> Result<String> {
        self.run(move || {
            argon2()?
                .hash_password(password.as_bytes())
                .map(|h| h.to_string())
                .map_err(|e| Error::Internal(format!("password hashing failed: {e}")))
        })
        .await
    }

    /// Whether `password` matches `hash`; against the dummy hash when `hash` is `None`.
    pub async fn verify(&self, password: String, hash: Option<String>) -> Result<bool> {
        let hash = match hash {
            Some(hash) => hash,
            None => self
                .dummy
                .get_or_try_init(|| self.hash("girok dummy password".into()))
                .await?
                .clone(),
        };
        self.run(move || {
            let parsed = PasswordHash::new(&hash)
                .map_err(|e| Error::Internal(format!("stored password hash is invalid: {e}")))?;
            Ok(argon2()?
                .verify_password(password.as_bytes(), &parsed)
                .is_ok())
        })
        .await
    }
}
