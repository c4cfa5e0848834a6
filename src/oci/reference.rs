//! The names OCI content is addressed by, built only by parsing: [`RepoName`], [`Tag`],
//! [`Digest`], [`Reference`] and the canonical [`ImageName`] (`<registry>/<repository>`).
//!
//! The grammar is the OCI distribution spec's. A value of one of these types is valid by
//! construction; nothing downstream re-checks it. This module does not know which registries are
//! configured (that is `upstream::mapping`) nor how a name reached the proxy (that is
//! `registry_api`).

use std::fmt;
use std::str::FromStr;
use std::sync::LazyLock;

use regex::Regex;
use sha2::Digest as _;

/// Longest repository name accepted (distribution's limit, counted with the registry host).
const MAX_NAME_LEN: usize = 255;

static COMPONENT: LazyLock<Regex> = LazyLock::new(|| {
    // Invariant: a literal, valid regular expression.
    Regex::new(r"^[a-z0-9]+(?:(?:\.|_|__|-+)[a-z0-9]+)*$").expect("valid regex")
});
static TAG: LazyLock<Regex> = LazyLock::new(|| {
    // Invariant: a literal, valid regular expression.
    Regex::new(r"^[a-zA-Z0-9_][a-zA-Z0-9._-]{0,127}$").expect("valid regex")
});
static ALGORITHM: LazyLock<Regex> = LazyLock::new(|| {
    // Invariant: a literal, valid regular expression.
    Regex::new(r"^[a-z0-9]+(?:[+._-][a-z0-9]+)*$").expect("valid regex")
});

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParseError {
    #[error(
        "invalid repository name {0:?}: components must match [a-z0-9]+((.|_|__|-+)[a-z0-9]+)*"
    )]
    Name(String),
    #[error("repository name is longer than {MAX_NAME_LEN} characters")]
    NameTooLong,
    #[error("invalid tag {0:?}: must match [a-zA-Z0-9_][a-zA-Z0-9._-]{{0,127}}")]
    Tag(String),
    #[error("invalid digest {0:?}: expected <algorithm>:<hex>")]
    Digest(String),
    #[error("unsupported digest algorithm {0:?}: only sha256 and sha512 are accepted")]
    Algorithm(String),
}

// === impl RepoName ===

/// A repository path inside one registry, e.g. `library/alpine`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct RepoName(String);

impl RepoName {
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The path components (`a/b/c` → `a`, `b`, `c`).
    pub fn components(&self) -> impl Iterator<Item = &str> {
        self.0.split('/')
    }

    /// Docker Hub keeps official images under `library/`; a one-component name gets it.
    pub fn with_library_prefix(self) -> RepoName {
        if self.0.contains('/') {
            self
        } else {
            RepoName(format!("library/{}", self.0))
        }
    }
}

impl FromStr for RepoName {
    type Err = ParseError;
    fn from_str(s: &str) -> Result<Self, ParseError> {
        if s.len() > MAX_NAME_LEN {
            return Err(ParseError::NameTooLong);
        }
        if s.is_empty() || !s.split('/').all(|c| COMPONENT.is_match(c)) {
            return Err(ParseError::Name(truncate(s)));
        }
        Ok(RepoName(s.to_owned()))
    }
}

impl fmt::Display for RepoName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

// === impl Tag ===

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Tag(String);

impl Tag {
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl FromStr for Tag {
    type Err = ParseError;
    fn from_str(s: &str) -> Result<Self, ParseError> {
        if TAG.is_match(s) {
            Ok(Tag(s.to_owned()))
        } else {
            Err(ParseError::Tag(truncate(s)))
        }
    }
}

impl fmt::Display for Tag {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

// === impl Digest ===

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Algorithm {
    Sha256,
    Sha512,
}

impl Algorithm {
    pub fn as_str(self) -> &'static str {
        match self {
            Algorithm::Sha256 => "sha256",
            Algorithm::Sha512 => "sha512",
        }
    }

    fn hex_len(self) -> usize {
        match self {
            Algorithm::Sha256 => 64,
            Algorithm::Sha512 => 128,
        }
    }

