//! The admin listener's endpoints: `/metrics` (Prometheus text), `/healthz` (the process is
//! alive), `/readyz` (accepting requests; 503 once shutdown has begun), and the ledger's JSON
//! API ([`api`]: `/api/v1/audit`, `/api/v1/images/{name}`). Never served on the registry
//! listener.
//!
//! With `admin.token_file`, every endpoint not listed in `admin.open` answers only a request that
//! carries `Authorization: Bearer <token>` (compared in constant time); Prometheus sends it with
//! `authorization: { credentials_file: ... }`. The JSON API is never open.

pub mod api;

use http::header::CONTENT_TYPE;
use http::{HeaderValue, Request, Response, StatusCode};

use subtle::ConstantTimeEq;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use crate::config::{AdminEndpoint, AdminSettings};
use crate::db::Database;
use crate::metrics::Metrics;
use crate::upstream::body::{self, ResponseBody};

/// What the admin endpoints read.
pub struct AdminState {
    pub metrics: Arc<Metrics>,
    pub ready: Arc<AtomicBool>,
    pub settings: AdminSettings,
    /// The ledger's database, for the JSON API; `None`: it answers 503.
    pub db: Option<Arc<Database>>,
}

pub async fn handle<B>(req: Request<B>, state: Arc<AdminState>) -> Response<ResponseBody> {
    if let Some(denied) = check_token(&req, &state.metrics, &state.settings) {
        return denied;
    }
    if req.uri().path().starts_with(api::PREFIX) {
        return api::handle(&req, state.db.as_deref()).await;
    }
    plain(&req, &state.metrics, state.ready.load(Ordering::SeqCst))
}

/// The refusal of a request that needs the admin token and lacks it.
fn check_token<B>(
    req: &Request<B>,
    metrics: &Metrics,
    settings: &AdminSettings,
) -> Option<Response<ResponseBody>> {
    let endpoint = match req.uri().path() {
        "/metrics" => Some(AdminEndpoint::Metrics),
        "/healthz" => Some(AdminEndpoint::Healthz),
        "/readyz" => Some(AdminEndpoint::Readyz),
        _ => None,
    };
    if let Some(token) = &settings.token {
        let open = endpoint.is_some_and(|e| settings.open.contains(&e));
        if !open && !bearer_matches(req, token.expose()) {
            metrics
                .auth_failures
                .with_label_values(&["admin_token"])
                .inc();
            let mut resp = Response::new(body::full(&b"unauthorized\n"[..]));
            *resp.status_mut() = StatusCode::UNAUTHORIZED;
            let h = resp.headers_mut();
            h.insert(CONTENT_TYPE, HeaderValue::from_static("text/plain"));
            h.insert(
                http::header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Bearer realm=\"portcullis-admin\""),
            );
            return Some(resp);
        }
    }
    None
}

/// `/metrics`, `/healthz`, `/readyz`, and 404 for anything else.
fn plain<B>(req: &Request<B>, metrics: &Metrics, ready: bool) -> Response<ResponseBody> {
    let (status, content_type, bytes): (StatusCode, &'static str, Vec<u8>) = match req.uri().path()
    {
        "/metrics" => (
            StatusCode::OK,
            "text/plain; version=0.0.4",
            metrics.encode(),
        ),
        "/healthz" => (StatusCode::OK, "text/plain", b"ok\n".to_vec()),
        "/readyz" if ready => (StatusCode::OK, "text/plain", b"ready\n".to_vec()),
        "/readyz" => (
            StatusCode::SERVICE_UNAVAILABLE,
            "text/plain",
            b"shutting down\n".to_vec(),
        ),
        _ => (StatusCode::NOT_FOUND, "text/plain", b"not found\n".to_vec()),
    };
    let mut resp = Response::new(body::full(bytes));
    *resp.status_mut() = status;
    resp.headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
    resp
}

/// Whether the request carries `Authorization: Bearer <token>`.
fn bearer_matches<B>(req: &Request<B>, token: &str) -> bool {
    let Some(value) = req.headers().get(http::header::AUTHORIZATION) else {
        return false;
    };
    let Some(given) = value.as_bytes().strip_prefix(b"Bearer ") else {
        return false;
    };
    given.ct_eq(token.as_bytes()).into()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn state(settings: AdminSettings, ready: bool) -> Arc<AdminState> {
        Arc::new(AdminState {
            metrics: Arc::new(Metrics::new()),
            ready: Arc::new(AtomicBool::new(ready)),
            settings,
            db: None,
        })
    }

    async fn get(path: &str, ready: bool) -> StatusCode {
        let req = Request::get(path).body(()).unwrap();
        handle(req, state(AdminSettings::default(), ready))
            .await
            .status()
    }

    #[tokio::test]
    async fn a_token_guards_all_but_the_open_endpoints() {
        let settings = AdminSettings {
            token: Some(crate::config::Secret::new("0123456789abcdef-admin".into())),
            open: vec![AdminEndpoint::Healthz, AdminEndpoint::Readyz],
        };
        let state = state(settings, true);
        let ask = |path: &str, auth: Option<&str>| {
            let mut req = Request::get(path);
            if let Some(a) = auth {
                req = req.header("authorization", a);
            }
            let state = state.clone();
            let req = req.body(()).unwrap();
            async move { handle(req, state).await.status() }
        };
        assert_eq!(ask("/healthz", None).await, StatusCode::OK);
        assert_eq!(ask("/readyz", None).await, StatusCode::OK);
        assert_eq!(ask("/metrics", None).await, StatusCode::UNAUTHORIZED);
        assert_eq!(
            ask("/metrics", Some("Bearer wrong")).await,
            StatusCode::UNAUTHORIZED
        );
        assert_eq!(
            ask("/metrics", Some("Bearer 0123456789abcdef-admin")).await,
            StatusCode::OK
        );
        assert_eq!(ask("/other", None).await, StatusCode::UNAUTHORIZED);
        assert_eq!(ask("/api/v1/audit", None).await, StatusCode::UNAUTHORIZED);
        assert_eq!(
            ask("/api/v1/audit", Some("Bearer 0123456789abcdef-admin")).await,
            StatusCode::SERVICE_UNAVAILABLE
        );
        assert_eq!(
            state
                .metrics
                .auth_failures
                .with_label_values(&["admin_token"])
                .get(),
            4
        );
    }

    #[tokio::test]
    async fn endpoints() {
        assert_eq!(get("/metrics", true).await, StatusCode::OK);
        assert_eq!(get("/healthz", false).await, StatusCode::OK);
        assert_eq!(get("/readyz", true).await, StatusCode::OK);
        assert_eq!(get("/readyz", false).await, StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(get("/v2/", true).await, StatusCode::NOT_FOUND);
    }
}
