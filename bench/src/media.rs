//! `media`: uploads of photo-sized JPEGs (1 and 12 megapixels by default) through a running
//! girok server, and in the same run the same pipeline (decode, orient, resize into every
//! variant, encode, hash, placeholder) called directly on the library, one image after
//! another like girok's pool of one worker. For girok: processed images/s (from the first
//! upload to the last `ready`), complete→ready latency (from the upload's answer, when
//! processing may start, to the poll that first sees it ready; `--poll-ms`) and the
//! server's peak RSS; the ratio of the two rates is girok's overhead. Uploads go through the
//! one-step `POST /v1/media/upload`, `--concurrency` at a time.

use crate::client::account;
use crate::cpu::status_kib;
use crate::report::{Latency, histogram, mib};
use anyhow::{Context, bail};
use image::{DynamicImage, ImageFormat, Rgb, RgbImage};
use serde::Serialize;
use serde_json::Value;
use std::io::Cursor;
use std::time::{Duration, Instant};

const PASSWORD: &str = "media-bench password";

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Base URL of the running girok server.
    #[arg(long, value_name = "URL")]
    url: String,
    /// girok's pid, for its peak RSS.
    #[arg(long)]
    server_pid: Option<u32>,
    /// Image sizes, in megapixels (4:3).
    #[arg(long, value_delimiter = ',', default_values_t = [1u32, 12])]
    megapixels: Vec<u32>,
    /// Images uploaded per size.
    #[arg(long, default_value_t = 20, value_parser = clap::value_parser!(u64).range(1..=10_000))]
    images: u64,
    /// Uploads in flight at once.
    #[arg(long, default_value_t = 4, value_parser = clap::value_parser!(u64).range(1..=256))]
    concurrency: u64,
    /// How often an upload in flight is polled for its state, milliseconds (polls cost the
    /// server a little CPU: the latency's resolution against the load it adds).
    #[arg(long, default_value_t = 20, value_parser = clap::value_parser!(u64).range(1..=10_000))]
    poll_ms: u64,
}

/// One size's figures.
#[derive(Debug, Serialize)]
pub struct SizeRun {
    megapixels: u32,
    width: u32,
    height: u32,
    jpeg_bytes: usize,
    images: u64,
    /// Through girok, from the first upload to the last `ready`.
    girok_images_per_sec: f64,
    complete_to_ready: Latency,
    /// The same pipeline on the library directly, one image at a time.
    library_images_per_sec: f64,
    /// girok's rate over the library's (1.0: no overhead).
    ratio: f64,
    /// The server's peak resident set since it started (VmHWM), after this size.
    server_peak_rss_mib: Option<f64>,
    /// One resize of the decoded image to 1,280 px (Lanczos3): `image`'s own and
    /// `fast_image_resize`'s (which girok uses), milliseconds.
    resize_image_ms: f64,
    resize_fast_ms: f64,
}

#[derive(Debug, Serialize)]
pub struct Figures {
    sizes: Vec<SizeRun>,
}

/// A photo-like 4:3 JPEG of about `megapixels`: smooth gradients with fine noise, so it
/// compresses like a photo, not like a flat colour.
fn photo(megapixels: u32) -> (u32, u32, Vec<u8>) {
    let pixels = f64::from(megapixels) * 1e6;
    let width = (pixels * 4.0 / 3.0).sqrt().round() as u32;
    let height = (f64::from(width) * 3.0 / 4.0).round() as u32;
    let image = RgbImage::from_fn(width, height, |x, y| {
        let noise = (x.wrapping_mul(2_654_435_761) ^ y.wrapping_mul(40_503)) as u8 >> 4;
        Rgb([
            ((x * 255 / width) as u8).wrapping_add(noise),
            ((y * 255 / height) as u8).wrapping_add(noise),
            (((x + y) * 127 / (width + height)) as u8).wrapping_add(noise),
        ])
    });
    let mut bytes = Vec::new();
    DynamicImage::ImageRgb8(image)
        .write_to(&mut Cursor::new(&mut bytes), ImageFormat::Jpeg)
        .unwrap_or_else(|e| unreachable!("encoding to memory cannot fail: {e}"));
    (width, height, bytes)
}

