//! Signature discovery for a manifest digest D in repository R (DESIGN.md §4):
//!
//! 1. the OCI 1.1 referrers API `/v2/R/referrers/D` (following `Link` pagination, bounded), or
//!    when it answers 404/405 the referrers tag schema, an index tagged `<alg>-<hex>`, asked for
//!    as an OCI index whatever else; referrers whose `artifactType` is a Sigstore bundle are
//!    fetched (manifest, then the bundle layer);
//! 2. cosign's tag scheme `<alg>-<hex>.sig`: a manifest whose simple-signing layers carry the
//!    signature in their annotations, and `<alg>-<hex>.att` for attestations ([`cosign`]);
//! 3. BuildKit's attestation manifests inside an image index ([`buildkit`]).
//!
//! Source (1) is [`referrers`]. This module asks the sources concurrently and holds what they
//! share: bounded reads, signature manifests and blobs checked against their digests, unusable
//! candidates.
//!
//! Every document is read bounded (`limits`), every blob is checked against its digest, and at
//! most `max_signatures` candidates are returned. A 404 means "none here"; any other upstream
//! failure (5xx, 429, 401/403, timeouts) or a malformed referrers index is a [`LookupError`], so
//! a fault is never mistaken for "unsigned". A single broken signature (unparsable manifest,
//! oversized or corrupt layer) is not a fault: it becomes an unusable candidate that fails
//! verification with its reason, and the others are still checked. Nothing here verifies a
//! signature.

mod buildkit;
mod cosign;
mod referrers;

pub use referrers::{bundle_referrers_in, next_page};

use bytes::Bytes;
use http::header::ACCEPT;
use http::{HeaderMap, HeaderValue, Method, StatusCode};

use super::{Announced, Candidate, CandidateKind, LookupError};
use crate::config::Limits;
use crate::oci::media::{ACCEPT_ANY_MANIFEST, ACCEPT_IMAGE_MANIFEST};
use crate::oci::{Descriptor, Digest, Document, RepoName};
use crate::upstream::{Kind, Upstream, UpstreamRequest};
use cosign::LegacyKind;

/// What to look for besides signatures.
#[derive(Default)]
pub struct Wants<'a> {
    /// cosign `.att` attestations (only asked for when a rule requires attestations).
    pub attestations: bool,
    /// An image index whose BuildKit attestation manifests to read.
    pub buildkit: Option<BuildkitIndex<'a>>,
}

/// An image index and where it lives (its attestation manifests live there too).
pub struct BuildkitIndex<'a> {
    pub upstream: &'a Upstream,
    pub repo: &'a RepoName,
    pub index: &'a Document,
}

/// Every signature and attestation candidate for `digest`: bundles from referrers first, then
/// `.sig` layers, then (as `wants` asks) `.att` layers and BuildKit attestations.
pub async fn discover(
    upstream: &Upstream,
    repo: &RepoName,
    digest: &Digest,
    limits: &Limits,
    wants: Wants<'_>,
) -> Result<Vec<Candidate>, LookupError> {
    let d = Discovery {
        upstream,
        repo,
        limits,
    };
    // The three sources are independent: asked concurrently, a cold lookup costs the longest
    // chain of round trips, not their sum. The result keeps a fixed order (bundles, `.sig`,
    // `.att`, BuildKit).
    let referrers = async {
        let mut out = Vec::new();
        for referrer in d.bundle_referrers(digest).await? {
            if out.len() >= limits.max_signatures {
                break;
            }
            d.bundles_of(&referrer, &mut out).await?;
        }
        Ok::<_, LookupError>(out)
    };
    let signatures = async {
        let mut out = Vec::new();
        d.legacy_layers(digest, LegacyKind::Signature, &mut out)
            .await?;
        Ok(out)
    };
    let attestations = async {
        let mut out = Vec::new();
        if wants.attestations {
            d.legacy_layers(digest, LegacyKind::Attestation, &mut out)
                .await?;
        }
        if let Some(b) = &wants.buildkit {
            let at = Discovery {
                upstream: b.upstream,
                repo: b.repo,
                limits,
            };
            at.buildkit_attestations(b.index, &mut out).await?;
        }
        Ok(out)
    };
    // Boxed: three discovery chains side by side make a large future, too large for a worker
    // thread's stack in unoptimised builds.
    let (mut out, signatures, attestations) = tokio::try_join!(
        Box::pin(referrers),
        Box::pin(signatures),
        Box::pin(attestations)
    )?;
    out.extend(signatures);
    out.extend(attestations);
    out.truncate(limits.max_signatures);
    Ok(out)
}

/// A manifest by digest (bounded, digest-checked), `None` when the upstream does not have it: for
/// a `HEAD` whose verdict needs the manifest's content (an index's BuildKit attestations).
pub async fn manifest_by_digest(
    upstream: &Upstream,
    repo: &RepoName,
    digest: &Digest,
    limits: &Limits,
) -> Result<Option<Bytes>, LookupError> {
    let d = Discovery {
        upstream,
        repo,
        limits,
    };
    let what = format!("manifest {digest}");
    let Some((_, bytes)) = d
        .get(
            Kind::Manifest,
            format!("/v2/{repo}/manifests/{digest}"),
            Some(ACCEPT_ANY_MANIFEST),
            limits.max_manifest_bytes,
            &what,
        )
        .await?
    else {
        return Ok(None);
    };
    if !digest.matches(&bytes) {
        return Err(d.malformed(&what, "does not match its digest"));
    }
    Ok(Some(bytes))
}

