//! The image pipeline, pure and synchronous (the processing pool runs it): an upload's bytes
//! in, its variants out, or a typed rejection. The type comes from the magic bytes alone; the
//! dimensions are read from the header and refused before any pixel is decoded, and the
//! decoder's allocations are capped, so a decompression bomb costs little time and memory.
//! Every variant is re-encoded from pixels, so no byte of the upload (EXIF with GPS, a
//! polyglot's script) is ever served; the colour profile is carried over.

use fast_image_resize::{FilterType, ResizeAlg, ResizeOptions, Resizer};
use image::codecs::jpeg::JpegEncoder;
use image::codecs::png::PngEncoder;
use image::{DynamicImage, ImageDecoder, ImageEncoder, ImageFormat, ImageReader, Limits};
use sha2::{Digest, Sha256};
use std::io::Cursor;

/// Most pixels on a side of an upload.
pub const MAX_SIDE: u32 = 8_192;
/// Most pixels of an upload.
pub const MAX_PIXELS: u64 = 40_000_000;
/// Most bytes the decoder may allocate (an RGBA image of [`MAX_PIXELS`] and some room).
pub const MAX_DECODE_ALLOC: u64 = 256 << 20;
/// JPEG quality of the variants.
const JPEG_QUALITY: u8 = 82;

/// The variants every ready image has: name and the most pixels on its longest side (never
/// upscaled: a smaller image's variants are its own size).
pub const VARIANTS: [(&str, u32); 4] = [
    ("thumb", 128),
    ("small", 480),
    ("large", 1_280),
    ("full", 2_560),
];

/// The content types an upload may declare (what the magic bytes must also say).
pub const ACCEPTED_TYPES: &str = "image/jpeg, image/png, image/webp and image/gif";

/// Whether a declared content type (see [`normalized_type`]) is one girok takes.
pub fn accepted_type(content_type: &str) -> bool {
    matches!(
        content_type,
        "image/jpeg" | "image/png" | "image/webp" | "image/gif"
    )
}

/// A content type as compared: lowercase, parameters (`; charset=…`) and spaces dropped.
pub fn normalized_type(content_type: &str) -> String {
    let essence = content_type.split(';').next().unwrap_or_default();
    essence.trim().to_ascii_lowercase()
}

/// One encoded variant.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Variant {
    pub name: &'static str,
    pub width: u32,
    pub height: u32,
    pub bytes: Vec<u8>,
    /// Hex SHA-256 of `bytes`.
    pub hash: String,
}

/// A processed image.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Processed {
    /// `image/jpeg`, or `image/png` where the image has transparency.
    pub content_type: &'static str,
    /// Of the upright image.
    pub width: u32,
    pub height: u32,
    pub placeholder: String,
    pub variants: Vec<Variant>,
}

/// Why an upload was refused: a stable code and a sentence.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Rejection {
    pub code: &'static str,
    pub detail: String,
}

fn reject(code: &'static str, detail: impl Into<String>) -> Rejection {
    Rejection {
        code,
        detail: detail.into(),
    }
}

/// `width × height` scaled to fit `max` on the longest side (never up), at least 1 × 1.
pub fn fit(width: u32, height: u32, max: u32) -> (u32, u32) {
    let longest = width.max(height);
    if longest <= max {
        return (width, height);
    }
    let scale = |side: u32| {
        ((u64::from(side) * u64::from(max) + u64::from(longest) / 2) / u64::from(longest)).max(1)
            as u32
    };
    (scale(width), scale(height))
}

