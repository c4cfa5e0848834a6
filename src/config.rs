//! Configuration: the YAML file (or the embedded default) plus `PORTCULLIS__A__B` environment
//! overrides, read with the `config` crate into raw serde structs ([`raw`]), then validated into
//! the typed [`Config`] that the rest of the program uses.
//!
//! Everything that can be wrong with a configuration is found here, at start-up, and reported with
//! the key and the file it came from: unknown keys, bad URLs, unreadable credential or certificate
//! files. This module reads files named by the configuration but opens no network connection.

use std::collections::BTreeMap;
use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use std::sync::Arc;

use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use url::Url;

use crate::oci::ImageName;
use crate::policy::attestation::{predicate_type_uris, Condition, Requirement};
use crate::policy::attestor::PublicKey;
use crate::policy::{Attestor, Matcher, Mode, Pattern, PolicySet, RuleSpec, Unmatched};
use crate::signature::TrustRoot;

/// The configuration `portcullis serve` runs on when no `--config` is given.
pub const EMBEDDED_DEFAULT: &str = include_str!("../config/default.yaml");

/// Where a configuration came from, for error messages.
#[derive(Debug, Clone)]
pub enum Source {
    Embedded,
    File(PathBuf),
}

impl fmt::Display for Source {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Source::Embedded => f.write_str("<embedded default config>"),
            Source::File(p) => write!(f, "{}", p.display()),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("{source_name}{}: {error}", env_note(overrides))]
    Read {
        source_name: Source,
        /// The `PORTCULLIS__*` variables that were applied on top of the file.
        overrides: Vec<String>,
        error: Box<config::ConfigError>,
    },
    #[error("{source_name}: key `{key}`: {reason}")]
    Invalid {
        source_name: Source,
        key: String,
        reason: String,
    },
    #[error("{source_name}: key `{key}`: cannot read {}: {error}", path.display())]
    File {
        source_name: Source,
        key: String,
        path: PathBuf,
        error: std::io::Error,
    },
}

fn env_note(overrides: &[String]) -> String {
    if overrides.is_empty() {
        String::new()
    } else {
        format!(" with environment overrides {}", overrides.join(", "))
    }
}

/// A password or token. Its `Debug` and `Display` never show the value.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

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
    pub server_config: std::sync::Arc<rustls::ServerConfig>,
    pub cert_path: PathBuf,
}

#[derive(Debug, Clone)]
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

#[derive(Debug, Clone)]
pub struct Timeouts {
    pub connect: Duration,
    /// From sending an upstream request to receiving its response headers.
    pub response_header: Duration,
    /// Longest pause between two chunks of a body being read or streamed.
    pub read_idle: Duration,
    /// How long an idle pooled upstream connection is kept.
    pub pool_idle: Duration,
    /// How long a client may take to send its request headers (and the TLS handshake), counted
    /// from the moment its connection is accepted.
    pub client_header: Duration,
    /// How long a keep-alive connection with no request in flight is kept open.
    pub client_idle: Duration,
    /// The whole of one upstream exchange for a document (manifest, token, signature material,
    /// referrers page, tag list): from sending the request to the last body byte.
    pub exchange: Duration,
    /// How long in-flight requests may run after SIGTERM before they are cut.
    pub shutdown_grace: Duration,
    /// The whole signature lookup (discovery and verification) of one digest.
    pub signature_lookup: Duration,
}

/// Verdict cache settings.
#[derive(Debug, Clone)]
pub struct CacheSettings {
    /// How long a verified verdict is kept.
    pub verdict_ttl: Duration,
    /// How long an unverified verdict is kept (lookup faults are never cached).
    pub failure_ttl: Duration,
    pub max_verdicts: u64,
    /// Bound on the bytes of manifests held in memory (served by digest without the upstream).
    pub manifest_bytes: u64,
}

/// The validated configuration.
#[derive(Debug)]
pub struct Config {
    pub source: Source,
    pub listen: SocketAddr,
    pub admin_listen: SocketAddr,
    pub tls: Option<TlsConfig>,
    pub default_upstream: String,
    pub upstreams: BTreeMap<String, UpstreamConfig>,
    pub limits: Limits,
    pub timeouts: Timeouts,
    pub trusted_root: Arc<TrustRoot>,
    pub cache: CacheSettings,
    pub policies: PolicySet,
    /// Who may pull (`auth`); `None`: anyone who can connect.
    pub auth: Option<crate::auth::Settings>,
    pub admin: AdminSettings,
}

/// An admin endpoint, for `admin.open`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Deserialize)]
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
/// `Authorization: Bearer <token>`.
#[derive(Debug, Clone, Default)]
pub struct AdminSettings {
    pub token: Option<Secret>,
    pub open: Vec<AdminEndpoint>,
}

pub mod raw {
    //! The configuration as written: serde structs, every key optional where a default exists,
    //! unknown keys rejected.
    use super::*;
    use serde::Deserialize;

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    pub struct RawConfig {
        pub listen: String,
        pub admin_listen: String,
        pub tls: Option<RawTls>,
        pub default_upstream: String,
        pub upstreams: BTreeMap<String, RawUpstream>,
        #[serde(default)]
        pub limits: RawLimits,
        #[serde(default)]
        pub timeouts: RawTimeouts,
        pub trusted_root: Option<PathBuf>,
        #[serde(default)]
        pub cache: RawCache,
        #[serde(default)]
        pub unmatched: Unmatched,
        #[serde(default)]
        pub policies: Vec<RawPolicy>,
        pub auth: Option<RawAuth>,
        #[serde(default)]
        pub admin: RawAdmin,
    }

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    pub struct RawAuth {
        pub htpasswd: Option<PathBuf>,
        pub client_ca: Option<PathBuf>,
        #[serde(default)]
        pub access: Vec<RawAccess>,
        pub realm: Option<String>,
    }

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    pub struct RawAccess {
        #[serde(rename = "match")]
        pub patterns: Vec<String>,
        pub users: Vec<String>,
    }

