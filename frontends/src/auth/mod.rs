//! Authentication for every frontend: signing keys, access tokens, the principal of a
//! request, login rate limits, and the session cookie of the Full-BFF browser flow.

pub mod authenticator;
pub mod client_ip;
pub mod cookies;
pub mod flows;
pub mod keys;
pub mod live_sessions;
pub mod operator;
pub mod origin;
mod principal;
pub(crate) mod rate_limit;
pub mod tokens;

pub use authenticator::Authenticator;
pub(crate) use principal::bearer_token;
pub use principal::{
    AuthVia, CSRF_COOKIE, CSRF_HEADER, Principal, RequestAuth, SESSION_COOKIE, authenticate,
    bearer_principal, unauthenticated,
};
pub use rate_limit::LoginLimiter;