    /// The digest of `bytes` under this algorithm.
    pub fn digest(self, bytes: &[u8]) -> Digest {
        let hex = match self {
            Algorithm::Sha256 => hex::encode(sha2::Sha256::digest(bytes)),
            Algorithm::Sha512 => hex::encode(sha2::Sha512::digest(bytes)),
        };
        Digest {
            algorithm: self,
            hex,
        }
    }
}

/// A digest computed piece by piece, for bodies streamed rather than held.
#[derive(Clone)]
pub enum Hasher {
    Sha256(sha2::Sha256),
    Sha512(sha2::Sha512),
}

impl Hasher {
    pub fn new(algorithm: Algorithm) -> Hasher {
        match algorithm {
            Algorithm::Sha256 => Hasher::Sha256(sha2::Sha256::new()),
            Algorithm::Sha512 => Hasher::Sha512(sha2::Sha512::new()),
        }
    }

    pub fn update(&mut self, bytes: &[u8]) {
        match self {
            Hasher::Sha256(h) => h.update(bytes),
            Hasher::Sha512(h) => h.update(bytes),
        }
    }

    pub fn finish(self) -> Digest {
        let (algorithm, hex) = match self {
            Hasher::Sha256(h) => (Algorithm::Sha256, hex::encode(h.finalize())),
            Hasher::Sha512(h) => (Algorithm::Sha512, hex::encode(h.finalize())),
        };
        Digest { algorithm, hex }
    }
}

/// A content digest `<algorithm>:<lowercase hex>`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Digest {
    algorithm: Algorithm,
    hex: String,
}

impl Digest {
    pub fn algorithm(&self) -> Algorithm {
        self.algorithm
    }

    pub fn hex(&self) -> &str {
        &self.hex
    }

    /// The sha256 digest of `bytes`.
    pub fn sha256_of(bytes: &[u8]) -> Digest {
        Algorithm::Sha256.digest(bytes)
    }

    /// The referrers tag schema's fallback tag for this digest: `<alg>-<hex>`.
    pub fn fallback_tag(&self) -> Tag {
        Tag(format!("{}-{}", self.algorithm.as_str(), self.hex))
    }

    /// True when `bytes` hash to this digest.
    pub fn matches(&self, bytes: &[u8]) -> bool {
        self.algorithm.digest(bytes) == *self
    }

    /// For tests: `sha256:` and `hex` (a lowercase hex digit) 64 times.
    #[cfg(test)]
    pub fn repeated(hex: char) -> Digest {
        assert!(
            hex.is_ascii_hexdigit() && !hex.is_ascii_uppercase(),
            "{hex:?}"
        );
        Digest {
            algorithm: Algorithm::Sha256,
            hex: hex.to_string().repeat(64),
        }
    }
}

impl FromStr for Digest {
    type Err = ParseError;
    fn from_str(s: &str) -> Result<Self, ParseError> {
        let (alg, hex) = s
            .split_once(':')
            .ok_or_else(|| ParseError::Digest(truncate(s)))?;
        if !ALGORITHM.is_match(alg) {
            return Err(ParseError::Digest(truncate(s)));
        }
        let algorithm = match alg {
            "sha256" => Algorithm::Sha256,
            "sha512" => Algorithm::Sha512,
            other => return Err(ParseError::Algorithm(truncate(other))),
        };
        let is_lower_hex = hex
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
        if hex.len() != algorithm.hex_len() || !is_lower_hex {
            return Err(ParseError::Digest(truncate(s)));
        }
        Ok(Digest {
            algorithm,
            hex: hex.to_owned(),
        })
    }
}

impl fmt::Display for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.algorithm.as_str(), self.hex)
    }
}

// === impl Reference ===

/// What a manifest request names: a tag or a digest.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Reference {
    Tag(Tag),
    Digest(Digest),
}

impl Reference {
    pub fn digest(&self) -> Option<&Digest> {
        match self {
            Reference::Digest(d) => Some(d),
            Reference::Tag(_) => None,
        }
    }
}

impl FromStr for Reference {
    type Err = ParseError;
    fn from_str(s: &str) -> Result<Self, ParseError> {
        if s.contains(':') {
            s.parse().map(Reference::Digest)
        } else {
            s.parse().map(Reference::Tag)
        }
    }
}

impl fmt::Display for Reference {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Reference::Tag(t) => t.fmt(f),
            Reference::Digest(d) => d.fmt(f),
        }
    }
}

/// Splits a user-written image reference `name[:tag][@digest]` into the name and the reference
/// part (the digest when both are given), without parsing either.
pub fn split_image_ref(s: &str) -> (&str, Option<&str>) {
    if let Some((name, digest)) = s.split_once('@') {
        let name = split_image_ref(name).0;
        return (name, Some(digest));
    }
    match s.rfind(':') {
        // A colon before the last slash is a registry port, not a tag.
        Some(i) if !s[i..].contains('/') => (&s[..i], Some(&s[i + 1..])),
        _ => (s, None),
    }
}

