//! Upstream authentication: parsing `WWW-Authenticate` challenges, the distribution token flow
//! (anonymous or with basic credentials against the realm the registry names), and plain basic
//! auth. Remembers per upstream which scheme it asked for, so later requests authenticate up
//! front instead of collecting a 401 first.
//!
//! Tokens are cached per (upstream, scope) in [`super::tokens::TokenCache`]. This module never
//! logs a token or a password, and its errors never contain one.

use std::sync::RwLock;
use std::time::Duration;

use base64::Engine as _;
use http::HeaderValue;
use serde::Deserialize;
use url::Url;

use crate::config::Credentials;

/// What an upstream asked for in its last challenge.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Scheme {
    Basic,
    Bearer { realm: Url, service: Option<String> },
}

/// A parsed `WWW-Authenticate` challenge.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Challenge {
    pub scheme: Scheme,
    /// The scope the registry asked for, if it named one.
    pub scope: Option<String>,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ChallengeError {
    #[error("WWW-Authenticate header is missing")]
    Missing,
    #[error("WWW-Authenticate header is not valid: {0}")]
    Malformed(&'static str),
    #[error("unsupported authentication scheme {0:?}")]
    UnsupportedScheme(String),
    #[error("Bearer challenge has no realm")]
    NoRealm,
    #[error("token realm {0:?} is not an absolute http(s) URL")]
    BadRealm(String),
    #[error("token realm uses plain http while the upstream uses https")]
    InsecureRealm,
}

/// Parses one challenge. `upstream_is_https` forbids a downgrade of the token exchange to plain
/// http (credentials would travel in clear).
pub fn parse_challenge(
    header: Option<&HeaderValue>,
    upstream_is_https: bool,
) -> Result<Challenge, ChallengeError> {
    let header = header.ok_or(ChallengeError::Missing)?;
    let text = header
        .to_str()
        .map_err(|_| ChallengeError::Malformed("not visible ASCII"))?
        .trim();
    let (scheme, rest) = text.split_once(' ').unwrap_or((text, ""));
    if scheme.eq_ignore_ascii_case("basic") {
        return Ok(Challenge {
            scheme: Scheme::Basic,
            scope: None,
        });
    }
    if !scheme.eq_ignore_ascii_case("bearer") {
        return Err(ChallengeError::UnsupportedScheme(
            scheme.chars().take(32).collect(),
        ));
    }
    let params = parse_params(rest)?;
    let get = |k: &str| {
        params
            .iter()
            .find(|(name, _)| name.eq_ignore_ascii_case(k))
            .map(|(_, v)| v.clone())
    };
    let realm = get("realm").ok_or(ChallengeError::NoRealm)?;
    let url = Url::parse(&realm).map_err(|_| ChallengeError::BadRealm(short(&realm)))?;
    match url.scheme() {
        "https" => {}
        "http" if !upstream_is_https => {}
        "http" => return Err(ChallengeError::InsecureRealm),
        _ => return Err(ChallengeError::BadRealm(short(&realm))),
    }
    Ok(Challenge {
        scheme: Scheme::Bearer {
            realm: url,
            service: get("service"),
        },
        scope: get("scope"),
    })
}

fn short(s: &str) -> String {
    s.chars().take(200).collect()
}

/// Parses `k1="v1", k2=v2` (RFC 7235 auth-params; quoted strings with backslash escapes).
fn parse_params(s: &str) -> Result<Vec<(String, String)>, ChallengeError> {
    let mut out = Vec::new();
    let mut chars = s.chars().peekable();
    loop {
        while matches!(chars.peek(), Some(c) if c.is_whitespace() || *c == ',') {
            chars.next();
        }
        if chars.peek().is_none() {
            return Ok(out);
        }
        let mut name = String::new();
        while let Some(&c) = chars.peek() {
            if c == '=' || c.is_whitespace() {
                break;
            }
            name.push(c);
            chars.next();
        }
        while matches!(chars.peek(), Some(c) if c.is_whitespace()) {
            chars.next();
        }
        if chars.next() != Some('=') || name.is_empty() {
            return Err(ChallengeError::Malformed("expected name=value"));
        }
        while matches!(chars.peek(), Some(c) if c.is_whitespace()) {
            chars.next();
        }
        let mut value = String::new();
        if chars.peek() == Some(&'"') {
            chars.next();
            loop {
                match chars.next() {
                    None => return Err(ChallengeError::Malformed("unterminated quoted string")),
                    Some('"') => break,
                    Some('\\') => match chars.next() {
                        Some(c) => value.push(c),
                        None => return Err(ChallengeError::Malformed("dangling escape")),
                    },
                    Some(c) => value.push(c),
                }
            }
        } else {
            while let Some(&c) = chars.peek() {
                if c == ',' || c.is_whitespace() {
                    break;
                }
                value.push(c);
                chars.next();
            }
        }
        out.push((name, value));
    }
}

/// The `Authorization: Basic` value for credentials.
pub fn basic_header(creds: &Credentials) -> HeaderValue {
    let raw = format!("{}:{}", creds.username, creds.password.expose());
    let encoded = base64::engine::general_purpose::STANDARD.encode(raw);
    let mut v = HeaderValue::from_str(&format!("Basic {encoded}"))
        // Invariant: base64 output is always a valid header value.
        .expect("base64 is a valid header value");
    v.set_sensitive(true);
    v
}

/// The `Authorization: Bearer` value for a token; `None` when the token holds bytes a header
/// cannot carry (a malformed token service answer).
pub fn bearer_header(token: &str) -> Option<HeaderValue> {
    let mut v = HeaderValue::from_str(&format!("Bearer {token}")).ok()?;
    v.set_sensitive(true);
    Some(v)
}

/// The token service's answer (distribution token spec; `access_token` is the OAuth2 name).
#[derive(Deserialize)]
pub struct TokenResponse {
    token: Option<String>,
    access_token: Option<String>,
    expires_in: Option<u64>,
}

impl TokenResponse {
    /// The token and how long to keep it: until shortly before it expires (the spec's default
    /// lifetime is 60 s when none is given).
    pub fn into_token(self) -> Option<(String, Duration)> {
        let token = self.token.or(self.access_token).filter(|t| !t.is_empty())?;
        let lifetime = self.expires_in.unwrap_or(60).max(1);
        let margin = (lifetime / 10).clamp(1, 30);
        Some((
            token,
            Duration::from_secs(lifetime.saturating_sub(margin).max(1)),
        ))
    }
}

/// The scheme an upstream asked for last; shared by all requests to it.
#[derive(Default)]
pub struct Learned(RwLock<Option<Scheme>>);

impl Learned {
    pub fn get(&self) -> Option<Scheme> {
        match self.0.read() {
            Ok(g) => g.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    pub fn set(&self, scheme: Scheme) {
        match self.0.write() {
            Ok(mut g) => *g = Some(scheme),
            Err(poisoned) => *poisoned.into_inner() = Some(scheme),
        }
    }
}

/// Registries whose documented token service lives on another host: (registry host, realm host).
const WELL_KNOWN_REALMS: &[(&str, &str)] = &[
    ("registry-1.docker.io", "auth.docker.io"),
    ("index.docker.io", "auth.docker.io"),
    ("docker.io", "auth.docker.io"),
    ("registry.gitlab.com", "gitlab.com"),
];

/// The token realm hosts an upstream's credentials may be sent to: the upstream's own host, the
/// hosts its `token_realms` lists (`host` for any port, `host:port` for one), and the well-known
/// token service of its registry.
#[derive(Debug, Clone)]
pub struct RealmHosts(Vec<String>);

impl RealmHosts {
    pub fn new(base: &Url, configured: &[String]) -> RealmHosts {
        let own = base.host_str().unwrap_or_default().to_ascii_lowercase();
        let mut hosts = vec![own.clone()];
        hosts.extend(
            WELL_KNOWN_REALMS
                .iter()
                .filter(|(registry, _)| *registry == own)
                .map(|(_, realm)| (*realm).to_owned()),
        );
        hosts.extend(configured.iter().map(|h| h.to_ascii_lowercase()));
        RealmHosts(hosts)
    }

    pub fn allows(&self, realm: &Url) -> bool {
        let Some(host) = realm.host_str().map(str::to_ascii_lowercase) else {
            return false;
        };
        let with_port = host_port(realm);
        self.0.iter().any(|h| *h == host || *h == with_port)
    }
}

/// `host:port` of a URL (the scheme's default port when it names none), for messages and
/// `token_realms` entries that name a port.
pub fn host_port(url: &Url) -> String {
    let host = url.host_str().unwrap_or_default().to_ascii_lowercase();
    match url.port_or_known_default() {
        Some(port) => format!("{host}:{port}"),
        None => host,
    }
}

/// The pull scope for a repository.
pub fn pull_scope(repo: &str) -> String {
    format!("repository:{repo}:pull")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hv(s: &str) -> HeaderValue {
        HeaderValue::from_str(s).unwrap()
    }

    #[test]
    fn parses_docker_hub_challenge() {
        let c = parse_challenge(
            Some(&hv(r#"Bearer realm="https://auth.docker.io/token",service="registry.docker.io",scope="repository:library/alpine:pull""#)),
            true,
        )
        .unwrap();
        assert_eq!(
            c.scheme,
            Scheme::Bearer {
                realm: Url::parse("https://auth.docker.io/token").unwrap(),
                service: Some("registry.docker.io".into())
            }
        );
        assert_eq!(c.scope.as_deref(), Some("repository:library/alpine:pull"));
    }

    #[test]
    fn parses_basic_and_unquoted() {
        assert_eq!(
            parse_challenge(Some(&hv(r#"Basic realm="Registry Realm""#)), true)
                .unwrap()
                .scheme,
            Scheme::Basic
        );
        let c = parse_challenge(
            Some(&hv(
                r#"bearer realm=https://t.example/token , service="a\"b""#,
            )),
            true,
        )
        .unwrap();
        assert!(matches!(c.scheme, Scheme::Bearer { service: Some(ref s), .. } if s == "a\"b"));
    }

    #[test]
    fn rejects_bad_challenges() {
        assert_eq!(parse_challenge(None, true), Err(ChallengeError::Missing));
        assert_eq!(
            parse_challenge(Some(&hv("Bearer service=x")), true),
            Err(ChallengeError::NoRealm)
        );
        assert_eq!(
            parse_challenge(Some(&hv(r#"Bearer realm="http://t/token""#)), true),
            Err(ChallengeError::InsecureRealm)
        );
        assert!(parse_challenge(Some(&hv(r#"Bearer realm="http://t/token""#)), false).is_ok());
        assert!(matches!(
            parse_challenge(Some(&hv(r#"Bearer realm="file:///etc/passwd""#)), true),
            Err(ChallengeError::BadRealm(_))
        ));
        assert!(matches!(
            parse_challenge(Some(&hv("Negotiate abc")), true),
            Err(ChallengeError::UnsupportedScheme(_))
        ));
        assert!(matches!(
            parse_challenge(Some(&hv(r#"Bearer realm="unterminated"#)), true),
            Err(ChallengeError::Malformed(_))
        ));
    }

    #[test]
    fn credentials_go_only_to_allowed_realm_hosts() {
        let url = |s: &str| Url::parse(s).unwrap();
        let hub = RealmHosts::new(&url("https://registry-1.docker.io"), &[]);
        assert!(hub.allows(&url("https://auth.docker.io/token")));
        assert!(hub.allows(&url("https://registry-1.docker.io/token")));
        assert!(!hub.allows(&url("https://auth.docker.io.evil.example/token")));
        assert!(!hub.allows(&url("https://evil.example/token")));

        let own = RealmHosts::new(
            &url("https://registry.corp:5000"),
            &["sso.corp".into(), "tokens.corp:8443".into()],
        );
        // The upstream's own host, on any port; listed hosts as written.
        assert!(own.allows(&url("https://REGISTRY.corp/token")));
        assert!(own.allows(&url("https://registry.corp:9000/token")));
        assert!(own.allows(&url("https://sso.corp:1234/auth")));
        assert!(own.allows(&url("https://tokens.corp:8443/t")));
        assert!(!own.allows(&url("https://tokens.corp/t")));
        assert!(!own.allows(&url("https://127.0.0.2/t")));
    }

    #[test]
    fn token_lifetime_keeps_a_margin() {
        let t: TokenResponse = serde_json::from_str(r#"{"token":"abc","expires_in":300}"#).unwrap();
        assert_eq!(
            t.into_token(),
            Some(("abc".into(), Duration::from_secs(270)))
        );
        let t: TokenResponse = serde_json::from_str(r#"{"access_token":"x"}"#).unwrap();
        assert_eq!(t.into_token(), Some(("x".into(), Duration::from_secs(54))));
        let t: TokenResponse = serde_json::from_str(r#"{"token":""}"#).unwrap();
        assert_eq!(t.into_token(), None);
    }
}
