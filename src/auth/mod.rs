//! Who may pull through portcullis (DESIGN §2 `auth`): clients authenticate with HTTP Basic
//! credentials checked against an htpasswd file ([`htpasswd`]) or with a client certificate from
//! `auth.client_ca` on the TLS listener (its subject's common name is the user), and
//! `auth.access` says which users may pull which images (the most specific pattern wins, as for
//! policy rules; with `access` set, an image no entry matches is refused).
//!
//! Checked passwords are remembered for a few minutes under a SHA-256 of user and password (never
//! the password), so bcrypt runs once per client, not once per blob. Failed attempts are counted
//! and each answer to a client address that keeps failing is slowed down. Nothing here logs or
//! returns a credential. This module knows no HTTP routes: the registry API calls
//! [`Authenticator::authenticate`] and [`Authenticator::authorize`].

pub mod htpasswd;

use std::collections::BTreeSet;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use base64::Engine as _;
use http::header::AUTHORIZATION;
use http::{Extensions, HeaderMap};
use sha2::{Digest as _, Sha256};

use crate::metrics::Metrics;
use crate::policy::Pattern;
pub use htpasswd::Htpasswd;

/// How long a checked password is trusted without running bcrypt again.
const GRANT_TTL: Duration = Duration::from_secs(300);
/// How long failed attempts from one address are remembered.
const FAILURE_WINDOW: Duration = Duration::from_secs(60);
/// Each recent failure of an address delays its next refusal by this much, up to `MAX_DELAY`.
const DELAY_STEP: Duration = Duration::from_millis(250);
const MAX_DELAY: Duration = Duration::from_secs(5);

/// The validated `auth` section.
#[derive(Debug, Clone)]
pub struct Settings {
    pub htpasswd: Option<Htpasswd>,
    /// Whether the TLS listener asks for client certificates (`auth.client_ca`).
    pub client_certificates: bool,
    pub access: Vec<AccessRule>,
    /// The realm of the Basic challenge.
    pub realm: String,
}

/// One `auth.access` entry: these users may pull images matching these patterns.
#[derive(Debug, Clone)]
pub struct AccessRule {
    pub patterns: Vec<Pattern>,
    pub users: BTreeSet<String>,
}

/// The user named by the client certificate of a TLS connection, put in each request's
/// extensions by the listener.
#[derive(Debug, Clone)]
pub struct CertificateUser(pub Arc<str>);

/// The client's address, put in each request's extensions by the listener.
#[derive(Debug, Clone, Copy)]
pub struct Peer(pub SocketAddr);

/// An authenticated user.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct User(Arc<str>);

impl User {
    pub fn name(&self) -> &str {
        &self.0
    }
}

#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    #[error("authentication required")]
    Missing { realm: String },
    #[error("authentication failed: unknown user or wrong password")]
    Rejected { realm: String },
    #[error("requested access to the resource is denied")]
    Forbidden,
}

/// Authenticates and authorises client requests.
pub struct Authenticator {
    settings: Settings,
    /// SHA-256(user NUL password) → user, for passwords bcrypt accepted recently.
    granted: moka::future::Cache<[u8; 32], Arc<str>>,
    /// Recent failed attempts by client address.
    failures: moka::future::Cache<IpAddr, u32>,
    metrics: Arc<Metrics>,
}

// === impl Authenticator ===

impl Authenticator {
    pub fn new(settings: Settings, metrics: Arc<Metrics>) -> Authenticator {
        Authenticator {
            settings,
            granted: moka::future::Cache::builder()
                .max_capacity(10_000)
                .time_to_live(GRANT_TTL)
                .build(),
            failures: moka::future::Cache::builder()
                .max_capacity(100_000)
                .time_to_live(FAILURE_WINDOW)
                .build(),
            metrics,
        }
    }

