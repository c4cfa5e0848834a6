//! Running for months: the configuration and the trusted root replaced while serving.
//!
//! What is in force lives in [`Live`]: the proxy (upstream clients, rules, attestors, trust root,
//! client authentication), the TLS acceptor and the admin settings, each behind an atomic pointer.
//! A request takes the proxy once when it starts and finishes under it, so no request is decided
//! by a mix of two configurations. A reload reads and validates the whole configuration first and
//! swaps only then; a configuration that does not validate changes nothing. Verdicts stay valid
//! across a reload because their cache keys hold the rule and trust-root fingerprints.
//!
//! Triggers: [`Reloader::reload`] (called on `SIGHUP` by `main`, and by tests), a change in the
//! configuration file or any file it names (`watch_config`, by polling: Kubernetes replaces a
//! mounted ConfigMap or Secret by swapping a symlink, which a watch on the file itself misses),
//! and the TUF refresh of the trusted root ([`Reloader::use_root`]).
//!
//! Keys that only a restart applies (the listeners and their connection limits, `state_dir`, `storage`,
//! cache sizes, `storage`, `database`, `ledger`) are named in the log when they change; the rest of the reload goes ahead.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use arc_swap::ArcSwap;
use sha2::{Digest as _, Sha256};
use tokio_rustls::TlsAcceptor;

use crate::config::{Config, ConfigError, Source, TrustedRoot, TrustedRootSource, TufSettings};
use crate::metrics::Metrics;
use crate::registry_api::Proxy;
use crate::signature::{tuf, TrustRoot, TufError};
use crate::upstream::UpstreamError;

