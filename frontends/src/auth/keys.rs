//! Ed25519 signing keys for access tokens, kept in `<data_dir>/keys/jwt-keys.json` (mode 0600).
//! Generated on first start. `girok keys rotate` adds a new current key; older keys stay in
//! the file (and in JWKS) so that tokens they signed verify until they expire; `--retire`
//! drops all but the newest two.

use anyhow::Context;
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

/// One key: its id and its 32-byte Ed25519 seed (the private key).
#[derive(Clone, Serialize, Deserialize)]
pub struct StoredKey {
    pub kid: String,
    /// base64url of the 32-byte seed.
    pub seed: String,
    pub created_ms: i64,
}

impl std::fmt::Debug for StoredKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never print the seed.
        f.debug_struct("StoredKey")
            .field("kid", &self.kid)
            .finish_non_exhaustive()
    }
}

/// The key file: the last key signs; all verify.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct KeyFile {
    pub keys: Vec<StoredKey>,
}

impl StoredKey {
    pub fn seed_bytes(&self) -> anyhow::Result<[u8; 32]> {
        let bytes = URL_SAFE_NO_PAD
            .decode(&self.seed)
            .context("key seed is not base64url")?;
        bytes
            .try_into()
            .map_err(|_| anyhow::anyhow!("key seed is not 32 bytes"))
    }

    /// The raw 32-byte public key.
    pub fn public_key(&self) -> anyhow::Result<[u8; 32]> {
        let signing = ed25519_dalek::SigningKey::from_bytes(&self.seed_bytes()?);
        Ok(signing.verifying_key().to_bytes())
    }

    /// The private key as PKCS#8 DER (RFC 8410), which jsonwebtoken takes.
    pub fn pkcs8_der(&self) -> anyhow::Result<Vec<u8>> {
        const PREFIX: [u8; 16] = [
            0x30, 0x2e, 0x02, 0x01, 0x00, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x04, 0x22,
            0x04, 0x20,
        ];
        Ok([PREFIX.as_slice(), &self.seed_bytes()?].concat())
    }
}

fn new_key() -> anyhow::Result<StoredKey> {
    let mut seed = [0u8; 32];
    getrandom::fill(&mut seed).map_err(|e| anyhow::anyhow!("no randomness for a key: {e}"))?;
    let mut kid = [0u8; 9];
    getrandom::fill(&mut kid).map_err(|e| anyhow::anyhow!("no randomness for a key id: {e}"))?;
    let created_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0);
    Ok(StoredKey {
        kid: URL_SAFE_NO_PAD.encode(kid),
        seed: URL_SAFE_NO_PAD.encode(seed),
        created_ms,
    })
}

/// Where the key file of a data directory is.
pub fn key_path(data_dir: &Path) -> PathBuf {
    data_dir.join("keys").join("jwt-keys.json")
}

fn write(path: &Path, file: &KeyFile) -> anyhow::Result<()> {
    write_private(path, &serde_json::to_vec_pretty(file)?)
}

/// The random secret kept in `path` (32 bytes, base64url), made on first use.
pub(crate) fn load_or_create_secret(path: &Path) -> anyhow::Result<String> {
    if path.exists() {
        return read_secret(path);
    }
    let mut seed = [0u8; 32];
    getrandom::fill(&mut seed).map_err(|e| anyhow::anyhow!("no randomness: {e}"))?;
    let secret = URL_SAFE_NO_PAD.encode(seed);
    write_private(path, secret.as_bytes())
        .with_context(|| format!("cannot write {}", path.display()))?;
    Ok(secret)
}

/// The secret kept in `path` (trimmed; an empty file is an error).
pub(crate) fn read_secret(path: &Path) -> anyhow::Result<String> {
    let secret =
        std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    let secret = secret.trim().to_owned();
    anyhow::ensure!(!secret.is_empty(), "{} is empty", path.display());
    Ok(secret)
}

/// Writes `bytes` to `path` readable by its owner only (mode 0600), replacing it whole.
pub(crate) fn write_private(path: &Path, bytes: &[u8]) -> anyhow::Result<()> {
    let dir = path.parent().context("the path has no folder")?;
    std::fs::create_dir_all(dir)?;
    let temp = path.with_extension("tmp");
    let _ = std::fs::remove_file(&temp);
    let mut file = std::fs::OpenOptions::new();
    file.write(true).create_new(true);
    // Private from its first byte, not chmod-ed after being written.
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut file, 0o600);
    let mut written = file.open(&temp)?;
    std::io::Write::write_all(&mut written, bytes)?;
    written.sync_all()?;
    std::fs::rename(&temp, path)?;
    Ok(())
}

/// Loads the key file, creating it with one key if it does not exist.
pub fn load_or_create(data_dir: &Path) -> anyhow::Result<KeyFile> {
    let path = key_path(data_dir);
    if path.exists() {
        let file: KeyFile = serde_json::from_slice(&std::fs::read(&path)?)
            .with_context(|| format!("{} is not a key file", path.display()))?;
        anyhow::ensure!(!file.keys.is_empty(), "{} holds no key", path.display());
        for key in &file.keys {
            key.public_key()
                .with_context(|| format!("key {} in {}", key.kid, path.display()))?;
        }
        return Ok(file);
    }
    let file = KeyFile {
        keys: vec![new_key()?],
    };
    write(&path, &file)?;
    tracing::info!(path = %path.display(), "generated a new token signing key");
    Ok(file)
}

/// Adds a new signing key; with `retire`, keeps only it and the previous one.
pub fn rotate(data_dir: &Path, retire: bool) -> anyhow::Result<StoredKey> {
    let mut file = load_or_create(data_dir)?;
    let key = new_key()?;
    file.keys.push(key.clone());
    if retire && file.keys.len() > 2 {
        let drop = file.keys.len() - 2;
        file.keys.drain(..drop);
    }
    write(&key_path(data_dir), &file)?;
    Ok(key)
}