    #[derive(Debug, Default, Deserialize)]
    #[serde(deny_unknown_fields)]
    pub struct RawAdmin {
        pub token_file: Option<PathBuf>,
        #[serde(default)]
        pub open: Vec<AdminEndpoint>,
    }

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields, default)]
    pub struct RawCache {
        #[serde(with = "humantime_serde")]
        pub verdict_ttl: Duration,
        #[serde(with = "humantime_serde")]
        pub failure_ttl: Duration,
        pub max_verdicts: u64,
        pub manifest_bytes: u64,
    }

    impl Default for RawCache {
        fn default() -> Self {
            RawCache {
                verdict_ttl: Duration::from_secs(3600),
                failure_ttl: Duration::from_secs(30),
                max_verdicts: 100_000,
                manifest_bytes: 32 * 1024 * 1024,
            }
        }
    }

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    pub struct RawPolicy {
        pub name: String,
        #[serde(rename = "match")]
        pub patterns: Vec<String>,
        /// Defaults to enforce: a rule written without a mode fails closed.
        pub mode: Option<Mode>,
        pub count: Option<usize>,
        #[serde(default)]
        pub attestors: Vec<RawAttestor>,
        pub signature_repository: Option<String>,
        #[serde(default)]
        pub attestations: Vec<RawAttestation>,
    }

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    pub struct RawAttestation {
        /// A label for messages; defaults to the predicate type as written.
        pub name: Option<String>,
        pub predicate_type: String,
        #[serde(default)]
        pub conditions: Vec<String>,
        /// Accept BuildKit's unsigned attestation manifests for this requirement.
        #[serde(default)]
        pub allow_unsigned: bool,
    }

    /// Exactly one of `keyless` and `key`.
    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    pub struct RawAttestor {
        pub keyless: Option<RawKeyless>,
        pub key: Option<RawKey>,
    }

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    pub struct RawKeyless {
        pub subject: Option<String>,
        pub subject_regexp: Option<String>,
        pub issuer: Option<String>,
        pub issuer_regexp: Option<String>,
    }

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    pub struct RawKey {
        /// A PEM file path (relative to the config file) or the PEM text itself.
        pub public_key: String,
        #[serde(default)]
        pub ignore_tlog: bool,
    }

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    pub struct RawTls {
        pub cert: PathBuf,
        pub key: PathBuf,
    }

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    pub struct RawUpstream {
        pub url: String,
        pub username: Option<String>,
        pub password: Option<String>,
        pub password_file: Option<PathBuf>,
        pub password_env: Option<String>,
        pub ca_file: Option<PathBuf>,
        #[serde(default, with = "humantime_serde")]
        pub tag_ttl: Option<Duration>,
        #[serde(default)]
        pub serve_stale_tags: bool,
        #[serde(default)]
        pub token_realms: Vec<String>,
    }

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields, default)]
    pub struct RawLimits {
        pub max_manifest_bytes: usize,
        pub max_connections: usize,
        pub max_connections_per_address: usize,
        pub max_token_bytes: usize,
        pub max_referrers_bytes: usize,
        pub max_redirects: usize,
        pub max_signature_bytes: usize,
        pub max_signatures: usize,
        pub max_referrers_pages: usize,
        pub max_index_children: usize,
    }

    impl Default for RawLimits {
        fn default() -> Self {
            RawLimits {
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

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields, default)]
    pub struct RawTimeouts {
        #[serde(with = "humantime_serde")]
        pub connect: Duration,
        #[serde(with = "humantime_serde")]
        pub response_header: Duration,
        #[serde(with = "humantime_serde")]
        pub read_idle: Duration,
        #[serde(with = "humantime_serde")]
        pub pool_idle: Duration,
        #[serde(with = "humantime_serde")]
        pub client_header: Duration,
        #[serde(with = "humantime_serde")]
        pub client_idle: Duration,
        #[serde(with = "humantime_serde")]
        pub exchange: Duration,
        #[serde(with = "humantime_serde")]
        pub shutdown_grace: Duration,
        #[serde(with = "humantime_serde")]
        pub signature_lookup: Duration,
    }

    impl Default for RawTimeouts {
        fn default() -> Self {
            RawTimeouts {
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
}

// === impl Config ===

impl Config {
    /// Reads `path` (or the embedded default), applies `PORTCULLIS__*` environment overrides and
    /// validates the result.
    pub fn load(path: Option<&Path>) -> Result<Config, ConfigError> {
        let env = config::Environment::with_prefix("PORTCULLIS")
            .prefix_separator("__")
            .separator("__")
            .try_parsing(true);
        let overrides = std::env::vars_os()
            .filter_map(|(k, _)| k.into_string().ok())
            .filter(|k| k.starts_with("PORTCULLIS__"))
            .collect();
        Self::load_with_env(path, env, overrides)
    }

    /// Validates `yaml` as a configuration file read from `source` (relative paths resolve
    /// against its directory), without environment overrides: pure but for the files the
    /// configuration names. For the fuzz targets (`fuzz/`).
    pub fn from_yaml(yaml: &str, source: Source) -> Result<Config, ConfigError> {
        let read_err = |error| ConfigError::Read {
            source_name: source.clone(),
            overrides: Vec::new(),
            error: Box::new(error),
        };
        let raw: raw::RawConfig = config::Config::builder()
            .add_source(config::File::from_str(yaml, config::FileFormat::Yaml))
            .build()
            .and_then(|c| c.try_deserialize())
            .map_err(read_err)?;
        let base_dir = match &source {
            Source::File(p) => p.parent().map(Path::to_path_buf).unwrap_or_default(),
            Source::Embedded => PathBuf::new(),
        };
        Validator { source, base_dir }.validate(raw)
    }

    fn load_with_env(
        path: Option<&Path>,
        env: config::Environment,
        overrides: Vec<String>,
    ) -> Result<Config, ConfigError> {
        let source = match path {
            Some(p) => Source::File(p.to_path_buf()),
            None => Source::Embedded,
        };
        let builder = config::Config::builder();
        let builder = match path {
            Some(p) => builder.add_source(
                config::File::from(p)
                    .format(config::FileFormat::Yaml)
                    .required(true),
            ),
            None => builder.add_source(config::File::from_str(
                EMBEDDED_DEFAULT,
                config::FileFormat::Yaml,
            )),
        };
        let read_err = |error| ConfigError::Read {
            source_name: source.clone(),
            overrides: overrides.clone(),
            error: Box::new(error),
        };
        let raw: raw::RawConfig = builder
            .add_source(env)
            .build()
            .and_then(|c| c.try_deserialize())
            .map_err(read_err)?;
        let base_dir = path
            .and_then(Path::parent)
            .map(Path::to_path_buf)
            .unwrap_or_default();
        Validator { source, base_dir }.validate(raw)
    }
}

/// Turns a [`raw::RawConfig`] into a [`Config`], resolving relative file paths against the
/// directory of the configuration file.
struct Validator {
    source: Source,
    base_dir: PathBuf,
}

impl Validator {
    fn invalid(&self, key: impl Into<String>, reason: impl Into<String>) -> ConfigError {
        ConfigError::Invalid {
            source_name: self.source.clone(),
            key: key.into(),
            reason: reason.into(),
        }
    }

    fn path(&self, p: &Path) -> PathBuf {
        if p.is_absolute() {
            p.to_path_buf()
        } else {
            self.base_dir.join(p)
        }
    }

    fn read_file(&self, key: &str, p: &Path) -> Result<(PathBuf, Vec<u8>), ConfigError> {
        let path = self.path(p);
        std::fs::read(&path)
            .map(|bytes| (path.clone(), bytes))
            .map_err(|error| ConfigError::File {
                source_name: self.source.clone(),
                key: key.to_owned(),
                path,
                error,
            })
    }

    fn addr(&self, key: &str, s: &str) -> Result<SocketAddr, ConfigError> {
        s.parse().map_err(|e| {
            self.invalid(
                key,
                format!("{s:?} is not an address like 0.0.0.0:5000: {e}"),
            )
        })
    }

    fn validate(self, raw: raw::RawConfig) -> Result<Config, ConfigError> {
        let listen = self.addr("listen", &raw.listen)?;
        let admin_listen = self.addr("admin_listen", &raw.admin_listen)?;
        if listen == admin_listen && listen.port() != 0 {
            return Err(self.invalid(
                "admin_listen",
                "must differ from `listen`: metrics are never served on the registry listener",
            ));
        }
        let client_ca = match raw.auth.as_ref().and_then(|a| a.client_ca.as_deref()) {
            Some(_) if raw.tls.is_none() => {
                return Err(self.invalid(
                    "auth.client_ca",
                    "client certificates need the TLS listener: set `tls` too",
                ))
            }
            Some(path) => Some(self.certificates("auth.client_ca", path)?.1),
            None => None,
        };
        let allow_without_certificate = raw.auth.as_ref().is_some_and(|a| a.htpasswd.is_some());
        let tls = raw
            .tls
            .as_ref()
            .map(|t| self.tls(t, client_ca.as_deref(), allow_without_certificate))
            .transpose()?;
        let auth = raw.auth.as_ref().map(|a| self.auth(a)).transpose()?;
        let admin = self.admin(&raw.admin, admin_listen)?;

        if raw.upstreams.is_empty() {
            return Err(self.invalid("upstreams", "at least one upstream is required"));
        }
        let mut upstreams = BTreeMap::new();
        for (name, up) in &raw.upstreams {
            upstreams.insert(name.clone(), self.upstream(name, up)?);
        }
        if !upstreams.contains_key(&raw.default_upstream) {
            return Err(self.invalid(
                "default_upstream",
                format!(
                    "{:?} is not one of the configured upstreams ({})",
                    raw.default_upstream,
                    upstreams.keys().cloned().collect::<Vec<_>>().join(", ")
                ),
            ));
        }

        let l = &raw.limits;
        for (key, v) in [
            ("limits.max_manifest_bytes", l.max_manifest_bytes),
            ("limits.max_connections", l.max_connections),
            (
                "limits.max_connections_per_address",
                l.max_connections_per_address,
            ),
            ("limits.max_token_bytes", l.max_token_bytes),
            ("limits.max_referrers_bytes", l.max_referrers_bytes),
            ("limits.max_signature_bytes", l.max_signature_bytes),
            ("limits.max_signatures", l.max_signatures),
            ("limits.max_referrers_pages", l.max_referrers_pages),
        ] {
            if v == 0 {
                return Err(self.invalid(key, "must be greater than 0"));
            }
        }
        let t = &raw.timeouts;
        for (key, v) in [
            ("timeouts.connect", t.connect),
            ("timeouts.response_header", t.response_header),
            ("timeouts.read_idle", t.read_idle),
            ("timeouts.client_header", t.client_header),
            ("timeouts.client_idle", t.client_idle),
            ("timeouts.exchange", t.exchange),
            ("timeouts.signature_lookup", t.signature_lookup),
        ] {
            if v.is_zero() {
                return Err(self.invalid(key, "must be greater than 0"));
            }
        }
        if l.max_connections_per_address > l.max_connections {
            return Err(self.invalid(
                "limits.max_connections_per_address",
                format!(
                    "{} is more than limits.max_connections ({})",
                    l.max_connections_per_address, l.max_connections
                ),
            ));
        }
        let c = &raw.cache;
        if c.max_verdicts == 0 {
            return Err(self.invalid("cache.max_verdicts", "must be greater than 0"));
        }
        let trusted_root = self.trusted_root(raw.trusted_root.as_deref())?;
        let policies = self.policies(&raw, &upstreams)?;

        Ok(Config {
            listen,
            admin_listen,
            tls,
            default_upstream: raw.default_upstream.clone(),
            upstreams,
            limits: Limits {
                max_manifest_bytes: l.max_manifest_bytes,
                max_connections: l.max_connections,
                max_connections_per_address: l.max_connections_per_address,
                max_token_bytes: l.max_token_bytes,
                max_referrers_bytes: l.max_referrers_bytes,
                max_redirects: l.max_redirects,
                max_signature_bytes: l.max_signature_bytes,
                max_signatures: l.max_signatures,
                max_referrers_pages: l.max_referrers_pages,
                max_index_children: l.max_index_children,
            },
            timeouts: Timeouts {
                connect: t.connect,
                response_header: t.response_header,
                read_idle: t.read_idle,
                pool_idle: t.pool_idle,
                client_header: t.client_header,
                client_idle: t.client_idle,
                exchange: t.exchange,
                shutdown_grace: t.shutdown_grace,
                signature_lookup: t.signature_lookup,
            },
            trusted_root,
            cache: CacheSettings {
                verdict_ttl: c.verdict_ttl,
                failure_ttl: c.failure_ttl,
                max_verdicts: c.max_verdicts,
                manifest_bytes: c.manifest_bytes,
            },
            policies,
            auth,
            admin,
            source: self.source,
        })
    }

    fn trusted_root(&self, path: Option<&Path>) -> Result<Arc<TrustRoot>, ConfigError> {
        let root = match path {
            None => TrustRoot::public_good(),
            Some(p) => {
                let (path, bytes) = self.read_file("trusted_root", p)?;
                TrustRoot::from_json(&bytes, path.display().to_string())
            }
        };
        root.map(Arc::new)
            .map_err(|e| self.invalid("trusted_root", e.to_string()))
    }

    fn policies(
        &self,
        raw: &raw::RawConfig,
        upstreams: &BTreeMap<String, UpstreamConfig>,
    ) -> Result<PolicySet, ConfigError> {
        let mut rules = Vec::new();
        for (i, p) in raw.policies.iter().enumerate() {
            // The rule by its index (where it is in the file) and its name (how people call it).
            let key = |k: &str| {
                if k.is_empty() {
                    format!("policies[{i}] ({:?})", p.name)
                } else {
                    format!("policies[{i}] ({:?}).{k}", p.name)
                }
            };
            let mut patterns = Vec::new();
            for (j, pat) in p.patterns.iter().enumerate() {
                patterns.push(
                    Pattern::new(pat)
                        .map_err(|e| self.invalid(key(&format!("match[{j}]")), e.to_string()))?,
                );
            }
            let mut attestors = Vec::new();
            for (j, a) in p.attestors.iter().enumerate() {
                attestors.push(self.attestor(&key(&format!("attestors[{j}]")), a)?);
            }
            let signature_repository = p
                .signature_repository
                .as_deref()
                .map(|s| self.signature_repository(&key("signature_repository"), s, upstreams))
                .transpose()?;
            let mut attestations = Vec::new();
            for (j, a) in p.attestations.iter().enumerate() {
                attestations.push(self.attestation(&key(&format!("attestations[{j}]")), a)?);
            }
            let rule = RuleSpec {
                attestations,
                name: p.name.clone(),
                patterns,
                mode: p.mode.unwrap_or(Mode::Enforce),
                count: p.count,
                attestors,
                signature_repository,
            }
            .build()
            .map_err(|e| self.invalid(key(""), e.to_string()))?;
            rules.push(rule);
        }
        crate::policy::build(rules, raw.unmatched)
            .map_err(|e| self.invalid("policies", e.to_string()))
    }

    fn attestation(&self, key: &str, a: &raw::RawAttestation) -> Result<Requirement, ConfigError> {
        let predicate_types = predicate_type_uris(&a.predicate_type)
            .map_err(|e| self.invalid(format!("{key}.predicate_type"), e.to_string()))?;
        let mut conditions = Vec::new();
        for (i, c) in a.conditions.iter().enumerate() {
            conditions.push(
                Condition::compile(i + 1, c)
                    .map_err(|e| self.invalid(format!("{key}.conditions[{i}]"), e.to_string()))?,
            );
        }
        Ok(Requirement {
            name: a.name.clone().unwrap_or_else(|| a.predicate_type.clone()),
            predicate_types,
            conditions,
            allow_unsigned: a.allow_unsigned,
        })
    }

    fn attestor(&self, key: &str, a: &raw::RawAttestor) -> Result<Attestor, ConfigError> {
        match (&a.keyless, &a.key) {
            (Some(k), None) => {
                let one =
                    |exact: &Option<String>, re: &Option<String>, what: &str| match (exact, re) {
                        (Some(e), None) if !e.is_empty() => Ok(Matcher::Exact(e.clone())),
                        (None, Some(r)) => Matcher::regexp(r).map_err(|e| {
                            self.invalid(format!("{key}.keyless.{what}_regexp"), e.to_string())
                        }),
                        _ => Err(self.invalid(
                            format!("{key}.keyless"),
                            format!("give exactly one of {what} and {what}_regexp (non-empty)"),
                        )),
                    };
                Ok(Attestor::keyless(
                    one(&k.subject, &k.subject_regexp, "subject")?,
                    one(&k.issuer, &k.issuer_regexp, "issuer")?,
                ))
            }
            (None, Some(k)) => {
                let key = format!("{key}.key.public_key");
                let (pem, origin) = if k.public_key.trim_start().starts_with("-----BEGIN") {
                    (k.public_key.clone(), "inline PEM".to_owned())
                } else {
                    let (path, bytes) = self.read_file(&key, Path::new(&k.public_key))?;
                    let text = String::from_utf8(bytes).map_err(|_| {
                        self.invalid(&key, format!("{} is not PEM text", path.display()))
                    })?;
                    (text, path.display().to_string())
                };
                let public_key = PublicKey::from_pem(&pem, origin.clone())
                    .map_err(|e| self.invalid(&key, format!("{origin}: {e}")))?;
                Ok(Attestor::Key {
                    key: public_key,
                    insecure_ignore_tlog: k.ignore_tlog,
                })
            }
            _ => Err(self.invalid(key, "give exactly one of keyless and key")),
        }
    }

    fn signature_repository(
        &self,
        key: &str,
        s: &str,
        upstreams: &BTreeMap<String, UpstreamConfig>,
    ) -> Result<ImageName, ConfigError> {
        let (registry, repo) = s
            .split_once('/')
            .ok_or_else(|| self.invalid(key, format!("{s:?} must be <upstream>/<repository>")))?;
        if !upstreams.contains_key(registry) {
            return Err(self.invalid(
                key,
                format!("{registry:?} is not one of the configured upstreams"),
            ));
        }
        let repo = repo
            .parse()
            .map_err(|e| self.invalid(key, format!("{s:?}: {e}")))?;
        Ok(ImageName {
            registry: registry.to_owned(),
            repo,
        })
    }

    /// The PEM certificates of a file (at least one), with the path they were read from.
    fn certificates(
        &self,
        key: &str,
        path: &Path,
    ) -> Result<(PathBuf, Vec<CertificateDer<'static>>), ConfigError> {
        let (path, pem) = self.read_file(key, path)?;
        let certs = CertificateDer::pem_slice_iter(&pem)
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| self.invalid(key, format!("{}: {e}", path.display())))?;
        if certs.is_empty() {
            return Err(self.invalid(key, format!("{} holds no PEM certificate", path.display())));
        }
        Ok((path, certs))
    }

    fn auth(&self, a: &raw::RawAuth) -> Result<crate::auth::Settings, ConfigError> {
        let htpasswd = match &a.htpasswd {
            None => None,
            Some(p) => {
                let (path, bytes) = self.read_file("auth.htpasswd", p)?;
                let text = String::from_utf8(bytes).map_err(|_| {
                    self.invalid(
                        "auth.htpasswd",
                        format!("{} is not UTF-8 text", path.display()),
                    )
                })?;
                Some(crate::auth::Htpasswd::parse(&text).map_err(|e| {
                    self.invalid("auth.htpasswd", format!("{}: {e}", path.display()))
                })?)
            }
        };
        if htpasswd.is_none() && a.client_ca.is_none() {
            return Err(self.invalid(
                "auth",
                "needs htpasswd, client_ca or both: how else would a client authenticate?",
            ));
        }
        let mut access = Vec::new();
        for (i, entry) in a.access.iter().enumerate() {
            let key = |k: &str| format!("auth.access[{i}].{k}");
            if entry.patterns.is_empty() {
                return Err(self.invalid(key("match"), "needs at least one pattern"));
            }
            let mut patterns = Vec::new();
            for (j, p) in entry.patterns.iter().enumerate() {
                patterns.push(
                    Pattern::new(p)
                        .map_err(|e| self.invalid(key(&format!("match[{j}]")), e.to_string()))?,
                );
            }
            if let Some(file) = &htpasswd {
                // A user a client certificate names may be in no htpasswd file: only warn.
                for u in &entry.users {
                    if a.client_ca.is_none() && !file.users().any(|known| known == u) {
                        return Err(self
                            .invalid(key("users"), format!("user {u:?} is not in auth.htpasswd")));
                    }
                }
            }
            access.push(crate::auth::AccessRule {
                patterns,
                users: entry.users.iter().cloned().collect(),
            });
        }
        Ok(crate::auth::Settings {
            htpasswd,
            client_certificates: a.client_ca.is_some(),
            access,
            realm: a.realm.clone().unwrap_or_else(|| "portcullis".to_owned()),
        })
    }

    fn admin(&self, a: &raw::RawAdmin, listen: SocketAddr) -> Result<AdminSettings, ConfigError> {
        let token = match &a.token_file {
            Some(p) => {
                let (path, bytes) = self.read_file("admin.token_file", p)?;
                let text = String::from_utf8(bytes).map_err(|_| {
                    self.invalid(
                        "admin.token_file",
                        format!("{} is not UTF-8 text", path.display()),
                    )
                })?;
                let token = text.trim().to_owned();
                if token.len() < 16 {
                    return Err(self.invalid(
                        "admin.token_file",
                        format!(
                            "{}: the token is shorter than 16 characters",
                            path.display()
                        ),
                    ));
                }
                Some(Secret(token))
            }
            None if !listen.ip().is_loopback() => {
                return Err(self.invalid(
                    "admin.token_file",
                    format!(
                        "is required when admin_listen ({listen}) is not a loopback address: \
                         metrics and health would be open to the network"
                    ),
                ))
            }
            None => None,
        };
        Ok(AdminSettings {
            token,
            open: a.open.clone(),
        })
    }

    fn tls(
        &self,
        t: &raw::RawTls,
        client_ca: Option<&[CertificateDer<'static>]>,
        allow_without_certificate: bool,
    ) -> Result<TlsConfig, ConfigError> {
        let (cert_path, cert_chain) = self.certificates("tls.cert", &t.cert)?;
        let (key_path, key_pem) = self.read_file("tls.key", &t.key)?;
        let key = PrivateKeyDer::from_pem_slice(&key_pem).map_err(|e| {
            self.invalid(
                "tls.key",
                format!(
                    "{} holds no usable PEM private key: {e}",
                    key_path.display()
                ),
            )
        })?;
        let provider = std::sync::Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let builder = rustls::ServerConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()
            .map_err(|e| self.invalid("tls", e.to_string()))?;
        let builder = match client_ca {
            None => builder.with_no_client_auth(),
            Some(cas) => {
                let mut roots = rustls::RootCertStore::empty();
                for ca in cas {
                    roots
                        .add(ca.clone())
                        .map_err(|e| self.invalid("auth.client_ca", e.to_string()))?;
                }
                let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(
                    roots.into(),
                    provider,
                );
                // With htpasswd too, a client may answer the Basic challenge instead.
                let verifier = match allow_without_certificate {
                    true => verifier.allow_unauthenticated(),
                    false => verifier,
                };
                let verifier = verifier
                    .build()
                    .map_err(|e| self.invalid("auth.client_ca", e.to_string()))?;
                builder.with_client_cert_verifier(verifier)
            }
        };
        let mut server_config = builder.with_single_cert(cert_chain, key).map_err(|e| {
            self.invalid(
                "tls",
                format!(
                    "{} and {} do not make a usable certificate: {e}",
                    cert_path.display(),
                    key_path.display()
                ),
            )
        })?;
        server_config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
        Ok(TlsConfig {
            server_config: std::sync::Arc::new(server_config),
            cert_path,
        })
    }

    fn upstream(&self, name: &str, up: &raw::RawUpstream) -> Result<UpstreamConfig, ConfigError> {
        let key = |k: &str| format!("upstreams.{name}.{k}");
        if name.is_empty() || name.contains('/') || name.chars().any(char::is_whitespace) {
            return Err(self.invalid(
                format!("upstreams.{name}"),
                "an upstream key is a registry host name such as ghcr.io (no slash, no spaces)",
            ));
        }
        let url = Url::parse(&up.url)
            .map_err(|e| self.invalid(key("url"), format!("{:?} is not a URL: {e}", up.url)))?;
        if !matches!(url.scheme(), "http" | "https") {
            return Err(self.invalid(key("url"), "scheme must be https (or http, written so)"));
        }
        if url.host_str().is_none() {
            return Err(self.invalid(key("url"), "has no host"));
        }
        if url.path() != "/" || url.query().is_some() || url.fragment().is_some() {
            return Err(self.invalid(
                key("url"),
                "must be a base URL such as https://ghcr.io, without path or query",
            ));
        }
        if !url.username().is_empty() || url.password().is_some() {
            return Err(self.invalid(
                key("url"),
                "must not carry credentials; use username and password_file",
            ));
        }

        let sources = [
            up.password.is_some(),
            up.password_file.is_some(),
            up.password_env.is_some(),
        ]
        .into_iter()
        .filter(|s| *s)
        .count();
        if sources > 1 {
            return Err(self.invalid(
                key("password"),
                "give at most one of password, password_file, password_env",
            ));
        }
        let password = if let Some(p) = &up.password {
            Some((Secret(p.clone()), "password".to_owned()))
        } else if let Some(f) = &up.password_file {
            let (path, bytes) = self.read_file(&key("password_file"), f)?;
            let text = String::from_utf8(bytes)
                .map_err(|_| self.invalid(key("password_file"), "is not UTF-8 text"))?;
            let secret = text.trim_end_matches(['\r', '\n']).to_owned();
            Some((Secret(secret), format!("password_file {}", path.display())))
        } else if let Some(var) = &up.password_env {
            let value = std::env::var(var).map_err(|_| {
                self.invalid(
                    key("password_env"),
                    format!("environment variable {var} is not set"),
                )
            })?;
            Some((Secret(value), format!("password_env {var}")))
        } else {
            None
        };
        let credentials = match (&up.username, password) {
            (Some(username), Some((password, origin))) => Some(Credentials {
                username: username.clone(),
                password,
                origin,
            }),
            (None, None) => None,
            (Some(_), None) => {
                return Err(self.invalid(
                    key("username"),
                    "is set but no password, password_file or password_env is",
                ))
            }
            (None, Some(_)) => {
                return Err(self.invalid(key("username"), "a password is set but no username"))
            }
        };

        let ca_certs = match &up.ca_file {
            None => Vec::new(),
            Some(f) => self.certificates(&key("ca_file"), f)?.1,
        };
        let mut token_realms = Vec::new();
        for (i, realm) in up.token_realms.iter().enumerate() {
            token_realms.push(self.realm_host(&key(&format!("token_realms[{i}]")), realm)?);
        }
        Ok(UpstreamConfig {
            url,
            credentials,
            ca_certs,
            tag_ttl: up.tag_ttl,
            serve_stale_tags: up.serve_stale_tags,
            token_realms,
        })
    }

    /// A token realm host as written: `host` or `host:port`, lower-cased; no scheme, no path.
    fn realm_host(&self, key: &str, realm: &str) -> Result<String, ConfigError> {
        let parsed = Url::parse(&format!("https://{realm}/"))
            .ok()
            .filter(|u| u.path() == "/" && u.username().is_empty() && u.query().is_none());
        match parsed.as_ref().and_then(|u| u.host_str()) {
            Some(host) if !realm.contains('/') => Ok(match parsed.as_ref().and_then(Url::port) {
                Some(port) => format!("{host}:{port}"),
                None => host.to_owned(),
            }),
            _ => Err(self.invalid(
                key,
                format!(
                    "{realm:?} is not a host name such as auth.example.com (no scheme, no path)"
                ),
            )),
        }
    }
}

/// What `check-config` prints: the validated configuration in words (never a secret) and, for
/// an image name, which upstream and repository it maps to.
pub fn describe(config: &Config, image: Option<&str>) -> Result<String, ConfigError> {
    use std::fmt::Write as _;
    let mut out = String::new();
    // Writing to a String cannot fail.
    let _ = writeln!(out, "configuration {} is valid", config.source);
    let _ = writeln!(
        out,
        "listen: {}{}",
        config.listen,
        if config.tls.is_some() { " (TLS)" } else { "" }
    );
    let admin = match (&config.admin.token, config.admin.open.as_slice()) {
        (None, _) => " (no token: loopback only)".to_owned(),
        (Some(_), []) => " (token required)".to_owned(),
        (Some(_), open) => {
            let open: Vec<&str> = open.iter().map(|e| e.path()).collect();
            format!(" (token required, except {})", open.join(", "))
        }
    };
    let _ = writeln!(out, "admin_listen: {}{admin}", config.admin_listen);
    let clients = match &config.auth {
        None => "anyone who can connect".to_owned(),
        Some(a) => {
            let mut ways = Vec::new();
            if let Some(h) = &a.htpasswd {
                ways.push(format!("htpasswd ({} users)", h.users().count()));
            }
            if a.client_certificates {
                ways.push("client certificates".to_owned());
            }
            let access = match a.access.len() {
                0 => "every user pulls everything".to_owned(),
                n => format!("{n} access entries, unmatched images refused"),
            };
            format!("{}; {access}", ways.join(" or "))
        }
    };
    let _ = writeln!(out, "who may pull: {clients}");
    let _ = writeln!(out, "default_upstream: {}", config.default_upstream);
    let _ = writeln!(out, "upstreams:");
    for (key, up) in &config.upstreams {
        let auth = match &up.credentials {
            None => "anonymous".to_owned(),
            Some(c) => format!("user {} ({})", c.username, c.origin),
        };
        let ca = if up.ca_certs.is_empty() {
            String::new()
        } else {
            format!(", {} extra CA certificate(s)", up.ca_certs.len())
        };
        let tags = match (up.tag_ttl, up.serve_stale_tags) {
            (None, false) => String::new(),
            (ttl, stale) => {
                let mut parts = Vec::new();
                if let Some(t) = ttl {
                    parts.push(format!("tags trusted for {t:?}"));
                }
                if stale {
                    parts.push("stale tags served while unreachable".to_owned());
                }
                format!(", {}", parts.join(", "))
            }
        };
        let _ = writeln!(out, "  {key}: {} [{auth}{ca}{tags}]", up.url);
    }
    let _ = writeln!(out, "trusted_root: {}", config.trusted_root.origin);
    let _ = writeln!(
        out,
        "cache: verdict_ttl {:?}, failure_ttl {:?}, max_verdicts {}, manifest_bytes {}",
        config.cache.verdict_ttl,
        config.cache.failure_ttl,
        config.cache.max_verdicts,
        config.cache.manifest_bytes
    );
    let unmatched = match config.policies.unmatched {
        Unmatched::Allow => "allow",
        Unmatched::Deny => "deny",
    };
    let _ = writeln!(out, "unmatched: {unmatched}");
    let _ = writeln!(out, "policies:");
    for rule in &config.policies.rules {
        let patterns: Vec<&str> = rule.patterns.iter().map(|p| p.as_str()).collect();
        let _ = writeln!(
            out,
            "  {}: {} [{}], {} of {} attestor(s){}",
            rule.name,
            rule.mode.as_str(),
            patterns.join(", "),
            rule.count.min(rule.attestors.len()),
            rule.attestors.len(),
            rule.signature_repository
                .as_ref()
                .map(|r| format!(", signatures in {r}"))
                .unwrap_or_default()
        );
        for a in &rule.attestations {
            let _ = writeln!(
                out,
                "    attestation {}: {}{}",
                a.name,
                a.predicate_types.join(" or "),
                if a.allow_unsigned {
                    ", unsigned BuildKit attestations accepted"
                } else {
                    ""
                }
            );
            for (i, c) in a.conditions.iter().enumerate() {
                let _ = writeln!(out, "      condition {}: {}", i + 1, c.source);
            }
        }
        for (i, a) in rule.attestors.iter().enumerate() {
            let _ = writeln!(out, "    attestor {}: {a}", i + 1);
            if let crate::policy::Attestor::Key {
                insecure_ignore_tlog: true,
                ..
            } = a
            {
                let _ = writeln!(
                    out,
                    "      WARNING: ignore_tlog accepts key signatures that were never logged in Rekor"
                );
            }
        }
    }
    if let Some(image) = image {
        // Routing and rules depend only on the name, not on a tag or digest.
        let name = crate::oci::split_image_ref(image).0;
        use crate::upstream::mapping::{resolve_name, Form};
        let (key, repo, form) = resolve_name(name, None, &config.default_upstream, |k| {
            config.upstreams.contains_key(k)
        })
        .map_err(|e| ConfigError::Invalid {
            source_name: config.source.clone(),
            key: "IMAGE".to_owned(),
            reason: format!("{image:?}: {e}"),
        })?;
        let why = match form {
            Form::Prefix => "its first path segment names a configured upstream",
            Form::Plain | Form::Mirror => {
                "no configured upstream prefixes it, so the default upstream serves it"
            }
        };
        let url = config
            .upstreams
            .get(&key)
            .map(|u| u.url.as_str())
            .unwrap_or("?");
        let _ = writeln!(
            out,
            "image {image}: {key}/{repo} via upstream {key} ({url}) because {why}"
        );
        let canonical = ImageName {
            registry: key,
            repo,
        };
        let matches = config.policies.matches(&canonical);
        match config.policies.select(&canonical) {
            crate::policy::Selection::Rule { rule, pattern } => {
                let _ = writeln!(
                    out,
                    "rule {:?} ({}) applies to {canonical}: pattern {pattern:?} is the most specific match",
                    rule.name,
                    rule.mode.as_str()
                );
                for (other, p) in matches {
                    if other.name != rule.name || p.as_str() != pattern {
                        let _ = writeln!(
                            out,
                            "  also matched, less specific or later in the file: {:?} pattern {:?}",
                            other.name,
                            p.as_str()
                        );
                    }
                }
            }
            crate::policy::Selection::Unmatched(u) => {
                let _ = writeln!(
                    out,
                    "no rule matches {canonical}: unmatched: {} → {}",
                    unmatched,
                    match u {
                        Unmatched::Allow => "served without signature checks",
                        Unmatched::Deny => "refused (403 DENIED)",
                    }
                );
            }
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn load_str(yaml: &str) -> Result<Config, ConfigError> {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.yaml");
        std::fs::write(&path, yaml).unwrap();
        Config::load_with_env(
            Some(&path),
            config::Environment::with_prefix("PORTCULLIS_TEST_NONE"),
            Vec::new(),
        )
    }

    const MINIMAL: &str = "listen: 127.0.0.1:5000\nadmin_listen: 127.0.0.1:9095\ndefault_upstream: r.local\nupstreams:\n  r.local: { url: 'http://127.0.0.1:5001' }\n";

    #[test]
    fn embedded_default_is_valid() {
        let c = Config::load_with_env(
            None,
            config::Environment::with_prefix("PORTCULLIS_TEST_NONE"),
            Vec::new(),
        )
        .unwrap();
        assert_eq!(c.default_upstream, "docker.io");
        for k in [
            "docker.io",
            "ghcr.io",
            "quay.io",
            "registry.k8s.io",
            "gcr.io",
        ] {
            assert!(c.upstreams.contains_key(k), "{k}");
        }
        assert_eq!(c.limits.max_manifest_bytes, 4 * 1024 * 1024);
        assert_eq!(c.trusted_root.origin, "embedded public-good root");
        assert_eq!(c.policies.rules.len(), 1);
        assert_eq!(c.policies.rules[0].mode, Mode::Audit);
    }

    const FIXTURES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures");

    fn with_policy(policy: &str) -> Result<Config, ConfigError> {
        load_str(&format!(
            "{MINIMAL}trusted_root: {FIXTURES}/sigstore/trusted_root.json\npolicies:\n{policy}"
        ))
    }

    #[test]
    fn policies_are_validated_with_their_keys_named() {
        let ok = with_policy(&format!(
            "  - name: a\n    match: [\"r.local/team/**\"]\n    attestors:\n      - keyless: {{ subject_regexp: \"x.+\", issuer: \"https://i\" }}\n      - key: {{ public_key: {FIXTURES}/keys/ed25519.pub, ignore_tlog: true }}\n    count: 2\n"
        ))
        .unwrap();
        let rule = &ok.policies.rules[0];
        assert_eq!(rule.mode, Mode::Enforce, "a rule without a mode enforces");
        assert_eq!(rule.count, 2);
        assert!(ok.trusted_root.origin.ends_with("trusted_root.json"));

        let cases: &[(&str, &[&str])] = &[
            (
                "  - name: a\n    match: [\"r.local/**\"]\n    attestors:\n      - keyless: { subject_regexp: \"(\", issuer: \"i\" }\n",
                &["policies[0] (\"a\").attestors[0].keyless.subject_regexp", "bad regexp"],
            ),
            (
                "  - name: a\n    match: [\"r.local/**\"]\n    attestors:\n      - keyless: { subject: \"s\", subject_regexp: \"s\", issuer: \"i\" }\n",
                &["policies[0] (\"a\").attestors[0].keyless", "exactly one of subject"],
            ),
            (
                "  - name: a\n    match: [\"r.local/**\"]\n    attestors:\n      - key: { public_key: nope.pub }\n",
                &["policies[0] (\"a\").attestors[0].key.public_key", "nope.pub"],
            ),
            (
                "  - name: a\n    match: [\"r.local/**\"]\n    attestors:\n      - key: { public_key: \"-----BEGIN PUBLIC KEY-----\\nAAAA\\n-----END PUBLIC KEY-----\" }\n",
                &["policies[0] (\"a\").attestors[0].key.public_key", "inline PEM"],
            ),
            (
                "  - name: a\n    match: [\"r.local//x\"]\n    attestors:\n      - keyless: { subject: s, issuer: i }\n",
                &["policies[0] (\"a\").match[0]"],
            ),
            (
                "  - name: a\n    match: [\"r.local/**\"]\n    mode: enforce\n",
                &["policies[0] (\"a\")", "needs at least one attestor"],
            ),
            (
                "  - name: a\n    match: [\"r.local/**\"]\n    mode: block\n    attestors: []\n",
                &["block"],
            ),
            (
                "  - name: a\n    match: [\"r.local/**\"]\n    attestors:\n      - keyless: { subject: s, issuer: i }\n        extra: 1\n",
                &["extra"],
            ),
            (
                "  - name: a\n    match: [\"r.local/**\"]\n    signature_repository: nowhere/sigs\n    attestors:\n      - keyless: { subject: s, issuer: i }\n",
                &["policies[0] (\"a\").signature_repository", "nowhere"],
            ),
            (
                "  - name: a\n    match: [\"r.local/a\"]\n    attestors:\n      - keyless: { subject: s, issuer: i }\n  - name: a\n    match: [\"r.local/b\"]\n    attestors:\n      - keyless: { subject: s, issuer: i }\n",
                &["used twice"],
            ),
        ];
        let attestation = |a: &str| {
            format!("  - name: a\n    match: [\"r.local/**\"]\n    attestors:\n      - keyless: {{ subject: s, issuer: i }}\n    attestations:\n{a}")
        };
        let bad_cel = attestation("      - predicate_type: slsaprovenance\n        conditions: [\"predicate.a == 1\", \"predicate.b ==\"]\n");
        let bad_var = attestation(
            "      - predicate_type: spdxjson\n        conditions: [\"predicat.a == 1\"]\n",
        );
        let bad_type = attestation("      - predicate_type: slsa\n");
        let extra_cases: &[(&str, &[&str])] = &[
            (
                &bad_cel,
                &[
                    "policies[0] (\"a\").attestations[0].conditions[1]",
                    "does not compile",
                ],
            ),
            (
                &bad_var,
                &[
                    "policies[0] (\"a\").attestations[0].conditions[0]",
                    "unknown variable \"predicat\"",
                ],
            ),
            (
                &bad_type,
                &[
                    "policies[0] (\"a\").attestations[0].predicate_type",
                    "short name",
                ],
            ),
        ];
        for (yaml, needles) in cases.iter().chain(extra_cases) {
            let err = with_policy(yaml).unwrap_err().to_string();
            for n in *needles {
                assert!(err.contains(n), "{err:?} should mention {n:?}");
            }
        }
        let err = load_str(&format!(
            "{MINIMAL}trusted_root: {FIXTURES}/keys/p256.pub\n"
        ))
        .unwrap_err()
        .to_string();
        assert!(
            err.contains("trusted_root") && err.contains("not a Sigstore trusted root"),
            "{err}"
        );
    }

    #[test]
    fn from_yaml_is_load_without_the_environment() {
        let text = Config::from_yaml(MINIMAL, Source::Embedded).unwrap();
        let file = load_str(MINIMAL).unwrap();
        assert_eq!(text.listen, file.listen);
        assert_eq!(text.default_upstream, file.default_upstream);
        let err = Config::from_yaml(&format!("{MINIMAL}bogus: 1\n"), Source::Embedded)
            .unwrap_err()
            .to_string();
        assert!(err.contains("bogus"), "{err}");
    }

    #[test]
    fn minimal_file_gets_defaults() {
        let c = load_str(MINIMAL).unwrap();
        assert_eq!(
            c.upstreams["r.local"].url.as_str(),
            "http://127.0.0.1:5001/"
        );
        assert_eq!(c.timeouts.connect, Duration::from_secs(5));
    }

    #[test]
    fn unknown_key_is_named() {
        let err = load_str(&format!("{MINIMAL}bogus: 1\n"))
            .unwrap_err()
            .to_string();
        assert!(err.contains("bogus"), "{err}");
        let err = load_str(&MINIMAL.replace("url:", "urll:"))
            .unwrap_err()
            .to_string();
        assert!(err.contains("urll"), "{err}");
    }

    #[test]
    fn bad_url_and_default_are_named() {
        let err = load_str(&MINIMAL.replace("http://127.0.0.1:5001", "ftp://x"))
            .unwrap_err()
            .to_string();
        assert!(err.contains("upstreams.r.local.url"), "{err}");
        let err = load_str(&MINIMAL.replace("default_upstream: r.local", "default_upstream: nope"))
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("default_upstream") && err.contains("nope"),
            "{err}"
        );
        let err = load_str(&MINIMAL.replace("http://127.0.0.1:5001", "https://h/path"))
            .unwrap_err()
            .to_string();
        assert!(err.contains("base URL"), "{err}");
    }

    #[test]
    fn missing_password_file_is_named() {
        let yaml = MINIMAL.replace(
            "{ url: 'http://127.0.0.1:5001' }",
            "{ url: 'http://127.0.0.1:5001', username: u, password_file: nope.txt }",
        );
        let err = load_str(&yaml).unwrap_err().to_string();
        assert!(err.contains("upstreams.r.local.password_file"), "{err}");
        assert!(err.contains("nope.txt"), "{err}");
    }

    #[test]
    fn password_file_is_read_relative_and_never_printed() {
        let dir = tempfile::tempdir().unwrap();
        let mut f = std::fs::File::create(dir.path().join("pw")).unwrap();
        writeln!(f, "s3cret").unwrap();
        let path = dir.path().join("c.yaml");
        std::fs::write(
            &path,
            MINIMAL.replace(
                "{ url: 'http://127.0.0.1:5001' }",
                "{ url: 'http://127.0.0.1:5001', username: u, password_file: pw }",
            ),
        )
        .unwrap();
        let c = Config::load_with_env(
            Some(&path),
            config::Environment::with_prefix("PORTCULLIS_TEST_NONE"),
            Vec::new(),
        )
        .unwrap();
        let creds = c.upstreams["r.local"].credentials.clone().unwrap();
        assert_eq!(creds.password.expose(), "s3cret");
        assert!(!format!("{c:?}").contains("s3cret"));
    }

    #[test]
    fn env_overrides_nested_keys() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.yaml");
        std::fs::write(&path, MINIMAL).unwrap();
        let env = config::Environment::with_prefix("PORTCULLIS")
            .prefix_separator("__")
            .separator("__")
            .try_parsing(true)
            .source(Some(
                [
                    ("PORTCULLIS__LISTEN".to_owned(), "127.0.0.1:6000".to_owned()),
                    (
                        "PORTCULLIS__LIMITS__MAX_MANIFEST_BYTES".to_owned(),
                        "1024".to_owned(),
                    ),
                    ("PORTCULLIS__TIMEOUTS__CONNECT".to_owned(), "2s".to_owned()),
                ]
                .into_iter()
                .collect(),
            ));
        let c = Config::load_with_env(Some(&path), env, Vec::new()).unwrap();
        assert_eq!(c.listen.port(), 6000);
        assert_eq!(c.limits.max_manifest_bytes, 1024);
        assert_eq!(c.timeouts.connect, Duration::from_secs(2));
    }

    #[test]
    fn missing_config_file_is_an_error() {
        let err = Config::load(Some(Path::new("/nonexistent/portcullis.yaml")))
            .unwrap_err()
            .to_string();
        assert!(err.contains("/nonexistent/portcullis.yaml"), "{err}");
    }

    /// Loads `yaml` from a folder that also holds `files` (name, contents).
    fn load_with_files(yaml: &str, files: &[(&str, &str)]) -> Result<Config, ConfigError> {
        let dir = tempfile::tempdir().unwrap();
        for (name, text) in files {
            std::fs::write(dir.path().join(name), text).unwrap();
        }
        let path = dir.path().join("c.yaml");
        std::fs::write(&path, yaml).unwrap();
        Config::load_with_env(
            Some(&path),
            config::Environment::with_prefix("PORTCULLIS_TEST_NONE"),
            Vec::new(),
        )
    }

    fn err_text(r: Result<Config, ConfigError>) -> String {
        r.unwrap_err().to_string()
    }

    #[test]
    fn auth_and_admin_keys_are_validated() {
        let hash = bcrypt::hash("pw", 4).unwrap();
        let htpasswd = format!("ci:{hash}\nnodes:{hash}\n");
        let ok = load_with_files(
            &format!("{MINIMAL}auth:\n  htpasswd: users\n  access:\n    - {{ match: [\"r.local/team/**\"], users: [ci] }}\n"),
            &[("users", &htpasswd)],
        )
        .unwrap();
        let auth = ok.auth.unwrap();
        assert_eq!(auth.htpasswd.unwrap().users().count(), 2);
        assert_eq!(auth.access.len(), 1);
        assert_eq!(auth.realm, "portcullis");

        // (config, files beside it, what the error must name)
        type Case<'a> = (String, &'a [(&'a str, &'a str)], &'a [&'a str]);
        let cases: &[Case] = &[
            (
                format!("{MINIMAL}auth: {{ htpasswd: users }}\n"),
                &[("users", "ci:$apr1$x$y\n")],
                &["auth.htpasswd", "line 1", "not bcrypt"],
            ),
            (format!("{MINIMAL}auth: {{ htpasswd: nope }}\n"), &[], &["auth.htpasswd", "nope"]),
            (format!("{MINIMAL}auth: {{}}\n"), &[], &["`auth`", "needs htpasswd, client_ca"]),
            (
                format!("{MINIMAL}auth: {{ client_ca: ca.pem }}\n"),
                &[],
                &["auth.client_ca", "need the TLS listener"],
            ),
            (
                format!("{MINIMAL}auth:\n  htpasswd: users\n  access: [{{ match: [\"r.local/**\"], users: [ghost] }}]\n"),
                &[("users", &htpasswd)],
                &["auth.access[0].users", "ghost"],
            ),
            (
                MINIMAL.replace("admin_listen: 127.0.0.1:9095", "admin_listen: 0.0.0.0:9095"),
                &[],
                &["admin.token_file", "not a loopback address"],
            ),
            (
                format!("{MINIMAL}admin: {{ token_file: t }}\n"),
                &[("t", "short\n")],
                &["admin.token_file", "shorter than 16"],
            ),
            (
                format!("{MINIMAL}admin: {{ open: [everything] }}\n"),
                &[],
                &["everything"],
            ),
            (
                format!("{MINIMAL}limits: {{ max_connections: 10, max_connections_per_address: 11 }}\n"),
                &[],
                &["limits.max_connections_per_address", "more than limits.max_connections"],
            ),
            (
                MINIMAL.replace("{ url: 'http://127.0.0.1:5001' }", "{ url: 'http://127.0.0.1:5001', token_realms: ['https://sso/x'] }"),
                &[],
                &["upstreams.r.local.token_realms[0]", "no scheme"],
            ),
            (format!("{MINIMAL}timeouts: {{ exchange: 0s }}\n"), &[], &["timeouts.exchange"]),
        ];
        for (yaml, files, wanted) in cases {
            let text = err_text(load_with_files(yaml, files));
            for w in *wanted {
                assert!(text.contains(w), "{w:?} not in {text:?}");
            }
            assert!(!text.contains(&hash), "a hash in {text:?}");
        }

        let admin = load_with_files(
            &format!(
                "{}admin: {{ token_file: t, open: [healthz, readyz] }}\n",
                MINIMAL.replace("admin_listen: 127.0.0.1:9095", "admin_listen: 0.0.0.0:9095")
            ),
            &[("t", "0123456789abcdef0123\n")],
        )
        .unwrap()
        .admin;
        assert_eq!(admin.token.unwrap().expose(), "0123456789abcdef0123");
        assert_eq!(admin.open, [AdminEndpoint::Healthz, AdminEndpoint::Readyz]);
        let realms = load_with_files(
            &MINIMAL.replace(
                "{ url: 'http://127.0.0.1:5001' }",
                "{ url: 'http://127.0.0.1:5001', token_realms: [SSO.corp, 'tokens.corp:8443'] }",
            ),
            &[],
        )
        .unwrap();
        assert_eq!(
            realms.upstreams["r.local"].token_realms,
            ["sso.corp", "tokens.corp:8443"]
        );
    }
}
