//! The admin listener's endpoints: `/metrics` (Prometheus text), `/healthz` (the process is
//! alive), `/readyz` (accepting requests; 503 once shutdown has begun), the ledger's and the
//! inventory's JSON API ([`api`]: `/api/v1/...`) and the read-only web console ([`console`]:
//! `/ui/...`). Never served on the registry listener.
//!
//! With an admin token (`admin.token_file` or `admin.token_env`), every endpoint not listed in
//! `admin.open` answers only a request that carries `Authorization: Bearer <token>`, or basic
//! credentials of `admin.user` (default `admin`) with the token as the password, which is what a
//! browser sends after its prompt (both compared in constant time); Prometheus sends the bearer
//! token with `authorization: { credentials_file: ... }`. The JSON API and the console are never
//! open.

pub mod api;
pub mod console;

use http::header::CONTENT_TYPE;
use http::{HeaderValue, Request, Response, StatusCode};

use subtle::ConstantTimeEq;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use base64::Engine as _;

use crate::config::{AdminEndpoint, AdminSettings, Config};
use crate::db::Database;
use crate::metrics::Metrics;
use crate::upstream::body::{self, ResponseBody};

/// What the admin endpoints read.
pub struct AdminState {
    pub metrics: Arc<Metrics>,
    pub ready: Arc<AtomicBool>,
    /// The configuration in force: its `admin` settings, and the rules the console shows.
    pub config: Arc<Config>,
    /// The ledger's database, for the JSON API and the console; `None`: they answer 503.
    pub db: Option<Arc<Database>>,
}

pub async fn handle<B>(req: Request<B>, state: Arc<AdminState>) -> Response<ResponseBody> {
    if let Some(denied) = check_token(&req, &state.metrics, &state.config.admin) {
        return denied;
    }
    if req.uri().path().starts_with(api::PREFIX) {
        return api::handle(&req, state.db.as_deref()).await;
    }
    if console::is_console(req.uri().path()) {
        return console::handle(&req, &state).await;
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
        if !open && !credentials_match(req, &settings.user, token.expose()) {
            metrics
                .auth_failures
                .with_label_values(&["admin_token"])
                .inc();
            let mut resp = Response::new(body::full(&b"unauthorized\n"[..]));
            *resp.status_mut() = StatusCode::UNAUTHORIZED;
            let h = resp.headers_mut();
            h.insert(CONTENT_TYPE, HeaderValue::from_static("text/plain"));
            // Basic first: a browser asking for the console prompts for it.
            h.append(
                http::header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Basic realm=\"portcullis-admin\", charset=\"UTF-8\""),
            );
            h.append(
                http::header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Bearer realm=\"portcullis-admin\""),
            );
            h.insert(
                http::header::CACHE_CONTROL,
                HeaderValue::from_static("no-store"),
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

/// Whether the request carries `Authorization: Bearer <token>`, or `Basic` credentials of
/// `user` with the token as the password. Both parts of basic credentials are compared in
/// constant time, and both always.
fn credentials_match<B>(req: &Request<B>, user: &str, token: &str) -> bool {
    let Some(value) = req.headers().get(http::header::AUTHORIZATION) else {
        return false;
    };
    let value = value.as_bytes();
    if let Some(given) = value.strip_prefix(b"Bearer ") {
        return given.ct_eq(token.as_bytes()).into();
    }
    let Some(encoded) = value.strip_prefix(b"Basic ") else {
        return false;
    };
    let Ok(decoded) = base64::engine::general_purpose::STANDARD.decode(encoded.trim_ascii()) else {
        return false;
    };
    let Some(colon) = decoded.iter().position(|&b| b == b':') else {
        return false;
    };
    let (given_user, given_password) = (&decoded[..colon], &decoded[colon + 1..]);
    let user_ok = given_user.ct_eq(user.as_bytes());
    let password_ok = given_password.ct_eq(token.as_bytes());
    (user_ok & password_ok).into()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn state(settings: AdminSettings, ready: bool) -> Arc<AdminState> {
        let mut config = Config::from_yaml(
            crate::config::EMBEDDED_DEFAULT,
            crate::config::Source::Embedded,
        )
        .unwrap();
        config.admin = settings;
        Arc::new(AdminState {
            metrics: Arc::new(Metrics::new()),
            ready: Arc::new(AtomicBool::new(ready)),
            config: Arc::new(config),
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
            ..AdminSettings::default()
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
        assert_eq!(ask("/ui/", None).await, StatusCode::UNAUTHORIZED);
        assert_eq!(
            ask("/ui/policies", Some("Bearer wrong")).await,
            StatusCode::UNAUTHORIZED
        );
        // Basic credentials: the configured user with the token as password.
        let basic = |user: &str, password: &str| {
            format!(
                "Basic {}",
                base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"))
            )
        };
        assert_eq!(
            ask(
                "/ui/policies",
                Some(&basic("admin", "0123456789abcdef-admin"))
            )
            .await,
            StatusCode::OK
        );
        assert_eq!(
            ask(
                "/ui/policies",
                Some(&basic("other", "0123456789abcdef-admin"))
            )
            .await,
            StatusCode::UNAUTHORIZED
        );
        assert_eq!(
            ask(
                "/ui/policies",
                Some(&basic("admin", "0123456789abcdef-admi"))
            )
            .await,
            StatusCode::UNAUTHORIZED
        );
        assert_eq!(
            ask("/ui/policies", Some("Basic not-base64!")).await,
            StatusCode::UNAUTHORIZED
        );
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
            9
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
