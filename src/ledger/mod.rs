//! The pull ledger: for every manifest served or refused, who pulled what and what the policy
//! said, kept in the database ([`crate::db`]) and read back as the audit report ([`report`]).
//!
//! Recording is off the request path: [`Ledger::record`] puts a [`Record`] on a bounded queue
//! with `try_send` and returns at once, full queue or not; a writer task ([`writer`]) aggregates
//! records in memory (one entry per day, image, digest, tag, rule, verdict and client, with a
//! pull count and first/last seen) and writes them in batches, once a second, in a task of its
//! own. A record never changes a decision (it is made after the gate has decided) and never
//! waits for the database. When the database is down, locked or full, the batch is dropped and
//! its records counted in `portcullis_ledger_dropped_records_total`, the fault is logged once per
//! interval, serving goes on, and the next batch is tried afresh: recording resumes by itself.
//!
//! What counts as a pull: a `GET` of a manifest. A served `HEAD` is recorded with no pull: it
//! still names the tag, the client and when it was seen, but the `GET` by digest that follows it
//! (containerd and Docker send both) is the pull, so a `HEAD` + `GET` pair counts once. A refused
//! `HEAD` may be the client's only request, so it counts as one pull unless a `GET` of the same
//! entry (the same tag or digest, client and outcome) lands in the same one-second batch:
//! containerd answers a refused `HEAD` with a `GET` of the same tag, and that pair counts once
//! too. (A pair split across two batches counts twice; a burst of refused `HEAD`s with no `GET`
//! within one batch counts once.)
//!
//! This module knows nothing of HTTP routes or of the gate's types: the registry API's record
//! stage builds the [`Record`].

pub mod report;
mod writer;

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use http::HeaderValue;
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;

use crate::config::LedgerSettings;
use crate::db::Database;
use crate::metrics::Metrics;
use crate::oci::{Digest, ImageName, Tag};
use crate::policy::{Mode, Rule, Verdict as PolicyVerdict};

/// How many records may wait for the writer; beyond that a record is dropped (and counted).
pub const QUEUE_CAPACITY: usize = 16_384;

/// What the policy said of a digest, as the ledger keeps it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum LedgerVerdict {
    Verified,
    Unverified,
    /// The signature lookup failed (neither signed nor unsigned).
    Error,
    /// The rule's mode is off: nothing was checked.
    Off,
    /// No rule matches the image.
    Unmatched,
}

/// Whether the client got the manifest.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Admission {
    Served,
    Refused,
}

/// Why a digest is not verified, as the audit report groups it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Finding {
    /// Nothing to report: verified, not checked, or served unmatched.
    None,
    /// No signature at all.
    Unsigned,
    /// Signed, but by no allowed identity or key.
    UnexpectedSigner,
    /// The signatures verify, an attestation requirement does not hold.
    Requirements,
    /// No rule matches and unmatched repositories are denied.
    Unmatched,
    /// The signature lookup failed.
    Fault,
}

macro_rules! names {
    ($ty:ty { $($v:ident => $s:literal),* $(,)? }) => {
        impl $ty {
            pub fn as_str(self) -> &'static str {
                match self { $(<$ty>::$v => $s),* }
            }
            /// The value a database row holds, `None` for a string no version wrote.
            pub fn parse(s: &str) -> Option<Self> {
                match s { $($s => Some(<$ty>::$v),)* _ => None }
            }
        }
    };
}

names!(LedgerVerdict { Verified => "verified", Unverified => "unverified", Error => "error", Off => "off", Unmatched => "unmatched" });
names!(Admission { Served => "served", Refused => "refused" });
names!(Finding { None => "none", Unsigned => "unsigned", UnexpectedSigner => "unexpected_signer", Requirements => "requirements", Unmatched => "unmatched", Fault => "fault" });

impl Finding {
    /// What a rule's verdict found.
    pub fn of(rule: &Rule, verdict: &PolicyVerdict) -> Finding {
        if verdict.verified {
            Finding::None
        } else if verdict.signatures == 0 {
            Finding::Unsigned
        } else if verdict.evidence.len() < rule.count {
            Finding::UnexpectedSigner
        } else {
            Finding::Requirements
        }
    }

