//! The second stage of loading: [`raw::RawConfig`] → [`Config`]. Every check that can fail on a
//! configuration runs here, at start-up, and its error names the key (and the file it came
//! from): addresses, URLs, credentials and the files they name, certificates, limits, and the
//! policy rules (patterns, attestors, attestation conditions, signature repositories), who may
//! pull (`auth`) and the admin listener's token.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use url::Url;

mod listeners;
mod state;
mod storage;

use super::raw;
use super::settings::{
    Credentials, Secret, TrustedRoot, TrustedRootSource, TufSettings, UpstreamConfig,
    PUBLIC_GOOD_TUF_MIRROR,
};
use super::{Config, ConfigError, Source};
use crate::oci::ImageName;
use crate::policy::attestation::{predicate_type_uris, Condition, Requirement};
use crate::policy::attestor::PublicKey;
use crate::policy::{Attestor, Matcher, Mode, Pattern, PolicySet, RuleSpec};

/// Turns a [`raw::RawConfig`] into a [`Config`], resolving relative file paths against the
/// directory of the configuration file.
pub(super) struct Validator {
    pub(super) source: Source,
    pub(super) base_dir: PathBuf,
    /// Every file read so far, for [`Config::files`].
    pub(super) files: std::cell::RefCell<Vec<PathBuf>>,
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
        self.files.borrow_mut().push(path.clone());
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

    pub(super) fn validate(self, raw: raw::RawConfig) -> Result<Config, ConfigError> {
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
        if raw.cache.max_verdicts == 0 {
            return Err(self.invalid("cache.max_verdicts", "must be greater than 0"));
        }
        let state_dir = self.state_dir(raw.state_dir.as_deref())?;
        let trusted_root = self.trusted_root(raw.trusted_root.as_ref(), &state_dir)?;
        let policies = self.policies(&raw, &upstreams)?;
        let state_dir = self.state_dir(raw.state_dir.as_deref())?;
        let storage = self.storage(raw.storage.as_ref(), &state_dir)?;

        Ok(Config {
            listen,
            admin_listen,
            tls,
            default_upstream: raw.default_upstream.clone(),
            upstreams,
            limits: raw.limits,
            timeouts: raw.timeouts,
            trusted_root,
            cache: raw.cache,
            policies,
            auth,
            admin,
            database: self.database(raw.database.as_ref(), &state_dir)?,
            ledger: self.ledger(&raw.ledger)?,
            inventory: self.inventory(&raw.inventory)?,
            state_dir,
            watch_config: raw.watch_config,
            files: self.files.take(),
            storage,
            source: self.source,
        })
    }

    /// `state_dir` as written (relative to the configuration file's directory), else systemd's
    /// `$STATE_DIRECTORY` (its first entry when it lists several), else `./portcullis-state`.
    fn state_dir(&self, written: Option<&Path>) -> Result<PathBuf, ConfigError> {
        let dir = match written {
            Some(p) if p.as_os_str().is_empty() => {
                return Err(self.invalid("state_dir", "must not be empty"))
            }
            Some(p) => self.path(p),
            None => std::env::var_os("STATE_DIRECTORY")
                .and_then(|v| {
                    v.to_str()
                        .and_then(|s| s.split(':').find(|s| !s.is_empty()))
                        .map(PathBuf::from)
                })
                .unwrap_or_else(|| PathBuf::from("portcullis-state")),
        };
        if dir.exists() && !dir.is_dir() {
            return Err(self.invalid(
                "state_dir",
                format!("{} exists and is not a directory", dir.display()),
            ));
        }
        Ok(dir)
    }

    /// The trusted root's source. A file is read now so that a missing one is a start-up error
    /// naming the key; `signature::TrustRoot` parses it (and fetches it, over TUF).
    fn trusted_root(
        &self,
        raw: Option<&raw::RawTrustedRoot>,
        state_dir: &Path,
    ) -> Result<TrustedRoot, ConfigError> {
        Ok(match raw {
            None => TrustedRoot::public_good(),
            Some(raw::RawTrustedRoot::File(p)) => {
                let (path, bytes) = self.read_file("trusted_root", p)?;
                TrustedRoot {
                    origin: path.display().to_string(),
                    source: TrustedRootSource::File(bytes.into()),
                }
            }
            Some(raw::RawTrustedRoot::Tuf(t)) => {
                let written = t.mirror.as_deref().unwrap_or(PUBLIC_GOOD_TUF_MIRROR);
                let mirror = Url::parse(written)
                    .ok()
                    .filter(|u| matches!(u.scheme(), "http" | "https") && u.host().is_some())
                    .ok_or_else(|| {
                        self.invalid(
                            "trusted_root.tuf.mirror",
                            format!("{written:?} is not an http(s) URL"),
                        )
                    })?;
                let public_good = mirror.as_str().trim_end_matches('/') == PUBLIC_GOOD_TUF_MIRROR;
                let root = match &t.root {
                    Some(p) => Some(self.read_file("trusted_root.tuf.root", p)?.1.into()),
                    None if public_good => None,
                    None => {
                        return Err(self.invalid(
                            "trusted_root.tuf.root",
                            format!(
                                "required for the mirror {mirror}: the embedded TUF root is the \
                                 public-good instance's"
                            ),
                        ))
                    }
                };
                let refresh = t.refresh.unwrap_or(Duration::from_secs(24 * 3600));
                if refresh < Duration::from_secs(1) {
                    return Err(self.invalid("trusted_root.tuf.refresh", "must be at least 1s"));
                }
                let cache_dir = match &t.cache_dir {
                    Some(p) => self.path(p),
                    None => state_dir.join("tuf"),
                };
                TrustedRoot {
                    origin: format!("TUF {mirror}"),
                    source: TrustedRootSource::Tuf(TufSettings {
                        mirror,
                        root,
                        refresh,
                        cache_dir,
                    }),
                }
            }
        })
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
