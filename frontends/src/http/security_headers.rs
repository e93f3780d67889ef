//! Headers every answer carries, for browsers: no MIME sniffing, no framing (clickjacking),
//! no referrer leaving girok, and a Content-Security-Policy that lets an API answer run and
//! load nothing should a browser ever render one. A handler that sets its own policy (the
//! GraphiQL page) keeps it.

use axum::Router;
use axum::http::{HeaderName, HeaderValue, header};
use axum::response::{IntoResponse, Response};
use tower_http::set_header::SetResponseHeaderLayer;

fn set(name: HeaderName, value: &'static str) -> SetResponseHeaderLayer<HeaderValue> {
    SetResponseHeaderLayer::if_not_present(name, HeaderValue::from_static(value))
}

/// `router` with the headers on every answer.
pub fn add<S: Clone + Send + Sync + 'static>(router: Router<S>) -> Router<S> {
    router
        .layer(set(header::X_CONTENT_TYPE_OPTIONS, "nosniff"))
        .layer(set(header::X_FRAME_OPTIONS, "DENY"))
        .layer(set(header::REFERRER_POLICY, "no-referrer"))
        .layer(set(
            header::CONTENT_SECURITY_POLICY,
            "default-src 'none'; frame-ancestors 'none'",
        ))
}

/// An HTML page girok serves (the web app, GraphiQL): revalidated on each load, under its own
/// `policy` (kept by the layer above, which sets only what a handler did not).
pub fn html_page(body: impl IntoResponse, policy: &'static str) -> Response {
    let headers = [
        (header::CONTENT_TYPE, "text/html; charset=utf-8"),
        (header::CACHE_CONTROL, "no-cache"),
        (header::CONTENT_SECURITY_POLICY, policy),
    ];
    (headers, body).into_response()
}
