//! Reading upstream bodies with bounds: [`read_bounded`] collects a small document (manifest,
//! token, index) up to a byte limit, [`stream`] passes a large one (blob) through chunk by chunk.
//! Both give up when the upstream pauses longer than the idle timeout between chunks; a document
//! read (and a tag list stream) also gives up at its exchange's [`Deadline`], so an upstream that
//! drips a byte a second cannot hold a request for longer than that.
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

/// The moment a whole upstream exchange must be over, and the budget it was set from (for the
/// error message).
#[derive(Debug, Clone, Copy)]
pub struct Deadline {
    pub at: tokio::time::Instant,
    pub budget: Duration,
}

impl Deadline {
    pub fn after(budget: Duration) -> Deadline {
        Deadline {
            at: tokio::time::Instant::now() + budget,
            budget,
        }
    }

    /// How long to wait for the next chunk: the idle timeout, cut short by the deadline.
    fn wait(&self, idle: Duration) -> Duration {
        idle.min(
            self.at
                .saturating_duration_since(tokio::time::Instant::now()),
        )
    }

    /// The error for a wait of `idle` that ran out.
    fn expired(&self, idle: Duration) -> BodyError {
        if tokio::time::Instant::now() >= self.at {
            BodyError::Deadline { after: self.budget }
        } else {
            BodyError::Idle { after: idle }
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum BodyError {
    #[error("body exceeds the {limit}-byte limit")]
    TooLarge { limit: usize },
    #[error("upstream sent nothing for {after:?} in the middle of a body")]
    Idle { after: Duration },
    #[error("upstream did not complete the exchange within {after:?}")]
    Deadline { after: Duration },
    #[error("body transfer failed: {0}")]
    Transport(#[source] hyper::Error),
}

/// Reads the whole body into memory, failing as soon as it would exceed `limit` bytes (checked
/// against `Content-Length` by the caller where present, and here against what actually arrives).
pub async fn read_bounded(
    body: Incoming,
    limit: usize,
    idle: Duration,
    deadline: Deadline,
) -> Result<Bytes, BodyError> {
    let mut stream = BodyStream::new(body);
    let mut buf = BytesMut::new();
    loop {
        let frame = match tokio::time::timeout(deadline.wait(idle), stream.next()).await {
            Err(_) => return Err(deadline.expired(idle)),
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

/// [`stream`] for a document passed through (a tag list): it also ends in an error at the
/// exchange's deadline.
pub fn stream_until(body: Incoming, idle: Duration, deadline: Deadline) -> ResponseBody {
    let frames = Box::pin(timed(BodyStream::new(body), idle, |_| {}));
    // The state is the rest of the body; `None` once it failed (an error ends the stream).
    let frames = futures_util::stream::unfold(Some(frames), move |state| async move {
        let mut frames = state?;
        match tokio::time::timeout_at(deadline.at, frames.next()).await {
            Ok(Some(Ok(frame))) => Some((Ok(frame), Some(frames))),
            Ok(Some(Err(e))) => Some((Err(e), None)),
            Ok(None) => None,
            Err(_) => Some((
                Err(BoxError::from(BodyError::Deadline {
                    after: deadline.budget,
                })),
                None,
            )),
        }
    });
    BodyExt::boxed(StreamBody::new(frames))
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
/// through as a stream (the bytes already read first), saying whether it could be JSON.
pub enum Peeked {
    /// Could be a JSON document (first byte that is not white space is `{`) and has at most the
    /// limit's bytes: read whole.
    Json(Bytes),
    /// Could be a JSON document (starts with `{` or is all white space as far as the limit) but
    /// is longer than the limit.
    LargeJson(ResponseBody),
    /// Cannot be a JSON document: its first byte that is not white space is something else.
    NotJson(ResponseBody),
}

/// Reads a body far enough to tell whether it could be a JSON document: at most `limit` bytes
/// (plus one chunk) are held, and only while it still could be.
pub async fn peek_json(
    body: Incoming,
    limit: usize,
    idle: Duration,
    deadline: Deadline,
    on_chunk: impl Fn(usize) + Send + Sync + 'static,
) -> Result<Peeked, BodyError> {
    let mut frames = BodyStream::new(body);
    let mut buf = BytesMut::new();
    let first = |buf: &BytesMut| buf.iter().find(|b| !b.is_ascii_whitespace()).copied();
    let complete = loop {
        let frame = match tokio::time::timeout(deadline.wait(idle), frames.next()).await {
            Err(_) => return Err(deadline.expired(idle)),
            Ok(None) => break true,
            Ok(Some(frame)) => frame.map_err(BodyError::Transport)?,
        };
        let Ok(data) = frame.into_data() else {
            continue;
        };
        buf.extend_from_slice(&data);
        if first(&buf).is_some_and(|b| b != b'{') || buf.len() > limit {
            break false;
        }
    };
    let could_be_json = matches!(first(&buf), None | Some(b'{'));
    on_chunk(buf.len());
    if complete && could_be_json {
        return Ok(Peeked::Json(buf.freeze()));
    }
    let prefix = futures_util::stream::once(futures_util::future::ready(Ok::<_, BoxError>(
        hyper::body::Frame::data(buf.freeze()),
    )));
    // After the end of the body, `frames` yields nothing more.
    let frames = prefix.chain(timed(frames, idle, on_chunk));
    let body = BodyExt::boxed(StreamBody::new(frames));
    Ok(match could_be_json {
        true => Peeked::LargeJson(body),
        false => Peeked::NotJson(body),
    })
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
