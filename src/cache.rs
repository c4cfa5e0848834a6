//! In-memory caches, all moka: upstream bearer tokens, kept per (upstream, scope) until shortly
//! before they expire; signature verdicts, keyed by (digest, rule fingerprint, trust-root
//! fingerprint); the children of verified image indexes, which those indexes cover; and
//! manifests — their bytes by digest (content-addressed, bounded by total bytes) and the last
//! resolution of each tag.
//!
//! Concurrent misses for one key run one fill (`try_get_with`), so a burst of cold pulls causes
//! one token request or one signature lookup, not one per client. Errors are never cached. This
//! module does not know how a token is fetched or a verdict computed; the caller supplies the
//! fill.

use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use moka::future::Cache;
use moka::Expiry;

use crate::config::CacheSettings;
use crate::metrics::Metrics;
use crate::oci::{Digest, ImageName, Tag};
use crate::policy::{Fingerprint, Verdict};
use crate::registry_api::manifest::FetchedManifest;

/// A cached bearer token with its own lifetime.
#[derive(Clone)]
pub struct Token {
    pub value: Arc<str>,
    pub ttl: Duration,
}

struct TokenExpiry;

impl Expiry<(String, String), Token> for TokenExpiry {
    fn expire_after_create(
        &self,
        _key: &(String, String),
        value: &Token,
        _created_at: Instant,
    ) -> Option<Duration> {
        Some(value.ttl)
    }
}

/// Bearer tokens keyed by (upstream key, scope).
#[derive(Clone)]
pub struct TokenCache {
    inner: Cache<(String, String), Token>,
    metrics: Arc<Metrics>,
}

impl TokenCache {
    pub fn new(metrics: Arc<Metrics>) -> TokenCache {
        TokenCache {
            inner: Cache::builder()
                .max_capacity(10_000)
                .expire_after(TokenExpiry)
                .build(),
            metrics,
        }
    }

    /// The cached token for the key, or the result of `fill` (run once for concurrent callers).
    pub async fn get_or_fetch<E, F>(
        &self,
        upstream: &str,
        scope: &str,
        fill: F,
    ) -> Result<Token, Arc<E>>
    where
        F: Future<Output = Result<Token, E>>,
        E: Send + Sync + 'static,
    {
        let key = (upstream.to_owned(), scope.to_owned());
        if let Some(t) = self.inner.get(&key).await {
            self.record("hit");
            return Ok(t);
        }
        self.record("miss");
        self.inner.try_get_with(key, fill).await
    }

    /// Forgets a token the upstream refused.
    pub async fn invalidate(&self, upstream: &str, scope: &str) {
        self.inner
            .invalidate(&(upstream.to_owned(), scope.to_owned()))
            .await;
    }

    fn record(&self, result: &str) {
        self.metrics
            .cache_requests
            .with_label_values(&["token", result])
            .inc();
    }
}

// === verdicts ===

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

/// Verdicts (verified ones for `verdict_ttl`, unverified ones for `failure_ttl`) and the
/// children of verified indexes.
pub struct VerdictCache {
    verdicts: Cache<VerdictKey, Arc<Verdict>>,
    children: Cache<VerdictKey, Arc<Verdict>>,
    metrics: Arc<Metrics>,
}

impl VerdictCache {
    pub fn new(settings: &CacheSettings, metrics: Arc<Metrics>) -> VerdictCache {
        let expiry = || VerdictExpiry {
            verified: settings.verdict_ttl,
            unverified: settings.failure_ttl,
        };
        VerdictCache {
            verdicts: Cache::builder()
                .max_capacity(settings.max_verdicts)
                .expire_after(expiry())
                .build(),
            children: Cache::builder()
                .max_capacity(settings.max_verdicts)
                .expire_after(expiry())
                .build(),
            metrics,
        }
    }

    pub async fn get(&self, key: &VerdictKey) -> Option<Arc<Verdict>> {
        let v = self.verdicts.get(key).await;
        self.record("verdict", v.is_some());
        v
    }

    /// The verdict of a child manifest covered by a verified index, if any.
    pub async fn covered_child(&self, key: &VerdictKey) -> Option<Arc<Verdict>> {
        let v = self.children.get(key).await;
        if v.is_some() {
            self.record("index_child", true);
        }
        v
    }

    /// Covers `key` unless it is covered already (a lookup is cheaper than an insert).
    pub async fn cover_child(&self, key: VerdictKey, verdict: &Arc<Verdict>) {
        if !self.children.contains_key(&key) {
            self.children.insert(key, verdict.clone()).await;
        }
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
        self.verdicts.try_get_with(key, compute).await
    }

    /// How many verdicts are held (approximate; for tests and benchmarks).
    pub async fn entry_count(&self) -> u64 {
        self.verdicts.run_pending_tasks().await;
        self.verdicts.entry_count()
    }

    fn record(&self, cache: &str, hit: bool) {
        self.metrics
            .cache_requests
            .with_label_values(&[cache, if hit { "hit" } else { "miss" }])
            .inc();
    }
}

// === manifests ===

/// A manifest of one repository of one upstream, by digest.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct ContentKey {
    image: ImageName,
    digest: Digest,
}

/// A tag of one repository, as resolved for one `Accept` (registries answer a tag with the
/// manifest type the client accepts).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct TagKey {
    image: ImageName,
    tag: Tag,
    accept: Arc<str>,
}

/// The last resolution of a tag that passed the gate.
#[derive(Debug, Clone)]
pub struct TagEntry {
    pub digest: Digest,
    pub resolved: Instant,
}

