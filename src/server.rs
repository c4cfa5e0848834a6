//! Listeners: the registry API listener (optionally TLS via rustls, HTTP/1.1 and HTTP/2 with
//! ALPN) and the admin listener ([`crate::admin`]), a bound on concurrent connections and on each
//! client address's share of it, the header deadline from accept and the idle timeout
//! ([`conn`]), and graceful shutdown: stop accepting, let in-flight requests finish up to the
//! grace deadline, then cut what remains.
//!
//! This module wires the pieces together; it has no knowledge of the registry protocol.

mod conn;
mod reload;

pub use reload::{ReloadError, Reloaded};

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwap;
use http::{Request, Response};
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpListener;
use tokio::sync::{watch, Semaphore};
use tokio::task::JoinHandle;
use tokio_rustls::TlsAcceptor;

use crate::admin;
use crate::auth;
use crate::config::Config;
use crate::db::{Database, DbError};
use crate::inventory::ingest::Ingest;
use crate::ledger::Ledger;
use crate::metrics::Metrics;
use crate::registry_api::feed;
use crate::registry_api::Proxy;
use crate::signature::discovery::{Material, Prefer};
use crate::signature::{TrustRoot, TufError};
use crate::upstream::body::ResponseBody;
use crate::upstream::UpstreamError;