    /// The user of a request: its client certificate's, or its Basic credentials' when they are
    /// right. A refusal of a client address that kept failing is delayed.
    pub async fn authenticate(
        &self,
        headers: &HeaderMap,
        extensions: &Extensions,
    ) -> Result<User, AuthError> {
        if let Some(CertificateUser(name)) = extensions.get::<CertificateUser>() {
            return Ok(User(name.clone()));
        }
        let realm = || self.settings.realm.clone();
        // skopeo and Podman answer a challenge with an empty user and password when they have
        // none: that is no attempt, so it is not a failure either.
        let credentials = basic(headers).filter(|(u, p)| !(u.is_empty() && p.is_empty()));
        let (Some(file), Some((user, password))) = (&self.settings.htpasswd, credentials) else {
            return Err(AuthError::Missing { realm: realm() });
        };
        let key: [u8; 32] = Sha256::new()
            .chain_update(user.as_bytes())
            .chain_update([0])
            .chain_update(password.as_bytes())
            .finalize()
            .into();
        if let Some(name) = self.granted.get(&key).await {
            return Ok(User(name));
        }
        let file = file.clone();
        let checked = {
            let (user, password) = (user.clone(), password);
            tokio::task::spawn_blocking(move || file.check(&user, &password))
                .await
                .unwrap_or(false)
        };
        if checked {
            let name: Arc<str> = user.into();
            self.granted.insert(key, name.clone()).await;
            return Ok(User(name));
        }
        self.failed("bad_credentials");
        if let Some(Peer(peer)) = extensions.get::<Peer>() {
            let ip = peer.ip();
            let recent = self.failures.get(&ip).await.unwrap_or(0).saturating_add(1);
            self.failures.insert(ip, recent).await;
            let delay = DELAY_STEP
                .saturating_mul(recent.saturating_sub(1))
                .min(MAX_DELAY);
            tokio::time::sleep(delay).await;
        }
        Err(AuthError::Rejected { realm: realm() })
    }

    /// Whether `user` may pull `image` (`<registry>/<repository>`).
    pub fn authorize(&self, user: &User, image: &str) -> Result<(), AuthError> {
        if self.settings.access.is_empty() {
            return Ok(());
        }
        let mut best: Option<(&AccessRule, usize)> = None;
        for rule in &self.settings.access {
            for p in &rule.patterns {
                if p.is_match(image) && best.is_none_or(|(_, s)| p.specificity() > s) {
                    best = Some((rule, p.specificity()));
                }
            }
        }
        match best {
            Some((rule, _)) if rule.users.contains(user.name()) => Ok(()),
            _ => {
                self.failed("forbidden");
                Err(AuthError::Forbidden)
            }
        }
    }

    fn failed(&self, reason: &str) {
        self.metrics
            .auth_failures
            .with_label_values(&[reason])
            .inc();
    }
}

/// The user and password of an `Authorization: Basic` header.
fn basic(headers: &HeaderMap) -> Option<(String, String)> {
    let value = headers.get(AUTHORIZATION)?.to_str().ok()?;
    let (scheme, encoded) = value.trim().split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(encoded.trim())
        .ok()?;
    let text = String::from_utf8(decoded).ok()?;
    let (user, password) = text.split_once(':')?;
    Some((user.to_owned(), password.to_owned()))
}

