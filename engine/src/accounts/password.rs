//! Password hashing with argon2id at the OWASP parameters (m = 19 MiB, t = 2, p = 1), on a
//! bounded pool of its own threads, off the async runtime. Memory is bounded by the pool, not
//! by the rate of logins: each thread owns one 19 MiB block buffer, allocated once and reused
//! by every hash it runs (an allocation per hash left gigabytes in allocator arenas under a
//! burst). Work is bounded too: at most `queue` hashes wait for a thread; past that a login,
//! registration or password change is refused at once with [`Error::Overloaded`] and a
//! Retry-After estimated from the measured hash time, instead of queuing without bound.
//! About 40 ms per hash on this class of machine, so each thread hashes ~25 passwords a second.

use crate::error::{Error, Result};
use argon2::password_hash::phc::{Output, ParamsString, PasswordHash, Salt};
use argon2::{Algorithm, Argon2, Block, Params, Version};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, mpsc};
use std::time::{Duration, Instant};
use tokio::sync::{OnceCell, oneshot};

/// Hashes that may wait for a thread by default: about 1.3 s of work for one thread, the
/// longest a login should wait in a burst before being told to come back.
pub const DEFAULT_PASSWORD_QUEUE: usize = 32;

/// Bytes of a new hash's random salt (the PHC format's recommendation).
const SALT_BYTES: usize = 16;
/// The time of one hash assumed until one was measured.
const FIRST_HASH_GUESS: Duration = Duration::from_millis(40);

fn params() -> Result<Params> {
    Params::new(19 * 1024, 2, 1, None)
        .map_err(|e| Error::Internal(format!("argon2 parameters: {e}")))
}

fn argon2() -> Result<Argon2<'static>> {
    Ok(Argon2::new(Algorithm::Argon2id, Version::V0x13, params()?))
}

fn internal<E: std::fmt::Display>(what: &str) -> impl FnOnce(E) -> Error + '_ {
    move |error| Error::Internal(format!("{what}: {error}"))
}

/// Refuses a hash that this pool would not have made (another algorithm, or other costs: a
/// hash with a huge memory cost would make every login to its account allocate that much).
pub(crate) fn check_hash(hash: &str) -> Result<()> {
    let parsed = PasswordHash::new(hash)
        .map_err(|_| Error::invalid("passwordHash", "not a PHC password hash string"))?;
    if made_here(&parsed)? {
        Ok(())
    } else {
        Err(Error::invalid(
            "passwordHash",
            "must be an argon2id hash with girok's parameters (m=19456, t=2, p=1)",
        ))
    }
}

/// Whether `hash` is argon2id with this pool's costs.
fn made_here(hash: &PasswordHash) -> Result<bool> {
    let ours = params()?;
    Ok(hash.algorithm == Algorithm::Argon2id.ident()
        && Params::try_from(hash).is_ok_and(|p| {
            (p.m_cost(), p.t_cost(), p.p_cost()) == (ours.m_cost(), ours.t_cost(), ours.p_cost())
        }))
}

/// A hashing thread's argon2 block buffer: allocated by its first hash, reused by every later
/// one, freed with the thread.
#[derive(Default)]
struct HashMemory(Vec<Block>);

impl HashMemory {
    fn blocks(&mut self, params: &Params) -> &mut [Block] {
        let count = params.block_count();
        if self.0.len() != count {
            self.0 = vec![Block::new(); count];
        }
        &mut self.0
    }

    /// A new argon2id PHC string for `password`, with a random salt.
    fn hash(&mut self, password: &[u8]) -> Result<String> {
        let params = params()?;
        let mut salt = [0u8; SALT_BYTES];
        getrandom::fill(&mut salt)
            .map_err(|e| Error::Internal(format!("no randomness for a password salt: {e}")))?;
        let mut output = [0u8; Params::DEFAULT_OUTPUT_LEN];
        argon2()?
            .hash_password_into_with_memory(password, &salt, &mut output, self.blocks(&params))
            .map_err(internal("password hashing failed"))?;
        let hash = PasswordHash {
            algorithm: Algorithm::Argon2id.ident(),
            version: Some(Version::V0x13.into()),
            params: ParamsString::try_from(&params).map_err(internal("argon2 parameters"))?,
            salt: Some(Salt::new(&salt).map_err(internal("password salt"))?),
            hash: Some(Output::new(&output).map_err(internal("password hash"))?),
        };
        Ok(hash.to_string())
    }

