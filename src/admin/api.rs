//! The ledger's JSON API on the admin listener (behind the admin token when one is set):
//! `GET /api/v1/audit?since=7d[&rule=NAME][&image=GLOB]` is the audit report
//! ([`crate::ledger::report::audit`], the same data `portcullis audit --json` prints), and
//! `GET /api/v1/images/{name}[?since=30d]` the pulls of one image by its canonical name
//! (`docker.io/library/alpine`): its digests with their verdicts, and its clients. The
//! inventory's answers, as `portcullis inventory ... --json` prints them:
//! `GET /api/v1/inventory/query?purl=PURL|name=NAME[&range=R]` and
//! `GET /api/v1/inventory/affected?cve=ID|advisory=ID`, both with
//! `[&since=30d][&rule=NAME][&upstream=KEY][&image=GLOB]`, and
//! `GET /api/v1/inventory/images/{digest}`.

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
    let given_since = match param("since").map(humantime::parse_duration).transpose() {
        Ok(d) => d,
        Err(e) => return error(StatusCode::BAD_REQUEST, &format!("since: {e}")),
    };
    let since = given_since.unwrap_or(DEFAULT_SINCE);
    let path = req.uri().path();
    if let Some(what) = path.strip_prefix("/api/v1/inventory/") {
        return inventory(db, what, &params, given_since).await;
    }
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
    answered(answer, "the ledger")
}

/// The inventory's answers: `query?purl=|name=[&range=]`, `affected?cve=|advisory=`,
/// `images/{digest}`; `since`, `rule`, `upstream` (only images pulled so) and `image` (a glob
/// over image names) when given.
async fn inventory(
    db: &Database,
    what: &str,
    params: &[(String, String)],
    since: Option<Duration>,
) -> Response<ResponseBody> {
    let param = |k: &str| params.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str());
    use crate::inventory::query;
    use crate::inventory::versions::Range;
    let image = match param("image").map(Pattern::new).transpose() {
        Ok(p) => p,
        Err(e) => return error(StatusCode::BAD_REQUEST, &format!("image: {e}")),
    };
    let scope = query::Scope {
        since: query::Scope::since(since),
        rule: param("rule").map(str::to_owned),
        upstream: param("upstream").map(str::to_owned),
        image,
    };
    let answer = if what == "query" {
        let Some(package) = param("purl").or(param("name")) else {
            return error(StatusCode::BAD_REQUEST, "give purl or name");
        };
        let range = match param("range").map(Range::parse).transpose() {
            Ok(r) => r,
            Err(e) => return error(StatusCode::BAD_REQUEST, &format!("range: {e}")),
        };
        query::query(db, package, range.as_ref(), &scope)
            .await
            .map(|a| serde_json::to_vec_pretty(&a))
    } else if what == "affected" {
        let Some(id) = param("cve").or(param("advisory")) else {
            return error(StatusCode::BAD_REQUEST, "give cve or advisory");
        };
        let advisories = match query::named_advisories(db, id).await {
            Ok(found) => found,
            Err(e @ query::QueryError::NoAdvisory(_)) => {
                return error(StatusCode::NOT_FOUND, &e.to_string())
            }
            Err(e @ query::QueryError::StoredAdvisory { .. }) => {
                return error(StatusCode::INTERNAL_SERVER_ERROR, &e.to_string())
            }
            Err(e) => return error(StatusCode::SERVICE_UNAVAILABLE, &e.to_string()),
        };
        query::affected(db, &advisories, &scope)
            .await
            .map(|a| serde_json::to_vec_pretty(&a))
    } else if let Some(digest) = what.strip_prefix("images/") {
        let digest = match digest.parse::<crate::oci::Digest>() {
            Ok(d) => d.to_string(),
            Err(e) => return error(StatusCode::BAD_REQUEST, &format!("digest: {e}")),
        };
        query::image::image(db, "", &digest)
            .await
            .map(|a| serde_json::to_vec_pretty(&a))
    } else {
        return error(StatusCode::NOT_FOUND, "not found");
    };
    answered(answer, "the inventory")
}

/// An answer as JSON; a database that cannot answer is a 503, logged as reading `what`.
fn answered<E: std::fmt::Display>(
    answer: Result<Result<Vec<u8>, serde_json::Error>, E>,
    what: &str,
) -> Response<ResponseBody> {
    match answer {
        Ok(Ok(json)) => json_response(StatusCode::OK, json),
        Ok(Err(e)) => error(StatusCode::INTERNAL_SERVER_ERROR, &e.to_string()),
        Err(e) => {
            tracing::warn!(error = %e, "admin API: reading {what} failed");
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
