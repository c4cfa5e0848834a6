//! Listeners: the registry API listener (optionally TLS via rustls, HTTP/1.1 and HTTP/2 with
//! ALPN) and the admin listener ([`crate::admin`]), a bound on concurrent connections, header
//! read timeouts, and graceful shutdown: stop accepting, let in-flight requests finish up to the
//! grace deadline, then cut what remains.
//!
//! This module wires the pieces together; it has no knowledge of the registry protocol.

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use http::{Request, Response};
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use tokio::net::TcpListener;
use tokio::sync::{watch, Semaphore};
use tokio::task::JoinHandle;
use tokio_rustls::TlsAcceptor;

use crate::admin;
use crate::config::Config;
use crate::metrics::Metrics;
use crate::registry_api::Proxy;
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
}

/// A running proxy: both listeners bound and serving.
pub struct Server {
    pub api_addr: SocketAddr,
    pub admin_addr: SocketAddr,
    pub metrics: Arc<Metrics>,
    api_shutdown: watch::Sender<bool>,
    admin_shutdown: watch::Sender<bool>,
    ready: Arc<AtomicBool>,
    api_task: JoinHandle<()>,
    admin_task: JoinHandle<()>,
}

/// Limits every listener applies to its connections.
#[derive(Clone)]
struct ConnLimits {
    name: &'static str,
    slots: Arc<Semaphore>,
    header_timeout: Duration,
    grace: Duration,
}

impl Server {
    /// Builds the upstream clients, binds both listeners and starts serving.
    pub async fn start(config: Config) -> Result<Server, ServerError> {
        let metrics = Arc::new(Metrics::new());
        let proxy = Arc::new(Proxy::from_config(&config, metrics.clone())?);
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
        tracing::info!(
            trusted_root = %config.trusted_root.origin,
            rules = config.policies.rules.len(),
            "verification policy loaded"
        );

        let tls = config
            .tls
            .as_ref()
            .map(|t| TlsAcceptor::from(t.server_config.clone()));
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
            slots: Arc::new(Semaphore::new(config.limits.max_connections)),
            header_timeout: config.timeouts.client_header,
            grace: config.timeouts.shutdown_grace,
        };
        let admin_limits = ConnLimits {
            name: "admin",
            slots: Arc::new(Semaphore::new(64)),
            ..api_limits.clone()
        };

        let api = {
            let proxy = proxy.clone();
            move |req: Request<Incoming>| proxy.clone().handle(req)
        };
        let admin = {
            let metrics = metrics.clone();
            let ready = ready.clone();
            move |req: Request<Incoming>| {
                let resp = admin::handle(&req, &metrics, ready.load(Ordering::SeqCst));
                async move { resp }
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
            upstreams = %proxy.upstreams.keys().collect::<Vec<_>>().join(","),
            default_upstream = %config.default_upstream,
            "portcullis listening"
        );
        Ok(Server {
            api_addr,
            admin_addr,
            metrics,
            api_shutdown,
            admin_shutdown,
            ready,
            api_task,
            admin_task,
        })
    }

    /// Marks the proxy not ready, stops accepting registry requests and waits for in-flight ones
    /// (up to the grace deadline). The admin listener keeps answering meanwhile, so probes see
    /// `/readyz` 503 rather than a refused connection; it closes last.
    pub async fn shutdown(self) {
        self.ready.store(false, Ordering::SeqCst);
        self.metrics.ready.set(0);
        let _ = self.api_shutdown.send(true);
        let _ = self.api_task.await;
        let _ = self.admin_shutdown.send(true);
        let _ = self.admin_task.await;
    }
}

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
    tls: Option<TlsAcceptor>,
    handler: H,
    mut shutdown: watch::Receiver<bool>,
    limits: ConnLimits,
    metrics: Arc<Metrics>,
) where
    H: Fn(Request<Incoming>) -> F + Clone + Send + Sync + 'static,
    F: Future<Output = Response<ResponseBody>> + Send + 'static,
{
    let graceful = GracefulShutdown::new();
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_timeout)
        .keep_alive(true);
    builder
        .http2()
        .timer(TokioTimer::new())
        .keep_alive_interval(Some(Duration::from_secs(30)))
        .keep_alive_timeout(Duration::from_secs(20))
        .max_concurrent_streams(256);
    let gauge = metrics.connections.with_label_values(&[limits.name]);

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
        let _ = stream.set_nodelay(true);
        let handler = handler.clone();
        let service = hyper::service::service_fn(move |req| {
            let fut = handler(req);
            async move { Ok::<_, Infallible>(fut.await) }
        });
        let builder = builder.clone();
        let watcher = graceful.watcher();
        let tls = tls.clone();
        let gauge = gauge.clone();
        let header_timeout = limits.header_timeout;
        tokio::spawn(async move {
            gauge.inc();
            let result = match tls {
                None => {
                    let conn = builder.serve_connection(TokioIo::new(stream), service);
                    watcher.watch(conn).await
                }
                Some(acceptor) => {
                    match tokio::time::timeout(header_timeout, acceptor.accept(stream)).await {
                        Ok(Ok(tls_stream)) => {
                            let conn = builder.serve_connection(TokioIo::new(tls_stream), service);
                            watcher.watch(conn).await
                        }
                        Ok(Err(e)) => {
                            tracing::debug!(%peer, error = %e, "TLS handshake failed");
                            Ok(())
                        }
                        Err(_) => {
                            tracing::debug!(%peer, "TLS handshake timed out");
                            Ok(())
                        }
                    }
                }
            };
            if let Err(e) = result {
                tracing::debug!(%peer, error = %e, "connection ended with an error");
            }
            gauge.dec();
            drop(permit);
        });
    }
    drop(listener);
    tracing::info!(
        listener = limits.name,
        "stopped accepting; draining connections"
    );
    tokio::select! {
        _ = graceful.shutdown() => {
            tracing::info!(listener = limits.name, "all connections closed");
        }
        _ = tokio::time::sleep(limits.grace) => {
            tracing::warn!(listener = limits.name, grace = ?limits.grace, "grace period over; cutting remaining connections");
        }
    }
}