    /// Whether `password` matches the PHC string `hash` (compared in constant time).
    fn verify(&mut self, password: &[u8], hash: &str) -> Result<bool> {
        let invalid =
            |why: &str| Error::Internal(format!("stored password hash is invalid: {why}"));
        let parsed = PasswordHash::new(hash).map_err(|e| invalid(&e.to_string()))?;
        if !made_here(&parsed)? || parsed.version != Some(Version::V0x13.into()) {
            return verify_foreign(password, &parsed);
        }
        let (Some(salt), Some(expected)) = (parsed.salt, parsed.hash) else {
            return Err(invalid("no salt or no hash"));
        };
        let params = params()?;
        let mut output = vec![0u8; expected.len()];
        argon2()?
            .hash_password_into_with_memory(password, &salt, &mut output, self.blocks(&params))
            .map_err(internal("password hashing failed"))?;
        let computed = Output::new(&output).map_err(internal("password hash"))?;
        Ok(computed == expected)
    }
}

/// Most memory a stored hash with other costs may make a login allocate (KiB), and most
/// passes and lanes: an account imported with other argon2 parameters still logs in, within
/// these bounds of memory and time.
const MAX_FOREIGN_M_COST: u32 = 64 * 1024;
const MAX_FOREIGN_T_COST: u32 = 16;
const MAX_FOREIGN_P_COST: u32 = 4;

/// Verifies a stored hash made with other argon2 parameters (with its own, through the
/// argon2 crate; a buffer of its own for this hash). One beyond the bounds never matches, so
/// it cannot make a login allocate or compute without bound.
fn verify_foreign(password: &[u8], parsed: &PasswordHash) -> Result<bool> {
    let bounded = Params::try_from(parsed).is_ok_and(|p| {
        p.m_cost() <= MAX_FOREIGN_M_COST
            && p.t_cost() <= MAX_FOREIGN_T_COST
            && p.p_cost() <= MAX_FOREIGN_P_COST
    });
    if !bounded {
        tracing::warn!(algorithm = %parsed.algorithm, "a stored password hash costs too much to verify; login refused");
        return Ok(false);
    }
    Ok(argon2::PasswordVerifier::verify_password(&Argon2::default(), password, parsed).is_ok())
}

type Job = Box<dyn FnOnce(&mut HashMemory) + Send>;

/// The bounded hashing pool.
pub struct PasswordPool {
    jobs: mpsc::SyncSender<Job>,
    /// Hashes refused because the queue was full (`girok_password_queue_full_total`).
    refused: prometheus_client::metrics::counter::Counter,
    threads: usize,
    queue: usize,
    /// A moving average of the time one hash takes, in microseconds (for Retry-After).
    hash_micros: Arc<AtomicU64>,
    /// A hash of a random password, verified against when the user does not exist, so that a
    /// login takes the same time either way.
    dummy: OnceCell<String>,
}

