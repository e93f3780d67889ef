//! Feed page cursors that only girok can make (timelines, a user's posts, notifications,
//! comments, follow lists). A cursor names the seq a page ends at, sealed with an HMAC-SHA256
//! tag under a key kept in the data directory (`keys/cursor-key`, made at the first start, so
//! cursors outlive restarts); anything that is not a cursor a page returned is refused as
//! `INVALID_ARGUMENT` instead of silently paging from wherever a made-up number points.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::{Hmac, Mac};
use sha2::Sha256;
use std::path::Path;
use std::sync::OnceLock;

/// Bytes of the tag kept in a cursor (64 bits: guessing one takes 2^63 tries on average).
const TAG_BYTES: usize = 8;

/// The keyed HMAC, ready to clone for each cursor.
static MAC: OnceLock<Hmac<Sha256>> = OnceLock::new();

/// Loads (or makes) the cursor key of `data_dir`; the first call in a process decides.
pub fn init(data_dir: &Path) -> anyhow::Result<()> {
    let key = crate::auth::keys::load_or_create_secret(&data_dir.join("keys").join("cursor-key"))?;
    let mac = Hmac::<Sha256>::new_from_slice(key.as_bytes())
        .map_err(|e| anyhow::anyhow!("the cursor key: {e}"))?;
    let _ = MAC.set(mac);
    Ok(())
}

fn tag(seq: u64) -> [u8; TAG_BYTES] {
    // Without `init` (unit tests), an all-zero key: still consistent within the process, and
    // never stored, so a later `init` still takes the real key.
    let mut mac = MAC
        .get()
        .cloned()
        .unwrap_or_else(|| <Hmac<Sha256> as hmac::digest::KeyInit>::new(&Default::default()));
    mac.update(b"girok feed cursor");
    mac.update(&seq.to_be_bytes());
    let full = mac.finalize().into_bytes();
    let mut tag = [0u8; TAG_BYTES];
    tag.copy_from_slice(&full[..TAG_BYTES]);
    tag
}

/// The cursor of a page that ends at `seq`.
pub fn seal(seq: u64) -> String {
    let mut bytes = [0u8; 8 + TAG_BYTES];
    bytes[..8].copy_from_slice(&seq.to_be_bytes());
    bytes[8..].copy_from_slice(&tag(seq));
    URL_SAFE_NO_PAD.encode(bytes)
}

/// The seq of a cursor girok made; `None` for anything else.
pub fn open(cursor: &str) -> Option<u64> {
    let bytes = URL_SAFE_NO_PAD.decode(cursor.trim()).ok()?;
    if bytes.len() != 8 + TAG_BYTES {
        return None;
    }
    let seq = u64::from_be_bytes(bytes[..8].try_into().ok()?);
    let expected = tag(seq);
    use subtle::ConstantTimeEq;
    bool::from(expected.ct_eq(&bytes[8..])).then_some(seq)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_sealed_cursors_open() {
        for seq in [0, 1, 42, u64::MAX] {
            assert_eq!(open(&seal(seq)), Some(seq));
        }
        assert_eq!(open("42"), None);
        assert_eq!(open(""), None);
        assert_eq!(open("x"), None);
        // The seq changed, the tag not: refused.
        let mut forged = URL_SAFE_NO_PAD.decode(seal(7)).unwrap();
        forged[7] = 8;
        assert_eq!(open(&URL_SAFE_NO_PAD.encode(forged)), None);
    }
}
