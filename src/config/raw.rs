//! The configuration as written: serde structs, every key optional where a default exists,
//! unknown keys rejected. Settings that need no validation beyond their type (limits, timeouts,
//! cache sizes) are the typed [`super::settings`] structs themselves; the rest is turned into
//! settings by `validate`.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;

use super::settings::{AdminEndpoint, CacheSettings, Limits, Timeouts};
use crate::policy::{Mode, Unmatched};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawConfig {
    pub listen: String,
    pub admin_listen: String,
    pub tls: Option<RawTls>,
    pub default_upstream: String,
    pub upstreams: BTreeMap<String, RawUpstream>,
    #[serde(default)]
    pub limits: Limits,
    #[serde(default)]
    pub timeouts: Timeouts,
    pub trusted_root: Option<PathBuf>,
    #[serde(default)]
    pub cache: CacheSettings,
    #[serde(default)]
    pub unmatched: Unmatched,
    #[serde(default)]
    pub policies: Vec<RawPolicy>,
    pub auth: Option<RawAuth>,
    #[serde(default)]
    pub admin: RawAdmin,
    /// Where everything kept across restarts lives (content store, SQLite database).
    pub state_dir: Option<PathBuf>,
    /// `sqlite`, or `{ url, password_env }` for PostgreSQL: read as a value and checked by
    /// `validate`, so that each wrong form gets its own message naming the key.
    pub database: Option<serde_json::Value>,
    #[serde(default)]
    pub ledger: RawLedger,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawLedger {
    #[serde(default, with = "humantime_serde")]
    pub retention: Option<Duration>,
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
