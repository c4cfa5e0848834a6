//! The admin listener's endpoints: `/metrics` (Prometheus text), `/healthz` (the process is
//! alive), `/readyz` (accepting requests; 503 once shutdown has begun). Never served on the
//! registry listener.

use http::header::CONTENT_TYPE;
use http::{HeaderValue, Request, Response, StatusCode};

use crate::metrics::Metrics;
use crate::upstream::body::{self, ResponseBody};

pub fn handle<B>(req: &Request<B>, metrics: &Metrics, ready: bool) -> Response<ResponseBody> {
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

#[cfg(test)]
mod tests {
    use super::*;

    fn get(path: &str, ready: bool) -> StatusCode {
        let req = Request::get(path).body(()).unwrap();
        handle(&req, &Metrics::new(), ready).status()
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