struct Discovery<'a> {
    upstream: &'a Upstream,
    repo: &'a RepoName,
    limits: &'a Limits,
}

impl Discovery<'_> {
    /// GET `path`, bounded by `limit`; `None` on 404.
    async fn get(
        &self,
        kind: Kind,
        path: String,
        accept: Option<&'static str>,
        limit: usize,
        what: &str,
    ) -> Result<Option<(HeaderMap, Bytes)>, LookupError> {
        let mut headers = HeaderMap::new();
        if let Some(a) = accept {
            headers.insert(ACCEPT, HeaderValue::from_static(a));
        }
        let resp = self
            .upstream
            .send(UpstreamRequest {
                kind,
                method: Method::GET,
                repo: Some(self.repo),
                path_and_query: path,
                headers: headers.clone(),
            })
            .await?;
        let resp = if resp.status().is_redirection() && kind == Kind::Signature {
            // Blob storage redirects (S3, CDNs) are followed without registry credentials.
            self.upstream.follow_redirects(resp, &headers).await?
        } else {
            resp
        };
        match resp.status() {
            StatusCode::OK => {}
            StatusCode::NOT_FOUND => return Ok(None),
            status => {
                return Err(LookupError::Status {
                    upstream: self.upstream.key.clone(),
                    what: what.to_owned(),
                    status,
                })
            }
        }
        let (parts, bytes) = self.upstream.read_body(resp, limit).await?;
        Ok(Some((parts.headers, bytes)))
    }

    /// A signature document's manifest (a referrer, a `.sig`/`.att` manifest, a BuildKit
    /// attestation manifest): `None` on 404; `Some(Err(reason))` when it exceeds
    /// `max_signature_bytes`, which makes that one candidate unusable, not the lookup a fault.
    async fn signature_manifest(
        &self,
        path: String,
        what: &str,
    ) -> Result<Option<Result<Bytes, String>>, LookupError> {
        let limit = self.limits.max_signature_bytes;
        match self
            .get(
                Kind::Signature,
                path,
                Some(ACCEPT_IMAGE_MANIFEST),
                limit,
                what,
            )
            .await
        {
            Ok(Some((_, bytes))) => Ok(Some(Ok(bytes))),
            Ok(None) => Ok(None),
            Err(e) if too_large(&e) => Ok(Some(Err(self.too_large_reason("manifest")))),
            Err(e) => Err(e),
        }
    }

    fn too_large_reason(&self, what: &str) -> String {
        format!(
            "{what} exceeds limits.max_signature_bytes ({})",
            self.limits.max_signature_bytes
        )
    }

    fn malformed(&self, what: &str, reason: impl ToString) -> LookupError {
        LookupError::Malformed {
            upstream: self.upstream.key.clone(),
            what: what.to_owned(),
            reason: reason.to_string(),
        }
    }

    /// A signature blob, bounded and checked against its descriptor's digest. The inner `Err` is
    /// a broken signature (its reason), the outer one a lookup fault.
    async fn blob(
        &self,
        layer: &Descriptor,
        what: &str,
    ) -> Result<Result<Bytes, String>, LookupError> {
        let limit = self.limits.max_signature_bytes;
        // Read under `Reading::Manifest`, which requires a size; a missing one is checked by the
        // bounded read instead.
        let size = layer.size.unwrap_or(0);
        if size > limit as u64 {
            return Ok(Err(format!(
                "a layer of {size} bytes exceeds limits.max_signature_bytes ({limit})"
            )));
        }
        let digest = &layer.digest;
        let fetched = self
            .get(
                Kind::Signature,
                format!("/v2/{}/blobs/{digest}", self.repo),
                None,
                limit,
                what,
            )
            .await;
        let bytes = match fetched {
            Ok(Some((_, bytes))) => bytes,
            Ok(None) => return Ok(Err(format!("layer {digest} is missing (404)"))),
            // A layer larger than its descriptor said is a broken signature, not a fault.
            Err(e) if too_large(&e) => return Ok(Err(self.too_large_reason("layer"))),
            Err(e) => return Err(e),
        };
        if !digest.matches(&bytes) {
            return Ok(Err(format!("layer {digest} does not match its digest")));
        }
        Ok(Ok(bytes))
    }
}

/// A body over its bound: for one signature document, that signature is unusable.
fn too_large(e: &LookupError) -> bool {
    matches!(
        e,
        LookupError::Upstream(crate::upstream::UpstreamError::Body {
            error: crate::upstream::body::BodyError::TooLarge { .. },
            ..
        })
    )
}

/// An unusable candidate, counted as what its descriptor announced.
fn unusable_as(source: String, reason: impl Into<String>, announced: Announced) -> Candidate {
    Candidate {
        source,
        kind: CandidateKind::Unusable {
            reason: reason.into(),
            announced,
        },
    }
}

/// The attestation a descriptor announces by its predicate type annotation, when it names one
/// that is not cosign's signature predicate.
fn announced_attestation(d: &Descriptor, key: &str) -> Option<Announced> {
    d.annotation(key)
        .filter(|t| *t != super::COSIGN_SIGN_PREDICATE)
        .map(|t| Announced::Attestation(t.to_owned()))
}
