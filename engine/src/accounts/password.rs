//! Password hashing with argon2id at the OWASP parameters (m = 19 MiB, t = 2, p = 1), on a
//! bounded pool of its own threads, off the async runtime: at most one hash per thread runs at
//! a time, so a burst of logins queues here instead of starving other work. About 40 ms per
//! hash on this class of machine, so it bounds logins at roughly 25 per second per thread.
//! The threads live as long as the pool: each hash's 19 MiB comes back to the same thread's
//! allocator arena, where a blocking thread per hash left one arena's worth behind per thread
//! (RSS grew by gigabytes over a few hundred logins).

use crate::error::{Error, Result};
use argon2::password_hash::phc::PasswordHash;
use argon2::password_hash::{PasswordHasher, PasswordVerifier};
use argon2::{Algorithm, Argon2, Params, Version};
use std::sync::{Arc, Mutex, mpsc};
use tokio::sync::{OnceCell, oneshot};

fn params() -> Result<Params> {
    Params::new(19 * 1024, 2, 1, None)
        .map_err(|e| Error::Internal(format!("argon2 parameters: {e}")))
}

fn argon2() -> Result<Argon2<'static>> {
    Ok(Argon2::new(Algorithm::Argon2id, Version::V0x13, params()?))
}

/// Refuses a hash that this pool would not have made (another algorithm, or other costs: a
/// hash with a huge memory cost would make every login to its account allocate that much).
pub(crate) fn check_hash(hash: &str) -> Result<()> {
    let parsed = PasswordHash::new(hash)
        .map_err(|_| Error::invalid("passwordHash", "not a PHC password hash string"))?;
    let ours = params()?;
    let same = parsed.algorithm.as_str() == "argon2id"
        && Params::try_from(&parsed).is_ok_and(|p| {
            (p.m_cost(), p.t_cost(), p.p_cost()) == (ours.m_cost(), ours.t_cost(), ours.p_cost())
        });
    if same {
        Ok(())
    } else {
        Err(Error::invalid(
            "passwordHash",
            "must be an argon2id hash with girok's parameters (m=19456, t=2, p=1)",
        ))
    }
}

type Job = Box<dyn FnOnce() + Send>;

/// The bounded hashing pool.
pub struct PasswordPool {
    jobs: mpsc::Sender<Job>,
    /// A hash of a random password, verified against when the user does not exist, so that a
    /// login takes the same time either way.
    dummy: OnceCell<String>,
}

impl PasswordPool {
    /// A pool of `threads` hashing threads (at least one).
    pub fn new(threads: usize) -> Self {
        let (jobs, queue) = mpsc::channel::<Job>();
        let queue = Arc::new(Mutex::new(queue));
        for index in 0..threads.max(1) {
            let queue = queue.clone();
            let started = std::thread::Builder::new()
                .name(format!("girok-password-{index}"))
                .spawn(move || {
                    loop {
                        // The lock is held only while waiting for a job, not while hashing.
                        let job = match queue.lock() {
                            Ok(queue) => queue.recv(),
                            Err(_) => return,
                        };
                        match job {
                            Ok(job) => job(),
                            Err(_) => return, // the pool is gone
                        }
                    }
                });
            if let Err(error) = started {
                tracing::error!(%error, "cannot start a password hashing thread");
            }
        }
        Self {
            jobs,
            dummy: OnceCell::new(),
        }
    }

    async fn run<T: Send + 'static>(
        &self,
        work: impl FnOnce() -> Result<T> + Send + 'static,
    ) -> Result<T> {
        let (answer, answered) = oneshot::channel();
        let job: Job = Box::new(move || {
            let _ = answer.send(work());
        });
        self.jobs.send(job).map_err(|_| Error::Unavailable)?;
        answered.await.map_err(|_| Error::Unavailable)?
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_hashes_this_pool_would_make_are_accepted() {
        let ours = argon2().unwrap().hash_password(b"pw").unwrap().to_string();
        assert!(check_hash(&ours).is_ok());
        let costly = ours.replace("m=19456", "m=4194304");
        assert_eq!(check_hash(&costly).unwrap_err().code(), "INVALID_ARGUMENT");
        let other = ours.replace("$argon2id$", "$argon2i$");
        assert_eq!(check_hash(&other).unwrap_err().code(), "INVALID_ARGUMENT");
        assert_eq!(check_hash("plain").unwrap_err().code(), "INVALID_ARGUMENT");
    }
}
