//! The ledger's writer task: drains the queue into an in-memory aggregate every
//! [`DRAIN_INTERVAL`] (a tick, not a wake-up per record: a warm hit's `try_send` then only pushes
//! onto the queue, with no task to wake on another thread), hands the aggregate
//! to a flush task once a second (one flush in flight at a time; records keep aggregating
//! meanwhile), counts what a failed flush drops, logs database faults once per
//! [`FAULT_LOG_INTERVAL`], and prunes rows older than the retention every [`PRUNE_INTERVAL`].
//!
//! Each verdict a record carries is written once too (the console's view of a digest: every
//! signature, attestation and condition): a verdict is one `Arc` shared by every warm hit the
//! verdict cache answers, so the writer remembers which one it wrote last for each (digest,
//! rule) ([`Written`]) and writes again only a new one (a re-verification). A failed flush
//! forgets them all, so the next batch writes them again.

// A `Key` hashes its rule by the rule's name only, which never changes; clippy sees the caches
// inside a `Rule` and cannot know that.
#![allow(clippy::mutable_key_type)]

use std::collections::HashMap;
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use http::HeaderValue;
use std::net::IpAddr;
use tokio::sync::mpsc::error::TryRecvError;

use super::{Msg, Reasons, Record};
use crate::db::console::VerdictRow;
use crate::db::{Database, DbError, PullRow};
use crate::metrics::Metrics;
use crate::oci::{Digest, ImageName, Tag};
use crate::policy::{Rule, Verdict as PolicyVerdict};

pub const FLUSH_INTERVAL: Duration = Duration::from_secs(1);
/// How often the queue is drained: the queue's 16 384 records last 160 ms at 100 000 pulls/s.
pub const DRAIN_INTERVAL: Duration = Duration::from_millis(10);
pub const PRUNE_INTERVAL: Duration = Duration::from_secs(3600);
pub const FAULT_LOG_INTERVAL: Duration = Duration::from_secs(60);
/// Distinct aggregate entries held at once; a record that would add one more is dropped.
pub const MAX_PENDING: usize = 100_000;

const DAY_MS: i64 = 86_400_000;

/// How many (digest, rule) pairs [`Written`] remembers before it starts afresh.
const WRITTEN_MAX: usize = 100_000;

/// The verdict last written for each (digest, rule name). A `Weak` keeps its allocation, so
/// `Weak::ptr_eq` cannot mistake a new verdict for a dropped one at the same address.
#[derive(Default)]
struct Written(HashMap<(Digest, String), Weak<PolicyVerdict>>);

impl Written {
    /// Whether `verdict` is new for (digest, rule), remembering it when it is.
    fn is_new(&mut self, digest: &Digest, rule: &str, verdict: &Arc<PolicyVerdict>) -> bool {
        let key = (digest.clone(), rule.to_owned());
        if self
            .0
            .get(&key)
            .is_some_and(|w| Weak::ptr_eq(w, &Arc::downgrade(verdict)))
        {
            return false;
        }
        if self.0.len() >= WRITTEN_MAX {
            self.0.clear();
        }
        self.0.insert(key, Arc::downgrade(verdict));
        true
    }
}

/// One aggregate entry's identity, of the record's own typed values (moved, not formatted: a
/// warm hit that lands on an existing entry allocates nothing); made text only when written.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct Key {
    day: i64,
    image: ImageName,
    digest: Digest,
    tag: Option<Tag>,
    rule: Option<RuleName>,
    mode: &'static str,
    verdict: &'static str,
    admission: &'static str,
    client_addr: Option<IpAddr>,
    /// At most [`USER_AGENT_MAX`] bytes.
    user_agent: Option<HeaderValue>,
    user_name: Option<Arc<str>>,
}

/// The longest user agent kept, in bytes (and then in characters once decoded).
const USER_AGENT_MAX: usize = 256;

/// A rule, compared by name (a reload makes new `Rule` values with the same names).
#[derive(Debug, Clone)]
struct RuleName(Arc<Rule>);

impl PartialEq for RuleName {
    fn eq(&self, other: &Self) -> bool {
        self.0.name == other.0.name
    }
}

impl Eq for RuleName {}

impl std::hash::Hash for RuleName {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.0.name.hash(state);
    }
}

struct Entry {
    upstream: String,
    finding: &'static str,
    reasons: String,
    identities: String,
    /// `GET`s.
    pulls: i64,
    /// Refused `HEAD`s: one pull when no `GET` of the entry came in the batch.
    refused_heads: i64,
    records: u64,
    first_seen: i64,
    last_seen: i64,
    /// The entry's verdict, when the writer has not written it yet.
    verdict: Option<Arc<PolicyVerdict>>,
}

type Batch = HashMap<Key, Entry>;

