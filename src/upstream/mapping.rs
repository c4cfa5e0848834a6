//! Addressing: which upstream a client's request is for, and the canonical image name
//! `<registry>/<repository>` it names (DESIGN.md §1).
//!
//! Three forms, tried in this order:
//! 1. containerd / CRI mirror form: `?ns=<registry>` names the registry;
//! 2. prefix form: the first path segment is a configured upstream key (`/v2/ghcr.io/org/app/...`);
//! 3. plain form (Docker daemon `registry-mirrors`): everything goes to `default_upstream`.
//!
//! Docker Hub official images get `library/`. Only configured registries are ever selected.

use std::collections::BTreeMap;
use std::sync::Arc;

use super::Upstream;
use crate::oci::{ImageName, ParseError, RepoName};

/// Docker Hub's canonical key, and the other names clients use for it.
const DOCKER_HUB: &str = "docker.io";
const DOCKER_HUB_ALIASES: &[&str] = &["index.docker.io", "registry-1.docker.io"];

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum MappingError {
    #[error("registry {0:?} is not configured on this proxy")]
    UnknownRegistry(String),
    #[error(transparent)]
    Name(#[from] ParseError),
}

/// Which addressing form selected the upstream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Form {
    /// `?ns=<registry>`
    Mirror,
    /// The first path segment is a configured key (or a Docker Hub alias).
    Prefix,
    /// Neither: the default upstream.
    Plain,
}

/// All configured upstreams, by key.
pub struct Upstreams {
    by_key: BTreeMap<String, Arc<Upstream>>,
    default_key: String,
}

impl Upstreams {
    /// `default_key` must be a key of `by_key` (the configuration validates it).
    pub fn new(by_key: BTreeMap<String, Arc<Upstream>>, default_key: String) -> Upstreams {
        Upstreams {
            by_key,
            default_key,
        }
    }

    pub fn get(&self, key: &str) -> Option<&Arc<Upstream>> {
        self.by_key.get(key)
    }

    pub fn keys(&self) -> impl Iterator<Item = &str> {
        self.by_key.keys().map(String::as_str)
    }

    /// Maps a request's repository path (between `/v2/` and `/manifests/` etc.) and its `ns`
    /// query parameter to an upstream and a canonical image name.
    pub fn resolve(
        &self,
        path_name: &str,
        ns: Option<&str>,
    ) -> Result<(Arc<Upstream>, ImageName), MappingError> {
        let (key, repo, _) = resolve_name(path_name, ns, &self.default_key, |k| {
            self.by_key.contains_key(k)
        })?;
        let upstream = self
            .by_key
            .get(&key)
            .cloned()
            .ok_or_else(|| MappingError::UnknownRegistry(key.clone()))?;
        Ok((
            upstream,
            ImageName {
                registry: key,
                repo,
            },
        ))
    }
}

/// The pure part of [`Upstreams::resolve`]: which configured key, which repository.
pub fn resolve_name(
    path_name: &str,
    ns: Option<&str>,
    default_key: &str,
    is_configured: impl Fn(&str) -> bool,
) -> Result<(String, RepoName, Form), MappingError> {
    let canonical = |k: &str| -> String {
        if DOCKER_HUB_ALIASES.contains(&k) && is_configured(DOCKER_HUB) && !is_configured(k) {
            DOCKER_HUB.to_owned()
        } else {
            k.to_owned()
        }
    };
    let (key, repo_path, form) = match ns {
        Some(ns) => {
            let key = canonical(ns);
            if !is_configured(&key) {
                return Err(MappingError::UnknownRegistry(
                    ns.chars().take(100).collect(),
                ));
            }
            (key, path_name, Form::Mirror)
        }
        None => match path_name.split_once('/') {
            Some((first, rest)) if is_configured(&canonical(first)) => {
                (canonical(first), rest, Form::Prefix)
            }
            // Docker's reference rule makes this first segment a registry, not a namespace: a
            // client meant another registry, so nothing goes to the default upstream (§7.6).
            Some((first, _)) if is_host_name(first) => {
                return Err(MappingError::UnknownRegistry(
                    first.chars().take(100).collect(),
                ))
            }
            _ => (default_key.to_owned(), path_name, Form::Plain),
        },
    };
    let mut repo: RepoName = repo_path.parse()?;
    if key == DOCKER_HUB {
        repo = repo.with_library_prefix();
    }
    Ok((key, repo, form))
}

/// Docker's rule for the first component of a reference: a registry host when it contains a `.`
/// or a `:`, or is `localhost` (in any case: the rule is applied before names are lower-cased).
fn is_host_name(segment: &str) -> bool {
    segment.contains(['.', ':']) || segment.eq_ignore_ascii_case("localhost")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn resolve(path: &str, ns: Option<&str>) -> Result<(String, String), MappingError> {
        let keys = ["docker.io", "ghcr.io", "registry.local:5001"];
        resolve_name(path, ns, "docker.io", |k| keys.contains(&k))
            .map(|(k, r, _)| (k, r.to_string()))
    }

    fn ok(k: &str, r: &str) -> Result<(String, String), MappingError> {
        Ok((k.to_owned(), r.to_owned()))
    }

    #[test]
    fn mirror_form() {
        assert_eq!(
            resolve("company/app", Some("ghcr.io")),
            ok("ghcr.io", "company/app")
        );
        assert_eq!(
            resolve("alpine", Some("docker.io")),
            ok("docker.io", "library/alpine")
        );
        assert_eq!(
            resolve("library/alpine", Some("index.docker.io")),
            ok("docker.io", "library/alpine")
        );
        assert_eq!(
            resolve("x/y", Some("evil.example")),
            Err(MappingError::UnknownRegistry("evil.example".into()))
        );
        // ns wins over a prefix-looking first segment.
        assert_eq!(
            resolve("ghcr.io/x", Some("docker.io")),
            ok("docker.io", "ghcr.io/x")
        );
    }

    #[test]
    fn prefix_form() {
        assert_eq!(
            resolve("ghcr.io/company/app", None),
            ok("ghcr.io", "company/app")
        );
        assert_eq!(
            resolve("docker.io/alpine", None),
            ok("docker.io", "library/alpine")
        );
        assert_eq!(
            resolve("registry.local:5001/team/app", None),
            ok("registry.local:5001", "team/app")
        );
    }

    #[test]
    fn plain_form() {
        assert_eq!(resolve("alpine", None), ok("docker.io", "library/alpine"));
        assert_eq!(resolve("company/app", None), ok("docker.io", "company/app"));
        // A first segment that is a host name names a registry: unconfigured ones are unknown,
        // never a repository path on the default upstream.
        for (path, host) in [
            ("quay.io/x", "quay.io"),
            ("evil.example/library/alpine", "evil.example"),
            ("registry.other:5000/team/app", "registry.other:5000"),
            ("localhost/app", "localhost"),
            ("LocalHost/app", "LocalHost"),
            ("127.0.0.1:5001/app", "127.0.0.1:5001"),
        ] {
            assert_eq!(
                resolve(path, None),
                Err(MappingError::UnknownRegistry(host.into())),
                "{path}"
            );
        }
        // Without a slash the one segment is a repository, as in Docker's rule.
        assert_eq!(
            resolve("localhost", None),
            ok("docker.io", "library/localhost")
        );
    }

    #[test]
    fn invalid_names() {
        assert!(matches!(
            resolve("Bad/Name", None),
            Err(MappingError::Name(_))
        ));
        assert!(matches!(
            resolve("ghcr.io/", None),
            Err(MappingError::Name(_))
        ));
    }
}
