//! Upstream bearer tokens, cached per (upstream, scope) until shortly before they expire (each
//! token carries its own lifetime, from the token service's `expires_in`). Concurrent requests
//! that need the same token make one token request. This module does not know how a token is
//! fetched (that is `Upstream::fetch_token`).

use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use moka::Expiry;

use crate::cache::{Cached, Counted};
use crate::metrics::Metrics;

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

/// Bearer tokens keyed by (upstream key, scope), shared by every upstream.
#[derive(Clone)]
pub struct TokenCache {
    inner: Cached<(String, String), Token>,
}

impl TokenCache {
    pub fn new(metrics: Arc<Metrics>) -> TokenCache {
        let inner = moka::future::Cache::builder()
            .max_capacity(10_000)
            .expire_after(TokenExpiry)
            .build();
        TokenCache {
            inner: Cached::new("token", Counted::HitsAndMisses, inner, metrics),
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
        self.inner.get_or_fetch(key, fill).await
    }

    /// Forgets a token the upstream refused.
    pub async fn invalidate(&self, upstream: &str, scope: &str) {
        self.inner
            .invalidate(&(upstream.to_owned(), scope.to_owned()))
            .await;
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