struct FaultLog {
    failing_since: Option<Instant>,
    last_logged: Option<Instant>,
    dropped_since_log: u64,
}

pub(super) async fn run(
    mut rx: mpsc::Receiver<Msg>,
    db: Arc<Database>,
    retention: Duration,
    metrics: Arc<Metrics>,
) {
    let mut pending: Batch = HashMap::new();
    let mut written = Written::default();
    let mut inflight: Option<JoinHandle<(u64, Result<(), DbError>)>> = None;
    let mut faults = FaultLog {
        failing_since: None,
        last_logged: None,
        dropped_since_log: 0,
    };
    let mut flush_tick = tokio::time::interval(FLUSH_INTERVAL);
    flush_tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut prune_tick = tokio::time::interval(PRUNE_INTERVAL);
    prune_tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut pruning: Option<JoinHandle<()>> = None;
    let mut drain_tick = tokio::time::interval(DRAIN_INTERVAL);
    drain_tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);

    loop {
        tokio::select! {
            _ = drain_tick.tick() => loop {
                match rx.try_recv() {
                    Ok(Msg::Record(r)) => add(&mut pending, &mut written, *r, &metrics),
                    Ok(Msg::Flush(done)) => {
                        // A flush asked for covers every record queued before it.
                        finish(&mut inflight, &mut faults, &mut written, &metrics).await;
                        let batch = std::mem::take(&mut pending);
                        let result = write(&db, batch).await;
                        settle(result, &mut faults, &mut written, &metrics);
                        let _ = done.send(());
                    }
                    Ok(Msg::Stop(done)) => {
                        finish(&mut inflight, &mut faults, &mut written, &metrics).await;
                        let batch = std::mem::take(&mut pending);
                        settle(write(&db, batch).await, &mut faults, &mut written, &metrics);
                        let _ = done.send(());
                        return;
                    }
                    Err(TryRecvError::Empty) => break,
                    Err(TryRecvError::Disconnected) => return,
                }
            },
            result = async {
                match inflight.as_mut() {
                    Some(task) => task.await,
                    None => std::future::pending().await,
                }
            }, if inflight.is_some() => {
                inflight = None;
                match result {
                    Ok(r) => settle(r, &mut faults, &mut written, &metrics),
                    Err(e) => tracing::warn!(error = %e, "ledger flush task failed"),
                }
            }
            _ = flush_tick.tick() => {
                if inflight.is_none() && !pending.is_empty() {
                    let batch = std::mem::take(&mut pending);
                    let db = db.clone();
                    inflight = Some(tokio::spawn(async move { write(&db, batch).await }));
                }
            }
            _ = prune_tick.tick() => {
                if pruning.as_ref().is_none_or(|p| p.is_finished()) {
                    let db = db.clone();
                    pruning = Some(tokio::spawn(prune(db, retention)));
                }
            }
        }
        metrics.ledger_pending.set(pending.len() as i64);
    }
}

/// Adds a record to the aggregate.
fn add(pending: &mut Batch, written: &mut Written, r: Record, metrics: &Metrics) {
    let user_agent = match r.client.user_agent {
        Some(v) if v.len() > USER_AGENT_MAX => {
            HeaderValue::from_bytes(&v.as_bytes()[..USER_AGENT_MAX]).ok()
        }
        v => v,
    };
    let key = Key {
        day: r.at.div_euclid(DAY_MS) * 86_400,
        image: r.image,
        digest: r.digest,
        tag: r.tag,
        rule: r.rule.clone().map(RuleName),
        mode: r.mode.map(|m| m.as_str()).unwrap_or(""),
        verdict: r.verdict.as_str(),
        admission: r.admission.as_str(),
        client_addr: r.client.addr,
        user_agent,
        user_name: r.client.user,
    };
    let pulls = i64::from(!r.head);
    let refused_heads = i64::from(r.head && r.admission == super::Admission::Refused);
    if let Some(e) = pending.get_mut(&key) {
        e.pulls += pulls;
        e.refused_heads += refused_heads;
        e.records += 1;
        e.first_seen = e.first_seen.min(r.at);
        e.last_seen = e.last_seen.max(r.at);
        return;
    }
    if pending.len() >= MAX_PENDING {
        metrics
            .ledger_dropped
            .with_label_values(&["backlog_full"])
            .inc();
        return;
    }
    let (reasons, identities): (Vec<String>, &[String]) = match &r.reasons {
        Reasons::None => (Vec::new(), &[]),
        Reasons::Verdict(v) => (v.reasons.clone(), &v.identities),
        Reasons::Text(t) => (vec![t.clone()], &[]),
    };
    let verdict = match (&r.reasons, &key.rule) {
        (Reasons::Verdict(v), Some(rule)) if written.is_new(&key.digest, &rule.0.name, v) => {
            Some(v.clone())
        }
        _ => None,
    };
    pending.insert(
        key,
        Entry {
            upstream: r.upstream,
            finding: r.finding.as_str(),
            reasons: json_list(&reasons),
            identities: json_list(identities),
            pulls,
            refused_heads,
            records: 1,
            first_seen: r.at,
            last_seen: r.at,
            verdict,
        },
    );
}

