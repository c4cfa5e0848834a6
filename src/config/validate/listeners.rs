//! Validation of what the listeners need: the TLS set-up (and the client CA of mTLS), who may
//! pull (`auth`), the admin listener's token, and the PEM certificate files they and `ca_file`
//! read.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

use super::Validator;
use crate::config::raw;
use crate::config::settings::{AdminSettings, Secret, TlsConfig};
use crate::config::ConfigError;
use crate::policy::Pattern;

impl Validator {
    /// The PEM certificates of a file (at least one), with the path they were read from.
    pub(super) fn certificates(
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

    pub(super) fn auth(&self, a: &raw::RawAuth) -> Result<crate::auth::Settings, ConfigError> {
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

    pub(super) fn admin(
        &self,
        a: &raw::RawAdmin,
        listen: SocketAddr,
    ) -> Result<AdminSettings, ConfigError> {
        let text = match (&a.token_file, &a.token_env) {
            (Some(_), Some(_)) => {
                return Err(self.invalid(
                    "admin.token_env",
                    "give admin.token_file or admin.token_env, not both",
                ))
            }
            (Some(p), None) => {
                let (path, bytes) = self.read_file("admin.token_file", p)?;
                let text = String::from_utf8(bytes).map_err(|_| {
                    self.invalid(
                        "admin.token_file",
                        format!("{} is not UTF-8 text", path.display()),
                    )
                })?;
                Some(("admin.token_file", path.display().to_string(), text))
            }
            (None, Some(var)) => {
                let text = std::env::var(var).map_err(|_| {
                    self.invalid(
                        "admin.token_env",
                        format!("the environment variable {var} is not set (or not UTF-8)"),
                    )
                })?;
                Some(("admin.token_env", format!("${var}"), text))
            }
            (None, None) => None,
        };
        let token = match text {
            Some((key, origin, text)) => {
                let token = text.trim().to_owned();
                if token.len() < 16 {
                    return Err(self.invalid(
                        key,
                        format!("{origin}: the token is shorter than 16 characters"),
                    ));
                }
                Some(Secret(token))
            }
            None if !listen.ip().is_loopback() => {
                return Err(self.invalid(
                    "admin.token_file",
                    format!(
                        "(or admin.token_env) is required when admin_listen ({listen}) is not a \
                         loopback address: metrics, health, the JSON API and the console would be \
                         open to the network"
                    ),
                ))
            }
            None => None,
        };
        let user = match &a.user {
            None => crate::config::settings::DEFAULT_ADMIN_USER.to_owned(),
            Some(u) if u.is_empty() || u.contains(':') || u.chars().any(char::is_control) => {
                return Err(self.invalid(
                    "admin.user",
                    format!("{u:?} cannot be a basic-credentials user name (empty, or holds ':' or a control character)"),
                ))
            }
            Some(u) => u.clone(),
        };
        Ok(AdminSettings {
            token,
            open: a.open.clone(),
            user,
        })
    }

    pub(super) fn tls(
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
}
