//! What girok/1 needs of a connection, for both ways of carrying it: a QUIC connection of
//! its own (ALPN `girok/1`, native clients) and a WebTransport session (ALPN `h3`, browsers;
//! `web-transport-quinn` performs the HTTP/3 handshake and frames each stream with the
//! session's header). The protocol's code is written once against these traits.

use bytes::Bytes;
use std::future::Future;
use std::net::SocketAddr;

/// A connection girok/1 runs over.
pub(crate) trait Link: Clone + Send + Sync + 'static {
    type Send: Outgoing;

    /// Opens a server stream (a subscription's); `None` once the connection is gone.
    fn open_uni(&self) -> impl Future<Output = Option<Self::Send>> + Send;
    /// Closes the connection with an application code and reason.
    fn close(&self, code: u16, reason: &str);
    /// Resolves when the connection is closed (by either side), with why.
    fn closed(&self) -> impl Future<Output = String> + Send;
    /// Resolves when the client opens a stream girok/1 does not allow (a second
    /// bidirectional stream, or any unidirectional one).
    fn unexpected_stream(&self) -> impl Future<Output = ()> + Send;
    fn remote_address(&self) -> SocketAddr;
}

/// The sending side of a stream.
pub(crate) trait Outgoing: Send + 'static {
    /// Writes every chunk; `false` once the stream or the connection is gone.
    fn write_all_chunks(&mut self, chunks: &mut [Bytes]) -> impl Future<Output = bool> + Send;
    /// Ends the stream after what was written; `false` if it was over already.
    fn finish(&mut self) -> bool;
    /// Abandons the stream (what was not delivered yet is not); the client sees it reset.
    fn reset(&mut self);
    /// Resolves when the peer has everything written (or stopped the stream).
    fn stopped(&mut self) -> impl Future<Output = ()> + Send;
}

/// The two ways share method names and meanings (web-transport-quinn wraps quinn's), so one
/// implementation serves both.
macro_rules! link_over {
    ($connection:ty, $send:ty) => {
        impl Link for $connection {
            type Send = $send;

            async fn open_uni(&self) -> Option<$send> {
                <$connection>::open_uni(self).await.ok()
            }

            fn close(&self, code: u16, reason: &str) {
                <$connection>::close(self, code.into(), reason.as_bytes());
            }

            async fn closed(&self) -> String {
                <$connection>::closed(self).await.to_string()
            }

            async fn unexpected_stream(&self) {
                tokio::select! {
                    Ok(_) = self.accept_bi() => {}
                    Ok(_) = self.accept_uni() => {}
                    else => std::future::pending().await,
                }
            }

            fn remote_address(&self) -> SocketAddr {
                quinn::Connection::remote_address(self)
            }
        }

        impl Outgoing for $send {
            async fn write_all_chunks(&mut self, chunks: &mut [Bytes]) -> bool {
                <$send>::write_all_chunks(self, chunks).await.is_ok()
            }

            fn finish(&mut self) -> bool {
                <$send>::finish(self).is_ok()
            }

            fn reset(&mut self) {
                let _ = <$send>::reset(self, 0u32.into());
            }

            async fn stopped(&mut self) {
                let _ = <$send>::stopped(self).await;
            }
        }
    };
}

link_over!(quinn::Connection, quinn::SendStream);
link_over!(
    web_transport_quinn::Session,
    web_transport_quinn::SendStream
);
