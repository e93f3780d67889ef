//! Media end to end: the real server, real HTTP clients and real images. Uploads through the
//! local store's signed URL, the one-step upload (raw and multipart) and GraphQL; processing
//! into variants with the EXIF orientation applied and no metadata left; serving with ETags,
//! ranges and safe headers; bad input of every kind refused with a typed error and little
//! memory; who may read and use what; deletion and the sweeper; kill -9 while an image is
//! processed; a replay whose write model equals the live one; and the same upload path through
//! a real S3-compatible server (moto, started by the test script).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::{Server, call, user};
use image::{DynamicImage, ImageFormat, Rgb, RgbImage};
use serde_json::{Value, json};
use std::io::Cursor;
use std::time::{Duration, Instant};

/// A marker written into the fixtures' GPS EXIF block, which no served byte may contain.
const GPS_MARK: &[u8] = b"GIROKGPSMARK";

fn rest_code(body: &Value) -> &str {
    body["error"]["code"].as_str().unwrap_or("<none>")
}

fn start_in(dir: &tempfile::TempDir, settings: &[(&str, &str)]) -> Server {
    Server::start_with_env(&dir.path().join("data"), &[], settings)
}

/// A `width × height` JPEG, red on the left half and blue on the right.
fn halves_jpeg(width: u32, height: u32) -> Vec<u8> {
    let image = RgbImage::from_fn(width, height, |x, _| {
        if x < width / 2 {
            Rgb([230, 20, 20])
        } else {
            Rgb([20, 20, 230])
        }
    });
    encode(DynamicImage::ImageRgb8(image), ImageFormat::Jpeg)
}

/// A noisy `width × height` JPEG (slow to process, hard to compress).
fn noise_jpeg(width: u32, height: u32) -> Vec<u8> {
    let image = RgbImage::from_fn(width, height, |x, y| {
        let v = (x.wrapping_mul(2_654_435_761) ^ y.wrapping_mul(40_503)) as u8;
        Rgb([v, v.rotate_left(3), v.rotate_left(5)])
    });
    encode(DynamicImage::ImageRgb8(image), ImageFormat::Jpeg)
}

fn encode(image: DynamicImage, format: ImageFormat) -> Vec<u8> {
    let mut out = Vec::new();
    image.write_to(&mut Cursor::new(&mut out), format).unwrap();
    out
}

/// `jpeg` with an EXIF block (APP1) right after SOI: the orientation tag and a GPS block
/// holding [`GPS_MARK`].
fn with_exif(jpeg: &[u8], orientation: u16) -> Vec<u8> {
    let mut tiff = Vec::new();
    tiff.extend_from_slice(b"II\x2a\x00\x08\x00\x00\x00");
    // IFD0 at 8: orientation, GPS pointer (to 38), no next IFD.
    tiff.extend_from_slice(&2u16.to_le_bytes());
    tiff.extend_from_slice(&[0x12, 0x01, 3, 0, 1, 0, 0, 0]);
    tiff.extend_from_slice(&orientation.to_le_bytes());
    tiff.extend_from_slice(&[0, 0]);
    tiff.extend_from_slice(&[0x25, 0x88, 4, 0, 1, 0, 0, 0]);
    tiff.extend_from_slice(&38u32.to_le_bytes());
    tiff.extend_from_slice(&0u32.to_le_bytes());
    // GPS IFD at 38: latitude ref "N", map datum (the mark, at 68), no next IFD.
    tiff.extend_from_slice(&2u16.to_le_bytes());
    tiff.extend_from_slice(&[0x01, 0x00, 2, 0, 2, 0, 0, 0, b'N', 0, 0, 0]);
    tiff.extend_from_slice(&[0x12, 0x00, 2, 0, 13, 0, 0, 0]);
    tiff.extend_from_slice(&68u32.to_le_bytes());
    tiff.extend_from_slice(&0u32.to_le_bytes());
    assert_eq!(tiff.len(), 68);
    tiff.extend_from_slice(GPS_MARK);
    tiff.push(0);
    let mut app1 = vec![0xFF, 0xE1];
    app1.extend_from_slice(&((2 + 6 + tiff.len()) as u16).to_be_bytes());
    app1.extend_from_slice(b"Exif\0\0");
    app1.extend_from_slice(&tiff);
    let mut out = jpeg[..2].to_vec();
    out.extend_from_slice(&app1);
    out.extend_from_slice(&jpeg[2..]);
    out
}

fn crc32(bytes: &[u8]) -> u32 {
    let mut crc = !0u32;
    for &b in bytes {
        crc ^= u32::from(b);
        for _ in 0..8 {
            crc = if crc & 1 == 1 {
                (crc >> 1) ^ 0xEDB8_8320
            } else {
                crc >> 1
            };
        }
    }
    !crc
}

/// A PNG whose header declares `width × height` RGB pixels, with a tiny (broken) body: a
/// decompression bomb's shape.
fn png_declaring(width: u32, height: u32) -> Vec<u8> {
    let chunk = |kind: &[u8], data: &[u8]| {
        let mut c = (data.len() as u32).to_be_bytes().to_vec();
        let body = [kind, data].concat();
        c.extend_from_slice(&body);
        c.extend_from_slice(&crc32(&body).to_be_bytes());
        c
    };
    let mut ihdr = width.to_be_bytes().to_vec();
    ihdr.extend_from_slice(&height.to_be_bytes());
    ihdr.extend_from_slice(&[8, 2, 0, 0, 0]);
    let mut png = b"\x89PNG\r\n\x1a\n".to_vec();
    png.extend(chunk(b"IHDR", &ihdr));
    png.extend(chunk(
        b"IDAT",
        &[0x78, 0x9c, 0x03, 0x00, 0x00, 0x00, 0x00, 0x01],
    ));
    png.extend(chunk(b"IEND", &[]));
    png
}

