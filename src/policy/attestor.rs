//! Attestors: who may sign. A keyless attestor names a Fulcio certificate identity and OIDC
//! issuer, each exact or a regexp; a key attestor holds a public key (PEM: ECDSA P-256/P-384,
//! Ed25519, RSA), parsed at load so a bad key is a start-up error.
//!
//! Regexps must match the *whole* identity (they are anchored): `https://github.com/company/.+`
//! cannot be satisfied by `https://evil.example/?https://github.com/company/x`. This module only
//! matches strings and holds keys; the cryptography is `signature::verify`'s.

use std::fmt;

use regex::Regex;
use sigstore_types::DerPublicKey;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum AttestorError {
    #[error("bad regexp {pattern:?}: {reason}")]
    Regexp { pattern: String, reason: String },
    #[error("not a PEM public key: {0}")]
    KeyPem(String),
    #[error("unsupported public key: {0} (use ECDSA P-256/P-384, Ed25519 or RSA)")]
    KeyType(String),
}

/// An exact string or an anchored regexp.
#[derive(Debug, Clone)]
pub enum Matcher {
    Exact(String),
    Regexp(Regex),
}

impl Matcher {
    /// Compiles `pattern` anchored at both ends.
    pub fn regexp(pattern: &str) -> Result<Matcher, AttestorError> {
        Regex::new(&format!("^(?:{pattern})$"))
            .map(Matcher::Regexp)
            .map_err(|e| AttestorError::Regexp {
                pattern: pattern.to_owned(),
                reason: e.to_string(),
            })
    }

    pub fn is_match(&self, value: &str) -> bool {
        match self {
            Matcher::Exact(s) => s == value,
            Matcher::Regexp(r) => r.is_match(value),
        }
    }

    fn fingerprint(&self) -> String {
        match self {
            Matcher::Exact(s) => format!("exact:{s}"),
            Matcher::Regexp(r) => format!("regexp:{}", r.as_str()),
        }
    }
}

impl fmt::Display for Matcher {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Matcher::Exact(s) => write!(f, "{s:?}"),
            // Show the regexp as written, without the anchoring group.
            Matcher::Regexp(r) => {
                let s = r.as_str();
                let inner = s
                    .strip_prefix("^(?:")
                    .and_then(|s| s.strip_suffix(")$"))
                    .unwrap_or(s);
                write!(f, "/{inner}/")
            }
        }
    }
}

/// A trusted public key and where it came from.
#[derive(Debug, Clone)]
pub struct PublicKey {
    pub der: DerPublicKey,
    /// The key's origin for messages: the file path, or `inline PEM`.
    pub origin: String,
}

impl PublicKey {
    pub fn from_pem(pem: &str, origin: String) -> Result<PublicKey, AttestorError> {
        let der = DerPublicKey::from_pem(pem).map_err(|e| AttestorError::KeyPem(e.to_string()))?;
        sigstore_crypto::VerificationKey::from_spki(&der)
            .map_err(|e| AttestorError::KeyType(e.to_string()))?;
        Ok(PublicKey { der, origin })
    }
}

#[derive(Debug, Clone)]
pub enum Attestor {
    Keyless {
        subject: Matcher,
        issuer: Matcher,
    },
    Key {
        key: PublicKey,
        /// Accept signatures with no transparency-log entry (cosign `--tlog-upload=false`).
        insecure_ignore_tlog: bool,
    },
}

impl Attestor {
    pub fn keyless(subject: Matcher, issuer: Matcher) -> Attestor {
        Attestor::Keyless { subject, issuer }
    }

    /// Everything that decides what this attestor accepts, for the rule fingerprint.
    pub fn fingerprint_bytes(&self) -> Vec<u8> {
        match self {
            Attestor::Keyless { subject, issuer } => format!(
                "keyless\0{}\0{}",
                subject.fingerprint(),
                issuer.fingerprint()
            )
            .into_bytes(),
            Attestor::Key {
                key,
                insecure_ignore_tlog,
            } => {
                let mut v = format!("key\0{insecure_ignore_tlog}\0").into_bytes();
                v.extend_from_slice(key.der.as_bytes());
                v
            }
        }
    }
}

impl fmt::Display for Attestor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Attestor::Keyless { subject, issuer } => {
                write!(f, "keyless subject {subject} issuer {issuer}")
            }
            Attestor::Key {
                key,
                insecure_ignore_tlog,
            } => write!(
                f,
                "key {}{}",
                key.origin,
                if *insecure_ignore_tlog {
                    ", ignore_tlog"
                } else {
                    ""
                }
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn regexps_are_anchored() {
        let m = Matcher::regexp("https://github.com/company/.+").unwrap();
        assert!(
            m.is_match("https://github.com/company/app/.github/workflows/r.yml@refs/heads/main")
        );
        assert!(!m.is_match("https://evil.example/?https://github.com/company/x"));
        assert!(!m.is_match("https://github.com/company/"));
        let m = Matcher::regexp("^https://github.com/company/.+").unwrap();
        assert!(m.is_match("https://github.com/company/x"));
        let alt = Matcher::regexp("a|b").unwrap();
        assert!(alt.is_match("a") && alt.is_match("b") && !alt.is_match("ab"));
        assert_eq!(alt.to_string(), "/a|b/");
        assert!(matches!(
            Matcher::regexp("(").unwrap_err(),
            AttestorError::Regexp { .. }
        ));
    }

    #[test]
    fn exact_is_exact() {
        let m = Matcher::Exact("https://token.actions.githubusercontent.com".into());
        assert!(m.is_match("https://token.actions.githubusercontent.com"));
        assert!(!m.is_match("https://token.actions.githubusercontent.com/"));
    }

    #[test]
    fn keys_of_every_supported_type_parse() {
        let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/keys");
        for alg in ["p256", "p384", "ed25519", "rsa"] {
            let pem = std::fs::read_to_string(format!("{dir}/{alg}.pub")).unwrap();
            PublicKey::from_pem(&pem, alg.into()).unwrap();
        }
        let p521 = std::fs::read_to_string(format!("{dir}/p521.pub")).unwrap();
        assert!(matches!(
            PublicKey::from_pem(&p521, "p521".into()).unwrap_err(),
            AttestorError::KeyType(_)
        ));
        assert!(matches!(
            PublicKey::from_pem("not a key", "x".into()).unwrap_err(),
            AttestorError::KeyPem(_)
        ));
    }
}
