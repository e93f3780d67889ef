//! The blob store: media objects (uploads waiting for processing, and the processed variants
//! under their content hashes) in an object store, through `object_store`. The embedded
//! default is a directory of the data directory; any S3-compatible server is the configured
//! alternative, and only there can a client upload straight to the store (a presigned URL).
//! Metadata never lives here: it is in the log and the write model.

use crate::error::{Error, Result};
use bytes::Bytes;
use object_store::aws::{AmazonS3, AmazonS3Builder};
use object_store::local::LocalFileSystem;
use object_store::path::Path;
use object_store::signer::Signer;
use object_store::{ObjectStore, PutPayload};
use std::ops::Range;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

/// Where media objects are kept.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum BlobConfig {
    /// A directory (created if missing).
    Local { dir: PathBuf },
    /// An S3-compatible server.
    S3(S3Config),
}

/// An S3-compatible bucket (the `[media.s3]` section of girok's configuration, as it is).
#[derive(Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct S3Config {
    /// e.g. `http://127.0.0.1:9000`; empty for AWS itself.
    pub endpoint: String,
    pub bucket: String,
    pub region: String,
    pub access_key_id: String,
    pub secret_access_key: String,
    /// `http://endpoint/bucket/key` instead of `http://bucket.endpoint/key` (most
    /// self-hosted servers want this).
    pub path_style: bool,
}

impl Default for S3Config {
    fn default() -> Self {
        Self {
            endpoint: String::new(),
            bucket: String::new(),
            region: "us-east-1".into(),
            access_key_id: String::new(),
            secret_access_key: String::new(),
            path_style: true,
        }
    }
}

impl std::fmt::Debug for S3Config {
    // The secret never reaches a log line.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("S3Config")
            .field("endpoint", &self.endpoint)
            .field("bucket", &self.bucket)
            .field("region", &self.region)
            .field("access_key_id", &self.access_key_id)
            .field("secret_access_key", &"<redacted>")
            .field("path_style", &self.path_style)
            .finish()
    }
}

/// The object store girok keeps media in.
#[derive(Clone, Debug)]
pub struct BlobStore {
    store: Arc<dyn ObjectStore>,
    /// Only an S3 store can hand out upload URLs of its own.
    signer: Option<Arc<AmazonS3>>,
    kind: &'static str,
    /// The local store's directory (its writes are not synced by `object_store`).
    local_dir: Option<PathBuf>,
}

fn blob_error(error: object_store::Error) -> Error {
    Error::Blob(error.to_string())
}

fn path(key: &str) -> Result<Path> {
    Path::parse(key).map_err(|e| Error::Blob(format!("bad object key {key:?}: {e}")))
}

impl BlobStore {
    /// Opens (for a local store: creates) the store `config` names.
    pub fn open(config: &BlobConfig) -> Result<BlobStore> {
        match config {
            BlobConfig::Local { dir } => {
                std::fs::create_dir_all(dir)?;
                let store = LocalFileSystem::new_with_prefix(dir)
                    .map_err(blob_error)?
                    .with_automatic_cleanup(true);
                Ok(BlobStore {
                    store: Arc::new(store),
                    signer: None,
                    kind: "local",
                    local_dir: Some(dir.clone()),
                })
            }
            BlobConfig::S3(s3) => {
                let mut builder = AmazonS3Builder::new()
                    .with_bucket_name(&s3.bucket)
                    .with_region(&s3.region)
                    .with_access_key_id(&s3.access_key_id)
                    .with_secret_access_key(&s3.secret_access_key)
                    .with_virtual_hosted_style_request(!s3.path_style);
                if !s3.endpoint.is_empty() {
                    builder = builder
                        .with_endpoint(&s3.endpoint)
                        .with_allow_http(s3.endpoint.starts_with("http://"));
                }
                let store = Arc::new(builder.build().map_err(blob_error)?);
                Ok(BlobStore {
                    store: store.clone(),
                    signer: Some(store),
                    kind: "s3",
                    local_dir: None,
                })
            }
        }
    }