// === impl ImageName ===

/// The canonical name of an image repository: the configured registry key plus the repository.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ImageName {
    pub registry: String,
    pub repo: RepoName,
}

impl fmt::Display for ImageName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.registry, self.repo)
    }
}

/// Keeps user input quoted in errors short: a hostile path cannot make a huge error body.
fn truncate(s: &str) -> String {
    const MAX: usize = 140;
    if s.len() <= MAX {
        return s.to_owned();
    }
    let mut end = MAX;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &s[..end])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn image_refs_split_into_name_and_reference() {
        assert_eq!(split_image_ref("alpine"), ("alpine", None));
        assert_eq!(
            split_image_ref("ghcr.io/a/b:v1"),
            ("ghcr.io/a/b", Some("v1"))
        );
        assert_eq!(
            split_image_ref("localhost:5000/a/b@sha256:ab"),
            ("localhost:5000/a/b", Some("sha256:ab"))
        );
        assert_eq!(
            split_image_ref("localhost:5000/a/b:v1@sha256:ab"),
            ("localhost:5000/a/b", Some("sha256:ab"))
        );
        assert_eq!(
            split_image_ref("localhost:5000/a"),
            ("localhost:5000/a", None)
        );
    }

    #[test]
    fn repo_names_follow_the_distribution_grammar() {
        for ok in ["alpine", "library/alpine", "a/b-c/d__e/f.g", "a1/b--c", "x"] {
            assert!(ok.parse::<RepoName>().is_ok(), "{ok}");
        }
        for bad in [
            "", "Alpine", "a//b", "/a", "a/", "a/-b", "a/b.", "a/.b", "a/b___c", "a b", "a/../b",
        ] {
            assert!(bad.parse::<RepoName>().is_err(), "{bad:?}");
        }
        let long = "a/".repeat(128) + "a";
        assert_eq!(long.parse::<RepoName>(), Err(ParseError::NameTooLong));
    }

    #[test]
    fn library_prefix_only_for_single_components() {
        let a: RepoName = "alpine".parse().unwrap();
        assert_eq!(a.with_library_prefix().as_str(), "library/alpine");
        let b: RepoName = "company/app".parse().unwrap();
        assert_eq!(b.with_library_prefix().as_str(), "company/app");
    }

    #[test]
    fn tags() {
        assert!("v1.2.3-rc_1".parse::<Tag>().is_ok());
        assert!("_x".parse::<Tag>().is_ok());
        assert!(".x".parse::<Tag>().is_err());
        assert!("-x".parse::<Tag>().is_err());
        assert!("a".repeat(129).parse::<Tag>().is_err());
        assert!("a".repeat(128).parse::<Tag>().is_ok());
    }

    #[test]
    fn digests() {
        let hex = "a".repeat(64);
        let d: Digest = format!("sha256:{hex}").parse().unwrap();
        assert_eq!(d.to_string(), format!("sha256:{hex}"));
        assert_eq!(d.fallback_tag().as_str(), format!("sha256-{hex}"));
        assert!(format!("sha256:{}", "A".repeat(64))
            .parse::<Digest>()
            .is_err());
        assert!(format!("sha256:{}", "a".repeat(63))
            .parse::<Digest>()
            .is_err());
        assert!(format!("sha512:{}", "a".repeat(128))
            .parse::<Digest>()
            .is_ok());
        assert!(matches!(
            format!("md5:{hex}").parse::<Digest>(),
            Err(ParseError::Algorithm(_))
        ));
        assert!("sha256".parse::<Digest>().is_err());
    }

    #[test]
    fn digest_of_bytes() {
        let d = Digest::sha256_of(b"hello");
        assert_eq!(
            d.to_string(),
            "sha256:2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824"
        );
        assert!(d.matches(b"hello"));
        assert!(!d.matches(b"hello!"));
    }

    #[test]
    fn references() {
        assert!(matches!(
            "latest".parse::<Reference>(),
            Ok(Reference::Tag(_))
        ));
        assert!(matches!(
            format!("sha256:{}", "0".repeat(64)).parse::<Reference>(),
            Ok(Reference::Digest(_))
        ));
        assert!("sha256:zz".parse::<Reference>().is_err());
    }
}
