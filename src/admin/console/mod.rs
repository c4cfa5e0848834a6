//! The read-only web console on the admin listener (`/ui/`), in the same binary: pages rendered
//! on the server (maud), charts as inline SVG whose tooltips are SVG `<title>`s, no JavaScript
//! at all, so every page works with it off. Behind the admin token like the JSON API
//! ([`super`]); nothing on a page shows a credential (the configuration's secrets are `Secret`s,
//! which print as `***`).
//!
//! Pages, each reading what the CLI and the JSON API read:
//! - `/ui/`: the overview ([`overview`]): verdicts by rule and mode over 24 h or 7 d, pulls,
//!   faults, cache hit rates, and what changed since yesterday;
//! - `/ui/audit`: the audit report ([`audit`]), filtered by rule, image glob and window;
//! - `/ui/images/{name}`: one image ([`image`]): its digests and tags, every signature and
//!   attestation with the attestor that verified it and each condition's value, its SBOM
//!   packages with their provenance, its pulls by client;
//! - `/ui/inventory`: the inventory's search by package and by advisory ([`inventory`]);
//! - `/ui/policies`: the rules in force and which one applies to a name, and why ([`policies`]).
//!
//! This module routes, reads the query string, and is the one place that turns a page's
//! [`ConsoleError`] into a response.

mod audit;
mod chart;
mod image;
mod inventory;
mod layout;
mod overview;
mod policies;

use std::time::Duration;

use http::header::{CACHE_CONTROL, CONTENT_TYPE};
use http::{HeaderValue, Method, Request, Response, StatusCode};
use maud::Markup;

use super::AdminState;
use crate::db::DbError;
use crate::inventory::query::QueryError;
use crate::ledger::report::ReportError;
use crate::upstream::body::{self, ResponseBody};

/// Where the console lives.
pub const ROOT: &str = "/ui/";

/// What the pages send besides the HTML: no script may run, nothing is loaded from elsewhere,
/// no page is framed or cached.
const CSP: &str = "default-src 'none'; style-src 'unsafe-inline'; img-src 'self' data:; \
                   form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

#[derive(Debug, thiserror::Error)]
pub enum ConsoleError {
    #[error("there is no page at {0}")]
    NotFound(String),
    #[error("only GET is served here, not {0}")]
    Method(Method),
    #[error("{param}: {reason}")]
    BadParam { param: &'static str, reason: String },
    #[error("no ledger database is open")]
    NoDatabase,
    #[error(transparent)]
    Report(#[from] ReportError),
    #[error("the inventory: {0}")]
    Inventory(#[from] QueryError),
    #[error("reading the database: {0}")]
    Db(#[from] DbError),
}

impl ConsoleError {
    fn status(&self) -> StatusCode {
        match self {
            ConsoleError::NotFound(_) => StatusCode::NOT_FOUND,
            ConsoleError::Method(_) => StatusCode::METHOD_NOT_ALLOWED,
            ConsoleError::BadParam { .. } => StatusCode::BAD_REQUEST,
            ConsoleError::Inventory(QueryError::NoAdvisory(_)) => StatusCode::NOT_FOUND,
            ConsoleError::NoDatabase
            | ConsoleError::Report(_)
            | ConsoleError::Inventory(_)
            | ConsoleError::Db(_) => StatusCode::SERVICE_UNAVAILABLE,
        }
    }
}

/// Whether `path` is the console's.
pub fn is_console(path: &str) -> bool {
    path == "/ui" || path.starts_with(ROOT)
}

pub async fn handle<B>(req: &Request<B>, state: &AdminState) -> Response<ResponseBody> {
    let path = req.uri().path();
    if path == "/ui" {
        let mut resp = Response::new(body::empty());
        *resp.status_mut() = StatusCode::MOVED_PERMANENTLY;
        resp.headers_mut()
            .insert(http::header::LOCATION, HeaderValue::from_static(ROOT));
        return resp;
    }
    let params = Params::parse(req.uri().query());
    let page = if req.method() != Method::GET && req.method() != Method::HEAD {
        Err(ConsoleError::Method(req.method().clone()))
    } else {
        route(path, &params, state).await
    };
    let (status, markup) = match page {
        Ok(markup) => (StatusCode::OK, markup),
        Err(e) => {
            let status = e.status();
            if status.is_server_error() {
                tracing::warn!(error = %e, path, "console: a page could not be made");
            }
            (status, layout::error_page(status, &e.to_string()))
        }
    };
    let mut resp = Response::new(if req.method() == Method::HEAD {
        body::empty()
    } else {
        body::full(markup.into_string())
    });
    *resp.status_mut() = status;
    let h = resp.headers_mut();
    h.insert(
        CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    h.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    h.insert(
        http::header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CSP),
    );
    h.insert(
        http::header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(
        http::header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    resp
}

async fn route(path: &str, params: &Params, state: &AdminState) -> Result<Markup, ConsoleError> {
    let db = || state.db.as_deref().ok_or(ConsoleError::NoDatabase);
    match path {
        "/ui/" => overview::page(db()?, &state.metrics, params).await,
        "/ui/audit" => audit::page(db()?, &state.config, params).await,
        "/ui/inventory" => inventory::page(db()?, &state.config, params).await,
        "/ui/policies" => Ok(policies::page(&state.config, params)),
        _ => match path.strip_prefix("/ui/images/").filter(|n| !n.is_empty()) {
            Some(name) => image::page(db()?, &state.config, name, params).await,
            None => Err(ConsoleError::NotFound(path.to_owned())),
        },
    }
}

/// `limit` (how many rows a long list shows), `default` when not given.
fn limit(params: &Params, default: usize) -> Result<usize, ConsoleError> {
    match params.get("limit") {
        None => Ok(default),
        Some(l) => {
            l.parse::<usize>()
                .ok()
                .filter(|n| *n > 0)
                .ok_or_else(|| ConsoleError::BadParam {
                    param: "limit",
                    reason: format!("{l:?} is not a positive whole number"),
                })
        }
    }
}

/// The query string, decoded; a field left empty in a form counts as not given.
pub struct Params(Vec<(String, String)>);

impl Params {
    fn parse(query: Option<&str>) -> Params {
        Params(
            query
                .map(|q| {
                    url::form_urlencoded::parse(q.as_bytes())
                        .into_owned()
                        .collect()
                })
                .unwrap_or_default(),
        )
    }

    pub fn get(&self, key: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(k, v)| k == key && !v.trim().is_empty())
            .map(|(_, v)| v.trim())
    }

    /// `since` as a duration (`7d`, `24h`), when given.
    pub fn since(&self) -> Result<Option<Duration>, ConsoleError> {
        self.get("since")
            .map(|s| {
                humantime::parse_duration(s).map_err(|e| ConsoleError::BadParam {
                    param: "since",
                    reason: format!("{s:?}: {e}"),
                })
            })
            .transpose()
    }

    /// `image` as a pattern over image names, when given.
    pub fn image_pattern(&self) -> Result<Option<crate::policy::Pattern>, ConsoleError> {
        self.get("image")
            .map(|p| {
                crate::policy::Pattern::new(p).map_err(|e| ConsoleError::BadParam {
                    param: "image",
                    reason: e.to_string(),
                })
            })
            .transpose()
    }
}
