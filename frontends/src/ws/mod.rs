//! WebSocket at `/ws`: authenticated by the session cookie (or a Bearer header) on the upgrade,
//! or by an `auth` frame first; topics `chat:<roomId>` and `notifications`; sends with acks;
//! resume from a seq with no gap and no duplicate (the missed events come from the log);
//! heartbeats, idle timeout, and per-connection limits. The protocol is documented in
//! docs/websocket.md.

mod connection;
pub(crate) mod metrics;
mod outbox;
mod own_commands;
mod protocol;
mod subscription;

use crate::auth::authenticate;
use crate::listener::PeerAddr;
use crate::state::Shared;
use axum::extract::ws::WebSocketUpgrade;
use axum::extract::{ConnectInfo, State};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};

pub use connection::WsLimits;
pub use metrics::WsMetrics;
pub use outbox::{CLOSE_GRACE, CLOSE_IDLE, CLOSE_SLOW_CONSUMER, close_frame};

/// The WebSocket read buffer of a connection (`/ws` and `/graphql/ws`): tungstenite zeroes
/// the whole buffer before every read (128 KiB by default), so keep it small; it grows for a
/// larger frame.
pub(crate) const READ_BUFFER_BYTES: usize = 4096;

/// `GET /ws`: the upgrade.
pub async fn upgrade(
    State(state): State<Shared>,
    ConnectInfo(PeerAddr(peer)): ConnectInfo<PeerAddr>,
    headers: HeaderMap,
    ws: WebSocketUpgrade,
) -> Response {
    // A bad Bearer header fails the upgrade; no credentials at all leaves the `auth` frame.
    let auth = match authenticate(&state.auth, &headers, peer).await {
        Ok(auth) => auth,
        Err(error) => return error.into_response(),
    };
    if let Err(error) = crate::auth::origin::check_socket_origin(&state.auth, &headers, &auth) {
        return error.into_response();
    }
    let limits = WsLimits::from(&state.config.ws);
    ws.read_buffer_size(READ_BUFFER_BYTES)
        .max_message_size(limits.max_frame_bytes)
        .max_frame_size(limits.max_frame_bytes)
        .on_upgrade(move |socket| {
            let sockets = state.sockets.clone();
            on_sockets_runtime(
                &sockets,
                connection::serve(socket, state, auth.principal, limits),
            )
        })
}

/// Runs an upgraded socket's loop on the sockets' runtime, whichever runtime served its
/// upgrade (a socket opened on a kept-alive connection of the requests' runtime too), so a
/// flood of socket frames never runs where reads do: in the upgrade's own task when that is
/// on the sockets' runtime already (a connection the listener placed there), else in a task
/// spawned there (the upgrade's task then ends at once).
pub(crate) fn on_sockets_runtime<F: std::future::Future<Output = ()> + Send + 'static>(
    sockets: &tokio::runtime::Handle,
    socket_loop: F,
) -> impl std::future::Future<Output = ()> + Send + 'static + use<F> {
    let here = tokio::runtime::Handle::try_current().is_ok_and(|h| h.id() == sockets.id());
    if here {
        futures::future::Either::Left(socket_loop)
    } else {
        sockets.spawn(socket_loop);
        futures::future::Either::Right(std::future::ready(()))
    }
}
