//! The validated settings the rest of the program reads: upstreams and their credentials, the
//! TLS set-up, limits, timeouts, cache sizes, the trusted root's source and the admin listener's
//! access. [`Limits`],
//! [`Timeouts`] and [`CacheSettings`] are deserialized as written (with their defaults); the
//! others are built by `validate` from their raw form.
//!
//! Nothing here is a signature or HTTP type: the trusted root is kept as the JSON the
//! configuration names, and `signature::TrustRoot` is built from it.

use std::fmt;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use rustls_pki_types::CertificateDer;
use serde::Deserialize;
use url::Url;

/// A password or token. Its `Debug` and `Display` never show the value.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(pub(super) String);

impl Secret {
    pub fn new(value: String) -> Secret {
        Secret(value)
    }

    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

#[derive(Debug, Clone)]
pub struct Credentials {
    pub username: String,
    pub password: Secret,
    /// Where the password came from (`password_file /run/secrets/x`, `password_env X`, `password`).
    pub origin: String,
}

#[derive(Debug, Clone)]
pub struct UpstreamConfig {
    /// The registry's base URL (scheme, host, optional port; no path).
    pub url: Url,
    pub credentials: Option<Credentials>,
    /// Extra CA certificates trusted for this upstream, on top of the system and webpki roots.
    pub ca_certs: Vec<CertificateDer<'static>>,
    /// How long a tag's resolution is trusted without asking the upstream (`None`: every tag
    /// request revalidates with a `HEAD`).
    pub tag_ttl: Option<Duration>,
    /// Serve a tag from its last verified resolution while the upstream is unreachable.
    pub serve_stale_tags: bool,
    /// Token realm hosts (`host` or `host:port`) besides the upstream's own host that may receive
    /// its credentials. Well-known pairs (Docker Hub's `auth.docker.io`) are added by `upstream`.
    pub token_realms: Vec<String>,
}

/// The registry listener's TLS set-up, built (and so the key checked against the certificate) at
/// load time. HTTP/2 and HTTP/1.1 are offered by ALPN.
#[derive(Debug)]
pub struct TlsConfig {
    pub server_config: Arc<rustls::ServerConfig>,
    pub cert_path: PathBuf,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Limits {
    pub max_manifest_bytes: usize,
    pub max_connections: usize,
    /// How many of `max_connections` one client address may hold at once.
    pub max_connections_per_address: usize,
    /// Bound on small upstream JSON documents: token responses, error bodies.
    pub max_token_bytes: usize,
    /// Bound on one page of a referrers response (or the fallback index).
    pub max_referrers_bytes: usize,
    pub max_redirects: usize,
    /// Bound on one signature layer, bundle or signature manifest.
    pub max_signature_bytes: usize,
    /// How many signatures (bundle referrers plus `.sig` layers) are examined per digest.
    pub max_signatures: usize,
    /// How many pages of a referrers listing are followed.
    pub max_referrers_pages: usize,
    /// How many child manifests of a verified index are remembered as covered.
    pub max_index_children: usize,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Timeouts {
    #[serde(with = "humantime_serde")]
    pub connect: Duration,
    /// From sending an upstream request to receiving its response headers.
    #[serde(with = "humantime_serde")]
    pub response_header: Duration,
    /// Longest pause between two chunks of a body being read or streamed.
    #[serde(with = "humantime_serde")]
    pub read_idle: Duration,
    /// How long an idle pooled upstream connection is kept.
    #[serde(with = "humantime_serde")]
    pub pool_idle: Duration,
    /// How long a client may take to send its request headers (and the TLS handshake), counted
    /// from the moment its connection is accepted.
    #[serde(with = "humantime_serde")]
    pub client_header: Duration,
    /// How long a keep-alive connection with no request in flight is kept open.
    #[serde(with = "humantime_serde")]
    pub client_idle: Duration,
    /// The whole of one upstream exchange for a document (manifest, token, signature material,
    /// referrers page, tag list): from sending the request to the last body byte.
    #[serde(with = "humantime_serde")]
    pub exchange: Duration,
    /// How long in-flight requests may run after SIGTERM before they are cut.
    #[serde(with = "humantime_serde")]
    pub shutdown_grace: Duration,
    /// The whole signature lookup (discovery and verification) of one digest.
    #[serde(with = "humantime_serde")]
    pub signature_lookup: Duration,
}

/// Cache settings: verdicts and manifests.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CacheSettings {
    /// How long a verified verdict is kept.
    #[serde(with = "humantime_serde")]
    pub verdict_ttl: Duration,
    /// How long an unverified verdict is kept (lookup faults are never cached).
    #[serde(with = "humantime_serde")]
    pub failure_ttl: Duration,
    pub max_verdicts: u64,
    /// Bound on the bytes of manifests held in memory (served by digest without the upstream).
    pub manifest_bytes: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_manifest_bytes: 4 * 1024 * 1024,
            max_connections: 4096,
            max_connections_per_address: 1024,
            max_token_bytes: 64 * 1024,
            max_referrers_bytes: 4 * 1024 * 1024,
            max_redirects: 5,
            max_signature_bytes: 1024 * 1024,
            max_signatures: 32,
            max_referrers_pages: 8,
            max_index_children: 1024,
        }
    }
}

