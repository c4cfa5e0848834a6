//! An in-process fake upstream registry on 127.0.0.1:0 for fault injection and request
//! counting, and an in-process proxy in front of it.

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use http::{HeaderMap, Method, Request, Response, StatusCode};
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo};
use portcullis::upstream::body::{self, ResponseBody};

pub type Handler =
    Arc<dyn Fn(Seen) -> Pin<Box<dyn Future<Output = Response<ResponseBody>> + Send>> + Send + Sync>;

/// A request as the fake upstream saw it.
#[derive(Debug, Clone)]
pub struct Seen {
    pub method: Method,
    pub path: String,
    pub query: Option<String>,
    pub headers: HeaderMap,
}

pub struct FakeUpstream {
    pub addr: SocketAddr,
    pub seen: Arc<Mutex<Vec<Seen>>>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for FakeUpstream {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl FakeUpstream {
    pub async fn start<F, Fut>(handler: F) -> FakeUpstream
    where
        F: Fn(Seen) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Response<ResponseBody>> + Send + 'static,
    {
        let handler: Handler = Arc::new(move |s| Box::pin(handler(s)));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let seen = Arc::new(Mutex::new(Vec::new()));
        let seen2 = seen.clone();
        let task = tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    return;
                };
                let handler = handler.clone();
                let seen = seen2.clone();
                tokio::spawn(async move {
                    let svc = hyper::service::service_fn(move |req: Request<Incoming>| {
                        let s = Seen {
                            method: req.method().clone(),
                            path: req.uri().path().to_owned(),
                            query: req.uri().query().map(str::to_owned),
                            headers: req.headers().clone(),
                        };
                        seen.lock().unwrap().push(s.clone());
                        let fut = handler(s);
                        async move { Ok::<_, Infallible>(fut.await) }
                    });
                    let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                        .serve_connection(TokioIo::new(stream), svc)
                        .await;
                });
            }
        });
        FakeUpstream { addr, seen, task }
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// How many requests whose path contains `needle` were seen.
    pub fn count(&self, needle: &str) -> usize {
        self.seen
            .lock()
            .unwrap()
            .iter()
            .filter(|s| s.path.contains(needle))
            .count()
    }

    pub fn total(&self) -> usize {
        self.seen.lock().unwrap().len()
    }

    pub fn requests(&self) -> Vec<Seen> {
        self.seen.lock().unwrap().clone()
    }
}

pub fn respond(
    status: StatusCode,
    headers: &[(&str, &str)],
    bytes: impl Into<Bytes>,
) -> Response<ResponseBody> {
    let bytes = bytes.into();
    let mut r = Response::new(body::full(bytes));
    *r.status_mut() = status;
    for (k, v) in headers {
        r.headers_mut().append(
            http::HeaderName::from_bytes(k.as_bytes()).unwrap(),
            v.parse().unwrap(),
        );
    }
    r
}

pub fn oci_error(status: StatusCode, code: &str) -> Response<ResponseBody> {
    respond(
        status,
        &[("content-type", "application/json")],
        format!(r#"{{"errors":[{{"code":"{code}","message":"fake says {code}"}}]}}"#),
    )
}

/// A manifest (or any document) answered as registries do: its media type, its digest and its
/// length; no body for `HEAD`.
pub fn document(method: &http::Method, media_type: &str, bytes: &Bytes) -> Response<ResponseBody> {
    let digest = crate::common::sha256(bytes);
    let body = if method == http::Method::HEAD {
        Bytes::new()
    } else {
        bytes.clone()
    };
    let mut r = respond(
        StatusCode::OK,
        &[
            ("content-type", media_type),
            ("docker-content-digest", &digest),
        ],
        body,
    );
    r.headers_mut()
        .insert("content-length", bytes.len().to_string().parse().unwrap());
    r
}

/// The value of one series (`name` or `name{labels}`, exactly as exposed) in a Prometheus text
/// exposition; 0 when it is absent.
pub fn metric(text: &str, series: &str) -> f64 {
    text.lines()
        .find_map(|l| {
            l.strip_prefix(series)?
                .strip_prefix(' ')?
                .trim()
                .parse()
                .ok()
        })
        .unwrap_or(0.0)
}

/// [`crate::common::write_config`] with SBOM ingest off unless `extra` has an `inventory:` key:
/// its own look-ups, made after a pull is answered, would change the upstream requests that the
/// request-path tests count (`inventory.rs` turns it on and counts what it adds).
pub fn write_config(
    dir: &std::path::Path,
    default: &str,
    upstreams_yaml: &str,
    extra: &str,
) -> std::path::PathBuf {
    let extra = if extra.contains("inventory:") {
        extra.to_owned()
    } else {
        format!("inventory: {{ ingest: false }}\n{extra}")
    };
    crate::common::write_config(dir, default, upstreams_yaml, &extra)
}

/// A running in-process proxy.
pub struct Proxy {
    pub server: Option<portcullis::server::Server>,
    pub url: String,
    pub admin: String,
    /// The configuration file it was started from (tests rewrite it, then reload).
    pub config: std::path::PathBuf,
    _dir: tempfile::TempDir,
}

impl Proxy {
    /// Starts a proxy whose `upstreams:` map is `upstreams_yaml` (indented two spaces) with
    /// `default` as default upstream and `extra` appended to the config ([`write_config`]).
    pub async fn start(default: &str, upstreams_yaml: &str, extra: &str) -> Proxy {
        let dir = tempfile::tempdir().unwrap();
        let path = write_config(dir.path(), default, upstreams_yaml, extra);
        Self::start_file(&path, dir).await
    }

    pub async fn start_file(path: &std::path::Path, dir: tempfile::TempDir) -> Proxy {
        let config = portcullis::config::Config::load(Some(path)).unwrap();
        let server = portcullis::server::Server::start(config).await.unwrap();
        Proxy {
            url: format!("http://{}", server.api_addr),
            admin: format!("http://{}", server.admin_addr),
            server: Some(server),
            config: path.to_path_buf(),
            _dir: dir,
        }
    }

    /// A proxy in front of one fake upstream registered as `fake.local` (the default upstream).
    pub async fn in_front_of(up: &FakeUpstream, extra: &str) -> Proxy {
        Self::start(
            "fake.local",
            &format!("  fake.local: {{ url: \"{}\" }}", up.url()),
            extra,
        )
        .await
    }

    pub async fn metrics(&self) -> String {
        reqwest::get(format!("{}/metrics", self.admin))
            .await
            .unwrap()
            .text()
            .await
            .unwrap()
    }
}

/// A client that neither follows redirects nor uses system proxies.
pub fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .no_proxy()
        .timeout(std::time::Duration::from_secs(30))
        .build()
        .unwrap()
}

/// Parses an OCI error body and returns its first code.
pub async fn error_code(resp: reqwest::Response) -> (StatusCode, String, String) {
    let status = StatusCode::from_u16(resp.status().as_u16()).unwrap();
    let v: serde_json::Value = resp.json().await.expect("OCI error body is JSON");
    (
        status,
        v["errors"][0]["code"]
            .as_str()
            .unwrap_or_default()
            .to_owned(),
        v["errors"][0]["message"]
            .as_str()
            .unwrap_or_default()
            .to_owned(),
    )
}
