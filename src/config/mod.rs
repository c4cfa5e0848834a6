//! Configuration: the YAML file (or the embedded default) plus `PORTCULLIS__A__B` environment
//! overrides, read with the `config` crate in two stages: the raw serde structs as written
//! ([`raw`]), then validated ([`validate`]) into the typed [`Config`] of [`settings`] that the
//! rest of the program reads.
//!
//! Everything that can be wrong with a configuration is found here, at start-up, and reported with
//! the key and the file it came from: unknown keys, bad URLs, unreadable credential or certificate
//! files. This module reads files named by the configuration but opens no network connection,
//! and names no signature or HTTP type (the trusted root is kept as JSON; `signature` parses it).
//! How a configuration is printed for `check-config` is the CLI's (`cli::check_config`).

pub mod raw;
pub mod settings;
pub mod storage;
mod validate;

use std::collections::BTreeMap;
use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

pub use settings::{
    AdminEndpoint, AdminSettings, CacheSettings, Credentials, DatabaseSettings, InventorySettings,
    LedgerSettings, Limits, Secret, Timeouts, TlsConfig, TrustedRoot, TrustedRootSource,
    TufSettings, UpstreamConfig, PUBLIC_GOOD_TUF_MIRROR,
};

use crate::policy::PolicySet;

/// The configuration `portcullis serve` runs on when no `--config` is given.
pub const EMBEDDED_DEFAULT: &str = include_str!("../../config/default.yaml");

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
    pub trusted_root: TrustedRoot,
    pub cache: CacheSettings,
    pub policies: PolicySet,
    /// Who may pull (`auth`); `None`: anyone who can connect.
    pub auth: Option<crate::auth::Settings>,
    pub admin: AdminSettings,
    /// Everything kept on disk across restarts (`state_dir`): the content store and the SQLite
    /// database. Not created here: the parts that write to it create what they need.
    pub state_dir: PathBuf,
    /// Reload when the file (or a file it names) changes, besides on `SIGHUP`.
    pub watch_config: bool,
    /// Every file the configuration names that was read to validate it (certificates, keys,
    /// htpasswd, password and token files, the trusted root): `watch_config` watches them too.
    pub files: Vec<PathBuf>,
    /// The ledger's database (`database`): SQLite under `state_dir` unless PostgreSQL is named.
    pub database: DatabaseSettings,
    pub ledger: LedgerSettings,
    /// The SBOM inventory's ingest (`inventory`).
    pub inventory: InventorySettings,
    /// The content store (`storage`).
    pub storage: storage::StorageSettings,
}

// === impl Config ===

impl Config {
    /// Reads `path` (or the embedded default), applies `PORTCULLIS__*` environment overrides and
    /// validates the result.
    pub fn load(path: Option<&Path>) -> Result<Config, ConfigError> {
        // Variables whose name or value is not UTF-8 cannot be overrides of a YAML key.
        let vars = std::env::vars_os()
            .filter_map(|(k, v)| Some((k.into_string().ok()?, v.into_string().ok()?)));
        Self::load_from_vars(path, vars)
    }

    /// [`Config::load`] with the environment given as `vars`: only `PORTCULLIS__*` ones apply.
    fn load_from_vars(
        path: Option<&Path>,
        vars: impl IntoIterator<Item = (String, String)>,
    ) -> Result<Config, ConfigError> {
        let vars: std::collections::HashMap<String, String> = vars
            .into_iter()
            .filter(|(k, _)| k.starts_with("PORTCULLIS__"))
            .collect();
        let mut overrides: Vec<String> = vars.keys().cloned().collect();
        overrides.sort();
        let env = config::Environment::with_prefix("PORTCULLIS")
            .prefix_separator("__")
            .separator("__")
            .try_parsing(true)
            .source(Some(vars));
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
        validate::Validator {
            source,
            base_dir,
            files: Default::default(),
        }
        .validate(raw)
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
        validate::Validator {
            source,
            base_dir,
            files: Default::default(),
        }
        .validate(raw)
    }
}

#[cfg(test)]
mod tests;
