//! The admin listener's endpoints: `/metrics` (Prometheus text), `/healthz` (the process is
//! alive), `/readyz` (accepting requests; 503 once shutdown has begun). Never served on the
//! registry listener.
//!
//! With `admin.token_file`, every endpoint not listed in `admin.open` answers only a request that
//! carries `Authorization: Bearer <token>` (compared in constant time); Prometheus sends it with
//! `authorization: { credentials_file: ... }`.

use http::header::CONTENT_TYPE;
use http::{HeaderValue, Request, Response, StatusCode};

use subtle::ConstantTimeEq;

use crate::config::{AdminEndpoint, AdminSettings};
use crate::metrics::Metrics;
use crate::upstream::body::{self, ResponseBody};

pub fn handle<B>(
    req: &Request<B>,
    metrics: &Metrics,
    ready: bool,
    settings: &AdminSettings,
) -> Response<ResponseBody> {
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
            return resp;
        }
    }
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

    fn get(path: &str, ready: bool) -> StatusCode {
        let req = Request::get(path).body(()).unwrap();
        handle(&req, &Metrics::new(), ready, &AdminSettings::default()).status()
    }

    #[test]
    fn a_token_guards_all_but_the_open_endpoints() {
        let settings = AdminSettings {
            token: Some(crate::config::Secret::new("0123456789abcdef-admin".into())),
            open: vec![AdminEndpoint::Healthz, AdminEndpoint::Readyz],
        };
        let metrics = Metrics::new();
        let ask = |path: &str, auth: Option<&str>| {
            let mut req = Request::get(path);
            if let Some(a) = auth {
                req = req.header("authorization", a);
            }
            handle(&req.body(()).unwrap(), &metrics, true, &settings).status()
        };
        assert_eq!(ask("/healthz", None), StatusCode::OK);
        assert_eq!(ask("/readyz", None), StatusCode::OK);
        assert_eq!(ask("/metrics", None), StatusCode::UNAUTHORIZED);
        assert_eq!(
            ask("/metrics", Some("Bearer wrong")),
            StatusCode::UNAUTHORIZED
        );
        assert_eq!(
            ask("/metrics", Some("Bearer 0123456789abcdef-admin")),
            StatusCode::OK
        );
        assert_eq!(ask("/other", None), StatusCode::UNAUTHORIZED);
        assert_eq!(
            metrics
                .auth_failures
                .with_label_values(&["admin_token"])
                .get(),
            3
        );
    }

    #[test]
    fn endpoints() {
        assert_eq!(get("/metrics", true), StatusCode::OK);
        assert_eq!(get("/healthz", false), StatusCode::OK);
        assert_eq!(get("/readyz", true), StatusCode::OK);
        assert_eq!(get("/readyz", false), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(get("/v2/", true), StatusCode::NOT_FOUND);
    }
}
