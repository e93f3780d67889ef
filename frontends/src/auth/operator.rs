//! The operators' credential and the address a running server listens on, both kept in the
//! data directory: whoever can read the data directory (the `girok log` CLI on the same host)
//! can read the log through a running server, and nobody else. The token is random, made at
//! the first start, in `<data_dir>/keys/operator-token` (mode 0600); the operators' log
//! endpoints (`/v1/log/*`) require it as a Bearer token, compared in constant time. The
//! address is written at each start to `<data_dir>/serve.addr`.

use super::keys::{load_or_create_secret, read_secret};
use anyhow::Context;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::path::{Path, PathBuf};
use subtle::ConstantTimeEq;

/// The operator token of a data directory.
pub struct OperatorToken(String);

impl std::fmt::Debug for OperatorToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("OperatorToken(..)") // never printed
    }
}

impl OperatorToken {
    /// Whether `presented` is this token.
    pub fn admits(&self, presented: &str) -> bool {
        let (ours, theirs) = (self.0.as_bytes(), presented.as_bytes());
        ours.len() == theirs.len() && bool::from(ours.ct_eq(theirs))
    }
}

/// Where the operator token of a data directory is.
pub fn token_path(data_dir: &Path) -> PathBuf {
    data_dir.join("keys").join("operator-token")
}

/// Loads the operator token, creating it on first start.
pub fn load_or_create(data_dir: &Path) -> anyhow::Result<OperatorToken> {
    load_or_create_secret(&token_path(data_dir)).map(OperatorToken)
}

/// The operator token of a data directory, as the CLI reads it.
pub fn read(data_dir: &Path) -> anyhow::Result<String> {
    read_secret(&token_path(data_dir)).context("cannot read the operator token")
}

fn address_path(data_dir: &Path) -> PathBuf {
    data_dir.join("serve.addr")
}

/// Records the address the server listens on, as a URL a client on this host can use (an
/// unspecified address becomes loopback).
pub fn record_address(data_dir: &Path, mut addr: SocketAddr) -> anyhow::Result<()> {
    if addr.ip().is_unspecified() {
        addr.set_ip(match addr.ip() {
            IpAddr::V4(_) => IpAddr::V4(Ipv4Addr::LOCALHOST),
            IpAddr::V6(_) => IpAddr::V6(Ipv6Addr::LOCALHOST),
        });
    }
    let path = address_path(data_dir);
    std::fs::write(&path, format!("http://{addr}\n"))
        .with_context(|| format!("cannot write {}", path.display()))
}

/// Forgets a recorded address (a server that just took the data directory has not listened
/// yet; the address of the one before it is stale).
pub fn forget_address(data_dir: &Path) {
    let _ = std::fs::remove_file(address_path(data_dir));
}

/// The address the server of this data directory last recorded.
pub fn recorded_address(data_dir: &Path) -> Option<String> {
    let url = std::fs::read_to_string(address_path(data_dir)).ok()?;
    let url = url.trim();
    (!url.is_empty()).then(|| url.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_token_is_made_once_and_admits_only_itself() {
        let dir = tempfile::tempdir().unwrap();
        let token = load_or_create(dir.path()).unwrap();
        let text = read(dir.path()).unwrap();
        assert!(token.admits(&text));
        assert!(!token.admits(&text[1..]));
        assert!(!token.admits(""));
        assert!(load_or_create(dir.path()).unwrap().admits(&text));
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(token_path(dir.path()))
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600);
        }
    }

    #[test]
    fn an_unspecified_address_is_recorded_as_loopback() {
        let dir = tempfile::tempdir().unwrap();
        record_address(dir.path(), "0.0.0.0:8080".parse().unwrap()).unwrap();
        assert_eq!(
            recorded_address(dir.path()).as_deref(),
            Some("http://127.0.0.1:8080")
        );
    }
}
