//! girok/1 framing: each frame is a protobuf message preceded by its length as a varint (the
//! "length-delimited" form). A reader takes whole chunks off a QUIC stream and cuts frames out
//! of them, refusing a length past the limit before any of that frame is read; a writer encodes
//! a frame once into bytes that any number of streams can send.

use bytes::{Buf, Bytes, BytesMut};
use girok_schemas::quic::{self, ServerFrame, server_frame::Frame};
use prost::Message;

/// Longest varint a frame length may take (a u64's).
const MAX_LENGTH_BYTES: usize = 10;

/// Why a stream's frames cannot be read on.
#[derive(Debug, thiserror::Error)]
pub enum FrameError {
    #[error("a frame of {0} bytes is larger than the limit of {1}")]
    TooLarge(u64, usize),
    #[error("the frame length is not a varint")]
    BadLength,
    #[error("the stream ended inside a frame")]
    Truncated,
    #[error("the stream failed: {0}")]
    Stream(String),
}

impl FrameError {
    /// The stable code of the error frame that says so.
    pub fn code(&self) -> &'static str {
        match self {
            FrameError::TooLarge(..) => "FRAME_TOO_LARGE",
            FrameError::BadLength | FrameError::Truncated => "BAD_FRAME",
            FrameError::Stream(_) => "STREAM_FAILED",
        }
    }
}

/// A frame that arrived whole but is not a frame of its kind: the stream reads on.
#[derive(Debug)]
pub struct Undecodable(pub prost::DecodeError);

/// Reads frames off one stream.
pub struct FrameReader<S> {
    stream: S,
    buffer: BytesMut,
    max_frame_bytes: usize,
}

/// What a reader reads from: a QUIC receive stream (or anything that yields chunks).
pub trait Chunks {
    /// The next chunk; `None` once the peer finished the stream.
    fn next_chunk(
        &mut self,
    ) -> impl std::future::Future<Output = Result<Option<Bytes>, FrameError>> + Send;
}

/// Most bytes taken off a stream at once.
const CHUNK_BYTES: usize = 64 * 1024;

/// A read chunk's bytes, or why the stream failed.
fn chunk_bytes<E: std::fmt::Display>(
    read: Result<Option<quinn::Chunk>, E>,
) -> Result<Option<Bytes>, FrameError> {
    match read {
        Ok(chunk) => Ok(chunk.map(|c| c.bytes)),
        Err(error) => Err(FrameError::Stream(error.to_string())),
    }
}

impl Chunks for quinn::RecvStream {
    async fn next_chunk(&mut self) -> Result<Option<Bytes>, FrameError> {
        chunk_bytes(self.read_chunk(CHUNK_BYTES, true).await)
    }
}

impl Chunks for web_transport_quinn::RecvStream {
    async fn next_chunk(&mut self) -> Result<Option<Bytes>, FrameError> {
        chunk_bytes(self.read_chunk(CHUNK_BYTES, true).await)
    }
}

impl<S: Chunks> FrameReader<S> {
    pub fn new(stream: S, max_frame_bytes: usize) -> Self {
        Self {
            stream,
            buffer: BytesMut::new(),
            max_frame_bytes,
        }
    }

    /// The next frame; `Ok(None)` when the stream ended between frames.
    pub async fn next<M: Message + Default>(
        &mut self,
    ) -> Result<Option<Result<M, Undecodable>>, FrameError> {
        loop {
            if let Some(body) = self.cut()? {
                return Ok(Some(M::decode(body).map_err(Undecodable)));
            }
            match self.stream.next_chunk().await? {
                Some(chunk) => self.buffer.extend_from_slice(&chunk),
                None if self.buffer.is_empty() => return Ok(None),
                None => return Err(FrameError::Truncated),
            }
        }
    }

    /// Cuts the next whole frame's body out of the buffer, if it holds one.
    fn cut(&mut self) -> Result<Option<Bytes>, FrameError> {
        let Some((length, prefix)) = frame_length(&self.buffer)? else {
            return Ok(None);
        };
        if length > self.max_frame_bytes as u64 {
            return Err(FrameError::TooLarge(length, self.max_frame_bytes));
        }
        let length = length as usize;
        if self.buffer.len() < prefix + length {
            self.buffer.reserve(prefix + length - self.buffer.len());
            return Ok(None);
        }
        self.buffer.advance(prefix);
        Ok(Some(self.buffer.split_to(length).freeze()))
    }
}

