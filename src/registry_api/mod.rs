//! The registry API clients see: the pull side of the OCI distribution spec, read-only.
//!
//! [`Proxy::handle`] is the per-request pipeline: route → select upstream (addressing) → select
//! rule → handler (manifest / blob / tags / referrers; the manifest handler continues with its
//! own stages, see [`manifest`]) → response, with errors turned into OCI error bodies in one
//! place ([`error::ApiError::into_response`]) and metrics recorded once per request. The stages
//! share one narrow per-request context ([`RequestCtx`], the request's facts); the shared
//! services ([`Proxy`]) are passed apart. This module does not open sockets (that is `server`)
//! and does not talk HTTP to upstreams itself (that is `upstream`).

pub mod blob;
pub mod error;
pub mod feed;
pub mod gate;
pub mod listing;
pub mod manifest;
pub mod record;
pub mod routes;
mod stored_blob;

use std::sync::Arc;
use std::time::Instant;

use http::header::{CONTENT_LENGTH, CONTENT_TYPE};
use http::{HeaderMap, HeaderValue, Method, Request, Response, StatusCode};

use crate::auth::Authenticator;
use crate::config::Config;
use crate::ledger::{Client, Ledger};
use crate::metrics::Metrics;
use crate::oci::ImageName;
use crate::policy::PolicySet;
use crate::signature::discovery::Material;
use crate::signature::{Engine, TrustRoot, VerdictCache};
use crate::upstream::body::{self, ResponseBody};
use crate::upstream::mapping::Upstreams;
use crate::upstream::{Upstream, UpstreamError};
use error::ApiError;
use gate::{AppliedRule, Gate};
use manifest::cache::ManifestCache;
use routes::{RepoOp, Route};

const API_VERSION: HeaderValue = HeaderValue::from_static("registry/2.0");

/// The shared services of the registry API, built once; passed to each stage apart from the
/// request's own facts ([`RequestCtx`]).
pub struct Proxy {
    pub upstreams: Upstreams,
    pub metrics: Arc<Metrics>,
    pub policies: PolicySet,
    pub gate: Gate,
    /// Shared with the proxies of later configurations (reloads).
    pub manifests: Arc<ManifestCache>,
    /// Who may pull; `None` when the configuration has no `auth`.
    pub auth: Option<Authenticator>,
    /// Where pulls are recorded; `None` where nothing is (`portcullis verify`).
    pub ledger: Option<Arc<Ledger>>,
    /// Where served manifests are offered for SBOM ingest; `None` where nothing is
    /// (`portcullis verify`, `inventory.ingest: false`).
    pub ingest: Option<Arc<crate::inventory::ingest::Ingest>>,
    /// The content store; `None` only where nothing is served (`portcullis verify`).
    pub store: Option<Arc<crate::store::Store>>,
}

/// What one request is about, once routed (route stage), mapped to an upstream (upstream stage)
/// and given its rule (rule stage): facts of this request only.
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
    /// The rule that applies to this image, and where it looks for signatures.
    pub rule: AppliedRule,
    /// Who asked: for the ledger.
    pub client: Client,
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
        // Upstream stage: which upstream, which canonical image.
        let (upstream, image) = self.upstreams.resolve(name, ns.as_deref())?;
        // Access: whether the client's user may pull this image.
        if let (Some(auth), Some(user)) = (&self.auth, &user) {
            auth.authorize(user, &image.to_string())
                .map_err(ApiError::Auth)?;
        }
        // Rule stage: which rule, and where its signatures are.
        let rule = self.rule(&upstream, &image);
        let client = Client {
            addr: req
                .extensions()
                .get::<crate::auth::Peer>()
                .map(|p| p.0.ip()),
            user_agent: req.headers().get(http::header::USER_AGENT).cloned(),
            user: user.as_ref().map(|u| Arc::from(u.name())),
        };
        let ctx = RequestCtx {
            rule,
            client,
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
                manifest::handle(self, &ctx, reference).await
            }
            RepoOp::Blob(digest) => {
                let digest = digest.parse().map_err(ApiError::DigestInvalid)?;
                blob::handle(self, &ctx, digest).await
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
    /// configuration, over the content store `material` names (blobs, and the upstream answers
    /// kept there for verifying and serving while an upstream cannot answer).
    pub fn from_config(
        config: &Config,
        root: Arc<TrustRoot>,
        metrics: Arc<Metrics>,
        material: Option<Material>,
    ) -> Result<Proxy, UpstreamError> {
        let store = material.as_ref().map(|m| m.store.clone());
        let verdicts = Arc::new(VerdictCache::new(&config.cache, metrics.clone()));
        let manifests = Arc::new(ManifestCache::new(
            &config.cache,
            metrics.clone(),
            store.clone().map(|s| (s, config.limits.max_manifest_bytes)),
        ));
        let mut proxy = Proxy::build(config, root, verdicts, manifests, material, metrics)?;
        proxy.store = store;
        Ok(proxy)
    }

    /// The proxy for a reloaded configuration: new upstream clients, rules, attestors and trust
    /// root, over this proxy's caches, store and metrics. Cache sizes and lifetimes keep their
    /// values until a restart.
    pub fn reloaded(&self, config: &Config, root: Arc<TrustRoot>) -> Result<Proxy, UpstreamError> {
        let mut proxy = Proxy::build(
            config,
            root,
            self.gate.engine.verdict_cache().clone(),
            self.manifests.clone(),
            self.gate.engine.material().cloned(),
            self.metrics.clone(),
        )?;
        // Opened once at start-up, by the process: `database` and `storage` need a restart.
        proxy.ledger = self.ledger.clone();
        proxy.ingest = self.ingest.clone();
        proxy.store = self.store.clone();
        Ok(proxy)
    }

    fn build(
        config: &Config,
        root: Arc<TrustRoot>,
        verdicts: Arc<VerdictCache>,
        manifests: Arc<ManifestCache>,
        material: Option<Material>,
        metrics: Arc<Metrics>,
    ) -> Result<Proxy, UpstreamError> {
        let engine = Engine::sharing(
            root,
            verdicts,
            &config.limits,
            config.timeouts.signature_lookup,
            metrics.clone(),
        )
        .with_material(material);
        Ok(Proxy {
            upstreams: Upstreams::from_config(config, metrics.clone())?,
            policies: config.policies.clone(),
            gate: Gate {
                engine: Arc::new(engine),
            },
            manifests,
            auth: config
                .auth
                .clone()
                .map(|settings| Authenticator::new(settings, metrics.clone())),
            ledger: None,
            ingest: None,
            store: None,
            metrics,
        })
    }

    /// The rule stage: the rule for an image, and where that rule looks for signatures.
    pub fn rule(&self, upstream: &Arc<Upstream>, image: &ImageName) -> AppliedRule {
        AppliedRule::select(&self.policies, &self.upstreams, upstream, image)
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
