//! Talking to upstream registries: one [`Upstream`] per configured registry, each with its own
//! pooled hyper client (rustls; system + webpki roots plus an optional CA bundle), authentication
//! ([`auth`]), time limits on every wait, and metrics on every request.
//!
//! [`mapping`] turns a client's request path into an upstream and a canonical image name. This
//! module only ever connects to hosts in the configuration, to the token realm such a host names
//! in its challenge (with the upstream's credentials only when the realm is the upstream's own
//! host or one its configuration lists, [`auth::RealmHosts`]), and to the storage hosts it
//! redirects blob downloads to (never with registry credentials). Every exchange has a deadline
//! for the whole of it (`timeouts.exchange`), carried on the response ([`ExchangeDeadline`]) to
//! the body reads. It knows nothing about manifests or policy.

pub mod auth;
pub mod body;
pub mod explain;
pub mod mapping;
pub mod tokens;

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::header::{AUTHORIZATION, LOCATION, USER_AGENT, WWW_AUTHENTICATE};
use http::{HeaderMap, HeaderValue, Method, Request, Response, StatusCode, Uri};
use http_body_util::Empty;
use hyper::body::Incoming;
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::{connect::HttpConnector, Client};
use hyper_util::rt::{TokioExecutor, TokioTimer};
use rustls::RootCertStore;
use url::Url;

use crate::config::{Config, Credentials, Limits, Timeouts, UpstreamConfig};
use crate::metrics::Metrics;
use crate::oci::RepoName;
use auth::Scheme;
use body::{BodyError, Deadline};
use tokens::TokenCache;

type HttpClient = Client<HttpsConnector<HttpConnector>, Empty<Bytes>>;

const AGENT: &str = concat!("portcullis/", env!("CARGO_PKG_VERSION"));

/// What an upstream request is for; a metric label.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Manifest,
    Blob,
    Tags,
    Referrers,
    Token,
    /// Signature discovery: `.sig` manifests, signature layers, bundle referrers.
    Signature,
}

impl Kind {
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Manifest => "manifest",
            Kind::Blob => "blob",
            Kind::Tags => "tags",
            Kind::Referrers => "referrers",
            Kind::Token => "token",
            Kind::Signature => "signature",
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum UpstreamError {
    #[error("upstream {upstream}: request failed: {reason}")]
    Transport { upstream: String, reason: String },
    #[error("upstream {upstream}: no response within {after:?}")]
    Timeout { upstream: String, after: Duration },
    #[error("upstream {upstream}: {error}")]
    Body { upstream: String, error: BodyError },
    #[error("upstream {upstream}: authentication failed: {reason}")]
    Auth { upstream: String, reason: String },
    #[error("upstream {upstream}: token service refused {} ({status})", if *anonymous { "anonymous access" } else { "the configured credentials" })]
    TokenDenied {
        upstream: String,
        status: StatusCode,
        anonymous: bool,
    },
    #[error("upstream {upstream}: bad redirect: {reason}")]
    Redirect { upstream: String, reason: String },
    #[error("upstream {upstream}: answered {status}{}", message.as_deref().map(|m| format!(": {m}")).unwrap_or_default())]
    Status {
        upstream: String,
        status: StatusCode,
        /// The first OCI error code of the upstream's error body, when it sent one.
        code: Option<String>,
        message: Option<String>,
        retry_after: Option<HeaderValue>,
    },
}

impl UpstreamError {
    /// Whether the upstream is unavailable: everything but a refusal of the credentials, which
    /// is an answer (the upstream was reached and said no).
    pub fn is_unavailable(&self) -> bool {
        !matches!(self, UpstreamError::TokenDenied { .. })
    }

    pub fn is_timeout(&self) -> bool {
        matches!(
            self,
            UpstreamError::Timeout { .. }
                | UpstreamError::Body {
                    error: BodyError::Idle { .. } | BodyError::Deadline { .. },
                    ..
                }
        )
    }
}

/// The deadline of the exchange a response belongs to, set when its request was sent: body reads
/// of that response stop there. Kept in the response's extensions.
#[derive(Debug, Clone, Copy)]
pub struct ExchangeDeadline(pub Deadline);

/// One request to an upstream registry.
pub struct UpstreamRequest<'a> {
    pub kind: Kind,
    pub method: Method,
    /// The repository, for the token scope; `None` for repository-less endpoints.
    pub repo: Option<&'a RepoName>,
    /// Path and query, starting with `/v2/`.
    pub path_and_query: String,
    pub headers: HeaderMap,
}

