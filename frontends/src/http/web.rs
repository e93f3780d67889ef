//! The web app, served by girok itself from files compiled into the binary
//! (`frontends/assets/web`, built from `web/` by esbuild and committed, so running girok needs
//! no Node.js). `index.html` answers `/` and every client-side route, revalidated on each
//! load (a 304 while the build is the same); the bundles under `/assets/` carry a content
//! hash in their names and are cached for good (gzip when the browser accepts it). The
//! page's Content-Security-Policy allows girok's own scripts, styles, images and connections
//! only: no inline script or style, no other origin. The API's paths are never the app's: a missing route or asset under them is a 404.
//! `web.enabled = false` turns the app off.

use crate::app::AppState;
use crate::error::ApiError;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};

include!(concat!(env!("OUT_DIR"), "/web_files.rs"));

/// The app page's policy.
const PAGE_POLICY: &str = "default-src 'none'; script-src 'self'; style-src 'self'; \
     img-src 'self' blob: data:; connect-src 'self'; font-src 'self'; manifest-src 'self'; \
     base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

/// Paths that belong to the API, operators and well-known URIs (RFC 8615), never to the app's
/// client-side routes.
const NOT_THE_APP: &[&str] = &[
    "/v1",
    "/graphql",
    "/graphiql",
    "/ws",
    "/assets",
    "/healthz",
    "/readyz",
    "/metrics",
    "/.well-known",
];

fn file(name: &str) -> Option<&'static [u8]> {
    FILES
        .iter()
        .find(|(path, _)| *path == name)
        .map(|(_, bytes)| *bytes)
}

fn not_found(what: &'static str) -> Response {
    ApiError::new(StatusCode::NOT_FOUND, "NOT_FOUND", what).into_response()
}

/// Whether `path` may be one of the app's own routes (`/rooms/…`, `/u/…`): not the API's, and
/// not a file (a last segment with a dot is a missing file, not a page).
fn is_app_route(path: &str) -> bool {
    let reserved = NOT_THE_APP.iter().any(|prefix| {
        path.strip_prefix(prefix)
            .is_some_and(|rest| rest.is_empty() || rest.starts_with('/'))
    });
    let last = path.rsplit('/').next().unwrap_or_default();
    !reserved && !last.contains('.')
}

/// The page's entity tag: a hash of its bytes, so a revalidation costs a 304 until girok
/// serves another build.
fn page_etag(page: &[u8]) -> &'static str {
    static ETAG: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    ETAG.get_or_init(|| {
        use sha2::Digest;
        let hash = sha2::Sha256::digest(page);
        let hex: String = hash[..12]
            .iter()
            .map(|byte| format!("{byte:02x}"))
            .collect();
        format!("\"{hex}\"")
    })
}

/// Every request no route took: the app's page for its client-side routes, else 404.
pub async fn fallback(
    State(state): State<AppState>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
) -> Response {
    let wanted = method == Method::GET || method == Method::HEAD;
    if !(state.config.web.enabled && wanted && is_app_route(uri.path())) {
        return not_found("no such route");
    }
    let Some(page) = file("index.html") else {
        return not_found("this build of girok has no web app");
    };
    let etag = page_etag(page);
    let unchanged = super::etag_matches(&headers, etag);
    let mut response = if unchanged {
        super::security_headers::html_page(StatusCode::NOT_MODIFIED, PAGE_POLICY)
    } else {
        super::security_headers::html_page(page, PAGE_POLICY)
    };
    response
        .headers_mut()
        .insert(header::ETAG, HeaderValue::from_static(etag));
    response
}

/// Whether one `Accept-Encoding` entry (`gzip`, `GZip;Q=0.5`) accepts gzip: `q=0` refuses it.
fn accepts_gzip(entry: &str) -> bool {
    let mut parts = entry.split(';').map(str::trim);
    if !parts
        .next()
        .is_some_and(|coding| coding.eq_ignore_ascii_case("gzip"))
    {
        return false;
    }
    parts
        .filter_map(|param| {
            let (name, value) = param.split_once('=')?;
            name.trim()
                .eq_ignore_ascii_case("q")
                .then_some(value.trim())
        })
        .all(|q| q.parse::<f32>().map_or(true, |q| q > 0.0))
}

fn content_type(name: &str) -> &'static str {
    match name.rsplit('.').next().unwrap_or_default() {
        "js" => "text/javascript; charset=utf-8",
        "css" => "text/css; charset=utf-8",
        "svg" => "image/svg+xml",
        "png" => "image/png",
        "json" => "application/json",
        _ => "application/octet-stream",
    }
}

/// `GET /assets/{name}`: a hashed bundle, cached for good.
pub async fn asset(
    State(state): State<AppState>,
    Path(name): Path<String>,
    headers: HeaderMap,
) -> Response {
    if !state.config.web.enabled {
        return not_found("the web app is turned off (web.enabled)");
    }
    let path = format!("assets/{name}");
    if name.ends_with(".gz") {
        return not_found("no such asset");
    }
    let Some(plain) = file(&path) else {
        return not_found("no such asset");
    };
    let accepts_gzip = headers
        .get_all(header::ACCEPT_ENCODING)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(','))
        .any(accepts_gzip);
    let gzipped = file(&format!("{path}.gz")).filter(|_| accepts_gzip);
    let mut response = (
        [
            (header::CONTENT_TYPE, content_type(&name)),
            (header::CACHE_CONTROL, "public, max-age=31536000, immutable"),
        ],
        gzipped.unwrap_or(plain),
    )
        .into_response();
    let response_headers = response.headers_mut();
    response_headers.insert(header::VARY, HeaderValue::from_static("accept-encoding"));
    if gzipped.is_some() {
        response_headers.insert(header::CONTENT_ENCODING, HeaderValue::from_static("gzip"));
    }
    response
}

#[cfg(test)]
mod tests {
    use super::{accepts_gzip, is_app_route};

    #[test]
    fn gzip_is_taken_unless_refused() {
        for entry in ["gzip", " gzip ", "gzip;q=0.5", "gzip; q=1", "GZIP;Q=0.3"] {
            assert!(accepts_gzip(entry), "{entry}");
        }
        for entry in ["gzip;q=0", "gzip; q=0.0", "gzip;Q=0", "br", "x-gzip2", "*"] {
            assert!(!accepts_gzip(entry), "{entry}");
        }
    }

    #[test]
    fn the_api_and_files_are_never_app_routes() {
        for path in ["/", "/rooms/abc", "/u/alice", "/feed", "/v1x"] {
            assert!(is_app_route(path), "{path}");
        }
        for path in [
            "/v1",
            "/v1/rooms",
            "/graphql",
            "/graphql/ws",
            "/ws",
            "/assets/app-X.js",
            "/metrics",
            "/favicon.ico",
            "/.well-known/change-password",
            "/rooms/a.b",
        ] {
            assert!(!is_app_route(path), "{path}");
        }
    }
}
