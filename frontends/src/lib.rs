//! girok-frontends: how the world reaches girok. HTTP (axum): REST for accounts, GraphQL
//! (async-graphql), operators' endpoints; WebSocket and QUIC as their issues land. Frontends
//! validate input, identify the principal, turn requests into engine commands and reads, and
//! map engine errors to stable codes. They never touch storage directly. Also home of the
//! `girok` binary: configuration and the command line.

pub mod auth;
pub mod cli;
pub mod config;
pub mod cursor;
#[cfg(test)]
mod fuzz;
pub mod graphql;
pub mod http;
pub mod presence;
pub mod stopping;
pub mod ws;