/// Processes an upload of `declared` bytes (at most `max_bytes`).
pub fn process(bytes: &[u8], declared: u64, max_bytes: u64) -> Result<Processed, Rejection> {
    let got = bytes.len() as u64;
    if got > max_bytes {
        return Err(reject(
            "TOO_LARGE",
            format!("{got} bytes; the most is {max_bytes}"),
        ));
    }
    if got != declared {
        return Err(reject(
            "SIZE_MISMATCH",
            format!("{got} bytes uploaded, {declared} declared"),
        ));
    }
    let format = image::guess_format(bytes)
        .ok()
        .filter(|f| {
            matches!(
                f,
                ImageFormat::Jpeg | ImageFormat::Png | ImageFormat::WebP | ImageFormat::Gif
            )
        })
        .ok_or_else(|| {
            reject(
                "UNSUPPORTED_TYPE",
                format!("not a JPEG, PNG, WebP or GIF image (only {ACCEPTED_TYPES})"),
            )
        })?;
    let corrupt = |e: image::ImageError| match e {
        image::ImageError::Limits(limit) => reject("TOO_MANY_PIXELS", limit.to_string()),
        other => reject("CORRUPT_IMAGE", other.to_string()),
    };
    let mut decoder = ImageReader::with_format(Cursor::new(bytes), format)
        .into_decoder()
        .map_err(corrupt)?;
    let (width, height) = decoder.dimensions();
    if width == 0 || height == 0 {
        return Err(reject("CORRUPT_IMAGE", "the image has no pixels"));
    }
    if width > MAX_SIDE || height > MAX_SIDE || u64::from(width) * u64::from(height) > MAX_PIXELS {
        return Err(reject(
            "TOO_MANY_PIXELS",
            format!("{width} × {height}; the most is {MAX_SIDE} px a side and {MAX_PIXELS} pixels"),
        ));
    }
    let mut limits = Limits::default();
    limits.max_image_width = Some(MAX_SIDE);
    limits.max_image_height = Some(MAX_SIDE);
    limits.max_alloc = Some(MAX_DECODE_ALLOC);
    decoder.set_limits(limits).map_err(corrupt)?;
    // A broken orientation tag or profile is ignored, not a reason to refuse the image.
    let orientation = decoder
        .orientation()
        .unwrap_or(image::metadata::Orientation::NoTransforms);
    let icc = decoder.icc_profile().ok().flatten();
    let mut image = DynamicImage::from_decoder(decoder).map_err(corrupt)?;
    image.apply_orientation(orientation);
    // One 8-bit copy at most (none for the usual 8-bit RGB or RGBA decodings).
    let image = if opaque(&image) {
        DynamicImage::ImageRgb8(image.into_rgb8())
    } else {
        DynamicImage::ImageRgba8(image.into_rgba8())
    };
    let opaque = !image.color().has_alpha();
    let (width, height) = (image.width(), image.height());
    let variants = variants(&image, opaque, icc.as_deref())?;
    let placeholder = placeholder(&image)?;
    Ok(Processed {
        content_type: if opaque { "image/jpeg" } else { "image/png" },
        width,
        height,
        placeholder,
        variants,
    })
}

/// Whether no pixel is see-through (read in place for 8-bit RGBA, the usual decoding).
fn opaque(image: &DynamicImage) -> bool {
    match image {
        _ if !image.color().has_alpha() => true,
        DynamicImage::ImageRgba8(pixels) => pixels.pixels().all(|p| p.0[3] == 255),
        other => other.to_rgba8().pixels().all(|p| p.0[3] == 255),
    }
}

/// The variants, largest first, each resized from the one before (cheaper than from the
/// original each time, and alike to the eye when shrinking by at least two); the image is
/// never copied, only its smaller versions made.
fn variants(
    image: &DynamicImage,
    opaque: bool,
    icc: Option<&[u8]>,
) -> Result<Vec<Variant>, Rejection> {
    let mut resizer = Resizer::new();
    let options = ResizeOptions::new().resize_alg(ResizeAlg::Convolution(FilterType::Lanczos3));
    let mut out: Vec<Variant> = Vec::with_capacity(VARIANTS.len());
    let mut smaller: Option<DynamicImage> = None;
    for (name, max) in VARIANTS.iter().rev() {
        let (w, h) = fit(image.width(), image.height(), *max);
        let source = smaller.as_ref().unwrap_or(image);
        if (w, h) != (source.width(), source.height()) {
            let mut target = DynamicImage::new(w, h, source.color());
            resizer
                .resize(source, &mut target, &options)
                .map_err(|e| reject("CORRUPT_IMAGE", format!("resize failed: {e}")))?;
            smaller = Some(target);
        }
        let source = smaller.as_ref().unwrap_or(image);
        let bytes = encode(source, opaque, icc)?;
        out.push(Variant {
            name,
            width: w,
            height: h,
            hash: hex(&Sha256::digest(&bytes)),
            bytes,
        });
    }
    out.reverse();
    Ok(out)
}

fn encode(image: &DynamicImage, opaque: bool, icc: Option<&[u8]>) -> Result<Vec<u8>, Rejection> {
    let mut bytes = Vec::new();
    let failed = |e: image::ImageError| reject("CORRUPT_IMAGE", format!("encode failed: {e}"));
    let (w, h) = (image.width(), image.height());
    if opaque {
        let mut encoder = JpegEncoder::new_with_quality(&mut bytes, JPEG_QUALITY);
        if let Some(icc) = icc {
            // A profile the format cannot carry is dropped, not a failure.
            let _ = encoder.set_icc_profile(icc.to_vec());
        }
        encoder
            .write_image(image.as_bytes(), w, h, image.color().into())
            .map_err(failed)?;
    } else {
        let mut encoder = PngEncoder::new(&mut bytes);
        if let Some(icc) = icc {
            let _ = encoder.set_icc_profile(icc.to_vec());
        }
        encoder
            .write_image(image.as_bytes(), w, h, image.color().into())
            .map_err(failed)?;
    }
    Ok(bytes)
}

