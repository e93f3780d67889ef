//! The TLS certificate of girok's QUIC endpoint: the configured one (`quic.cert_path`, `quic.key_path`),
//! or a self-signed ECDSA P-256 certificate girok makes in `<data_dir>/quic/` at its first
//! start, valid `quic.self_signed_days` (at most 14, what a browser accepts of a certificate
//! pinned by its SHA-256 hash), and replaces once less than a third of that is left: at a
//! start, or while running (checked hourly; connections open keep their handshake's
//! certificate). Clients pin the current one by the hash `GET /v1/quic` and the start-up line
//! give.

use crate::config::QuicConfig;
use anyhow::Context;
use arc_swap::ArcSwap;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use sha2::{Digest, Sha256};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Longest a self-signed certificate may be valid (browsers refuse a pinned one beyond 14 days).
const MAX_SELF_SIGNED_DAYS: u32 = 14;

/// The certificate in use and what clients need to pin it.
pub struct Current {
    key: Arc<CertifiedKey>,
    /// SHA-256 of the leaf certificate's DER.
    pub sha256: [u8; 32],
    /// When a self-signed certificate stops being valid (unknown for a configured one).
    pub not_after: Option<SystemTime>,
    /// The leaf certificate's DER (clients that trust it directly).
    pub der: CertificateDer<'static>,
}

impl Current {
    /// The hash as lower-case hex.
    pub fn sha256_hex(&self) -> String {
        self.sha256.iter().map(|b| format!("{b:02x}")).collect()
    }
}

/// Where the certificate comes from.
enum Source {
    Configured,
    SelfSigned {
        dir: PathBuf,
        hostnames: Vec<String>,
        days: u32,
    },
}

/// The endpoint's certificate; the TLS handshake asks it for the current one.
pub struct Certificates {
    current: ArcSwap<Current>,
    source: Source,
}

impl std::fmt::Debug for Certificates {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Certificates")
            .field("sha256", &self.current.load().sha256_hex())
            .finish()
    }
}

impl ResolvesServerCert for Certificates {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.current.load().key.clone())
    }
}

impl Certificates {
    /// Loads the configured certificate, or the self-signed one of `data_dir` (made, or made
    /// anew when it is due).
    pub fn load(config: &QuicConfig, data_dir: &Path) -> anyhow::Result<Arc<Self>> {
        let (current, source) = match (&config.cert_path, &config.key_path) {
            (Some(cert), Some(key)) => (load_configured(cert, key)?, Source::Configured),
            (None, None) => {
                let source = Source::SelfSigned {
                    dir: data_dir.join("quic"),
                    hostnames: config.hostnames.clone(),
                    days: config.self_signed_days.clamp(1, MAX_SELF_SIGNED_DAYS),
                };
                (self_signed(&source)?, source)
            }
            _ => anyhow::bail!("quic.cert_path and quic.key_path go together"),
        };
        Ok(Arc::new(Self {
            current: ArcSwap::from_pointee(current),
            source,
        }))
    }

    /// The certificate in use.
    pub fn current(&self) -> Arc<Current> {
        self.current.load_full()
    }

    /// Replaces a self-signed certificate that is due; whether it did.
    pub fn rotate_if_due(&self) -> anyhow::Result<bool> {
        let Source::SelfSigned { days, .. } = &self.source else {
            return Ok(false);
        };
        let due = self
            .current
            .load()
            .not_after
            .is_none_or(|not_after| is_due(not_after, *days));
        if !due {
            return Ok(false);
        }
        let made = make_self_signed(&self.source)?;
        self.current.store(Arc::new(made));
        Ok(true)
    }

    /// Checks hourly whether the self-signed certificate is due, until the process ends.
    pub fn rotate_in_background(self: &Arc<Self>) {
        if matches!(self.source, Source::Configured) {
            return;
        }
        let certificates = self.clone();
        tokio::spawn(async move {
            let mut every = tokio::time::interval(Duration::from_secs(3600));
            every.tick().await;
            loop {
                every.tick().await;
                // Key generation and file writes: off the async threads.
                let rotating = certificates.clone();
                let rotated = tokio::task::spawn_blocking(move || rotating.rotate_if_due()).await;
                match rotated.unwrap_or_else(|e| Err(anyhow::anyhow!("{e}"))) {
                    Ok(true) => tracing::info!(
                        sha256 = %certificates.current().sha256_hex(),
                        "QUIC self-signed certificate replaced"
                    ),
                    Ok(false) => {}
                    Err(error) => tracing::error!(%error, "cannot replace the QUIC certificate"),
                }
            }
        });
    }
}

/// Whether a certificate valid until `not_after` for `days` has less than a third left.
fn is_due(not_after: SystemTime, days: u32) -> bool {
    let margin = Duration::from_secs(u64::from(days) * 86_400 / 3);
    SystemTime::now() + margin >= not_after
}

fn load_configured(cert: &Path, key: &Path) -> anyhow::Result<Current> {
    let chain = CertificateDer::pem_file_iter(cert)
        .with_context(|| format!("cannot read quic.cert_path {}", cert.display()))?
        .collect::<Result<Vec<_>, _>>()
        .with_context(|| format!("quic.cert_path {} is not PEM", cert.display()))?;
    let key = PrivateKeyDer::from_pem_file(key)
        .with_context(|| format!("cannot read quic.key_path {}", key.display()))?;
    current(chain, key, None)
}

