//! The GraphiQL IDE at `GET /graphql`, served whole by girok: the page, girok's small start
//! script and the pinned GraphiQL and React builds (`frontends/assets/graphiql`, compiled in),
//! so that it works offline and loads nothing from a CDN. The page's Content-Security-Policy
//! allows scripts and styles from girok only (no inline script; GraphiQL's editors need inline
//! styles) and connections back to girok. `server.graphiql = false` turns it off (404).

use crate::app::AppState;
use crate::error::ApiError;
use axum::extract::{Path, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

/// The GraphiQL release the assets are (part of their URLs, so they can be cached forever).
pub const GRAPHIQL_VERSION: &str = "3.8.3";

/// The page's policy: everything from girok, nothing from anywhere else.
const PAGE_POLICY: &str = "default-src 'none'; script-src 'self'; style-src 'self' 'unsafe-inline'; \
     img-src 'self' data:; font-src 'self' data:; connect-src 'self'; \
     base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

/// One asset: its name in URLs, its content type, its bytes, and whether they are gzip.
struct Asset {
    name: &'static str,
    content_type: &'static str,
    bytes: &'static [u8],
    gzip: bool,
}

const JS: &str = "text/javascript; charset=utf-8";
const CSS: &str = "text/css; charset=utf-8";

/// An asset of `frontends/assets/graphiql` by its name in URLs; `gzip`: stored as `<name>.gz`.
macro_rules! asset {
    ($name:literal, $content_type:expr, gzip) => {
        Asset {
            name: $name,
            content_type: $content_type,
            bytes: include_bytes!(concat!("../../assets/graphiql/", $name, ".gz")),
            gzip: true,
        }
    };
    ($name:literal, $content_type:expr) => {
        Asset {
            name: $name,
            content_type: $content_type,
            bytes: include_bytes!(concat!("../../assets/graphiql/", $name)),
            gzip: false,
        }
    };
}

const ASSETS: &[Asset] = &[
    asset!("react.production.min.js", JS, gzip),
    asset!("react-dom.production.min.js", JS, gzip),
    asset!("graphiql.min.js", JS, gzip),
    asset!("graphiql.min.css", CSS, gzip),
    asset!("init.js", JS),
];

fn off() -> Response {
    ApiError::new(
        StatusCode::NOT_FOUND,
        "NOT_FOUND",
        "GraphiQL is turned off (server.graphiql)",
    )
    .into_response()
}

/// `GET /graphql`: the page.
pub async fn page(State(state): State<AppState>) -> Response {
    if !state.config.server.graphiql {
        return off();
    }
    let base = format!("/graphiql/{GRAPHIQL_VERSION}");
    let html = format!(
        "<!doctype html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n\
         <title>girok GraphiQL</title>\n\
         <link rel=\"stylesheet\" href=\"{base}/graphiql.min.css\">\n\
         <style>body {{ margin: 0; height: 100vh; }} #graphiql {{ height: 100vh; }}</style>\n\
         </head>\n<body>\n<div id=\"graphiql\">Loading GraphiQL…</div>\n\
         <script src=\"{base}/react.production.min.js\"></script>\n\
         <script src=\"{base}/react-dom.production.min.js\"></script>\n\
         <script src=\"{base}/graphiql.min.js\"></script>\n\
         <script src=\"{base}/init.js\"></script>\n</body>\n</html>\n"
    );
    super::security_headers::html_page(html, PAGE_POLICY)
}

/// `GET /graphiql/{version}/{file}`: one asset, cached for good (the version is in its URL).
pub async fn asset(
    State(state): State<AppState>,
    Path((version, file)): Path<(String, String)>,
) -> Response {
    if !state.config.server.graphiql {
        return off();
    }
    let found = ASSETS.iter().find(|asset| asset.name == file);
    let Some(asset) = found.filter(|_| version == GRAPHIQL_VERSION) else {
        return ApiError::new(StatusCode::NOT_FOUND, "NOT_FOUND", "no such GraphiQL asset")
            .into_response();
    };
    // The pinned builds never change under their URL; girok's own start script may change
    // with girok, so it is revalidated.
    let caching = if asset.gzip {
        "public, max-age=31536000, immutable"
    } else {
        "no-cache"
    };
    let mut response = (
        [
            (header::CONTENT_TYPE, asset.content_type),
            (header::CACHE_CONTROL, caching),
        ],
        asset.bytes,
    )
        .into_response();
    if asset.gzip {
        let headers = response.headers_mut();
        headers.insert(header::CONTENT_ENCODING, HeaderValue::from_static("gzip"));
        headers.insert(header::VARY, HeaderValue::from_static("accept-encoding"));
    }
    response
}
