//! Media's settings: where objects go, how big an upload may be, how many images are
//! processed at once, and the delays of upload URLs, the sweep of unused uploads and the
//! removal of deleted media's objects.

use girok_storage::BlobConfig;
use std::path::Path;
use std::time::Duration;

/// The media directory inside the data directory (the local object store, the upload key).
pub const MEDIA_DIR: &str = "media";

/// Media's settings.
#[derive(Clone, Debug)]
pub struct MediaConfig {
    /// Where objects are kept; default: `<data>/media/objects`.
    pub blobs: BlobConfig,
    /// Most bytes of one upload.
    pub max_bytes: u64,
    /// Images processed at once (each holds up to about 200 MiB for the largest image).
    pub workers: usize,
    /// Most uploads waiting for processing; past it completions are refused as overloaded.
    pub queue: usize,
    /// How long an upload URL works.
    pub upload_url_ttl: Duration,
    /// An upload nothing uses is deleted this long after its request.
    pub unused_after: Duration,
    /// A deleted media's objects are removed this long after its deletion.
    pub retention: Duration,
    /// How often the sweeper looks for what is due.
    pub sweep_interval: Duration,
}

impl MediaConfig {
    /// Defaults for a data directory.
    pub fn new(data_dir: &Path) -> Self {
        Self {
            blobs: BlobConfig::Local {
                dir: data_dir.join(MEDIA_DIR).join("objects"),
            },
            max_bytes: 20 << 20,
            workers: 1,
            queue: 256,
            upload_url_ttl: Duration::from_secs(15 * 60),
            unused_after: Duration::from_secs(24 * 3600),
            retention: Duration::from_secs(24 * 3600),
            sweep_interval: Duration::from_secs(60),
        }
    }
}
