//! Verdicts, cached: verified ones for `cache.verdict_ttl`, unverified ones for
//! `cache.failure_ttl` (lookup faults are never cached), keyed by (digest, rule fingerprint,
//! trust-root fingerprint, signature repository) so that a change of rule or root can never
//! serve a stale verdict. Beside them, the digests that verified manifests cover (an index's
//! children, an image's config and layers), under the same key.
//!
//! This module does not compute a verdict: [`super::Engine`] supplies the computation, which runs
//! once for concurrent callers.

use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use moka::Expiry;

use crate::cache::{Cached, Counted};
use crate::config::CacheSettings;
use crate::metrics::Metrics;
use crate::oci::Digest;
use crate::policy::{Fingerprint, Verdict};

/// A verdict holds for one digest under one rule and one trust root; change either and the key
/// changes, so a stale verdict cannot be served. It also holds only for the repository its
/// signatures were looked up in: the same digest pulled through a repository without signatures
/// must not poison the verdict of the repository that has them.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct VerdictKey {
    pub digest: Digest,
    pub rule: Fingerprint,
    pub root: [u8; 32],
    /// `<upstream>/<repository>` where signatures are looked up.
    pub signatures: Arc<str>,
}

struct VerdictExpiry {
    verified: Duration,
    unverified: Duration,
}

impl Expiry<VerdictKey, Arc<Verdict>> for VerdictExpiry {
    fn expire_after_create(
        &self,
        _key: &VerdictKey,
        value: &Arc<Verdict>,
        _created_at: Instant,
    ) -> Option<Duration> {
        Some(if value.verified {
            self.verified
        } else {
            self.unverified
        })
    }
}

/// Verdicts and the children of verified manifests.
pub struct VerdictCache {
    verdicts: Cached<VerdictKey, Arc<Verdict>>,
    children: Cached<VerdictKey, Arc<Verdict>>,
}

impl VerdictCache {
    pub fn new(settings: &CacheSettings, metrics: Arc<Metrics>) -> VerdictCache {
        let cache = || {
            moka::future::Cache::builder()
                .max_capacity(settings.max_verdicts)
                .expire_after(VerdictExpiry {
                    verified: settings.verdict_ttl,
                    unverified: settings.failure_ttl,
                })
                .build()
        };
        VerdictCache {
            verdicts: Cached::new("verdict", Counted::HitsAndMisses, cache(), metrics.clone()),
            children: Cached::new("index_child", Counted::HitsOnly, cache(), metrics),
        }
    }

    /// The verdict of a child manifest covered by a verified index, if any.
    pub async fn covered_child(&self, key: &VerdictKey) -> Option<Arc<Verdict>> {
        self.children.get(key).await
    }

    /// Covers `key` unless it is covered already.
    pub async fn cover_child(&self, key: VerdictKey, verdict: &Arc<Verdict>) {
        self.children.insert_if_absent(key, verdict.clone()).await;
    }

    /// The cached verdict, or the result of `compute`, run once for concurrent callers. An error
    /// is handed to every waiting caller and not cached.
    pub async fn get_or_compute<E, F>(
        &self,
        key: VerdictKey,
        compute: F,
    ) -> Result<Arc<Verdict>, Arc<E>>
    where
        F: Future<Output = Result<Arc<Verdict>, E>>,
        E: Send + Sync + 'static,
    {
        self.verdicts.get_or_fetch(key, compute).await
    }

    /// How many verdicts are held (approximate; for tests and benchmarks).
    pub async fn entry_count(&self) -> u64 {
        self.verdicts.entry_count().await
    }
}
