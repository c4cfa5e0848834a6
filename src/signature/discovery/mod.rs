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
//! For the inventory, [`attached_sboms`] reads the SBOMs attached as unsigned referrers
//! ([`attached`]) from the same listings as source 1.
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

mod attached;
mod buildkit;
mod cosign;
mod referrers;

pub use attached::{attached_sboms, Attached};
pub use referrers::{bundle_referrers_in, next_page};

use std::sync::Arc;

use bytes::Bytes;
use http::header::{ACCEPT, CONTENT_TYPE, LINK};
use http::{HeaderMap, HeaderValue, Method, StatusCode};

use super::{Announced, Candidate, CandidateKind, LookupError};
use crate::config::Limits;
use crate::oci::media::{ACCEPT_ANY_MANIFEST, ACCEPT_IMAGE_MANIFEST};
use crate::oci::{Descriptor, Digest, Document, RepoName};
use crate::store::answers::{self, Answer, Outcome};
use crate::store::Store;
use crate::upstream::body::BodyError;
use crate::upstream::{Kind, Upstream, UpstreamError, UpstreamRequest};
use cosign::LegacyKind;

/// What to look for besides signatures.
#[derive(Default)]
pub struct Wants<'a> {
    /// cosign `.att` attestations (only asked for when a rule requires attestations).
    pub attestations: bool,
    /// An image index whose BuildKit attestation manifests to read.
    pub buildkit: Option<BuildkitIndex<'a>>,
}

/// Where discovery keeps what upstreams answered, and reads it back (the content store).
#[derive(Clone)]
pub struct Material {
    pub store: Arc<Store>,
    pub prefer: Prefer,
}

/// What discovery keeps between lookups: the content store's kept answers, and which upstreams
/// answer the referrers API (so that a cold lookup on a registry without it goes straight to the
/// tag schema instead of asking first).
pub struct Memory {
    pub material: Option<Material>,
    referrers_api: referrers::ApiSupport,
}

impl Memory {
    pub fn new(material: Option<Material>) -> Memory {
        Memory {
            material,
            referrers_api: referrers::ApiSupport::default(),
        }
    }
}

/// Which answer discovery asks for first.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Prefer {
    /// The upstream's; a kept answer only when the upstream cannot answer (serving pulls).
    Upstream,
    /// A kept answer; the upstream for what is not kept (`portcullis audit --what-if`).
    Kept,
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
    memory: &Memory,
    wants: Wants<'_>,
) -> Result<Vec<Candidate>, LookupError> {
    let d = Discovery {
        upstream,
        repo,
        limits,
        memory,
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
                memory,
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
    memory: &Memory,
) -> Result<Option<Bytes>, LookupError> {
    let d = Discovery {
        upstream,
        repo,
        limits,
        memory,
    };
    let what = format!("manifest {digest}");
    let Some(bytes) = d
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
    memory: &'a Memory,
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
    ) -> Result<Option<Bytes>, LookupError> {
        let answer = Box::pin(self.answer(kind, path, accept, limit, what)).await?;
        match answer.outcome {
            Outcome::Found => Ok(Some(answer.body)),
            Outcome::NotFound => Ok(None),
            Outcome::NotAllowed => Err(self.status(what, StatusCode::METHOD_NOT_ALLOWED)),
        }
    }

    /// GET `path`, bounded by `limit`: what the upstream answered (200, 404 or 405), kept in
    /// the content store; when the upstream cannot answer, what it answered last time (or, when
    /// kept answers are preferred, that first).
    async fn answer(
        &self,
        kind: Kind,
        path: String,
        accept: Option<&'static str>,
        limit: usize,
        what: &str,
    ) -> Result<Answer, LookupError> {
        let asked = format!("GET {path} accept={}", accept.unwrap_or(""));
        let material = self.memory.material.as_ref();
        if let Some(m) = material.filter(|m| m.prefer == Prefer::Kept) {
            if let Some(a) = Box::pin(m.store.kept_answer(&self.upstream.key, &asked, limit)).await
            {
                return Ok(a);
            }
        }
        // Boxed, as the chains that call this are deep: the futures stay off the stack.
        match Box::pin(self.ask(kind, path, accept, limit, what)).await {
            Ok(answer) => {
                if let Some(m) = material {
                    m.store
                        .keep_answer_later(&self.upstream.key, asked, answer.clone());
                }
                Ok(answer)
            }
            Err(e) if is_outage(&e) => {
                let kept = match material.filter(|m| m.prefer == Prefer::Upstream) {
                    Some(m) => {
                        Box::pin(m.store.kept_answer(&self.upstream.key, &asked, limit)).await
                    }
                    None => None,
                };
                match kept {
                    Some(a) => {
                        tracing::warn!(
                            upstream = %self.upstream.key,
                            what,
                            error = %e,
                            answered_at = a.at,
                            "upstream cannot answer: using its answer kept in the content store"
                        );
                        Ok(a)
                    }
                    None => Err(e),
                }
            }
            Err(e) => Err(e),
        }
    }

    /// The upstream's own answer.
    async fn ask(
        &self,
        kind: Kind,
        path: String,
        accept: Option<&'static str>,
        limit: usize,
        what: &str,
    ) -> Result<Answer, LookupError> {
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
        let none = |outcome| Answer {
            outcome,
            media_type: None,
            link: None,
            body: Bytes::new(),
            at: answers::now(),
        };
        match resp.status() {
            StatusCode::OK => {}
            StatusCode::NOT_FOUND => return Ok(none(Outcome::NotFound)),
            StatusCode::METHOD_NOT_ALLOWED => return Ok(none(Outcome::NotAllowed)),
            status => return Err(self.status(what, status)),
        }
        let (parts, body) = self.upstream.read_body(resp, limit).await?;
        let header = |name| {
            parts
                .headers
                .get(name)
                .and_then(|v: &HeaderValue| v.to_str().ok())
                .map(str::to_owned)
        };
        Ok(Answer {
            outcome: Outcome::Found,
            media_type: header(CONTENT_TYPE),
            link: header(LINK),
            body,
            at: answers::now(),
        })
    }

    fn status(&self, what: &str, status: StatusCode) -> LookupError {
        LookupError::Status {
            upstream: self.upstream.key.clone(),
            what: what.to_owned(),
            status,
        }
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
            Ok(Some(bytes)) => Ok(Some(Ok(bytes))),
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
            Ok(Some(bytes)) => bytes,
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

/// Whether a fault means the upstream cannot answer now (unreachable, timing out, failing with
/// 5xx or 429), so that its last answer may stand in. A refusal of the credentials, a body over
/// its bound or a malformed document is an answer, not an outage.
fn is_outage(e: &LookupError) -> bool {
    match e {
        LookupError::Upstream(UpstreamError::Body {
            error: BodyError::TooLarge { .. },
            ..
        }) => false,
        LookupError::Upstream(u) => u.is_unavailable(),
        LookupError::Status { status, .. } => {
            status.is_server_error() || *status == StatusCode::TOO_MANY_REQUESTS
        }
        LookupError::Malformed { .. } | LookupError::Timeout(_) | LookupError::Internal(_) => false,
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