impl Default for Timeouts {
    fn default() -> Self {
        Timeouts {
            connect: Duration::from_secs(5),
            response_header: Duration::from_secs(30),
            read_idle: Duration::from_secs(30),
            pool_idle: Duration::from_secs(90),
            client_header: Duration::from_secs(10),
            client_idle: Duration::from_secs(60),
            exchange: Duration::from_secs(60),
            shutdown_grace: Duration::from_secs(30),
            signature_lookup: Duration::from_secs(60),
        }
    }
}

impl Default for CacheSettings {
    fn default() -> Self {
        CacheSettings {
            verdict_ttl: Duration::from_secs(3600),
            failure_ttl: Duration::from_secs(30),
            max_verdicts: 100_000,
            manifest_bytes: 32 * 1024 * 1024,
        }
    }
}

/// The Sigstore trusted root the configuration names: the JSON of its file, read at load, or
/// the embedded public-good root.
#[derive(Debug, Clone)]
pub struct TrustedRoot {
    /// The file's path, `embedded public-good root`, or `TUF <mirror>`.
    pub origin: String,
    pub source: TrustedRootSource,
}

#[derive(Debug, Clone)]
pub enum TrustedRootSource {
    /// The public-good root embedded in the program.
    Embedded,
    /// A `trusted_root.json` read at start-up (and at each reload).
    File(Arc<[u8]>),
    /// Fetched and kept current over TUF.
    Tuf(TufSettings),
}

/// `trusted_root.tuf`.
#[derive(Debug, Clone)]
pub struct TufSettings {
    pub mirror: Url,
    /// The TUF root metadata to start from; `None`: the public-good one embedded in the program
    /// (only with the public-good mirror).
    pub root: Option<Arc<[u8]>>,
    /// How often the mirror is asked for new metadata.
    pub refresh: Duration,
    /// Verified metadata and targets, kept so that a start-up without the mirror still works.
    pub cache_dir: PathBuf,
}

/// The public-good instance's TUF repository.
pub const PUBLIC_GOOD_TUF_MIRROR: &str = "https://tuf-repo-cdn.sigstore.dev";

impl TrustedRoot {
    pub fn public_good() -> TrustedRoot {
        TrustedRoot {
            origin: "embedded public-good root".to_owned(),
            source: TrustedRootSource::Embedded,
        }
    }
}

/// An admin endpoint, for `admin.open`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AdminEndpoint {
    Metrics,
    Healthz,
    Readyz,
}

impl AdminEndpoint {
    pub fn path(self) -> &'static str {
        match self {
            AdminEndpoint::Metrics => "/metrics",
            AdminEndpoint::Healthz => "/healthz",
            AdminEndpoint::Readyz => "/readyz",
        }
    }
}

/// The admin listener's access (`admin`): with a token, every endpoint but the `open` ones needs
/// `Authorization: Bearer <token>`, or basic credentials of `user` with the token as password
/// (what a browser sends to the console after its prompt).
#[derive(Debug, Clone)]
pub struct AdminSettings {
    pub token: Option<Secret>,
    pub open: Vec<AdminEndpoint>,
    pub user: String,
}

impl Default for AdminSettings {
    fn default() -> Self {
        AdminSettings {
            token: None,
            open: Vec::new(),
            user: DEFAULT_ADMIN_USER.to_owned(),
        }
    }
}

/// The user name of the admin listener's basic credentials unless `admin.user` names another.
pub const DEFAULT_ADMIN_USER: &str = "admin";

/// Which database the configuration names (`database`).
#[derive(Debug, Clone)]
pub enum DatabaseSettings {
    /// `database: sqlite` (or no `database` key): the file `state_dir/portcullis.db`.
    Sqlite { path: PathBuf },
    /// `database: { url, password_env }`.
    Postgres {
        /// The connection URL as written, without a password.
        url: String,
        /// The password read from `password_env` at load, if any.
        password: Option<Secret>,
        /// The variable it came from, for messages.
        password_env: Option<String>,
    },
}

impl DatabaseSettings {
    /// What `check-config` and the start-up log say about the database: never the password.
    pub fn describe(&self) -> String {
        match self {
            DatabaseSettings::Sqlite { path } => format!("sqlite {}", path.display()),
            DatabaseSettings::Postgres {
                url, password_env, ..
            } => match password_env {
                Some(var) => format!("postgresql {url} (password from ${var})"),
                None => format!("postgresql {url}"),
            },
        }
    }
}

/// The inventory (`inventory`): whether the SBOMs of pulled digests are ingested, and how long a
/// digest found with no SBOM waits before it is looked at again (an SBOM may be attached after
/// the image was pushed).
#[derive(Debug, Clone)]
pub struct InventorySettings {
    pub ingest: bool,
    pub recheck: Duration,
}

impl Default for InventorySettings {
    fn default() -> Self {
        InventorySettings {
            ingest: true,
            recheck: Duration::from_secs(6 * 3600),
        }
    }
}

/// The ledger (`ledger`): whether pulls are recorded, and how long pull records are kept.
#[derive(Debug, Clone)]
pub struct LedgerSettings {
    /// `ledger.enabled: false` records no pulls (the database is still opened for the reports).
    pub enabled: bool,
    pub retention: Duration,
}

impl Default for LedgerSettings {
    fn default() -> Self {
        LedgerSettings {
            enabled: true,
            retention: Duration::from_secs(90 * 24 * 3600),
        }
    }
}
