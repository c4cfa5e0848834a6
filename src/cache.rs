//! The one in-memory cache helper every cache of the proxy is built on: a moka cache under a
//! fixed metric name, whose lookups count as hits and misses in `portcullis_cache_requests_total`,
//! and whose fills run once for concurrent callers (`try_get_with`), so a burst of cold requests
//! causes one upstream request or one verification, not one per client. Errors are never cached.
//!
//! This module owns no cache: each lives with the module that fills it (upstream tokens in
//! `upstream`, verdicts and covered children in `signature`, manifest bytes and tag resolutions
//! in `registry_api::manifest`). It knows nothing about what is cached nor how it is computed.

use std::future::Future;
use std::hash::Hash;
use std::sync::Arc;

use crate::metrics::Metrics;

/// Which lookups count in the cache metric.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Counted {
    HitsAndMisses,
    /// For a cache most lookups are expected to miss (the children of verified indexes): a miss
    /// there says nothing, so only hits are counted.
    HitsOnly,
}

/// A moka cache with its metric name.
pub struct Cached<K, V> {
    inner: moka::future::Cache<K, V>,
    name: &'static str,
    counted: Counted,
    metrics: Arc<Metrics>,
}

impl<K, V> Clone for Cached<K, V> {
    fn clone(&self) -> Self {
        Cached {
            inner: self.inner.clone(),
            name: self.name,
            counted: self.counted,
            metrics: self.metrics.clone(),
        }
    }
}

impl<K, V> Cached<K, V>
where
    K: Hash + Eq + Send + Sync + 'static,
    V: Clone + Send + Sync + 'static,
{
    /// `name` is the `cache` label of the metric; `inner` carries its bounds and expiry.
    pub fn new(
        name: &'static str,
        counted: Counted,
        inner: moka::future::Cache<K, V>,
        metrics: Arc<Metrics>,
    ) -> Cached<K, V> {
        Cached {
            inner,
            name,
            counted,
            metrics,
        }
    }

    pub async fn get(&self, key: &K) -> Option<V> {
        let v = self.inner.get(key).await;
        self.record(v.is_some());
        v
    }

    /// The cached value, not counted in the metric (for bookkeeping, not a request's lookup).
    pub async fn peek(&self, key: &K) -> Option<V> {
        self.inner.get(key).await
    }

    /// The cached value, or the result of `fill`, run once for concurrent callers. An error is
    /// handed to every waiting caller and not cached.
    pub async fn get_or_fetch<E, F>(&self, key: K, fill: F) -> Result<V, Arc<E>>
    where
        F: Future<Output = Result<V, E>>,
        E: Send + Sync + 'static,
    {
        if let Some(v) = self.get(&key).await {
            return Ok(v);
        }
        self.inner.try_get_with(key, fill).await
    }

    /// The fill of [`Cached::get_or_fetch`] alone, run once for concurrent callers: for a caller
    /// that looked the key up (and counted the lookup) already.
    pub async fn fill<E, F>(&self, key: K, fill: F) -> Result<V, Arc<E>>
    where
        F: Future<Output = Result<V, E>>,
        E: Send + Sync + 'static,
    {
        self.inner.try_get_with(key, fill).await
    }

    pub async fn insert(&self, key: K, value: V) {
        self.inner.insert(key, value).await;
    }

    /// Inserts unless the key is present: on a path warm requests take every time, a lookup is
    /// cheaper than an insert (moka housekeeping runs on every write).
    pub async fn insert_if_absent(&self, key: K, value: V) {
        if !self.inner.contains_key(&key) {
            self.inner.insert(key, value).await;
        }
    }

    pub async fn invalidate(&self, key: &K) {
        self.inner.invalidate(key).await;
    }

    /// How many entries are held (approximate; for tests and benchmarks).
    pub async fn entry_count(&self) -> u64 {
        self.inner.run_pending_tasks().await;
        self.inner.entry_count()
    }

    fn record(&self, hit: bool) {
        if !hit && self.counted == Counted::HitsOnly {
            return;
        }
        self.metrics
            .cache_requests
            .with_label_values(&[self.name, if hit { "hit" } else { "miss" }])
            .inc();
    }
}