/// `POST /v1/media`.
async fn request(server: &Server, token: &str, content_type: &str, bytes: usize) -> (u16, Value) {
    let body = json!({ "contentType": content_type, "bytes": bytes });
    call(server, "POST", "/v1/media", token, Some(body)).await
}

/// PUTs `bytes` to an upload URL (girok's path, or an absolute URL).
async fn put(server: &Server, url: &str, bytes: Vec<u8>) -> (u16, Value) {
    let url = if url.starts_with("http") {
        url.to_owned()
    } else {
        server.url(url)
    };
    let response = server.client.put(url).body(bytes).send().await.unwrap();
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

/// `POST /v1/media/{id}/complete`.
async fn complete(server: &Server, token: &str, id: &str) -> (u16, Value) {
    call(
        server,
        "POST",
        &format!("/v1/media/{id}/complete"),
        token,
        None,
    )
    .await
}

/// Request, PUT and complete; returns the media id.
async fn upload(server: &Server, token: &str, content_type: &str, bytes: Vec<u8>) -> String {
    let (status, grant) = request(server, token, content_type, bytes.len()).await;
    assert_eq!(status, 201, "{grant}");
    let (status, body) = put(server, grant["uploadUrl"].as_str().unwrap(), bytes).await;
    assert!(status == 200, "{status} {body}");
    let id = grant["id"].as_str().unwrap().to_owned();
    let (status, body) = complete(server, token, &id).await;
    assert_eq!(status, 202, "{body}");
    id
}

/// The media's metadata once processing decided (ready or rejected), at most 60 s.
async fn settled(server: &Server, token: &str, id: &str) -> Value {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let (status, body) = call(server, "GET", &format!("/v1/media/{id}"), token, None).await;
        assert_eq!(status, 200, "{body}");
        if body["state"] == "ready" || body["state"] == "rejected" {
            return body;
        }
        assert!(Instant::now() < deadline, "still {body}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// `GET path` with `token` (if any) and extra headers.
async fn fetch(
    server: &Server,
    token: Option<&str>,
    path: &str,
    headers: &[(&str, &str)],
) -> reqwest::Response {
    let mut request = server.client.get(server.url(path));
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    request.send().await.unwrap()
}

async fn variant_bytes(server: &Server, token: &str, id: &str, variant: &str) -> Vec<u8> {
    let response = fetch(
        server,
        Some(token),
        &format!("/v1/media/{id}/{variant}"),
        &[],
    )
    .await;
    assert_eq!(response.status().as_u16(), 200);
    response.bytes().await.unwrap().to_vec()
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

fn peak_rss_mib(server: &Server) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{}/status", server.child.id())).unwrap();
    let line = status.lines().find(|l| l.starts_with("VmHWM:")).unwrap();
    line.split_whitespace()
        .nth(1)
        .unwrap()
        .parse::<u64>()
        .unwrap()
        / 1024
}

#[tokio::test]
async fn an_upload_is_processed_into_upright_variants_without_metadata_and_served_safely() {
    let dir = tempfile::tempdir().unwrap();
    let server = start_in(&dir, &[]);
    let (ann, _) = user(&server, "ann").await;
    // Stored 400 × 200, red left; EXIF orientation 6: shown rotated 90° clockwise (red on top).
    let original = with_exif(&halves_jpeg(400, 200), 6);
    assert!(contains(&original, GPS_MARK));
    let id = upload(&server, &ann, "image/jpeg", original).await;
    let media = settled(&server, &ann, &id).await;
    assert_eq!(media["state"], "ready", "{media}");
    assert_eq!(
        (media["width"].as_u64(), media["height"].as_u64()),
        (Some(200), Some(400))
    );
    assert_eq!(media["contentType"], "image/jpeg");
    assert!(media["placeholder"].as_str().unwrap().len() >= 6);
    let sizes: Vec<(String, u64, u64)> = media["variants"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| {
            (
                v["name"].as_str().unwrap().to_owned(),
                v["width"].as_u64().unwrap(),
                v["height"].as_u64().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        sizes,
        [
            ("thumb".to_owned(), 64, 128),
            ("small".to_owned(), 200, 400),
            ("large".to_owned(), 200, 400),
            ("full".to_owned(), 200, 400),
        ]
    );
    for variant in ["thumb", "small", "large", "full"] {
        let bytes = variant_bytes(&server, &ann, &id, variant).await;
        assert!(
            !contains(&bytes, GPS_MARK),
            "{variant} carries the GPS block"
        );
        assert!(!contains(&bytes, b"Exif\0\0"), "{variant} carries EXIF");
        let image = image::load_from_memory(&bytes).unwrap().to_rgb8();
        let (w, h) = image.dimensions();
        assert!(h > w, "{variant} is upright ({w} × {h})");
        let top = image.get_pixel(w / 2, h / 8);
        let bottom = image.get_pixel(w / 2, h * 7 / 8);
        assert!(
            top[0] > 150 && top[2] < 100,
            "{variant}: red on top, got {top:?}"
        );
        assert!(
            bottom[2] > 150 && bottom[0] < 100,
            "{variant}: blue below, got {bottom:?}"
        );
    }

    // Safe, cacheable headers; ETag revalidation; ranges.
    let path = format!("/v1/media/{id}/large");
    let whole = fetch(&server, Some(&ann), &path, &[]).await;
    let header = |r: &reqwest::Response, n: &str| common::header(r, n).unwrap_or_default();
    assert_eq!(header(&whole, "content-type"), "image/jpeg");
    assert_eq!(header(&whole, "x-content-type-options"), "nosniff");
    // Not an avatar: no shared cache may keep it.
    assert_eq!(
        header(&whole, "cache-control"),
        "private, max-age=31536000, immutable"
    );
    assert!(header(&whole, "vary").contains("Authorization"));
    assert!(header(&whole, "content-security-policy").contains("sandbox"));
    assert!(header(&whole, "content-disposition").starts_with("inline; filename="));
    assert_eq!(header(&whole, "accept-ranges"), "bytes");
    let etag = header(&whole, "etag");
    let size = whole.bytes().await.unwrap().len();
    let again = fetch(&server, Some(&ann), &path, &[("if-none-match", &etag)]).await;
    assert_eq!(again.status().as_u16(), 304);
    let part = fetch(&server, Some(&ann), &path, &[("range", "bytes=10-19")]).await;
    assert_eq!(part.status().as_u16(), 206);
    assert_eq!(
        header(&part, "content-range"),
        format!("bytes 10-19/{size}")
    );
    assert_eq!(part.bytes().await.unwrap().len(), 10);
    let tail = fetch(&server, Some(&ann), &path, &[("range", "bytes=-5")]).await;
    assert_eq!(tail.status().as_u16(), 206);
    assert_eq!(tail.bytes().await.unwrap().len(), 5);
    let beyond = format!("bytes={}-", size + 10);
    let out = fetch(&server, Some(&ann), &path, &[("range", &beyond)]).await;
    assert_eq!(out.status().as_u16(), 416);
    assert_eq!(header(&out, "content-range"), format!("bytes */{size}"));
    let garbage = fetch(&server, Some(&ann), &path, &[("range", "pages=1-2")]).await;
    assert_eq!(garbage.status().as_u16(), 416);
    let unknown = fetch(&server, Some(&ann), &format!("/v1/media/{id}/huge"), &[]).await;
    assert_eq!(unknown.status().as_u16(), 404);

    // The one-step upload, raw and multipart, and GraphQL's first step.
    let png = encode(
        DynamicImage::ImageRgba8(image::RgbaImage::from_pixel(
            30,
            20,
            image::Rgba([1, 2, 3, 100]),
        )),
        ImageFormat::Png,
    );
    let response = server
        .client
        .post(server.url("/v1/media/upload"))
        .bearer_auth(&ann)
        .header("content-type", "image/png")
        .body(png.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 202);
    let raw: Value = response.json().await.unwrap();
    let raw = settled(&server, &ann, raw["id"].as_str().unwrap()).await;
    assert_eq!(
        (raw["state"].as_str(), raw["contentType"].as_str()),
        (Some("ready"), Some("image/png"))
    );
    let boundary = "girokboundary7";
    let mut form = format!(
        "--{boundary}\r\nContent-Disposition: form-data; name=\"note\"\r\n\r\nhello\r\n--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"a.png\"\r\nContent-Type: image/png\r\n\r\n"
    )
    .into_bytes();
    form.extend_from_slice(&png);
    form.extend_from_slice(format!("\r\n--{boundary}--\r\n").as_bytes());
    let response = server
        .client
        .post(server.url("/v1/media/upload"))
        .bearer_auth(&ann)
        .header(
            "content-type",
            format!("multipart/form-data; boundary={boundary}"),
        )
        .body(form)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 202);
    let multipart: Value = response.json().await.unwrap();
    assert_eq!(
        settled(&server, &ann, multipart["id"].as_str().unwrap()).await["state"],
        "ready"
    );
    server.set_token(&ann);
    let data = server
        .gql(
            "mutation($b: Int!) { requestMediaUpload(contentType: \"image/jpeg\", bytes: $b) { id uploadUrl method expiresAt } }",
            json!({ "b": 1000 }),
        )
        .await;
    let grant = &data["requestMediaUpload"];
    assert_eq!(grant["method"], "PUT");
    assert!(grant["uploadUrl"].as_str().unwrap().starts_with(&format!(
        "/v1/media/{}/upload?",
        grant["id"].as_str().unwrap()
    )));
    let media = server
        .gql(
            "query($id: ID!) { media(id: $id) { id state width height contentType placeholder url(variant: \"thumb\") variants { name width height } } }",
            json!({ "id": id }),
        )
        .await;
    assert_eq!(media["media"]["width"], 200);
    assert_eq!(media["media"]["url"], format!("/v1/media/{id}/thumb"));
}

#[tokio::test]
async fn bad_uploads_get_typed_errors_with_little_memory_and_break_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let server = start_in(
        &dir,
        &[
            ("GIROK__MEDIA__MAX_MIB", "2"),
            ("GIROK__MEDIA__UPLOAD_URL_TTL_SECS", "1"),
        ],
    );
    let (ann, _) = user(&server, "ann").await;

    // Refused at the request: type, size.
    let (status, body) = request(&server, &ann, "image/svg+xml", 100).await;
    assert_eq!((status, rest_code(&body)), (415, "UNSUPPORTED_TYPE"));
    let (status, body) = request(&server, &ann, "text/html", 100).await;
    assert_eq!((status, rest_code(&body)), (415, "UNSUPPORTED_TYPE"));
    let (status, body) = request(&server, &ann, "image/png", 3 << 20).await;
    assert_eq!((status, rest_code(&body)), (413, "TOO_LARGE"));
    let (status, body) = request(&server, &ann, "image/png", 0).await;
    assert_eq!((status, rest_code(&body)), (422, "INVALID_ARGUMENT"));
    let (status, _) = call(
        &server,
        "POST",
        "/v1/media",
        &ann,
        Some(json!({ "contentType": "image/png" })),
    )
    .await;
    assert_eq!(status, 422);

    // Refused at the upload URL: tampered, wrong size, expired; and no sign-in is needed.
    let good = halves_jpeg(64, 64);
    let (_, grant) = request(&server, &ann, "image/jpeg", good.len()).await;
    let url = grant["uploadUrl"].as_str().unwrap().to_owned();
    let id = grant["id"].as_str().unwrap().to_owned();
    let tampered = format!("{}0", &url[..url.len() - 1]).replace("signature=", "signature=f");
    let (status, body) = put(&server, &tampered, good.clone()).await;
    assert_eq!((status, rest_code(&body)), (403, "UPLOAD_URL_INVALID"));
    let later = url.replace("expires=", "expires=9");
    let (status, body) = put(&server, &later, good.clone()).await;
    assert_eq!(
        (status, rest_code(&body)),
        (403, "UPLOAD_URL_INVALID"),
        "expiry altered"
    );
    let (status, body) = put(&server, &url, good[..good.len() - 1].to_vec()).await;
    assert_eq!((status, rest_code(&body)), (422, "SIZE_MISMATCH"));
    let (status, body) = complete(&server, &ann, &id).await;
    assert_eq!((status, rest_code(&body)), (409, "UPLOAD_MISSING"));
    tokio::time::sleep(Duration::from_millis(1_100)).await;
    let (status, body) = put(&server, &url, good.clone()).await;
    assert_eq!(
        (status, rest_code(&body)),
        (403, "UPLOAD_URL_INVALID"),
        "expired"
    );

    // Oversize bodies of the one-step upload.
    let response = server
        .client
        .post(server.url("/v1/media/upload"))
        .bearer_auth(&ann)
        .header("content-type", "image/jpeg")
        .body(vec![0u8; 3 << 20])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 413);
    assert_eq!(
        common::header(&response, "connection").as_deref(),
        Some("close")
    );
    let body: Value = response.json().await.unwrap();
    assert_eq!(rest_code(&body), "TOO_LARGE");

    // Refused by processing, each with its reason: the bytes decide, not the declared type.
    let truncated_png = {
        let png = encode(DynamicImage::ImageRgb8(noise_rgb(64, 64)), ImageFormat::Png);
        png[..png.len() / 2].to_vec()
    };
    let mut corrupt_jpeg = halves_jpeg(64, 64);
    let middle = corrupt_jpeg.len() / 2;
    corrupt_jpeg.truncate(middle);
    corrupt_jpeg.extend(std::iter::repeat_n(0xAB, 50));
    let polyglot = b"<html><script>alert(document.cookie)</script></html>".to_vec();
    let svg = b"<svg xmlns=\"http://www.w3.org/2000/svg\" onload=\"alert(1)\"/>".to_vec();
    let cases: [(&str, &str, Vec<u8>, &[&str]); 5] = [
        (
            "bomb",
            "image/png",
            png_declaring(50_000, 50_000),
            &["TOO_MANY_PIXELS"],
        ),
        (
            "truncated png",
            "image/png",
            truncated_png,
            &["CORRUPT_IMAGE"],
        ),
        (
            "corrupt jpeg",
            "image/jpeg",
            corrupt_jpeg,
            &["CORRUPT_IMAGE", "ready"],
        ),
        (
            "html named .jpg",
            "image/jpeg",
            polyglot,
            &["UNSUPPORTED_TYPE"],
        ),
        ("svg named .png", "image/png", svg, &["UNSUPPORTED_TYPE"]),
    ];
    for (what, content_type, bytes, expected) in cases {
        let id = upload(&server, &ann, content_type, bytes).await;
        let media = settled(&server, &ann, &id).await;
        let outcome = media["rejectedReason"].as_str().unwrap_or("ready");
        assert!(expected.contains(&outcome), "{what}: {media}");
        if media["state"] == "rejected" {
            let response = fetch(&server, Some(&ann), &format!("/v1/media/{id}/large"), &[]).await;
            assert_eq!(response.status().as_u16(), 409, "{what}");
            let body: Value = response.json().await.unwrap();
            assert_eq!(rest_code(&body), "MEDIA_REJECTED");
        }
    }
    assert!(server.metric("girok_media_rejected_total").await >= 4);
    let peak = peak_rss_mib(&server);
    println!("peak RSS after the bad uploads: {peak} MiB");
    // A 50,000² RGB image decoded would take 7 GiB.
    assert!(peak < 1024, "peak RSS {peak} MiB");

    // Path tricks and bad ids: not found, never a file outside the store.
    for path in [
        "/v1/media/..%2F..%2Fetc%2Fpasswd/large",
        "/v1/media/%2e%2e/large",
        "/v1/media/not-an-id",
        "/v1/media/00000000-0000-0000-0000-000000000000/large",
        &format!("/v1/media/{id}/..%2F..%2Fupload.key"),
    ] {
        let response = fetch(&server, Some(&ann), path, &[]).await;
        assert!(
            response.status().as_u16() == 404 || response.status().as_u16() == 409,
            "{path}"
        );
    }

    // The server is unharmed: a good upload still works.
    let id = upload(&server, &ann, "image/jpeg", good).await;
    assert_eq!(settled(&server, &ann, &id).await["state"], "ready");
}

fn noise_rgb(width: u32, height: u32) -> RgbImage {
    RgbImage::from_fn(width, height, |x, y| {
        Rgb([(x * 7 + y * 13) as u8, (x * y) as u8, 9])
    })
}

const POST: &str = "mutation($c: String!, $m: [String!]) { createPost(content: $c, mediaIds: $m) { id mediaIds media { id width url(variant: \"small\") } } }";

#[tokio::test]
async fn only_your_ready_media_can_be_used_and_readers_are_checked() {
    let dir = tempfile::tempdir().unwrap();
    let server = start_in(&dir, &[]);
    let (ann, _) = user(&server, "ann").await;
    let (bob, _) = user(&server, "bob").await;
    let anns = upload(&server, &ann, "image/jpeg", halves_jpeg(120, 80)).await;
    settled(&server, &ann, &anns).await;
    let bobs = upload(&server, &bob, "image/jpeg", halves_jpeg(80, 80)).await;
    settled(&server, &bob, &bobs).await;

    // Not yet used: only its owner sees it.
    let (status, body) = call(&server, "GET", &format!("/v1/media/{anns}"), &bob, None).await;
    assert_eq!((status, rest_code(&body)), (404, "MEDIA_NOT_FOUND"));
    let response = fetch(&server, Some(&bob), &format!("/v1/media/{anns}/small"), &[]).await;
    assert_eq!(response.status().as_u16(), 404);

    // Using: someone else's, unknown, not ready, then your own.
    let code = |body: &Value| common::code(body).to_owned();
    let body = common::as_user(&server, &ann, POST, json!({ "c": "x", "m": [bobs] })).await;
    assert_eq!(code(&body), "NOT_MEDIA_OWNER");
    let body = common::as_user(&server, &ann, POST, json!({ "c": "x", "m": ["m1"] })).await;
    assert_eq!(code(&body), "MEDIA_NOT_FOUND");
    let (_, pending) = request(&server, &ann, "image/jpeg", 100).await;
    let pending = pending["id"].as_str().unwrap();
    let body = common::as_user(&server, &ann, POST, json!({ "c": "x", "m": [pending] })).await;
    assert_eq!(code(&body), "MEDIA_NOT_READY");
    let body = common::as_user(
        &server,
        &ann,
        "mutation($a: String) { updateMe(avatarMediaId: $a) { id } }",
        json!({ "a": bobs }),
    )
    .await;
    assert_eq!(code(&body), "NOT_MEDIA_OWNER");
    let (status, body) = call(
        &server,
        "POST",
        "/v1/posts",
        &ann,
        Some(json!({ "content": "x", "mediaIds": [bobs] })),
    )
    .await;
    assert_eq!((status, rest_code(&body)), (403, "NOT_MEDIA_OWNER"));
    let body = common::as_user(&server, &ann, POST, json!({ "c": "look", "m": [anns] })).await;
    let post = &body["data"]["createPost"];
    assert_eq!(post["media"][0]["id"], anns.as_str(), "{body}");
    assert_eq!(post["media"][0]["width"], 120);
    assert_eq!(post["media"][0]["url"], format!("/v1/media/{anns}/small"));

    // A page of posts reads all their media in one batch.
    let second = common::ready_media(&server, &ann, 1).await.remove(0);
    let body = common::as_user(&server, &ann, POST, json!({ "c": "more", "m": [second] })).await;
    assert!(body.get("errors").is_none(), "{body}");
    let media_loads = "girok_graphql_batch_loads_total{loader=\"media\"}";
    let before = server.metric(media_loads).await;
    server.set_token(&ann);
    let page = server
        .gql("{ timeline { posts { media { id } } } }", json!({}))
        .await;
    let shown: Vec<&Value> = page["timeline"]["posts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| &p["media"][0]["id"])
        .collect();
    assert_eq!(shown, [&json!(second), &json!(anns)], "{page}");
    assert_eq!(
        server.metric(media_loads).await,
        before + 1,
        "one batch for the page"
    );

    // REST shows the same media on the post.
    let post_id = post["id"].as_str().unwrap();
    let (status, rest) = call(&server, "GET", &format!("/v1/posts/{post_id}"), &bob, None).await;
    assert_eq!(status, 200, "{rest}");
    assert_eq!(rest["media"][0]["id"], anns.as_str(), "{rest}");
    assert_eq!(
        rest["media"][0]["variants"][1]["url"],
        format!("/v1/media/{anns}/small")
    );

    // On a post: any signed-in user reads it; nobody without signing in.
    let response = fetch(&server, Some(&bob), &format!("/v1/media/{anns}/small"), &[]).await;
    assert_eq!(response.status().as_u16(), 200);
    let response = fetch(&server, None, &format!("/v1/media/{anns}/small"), &[]).await;
    assert_eq!(response.status().as_u16(), 404);
    // An avatar: anyone, signed in or not.
    server.set_token(&bob);
    let data = server
        .gql("mutation($a: String) { updateMe(avatarMediaId: $a) { avatarMediaId avatarMedia { id url(variant: \"thumb\") } } }", json!({ "a": bobs }))
        .await;
    assert_eq!(data["updateMe"]["avatarMedia"]["id"], bobs.as_str());
    let response = fetch(&server, None, &format!("/v1/media/{bobs}/thumb"), &[]).await;
    assert_eq!(response.status().as_u16(), 200);
    assert!(
        common::header(&response, "cache-control")
            .unwrap()
            .starts_with("public")
    );
    // A new avatar: the old one is no longer anyone's to read but its owner's.
    let newer = common::ready_media(&server, &bob, 1).await.remove(0);
    server.set_token(&bob);
    server
        .gql(
            "mutation($a: String) { updateMe(avatarMediaId: $a) { id } }",
            json!({ "a": newer }),
        )
        .await;
    let response = fetch(&server, None, &format!("/v1/media/{bobs}/thumb"), &[]).await;
    assert_eq!(response.status().as_u16(), 404, "a former avatar");
    let response = fetch(&server, Some(&ann), &format!("/v1/media/{bobs}/thumb"), &[]).await;
    assert_eq!(
        response.status().as_u16(),
        404,
        "a former avatar, signed in"
    );
    let response = fetch(&server, None, &format!("/v1/media/{newer}/thumb"), &[]).await;
    assert_eq!(response.status().as_u16(), 200);
    // A deleted post no longer shares its media.
    let other = common::ready_media(&server, &ann, 1).await.remove(0);
    let body = common::as_user(&server, &ann, POST, json!({ "c": "brief", "m": [other] })).await;
    let brief = body["data"]["createPost"]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let response = fetch(
        &server,
        Some(&bob),
        &format!("/v1/media/{other}/thumb"),
        &[],
    )
    .await;
    assert_eq!(response.status().as_u16(), 200);
    let (status, _) = call(&server, "DELETE", &format!("/v1/posts/{brief}"), &ann, None).await;
    assert!(status == 200 || status == 204);
    let response = fetch(
        &server,
        Some(&bob),
        &format!("/v1/media/{other}/thumb"),
        &[],
    )
    .await;
    assert_eq!(response.status().as_u16(), 404, "the post is gone");
    let response = fetch(
        &server,
        Some(&ann),
        &format!("/v1/media/{other}/thumb"),
        &[],
    )
    .await;
    assert_eq!(response.status().as_u16(), 200, "its owner still reads it");

    // Deleting: not someone else's; your own is gone from every read at once.
    let (status, body) = call(&server, "DELETE", &format!("/v1/media/{anns}"), &bob, None).await;
    assert_eq!((status, rest_code(&body)), (403, "NOT_MEDIA_OWNER"));
    let (status, body) = call(&server, "DELETE", &format!("/v1/media/{anns}"), &ann, None).await;
    assert_eq!(status, 200, "{body}");
    let seq = body["seq"].as_u64().unwrap();
    server.set_token(&bob);
    let data = server
        .gql(
            "query($id: ID!, $a: Seq) { post(id: $id, after: $a) { mediaIds media { id } } }",
            json!({ "id": post_id, "a": seq }),
        )
        .await;
    assert_eq!(data["post"]["media"], json!([]));
    for token in [&ann, &bob] {
        let response = fetch(
            &server,
            Some(token),
            &format!("/v1/media/{anns}/small"),
            &[],
        )
        .await;
        assert_eq!(response.status().as_u16(), 404);
    }
    let (status, body) = call(&server, "DELETE", &format!("/v1/media/{anns}"), &ann, None).await;
    assert_eq!((status, rest_code(&body)), (404, "MEDIA_NOT_FOUND"));
}

#[tokio::test]
async fn unused_uploads_are_swept_and_deleted_objects_purged_through_the_log() {
    let dir = tempfile::tempdir().unwrap();
    let server = start_in(
        &dir,
        &[
            ("GIROK__MEDIA__UNUSED_AFTER_SECS", "2"),
            ("GIROK__MEDIA__RETENTION_SECS", "0"),
            ("GIROK__MEDIA__SWEEP_INTERVAL_SECS", "1"),
        ],
    );
    let (ann, _) = user(&server, "ann").await;
    let used = upload(&server, &ann, "image/jpeg", halves_jpeg(50, 50)).await;
    settled(&server, &ann, &used).await;
    let body = common::as_user(&server, &ann, POST, json!({ "c": "kept", "m": [used] })).await;
    assert!(body.get("errors").is_none(), "{body}");
    let unused = upload(&server, &ann, "image/jpeg", noise_jpeg(60, 40)).await;
    settled(&server, &ann, &unused).await;
    let objects = dir
        .path()
        .join("data")
        .join("media")
        .join("objects")
        .join("objects");
    let count = || std::fs::read_dir(&objects).map_or(0, |d| d.count());
    let before = count();
    assert!(before >= 2, "{before} objects");

    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let (status, _) = call(&server, "GET", &format!("/v1/media/{unused}"), &ann, None).await;
        let types = log_types(&server).await;
        if status == 404 && types.iter().any(|t| t == "media.purged") {
            break;
        }
        assert!(Instant::now() < deadline, "not swept: {types:?}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let (status, body) = call(&server, "GET", &format!("/v1/media/{used}"), &ann, None).await;
    assert_eq!(
        (status, body["state"].as_str()),
        (200, Some("ready")),
        "a used one stays"
    );
    assert!(count() < before, "the swept media's objects are gone");
    let response = fetch(&server, Some(&ann), &format!("/v1/media/{used}/thumb"), &[]).await;
    assert_eq!(response.status().as_u16(), 200);
}

/// The type of every event in the log.
async fn log_types(server: &Server) -> Vec<String> {
    let response = server
        .client
        .get(server.url("/v1/log/events?from=1&limit=1000"))
        .bearer_auth(server.operator_token())
        .send()
        .await
        .unwrap();
    let body: Value = response.json().await.unwrap();
    body["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["type"].as_str().unwrap().to_owned())
        .collect()
}

#[tokio::test]
async fn kill_9_while_processing_then_restart_finishes_the_upload_and_replays_equal() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let server = start_in(&dir, &[]);
    let (ann, _) = user(&server, "ann").await;
    let big = noise_jpeg(3_000, 2_000);
    let mut ids = Vec::new();
    for _ in 0..2 {
        ids.push(upload(&server, &ann, "image/jpeg", big.clone()).await);
    }
    // Still processing (two 6 Mpx images take seconds): never half-visible meanwhile.
    let response = fetch(
        &server,
        Some(&ann),
        &format!("/v1/media/{}/large", ids[1]),
        &[],
    )
    .await;
    assert_eq!(response.status().as_u16(), 409, "served before ready");
    server.kill9();

    let server = Server::start(&data, &[]);
    let ann = server.sign_in("ann").await;
    for id in &ids {
        let media = settled(&server, &ann, id).await;
        assert_eq!(media["state"], "ready", "{media}");
        let bytes = variant_bytes(&server, &ann, id, "full").await;
        let image = image::load_from_memory(&bytes).unwrap();
        assert_eq!((image.width(), image.height()), (2_560, 1_707));
    }
    let types = log_types(&server).await;
    let ready = types.iter().filter(|t| *t == "media.ready").count();
    assert_eq!(ready, 2, "each upload is decided once: {types:?}");
    common::views_caught_up(&server).await;
    assert!(server.terminate().success());
    let (code, out, err) =
        common::girok(&["replay", "--json", "--data-dir", data.to_str().unwrap()]);
    assert_eq!(code, 0, "{err}");
    let report: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(
        report["write_model_digest_before"], report["write_model_digest_after"],
        "the write model (media records included) is what the log says"
    );
}

#[tokio::test]
async fn uploads_go_straight_to_an_s3_compatible_server_through_presigned_urls() {
    let endpoint = std::env::var("GIROK_TEST_S3_URL").expect(
        "GIROK_TEST_S3_URL must name an S3-compatible server (scripts/test.sh starts moto)",
    );
    let bucket = format!("girok-{}", uuid::Uuid::now_v7().simple());
    let client = reqwest::Client::new();
    let created = client
        .put(format!("{endpoint}/{bucket}"))
        .send()
        .await
        .unwrap();
    assert!(
        created.status().is_success(),
        "bucket: {}",
        created.status()
    );
    let dir = tempfile::tempdir().unwrap();
    let server = start_in(
        &dir,
        &[
            ("GIROK__MEDIA__STORE", "s3"),
            ("GIROK__MEDIA__S3__ENDPOINT", &endpoint),
            ("GIROK__MEDIA__S3__BUCKET", &bucket),
            ("GIROK__MEDIA__S3__ACCESS_KEY_ID", "testing"),
            ("GIROK__MEDIA__S3__SECRET_ACCESS_KEY", "testing"),
        ],
    );
    let (ann, _) = user(&server, "ann").await;
    let original = with_exif(&halves_jpeg(300, 100), 6);
    let (status, grant) = request(&server, &ann, "image/jpeg", original.len()).await;
    assert_eq!(status, 201, "{grant}");
    let url = grant["uploadUrl"].as_str().unwrap();
    assert!(
        url.starts_with(&format!("{endpoint}/{bucket}/uploads/")),
        "{url}"
    );
    assert!(url.contains("X-Amz-Signature="), "{url}");
    let id = grant["id"].as_str().unwrap();
    let (status, body) = complete(&server, &ann, id).await;
    assert_eq!((status, rest_code(&body)), (409, "UPLOAD_MISSING"));
    // The presigned URL cannot bound the size: completion checks it before anything reads it.
    let mut longer = original.clone();
    longer.extend_from_slice(&[0; 10]);
    let stored = client.put(url).body(longer).send().await.unwrap();
    assert!(stored.status().is_success());
    let (status, body) = complete(&server, &ann, id).await;
    assert_eq!((status, rest_code(&body)), (422, "SIZE_MISMATCH"));
    let stored = client.put(url).body(original).send().await.unwrap();
    assert!(
        stored.status().is_success(),
        "presigned PUT: {}",
        stored.status()
    );
    let (status, body) = complete(&server, &ann, id).await;
    assert_eq!(status, 202, "{body}");
    let media = settled(&server, &ann, id).await;
    assert_eq!(media["state"], "ready", "{media}");
    assert_eq!(
        (media["width"].as_u64(), media["height"].as_u64()),
        (Some(100), Some(300))
    );
    let bytes = variant_bytes(&server, &ann, id, "small").await;
    assert!(!contains(&bytes, GPS_MARK));
    let part = fetch(
        &server,
        Some(&ann),
        &format!("/v1/media/{id}/small"),
        &[("range", "bytes=0-99")],
    )
    .await;
    assert_eq!(part.status().as_u16(), 206);
    assert_eq!(part.bytes().await.unwrap().to_vec(), bytes[..100].to_vec());
    // The variants are in the bucket under their content hashes; the upload is gone.
    let listing = client
        .get(format!("{endpoint}/{bucket}?list-type=2"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(listing.contains("<Key>objects/"), "{listing}");
    assert!(!listing.contains("<Key>uploads/"), "{listing}");
    // The one-step upload too.
    let response = server
        .client
        .post(server.url("/v1/media/upload"))
        .bearer_auth(&ann)
        .header("content-type", "image/jpeg")
        .body(halves_jpeg(40, 40))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 202);
    let one: Value = response.json().await.unwrap();
    assert_eq!(
        settled(&server, &ann, one["id"].as_str().unwrap()).await["state"],
        "ready"
    );
}

#[tokio::test]
async fn an_attachment_in_a_match_room_is_read_by_the_match_while_it_lasts() {
    let dir = tempfile::tempdir().unwrap();
    let server = start_in(&dir, &[]);
    let (ann, _) = user(&server, "ann").await;
    let (bob, _) = user(&server, "bob").await;
    let (cat, _) = user(&server, "cat").await;
    let photo = common::ready_media(&server, &ann, 1).await.remove(0);
    let queue = |token: &str| {
        let token = token.to_owned();
        let server = &server;
        async move {
            let body = json!({ "tags": [] });
            call(server, "POST", "/v1/matching/queue", &token, Some(body)).await
        }
    };
    let (status, _) = queue(&ann).await;
    assert_eq!(status, 201);
    let (status, joined) = queue(&bob).await;
    assert_eq!(status, 201, "{joined}");
    let room = joined["status"]["match"]["roomId"]
        .as_str()
        .unwrap()
        .to_owned();
    let body = json!({ "body": "look", "attachments": [photo] });
    let path = format!("/v1/rooms/{room}/messages");
    let (status, sent) = call(&server, "POST", &path, &ann, Some(body)).await;
    assert_eq!(status, 201, "{sent}");
    let thumb = format!("/v1/media/{photo}/thumb");
    for (token, expected) in [(&bob, 200), (&cat, 404)] {
        let response = fetch(&server, Some(token), &thumb, &[]).await;
        assert_eq!(response.status().as_u16(), expected);
    }
    let skip = "/v1/matching/skip?requeue=false";
    let (status, body) = call(&server, "POST", skip, &bob, None).await;
    assert_eq!(status, 200, "{body}");
    let response = fetch(&server, Some(&bob), &thumb, &[]).await;
    assert_eq!(response.status().as_u16(), 404, "the match ended");
    let response = fetch(&server, Some(&ann), &thumb, &[]).await;
    assert_eq!(response.status().as_u16(), 200, "the owner still reads it");
}

#[tokio::test]
async fn a_message_attachment_is_read_only_by_the_rooms_members() {
    let dir = tempfile::tempdir().unwrap();
    let server = start_in(&dir, &[]);
    let (ann, _) = user(&server, "ann").await;
    let (bob, bob_id) = user(&server, "bob").await;
    let (cat, _) = user(&server, "cat").await;
    server.set_token(&ann);
    let room = server.create_room("photos").await;
    server.add_member(&room, &bob_id).await;
    let photo = common::ready_media(&server, &ann, 2).await;
    let bobs = common::ready_media(&server, &bob, 1).await.remove(0);

    // Only the sender's ready media, at most four, each once.
    let send = |token: &str, attachments: Value| {
        let body = json!({ "body": "look", "attachments": attachments });
        let path = format!("/v1/rooms/{room}/messages");
        let token = token.to_owned();
        let server = &server;
        async move { call(server, "POST", &path, &token, Some(body)).await }
    };
    let (status, body) = send(&ann, json!([bobs])).await;
    assert_eq!((status, rest_code(&body)), (403, "NOT_MEDIA_OWNER"));
    let (status, body) = send(&ann, json!([photo[0], photo[0]])).await;
    assert_eq!((status, rest_code(&body)), (422, "INVALID_ARGUMENT"));
    let (status, body) = send(&ann, json!(["nope"])).await;
    assert_eq!((status, rest_code(&body)), (422, "INVALID_ARGUMENT"));
    let mut socket = common::sockets::connect(&server, Some(&bob)).await;
    common::sockets::next_of(&mut socket, "welcome").await;
    common::sockets::subscribe(&mut socket, &format!("chat:{room}")).await;
    let (status, body) = send(&ann, json!([photo[0], photo[1]])).await;
    assert_eq!(status, 201, "{body}");
    let seq = body["seq"].as_u64().unwrap();
    // The room's live event carries the ids and the media objects.
    let frame = loop {
        let frame = common::sockets::next_of(&mut socket, "event").await;
        if frame["event"]["type"] == "chat.message.sent" {
            break frame;
        }
    };
    assert_eq!(
        frame["event"]["payload"]["attachments"],
        json!([photo[0], photo[1]])
    );
    assert_eq!(
        frame["event"]["media"][0]["id"],
        photo[0].as_str(),
        "{frame}"
    );
    assert_eq!(frame["event"]["media"][0]["variants"][0]["name"], "thumb");

    // Members read it (history lists it, GraphQL resolves it); others do not, even by id.
    let (status, page) = call(
        &server,
        "GET",
        &format!("/v1/rooms/{room}/messages?after={seq}"),
        &bob,
        None,
    )
    .await;
    assert_eq!(status, 200, "{page}");
    let message = &page["messages"][0];
    assert_eq!(message["attachments"], json!([photo[0], photo[1]]));
    assert_eq!(message["media"][1]["id"], photo[1].as_str(), "{message}");
    assert_eq!(message["media"][1]["state"], "ready");
    server.set_token(&bob);
    let data = server
        .gql(
            "query($r: ID!) { messages(roomId: $r, first: 1) { nodes { attachments { id width url(variant: \"thumb\") } } } }",
            json!({ "r": room }),
        )
        .await;
    let attachments = &data["messages"]["nodes"][0]["attachments"];
    assert_eq!(attachments[1]["id"], photo[1].as_str(), "{data}");
    for (token, expected) in [(&ann, 200), (&bob, 200), (&cat, 404)] {
        let response = fetch(
            &server,
            Some(token),
            &format!("/v1/media/{}/thumb", photo[0]),
            &[],
        )
        .await;
        assert_eq!(response.status().as_u16(), expected);
    }
    let response = fetch(&server, None, &format!("/v1/media/{}/thumb", photo[0]), &[]).await;
    assert_eq!(response.status().as_u16(), 404, "not without signing in");
    // Deleting the message takes its attachments from the room (those no other message there
    // carries); leaving the room ends the access to the rest.
    let (status, again) = send(&ann, json!([photo[1]])).await;
    assert_eq!(status, 201, "{again}");
    let message = page["messages"][0]["id"].as_str().unwrap();
    let path = format!("/v1/rooms/{room}/messages/{message}");
    let (status, body) = call(&server, "DELETE", &path, &ann, None).await;
    assert!(status == 200 || status == 204, "{status} {body}");
    let thumb = |media: &str| format!("/v1/media/{media}/thumb");
    let response = fetch(&server, Some(&bob), &thumb(&photo[0]), &[]).await;
    assert_eq!(response.status().as_u16(), 404, "its message is gone");
    let response = fetch(&server, Some(&bob), &thumb(&photo[1]), &[]).await;
    assert_eq!(
        response.status().as_u16(),
        200,
        "another message still carries it"
    );
    let (status, body) = call(
        &server,
        "POST",
        &format!("/v1/rooms/{room}/leave"),
        &bob,
        None,
    )
    .await;
    assert!(status == 200 || status == 204, "{status} {body}");
    let response = fetch(&server, Some(&bob), &thumb(&photo[1]), &[]).await;
    assert_eq!(response.status().as_u16(), 404, "left the room");
    // What the attachments grant is the log's: a replay rebuilds it the same.
    let data = server.data_dir.clone();
    common::views_caught_up(&server).await;
    assert!(server.terminate().success());
    let (code, out, err) =
        common::girok(&["replay", "--json", "--data-dir", data.to_str().unwrap()]);
    assert_eq!(code, 0, "{err}");
    let report: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(
        report["write_model_digest_before"],
        report["write_model_digest_after"]
    );
}