fn json_list(items: &[String]) -> String {
    serde_json::to_string(items).unwrap_or_else(|_| "[]".to_owned())
}

/// Writes a batch (its pulls, then the verdicts it holds that were not written yet); answers how
/// many records it held and how it went.
async fn write(db: &Database, batch: Batch) -> (u64, Result<(), DbError>) {
    let records = batch.values().map(|e| e.records).sum();
    let mut verdicts: HashMap<(String, String), VerdictRow> = HashMap::new();
    let rows = batch
        .into_iter()
        .map(|(k, e)| {
            let digest = k.digest.to_string();
            let rule = k.rule.map(|r| r.0.name.clone()).unwrap_or_default();
            if let Some(v) = &e.verdict {
                let row = VerdictRow {
                    digest: digest.clone(),
                    rule: rule.clone(),
                    image: k.image.to_string(),
                    verified: v.verified,
                    first_decided: e.first_seen,
                    decided_at: e.first_seen,
                    detail: serde_json::to_string(&**v).unwrap_or_else(|_| "{}".to_owned()),
                };
                verdicts.insert((digest.clone(), rule.clone()), row);
            }
            PullRow {
                day: k.day,
                image: k.image.to_string(),
                digest,
                tag: k.tag.map(|t| t.to_string()).unwrap_or_default(),
                upstream: e.upstream,
                rule,
                mode: k.mode.to_owned(),
                verdict: k.verdict.to_owned(),
                admission: k.admission.to_owned(),
                finding: e.finding.to_owned(),
                client_addr: k.client_addr.map(|a| a.to_string()).unwrap_or_default(),
                user_agent: k
                    .user_agent
                    .map(|v| {
                        String::from_utf8_lossy(v.as_bytes())
                            .chars()
                            .take(USER_AGENT_MAX)
                            .collect()
                    })
                    .unwrap_or_default(),
                user_name: k.user_name.as_deref().unwrap_or("").to_owned(),
                reasons: e.reasons,
                identities: e.identities,
                pulls: if e.pulls == 0 && e.refused_heads > 0 {
                    1
                } else {
                    e.pulls
                },
                first_seen: e.first_seen,
                last_seen: e.last_seen,
            }
        })
        .collect();
    let result = match db.add_pulls(rows).await {
        Ok(()) => db.put_verdicts(verdicts.into_values().collect()).await,
        Err(e) => Err(e),
    };
    (records, result)
}

async fn finish(
    inflight: &mut Option<JoinHandle<(u64, Result<(), DbError>)>>,
    faults: &mut FaultLog,
    written: &mut Written,
    metrics: &Metrics,
) {
    if let Some(task) = inflight.take() {
        if let Ok(r) = task.await {
            settle(r, faults, written, metrics);
        }
    }
}

/// Counts a flush's records as written or dropped and logs a fault at most once per interval.
fn settle(
    (records, result): (u64, Result<(), DbError>),
    faults: &mut FaultLog,
    written: &mut Written,
    metrics: &Metrics,
) {
    match result {
        Ok(()) => {
            metrics.ledger_written.inc_by(records);
            if let Some(since) = faults.failing_since.take() {
                tracing::info!(
                    down_for = ?since.elapsed(),
                    dropped = faults.dropped_since_log,
                    "ledger database reachable again; recording resumed"
                );
                faults.last_logged = None;
                faults.dropped_since_log = 0;
            }
        }
        Err(e) => {
            written.0.clear();
            metrics
                .ledger_dropped
                .with_label_values(&["database"])
                .inc_by(records);
            faults.failing_since.get_or_insert_with(Instant::now);
            faults.dropped_since_log += records;
            if faults
                .last_logged
                .is_none_or(|t| t.elapsed() >= FAULT_LOG_INTERVAL)
            {
                tracing::warn!(
                    error = %e,
                    dropped = faults.dropped_since_log,
                    "ledger database unavailable: pull records are dropped, serving continues \
                     (logged at most once a minute)"
                );
                faults.last_logged = Some(Instant::now());
                faults.dropped_since_log = 0;
            }
        }
    }
}

async fn prune(db: Arc<Database>, retention: Duration) {
    let before = super::now_ms() - retention.as_millis() as i64;
    match db.prune(before).await {
        Ok(0) => {}
        Ok(n) => tracing::info!(rows = n, "ledger: pruned rows past the retention"),
        Err(e) => tracing::warn!(error = %e, "ledger: pruning failed; retried in an hour"),
    }
}
