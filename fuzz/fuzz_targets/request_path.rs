//! A client's request line: route (`routes::parse`), query, upstream and repository
//! (`mapping::resolve_name`), then the reference or digest; and a user-written image reference
//! (`split_image_ref`). Whatever parses must print back to itself (one canonical spelling).
#![no_main]

use libfuzzer_sys::fuzz_target;
use portcullis::oci::{split_image_ref, Digest, Reference, RepoName};
use portcullis::registry_api::routes::{self, RepoOp, Route};
use portcullis::upstream::mapping::resolve_name;

const CONFIGURED: &[&str] = &["docker.io", "ghcr.io", "localhost:5000"];

fn round_trips<T: std::str::FromStr + ToString + PartialEq + std::fmt::Debug>(s: &str) {
    if let Ok(v) = s.parse::<T>() {
        assert_eq!(v.to_string().parse::<T>().ok().as_ref(), Some(&v));
    }
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let (path, query) = text.split_once('?').unwrap_or((text, ""));
    let ns = url::form_urlencoded::parse(query.as_bytes())
        .find(|(k, _)| k == "ns")
        .map(|(_, v)| v.into_owned());
    if let Route::Repo { name, op } = routes::parse(path) {
        let resolved = resolve_name(name, ns.as_deref(), "docker.io", |k| {
            CONFIGURED.contains(&k)
        });
        if let Ok((_, repo, _)) = resolved {
            assert_eq!(repo.as_str().parse::<RepoName>().as_ref(), Ok(&repo));
        }
        match op {
            RepoOp::Manifest(r) => round_trips::<Reference>(r),
            RepoOp::Blob(d) | RepoOp::Referrers(d) => round_trips::<Digest>(d),
            RepoOp::Tags => {}
        }
    }
    let (name, reference) = split_image_ref(text);
    round_trips::<RepoName>(name);
    if let Some(r) = reference {
        round_trips::<Reference>(r);
    }
});
