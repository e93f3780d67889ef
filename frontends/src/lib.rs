//! girok-frontends: how the world reaches girok, and nothing else. HTTP (axum): REST, GraphQL
//! (async-graphql), operators' endpoints; the WebSocket protocol; QUIC (girok/1).
//! Frontends validate input, identify the principal, turn requests into engine commands and
//! reads, and map engine errors to stable codes. They never touch storage, and know the
//! analytics sink only as a [`state::SinkReport`]. The pieces every transport shares sit at
//! the top: the [`state`] (one [`state::Shared`] handle), the [`error`] mapping, the
//! [`listener`] (connection limits, the peer's address), [`request_metrics`], [`auth`]; each
//! transport keeps its own parts beside them, and [`app`] assembles them as the router's
//! state. No transport imports another's module or the assembly. The `girok` crate
//! configures and starts them (its composition root).

pub mod app;
pub mod auth;
pub mod config;
pub mod cursor;
pub mod dto;
pub mod error;
#[cfg(test)]
mod fuzz;
pub mod graphql;
pub mod http;
pub mod listener;
pub mod live_items;
pub mod live_socket;
pub mod presence;
pub mod quic;
pub mod request_metrics;
pub mod state;
pub mod stopping;
pub mod tls;
pub mod ws;
