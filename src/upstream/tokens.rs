//! Upstream bearer tokens: the `Authorization` an upstream asked for, and for `Bearer` the token
//! fetched from the challenge's realm (anonymously, or with the upstream's credentials when the
//! realm may receive them, [`super::auth::RealmHosts`]), cached per (upstream, scope) until
//! shortly before it expires (each token carries its own lifetime, from the token service's
//! `expires_in`). Concurrent requests that need the same token make one token request. Parsing
//! challenges and token answers is [`super::auth`]'s.

use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use http::{HeaderMap, HeaderValue, Method, StatusCode, Uri};
use moka::Expiry;
use url::Url;

use super::auth::{self, Challenge, Scheme};
use super::{Kind, Upstream, UpstreamError};
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

// === impl Upstream ===

impl Upstream {
    pub(super) async fn authorization(
        &self,
        scheme: &Scheme,
        scope: &str,
        challenge: Option<&Challenge>,
    ) -> Result<Option<HeaderValue>, UpstreamError> {
        match scheme {
            Scheme::Basic => Ok(self.credentials.as_ref().map(auth::basic_header)),
            Scheme::Bearer { realm, service } => {
                // The registry's own scope wins when it names one for this request.
                let wanted = challenge
                    .and_then(|c| c.scope.clone())
                    .unwrap_or_else(|| scope.to_owned());
                let token = self
                    .tokens
                    .get_or_fetch(
                        &self.key,
                        scope,
                        self.fetch_token(realm, service.as_deref(), &wanted),
                    )
                    .await
                    .map_err(|e| match &*e {
                        UpstreamError::TokenDenied {
                            upstream,
                            status,
                            anonymous,
                        } => UpstreamError::TokenDenied {
                            upstream: upstream.clone(),
                            status: *status,
                            anonymous: *anonymous,
                        },
                        other => UpstreamError::Auth {
                            upstream: self.key.clone(),
                            reason: other.to_string(),
                        },
                    })?;
                auth::bearer_header(&token.value)
                    .map(Some)
                    .ok_or_else(|| UpstreamError::Auth {
                        upstream: self.key.clone(),
                        reason: "token service returned a token that is not a valid header value"
                            .to_owned(),
                    })
            }
        }
    }

    async fn fetch_token(
        &self,
        realm: &Url,
        service: Option<&str>,
        scope: &str,
    ) -> Result<Token, UpstreamError> {
        let mut url = realm.clone();
        {
            let mut q = url.query_pairs_mut();
            if let Some(s) = service {
                q.append_pair("service", s);
            }
            if !scope.is_empty() {
                q.append_pair("scope", scope);
            }
        }
        let auth_err = |reason: String| UpstreamError::Auth {
            upstream: self.key.clone(),
            reason,
        };
        let uri: Uri = url
            .as_str()
            .parse()
            .map_err(|_| auth_err("token realm is not a valid URI".into()))?;
        // Credentials go to the upstream's own host and the realms its configuration names, never
        // to a host a challenge made up: elsewhere the token is asked for anonymously.
        let withheld = self.credentials.is_some() && !self.realms.allows(realm);
        if withheld {
            tracing::warn!(
                upstream = %self.key,
                realm_host = %auth::host_port(realm),
                "token realm is not the upstream's host nor listed in token_realms: asking for an anonymous token"
            );
        }
        let basic = match withheld {
            true => None,
            false => self.credentials.as_ref().map(auth::basic_header),
        };
        let resp = self
            .send_once(
                Kind::Token,
                &Method::GET,
                &uri,
                &HeaderMap::new(),
                basic.as_ref(),
            )
            .await?;
        if matches!(
            resp.status(),
            StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN
        ) {
            if withheld {
                return Err(auth_err(format!(
                    "the token realm host {} is neither the upstream's host nor listed in its \
                     token_realms, so the credentials were not sent, and an anonymous token was \
                     refused ({})",
                    auth::host_port(realm),
                    resp.status()
                )));
            }
            return Err(UpstreamError::TokenDenied {
                upstream: self.key.clone(),
                status: resp.status(),
                anonymous: self.credentials.is_none(),
            });
        }
        if !resp.status().is_success() {
            return Err(auth_err(format!(
                "token service answered {}",
                resp.status()
            )));
        }
        let (_, bytes) = self.read_body(resp, self.limits.max_token_bytes).await?;
        let parsed: auth::TokenResponse = serde_json::from_slice(&bytes)
            .map_err(|e| auth_err(format!("token response is not JSON: {e}")))?;
        let (value, ttl) = parsed
            .into_token()
            .ok_or_else(|| auth_err("token response holds no token".into()))?;
        Ok(Token {
            value: value.into(),
            ttl,
        })
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