/// The length a buffer starts with and the bytes it takes; `None` while it is incomplete.
fn frame_length(buffer: &[u8]) -> Result<Option<(u64, usize)>, FrameError> {
    let mut value = 0u64;
    for (i, byte) in buffer.iter().take(MAX_LENGTH_BYTES).enumerate() {
        value |= u64::from(byte & 0x7f) << (7 * i);
        if byte & 0x80 == 0 {
            return Ok(Some((value, i + 1)));
        }
    }
    if buffer.len() >= MAX_LENGTH_BYTES {
        return Err(FrameError::BadLength);
    }
    Ok(None)
}

/// A frame's bytes, length prefix included.
pub fn encode<M: Message>(frame: &M) -> Bytes {
    Bytes::from(frame.encode_length_delimited_to_vec())
}

/// A server frame's bytes.
pub(crate) fn frame(frame: Frame) -> Bytes {
    encode(&ServerFrame { frame: Some(frame) })
}

/// An error frame's bytes: `reference` names the send or read it answers, `topic` the
/// subscription it concerns (either may be empty).
pub(crate) fn error_frame(code: &str, message: String, reference: &str, topic: &str) -> Bytes {
    frame(Frame::Error(quic::Error {
        code: code.into(),
        message,
        r#ref: reference.into(),
        topic: topic.into(),
        retry_after_ms: None,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use girok_schemas::quic::{ClientFrame, Ping, client_frame};

    /// Chunks from a list, as a stream would deliver them.
    struct Scripted(std::collections::VecDeque<Bytes>);

    impl Chunks for Scripted {
        async fn next_chunk(&mut self) -> Result<Option<Bytes>, FrameError> {
            Ok(self.0.pop_front())
        }
    }

    fn ping(nonce: u64) -> ClientFrame {
        ClientFrame {
            frame: Some(client_frame::Frame::Ping(Ping { nonce })),
        }
    }

    fn reader(chunks: Vec<Vec<u8>>, max: usize) -> FrameReader<Scripted> {
        FrameReader::new(Scripted(chunks.into_iter().map(Bytes::from).collect()), max)
    }

    #[tokio::test]
    async fn frames_split_anywhere_are_read_whole() {
        let mut bytes = encode(&ping(300)).to_vec();
        bytes.extend_from_slice(&encode(&ping(7)));
        // One byte a chunk: every cut falls inside a frame or its length.
        let chunks = bytes.iter().map(|b| vec![*b]).collect();
        let mut frames = reader(chunks, 1024);
        let first: ClientFrame = frames.next().await.unwrap().unwrap().unwrap();
        assert_eq!(first, ping(300));
        let second: ClientFrame = frames.next().await.unwrap().unwrap().unwrap();
        assert_eq!(second, ping(7));
        assert!(frames.next::<ClientFrame>().await.unwrap().is_none());
    }

    #[tokio::test]
    async fn a_length_past_the_limit_is_refused_before_the_body_arrives() {
        // 1 MiB announced, nothing of it sent.
        let mut frames = reader(vec![vec![0x80, 0x80, 0x40]], 64 * 1024);
        let refused = frames.next::<ClientFrame>().await.unwrap_err();
        assert!(matches!(refused, FrameError::TooLarge(1_048_576, _)));
    }

    #[tokio::test]
    async fn truncated_garbage_and_overlong_lengths_are_errors_not_panics() {
        let mut truncated = reader(vec![vec![5, 1, 2]], 1024);
        assert!(matches!(
            truncated.next::<ClientFrame>().await.unwrap_err(),
            FrameError::Truncated
        ));
        let mut overlong = reader(vec![vec![0xff; 12]], 1024);
        assert!(matches!(
            overlong.next::<ClientFrame>().await.unwrap_err(),
            FrameError::BadLength
        ));
        let mut garbage = reader(vec![vec![3, 0xff, 0xff, 0xff]], 1024);
        assert!(
            garbage
                .next::<ClientFrame>()
                .await
                .unwrap()
                .unwrap()
                .is_err()
        );
    }
}