/// A blurhash of the image (4 × 3 components, from a 32 px copy).
fn placeholder(image: &DynamicImage) -> Result<String, Rejection> {
    let small = image.thumbnail(32, 32).to_rgba8();
    blurhash::encode(4, 3, small.width(), small.height(), small.as_raw())
        .map_err(|e| reject("CORRUPT_IMAGE", format!("placeholder failed: {e}")))
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use image::{Rgb, RgbImage, Rgba, RgbaImage};

    fn png(image: DynamicImage) -> Vec<u8> {
        let mut out = Vec::new();
        image
            .write_to(&mut Cursor::new(&mut out), ImageFormat::Png)
            .unwrap();
        out
    }

    #[test]
    fn fit_keeps_the_ratio_and_never_upscales() {
        assert_eq!(fit(4000, 3000, 1280), (1280, 960));
        assert_eq!(fit(3000, 4000, 128), (96, 128));
        assert_eq!(fit(100, 50, 480), (100, 50));
        assert_eq!(fit(10_000, 1, 128), (128, 1));
    }

    #[test]
    fn an_opaque_png_becomes_jpeg_variants() {
        let bytes = png(DynamicImage::ImageRgb8(RgbImage::from_pixel(
            1000,
            500,
            Rgb([200, 10, 10]),
        )));
        let done = process(&bytes, bytes.len() as u64, 1 << 20).unwrap();
        assert_eq!(done.content_type, "image/jpeg");
        assert_eq!((done.width, done.height), (1000, 500));
        let sizes: Vec<_> = done
            .variants
            .iter()
            .map(|v| (v.name, v.width, v.height))
            .collect();
        assert_eq!(
            sizes,
            [
                ("thumb", 128, 64),
                ("small", 480, 240),
                ("large", 1000, 500),
                ("full", 1000, 500)
            ]
        );
        for v in &done.variants {
            let decoded = image::load_from_memory(&v.bytes).unwrap();
            assert_eq!((decoded.width(), decoded.height()), (v.width, v.height));
        }
        assert!(!done.placeholder.is_empty());
    }

    #[test]
    fn transparency_is_kept_as_png() {
        let bytes = png(DynamicImage::ImageRgba8(RgbaImage::from_pixel(
            64,
            64,
            Rgba([0, 0, 0, 10]),
        )));
        let done = process(&bytes, bytes.len() as u64, 1 << 20).unwrap();
        assert_eq!(done.content_type, "image/png");
    }

    #[test]
    fn bad_uploads_are_rejected_with_a_code() {
        let good = png(DynamicImage::ImageRgb8(RgbImage::new(8, 8)));
        let code =
            |bytes: &[u8], declared: u64| process(bytes, declared, 1 << 20).unwrap_err().code;
        assert_eq!(code(&good, good.len() as u64 + 1), "SIZE_MISMATCH");
        assert_eq!(
            code(&good[..good.len() / 2], good.len() as u64 / 2),
            "CORRUPT_IMAGE"
        );
        let html = b"<html><script>alert(1)</script></html>";
        assert_eq!(code(html, html.len() as u64), "UNSUPPORTED_TYPE");
        let svg = b"<svg xmlns=\"http://www.w3.org/2000/svg\"/>";
        assert_eq!(code(svg, svg.len() as u64), "UNSUPPORTED_TYPE");
        assert_eq!(
            process(&good, good.len() as u64, 10).unwrap_err().code,
            "TOO_LARGE"
        );
        let noisy = png(DynamicImage::ImageRgb8(RgbImage::from_fn(
            64,
            64,
            |x, y| Rgb([(x * 7 + y * 13) as u8, (x * y) as u8, 9]),
        )));
        let half = &noisy[..noisy.len() / 2];
        assert_eq!(code(half, half.len() as u64), "CORRUPT_IMAGE");
        let mut jpeg = Vec::new();
        DynamicImage::ImageRgb8(RgbImage::from_pixel(64, 64, Rgb([1, 2, 3])))
            .write_to(&mut Cursor::new(&mut jpeg), ImageFormat::Jpeg)
            .unwrap();
        jpeg.truncate(jpeg.len() / 2);
        jpeg.extend(std::iter::repeat_n(0xAB, 50));
        let _ = process(&jpeg, jpeg.len() as u64, 1 << 20);
    }
}