    /// How the report says it, of one image.
    pub fn phrase(self) -> &'static str {
        match self {
            Finding::None => "verified",
            Finding::Unsigned => "unsigned",
            Finding::UnexpectedSigner => "signed by an unexpected identity",
            Finding::Requirements => "missing a required attestation",
            Finding::Unmatched => "matched by no rule (unmatched: deny)",
            Finding::Fault => "signature lookup failed",
        }
    }
}

/// Who asked.
#[derive(Debug, Clone, Default)]
pub struct Client {
    pub addr: Option<IpAddr>,
    pub user_agent: Option<HeaderValue>,
    /// The authenticated user, when `auth` is configured.
    pub user: Option<Arc<str>>,
}

/// Why a digest has its verdict: the verdict's own reasons, or a fault's message.
#[derive(Debug, Clone)]
pub enum Reasons {
    None,
    Verdict(Arc<PolicyVerdict>),
    Text(String),
}

/// One manifest served or refused.
#[derive(Debug, Clone)]
pub struct Record {
    /// Unix milliseconds.
    pub at: i64,
    pub image: ImageName,
    /// The tag asked for, when the request named one.
    pub tag: Option<Tag>,
    pub digest: Digest,
    /// The upstream key.
    pub upstream: String,
    pub rule: Option<Arc<Rule>>,
    pub mode: Option<Mode>,
    pub verdict: LedgerVerdict,
    pub admission: Admission,
    pub finding: Finding,
    pub reasons: Reasons,
    pub client: Client,
    /// A `HEAD` request (see the module's notes on what counts as a pull).
    pub head: bool,
}

enum Msg {
    Record(Box<Record>),
    Flush(oneshot::Sender<()>),
    Stop(oneshot::Sender<()>),
}

/// The handle the request pipeline records through; cheap to share.
pub struct Ledger {
    tx: mpsc::Sender<Msg>,
    metrics: Arc<Metrics>,
    task: std::sync::Mutex<Option<JoinHandle<()>>>,
}

impl Ledger {
    /// Starts the writer (and the retention pruning) on `db`.
    pub fn start(db: Arc<Database>, settings: &LedgerSettings, metrics: Arc<Metrics>) -> Ledger {
        let (tx, rx) = mpsc::channel(QUEUE_CAPACITY);
        let task = tokio::spawn(writer::run(rx, db, settings.retention, metrics.clone()));
        Ledger {
            tx,
            metrics,
            task: std::sync::Mutex::new(Some(task)),
        }
    }

    /// Records `r` without waiting: a full queue drops it (and counts it).
    pub fn record(&self, r: Record) {
        if self.tx.try_send(Msg::Record(Box::new(r))).is_err() {
            self.metrics
                .ledger_dropped
                .with_label_values(&["queue_full"])
                .inc();
        }
    }

    /// Writes what is aggregated now (and waits for it, at most `timeout`). For shutdown and
    /// tests; the writer flushes by itself every second.
    pub async fn flush(&self, timeout: Duration) -> bool {
        let (done, wait) = oneshot::channel();
        let asked = tokio::time::timeout(timeout, self.tx.send(Msg::Flush(done))).await;
        matches!(asked, Ok(Ok(()))) && tokio::time::timeout(timeout, wait).await.is_ok()
    }

    /// Writes what is left and stops the writer, waiting at most `timeout`.
    pub async fn stop(&self, timeout: Duration) {
        let (done, wait) = oneshot::channel();
        if let Ok(Ok(())) = tokio::time::timeout(timeout, self.tx.send(Msg::Stop(done))).await {
            let _ = tokio::time::timeout(timeout, wait).await;
        }
        let task = self
            .task
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .take();
        if let Some(task) = task {
            task.abort();
        }
    }
}

/// Unix milliseconds now.
pub fn now_ms() -> i64 {
    crate::db::now_ms()
}