#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    #[error("cannot listen on {addr}: {error}")]
    Bind {
        addr: SocketAddr,
        error: std::io::Error,
    },
    #[error(transparent)]
    Upstream(#[from] UpstreamError),
    #[error(transparent)]
    TrustRoot(#[from] TufError),
    #[error("opening the ledger database: {0}")]
    Db(#[from] DbError),
    #[error(transparent)]
    Store(#[from] crate::store::StoreError),
}

/// A running proxy: both listeners bound and serving.
pub struct Server {
    pub api_addr: SocketAddr,
    pub admin_addr: SocketAddr,
    pub metrics: Arc<Metrics>,
    /// The ledger's database, open and migrated.
    pub db: Arc<Database>,
    pub ledger: Arc<Ledger>,
    api_shutdown: watch::Sender<bool>,
    admin_shutdown: watch::Sender<bool>,
    ready: Arc<AtomicBool>,
    api_task: JoinHandle<()>,
    admin_task: JoinHandle<()>,
    reloader: Arc<reload::Reloader>,
    /// The `watch_config` poller and the TUF refresh: stopped at shutdown.
    background: Vec<JoinHandle<()>>,
}

/// How often `watch_config` looks at the configuration's files.
const WATCH_EVERY: Duration = Duration::from_secs(2);

/// Limits every listener applies to its connections.
#[derive(Clone)]
struct ConnLimits {
    name: &'static str,
    /// At most this many connections at once (`slots` holds one permit each).
    max: usize,
    slots: Arc<Semaphore>,
    /// At most this many of them from one client address.
    per_address: usize,
    /// From accept to the end of the first request's headers (and of the TLS handshake).
    header_timeout: Duration,
    /// How long a connection with no request in flight stays open after a response.
    idle_timeout: Duration,
    grace: Duration,
}

impl Server {
    /// Builds the upstream clients, binds both listeners and starts serving.
    pub async fn start(config: Config) -> Result<Server, ServerError> {
        let metrics = Arc::new(Metrics::new());
        let root =
            Arc::new(TrustRoot::obtain(&config.trusted_root, config.timeouts.connect).await?);
        let db = Arc::new(Database::open(&config.database).await?);
        let ledger = Arc::new(Ledger::start(db.clone(), &config.ledger, metrics.clone()));
        tracing::info!(
            database = %config.database.describe(),
            retention = ?config.ledger.retention,
            recording = config.ledger.enabled,
            "pull ledger open"
        );
        let store = crate::store::Store::open(&config.storage, metrics.clone()).await?;
        tracing::info!(storage = %config.storage, "content store open");
        let material = Material {
            store,
            prefer: Prefer::Upstream,
        };
        let mut proxy = Proxy::from_config(&config, root.clone(), metrics.clone(), Some(material))?;
        proxy.ledger = config.ledger.enabled.then(|| ledger.clone());
        // Started after the store and the database, stopped with the process: a job left in its
        // queue at shutdown is taken up by the next start-up's backfill.
        let ingest = config.inventory.ingest.then(|| {
            Arc::new(Ingest::start(
                db.clone(),
                proxy.store.clone(),
                &config.inventory,
                metrics.clone(),
            ))
        });
        proxy.ingest = ingest.clone();
        warn_insecure(&config);
        tracing::info!(
            trusted_root = %config.trusted_root.origin,
            rules = config.policies.rules.len(),
            "verification policy loaded"
        );
        let config = Arc::new(config);
        let live = Arc::new(reload::Live {
            proxy: ArcSwap::from_pointee(proxy),
            tls: config.tls.as_ref().map(|t| {
                Arc::new(ArcSwap::from_pointee(TlsAcceptor::from(
                    t.server_config.clone(),
                )))
            }),
            config: ArcSwap::new(config.clone()),
        });
        let tls = live.tls.clone();

        let api_listener = bind(config.listen).await?;
        let admin_listener = bind(config.admin_listen).await?;
        let api_addr = local_addr(&api_listener, config.listen)?;
        let admin_addr = local_addr(&admin_listener, config.admin_listen)?;

        let (api_shutdown, api_rx) = watch::channel(false);
        let (admin_shutdown, admin_rx) = watch::channel(false);
        let ready = Arc::new(AtomicBool::new(true));
        metrics.ready.set(1);
        let api_limits = ConnLimits {
            name: "api",
            max: config.limits.max_connections,
            slots: Arc::new(Semaphore::new(config.limits.max_connections)),
            per_address: config.limits.max_connections_per_address,
            header_timeout: config.timeouts.client_header,
            idle_timeout: config.timeouts.client_idle,
            grace: config.timeouts.shutdown_grace,
        };
        let admin_limits = ConnLimits {
            name: "admin",
            max: ADMIN_CONNECTIONS,
            slots: Arc::new(Semaphore::new(ADMIN_CONNECTIONS)),
            per_address: ADMIN_CONNECTIONS,
            ..api_limits.clone()
        };

        // Each request is served, start to end, by the proxy in force when it arrived.
        let api = {
            let live = live.clone();
            move |req: Request<Incoming>| live.proxy.load_full().handle(req)
        };
        let admin = {
            let metrics = metrics.clone();
            let ready = ready.clone();
            let live = live.clone();
            let db = db.clone();
            move |req: Request<Incoming>| {
                // The admin settings in force (a reload may rotate the token).
                let state = Arc::new(admin::AdminState {
                    metrics: metrics.clone(),
                    ready: ready.clone(),
                    config: live.config.load_full(),
                    db: Some(db.clone()),
                });
                admin::handle(req, state)
            }
        };
        let api_task = tokio::spawn(accept_loop(
            api_listener,
            tls,
            api,
            api_rx,
            api_limits,
            metrics.clone(),
        ));
        let admin_task = tokio::spawn(accept_loop(
            admin_listener,
            None,
            admin,
            admin_rx,
            admin_limits,
            metrics.clone(),
        ));
        tracing::info!(
            %api_addr,
            %admin_addr,
            tls = config.tls.is_some(),
            upstreams = %live.proxy.load().upstreams.keys().collect::<Vec<_>>().join(","),
            default_upstream = %config.default_upstream,
            "portcullis listening"
        );
        let first_proxy = live.proxy.load_full();
        let reloader = Arc::new(reload::Reloader::new(live, config, root, metrics.clone()));
        let mut background = vec![
            tokio::spawn(reloader.clone().watch(WATCH_EVERY)),
            tokio::spawn(reloader.clone().refresh_trust_root()),
        ];
        if let Some(ingest) = ingest {
            background.push(tokio::spawn(feed::backfill(
                first_proxy,
                ingest,
                db.clone(),
            )));
        }
        Ok(Server {
            api_addr,
            admin_addr,
            metrics,
            db,
            ledger,
            api_shutdown,
            admin_shutdown,
            ready,
            api_task,
            admin_task,
            reloader,
            background,
        })
    }

    /// Reads the configuration again and puts it in force (what `SIGHUP` does); a configuration
    /// that does not validate is refused and the one in force stays. Logged and counted.
    pub async fn reload(&self) -> Result<Reloaded, ReloadError> {
        self.reloader.reload().await
    }

    /// Marks the proxy not ready, stops accepting registry requests and waits for in-flight ones
    /// (up to the grace deadline). The admin listener keeps answering meanwhile, so probes see
    /// `/readyz` 503 rather than a refused connection; it closes last.
    pub async fn shutdown(self) {
        for task in &self.background {
            task.abort();
        }
        self.ready.store(false, Ordering::SeqCst);
        self.metrics.ready.set(0);
        let _ = self.api_shutdown.send(true);
        let _ = self.api_task.await;
        // What the drained requests recorded is written before the process goes.
        self.ledger.stop(LEDGER_STOP_TIMEOUT).await;
        let _ = self.admin_shutdown.send(true);
        let _ = self.admin_task.await;
    }
}

/// Logs, loudly, every setting of `config` that weakens a check (at start-up and each reload).
fn warn_insecure(config: &Config) {
    for rule in &config.policies.rules {
        for a in &rule.attestors {
            if let crate::policy::Attestor::Key {
                key,
                insecure_ignore_tlog: true,
            } = a
            {
                tracing::warn!(
                    rule = %rule.name,
                    key = %key.origin,
                    "INSECURE: ignore_tlog is on: key signatures with no transparency log entry are accepted"
                );
            }
        }
    }
}

/// How long shutdown waits for the ledger's last write.
const LEDGER_STOP_TIMEOUT: Duration = Duration::from_secs(10);

/// Connections the admin listener holds at once (probes and scrapers).
const ADMIN_CONNECTIONS: usize = 64;

async fn bind(addr: SocketAddr) -> Result<TcpListener, ServerError> {
    TcpListener::bind(addr)
        .await
        .map_err(|error| ServerError::Bind { addr, error })
}

fn local_addr(l: &TcpListener, addr: SocketAddr) -> Result<SocketAddr, ServerError> {
    l.local_addr()
        .map_err(|error| ServerError::Bind { addr, error })
}

/// Accepts connections until shutdown, serving each with `handler`, then drains.
async fn accept_loop<H, F>(
    listener: TcpListener,
    tls: Option<Arc<ArcSwap<TlsAcceptor>>>,
    handler: H,
    mut shutdown: watch::Receiver<bool>,
    limits: ConnLimits,
    metrics: Arc<Metrics>,
) where
    H: Fn(Request<Incoming>) -> F + Clone + Send + Sync + 'static,
    F: Future<Output = Response<ResponseBody>> + Send + 'static,
{
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        // hyper starts this timer whenever the connection waits for a request's headers, so it
        // is the keep-alive idle bound; the first request's deadline from accept is the watchdog's.
        .header_read_timeout(limits.idle_timeout)
        .keep_alive(true);
    builder
        .http2()
        .timer(TokioTimer::new())
        .keep_alive_interval(Some(Duration::from_secs(30)))
        .keep_alive_timeout(Duration::from_secs(20))
        .max_concurrent_streams(256);
    let gauge = metrics.connections.with_label_values(&[limits.name]);
    let per_address_refused = metrics
        .connections_closed
        .with_label_values(&[limits.name, "per_address_limit"]);
    let idle_closed = metrics
        .connections_closed
        .with_label_values(&[limits.name, "idle"]);
    let addresses = conn::AddressSlots::new(limits.per_address);

    loop {
        let permit = tokio::select! {
            p = limits.slots.clone().acquire_owned() => match p {
                Ok(p) => p,
                Err(_) => break,
            },
            _ = shutdown.changed() => break,
        };
        let (stream, peer) = tokio::select! {
            r = listener.accept() => match r {
                Ok(x) => x,
                Err(e) => {
                    // Out of file descriptors and the like: back off instead of spinning.
                    tracing::warn!(listener = limits.name, error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            _ = shutdown.changed() => break,
        };
        // One address cannot hold the whole limit: the rest stays free for other clients.
        let Some(address_slot) = addresses.try_take(peer.ip()) else {
            per_address_refused.inc();
            tracing::debug!(listener = limits.name, %peer, "client address holds its share of connections: closed");
            continue;
        };
        let _ = stream.set_nodelay(true);
        let activity = conn::Activity::new();
        // Each request carries who is asking: the client's address, and the user its client
        // certificate names (known once the TLS handshake is done).
        let service = {
            let handler = handler.clone();
            let activity = activity.clone();
            move |certificate_user: Option<auth::CertificateUser>| {
                let handler = handler.clone();
                let activity = activity.clone();
                hyper::service::service_fn(move |mut req: Request<Incoming>| {
                    req.extensions_mut().insert(auth::Peer(peer));
                    if let Some(user) = &certificate_user {
                        req.extensions_mut().insert(user.clone());
                    }
                    let in_flight = activity.start();
                    let fut = handler(req);
                    async move {
                        let resp = fut.await;
                        Ok::<_, Infallible>(resp.map(|b| conn::hold_until_sent(b, in_flight)))
                    }
                })
            }
        };
        let builder = builder.clone();
        let tls = tls.clone();
        let gauge = gauge.clone();
        let idle_closed = idle_closed.clone();
        let shutdown = shutdown.clone();
        let limits = limits.clone();
        tokio::spawn(async move {
            gauge.inc();
            let served = match tls {
                None => {
                    serve(
                        &builder,
                        stream,
                        service(None),
                        &activity,
                        shutdown,
                        &limits,
                    )
                    .await
                }
                Some(acceptor) => {
                    // The certificate in force when the connection arrived (reloads rotate it).
                    let acceptor = acceptor.load_full();
                    // The handshake counts against the header deadline, which runs from accept.
                    match tokio::time::timeout(limits.header_timeout, acceptor.accept(stream)).await
                    {
                        Ok(Ok(tls_stream)) => {
                            let user = tls_stream
                                .get_ref()
                                .1
                                .peer_certificates()
                                .and_then(|chain| chain.first())
                                .and_then(|leaf| auth::certificate_user(leaf))
                                .map(|name| auth::CertificateUser(name.into()));
                            let service = service(user);
                            serve(&builder, tls_stream, service, &activity, shutdown, &limits).await
                        }
                        Ok(Err(e)) => {
                            tracing::debug!(%peer, error = %e, "TLS handshake failed");
                            Served::Done(Ok(()))
                        }
                        Err(_) => {
                            tracing::debug!(%peer, "TLS handshake timed out");
                            Served::Done(Ok(()))
                        }
                    }
                }
            };
            match served {
                Served::Done(Err(e)) => {
                    tracing::debug!(%peer, error = %e, "connection ended with an error")
                }
                Served::Done(Ok(())) => {}
                Served::Idle => {
                    idle_closed.inc();
                    tracing::debug!(%peer, "connection closed: no request in flight for too long");
                }
            }
            gauge.dec();
            drop(address_slot);
            drop(permit);
        });
    }
    drop(listener);
    tracing::info!(
        listener = limits.name,
        "stopped accepting; draining connections"
    );
    // Every connection holds a permit until it is closed: all of them back means all closed.
    let all = u32::try_from(limits.max).unwrap_or(u32::MAX);
    match tokio::time::timeout(limits.grace, limits.slots.acquire_many(all)).await {
        Ok(_) => tracing::info!(listener = limits.name, "all connections closed"),
        Err(_) => tracing::warn!(
            listener = limits.name,
            grace = ?limits.grace,
            "grace period over; cutting remaining connections"
        ),
    }
}

/// How a connection ended.
enum Served {
    /// By the client, by an error, or by a graceful shutdown.
    Done(Result<(), BoxError>),
    /// Closed by the idle watchdog.
    Idle,
}

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// Serves one connection until it ends, shutdown asks it to finish (in-flight requests complete,
/// no new ones start), or its idle watchdog closes it.
async fn serve<I, S>(
    builder: &auto::Builder<TokioExecutor>,
    io: I,
    service: S,
    activity: &conn::Activity,
    mut shutdown: watch::Receiver<bool>,
    limits: &ConnLimits,
) -> Served
where
    I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    S: hyper::service::Service<Request<Incoming>, Response = Response<ResponseBody>>
        + Clone
        + Send
        + 'static,
    S::Future: Send + 'static,
    S::Error: Into<BoxError>,
{
    let conn = builder.serve_connection(TokioIo::new(io), service);
    tokio::pin!(conn);
    let mut draining = false;
    loop {
        tokio::select! {
            r = conn.as_mut() => return Served::Done(r),
            _ = shutdown.changed(), if !draining => {
                draining = true;
                conn.as_mut().graceful_shutdown();
            }
            _ = activity.idle(limits.header_timeout, limits.idle_timeout) => {
                // Nothing is in flight, so nothing is lost: hyper has handed no request of this
                // connection to the service that has not been answered in full.
                return Served::Idle;
            }
        }
    }
}
