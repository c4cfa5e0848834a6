//! The registry API clients see: the pull side of the OCI distribution spec, read-only.
//!
//! [`Proxy::handle`] is the per-request pipeline: route → select upstream (addressing) → handler
//! (manifest / blob / tags / referrers) → response, with errors turned into OCI error bodies in
//! one place ([`error::ApiError::into_response`]) and metrics recorded once per request. This
//! module does not open sockets (that is `server`) and does not talk HTTP to upstreams itself
//! (that is `upstream`).

pub mod blob;
pub mod error;
pub mod gate;
pub mod listing;
pub mod manifest;
pub mod routes;

use std::sync::Arc;
use std::time::Instant;

use http::header::{CONTENT_LENGTH, CONTENT_TYPE};
use http::{HeaderMap, HeaderValue, Method, Request, Response, StatusCode};

use crate::auth::Authenticator;
use crate::config::Config;
use crate::metrics::Metrics;
use crate::oci::ImageName;
use crate::policy::{PolicySet, Selection};
use crate::signature::{Engine, TrustRoot};
use crate::upstream::body::{self, ResponseBody};
use crate::upstream::mapping::Upstreams;
use crate::upstream::{Upstream, UpstreamError};
use error::ApiError;
use manifest::cache::ManifestCache;
use routes::{RepoOp, Route};

const API_VERSION: HeaderValue = HeaderValue::from_static("registry/2.0");

/// Shared state of the registry API.
pub struct Proxy {
    pub upstreams: Upstreams,
    pub metrics: Arc<Metrics>,
    pub policies: PolicySet,
    pub engine: Arc<Engine>,
    pub manifests: Arc<ManifestCache>,
    /// Who may pull; `None` when the configuration has no `auth`.
    pub auth: Option<Authenticator>,
}

/// What one request is about, once routed and mapped.
pub struct RequestCtx {
    pub method: Method,
    pub upstream: Arc<Upstream>,
    pub image: ImageName,
    pub headers: HeaderMap,
    /// The client's request path (for rewriting upstream `Link` headers).
    pub path: String,
    /// The client's `ns` query parameter, kept on rewritten links.
    pub ns: Option<String>,
    pub query: Vec<(String, String)>,
    /// The rule that applies to this image and what it needs to decide.
    pub gate: gate::Gate,
    pub manifests: Arc<ManifestCache>,
}

impl RequestCtx {
    pub fn query(&self, key: &str) -> Option<&str> {
        self.query
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }
}

// === impl Proxy ===

impl Proxy {
    /// Answers one client request. Never fails: errors become OCI error responses here.
    pub async fn handle<B>(self: Arc<Self>, req: Request<B>) -> Response<ResponseBody> {
        let started = Instant::now();
        let method = req.method().clone();
        let path = req.uri().path().to_owned();
        let route = routes::parse(&path);
        let label = route.label();

        let mut resp = match self.dispatch(&req, route).await {
            Ok(resp) => resp,
            Err(e) => {
                let (status, _) = e.status_and_code();
                if status.is_server_error() {
                    tracing::warn!(%method, route = label, error = %e, "request failed");
                } else {
                    tracing::debug!(%method, route = label, error = %e, "request refused");
                }
                e.into_response()
            }
        };
        resp.headers_mut()
            .insert("docker-distribution-api-version", API_VERSION);

        self.metrics
            .http_requests
            .with_label_values(&[label, method_label(&method), resp.status().as_str()])
            .inc();
        self.metrics
            .http_duration
            .with_label_values(&[label])
            .observe(started.elapsed().as_secs_f64());
        resp
    }

    async fn dispatch<B>(
        &self,
        req: &Request<B>,
        route: Route<'_>,
    ) -> Result<Response<ResponseBody>, ApiError> {
        let method = req.method();
        let read_only = *method == Method::GET || *method == Method::HEAD;
        let unsupported = || ApiError::Unsupported {
            method: method.to_string(),
            route: route.label(),
        };
        // Every route answers an unauthenticated client with the challenge, `/v2/` included, as
        // registries do: clients learn from it that they must authenticate.
        let user = match &self.auth {
            Some(auth) => Some(
                auth.authenticate(req.headers(), req.extensions())
                    .await
                    .map_err(ApiError::Auth)?,
            ),
            None => None,
        };
        let (name, op) = match route {
            Route::Unknown => return Err(ApiError::NoRoute(truncate(req.uri().path()))),
            Route::Upload => return Err(unsupported()),
            _ if !read_only => return Err(unsupported()),
            Route::Ping => return Ok(ping()),
            Route::Repo { name, op } => (name, op),
        };

        let query: Vec<(String, String)> = req
            .uri()
            .query()
            .map(|q| {
                url::form_urlencoded::parse(q.as_bytes())
                    .into_owned()
                    .collect()
            })
            .unwrap_or_default();
        let ns = query
            .iter()
            .find(|(k, _)| k == "ns")
            .map(|(_, v)| v.clone());
        let (upstream, image) = self.upstreams.resolve(name, ns.as_deref())?;
        if let (Some(auth), Some(user)) = (&self.auth, &user) {
            auth.authorize(user, &image.to_string())
                .map_err(ApiError::Auth)?;
        }
        let gate = self.gate(&upstream, &image);
        let ctx = RequestCtx {
            gate,
            manifests: self.manifests.clone(),
            method: method.clone(),
            upstream,
            image,
            headers: req.headers().clone(),
            path: req.uri().path().to_owned(),
            ns,
            query,
        };
        match op {
            RepoOp::Manifest(reference) => {
                let reference = reference.parse().map_err(ApiError::from_reference)?;
                manifest::handle(&ctx, reference).await
            }
            RepoOp::Blob(digest) => {
                let digest = digest.parse().map_err(ApiError::DigestInvalid)?;
                blob::handle(&ctx, digest).await
            }
            RepoOp::Tags => listing::tags(&ctx).await,
            RepoOp::Referrers(digest) => {
                let digest = digest.parse().map_err(ApiError::DigestInvalid)?;
                listing::referrers(&ctx, digest).await
            }
        }
    }
}

