//! The registry API's URL space: which route a request path names. Pure string work; parsing
//! the names and references inside a route is left to the handlers (via `reference`).

/// A route of the pull side of the OCI distribution API, borrowing from the request path.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Route<'a> {
    /// `/v2/`
    Ping,
    /// `/v2/<name>/...`: an operation on one repository.
    Repo { name: &'a str, op: RepoOp<'a> },
    /// `/v2/<name>/blobs/uploads/...`: the push side, never served.
    Upload,
    /// Anything else.
    Unknown,
}

/// What is asked of a repository; the strings are still unparsed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RepoOp<'a> {
    Manifest(&'a str),
    Blob(&'a str),
    Tags,
    Referrers(&'a str),
}

impl Route<'_> {
    /// The metric label for this route (bounded).
    pub fn label(&self) -> &'static str {
        match self {
            Route::Ping => "ping",
            Route::Repo {
                op: RepoOp::Manifest(_),
                ..
            } => "manifest",
            Route::Repo {
                op: RepoOp::Blob(_),
                ..
            } => "blob",
            Route::Repo {
                op: RepoOp::Tags, ..
            } => "tags",
            Route::Repo {
                op: RepoOp::Referrers(_),
                ..
            } => "referrers",
            Route::Upload => "upload",
            Route::Unknown => "unknown",
        }
    }
}

/// Splits `rest` at the last `/<marker>/` into (name, last segment), where the last segment has
/// no further slash.
fn split_last<'a>(rest: &'a str, marker: &str) -> Option<(&'a str, &'a str)> {
    let needle = format!("/{marker}/");
    let at = rest.rfind(&needle)?;
    let (name, tail) = (&rest[..at], &rest[at + needle.len()..]);
    if name.is_empty() || tail.is_empty() || tail.contains('/') {
        return None;
    }
    Some((name, tail))
}

pub fn parse(path: &str) -> Route<'_> {
    if path == "/v2/" || path == "/v2" {
        return Route::Ping;
    }
    let Some(rest) = path.strip_prefix("/v2/") else {
        return Route::Unknown;
    };
    if let Some(name) = rest.strip_suffix("/tags/list") {
        if !name.is_empty() {
            return Route::Repo {
                name,
                op: RepoOp::Tags,
            };
        }
    }
    if rest.contains("/blobs/uploads") {
        return Route::Upload;
    }
    if let Some((name, reference)) = split_last(rest, "manifests") {
        return Route::Repo {
            name,
            op: RepoOp::Manifest(reference),
        };
    }
    if let Some((name, digest)) = split_last(rest, "blobs") {
        return Route::Repo {
            name,
            op: RepoOp::Blob(digest),
        };
    }
    if let Some((name, digest)) = split_last(rest, "referrers") {
        return Route::Repo {
            name,
            op: RepoOp::Referrers(digest),
        };
    }
    Route::Unknown
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes() {
        assert_eq!(parse("/v2/"), Route::Ping);
        assert_eq!(
            parse("/v2/library/alpine/manifests/latest"),
            Route::Repo {
                name: "library/alpine",
                op: RepoOp::Manifest("latest")
            }
        );
        assert_eq!(
            parse("/v2/ghcr.io/a/b/blobs/sha256:ab"),
            Route::Repo {
                name: "ghcr.io/a/b",
                op: RepoOp::Blob("sha256:ab")
            }
        );
        assert_eq!(
            parse("/v2/a/tags/list"),
            Route::Repo {
                name: "a",
                op: RepoOp::Tags
            }
        );
        assert_eq!(
            parse("/v2/a/referrers/sha256:00"),
            Route::Repo {
                name: "a",
                op: RepoOp::Referrers("sha256:00")
            }
        );
        assert_eq!(parse("/v2/a/blobs/uploads/"), Route::Upload);
        assert_eq!(parse("/v2/a/blobs/uploads/123"), Route::Upload);
        // A repository may itself be called "manifests": the last marker wins.
        assert_eq!(
            parse("/v2/x/manifests/manifests/v1"),
            Route::Repo {
                name: "x/manifests",
                op: RepoOp::Manifest("v1")
            }
        );
        for unknown in [
            "/",
            "/v1/x",
            "/v2/x",
            "/v2/x/manifests/",
            "/v2//manifests/a",
            "/v2/tags/list",
            "/v2/a/manifests/b/c",
        ] {
            assert_eq!(parse(unknown), Route::Unknown, "{unknown}");
        }
    }
}