fn current(
    chain: Vec<CertificateDer<'static>>,
    key: PrivateKeyDer<'static>,
    not_after: Option<SystemTime>,
) -> anyhow::Result<Current> {
    let leaf = chain
        .first()
        .cloned()
        .context("the certificate file holds no certificate")?;
    let signing = rustls::crypto::ring::sign::any_supported_type(&key)
        .map_err(|e| anyhow::anyhow!("unsupported private key: {e}"))?;
    let sha256 = Sha256::digest(leaf.as_ref()).into();
    let certified = CertifiedKey::new(chain, signing);
    certified
        .keys_match()
        .map_err(|e| anyhow::anyhow!("the private key is not the certificate's: {e}"))?;
    Ok(Current {
        key: Arc::new(certified),
        sha256,
        not_after,
        der: leaf,
    })
}

/// The self-signed certificate of `<data_dir>/quic/`: the one kept there while it is not due,
/// else a new one.
fn self_signed(source: &Source) -> anyhow::Result<Current> {
    let Source::SelfSigned { dir, days, .. } = source else {
        anyhow::bail!("not a self-signed source");
    };
    let (cert, key, until) = files(dir);
    if cert.exists() && key.exists() && until.exists() {
        let not_after = std::fs::read_to_string(&until)
            .ok()
            .and_then(|s| s.trim().parse::<u64>().ok())
            .map(|secs| UNIX_EPOCH + Duration::from_secs(secs));
        if let Some(not_after) = not_after
            && !is_due(not_after, *days)
        {
            match load_configured(&cert, &key) {
                Ok(mut kept) => {
                    kept.not_after = Some(not_after);
                    return Ok(kept);
                }
                // Unreadable or a mismatched pair: a new certificate replaces it.
                Err(error) => tracing::warn!(%error, "the kept QUIC certificate is not usable"),
            }
        }
    }
    make_self_signed(source)
}

fn files(dir: &Path) -> (PathBuf, PathBuf, PathBuf) {
    (
        dir.join("cert.pem"),
        dir.join("key.pem"),
        dir.join("not-after"),
    )
}

/// Makes a new self-signed certificate and keeps it (key file mode 0600).
fn make_self_signed(source: &Source) -> anyhow::Result<Current> {
    let Source::SelfSigned {
        dir,
        hostnames,
        days,
    } = source
    else {
        anyhow::bail!("not a self-signed source");
    };
    let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256)?;
    let mut params = rcgen::CertificateParams::new(hostnames.clone())?;
    // A little slack for clocks behind ours; the whole validity stays `days` (a browser
    // pinning the certificate by hash counts from not_before).
    params.not_before = time::OffsetDateTime::now_utc() - time::Duration::hours(1);
    params.not_after = params.not_before + time::Duration::days(i64::from(*days));
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "girok");
    let cert = params.self_signed(&key)?;
    let not_after =
        UNIX_EPOCH + Duration::from_secs(params.not_after.unix_timestamp().max(0) as u64);
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let (cert_file, key_file, until_file) = files(dir);
    // Each file is written aside and renamed into place, the due time last: a crash in
    // between leaves a pair that does not match (found at the next start, which makes a new
    // one) or an old due time (the same), never a kept mismatch.
    let secs = not_after
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs();
    for (file, bytes) in [
        (&key_file, key.serialize_pem().into_bytes()),
        (&cert_file, cert.pem().into_bytes()),
        (&until_file, secs.to_string().into_bytes()),
    ] {
        crate::auth::keys::write_private(file, &bytes)
            .with_context(|| format!("cannot write {}", file.display()))?;
    }
    let key = PrivateKeyDer::try_from(key.serialize_der())
        .map_err(|e| anyhow::anyhow!("the new key does not parse: {e}"))?;
    current(vec![cert.der().clone()], key, Some(not_after))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_self_signed_certificate_is_kept_until_due_then_replaced() {
        let dir = tempfile::tempdir().unwrap();
        let config = QuicConfig::default();
        let first = Certificates::load(&config, dir.path()).unwrap();
        let again = Certificates::load(&config, dir.path()).unwrap();
        assert_eq!(first.current().sha256, again.current().sha256);
        assert!(!again.rotate_if_due().unwrap());
        // A certificate with less than a third of its time left is replaced.
        let until = dir.path().join("quic").join("not-after");
        let soon = SystemTime::now() + Duration::from_secs(86_400);
        let secs = soon.duration_since(UNIX_EPOCH).unwrap().as_secs();
        std::fs::write(&until, secs.to_string()).unwrap();
        let renewed = Certificates::load(&config, dir.path()).unwrap();
        assert_ne!(renewed.current().sha256, first.current().sha256);
        let days = renewed
            .current()
            .not_after
            .unwrap()
            .duration_since(SystemTime::now())
            .unwrap()
            .as_secs()
            / 86_400;
        assert_eq!(days, u64::from(config.self_signed_days) - 1);
        // A key that is not the certificate's is not kept.
        let other = dir.path().join("other");
        let _ = Certificates::load(&config, &other).unwrap();
        std::fs::copy(other.join("quic/key.pem"), dir.path().join("quic/key.pem")).unwrap();
        let mended = Certificates::load(&config, dir.path()).unwrap();
        assert_ne!(mended.current().sha256, renewed.current().sha256);
    }

    #[test]
    fn half_a_pair_of_files_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let config = QuicConfig {
            cert_path: Some(dir.path().join("cert.pem")),
            ..QuicConfig::default()
        };
        assert!(Certificates::load(&config, dir.path()).is_err());
    }
}
