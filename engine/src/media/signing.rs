//! Upload URLs of the local object store: girok receives those uploads itself, behind a URL
//! signed with a key of the data directory's own (`<data>/media/upload.key`, made at first
//! start, readable by the owner only), so a URL is good for one media until it expires, across
//! restarts, and cannot be forged or altered.

use crate::error::{Error, Result};
use girok_schemas::EventId;
use hmac::{Hmac, Mac};
use sha2::Sha256;
use std::path::Path;

const KEY_FILE: &str = "upload.key";

/// Signs and checks upload URLs.
pub(crate) struct UploadSigner {
    key: [u8; 32],
}

impl UploadSigner {
    /// Reads the key in `dir`, or makes one.
    pub(crate) fn load_or_create(dir: &Path) -> Result<UploadSigner> {
        let io =
            |e: std::io::Error| Error::Internal(format!("upload key in {}: {e}", dir.display()));
        std::fs::create_dir_all(dir).map_err(io)?;
        let path = dir.join(KEY_FILE);
        match std::fs::read(&path) {
            Ok(bytes) => {
                let key = <[u8; 32]>::try_from(bytes.as_slice()).map_err(|_| {
                    Error::Internal(format!("{} is not a 32-byte key", path.display()))
                })?;
                Ok(UploadSigner { key })
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let mut key = [0u8; 32];
                getrandom::fill(&mut key).map_err(|e| {
                    Error::Internal(format!("no randomness for the upload key: {e}"))
                })?;
                write_private(&path, &key).map_err(io)?;
                Ok(UploadSigner { key })
            }
            Err(e) => Err(io(e)),
        }
    }

    fn mac(&self, media: EventId, expires_ms: i64) -> Hmac<Sha256> {
        let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(&self.key)
            .unwrap_or_else(|_| unreachable!("HMAC takes a key of any length"));
        mac.update(media.as_bytes());
        mac.update(&expires_ms.to_be_bytes());
        mac
    }

    /// The signature of an upload URL for `media` good until `expires_ms` (hex).
    pub(crate) fn sign(&self, media: EventId, expires_ms: i64) -> String {
        self.mac(media, expires_ms)
            .finalize()
            .into_bytes()
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect()
    }

    /// Whether `signature` is this URL's and it has not expired at `now_ms`.
    pub(crate) fn verify(
        &self,
        media: EventId,
        expires_ms: i64,
        signature: &str,
        now_ms: i64,
    ) -> bool {
        let Some(bytes) = decode_hex(signature) else {
            return false;
        };
        now_ms <= expires_ms && self.mac(media, expires_ms).verify_slice(&bytes).is_ok()
    }
}

fn decode_hex(text: &str) -> Option<Vec<u8>> {
    if text.len() != 64 {
        return None;
    }
    (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(text.get(i..i + 2)?, 16).ok())
        .collect()
}

fn write_private(path: &Path, key: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut file = options.open(path)?;
    file.write_all(key)?;
    file.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_signature_is_bound_to_its_media_and_time() {
        let dir = tempfile::tempdir().unwrap();
        let signer = UploadSigner::load_or_create(dir.path()).unwrap();
        let media = EventId::new_v7();
        let sig = signer.sign(media, 1_000);
        assert!(signer.verify(media, 1_000, &sig, 999));
        assert!(!signer.verify(media, 1_000, &sig, 1_001), "expired");
        assert!(!signer.verify(media, 2_000, &sig, 999), "time altered");
        assert!(
            !signer.verify(EventId::new_v7(), 1_000, &sig, 999),
            "other media"
        );
        assert!(!signer.verify(media, 1_000, "zz", 999));
        let again = UploadSigner::load_or_create(dir.path()).unwrap();
        assert!(
            again.verify(media, 1_000, &sig, 999),
            "the key survives a restart"
        );
    }
}