/// A configured upstream registry.
pub struct Upstream {
    pub key: String,
    base: Url,
    credentials: Option<Credentials>,
    /// Token realm hosts that may receive `credentials`.
    realms: auth::RealmHosts,
    client: HttpClient,
    learned: auth::Learned,
    tokens: TokenCache,
    pub timeouts: Timeouts,
    pub limits: Limits,
    /// See `UpstreamConfig::tag_ttl`.
    pub tag_ttl: Option<Duration>,
    /// See `UpstreamConfig::serve_stale_tags`.
    pub serve_stale_tags: bool,
    metrics: Arc<Metrics>,
}

// === impl Upstreams ===

impl mapping::Upstreams {
    /// A client for every configured upstream, sharing one token cache.
    pub fn from_config(config: &Config, metrics: Arc<Metrics>) -> Result<Self, UpstreamError> {
        let tokens = TokenCache::new(metrics.clone());
        let roots = base_roots();
        let mut by_key = std::collections::BTreeMap::new();
        for (key, cfg) in &config.upstreams {
            let up = Upstream::new(
                key,
                cfg,
                &roots,
                &config.timeouts,
                &config.limits,
                tokens.clone(),
                metrics.clone(),
            )?;
            by_key.insert(key.clone(), Arc::new(up));
        }
        Ok(mapping::Upstreams::new(
            by_key,
            config.default_upstream.clone(),
        ))
    }
}

// === impl Upstream ===

