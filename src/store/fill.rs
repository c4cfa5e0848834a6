//! Single-flight fills: the first request for a cold blob becomes the [`Leader`] and starts one
//! fill (one upstream transfer, written to the store and hashed as it arrives); the requests
//! for the same digest that come while it runs are [`Waiter`]s and wait (bounded by
//! [`super::FILL_WAIT`]) for it to be committed, then read the stored blob. Nothing is buffered
//! whole: the fill writes as it receives, in parts of a few MiB.
//!
//! The fill runs in its own task: the leader's client receives the bytes as they come, one chunk
//! behind (the last chunk is held until the digest is checked, so a wrong or cut-off transfer
//! fails the client's transfer instead of completing it), but leaving does not cancel the fill
//! others wait on; a client too slow to take a chunk within the idle timeout is cut loose and
//! the fill goes on.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures_util::stream::BoxStream;
use futures_util::StreamExt;
use object_store::{ObjectStoreExt, WriteMultipart};
use tokio::sync::{mpsc, watch};

use super::{blob_key, Backend, Store, StoreError};
use crate::oci::{Digest, Hasher};

type BoxError = Box<dyn std::error::Error + Send + Sync>;

#[derive(Debug, thiserror::Error)]
pub enum FillError {
    #[error("upstream transfer failed: {0}")]
    Upstream(String),
    #[error("upstream sent bytes hashing to {actual}, not to the requested {expected}")]
    Mismatch { expected: Digest, actual: Digest },
    #[error("upstream sent {actual} bytes where it announced {expected}")]
    Length { expected: u64, actual: u64 },
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("the fill this request waited for failed")]
    Failed,
    #[error("blob transfer cut: {0}")]
    Cut(String),
    #[error("the fill this request waited for did not finish within {0:?}")]
    WaitTimeout(Duration),
}

/// What happened to a fill, as its waiters see it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Running,
    Committed,
    /// Failed, or the leader gave up before starting (the upstream refused): waiters ask again.
    Failed,
}

/// One fill in progress.
pub struct Flight {
    state: watch::Sender<State>,
}

pub enum Join {
    Leader(Leader),
    Waiter(Waiter),
}

/// The request that fills a blob. Dropping it without [`Leader::start`] (the upstream refused,
/// or answered a range) ends the flight as failed, so its waiters ask again.
pub struct Leader {
    store: Arc<Store>,
    digest: Digest,
    flight: Arc<Flight>,
    started: bool,
}

pub struct Waiter {
    rx: watch::Receiver<State>,
}

// === impl Store ===

impl Store {
    /// Joins the fill of `digest` in progress, or becomes its leader.
    pub fn join(self: &Arc<Self>, digest: &Digest) -> Join {
        let mut flights = match self.flights.lock() {
            Ok(f) => f,
            // A panic while holding the lock left the map as it was: keep using it.
            Err(poisoned) => poisoned.into_inner(),
        };
        if let Some(flight) = flights.get(digest) {
            self.metrics.store_waiters.inc();
            return Join::Waiter(Waiter {
                rx: flight.state.subscribe(),
            });
        }
        let (state, _) = watch::channel(State::Running);
        let flight = Arc::new(Flight { state });
        flights.insert(digest.clone(), flight.clone());
        Join::Leader(Leader {
            store: self.clone(),
            digest: digest.clone(),
            flight,
            started: false,
        })
    }

    fn end_flight(&self, digest: &Digest, flight: &Flight, state: State) {
        let mut flights = match self.flights.lock() {
            Ok(f) => f,
            Err(poisoned) => poisoned.into_inner(),
        };
        flights.remove(digest);
        flight.state.send_replace(state);
    }
}

// === impl Leader ===

/// Where a committed fill is recorded as served: (upstream key, repository).
pub type SeenAt = (String, String);

impl Leader {
    /// Starts the fill from the upstream's body (`expected_len`: its `Content-Length`, when
    /// given). Returns the stream the leader's client is served from.
    pub fn start(
        mut self,
        expected_len: Option<u64>,
        upstream: BoxStream<'static, Result<Bytes, BoxError>>,
        idle: Duration,
        seen_at: SeenAt,
    ) -> BoxStream<'static, Result<Bytes, FillError>> {
        self.started = true;
        let (tx, rx) = mpsc::channel(8);
        let store = self.store.clone();
        let digest = self.digest.clone();
        let flight = self.flight.clone();
        tokio::spawn(async move {
            let mut client = Some(tx);
            let result = run(
                &store,
                &digest,
                expected_len,
                upstream,
                idle,
                &seen_at,
                &mut client,
            )
            .await;
            let state = match result {
                Ok(()) => {
                    store
                        .metrics
                        .store_fills
                        .with_label_values(&["committed"])
                        .inc();
                    State::Committed
                }
                Err(e) => {
                    let label = match e {
                        FillError::Mismatch { .. } | FillError::Length { .. } => "mismatch",
                        FillError::Store(_) => "store_error",
                        _ => "upstream_error",
                    };
                    store.metrics.store_fills.with_label_values(&[label]).inc();
                    tracing::warn!(digest = %digest, error = %e, "blob fill failed: nothing stored");
                    State::Failed
                }
            };
            // The held last chunk is released only after the commit (see `run`).
            store.end_flight(&digest, &flight, state);
        });
        tokio_stream::wrappers::ReceiverStream::new(rx).boxed()
    }
}