pub fn run(args: &Args) -> anyhow::Result<Figures> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    let mut sizes = Vec::new();
    for &megapixels in &args.megapixels {
        if megapixels == 0 || megapixels > 40 {
            bail!("--megapixels are 1 to 40 (girok refuses more)");
        }
        let (width, height, jpeg) = photo(megapixels);
        let (girok_rate, latency) = runtime.block_on(through_girok(args, &jpeg))?;
        let library_rate = on_the_library(&jpeg, args.images)?;
        let (resize_image_ms, resize_fast_ms) = resizers(&jpeg)?;
        let peak = args
            .server_pid
            .and_then(|pid| status_kib(pid, &["VmHWM:"]))
            .map(|kib| mib(kib[0]));
        let run = SizeRun {
            megapixels,
            width,
            height,
            jpeg_bytes: jpeg.len(),
            images: args.images,
            girok_images_per_sec: girok_rate,
            complete_to_ready: latency,
            library_images_per_sec: library_rate,
            ratio: girok_rate / library_rate.max(f64::MIN_POSITIVE),
            server_peak_rss_mib: peak,
            resize_image_ms,
            resize_fast_ms,
        };
        println!(
            "{megapixels} Mpx ({width} × {height}, {} KiB): girok {:.2} images/s, complete→ready {}; library {:.2} images/s; ratio {:.2}; server peak RSS {}",
            jpeg.len() / 1024,
            run.girok_images_per_sec,
            run.complete_to_ready,
            run.library_images_per_sec,
            run.ratio,
            peak.map_or("?".into(), |p| format!("{p:.0} MiB")),
        );
        println!(
            "  resize to 1,280 px: image {resize_image_ms:.1} ms, fast_image_resize {resize_fast_ms:.1} ms"
        );
        sizes.push(run);
    }
    Ok(Figures { sizes })
}

/// Uploads `args.images` copies of `jpeg`; the rate from the first upload to the last ready,
/// and the complete→ready latencies.
async fn through_girok(args: &Args, jpeg: &[u8]) -> anyhow::Result<(f64, Latency)> {
    let http = reqwest::Client::new();
    let base = args.url.trim_end_matches('/').to_owned();
    let name = format!("media{}", std::process::id());
    let user = account(&http, &base, name, PASSWORD).await?;
    let semaphore = std::sync::Arc::new(tokio::sync::Semaphore::new(args.concurrency as usize));
    let started = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    let poll = Duration::from_millis(args.poll_ms);
    for _ in 0..args.images {
        let permit = semaphore.clone().acquire_owned().await?;
        let (http, base, token, body) = (
            http.clone(),
            base.clone(),
            user.token.clone(),
            jpeg.to_vec(),
        );
        tasks.spawn(async move {
            let _permit = permit;
            upload_until_ready(&http, &base, &token, body, poll).await
        });
    }
    let mut latencies = histogram()?;
    while let Some(done) = tasks.join_next().await {
        let waited = done??;
        latencies.saturating_record(waited.as_micros() as u64);
    }
    let rate = args.images as f64 / started.elapsed().as_secs_f64();
    Ok((rate, Latency::of(&latencies)))
}

/// One upload; how long from its answer (processing may start) to the poll that saw it ready.
async fn upload_until_ready(
    http: &reqwest::Client,
    base: &str,
    token: &str,
    body: Vec<u8>,
    poll: Duration,
) -> anyhow::Result<Duration> {
    let response = http
        .post(format!("{base}/v1/media/upload"))
        .bearer_auth(token)
        .header("content-type", "image/jpeg")
        .body(body)
        .send()
        .await
        .context("POST /v1/media/upload")?;
    if response.status().as_u16() != 202 {
        return Err(crate::client::unexpected("uploading".into(), response).await);
    }
    let completed = Instant::now();
    let id = response.json::<Value>().await?["id"]
        .as_str()
        .context("no id in the upload's answer")?
        .to_owned();
    loop {
        let media: Value = http
            .get(format!("{base}/v1/media/{id}"))
            .bearer_auth(token)
            .send()
            .await?
            .json()
            .await?;
        match media["state"].as_str() {
            Some("ready") => return Ok(completed.elapsed()),
            Some("processing") => tokio::time::sleep(poll).await,
            _ => bail!("media {id} did not become ready: {media}"),
        }
    }
}

/// The pipeline on the library directly, `images` times in a row; images/s.
fn on_the_library(jpeg: &[u8], images: u64) -> anyhow::Result<f64> {
    let started = Instant::now();
    for _ in 0..images {
        girok_engine::media::process::process(jpeg, jpeg.len() as u64, u64::MAX)
            .map_err(|r| anyhow::anyhow!("the library refused the image: {}", r.detail))?;
    }
    Ok(images as f64 / started.elapsed().as_secs_f64())
}

/// One Lanczos3 resize of the decoded `jpeg` to 1,280 px on its longest side with `image` and
/// with `fast_image_resize`; milliseconds each.
fn resizers(jpeg: &[u8]) -> anyhow::Result<(f64, f64)> {
    use fast_image_resize::{FilterType, ResizeAlg, ResizeOptions, Resizer};
    let decoded = image::load_from_memory(jpeg)?;
    let (w, h) = girok_engine::media::process::fit(decoded.width(), decoded.height(), 1_280);
    let started = Instant::now();
    let by_image = decoded.resize_exact(w, h, image::imageops::FilterType::Lanczos3);
    let image_ms = started.elapsed().as_secs_f64() * 1e3;
    let mut target = DynamicImage::new(w, h, decoded.color());
    let options = ResizeOptions::new().resize_alg(ResizeAlg::Convolution(FilterType::Lanczos3));
    let started = Instant::now();
    Resizer::new().resize(&decoded, &mut target, &options)?;
    let fast_ms = started.elapsed().as_secs_f64() * 1e3;
    anyhow::ensure!(
        by_image.width() == target.width(),
        "the resizers disagree on the size"
    );
    Ok((image_ms, fast_ms))
}
