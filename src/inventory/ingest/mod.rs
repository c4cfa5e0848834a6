//! SBOM ingest: the SBOMs of every digest served, found and recorded off the request path.
//!
//! The registry API's record stage [`Ingest::offer`]s each digest it serves; a digest already
//! offered by this process within `inventory.recheck` is not offered again, so a warm pull
//! costs one look-up in a bounded map. A new one becomes a [`Job`] on a bounded queue
//! (`try_send`: a full queue drops the job, counted in `portcullis_inventory_dropped_total`,
//! and the digest is offered again on its next pull). One worker takes jobs in order: a digest
//! already recorded (an SBOM found or unreadable, or none found within `recheck`) is skipped;
//! otherwise its SBOMs are looked for ([`find`]) and the best one is recorded through
//! [`crate::db`], or the fact that it has none. Upstream faults and database faults are logged
//! (at most once a minute, with a count), counted as `error` and leave nothing recorded, so the
//! digest is tried again on a later pull. Nothing here changes a decision or delays a response:
//! the job is made after the gate decided, and the worker shares no lock with requests.
//!
//! One worker, so that an index's job (which records its children's BuildKit SBOMs) and its
//! children's jobs (queued after it by the client's pulls) never race.
//!
//! [`backfill`]: what the ledger lists as served with no SBOM row, queued at start-up by the
//! registry API (which knows the upstreams and rules) through [`Ingest::queue`].

pub mod find;

use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::mpsc;

use crate::config::{InventorySettings, Limits};
use crate::db::inventory::SbomRow;
use crate::db::{Database, DbError};
use crate::metrics::Metrics;
use crate::oci::{Digest, ImageName, RepoName};
use crate::policy::Attestor;
use crate::signature::discovery::{Material, Memory, Prefer};
use crate::signature::{LookupError, TrustRoot};
use crate::store::Store;
use crate::upstream::Upstream;

/// How many jobs may wait for the worker.
pub const QUEUE_CAPACITY: usize = 1024;
/// How many digests this process remembers having offered.
const SEEN_MAX: u64 = 100_000;
/// The longest one digest's ingest may take (an SBOM may be 64 MiB).
const JOB_TIMEOUT: Duration = Duration::from_secs(120);
/// How often an ingest fault is logged at most.
const LOG_EVERY: Duration = Duration::from_secs(60);

/// One served digest whose SBOMs to look for.
pub struct Job {
    pub image: ImageName,
    pub digest: Digest,
    /// The manifest's media type, when known: an index's BuildKit attestations are read.
    pub media_type: Option<String>,
    /// The upstream serving the image (unsigned referrers and BuildKit manifests live there).
    pub upstream: Arc<Upstream>,
    /// Where the rule looks for signatures (the image's repository, or the rule's signature
    /// repository).
    pub signatures: (Arc<Upstream>, RepoName),
    /// The attestors of the rule that applies, which signed SBOM attestations must verify
    /// under; empty when no rule applies or the rule has none.
    pub attestors: Vec<Attestor>,
    /// Whether the digest's verdict was verified: an index's BuildKit SBOMs are trusted only
    /// then.
    pub verified: bool,
    pub root: Arc<TrustRoot>,
    pub limits: Limits,
    /// Whether answers kept in the content store may be read before the upstream is asked
    /// (true right after a pull, whose discovery kept them; false for the backfill, whose kept
    /// answers may be old).
    pub kept_first: bool,
}

/// What became of one job, as counted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ingested {
    Found,
    None,
    Unparseable,
    /// An index: its children are recorded each.
    Index,
    /// Already recorded.
    Known,
}