impl Proxy {
    /// Builds the upstream clients, the policy set and the verification engine of a
    /// configuration.
    pub fn from_config(
        config: &Config,
        root: Arc<TrustRoot>,
        metrics: Arc<Metrics>,
    ) -> Result<Proxy, UpstreamError> {
        let engine = Engine::new(
            root,
            &config.cache,
            &config.limits,
            config.timeouts.signature_lookup,
            metrics.clone(),
        );
        let manifests = Arc::new(ManifestCache::new(&config.cache, metrics.clone()));
        let metrics_for_auth = metrics.clone();
        Ok(Proxy {
            upstreams: Upstreams::from_config(config, metrics.clone())?,
            metrics,
            policies: config.policies.clone(),
            engine: Arc::new(engine),
            manifests,
            auth: config
                .auth
                .clone()
                .map(|settings| Authenticator::new(settings, metrics_for_auth)),
        })
    }

    /// The gate for an image: its rule, and where that rule looks for signatures.
    pub fn gate(&self, upstream: &Arc<Upstream>, image: &ImageName) -> gate::Gate {
        let selection = self.policies.select(image);
        let signatures = match &selection {
            Selection::Rule { rule, .. } => rule
                .signature_repository
                .as_ref()
                // The configuration only accepts signature repositories on configured upstreams.
                .and_then(|r| Some((self.upstreams.get(&r.registry)?.clone(), r.repo.clone()))),
            Selection::Unmatched(_) => None,
        }
        .unwrap_or_else(|| (upstream.clone(), image.repo.clone()));
        gate::Gate {
            selection,
            engine: self.engine.clone(),
            metrics: self.metrics.clone(),
            signatures,
            image_upstream: upstream.clone(),
        }
    }
}

fn ping() -> Response<ResponseBody> {
    let mut resp = Response::new(body::full(&b"{}"[..]));
    resp.headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    resp.headers_mut()
        .insert(CONTENT_LENGTH, HeaderValue::from_static("2"));
    *resp.status_mut() = StatusCode::OK;
    resp
}

/// A bounded label for the request method.
fn method_label(m: &Method) -> &'static str {
    match *m {
        Method::GET => "GET",
        Method::HEAD => "HEAD",
        Method::PUT => "PUT",
        Method::POST => "POST",
        Method::PATCH => "PATCH",
        Method::DELETE => "DELETE",
        _ => "other",
    }
}

fn truncate(s: &str) -> String {
    s.chars().take(200).collect()
}

/// The common mapping of an upstream status that is not a success into an error, given what a
/// 404 means for this route.
pub async fn upstream_failure(
    ctx: &RequestCtx,
    resp: Response<hyper::body::Incoming>,
    not_found: impl FnOnce() -> ApiError,
) -> ApiError {
    let status = resp.status();
    let upstream = &ctx.upstream;
    match status {
        StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN => ApiError::UpstreamDenied {
            upstream: upstream.key.clone(),
            image: ctx.image.clone(),
            status,
        },
        StatusCode::TOO_MANY_REQUESTS => ApiError::UpstreamThrottled {
            upstream: upstream.key.clone(),
            image: ctx.image.clone(),
            retry_after: resp.headers().get(http::header::RETRY_AFTER).cloned(),
        },
        StatusCode::NOT_FOUND => match upstream.status_error(resp).await {
            crate::upstream::UpstreamError::Status { code: Some(c), .. } if c == "NAME_UNKNOWN" => {
                ApiError::NameUnknown {
                    image: ctx.image.clone(),
                }
            }
            _ => not_found(),
        },
        _ => ApiError::Upstream(upstream.status_error(resp).await),
    }
}