/// The user a client certificate names: its subject's common name (`CN`), or `None` for a
/// certificate without one.
pub fn certificate_user(der: &[u8]) -> Option<String> {
    use x509_cert::der::asn1::{Ia5StringRef, ObjectIdentifier, PrintableStringRef, Utf8StringRef};
    use x509_cert::der::Decode;
    const COMMON_NAME: ObjectIdentifier = ObjectIdentifier::new_unwrap("2.5.4.3");
    let cert = x509_cert::Certificate::from_der(der).ok()?;
    cert.tbs_certificate
        .subject
        .0
        .iter()
        .flat_map(|rdn| rdn.0.iter())
        .filter(|atv| atv.oid == COMMON_NAME)
        .find_map(|atv| {
            let v = &atv.value;
            v.decode_as::<Utf8StringRef<'_>>()
                .map(|s| s.as_str().to_owned())
                .or_else(|_| {
                    v.decode_as::<PrintableStringRef<'_>>()
                        .map(|s| s.as_str().to_owned())
                })
                .or_else(|_| {
                    v.decode_as::<Ia5StringRef<'_>>()
                        .map(|s| s.as_str().to_owned())
                })
                .ok()
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    fn authenticator(access: Vec<AccessRule>) -> Authenticator {
        let hash = bcrypt::hash("s3cret", 4).unwrap();
        let htpasswd = Htpasswd::parse(&format!("ci:{hash}\nops:{hash}")).unwrap();
        Authenticator::new(
            Settings {
                htpasswd: Some(htpasswd),
                client_certificates: false,
                access,
                realm: "portcullis".into(),
            },
            Arc::new(Metrics::new()),
        )
    }

    fn with_basic(user: &str, password: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        let v = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"));
        h.insert(
            AUTHORIZATION,
            HeaderValue::from_str(&format!("Basic {v}")).unwrap(),
        );
        h
    }

    #[tokio::test]
    async fn basic_credentials_and_certificates_authenticate() {
        let a = authenticator(Vec::new());
        let none = Extensions::new();
        let user = a
            .authenticate(&with_basic("ci", "s3cret"), &none)
            .await
            .unwrap();
        assert_eq!(user.name(), "ci");
        // Remembered: the second check does not run bcrypt (and gives the same answer).
        assert_eq!(
            a.authenticate(&with_basic("ci", "s3cret"), &none)
                .await
                .unwrap(),
            user
        );
        assert!(matches!(
            a.authenticate(&with_basic("ci", "wrong"), &none).await,
            Err(AuthError::Rejected { .. })
        ));
        for missing in [HeaderMap::new(), with_basic("", "")] {
            assert!(matches!(
                a.authenticate(&missing, &none).await,
                Err(AuthError::Missing { .. })
            ));
        }
        let mut cert = Extensions::new();
        cert.insert(CertificateUser("node-1".into()));
        assert_eq!(
            a.authenticate(&HeaderMap::new(), &cert)
                .await
                .unwrap()
                .name(),
            "node-1"
        );
        let text = format!(
            "{:?}",
            a.authenticate(&with_basic("ci", "wrong"), &none).await
        );
        assert!(!text.contains("wrong"), "{text}");
    }

    #[tokio::test]
    async fn failures_from_one_address_are_slowed() {
        let a = authenticator(Vec::new());
        let mut ext = Extensions::new();
        ext.insert(Peer("127.0.0.9:1".parse().unwrap()));
        tokio::time::pause();
        for _ in 0..3 {
            let _ = a.authenticate(&with_basic("ci", "wrong"), &ext).await;
        }
        let started = tokio::time::Instant::now();
        let _ = a.authenticate(&with_basic("ci", "wrong"), &ext).await;
        assert!(
            started.elapsed() >= DELAY_STEP * 3,
            "{:?}",
            started.elapsed()
        );
        assert_eq!(
            a.metrics
                .auth_failures
                .with_label_values(&["bad_credentials"])
                .get(),
            4
        );
    }

    #[test]
    fn access_goes_to_the_most_specific_entry() {
        let rule = |patterns: &[&str], users: &[&str]| AccessRule {
            patterns: patterns.iter().map(|p| Pattern::new(p).unwrap()).collect(),
            users: users.iter().map(|u| u.to_string()).collect(),
        };
        let a = authenticator(vec![
            rule(&["ghcr.io/**"], &["ci", "ops"]),
            rule(&["ghcr.io/company/secret/**"], &["ops"]),
        ]);
        let ci = User("ci".into());
        let ops = User("ops".into());
        assert!(a.authorize(&ci, "ghcr.io/company/app").is_ok());
        assert!(matches!(
            a.authorize(&ci, "ghcr.io/company/secret/db"),
            Err(AuthError::Forbidden)
        ));
        assert!(a.authorize(&ops, "ghcr.io/company/secret/db").is_ok());
        // With `access` set, what no entry matches is refused.
        assert!(a.authorize(&ops, "docker.io/library/alpine").is_err());
    }

    #[test]
    fn a_certificate_names_its_common_name() {
        let key = rcgen::KeyPair::generate().unwrap();
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, "node-7");
        params
            .distinguished_name
            .push(rcgen::DnType::OrganizationName, "corp");
        let cert = params.self_signed(&key).unwrap();
        assert_eq!(certificate_user(cert.der()).as_deref(), Some("node-7"));
        assert_eq!(certificate_user(b"not a certificate"), None);
    }
}