impl PasswordPool {
    /// A pool of `threads` hashing threads (at least one) with room for `queue` waiting
    /// hashes (at least one).
    pub fn new(threads: usize, queue: usize) -> Self {
        let threads = threads.max(1);
        let queue = queue.max(1);
        let (jobs, waiting) = mpsc::sync_channel::<Job>(queue);
        let waiting = Arc::new(Mutex::new(waiting));
        for index in 0..threads {
            let waiting = waiting.clone();
            let started = std::thread::Builder::new()
                .name(format!("girok-password-{index}"))
                .spawn(move || {
                    let mut memory = HashMemory::default();
                    loop {
                        // The lock is held only while waiting for a job, not while hashing.
                        let job = match waiting.lock() {
                            Ok(waiting) => waiting.recv(),
                            Err(_) => return,
                        };
                        match job {
                            Ok(job) => job(&mut memory),
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
            refused: Default::default(),
            threads,
            queue,
            hash_micros: Arc::new(AtomicU64::new(FIRST_HASH_GUESS.as_micros() as u64)),
            dummy: OnceCell::new(),
        }
    }

    /// How long a full queue takes to drain: what a refused caller is told to wait.
    fn drain_time(&self) -> Duration {
        let hash = Duration::from_micros(self.hash_micros.load(Ordering::Relaxed));
        hash.saturating_mul(self.queue as u32) / self.threads as u32
    }

    async fn run<T: Send + 'static>(
        &self,
        work: impl FnOnce(&mut HashMemory) -> Result<T> + Send + 'static,
    ) -> Result<T> {
        let (answer, answered) = oneshot::channel();
        let hash_micros = self.hash_micros.clone();
        let job: Job = Box::new(move |memory| {
            if answer.is_closed() {
                return; // the caller gave up (its request timed out): no hash for nobody
            }
            let started = Instant::now();
            let result = work(memory);
            let took = started.elapsed().as_micros() as u64;
            // One eighth of the newest hash, seven eighths of the history.
            let average = hash_micros.load(Ordering::Relaxed);
            hash_micros.store((average * 7 + took) / 8, Ordering::Relaxed);
            let _ = answer.send(result);
        });
        match self.jobs.try_send(job) {
            Ok(()) => {}
            Err(mpsc::TrySendError::Full(_)) => {
                self.refused.inc();
                return Err(Error::Overloaded {
                    what: "hashing passwords",
                    retry_after: self.drain_time(),
                });
            }
            Err(mpsc::TrySendError::Disconnected(_)) => return Err(Error::Unavailable),
        }
        answered.await.map_err(|_| Error::Unavailable)?
    }

    /// Registers `girok_password_queue_full_total`.
    pub fn register_metrics(&self, registry: &mut prometheus_client::registry::Registry) {
        registry.register(
            "girok_password_queue_full",
            "Logins, registrations and password changes refused at once because the hashing queue (auth.password_queue) was full",
            self.refused.clone(),
        );
    }

    /// A new argon2id PHC string for `password`.
    pub async fn hash(&self, password: String) -> Result<String> {
        self.run(move |memory| memory.hash(password.as_bytes()))
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
        self.run(move |memory| memory.verify(password.as_bytes(), &hash))
            .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use argon2::PasswordHasher;

    #[test]
    fn only_hashes_this_pool_would_make_are_accepted() {
        let ours = HashMemory::default().hash(b"pw").unwrap();
        assert!(check_hash(&ours).is_ok());
        let costly = ours.replace("m=19456", "m=4194304");
        assert_eq!(check_hash(&costly).unwrap_err().code(), "INVALID_ARGUMENT");
        let other = ours.replace("$argon2id$", "$argon2i$");
        assert_eq!(check_hash(&other).unwrap_err().code(), "INVALID_ARGUMENT");
        assert_eq!(check_hash("plain").unwrap_err().code(), "INVALID_ARGUMENT");
    }

    #[test]
    fn hashes_verify_both_ways_with_the_argon2_crate_and_reuse_one_buffer() {
        let mut memory = HashMemory::default();
        let ours = memory.hash(b"correct horse").unwrap();
        let buffer = memory.0.as_ptr();
        assert!(memory.verify(b"correct horse", &ours).unwrap());
        assert!(!memory.verify(b"wrong horse", &ours).unwrap());
        assert_eq!(memory.0.as_ptr(), buffer, "the block buffer is reused");
        // A hash the argon2 crate made itself (as accounts made before this pool did).
        let theirs = argon2()
            .unwrap()
            .hash_password(b"battery staple")
            .unwrap()
            .to_string();
        assert!(memory.verify(b"battery staple", &theirs).unwrap());
        assert!(!memory.verify(b"battery", &theirs).unwrap());
        // Other costs (an imported account): verified with its own parameters, within bounds.
        let cheap = Argon2::new(
            Algorithm::Argon2id,
            Version::V0x13,
            Params::new(8 * 1024, 1, 1, None).unwrap(),
        )
        .hash_password(b"imported")
        .unwrap()
        .to_string();
        assert!(memory.verify(b"imported", &cheap).unwrap());
        assert!(!memory.verify(b"other", &cheap).unwrap());
        let costly = cheap.replace("m=8192", "m=4194304");
        assert!(!memory.verify(b"imported", &costly).unwrap());
        let parsed = PasswordHash::new(&ours).unwrap();
        assert!(
            argon2::PasswordVerifier::verify_password(
                &argon2().unwrap(),
                b"correct horse",
                &parsed
            )
            .is_ok()
        );
    }

    #[tokio::test]
    async fn a_full_queue_is_refused_at_once_with_a_wait() {
        let pool = PasswordPool::new(1, 1);
        let hash = |i: u32| pool.hash(format!("password {i}"));
        let (a, b, c, d, e, f) = tokio::join!(hash(0), hash(1), hash(2), hash(3), hash(4), hash(5));
        let results = [a, b, c, d, e, f];
        let refused: Vec<_> = results
            .iter()
            .filter_map(|r| match r {
                Err(Error::Overloaded { retry_after, .. }) => Some(*retry_after),
                _ => None,
            })
            .collect();
        assert!(
            !refused.is_empty(),
            "one thread and one queue slot cannot take six hashes"
        );
        assert!(refused.iter().all(|wait| !wait.is_zero()));
        assert!(results.iter().filter(|r| r.is_ok()).count() >= 1);
        assert_eq!(
            results.iter().filter(|r| r.is_ok()).count() + refused.len(),
            6,
            "every hash either succeeded or was refused as overloaded"
        );
    }
}