impl Drop for Leader {
    fn drop(&mut self) {
        if !self.started {
            self.store
                .end_flight(&self.digest, &self.flight, State::Failed);
        }
    }
}

/// Hands an item to the leader's client, cutting the client loose when it is gone or takes
/// longer than `idle` to accept it.
async fn forward(
    client: &mut Option<mpsc::Sender<Result<Bytes, FillError>>>,
    item: Result<Bytes, FillError>,
    idle: Duration,
) {
    if let Some(tx) = client {
        if !matches!(tokio::time::timeout(idle, tx.send(item)).await, Ok(Ok(()))) {
            *client = None;
        }
    }
}

/// The fill itself: upstream → hash + multipart upload → commit only on a match.
async fn run(
    store: &Store,
    digest: &Digest,
    expected_len: Option<u64>,
    mut upstream: BoxStream<'static, Result<Bytes, BoxError>>,
    idle: Duration,
    seen_at: &SeenAt,
    client: &mut Option<mpsc::Sender<Result<Bytes, FillError>>>,
) -> Result<(), FillError> {
    let key = blob_key(digest);
    let upload = match store.objects.put_multipart(&key).await {
        Ok(u) => u,
        Err(e) => {
            let e = FillError::Store(StoreError::object("write", &key, e));
            forward(client, Err(FillError::Cut(e.to_string())), idle).await;
            return Err(e);
        }
    };
    // S3 parts are at least 5 MiB but the last; files take smaller writes.
    let part = match store.backend {
        Backend::S3 => 8 << 20,
        Backend::Filesystem => 1 << 20,
    };
    let mut writer = WriteMultipart::new_with_chunk_size(upload, part);
    let mut hasher = Hasher::new(digest.algorithm());
    let mut len: u64 = 0;
    let mut held: Option<Bytes> = None;
    let failure = loop {
        match upstream.next().await {
            Some(Ok(chunk)) => {
                len += chunk.len() as u64;
                if expected_len.is_some_and(|e| len > e) {
                    break Some(FillError::Length {
                        expected: expected_len.unwrap_or_default(),
                        actual: len,
                    });
                }
                hasher.update(&chunk);
                if let Err(e) = writer.wait_for_capacity(2).await {
                    break Some(FillError::Store(StoreError::object("write", &key, e)));
                }
                writer.write(&chunk);
                if let Some(prev) = held.replace(chunk) {
                    forward(client, Ok(prev), idle).await;
                }
            }
            Some(Err(e)) => break Some(FillError::Upstream(e.to_string())),
            None => break None,
        }
    };
    let failure = failure.or_else(|| match expected_len {
        Some(expected) if expected != len => Some(FillError::Length {
            expected,
            actual: len,
        }),
        _ => None,
    });
    let failure = failure.or_else(|| {
        let actual = hasher.finish();
        (actual != *digest).then(|| FillError::Mismatch {
            expected: digest.clone(),
            actual,
        })
    });
    if let Some(e) = failure {
        if let Err(abort) = writer.abort().await {
            tracing::warn!(key = %key, error = %abort, "cannot abort a failed blob upload");
        }
        forward(client, Err(FillError::Cut(e.to_string())), idle).await;
        return Err(e);
    }
    if let Err(e) = writer.finish().await {
        let e = FillError::Store(StoreError::object("commit", &key, e));
        forward(client, Err(FillError::Cut(e.to_string())), idle).await;
        return Err(e);
    }
    // Indexed and recorded as served here before the client has its last byte: its next
    // request (a warm one) must find the blob, and not ask the upstream to confirm it.
    if let Some(index) = &store.index {
        index.insert(key.clone(), len);
    }
    if let Err(e) = store.mark_seen(&seen_at.0, &seen_at.1, digest).await {
        tracing::warn!(error = %e, "cannot record where a stored blob was served");
    }
    if let Some(last) = held {
        forward(client, Ok(last), idle).await;
    }
    Ok(())
}

// === impl Waiter ===

impl Waiter {
    /// Waits for the fill: `Ok(true)` committed, `Ok(false)` it failed or was given up before
    /// it began (ask again).
    pub async fn wait(mut self, timeout: Duration) -> Result<bool, FillError> {
        match tokio::time::timeout(timeout, self.rx.wait_for(|s| *s != State::Running)).await {
            Err(_) => Err(FillError::WaitTimeout(timeout)),
            // The sender is dropped only with the flight, after its final state was sent.
            Ok(Err(_)) => Ok(false),
            Ok(Ok(state)) => Ok(*state == State::Committed),
        }
    }
}
