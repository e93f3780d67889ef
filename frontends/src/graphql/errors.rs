//! Engine errors as GraphQL errors: the message, and `extensions.code` (plus details such as
//! the offending field or the view's watermark).

use async_graphql::ErrorExtensions;
use girok_engine::Error;

/// Converts an engine error.
pub fn gql(error: Error) -> async_graphql::Error {
    let code = error.code();
    let detail = match &error {
        Error::InvalidArgument { field, .. } => Some(("field", field.to_string())),
        Error::ViewTimeout { watermark, .. } => Some(("watermark", watermark.to_string())),
        _ => None,
    };
    if code == "INTERNAL" {
        tracing::error!(%error, "graphql resolver failed");
    }
    async_graphql::Error::new(error.to_string()).extend_with(|_, ext| {
        ext.set("code", code);
        if let Some((key, value)) = &detail {
            ext.set(*key, value.as_str());
        }
    })
}

/// An argument the schema accepts but the value does not make sense (a malformed id).
pub fn invalid(field: &'static str, reason: impl Into<String>) -> async_graphql::Error {
    gql(Error::invalid(field, reason))
}
