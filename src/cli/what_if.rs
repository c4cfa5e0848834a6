//! `portcullis audit --what-if NEW.yaml`: every digest pulled in the window, re-decided under a
//! proposed configuration by exactly the gate the proxy and `portcullis verify` run
//! ([`Gate::evaluate`](crate::registry_api::gate::Gate::evaluate)), compared with what the ledger
//! says happened: what would now be refused, what would now be let through, and what else would
//! change (another rule, another verdict). The manifests and their signatures are fetched from
//! the upstreams the proposed configuration names.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt;
use http::HeaderMap;
use serde::Serialize;

use super::audit::{open, AuditError};
use crate::config::Config;
use crate::db::{DigestSummary, Filter};
use crate::ledger::report::timestamp;
use crate::ledger::{Admission, LedgerVerdict, Reasons};
use crate::metrics::Metrics;
use crate::oci::{Digest, Reference};
use crate::registry_api::gate::Subject;
use crate::registry_api::manifest::fetch::{self, accept_headers, Origin};
use crate::registry_api::record::Facts;
use crate::registry_api::Proxy;
use crate::signature::discovery::{Material, Prefer};
use crate::signature::TrustRoot;
use crate::store::{Access, Store};

/// How many digests are re-decided at once.
const CONCURRENCY: usize = 8;
/// At most this many digests are re-decided (the most recently pulled first).
pub const MAX_DIGESTS: usize = 10_000;