    /// `local` or `s3`.
    pub fn kind(&self) -> &'static str {
        self.kind
    }

    /// Writes (or overwrites) an object.
    pub async fn put(&self, key: &str, bytes: Bytes) -> Result<()> {
        self.store
            .put(&path(key)?, PutPayload::from_bytes(bytes))
            .await
            .map(drop)
            .map_err(blob_error)
    }

    /// Writes an object that must survive a power loss once this returns: a local store's
    /// file and its directory are synced (an S3 store acknowledges durably).
    pub async fn put_durable(&self, key: &str, bytes: Bytes) -> Result<()> {
        self.put(key, bytes).await?;
        let Some(dir) = &self.local_dir else {
            return Ok(());
        };
        let file = dir.join(key);
        tokio::task::spawn_blocking(move || -> std::io::Result<()> {
            std::fs::File::open(&file)?.sync_all()?;
            if let Some(parent) = file.parent() {
                std::fs::File::open(parent)?.sync_all()?;
            }
            Ok(())
        })
        .await
        .map_err(|e| Error::Blob(format!("sync failed: {e}")))??;
        Ok(())
    }

    /// A whole object; `None` if there is none.
    pub async fn get(&self, key: &str) -> Result<Option<Bytes>> {
        // No object is larger than u64::MAX bytes: never `Err(size)`.
        Ok(self
            .get_at_most(key, u64::MAX)
            .await?
            .and_then(|found| found.ok()))
    }

    /// A whole object of at most `max_bytes`, in one request: `None` if there is none,
    /// `Some(Err(size))` without reading it when it is larger.
    pub async fn get_at_most(
        &self,
        key: &str,
        max_bytes: u64,
    ) -> Result<Option<std::result::Result<Bytes, u64>>> {
        match self.store.get(&path(key)?).await {
            Ok(found) if found.meta.size > max_bytes => Ok(Some(Err(found.meta.size))),
            Ok(found) => found
                .bytes()
                .await
                .map(|bytes| Some(Ok(bytes)))
                .map_err(blob_error),
            Err(object_store::Error::NotFound { .. }) => Ok(None),
            Err(error) => Err(blob_error(error)),
        }
    }

    /// Bytes `range` of an object (the caller checked the range against its size).
    pub async fn get_range(&self, key: &str, range: Range<u64>) -> Result<Bytes> {
        self.store
            .get_range(&path(key)?, range)
            .await
            .map_err(blob_error)
    }

    /// An object's size; `None` if there is none.
    pub async fn size(&self, key: &str) -> Result<Option<u64>> {
        match self.store.head(&path(key)?).await {
            Ok(meta) => Ok(Some(meta.size)),
            Err(object_store::Error::NotFound { .. }) => Ok(None),
            Err(error) => Err(blob_error(error)),
        }
    }

    /// Removes an object; one that is not there is no error.
    pub async fn delete(&self, key: &str) -> Result<()> {
        match self.store.delete(&path(key)?).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(error) => Err(blob_error(error)),
        }
    }

    /// A URL a client may PUT the object's bytes to for `ttl`, if the store can sign one
    /// (S3); `None` for a local store (girok receives those uploads itself).
    pub async fn presigned_put(&self, key: &str, ttl: Duration) -> Result<Option<String>> {
        let Some(signer) = &self.signer else {
            return Ok(None);
        };
        let url = signer
            .signed_url(http::Method::PUT, &path(key)?, ttl)
            .await
            .map_err(blob_error)?;
        Ok(Some(url.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn an_object_larger_than_allowed_is_refused_unread() {
        let dir = tempfile::tempdir().unwrap();
        let blobs = BlobStore::open(&BlobConfig::Local {
            dir: dir.path().join("blobs"),
        })
        .unwrap();
        blobs
            .put("a/b", Bytes::from_static(b"0123456789"))
            .await
            .unwrap();
        assert_eq!(blobs.get_at_most("a/b", 5).await.unwrap(), Some(Err(10)));
        assert_eq!(
            blobs.get_at_most("a/b", 10).await.unwrap(),
            Some(Ok(Bytes::from_static(b"0123456789")))
        );
        assert_eq!(blobs.get_at_most("a/missing", 10).await.unwrap(), None);
    }
}