/// Manifest bytes by digest (they never change, so a hit needs no upstream request) and tag
/// resolutions. Bytes are only ever inserted after their digest was proven.
pub struct ManifestCache {
    content: Cache<ContentKey, FetchedManifest>,
    tags: Cache<TagKey, TagEntry>,
    metrics: Arc<Metrics>,
}

/// Bookkeeping bytes per cached manifest on top of its body.
const ENTRY_OVERHEAD: u32 = 256;

impl ManifestCache {
    pub fn new(settings: &CacheSettings, metrics: Arc<Metrics>) -> ManifestCache {
        ManifestCache {
            content: Cache::builder()
                .max_capacity(settings.manifest_bytes)
                .weigher(|_k: &ContentKey, m: &FetchedManifest| {
                    u32::try_from(m.bytes.len())
                        .unwrap_or(u32::MAX)
                        .saturating_add(ENTRY_OVERHEAD)
                })
                // A manifest deleted upstream stops being served within a day.
                .time_to_live(Duration::from_secs(24 * 3600))
                .build(),
            tags: Cache::builder()
                .max_capacity(settings.max_verdicts)
                .time_to_live(Duration::from_secs(24 * 3600))
                .build(),
            metrics,
        }
    }

    pub async fn get(&self, image: &ImageName, digest: &Digest) -> Option<FetchedManifest> {
        let key = ContentKey {
            image: image.clone(),
            digest: digest.clone(),
        };
        let m = self.content.get(&key).await;
        self.record("manifest", m.is_some());
        m
    }

    /// The cached manifest, or the result of `fetch`, run once for concurrent callers (a
    /// burst of cold pulls of one digest sends one request upstream). Errors are not cached.
    pub async fn get_or_fetch<E, F>(
        &self,
        image: &ImageName,
        digest: &Digest,
        fetch: F,
    ) -> Result<FetchedManifest, Arc<E>>
    where
        F: Future<Output = Result<FetchedManifest, E>>,
        E: Send + Sync + 'static,
    {
        let key = ContentKey {
            image: image.clone(),
            digest: digest.clone(),
        };
        if let Some(m) = self.content.get(&key).await {
            self.record("manifest", true);
            return Ok(m);
        }
        self.record("manifest", false);
        self.content.try_get_with(key, fetch).await
    }

    pub async fn insert(&self, image: &ImageName, m: &FetchedManifest) {
        let key = ContentKey {
            image: image.clone(),
            digest: m.digest.clone(),
        };
        self.content.insert(key, m.clone()).await;
    }

    pub async fn tag(&self, image: &ImageName, tag: &Tag, accept: &str) -> Option<TagEntry> {
        let t = self.tags.get(&tag_key(image, tag, accept)).await;
        self.record("tag", t.is_some());
        t
    }

    pub async fn set_tag(&self, image: &ImageName, tag: &Tag, accept: &str, digest: &Digest) {
        let entry = TagEntry {
            digest: digest.clone(),
            resolved: Instant::now(),
        };
        self.tags.insert(tag_key(image, tag, accept), entry).await;
    }

    fn record(&self, cache: &str, hit: bool) {
        self.metrics
            .cache_requests
            .with_label_values(&[cache, if hit { "hit" } else { "miss" }])
            .inc();
    }
}

fn tag_key(image: &ImageName, tag: &Tag, accept: &str) -> TagKey {
    TagKey {
        image: image.clone(),
        tag: tag.clone(),
        accept: accept.into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    #[tokio::test]
    async fn concurrent_misses_fill_once_and_errors_are_not_cached() {
        let cache = TokenCache::new(Arc::new(Metrics::new()));
        let fills = Arc::new(AtomicUsize::new(0));
        let mut tasks = Vec::new();
        for _ in 0..50 {
            let cache = cache.clone();
            let fills = fills.clone();
            tasks.push(tokio::spawn(async move {
                cache
                    .get_or_fetch("u", "s", async {
                        fills.fetch_add(1, Ordering::SeqCst);
                        tokio::time::sleep(Duration::from_millis(20)).await;
                        Ok::<_, ()>(Token {
                            value: "t".into(),
                            ttl: Duration::from_secs(60),
                        })
                    })
                    .await
                    .map(|t| t.value.to_string())
            }));
        }
        for t in tasks {
            assert_eq!(t.await.unwrap().unwrap(), "t");
        }
        assert_eq!(fills.load(Ordering::SeqCst), 1);

        let r = cache
            .get_or_fetch("u", "other", async { Err::<Token, _>("boom") })
            .await;
        assert!(r.is_err());
        let r = cache
            .get_or_fetch("u", "other", async {
                Ok::<_, &str>(Token {
                    value: "fresh".into(),
                    ttl: Duration::from_secs(60),
                })
            })
            .await;
        assert_eq!(&*r.unwrap().value, "fresh");
    }

    #[tokio::test]
    async fn tokens_expire_after_their_ttl() {
        let cache = TokenCache::new(Arc::new(Metrics::new()));
        let short = Token {
            value: "a".into(),
            ttl: Duration::from_millis(50),
        };
        cache
            .get_or_fetch("u", "s", async { Ok::<_, ()>(short) })
            .await
            .unwrap();
        tokio::time::sleep(Duration::from_millis(120)).await;
        let t = cache
            .get_or_fetch("u", "s", async {
                Ok::<_, ()>(Token {
                    value: "b".into(),
                    ttl: Duration::from_secs(60),
                })
            })
            .await
            .unwrap();
        assert_eq!(&*t.value, "b");
    }
}