#[derive(Debug, thiserror::Error)]
pub enum WhatIfError {
    #[error(transparent)]
    Audit(#[from] AuditError),
    #[error("reading the ledger: {0}")]
    Db(#[from] crate::db::DbError),
    #[error("the proposed configuration: {0}")]
    Proposed(String),
}

/// What a digest got: under which rule, which verdict, served or refused.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Side {
    pub rule: Option<String>,
    pub mode: Option<String>,
    pub verdict: LedgerVerdict,
    pub admission: Admission,
}

#[derive(Debug, Clone, Serialize)]
pub struct Change {
    pub image: String,
    pub digest: String,
    pub tags: Vec<String>,
    pub pulls: i64,
    pub before: Side,
    pub after: Side,
    /// Why, under the proposed configuration.
    pub reasons: Vec<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Failure {
    pub image: String,
    pub digest: String,
    pub error: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct WhatIf {
    pub since: String,
    pub until: String,
    pub digests: usize,
    pub unchanged: usize,
    /// Served before, refused under the proposed configuration.
    pub now_refused: Vec<Change>,
    /// Refused before, served under the proposed configuration.
    pub now_served: Vec<Change>,
    /// Served or refused as before, but under another rule or with another verdict.
    pub other: Vec<Change>,
    /// Digests that could not be re-decided (the upstream did not answer, the image is gone).
    pub failed: Vec<Failure>,
}

/// Re-decides the window's digests of `current`'s ledger under `proposed`.
pub async fn what_if(
    current: &Config,
    proposed: &Config,
    since: Duration,
) -> Result<WhatIf, WhatIfError> {
    let db = open(current).await?;
    let now = crate::ledger::now_ms();
    let from = now - since.as_millis() as i64;
    let rows = db
        .digests(&Filter {
            since: from,
            ..Filter::default()
        })
        .await?;
    // One entry per (image, digest): what happened last, with every tag and pull summed.
    let mut last: BTreeMap<(String, String), (DigestSummary, Vec<String>, i64)> = BTreeMap::new();
    for r in rows {
        let key = (r.image.clone(), r.digest.clone());
        let e = last
            .entry(key)
            .or_insert_with(|| (r.clone(), Vec::new(), 0));
        e.1.extend(r.tags.iter().cloned());
        e.2 += r.pulls;
        if r.last_seen > e.0.last_seen {
            e.0 = r;
        }
    }
    let mut entries: Vec<_> = last.into_values().collect();
    entries.sort_by_key(|e| std::cmp::Reverse(e.0.last_seen));
    entries.truncate(MAX_DIGESTS);

    let root = Arc::new(
        TrustRoot::load(&proposed.trusted_root)
            .map_err(|e| WhatIfError::Proposed(e.to_string()))?,
    );
    // Signature material from the content store where it is kept, else from the upstream.
    let metrics = Arc::new(Metrics::new());
    let material = match Store::open_for(&current.storage, metrics.clone(), Access::Read).await {
        Ok(store) => Some(Material {
            store,
            prefer: Prefer::Kept,
        }),
        Err(e) => {
            tracing::warn!(error = %e, "content store not readable: asking the upstreams for everything");
            None
        }
    };
    let proxy = Proxy::from_config(proposed, root, metrics, material)
        .map_err(|e| WhatIfError::Proposed(e.to_string()))?;
    let proxy = &proxy;
    let results: Vec<_> = futures_util::stream::iter(entries)
        .map(|(row, mut tags, pulls)| async move {
            tags.sort();
            tags.dedup();
            let after = redecide(proxy, &row.image, &row.digest).await;
            (row, tags, pulls, after)
        })
        .buffer_unordered(CONCURRENCY)
        .collect()
        .await;

    let mut report = WhatIf {
        since: timestamp(from),
        until: timestamp(now),
        digests: results.len(),
        unchanged: 0,
        now_refused: Vec::new(),
        now_served: Vec::new(),
        other: Vec::new(),
        failed: Vec::new(),
    };
    for (row, tags, pulls, after) in results {
        let (after, reasons) = match after {
            Ok(a) => a,
            Err(error) => {
                report.failed.push(Failure {
                    image: row.image,
                    digest: row.digest,
                    error,
                });
                continue;
            }
        };
        let Some(before) = side_of(&row) else {
            continue;
        };
        if before == after {
            report.unchanged += 1;
            continue;
        }
        let change = Change {
            image: row.image,
            digest: row.digest,
            tags,
            pulls,
            reasons,
            before: before.clone(),
            after: after.clone(),
        };
        match (before.admission, after.admission) {
            (Admission::Served, Admission::Refused) => report.now_refused.push(change),
            (Admission::Refused, Admission::Served) => report.now_served.push(change),
            _ => report.other.push(change),
        }
    }
    for list in [
        &mut report.now_refused,
        &mut report.now_served,
        &mut report.other,
    ] {
        list.sort_by(|a, b| (&a.image, &a.digest).cmp(&(&b.image, &b.digest)));
    }
    Ok(report)
}

fn side_of(row: &DigestSummary) -> Option<Side> {
    Some(Side {
        rule: Some(row.rule.clone()).filter(|r| !r.is_empty()),
        mode: Some(row.mode.clone()).filter(|m| !m.is_empty()),
        verdict: LedgerVerdict::parse(&row.verdict)?,
        admission: Admission::parse(&row.admission)?,
    })
}

/// The proxy's stages for one digest under the proposed configuration: upstream, rule, the
/// manifest fetched by digest (its digest proven), the gate.
async fn redecide(proxy: &Proxy, image: &str, digest: &str) -> Result<(Side, Vec<String>), String> {
    let digest: Digest = digest.parse().map_err(|e| format!("{e}"))?;
    let (upstream, canonical) = proxy
        .upstreams
        .resolve(image, None)
        .map_err(|e| e.to_string())?;
    let rule = proxy.rule(&upstream, &canonical);
    let origin = Origin {
        upstream: &upstream,
        image: &canonical,
    };
    let m = fetch::get(
        origin,
        &Reference::Digest(digest.clone()),
        accept_headers(&HeaderMap::new()),
    )
    .await
    .map_err(|e| e.to_string())?;
    let subject = Subject {
        image: &canonical,
        image_upstream: &upstream,
        digest: &m.digest,
        media_type: m.media_type.to_str().ok(),
        manifest: Some(&m.bytes),
    };
    let outcome = proxy.gate.evaluate(&rule, &subject).await;
    let facts = Facts::of(&outcome);
    let reasons = match &facts.reasons {
        Reasons::None => Vec::new(),
        Reasons::Verdict(v) => v.reasons.clone(),
        Reasons::Text(t) => vec![t.clone()],
    };
    Ok((
        Side {
            mode: facts.rule.as_ref().map(|r| r.mode.as_str().to_owned()),
            rule: facts.rule.as_ref().map(|r| r.name.clone()),
            verdict: facts.verdict,
            admission: facts.admission,
        },
        reasons,
    ))
}

// === impl Display ===

impl fmt::Display for Side {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let admission = match self.admission {
            Admission::Served => "served",
            Admission::Refused => "refused",
        };
        match (&self.rule, &self.mode) {
            (Some(r), Some(m)) => write!(
                f,
                "{admission}, {} under rule {r} ({m})",
                self.verdict.as_str()
            ),
            _ => write!(f, "{admission}, no rule"),
        }
    }
}

impl fmt::Display for WhatIf {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "What if: {} digest(s) pulled from {} to {} re-decided under the proposed configuration; {} unchanged",
            self.digests, self.since, self.until, self.unchanged
        )?;
        for (title, list) in [
            ("Would now be refused", &self.now_refused),
            ("Would now be let through", &self.now_served),
            ("Other changes", &self.other),
        ] {
            if list.is_empty() {
                continue;
            }
            writeln!(f, "\n{title}: {}", list.len())?;
            for c in list {
                let tags = if c.tags.is_empty() {
                    String::new()
                } else {
                    format!(" ({})", c.tags.join(", "))
                };
                writeln!(
                    f,
                    "  [ ] {}@{}{tags}: {} pull(s) in the window",
                    c.image, c.digest, c.pulls
                )?;
                writeln!(f, "        was: {}", c.before)?;
                writeln!(f, "        now: {}", c.after)?;
                for r in &c.reasons {
                    writeln!(f, "          reason: {r}")?;
                }
            }
        }
        if !self.failed.is_empty() {
            writeln!(f, "\nCould not re-decide: {}", self.failed.len())?;
            for x in &self.failed {
                writeln!(f, "  {}@{}: {}", x.image, x.digest, x.error)?;
            }
        }
        Ok(())
    }
}