impl Ingested {
    pub fn as_str(self) -> &'static str {
        match self {
            Ingested::Found => "found",
            Ingested::None => "none",
            Ingested::Unparseable => "unparseable",
            Ingested::Index => "index",
            Ingested::Known => "known",
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum IngestError {
    #[error("looking for the SBOMs of {digest}: {error}")]
    Lookup {
        digest: Digest,
        error: Box<LookupError>,
    },
    #[error("recording the SBOM of {digest}: {error}")]
    Db { digest: Digest, error: DbError },
    #[error("the ingest of {digest} took longer than {limit:?}")]
    Timeout { digest: Digest, limit: Duration },
    #[error("the ingest of {digest} failed: {reason}")]
    Internal { digest: Digest, reason: String },
}

/// The digests offered by this process: a moka cache bounded at [`SEEN_MAX`] whose entries
/// expire `recheck` after they were offered, so such a digest is offered again.
struct Seen {
    offered: moka::sync::Cache<Digest, ()>,
}

impl Seen {
    fn new(recheck: Duration) -> Seen {
        Seen {
            offered: moka::sync::Cache::builder()
                .max_capacity(SEEN_MAX)
                .time_to_live(recheck)
                .build(),
        }
    }

    /// True (and remembered) when `digest` was not offered within `recheck`.
    fn claim(&self, digest: &Digest) -> bool {
        self.offered.entry_by_ref(digest).or_insert(()).is_fresh()
    }

    fn forget(&self, digest: &Digest) {
        self.offered.invalidate(digest);
    }
}

/// The ingest's queue; its worker runs until the last [`Ingest`] is dropped.
pub struct Ingest {
    tx: mpsc::Sender<Job>,
    seen: Arc<Seen>,
    metrics: Arc<Metrics>,
}

impl Ingest {
    /// Starts the worker. `store` is the content store whose kept answers discovery reads.
    pub fn start(
        db: Arc<Database>,
        store: Option<Arc<Store>>,
        settings: &InventorySettings,
        metrics: Arc<Metrics>,
    ) -> Ingest {
        let (tx, rx) = mpsc::channel(QUEUE_CAPACITY);
        let seen = Arc::new(Seen::new(settings.recheck));
        let memory = |prefer| Memory::new(store.clone().map(|store| Material { store, prefer }));
        let worker = Worker {
            db,
            seen: seen.clone(),
            metrics: metrics.clone(),
            recheck: settings.recheck,
            kept_first: memory(Prefer::Kept),
            upstream_first: memory(Prefer::Upstream),
            faults: Faults::default(),
        };
        tokio::spawn(worker.run(rx));
        Ingest { tx, seen, metrics }
    }

    /// Offers a served digest, never waiting: `job` is made only when the digest is new to this
    /// process (or was offered longer than `recheck` ago).
    pub fn offer(&self, digest: &Digest, job: impl FnOnce() -> Job) {
        if !self.seen.claim(digest) {
            return;
        }
        if self.tx.try_send(job()).is_err() {
            self.seen.forget(digest);
            self.metrics.inventory_dropped.inc();
        }
    }

    /// Queues a job, waiting for room (the backfill); false when the worker is gone.
    pub async fn queue(&self, job: Job) -> bool {
        if !self.seen.claim(&job.digest) {
            return true;
        }
        self.tx.send(job).await.is_ok()
    }
}

/// Ingest faults, logged at most once per [`LOG_EVERY`] with how many there were.
#[derive(Default)]
struct Faults {
    last_logged: Option<Instant>,
    since: u64,
}

impl Faults {
    fn note(&mut self, e: &IngestError) {
        self.since += 1;
        if self.last_logged.is_some_and(|t| t.elapsed() < LOG_EVERY) {
            return;
        }
        tracing::warn!(
            error = %e,
            faults = self.since,
            "SBOM ingest failed; the digest is tried again on a later pull"
        );
        self.last_logged = Some(Instant::now());
        self.since = 0;
    }
}

struct Worker {
    db: Arc<Database>,
    seen: Arc<Seen>,
    metrics: Arc<Metrics>,
    recheck: Duration,
    kept_first: Memory,
    upstream_first: Memory,
    faults: Faults,
}

impl Worker {
    async fn run(mut self, mut rx: mpsc::Receiver<Job>) {
        while let Some(job) = rx.recv().await {
            let result = tokio::time::timeout(JOB_TIMEOUT, self.ingest(&job))
                .await
                .unwrap_or_else(|_| {
                    Err(IngestError::Timeout {
                        digest: job.digest.clone(),
                        limit: JOB_TIMEOUT,
                    })
                });
            let label = match &result {
                Ok(outcome) => {
                    tracing::debug!(
                        image = %job.image,
                        digest = %job.digest,
                        result = outcome.as_str(),
                        "SBOM ingest"
                    );
                    outcome.as_str()
                }
                Err(e) => {
                    self.seen.forget(&job.digest);
                    self.faults.note(e);
                    "error"
                }
            };
            self.metrics
                .inventory_ingests
                .with_label_values(&[label])
                .inc();
        }
    }

    async fn ingest(&self, job: &Job) -> Result<Ingested, IngestError> {
        let digest = &job.digest;
        let db_err = |error| IngestError::Db {
            digest: digest.clone(),
            error,
        };
        if self.known(&digest.to_string()).await.map_err(db_err)? {
            return Ok(Ingested::Known);
        }
        let memory = if job.kept_first {
            &self.kept_first
        } else {
            &self.upstream_first
        };
        let found = find::find(job, memory).await.map_err(|error| match error {
            find::FindError::Lookup(error) => IngestError::Lookup {
                digest: digest.clone(),
                error: Box::new(error),
            },
            find::FindError::Internal(reason) => IngestError::Internal {
                digest: digest.clone(),
                reason,
            },
        })?;
        let mut outcome = Ingested::None;
        for recording in found {
            let own = &recording.digest == digest;
            // A child's SBOM from its index does not replace what the child has of its own.
            if !own
                && self
                    .known(&recording.digest.to_string())
                    .await
                    .map_err(db_err)?
            {
                continue;
            }
            let kind = recording
                .write(&self.db, &job.image)
                .await
                .map_err(db_err)?;
            if own {
                outcome = kind;
            }
        }
        Ok(outcome)
    }

    /// Whether a digest's SBOM is recorded for good: found, unreadable, an index, or found
    /// missing less than `recheck` ago.
    async fn known(&self, digest: &str) -> Result<bool, DbError> {
        Ok(match self.db.sbom_state(digest).await? {
            None => false,
            Some((status, at)) if status == find::Status::None.as_str() => {
                crate::db::now_ms() - at < self.recheck.as_millis() as i64
            }
            Some(_) => true,
        })
    }
}

/// The row of a digest with no SBOM (yet) or an index.
fn bare_row(digest: &Digest, image: &ImageName, status: find::Status) -> SbomRow {
    SbomRow {
        digest: digest.to_string(),
        image: image.to_string(),
        status: status.as_str().to_owned(),
        provenance: String::new(),
        signer: String::new(),
        format: String::new(),
        error: String::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_digest_is_offered_once_within_recheck() {
        let seen = Seen::new(Duration::from_secs(3600));
        assert!(seen.claim(&Digest::repeated('a')));
        assert!(!seen.claim(&Digest::repeated('a')));
        assert!(seen.claim(&Digest::repeated('b')));
        seen.forget(&Digest::repeated('a'));
        assert!(seen.claim(&Digest::repeated('a')));
        let expired = Seen::new(Duration::from_millis(20));
        assert!(expired.claim(&Digest::repeated('a')));
        std::thread::sleep(Duration::from_millis(40));
        assert!(expired.claim(&Digest::repeated('a')));
    }
}
