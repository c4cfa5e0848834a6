//! The trusted root kept current over TUF (`trusted_root.tuf`): fetched from the mirror and
//! verified by the TUF client of `sigstore-trust-root` (root → timestamp → snapshot → targets,
//! signatures, thresholds, expiry, target hashes), cached on disk under `cache_dir`, and read back
//! from that cache — verified again, never trusted as it lies — when the mirror cannot be reached.
//! This module fetches; when to refresh and what to do with a new root is the server's.

use std::time::Duration;

use sigstore_trust_root::{SigstoreInstance, TufBootstrap, TufConfig};

use super::trust_root::{TrustRoot, TrustRootError};
use crate::config::TufSettings;

#[derive(Debug, thiserror::Error)]
pub enum TufError {
    #[error("trusted_root.tuf: mirror {mirror}: {reason}")]
    Fetch { mirror: String, reason: String },
    #[error(
        "trusted_root.tuf: mirror {mirror} unreachable or refused ({online}), and no usable \
         cached copy in {cache} ({offline})"
    )]
    NoRoot {
        mirror: String,
        cache: String,
        online: String,
        offline: String,
    },
    #[error("trusted_root.tuf: mirror {mirror}: timed out after {after:?}")]
    Timeout { mirror: String, after: Duration },
    #[error(transparent)]
    Root(#[from] TrustRootError),
}

/// How a trusted root was obtained at start-up.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Obtained {
    /// Fetched from the mirror now.
    Online,
    /// The mirror could not be reached: read from the verified cache.
    Cached,
}

impl Obtained {
    pub fn as_str(self) -> &'static str {
        match self {
            Obtained::Online => "online",
            Obtained::Cached => "cached",
        }
    }
}

/// Fetches the trusted root from the mirror (verified by TUF, written through to the cache),
/// or, when that fails, from the cache (verified again, with expiry judged now). The mirror's
/// error is kept in the result for the log.
pub async fn obtain(
    settings: &TufSettings,
    timeout: Duration,
) -> Result<(TrustRoot, Obtained), TufError> {
    match fetch(settings, timeout).await {
        Ok(root) => Ok((root, Obtained::Online)),
        Err(online) => match cached(settings, timeout).await {
            Ok(root) => {
                tracing::warn!(
                    mirror = %settings.mirror,
                    error = %online,
                    cache = %settings.cache_dir.display(),
                    "TUF mirror unavailable: using the verified cached trusted root"
                );
                Ok((root, Obtained::Cached))
            }
            Err(offline) => Err(TufError::NoRoot {
                mirror: settings.mirror.to_string(),
                cache: settings.cache_dir.display().to_string(),
                online: online.to_string(),
                offline: offline.to_string(),
            }),
        },
    }
}

/// One refresh from the mirror: the current trusted root, verified by TUF.
pub async fn fetch(settings: &TufSettings, timeout: Duration) -> Result<TrustRoot, TufError> {
    load(settings, timeout, false).await
}

/// The trusted root from the cache alone: no network.
pub async fn cached(settings: &TufSettings, timeout: Duration) -> Result<TrustRoot, TufError> {
    load(settings, timeout, true).await
}

async fn load(
    settings: &TufSettings,
    timeout: Duration,
    offline: bool,
) -> Result<TrustRoot, TufError> {
    let mirror = settings.mirror.to_string();
    let bootstrap = match &settings.root {
        Some(root) => TufBootstrap::trusted(root.as_ref()),
        None => TufBootstrap::trusted(SigstoreInstance::PublicGood.tuf_root()),
    };
    // Every request of a refresh is bounded (a mirror that stalls must not hang it), and the
    // refresh as a whole below.
    let client = sigstore_trust_root::reqwest::Client::builder()
        .connect_timeout(timeout)
        .timeout(timeout)
        .user_agent(concat!("portcullis/", env!("CARGO_PKG_VERSION")))
        .build()
        .map_err(|e| TufError::Fetch {
            mirror: mirror.clone(),
            reason: format!("building the HTTP client: {e}"),
        })?;
    let mut config = TufConfig::custom(mirror.trim_end_matches('/'), bootstrap)
        .with_cache_dir(settings.cache_dir.clone())
        .with_http_client(client);
    if offline {
        config = config.offline();
    }
    let fetched = tokio::time::timeout(
        timeout * 4,
        sigstore_trust_root::TrustedRoot::from_tuf(config),
    )
    .await
    .map_err(|_| TufError::Timeout {
        mirror: mirror.clone(),
        after: timeout * 4,
    })?
    .map_err(|e| TufError::Fetch {
        mirror: mirror.clone(),
        reason: e.to_string(),
    })?;
    // The fingerprint is over the root as the verifier reads it: a rotation changes it, a
    // refresh that brings the same root does not.
    let json = serde_json::to_vec(&fetched).map_err(|e| TufError::Fetch {
        mirror: mirror.clone(),
        reason: format!("re-encoding the trusted root: {e}"),
    })?;
    Ok(TrustRoot::from_json(&json, format!("TUF {mirror}"))?)
}
