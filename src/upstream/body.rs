//! Reading upstream bodies with bounds: [`read_bounded`] collects a small document (manifest,
//! token, index) up to a byte limit, [`stream`] passes a large one (blob) through chunk by chunk.
//! Both give up when the upstream pauses longer than the idle timeout between chunks.
//!
//! This module owns no policy about *which* limit applies; callers pass it.

use std::time::Duration;

use bytes::{Bytes, BytesMut};
use futures_util::{StreamExt, TryStreamExt};
use http_body_util::{combinators::BoxBody, BodyExt, BodyStream, StreamBody};
use hyper::body::Incoming;

/// The body type portcullis answers with.
pub type ResponseBody = BoxBody<Bytes, BoxError>;
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

#[derive(Debug, thiserror::Error)]
pub enum BodyError {
    #[error("body exceeds the {limit}-byte limit")]
    TooLarge { limit: usize },
    #[error("upstream sent nothing for {after:?} in the middle of a body")]
    Idle { after: Duration },
    #[error("body transfer failed: {0}")]
    Transport(#[source] hyper::Error),
}

/// Reads the whole body into memory, failing as soon as it would exceed `limit` bytes (checked
/// against `Content-Length` by the caller where present, and here against what actually arrives).
pub async fn read_bounded(
    body: Incoming,
    limit: usize,
    idle: Duration,
) -> Result<Bytes, BodyError> {
    let mut stream = BodyStream::new(body);
    let mut buf = BytesMut::new();
    loop {
        let frame = match tokio::time::timeout(idle, stream.next()).await {
            Err(_) => return Err(BodyError::Idle { after: idle }),
            Ok(None) => break,
            Ok(Some(frame)) => frame.map_err(BodyError::Transport)?,
        };
        if let Ok(data) = frame.into_data() {
            if buf.len() + data.len() > limit {
                return Err(BodyError::TooLarge { limit });
            }
            buf.extend_from_slice(&data);
        }
    }
    Ok(buf.freeze())
}

/// Passes the body through without buffering it. Each chunk is handed to `on_chunk` (byte
/// accounting); a pause longer than `idle` ends the stream with an error, which aborts the
/// client's response rather than leaving it hanging. Dropping the returned body (client gone)
/// drops the upstream body and so its connection.
pub fn stream(
    body: Incoming,
    idle: Duration,
    on_chunk: impl Fn(usize) + Send + Sync + 'static,
) -> ResponseBody {
    BodyExt::boxed(StreamBody::new(timed(
        BodyStream::new(body),
        idle,
        on_chunk,
    )))
}

/// The frames of a body, each counted by `on_chunk`, ending in an error after `idle` of silence.
fn timed(
    frames: BodyStream<Incoming>,
    idle: Duration,
    on_chunk: impl Fn(usize) + Send + Sync + 'static,
) -> impl futures_util::Stream<Item = Result<hyper::body::Frame<Bytes>, BoxError>> {
    tokio_stream::StreamExt::timeout(frames, idle)
        .map(move |item| match item {
            Err(_) => Err(BoxError::from(BodyError::Idle { after: idle })),
            Ok(Err(e)) => Err(BoxError::from(BodyError::Transport(e))),
            Ok(Ok(frame)) => {
                if let Some(data) = frame.data_ref() {
                    on_chunk(data.len());
                }
                Ok(frame)
            }
        })
        .into_stream()
}

/// A body whose start was looked at: held whole when it is a small JSON document, else passed
/// through as a stream (the bytes already read first).
pub enum Peeked {
    /// A JSON document (first byte `{`) of at most the limit, read whole.
    Json(Bytes),
    Stream(ResponseBody),
}

/// Reads a body far enough to tell whether it is a small JSON document: at most `limit` bytes
/// are held, and only when the first byte is `{`. Anything else streams as [`stream`] does.
pub async fn peek_json(
    body: Incoming,
    limit: usize,
    idle: Duration,
    on_chunk: impl Fn(usize) + Send + Sync + 'static,
) -> Result<Peeked, BodyError> {
    let mut frames = BodyStream::new(body);
    let mut buf = BytesMut::new();
    let complete = loop {
        let frame = match tokio::time::timeout(idle, frames.next()).await {
            Err(_) => return Err(BodyError::Idle { after: idle }),
            Ok(None) => break true,
            Ok(Some(frame)) => frame.map_err(BodyError::Transport)?,
        };
        let Ok(data) = frame.into_data() else {
            continue;
        };
        buf.extend_from_slice(&data);
        let first = buf.iter().find(|b| !b.is_ascii_whitespace());
        if first.is_some_and(|b| *b != b'{') || buf.len() > limit {
            break false;
        }
    };
    if complete && buf.iter().find(|b| !b.is_ascii_whitespace()) == Some(&b'{') {
        on_chunk(buf.len());
        return Ok(Peeked::Json(buf.freeze()));
    }
    on_chunk(buf.len());
    let prefix = futures_util::stream::once(futures_util::future::ready(Ok::<_, BoxError>(
        hyper::body::Frame::data(buf.freeze()),
    )));
    // After the end of the body, `frames` yields nothing more.
    let frames = prefix.chain(timed(frames, idle, on_chunk));
    Ok(Peeked::Stream(BodyExt::boxed(StreamBody::new(frames))))
}

/// A complete in-memory body.
pub fn full(bytes: impl Into<Bytes>) -> ResponseBody {
    http_body_util::Full::new(bytes.into())
        .map_err(|never| match never {})
        .boxed()
}

/// An empty body.
pub fn empty() -> ResponseBody {
    http_body_util::Empty::new()
        .map_err(|never| match never {})
        .boxed()
}
