//! The inventory's feed: each manifest served becomes an SBOM ingest job
//! ([`crate::inventory::ingest`]), offered without waiting from the record stage; and at
//! start-up, the digests the ledger lists as served with no SBOM row (the backfill). This is
//! the registry API's part because a job needs what only it knows: the upstream, the rule that
//! applies and where it looks for signatures, and the verdict.

use std::str::FromStr;
use std::sync::Arc;

use super::gate::AppliedRule;
use super::{Proxy, RequestCtx};
use crate::db::inventory::Unrecorded;
use crate::db::Database;
use crate::inventory::ingest::{Ingest, Job};
use crate::oci::{Digest, ImageName, RepoName};
use crate::policy::{Rule, Selection};
use crate::upstream::Upstream;

/// The most digests one backfill queues (the most recently pulled first).
const BACKFILL_MAX: i64 = 10_000;

/// Offers a served manifest to the ingest (a look-up in a map when it was offered before).
pub fn offer(
    proxy: &Proxy,
    ingest: &Ingest,
    ctx: &RequestCtx,
    digest: &Digest,
    media_type: Option<&str>,
    rule: Option<&Arc<Rule>>,
    verified: bool,
) {
    ingest.offer(digest, || {
        job(
            proxy,
            &ctx.image,
            digest,
            media_type.map(str::to_owned),
            &ctx.upstream,
            &ctx.rule.signatures,
            rule,
            verified,
            true,
        )
    });
}

#[allow(clippy::too_many_arguments)]
fn job(
    proxy: &Proxy,
    image: &ImageName,
    digest: &Digest,
    media_type: Option<String>,
    upstream: &Arc<Upstream>,
    signatures: &(Arc<Upstream>, RepoName),
    rule: Option<&Arc<Rule>>,
    verified: bool,
    kept_first: bool,
) -> Job {
    let engine = &proxy.gate.engine;
    Job {
        image: image.clone(),
        digest: digest.clone(),
        media_type,
        upstream: upstream.clone(),
        signatures: signatures.clone(),
        attestors: rule.map(|r| r.attestors.clone()).unwrap_or_default(),
        verified,
        root: engine.root.clone(),
        limits: engine.limits().clone(),
        kept_first,
    }
}

/// Queues the digests the ledger lists as served with no SBOM row, waiting for room in the
/// queue; digests of upstreams no longer configured are skipped. Run once, in the background.
pub async fn backfill(proxy: Arc<Proxy>, ingest: Arc<Ingest>, db: Arc<Database>) {
    let rows = match db.unrecorded(BACKFILL_MAX).await {
        Ok(rows) => rows,
        Err(e) => {
            tracing::warn!(error = %e, "SBOM backfill: the ledger could not be read");
            return;
        }
    };
    let (mut queued, mut skipped) = (0usize, 0usize);
    for row in &rows {
        match backfill_job(&proxy, row) {
            Some(job) => {
                if !ingest.queue(job).await {
                    break;
                }
                queued += 1;
            }
            None => skipped += 1,
        }
    }
    if queued + skipped > 0 {
        tracing::info!(
            queued,
            skipped,
            "SBOM backfill: digests pulled before, with no SBOM recorded, queued for ingest"
        );
    }
}

/// The job for a digest the ledger lists, when its upstream is still configured.
fn backfill_job(proxy: &Proxy, row: &Unrecorded) -> Option<Job> {
    let upstream = proxy.upstreams.get(&row.upstream)?;
    let repo = row.image.strip_prefix(&format!("{}/", row.upstream))?;
    let image = ImageName {
        registry: row.upstream.clone(),
        repo: RepoName::from_str(repo).ok()?,
    };
    let digest = Digest::from_str(&row.digest).ok()?;
    let applied = AppliedRule::select(&proxy.policies, &proxy.upstreams, upstream, &image);
    let rule = match &applied.selection {
        Selection::Rule { rule, .. } => Some(rule),
        Selection::Unmatched(_) => None,
    };
    Some(job(
        proxy,
        &image,
        &digest,
        None,
        upstream,
        &applied.signatures,
        rule,
        row.verified,
        false,
    ))
}
