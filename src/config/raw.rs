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
    pub trusted_root: Option<RawTrustedRoot>,
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
    /// Reload the configuration when its file (or a file it names) changes.
    #[serde(default)]
    pub watch_config: bool,
    /// `sqlite`, or `{ url, password_env }` for PostgreSQL: read as a value and checked by
    /// `validate`, so that each wrong form gets its own message naming the key.
    pub database: Option<serde_json::Value>,
    #[serde(default)]
    pub ledger: RawLedger,
    #[serde(default)]
    pub inventory: RawInventory,
    pub storage: Option<super::storage::RawStorage>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawLedger {
    #[serde(default, with = "humantime_serde")]
    pub retention: Option<Duration>,
    pub enabled: Option<bool>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawInventory {
    pub ingest: Option<bool>,
    #[serde(default, with = "humantime_serde")]
    pub recheck: Option<Duration>,
}

/// `trusted_root`: a file path, or `{ tuf: { ... } }`.
#[derive(Debug)]
pub enum RawTrustedRoot {
    File(PathBuf),
    Tuf(RawTuf),
}

/// `trusted_root.tuf`: where the trusted root is kept current over TUF.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawTuf {
    /// The TUF repository's base URL; default: the public-good instance's.
    pub mirror: Option<String>,
    /// The TUF root metadata to start from; default: the public-good one embedded in portcullis.
    pub root: Option<PathBuf>,
    #[serde(default, with = "humantime_serde")]
    pub refresh: Option<Duration>,
    pub cache_dir: Option<PathBuf>,
}

// A string is a path and a map must be `{ tuf: ... }`: written by hand so that a misspelt key
// inside `tuf` is reported as such (an untagged enum would only say that nothing matched).
impl<'de> Deserialize<'de> for RawTrustedRoot {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> serde::de::Visitor<'de> for V {
            type Value = RawTrustedRoot;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str(
                    "a trusted_root.json path or { tuf: { mirror, root, refresh, cache_dir } }",
                )
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<RawTrustedRoot, E> {
                Ok(RawTrustedRoot::File(PathBuf::from(v)))
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                mut map: A,
            ) -> Result<RawTrustedRoot, A::Error> {
                let mut tuf = None;
                while let Some(key) = map.next_key::<String>()? {
                    if key != "tuf" {
                        return Err(serde::de::Error::unknown_field(&key, &["tuf"]));
                    }
                    // `tuf:` with nothing under it is the public-good instance with defaults.
                    let value: Option<RawTuf> = map.next_value()?;
                    tuf = Some(value.unwrap_or_default());
                }
                tuf.map(RawTrustedRoot::Tuf)
                    .ok_or_else(|| serde::de::Error::missing_field("tuf"))
            }
        }
        d.deserialize_any(V)
    }
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
    /// An environment variable holding the token, instead of `token_file`.
    pub token_env: Option<String>,
    /// The user name of basic credentials whose password is the token (a browser's prompt).
    pub user: Option<String>,
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
