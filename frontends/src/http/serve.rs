//! The HTTP/1.1 connection loop (hyper), in place of `axum::serve`, for a limit axum does not
//! expose: a request's head must arrive whole within `server.header_read_timeout_ms`, or the
//! connection is closed. hyper starts that clock when it waits for a request, so the same
//! deadline closes a kept-alive connection that stays idle that long: half-sent requests
//! (slowloris) and idle sockets cannot hold connection slots. WebSocket upgrades pass through.
//! Graceful shutdown stops accepting, lets requests in progress finish and closes idle
//! connections; upgraded sockets close through their own shutdown watch.

use super::listener::{LimitedListener, PeerAddr};
use axum::Router;
use axum::extract::ConnectInfo;
use axum::serve::Listener;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use std::future::Future;
use std::time::Duration;
use tokio::sync::watch;
use tower_http::add_extension::AddExtension;

/// Serves `router` on `listener` until `shutdown` resolves, then until every connection
/// closed.
pub async fn serve(
    mut listener: LimitedListener,
    router: Router,
    header_read_timeout: Duration,
    shutdown: impl Future<Output = ()>,
) {
    let mut http = hyper::server::conn::http1::Builder::new();
    http.timer(TokioTimer::new())
        .header_read_timeout(header_read_timeout);
    // Every connection task holds a clone of `open`; when the last is gone, all closed.
    let (stop, stopped) = watch::channel(false);
    let (all_closed, open) = watch::channel(());
    tokio::pin!(shutdown);
    loop {
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => accepted,
            () = &mut shutdown => break,
        };
        // Handlers read the client's address as `ConnectInfo<PeerAddr>`.
        let service = TowerToHyperService::new(AddExtension::new(
            router.clone(),
            ConnectInfo(PeerAddr(peer)),
        ));
        let connection = http
            .serve_connection(TokioIo::new(stream), service)
            .with_upgrades();
        let (mut stopped, open) = (stopped.clone(), open.clone());
        tokio::spawn(async move {
            tokio::pin!(connection);
            let stopping = async move {
                let _ = stopped.wait_for(|stop| *stop).await;
            };
            tokio::select! {
                _ = connection.as_mut() => {}
                () = stopping => {
                    connection.as_mut().graceful_shutdown();
                    let _ = connection.await;
                }
            }
            drop(open);
        });
    }
    drop(listener);
    let _ = stop.send(true);
    drop(open);
    all_closed.closed().await;
}
