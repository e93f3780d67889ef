//! Engine errors as GraphQL errors: the message, and `extensions.code` (plus details such as
//! the offending field or the view's watermark).

use async_graphql::ErrorExtensions;
use girok_engine::Error;

/// Converts an engine error (owned, or shared as batch loads share theirs).
pub fn gql(error: impl std::borrow::Borrow<Error>) -> async_graphql::Error {
    let error = error.borrow();
    let code = error.code();
    let detail = match error {
        Error::InvalidArgument { field, .. } => Some(("field", field.to_string())),
        Error::ViewTimeout { watermark, .. } | Error::NotReady { watermark, .. } => {
            Some(("watermark", watermark.to_string()))
        }
        _ => None,
    };
    if code == "INTERNAL" {
        tracing::error!(%error, "graphql resolver failed");
    }
    let retry_after = error.retry_after().map(girok_engine::error::retry_seconds);
    async_graphql::Error::new(error.to_string()).extend_with(|_, ext| {
        ext.set("code", code);
        if let Some((key, value)) = &detail {
            ext.set(*key, value.as_str());
        }
        if let Some(seconds) = retry_after {
            ext.set("retryAfter", seconds);
        }
    })
}

/// An argument the schema accepts but the value does not make sense (a malformed id).
pub fn invalid(field: &'static str, reason: impl Into<String>) -> async_graphql::Error {
    gql(Error::invalid(field, reason))
}

/// An HTTP-layer error (authentication, CSRF, rate limit) as a GraphQL error.
pub fn api(error: crate::error::ApiError) -> async_graphql::Error {
    let code = error.code;
    let retry_after = error.retry_after;
    async_graphql::Error::new(error.message).extend_with(move |_, ext| {
        ext.set("code", code);
        if let Some(seconds) = retry_after {
            ext.set("retryAfter", seconds);
        }
    })
}

/// The caller, for reads.
pub fn principal(
    ctx: &async_graphql::Context<'_>,
) -> async_graphql::Result<crate::auth::Principal> {
    request_auth(ctx)?.require().map_err(api)
}

/// The caller, for changes (cookie callers must pass the CSRF check).
pub fn changing_principal(
    ctx: &async_graphql::Context<'_>,
) -> async_graphql::Result<crate::auth::Principal> {
    request_auth(ctx)?.require_for_change().map_err(api)
}

/// The request's authentication, put there by the handler.
pub fn request_auth<'a>(
    ctx: &async_graphql::Context<'a>,
) -> async_graphql::Result<&'a crate::auth::RequestAuth> {
    ctx.data::<crate::auth::RequestAuth>()
        .map_err(|e| gql(Error::Internal(e.message)))
}