impl Upstream {
    pub fn new(
        key: &str,
        cfg: &UpstreamConfig,
        base_roots: &RootCertStore,
        timeouts: &Timeouts,
        limits: &Limits,
        tokens: TokenCache,
        metrics: Arc<Metrics>,
    ) -> Result<Upstream, UpstreamError> {
        let mut roots = base_roots.clone();
        for cert in &cfg.ca_certs {
            roots
                .add(cert.clone())
                .map_err(|e| UpstreamError::Transport {
                    upstream: key.to_owned(),
                    reason: format!("CA certificate from ca_file is unusable: {e}"),
                })?;
        }
        let tls = rustls::ClientConfig::builder_with_provider(Arc::new(
            rustls::crypto::aws_lc_rs::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .map_err(|e| UpstreamError::Transport {
            upstream: key.to_owned(),
            reason: format!("TLS set-up: {e}"),
        })?
        .with_root_certificates(roots)
        .with_no_client_auth();

        let mut http = HttpConnector::new();
        http.enforce_http(false);
        http.set_connect_timeout(Some(timeouts.connect));
        http.set_nodelay(true);
        http.set_keepalive(Some(Duration::from_secs(60)));
        let connector = hyper_rustls::HttpsConnectorBuilder::new()
            .with_tls_config(tls)
            .https_or_http()
            .enable_all_versions()
            .wrap_connector(http);
        let client = Client::builder(TokioExecutor::new())
            .pool_idle_timeout(timeouts.pool_idle)
            .pool_timer(TokioTimer::new())
            .pool_max_idle_per_host(64)
            .timer(TokioTimer::new())
            .build(connector);
        Ok(Upstream {
            key: key.to_owned(),
            realms: auth::RealmHosts::new(&cfg.url, &cfg.token_realms),
            base: cfg.url.clone(),
            credentials: cfg.credentials.clone(),
            client,
            learned: auth::Learned::default(),
            tokens,
            timeouts: timeouts.clone(),
            limits: limits.clone(),
            tag_ttl: cfg.tag_ttl,
            serve_stale_tags: cfg.serve_stale_tags,
            metrics,
        })
    }

    fn is_https(&self) -> bool {
        self.base.scheme() == "https"
    }

    /// Sends a request, authenticating as the upstream asks: a cached token or basic credentials
    /// up front when the scheme is known, else one retry after a 401 challenge.
    pub async fn send(
        &self,
        req: UpstreamRequest<'_>,
    ) -> Result<Response<Incoming>, UpstreamError> {
        // The token exchange and a retry after a challenge count against the same deadline.
        let deadline = Deadline::after(self.timeouts.exchange);
        let mut resp = tokio::time::timeout_at(deadline.at, self.send_authenticated(req))
            .await
            .map_err(|_| UpstreamError::Timeout {
                upstream: self.key.clone(),
                after: deadline.budget,
            })??;
        resp.extensions_mut().insert(ExchangeDeadline(deadline));
        Ok(resp)
    }

    async fn send_authenticated(
        &self,
        req: UpstreamRequest<'_>,
    ) -> Result<Response<Incoming>, UpstreamError> {
        let uri = self.uri(&req.path_and_query)?;
        let scope = req.repo.map(|r| auth::pull_scope(r.as_str()));
        let scope = scope.as_deref().unwrap_or("");

        let authorization = match self.learned.get() {
            Some(scheme) => self.authorization(&scheme, scope, None).await?,
            None => None,
        };
        let resp = self
            .send_once(
                req.kind,
                &req.method,
                &uri,
                &req.headers,
                authorization.as_ref(),
            )
            .await?;
        if resp.status() != StatusCode::UNAUTHORIZED {
            return Ok(resp);
        }

        let challenge = match auth::parse_challenge(
            resp.headers().get(WWW_AUTHENTICATE),
            self.is_https(),
        ) {
            Ok(c) => c,
            Err(e) => {
                tracing::debug!(upstream = %self.key, error = %e, "401 without a usable challenge");
                return Ok(resp);
            }
        };
        if challenge.scheme == Scheme::Basic && self.credentials.is_none() {
            return Ok(resp);
        }
        drop(resp);
        self.learned.set(challenge.scheme.clone());
        if matches!(challenge.scheme, Scheme::Bearer { .. }) {
            self.tokens.invalidate(&self.key, scope).await;
        }
        let authorization = self
            .authorization(&challenge.scheme, scope, Some(&challenge))
            .await?;
        self.send_once(
            req.kind,
            &req.method,
            &uri,
            &req.headers,
            authorization.as_ref(),
        )
        .await
    }

    /// Follows the redirects of a blob download (to storage hosts such as S3 or a CDN), without
    /// registry credentials. A `HEAD` is followed with a `GET` whose body is dropped, because
    /// presigned storage URLs are only valid for the method they were signed for.
    pub async fn follow_redirects(
        &self,
        mut resp: Response<Incoming>,
        headers: &HeaderMap,
    ) -> Result<Response<Incoming>, UpstreamError> {
        let mut current = self.base.clone();
        for _ in 0..self.limits.max_redirects {
            if !resp.status().is_redirection() || resp.status() == StatusCode::NOT_MODIFIED {
                return Ok(resp);
            }
            let location = resp
                .headers()
                .get(LOCATION)
                .and_then(|l| l.to_str().ok())
                .ok_or_else(|| self.redirect_error("redirect without a Location header"))?;
            let next = current
                .join(location)
                .map_err(|_| self.redirect_error("Location is not a URL"))?;
            match next.scheme() {
                "https" => {}
                "http" if !self.is_https() => {}
                _ => {
                    return Err(self
                        .redirect_error(&format!("refusing redirect to a {} URL", next.scheme())))
                }
            }
            let uri: Uri = next
                .as_str()
                .parse()
                .map_err(|_| self.redirect_error("Location is not a valid URI"))?;
            drop(resp);
            resp = self
                .send_once(Kind::Blob, &Method::GET, &uri, headers, None)
                .await?;
            current = next;
        }
        if resp.status().is_redirection() {
            return Err(self.redirect_error(&format!(
                "more than {} redirects",
                self.limits.max_redirects
            )));
        }
        Ok(resp)
    }

    /// Reads a small body whole, bounded by `limit` (checked against `Content-Length` first).
    pub async fn read_body(
        &self,
        resp: Response<Incoming>,
        limit: usize,
    ) -> Result<(http::response::Parts, Bytes), UpstreamError> {
        let (parts, body) = resp.into_parts();
        let declared = parts
            .headers
            .get(http::header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u64>().ok());
        if declared.is_some_and(|n| n > limit as u64) {
            return Err(self.body_error(BodyError::TooLarge { limit }));
        }
        let bytes = body::read_bounded(
            body,
            limit,
            self.timeouts.read_idle,
            self.deadline_of(&parts),
        )
        .await
        .map_err(|e| self.body_error(e))?;
        Ok((parts, bytes))
    }

    /// Turns an unexpected upstream answer into an error, keeping the OCI error code and message
    /// of its body when it has one (read bounded; a body that does not parse is ignored).
    pub async fn status_error(&self, resp: Response<Incoming>) -> UpstreamError {
        let status = resp.status();
        let retry_after = resp.headers().get(http::header::RETRY_AFTER).cloned();
        let (code, message) = match self.read_body(resp, self.limits.max_token_bytes).await {
            Ok((_, bytes)) => first_oci_error(&bytes),
            Err(_) => (None, None),
        };
        UpstreamError::Status {
            upstream: self.key.clone(),
            status,
            code,
            message,
            retry_after,
        }
    }

    /// The deadline of the exchange a response came from (`send` and `send_once` put it there;
    /// a response without one gets the whole budget from now).
    pub fn deadline_of(&self, parts: &http::response::Parts) -> Deadline {
        match parts.extensions.get::<ExchangeDeadline>() {
            Some(d) => d.0,
            None => Deadline::after(self.timeouts.exchange),
        }
    }

    pub fn body_error(&self, error: BodyError) -> UpstreamError {
        UpstreamError::Body {
            upstream: self.key.clone(),
            error,
        }
    }

    pub fn record_blob_bytes(&self) -> impl Fn(usize) + Send + Sync + 'static {
        let counter = self.metrics.blob_bytes.with_label_values(&[&self.key]);
        move |n| counter.inc_by(n as u64)
    }

    fn redirect_error(&self, reason: &str) -> UpstreamError {
        UpstreamError::Redirect {
            upstream: self.key.clone(),
            reason: reason.to_owned(),
        }
    }

    fn uri(&self, path_and_query: &str) -> Result<Uri, UpstreamError> {
        let base = self.base.as_str().trim_end_matches('/');
        format!("{base}{path_and_query}")
            .parse()
            .map_err(|_| UpstreamError::Transport {
                upstream: self.key.clone(),
                reason: "request URI is not valid".to_owned(),
            })
    }

    /// One request with the response-header timeout, recorded in metrics.
    async fn send_once(
        &self,
        kind: Kind,
        method: &Method,
        uri: &Uri,
        headers: &HeaderMap,
        authorization: Option<&HeaderValue>,
    ) -> Result<Response<Incoming>, UpstreamError> {
        let mut builder = Request::builder().method(method.clone()).uri(uri.clone());
        for (name, value) in headers {
            builder = builder.header(name, value);
        }
        builder = builder.header(USER_AGENT, AGENT);
        if let Some(a) = authorization {
            builder = builder.header(AUTHORIZATION, a.clone());
        }
        let request = builder
            .body(Empty::new())
            .map_err(|e| UpstreamError::Transport {
                upstream: self.key.clone(),
                reason: format!("building request: {e}"),
            })?;

        let started = Instant::now();
        let outcome =
            tokio::time::timeout(self.timeouts.response_header, self.client.request(request)).await;
        let labels_status;
        let result = match outcome {
            Err(_) => {
                labels_status = "timeout".to_owned();
                Err(UpstreamError::Timeout {
                    upstream: self.key.clone(),
                    after: self.timeouts.response_header,
                })
            }
            Ok(Err(e)) => {
                labels_status = "error".to_owned();
                Err(UpstreamError::Transport {
                    upstream: self.key.clone(),
                    reason: error_chain(&e),
                })
            }
            Ok(Ok(mut resp)) => {
                labels_status = resp.status().as_u16().to_string();
                // A response got through `send` carries that exchange's earlier deadline instead.
                let deadline = Deadline {
                    at: tokio::time::Instant::from_std(started) + self.timeouts.exchange,
                    budget: self.timeouts.exchange,
                };
                resp.extensions_mut().insert(ExchangeDeadline(deadline));
                Ok(resp)
            }
        };
        self.metrics
            .upstream_requests
            .with_label_values(&[&self.key, kind.as_str(), &labels_status])
            .inc();
        self.metrics
            .upstream_duration
            .with_label_values(&[&self.key, kind.as_str()])
            .observe(started.elapsed().as_secs_f64());
        // The authorization scheme only, never its value.
        let credentials = authorization
            .and_then(|a| a.to_str().ok())
            .and_then(|a| a.split_once(' '))
            .map_or("none", |(scheme, _)| {
                if scheme.eq_ignore_ascii_case("basic") {
                    "basic"
                } else if scheme.eq_ignore_ascii_case("bearer") {
                    "bearer"
                } else {
                    "other"
                }
            });
        tracing::debug!(
            upstream = %self.key,
            kind = kind.as_str(),
            %method,
            path = uri.path(),
            status = %labels_status,
            credentials,
            elapsed_ms = started.elapsed().as_millis() as u64,
            "upstream exchange"
        );
        result
    }
}

/// `e: cause: cause` — hyper's top-level errors say little on their own.
fn error_chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut out = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        out.push_str(": ");
        out.push_str(&s.to_string());
        source = s.source();
    }
    out
}

/// The first `{code, message}` of an OCI error body, if the body is one.
pub fn first_oci_error(bytes: &[u8]) -> (Option<String>, Option<String>) {
    #[derive(serde::Deserialize)]
    struct Body {
        errors: Vec<Item>,
    }
    #[derive(serde::Deserialize)]
    struct Item {
        code: Option<String>,
        message: Option<String>,
    }
    match serde_json::from_slice::<Body>(bytes) {
        Ok(b) => match b.errors.into_iter().next() {
            Some(i) => (i.code, i.message.map(|m| m.chars().take(300).collect())),
            None => (None, None),
        },
        Err(_) => (None, None),
    }
}

/// The trust anchors every upstream starts from: webpki's Mozilla roots plus the system store.
pub fn base_roots() -> RootCertStore {
    let mut roots = RootCertStore {
        roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
    };
    let native = rustls_native_certs::load_native_certs();
    let (added, _ignored) = roots.add_parsable_certificates(native.certs);
    tracing::debug!(added, "system CA certificates loaded");
    roots
}