#[derive(Debug, thiserror::Error)]
pub enum ReloadError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error(transparent)]
    TrustRoot(#[from] TufError),
    #[error(transparent)]
    Upstream(#[from] UpstreamError),
}

/// What serves requests now.
pub struct Live {
    pub proxy: ArcSwap<Proxy>,
    /// `None` when the API listener speaks plain HTTP (turning TLS on or off needs a restart).
    pub tls: Option<Arc<ArcSwap<TlsAcceptor>>>,
    /// The configuration in force (the admin listener reads its token, the console its rules).
    pub config: ArcSwap<Config>,
}

/// What a reload did.
#[derive(Debug, Default)]
pub struct Reloaded {
    /// Keys whose new values apply only after a restart.
    pub needs_restart: Vec<&'static str>,
    /// The trusted root changed (a new file, or new TUF settings).
    pub new_trust_root: bool,
}

pub struct Reloader {
    live: Arc<Live>,
    source: Source,
    metrics: Arc<Metrics>,
    /// The configuration and trust root in force; held while a reload runs, so reloads and
    /// trust-root refreshes happen one at a time.
    in_force: tokio::sync::Mutex<InForce>,
}

struct InForce {
    config: Arc<Config>,
    root: Arc<TrustRoot>,
}

// === impl Reloader ===

impl Reloader {
    pub fn new(
        live: Arc<Live>,
        config: Arc<Config>,
        root: Arc<TrustRoot>,
        metrics: Arc<Metrics>,
    ) -> Self {
        metrics.config_loaded.set(unix_now());
        metrics.trust_root_loaded.set(unix_now());
        Reloader {
            live,
            source: config.source.clone(),
            metrics,
            in_force: tokio::sync::Mutex::new(InForce { config, root }),
        }
    }

    /// Reads the configuration again (the same file, the same environment overrides) and puts
    /// it in force, or leaves the one in force as it is when the new one does not validate.
    pub async fn reload(&self) -> Result<Reloaded, ReloadError> {
        let mut in_force = self.in_force.lock().await;
        let result = self.try_reload(&mut in_force).await;
        match &result {
            Ok(done) => {
                self.metrics
                    .config_reloads
                    .with_label_values(&["success"])
                    .inc();
                self.metrics.config_loaded.set(unix_now());
                if done.needs_restart.is_empty() {
                    tracing::info!(source = %self.source, new_trust_root = done.new_trust_root, "configuration reloaded");
                } else {
                    tracing::warn!(
                        source = %self.source,
                        new_trust_root = done.new_trust_root,
                        needs_restart = %done.needs_restart.join(", "),
                        "configuration reloaded; the changed keys named need a restart to take effect"
                    );
                }
            }
            Err(e) => {
                self.metrics
                    .config_reloads
                    .with_label_values(&["failure"])
                    .inc();
                tracing::error!(source = %self.source, error = %e, "configuration reload refused; the configuration in force stays");
            }
        }
        result
    }

    async fn try_reload(&self, in_force: &mut InForce) -> Result<Reloaded, ReloadError> {
        let path = match &self.source {
            Source::File(p) => Some(p.as_path()),
            Source::Embedded => None,
        };
        let config = Config::load(path)?;
        let needs_restart = restart_only_changes(&in_force.config, &config);
        // The same trusted-root source keeps the root in force (for TUF, the latest refresh).
        let new_trust_root = !same_source(&in_force.config.trusted_root, &config.trusted_root);
        let root = if new_trust_root {
            Arc::new(TrustRoot::obtain(&config.trusted_root, config.timeouts.connect).await?)
        } else {
            in_force.root.clone()
        };
        let proxy = self.live.proxy.load().reloaded(&config, root.clone())?;
        super::warn_insecure(&config);
        if let (Some(slot), Some(tls)) = (&self.live.tls, &config.tls) {
            slot.store(Arc::new(TlsAcceptor::from(tls.server_config.clone())));
        }
        let config = Arc::new(config);
        self.live.config.store(config.clone());
        self.live.proxy.store(Arc::new(proxy));
        if new_trust_root {
            self.metrics.trust_root_loaded.set(unix_now());
        }
        in_force.config = config;
        in_force.root = root;
        Ok(Reloaded {
            needs_restart,
            new_trust_root,
        })
    }

    /// Puts `root`, fetched from `from`, in force under the configuration in force; `false` when
    /// it is the root in force already.
    /// Only while the configuration in force still names `from` as its trusted root: a reload
    /// during the refresh may have named another source, whose root is then the one in force.
    pub async fn use_root(&self, root: TrustRoot, from: &TufSettings) -> Result<bool, ReloadError> {
        let mut in_force = self.in_force.lock().await;
        let still_named = same_source(
            &in_force.config.trusted_root,
            &TrustedRoot {
                origin: String::new(),
                source: TrustedRootSource::Tuf(from.clone()),
            },
        );
        if !still_named || root.fingerprint == in_force.root.fingerprint {
            return Ok(false);
        }
        let root = Arc::new(root);
        let proxy = self
            .live
            .proxy
            .load()
            .reloaded(&in_force.config, root.clone())?;
        self.live.proxy.store(Arc::new(proxy));
        self.metrics.trust_root_loaded.set(unix_now());
        in_force.root = root;
        Ok(true)
    }

    /// Refreshes the trusted root over TUF every `refresh` while the configuration in force
    /// says so; a failed refresh keeps the root in force.
    pub async fn refresh_trust_root(self: Arc<Self>) {
        loop {
            let settings = {
                let in_force = self.in_force.lock().await;
                match &in_force.config.trusted_root.source {
                    TrustedRootSource::Tuf(t) => {
                        Some((t.clone(), in_force.config.timeouts.connect))
                    }
                    _ => None,
                }
            };
            let Some((settings, timeout)) = settings else {
                // Not TUF now; a reload may make it so.
                tokio::time::sleep(Duration::from_secs(60)).await;
                continue;
            };
            tokio::time::sleep(settings.refresh).await;
            let result = match tuf::fetch(&settings, timeout).await {
                Ok(root) => self
                    .use_root(root, &settings)
                    .await
                    .map_err(|e| e.to_string()),
                Err(e) => Err(e.to_string()),
            };
            let label = match &result {
                Ok(true) => "updated",
                Ok(false) => "unchanged",
                Err(_) => "failure",
            };
            self.metrics
                .trust_root_refreshes
                .with_label_values(&[label])
                .inc();
            match result {
                Ok(true) => {
                    tracing::info!(mirror = %settings.mirror, "new trusted root from TUF in force")
                }
                Ok(false) => tracing::debug!(mirror = %settings.mirror, "trusted root unchanged"),
                Err(error) => {
                    tracing::warn!(mirror = %settings.mirror, %error, "trusted root refresh failed; the root in force stays")
                }
            }
        }
    }

    /// Reloads when the configuration file or a file it names changes (`watch_config`),
    /// checking every `every`.
    pub async fn watch(self: Arc<Self>, every: Duration) {
        let mut seen = self.watched_digest().await;
        loop {
            tokio::time::sleep(every).await;
            let watching = self.in_force.lock().await.config.watch_config;
            let now = self.watched_digest().await;
            if now == seen {
                continue;
            }
            seen = now;
            if watching {
                // The outcome is logged and counted by `reload`.
                let _ = self.reload().await;
                // What the reload read is the state to compare with next.
                seen = self.watched_digest().await;
            }
        }
    }

    /// One hash over the configuration file and every file it names (a missing file hashes as
    /// such, so that its return is a change too).
    async fn watched_digest(&self) -> [u8; 32] {
        let mut files: Vec<PathBuf> = self.in_force.lock().await.config.files.clone();
        if let Source::File(p) = &self.source {
            files.push(p.clone());
        }
        tokio::task::spawn_blocking(move || {
            let mut h = Sha256::new();
            for f in files {
                h.update(f.as_os_str().as_encoded_bytes());
                match std::fs::read(&f) {
                    Ok(bytes) => {
                        h.update([1]);
                        h.update(Sha256::digest(&bytes));
                    }
                    Err(_) => h.update([0]),
                }
            }
            <[u8; 32]>::from(h.finalize())
        })
        .await
        .unwrap_or([0; 32])
    }
}

/// The keys whose change a reload cannot apply, by name.
fn restart_only_changes(old: &Config, new: &Config) -> Vec<&'static str> {
    let mut changed = Vec::new();
    let mut check = |key: &'static str, differs: bool| {
        if differs {
            changed.push(key);
        }
    };
    check("listen", old.listen != new.listen);
    check("admin_listen", old.admin_listen != new.admin_listen);
    check("tls (on or off)", old.tls.is_some() != new.tls.is_some());
    check("state_dir", old.state_dir != new.state_dir);
    check(
        "storage",
        format!("{:?}", old.storage) != format!("{:?}", new.storage),
    );
    // The ledger's database and writer are opened once, at start-up.
    check(
        "database",
        format!("{:?}", old.database) != format!("{:?}", new.database),
    );
    check(
        "ledger",
        format!("{:?}", old.ledger) != format!("{:?}", new.ledger),
    );
    // So is the SBOM ingest's worker, with its recheck interval.
    check(
        "inventory",
        format!("{:?}", old.inventory) != format!("{:?}", new.inventory),
    );
    check(
        "limits.max_connections",
        old.limits.max_connections != new.limits.max_connections,
    );
    check(
        "limits.max_connections_per_address",
        old.limits.max_connections_per_address != new.limits.max_connections_per_address,
    );
    check(
        "timeouts.client_header",
        old.timeouts.client_header != new.timeouts.client_header,
    );
    check(
        "timeouts.client_idle",
        old.timeouts.client_idle != new.timeouts.client_idle,
    );
    check(
        "timeouts.shutdown_grace",
        old.timeouts.shutdown_grace != new.timeouts.shutdown_grace,
    );
    check(
        "cache",
        old.cache.verdict_ttl != new.cache.verdict_ttl
            || old.cache.failure_ttl != new.cache.failure_ttl
            || old.cache.max_verdicts != new.cache.max_verdicts
            || old.cache.manifest_bytes != new.cache.manifest_bytes,
    );
    changed
}

/// Whether two configurations name the same trusted root (for TUF: the same repository, start
/// root and cache; the refresh interval is read at each refresh).
fn same_source(a: &TrustedRoot, b: &TrustedRoot) -> bool {
    match (&a.source, &b.source) {
        (TrustedRootSource::Embedded, TrustedRootSource::Embedded) => true,
        (TrustedRootSource::File(x), TrustedRootSource::File(y)) => x == y,
        (TrustedRootSource::Tuf(x), TrustedRootSource::Tuf(y)) => {
            x.mirror == y.mirror && x.root == y.root && x.cache_dir == y.cache_dir
        }
        _ => false,
    }
}

fn unix_now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}
