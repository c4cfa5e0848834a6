//! The ledger's JSON API on the admin listener (behind the admin token when one is set):
//! `GET /api/v1/audit?since=7d[&rule=NAME][&image=GLOB]` is the audit report
//! ([`crate::ledger::report::audit`], the same data `portcullis audit --json` prints), and
//! `GET /api/v1/images/{name}[?since=30d]` the pulls of one image by its canonical name
//! (`docker.io/library/alpine`): its digests with their verdicts, and its clients.

use std::time::Duration;

use http::header::CONTENT_TYPE;
use http::{HeaderValue, Method, Request, Response, StatusCode};

use crate::db::Database;
use crate::ledger::report::{self, Query};
use crate::policy::Pattern;
use crate::upstream::body::{self, ResponseBody};

pub const PREFIX: &str = "/api/v1/";

/// The window when `since` is not given.
const DEFAULT_SINCE: Duration = Duration::from_secs(7 * 86_400);

pub async fn handle<B>(req: &Request<B>, db: Option<&Database>) -> Response<ResponseBody> {
    if req.method() != Method::GET {
        return error(StatusCode::METHOD_NOT_ALLOWED, "only GET is served here");
    }
    let Some(db) = db else {
        return error(
            StatusCode::SERVICE_UNAVAILABLE,
            "no ledger database is open",
        );
    };
    let params: Vec<(String, String)> = req
        .uri()
        .query()
        .map(|q| {
            url::form_urlencoded::parse(q.as_bytes())
                .into_owned()
                .collect()
        })
        .unwrap_or_default();
    let param = |k: &str| params.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str());
    let since = match param("since").map(humantime::parse_duration) {
        None => DEFAULT_SINCE,
        Some(Ok(d)) => d,
        Some(Err(e)) => return error(StatusCode::BAD_REQUEST, &format!("since: {e}")),
    };
    let path = req.uri().path();
    let answer = if path == "/api/v1/audit" {
        let image = match param("image").map(Pattern::new).transpose() {
            Ok(p) => p,
            Err(e) => return error(StatusCode::BAD_REQUEST, &format!("image: {e}")),
        };
        let q = Query {
            since,
            rule: param("rule").map(str::to_owned),
            image,
        };
        report::audit(db, &q)
            .await
            .map(|r| serde_json::to_vec_pretty(&r))
    } else if let Some(name) = path
        .strip_prefix("/api/v1/images/")
        .filter(|n| !n.is_empty())
    {
        report::image(db, name, since)
            .await
            .map(|r| serde_json::to_vec_pretty(&r))
    } else {
        return error(StatusCode::NOT_FOUND, "not found");
    };
    match answer {
        Ok(Ok(json)) => json_response(StatusCode::OK, json),
        Ok(Err(e)) => error(StatusCode::INTERNAL_SERVER_ERROR, &e.to_string()),
        Err(e) => {
            tracing::warn!(error = %e, "admin API: reading the ledger failed");
            error(StatusCode::SERVICE_UNAVAILABLE, &e.to_string())
        }
    }
}

fn error(status: StatusCode, message: &str) -> Response<ResponseBody> {
    let body = serde_json::json!({ "error": message });
    json_response(status, body.to_string().into_bytes())
}

fn json_response(status: StatusCode, json: Vec<u8>) -> Response<ResponseBody> {
    let mut resp = Response::new(body::full(json));
    *resp.status_mut() = status;
    resp.headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    resp
}
