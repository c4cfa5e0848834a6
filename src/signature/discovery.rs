//! Signature discovery for a manifest digest D in repository R (DESIGN.md §4):
//!
//! 1. the OCI 1.1 referrers API `/v2/R/referrers/D` (following `Link` pagination, bounded), or
//!    when it answers 404/405 the referrers tag schema, an index tagged `<alg>-<hex>`, asked for
//!    as an OCI index whatever else; referrers whose `artifactType` is a Sigstore bundle are
//!    fetched (manifest, then the bundle layer);
//! 2. cosign's tag scheme `<alg>-<hex>.sig`: a manifest whose simple-signing layers carry the
//!    signature in their annotations.
//!
//! Every document is read bounded (`limits`), every blob is checked against its digest, and at
//! most `max_signatures` candidates are returned. A 404 means "none here"; any other upstream
//! failure (5xx, 429, 401/403, timeouts) or a malformed referrers index is a [`LookupError`], so
//! a fault is never mistaken for "unsigned". A single broken signature (unparsable manifest,
//! oversized or corrupt layer) is not a fault: it becomes an unusable candidate that fails
//! verification with its reason, and the others are still checked. Nothing here verifies a
//! signature.

use bytes::Bytes;
use http::header::{ACCEPT, LINK};
use http::{HeaderMap, HeaderValue, Method, StatusCode};

use super::{Candidate, CandidateKind, LookupError};
use crate::config::Limits;
use crate::oci::document::REFERENCE_DIGEST;
use crate::oci::media::{
    ACCEPT_ANY_MANIFEST, ACCEPT_IMAGE_MANIFEST, COSIGN_SIMPLE_SIGNING, DSSE_ENVELOPE, IN_TOTO,
    OCI_INDEX, SIGSTORE_BUNDLE,
};
use crate::oci::{Descriptor, Digest, Document, DocumentError, Reading, RepoName};
use crate::upstream::{Kind, Upstream, UpstreamRequest};

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

/// The cosign tag schemes: `.sig` (simple signing) and `.att` (DSSE attestations).
#[derive(Clone, Copy)]
enum LegacyKind {
    Signature,
    Attestation,
}

impl LegacyKind {
    fn suffix(self) -> &'static str {
        match self {
            LegacyKind::Signature => "sig",
            LegacyKind::Attestation => "att",
        }
    }

    /// What an unreadable candidate of this kind counts as (see `unusable_as`).
    fn hint(self) -> Option<String> {
        match self {
            LegacyKind::Signature => None,
            // Its predicate type is unknown: it is reported, and satisfies nothing.
            LegacyKind::Attestation => Some(String::new()),
        }
    }

    fn layer_type(self) -> &'static str {
        match self {
            LegacyKind::Signature => COSIGN_SIMPLE_SIGNING,
            LegacyKind::Attestation => DSSE_ENVELOPE,
        }
    }
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

    /// The descriptors of bundle referrers of `digest`, from the API or the fallback tag.
    async fn bundle_referrers(&self, digest: &Digest) -> Result<Vec<Descriptor>, LookupError> {
        let mut out = Vec::new();
        let mut path = format!("/v2/{}/referrers/{}", self.repo, digest);
        for page in 0..self.limits.max_referrers_pages {
            let what = format!("referrers of {digest} (page {})", page + 1);
            let resp = self
                .upstream
                .send(UpstreamRequest {
                    kind: Kind::Referrers,
                    method: Method::GET,
                    repo: Some(self.repo),
                    path_and_query: path.clone(),
                    headers: accept(OCI_INDEX),
                })
                .await?;
            match resp.status() {
                StatusCode::OK => {}
                // No referrers API: the tag schema takes over (only on the first page).
                StatusCode::NOT_FOUND | StatusCode::METHOD_NOT_ALLOWED if page == 0 => {
                    drop(resp);
                    return self.fallback_referrers(digest).await;
                }
                status => {
                    return Err(LookupError::Status {
                        upstream: self.upstream.key.clone(),
                        what,
                        status,
                    })
                }
            }
            let (parts, bytes) = self
                .upstream
                .read_body(resp, self.limits.max_referrers_bytes)
                .await?;
            out.extend(bundle_referrers_in(&bytes).map_err(|e| self.malformed(&what, e))?);
            match parts.headers.get(LINK).and_then(next_page) {
                Some(next) => path = next,
                None => return Ok(out),
            }
        }
        tracing::warn!(
            upstream = %self.upstream.key,
            %digest,
            pages = self.limits.max_referrers_pages,
            "referrers listing has more pages than limits.max_referrers_pages; the rest is ignored"
        );
        Ok(out)
    }

    async fn fallback_referrers(&self, digest: &Digest) -> Result<Vec<Descriptor>, LookupError> {
        let tag = digest.fallback_tag();
        let what = format!("referrers fallback tag {tag}");
        let Some((_, bytes)) = self
            .get(
                Kind::Referrers,
                format!("/v2/{}/manifests/{tag}", self.repo),
                Some(OCI_INDEX),
                self.limits.max_referrers_bytes,
                &what,
            )
            .await?
        else {
            return Ok(Vec::new());
        };
        bundle_referrers_in(&bytes).map_err(|e| self.malformed(&what, e))
    }

    /// Fetches a bundle referrer's manifest and its bundle layers.
    async fn bundles_of(
        &self,
        referrer: &Descriptor,
        out: &mut Vec<Candidate>,
    ) -> Result<(), LookupError> {
        let digest = &referrer.digest;
        let what = format!("bundle referrer {digest}");
        let source = what.clone();
        let hint = announced_attestation(referrer, BUNDLE_PREDICATE_TYPE);
        let path = format!("/v2/{}/manifests/{digest}", self.repo);
        let bytes = match self.signature_manifest(path, &what).await? {
            Some(Ok(bytes)) => bytes,
            Some(Err(reason)) => {
                out.push(unusable_as(source, reason, hint));
                return Ok(());
            }
            // Listed but gone (deleted since): nothing to verify.
            None => return Ok(()),
        };
        if !digest.matches(&bytes) {
            out.push(unusable_as(
                source,
                "manifest does not match its digest",
                hint,
            ));
            return Ok(());
        }
        let manifest = match Document::parse(&bytes, Reading::Manifest) {
            Ok(m) => m,
            Err(e) => {
                out.push(unusable_as(
                    source,
                    format!("manifest is malformed: {e}"),
                    hint,
                ));
                return Ok(());
            }
        };
        for layer in &manifest.layers {
            if out.len() >= self.limits.max_signatures {
                break;
            }
            if layer.media_type.as_deref() != Some(SIGSTORE_BUNDLE) {
                continue;
            }
            out.push(match self.blob(layer, &what).await? {
                Ok(json) => Candidate {
                    source: source.clone(),
                    kind: CandidateKind::Bundle(json),
                },
                Err(reason) => unusable_as(source.clone(), reason, hint.clone()),
            });
        }
        Ok(())
    }

    /// cosign's `<alg>-<hex>.sig` manifest and its simple-signing layers, or its
    /// `<alg>-<hex>.att` manifest and its DSSE layers.
    async fn legacy_layers(
        &self,
        digest: &Digest,
        kind: LegacyKind,
        out: &mut Vec<Candidate>,
    ) -> Result<(), LookupError> {
        let tag = format!("{}.{}", digest.fallback_tag(), kind.suffix());
        let what = format!("signature tag {tag}");
        let path = format!("/v2/{}/manifests/{tag}", self.repo);
        let bytes = match self.signature_manifest(path, &what).await? {
            Some(Ok(bytes)) => bytes,
            Some(Err(reason)) => {
                out.push(unusable_as(tag, reason, kind.hint()));
                return Ok(());
            }
            None => return Ok(()),
        };
        let manifest = match Document::parse(&bytes, Reading::Manifest) {
            Ok(m) => m,
            Err(e) => {
                out.push(unusable_as(
                    tag,
                    format!("manifest is malformed: {e}"),
                    kind.hint(),
                ));
                return Ok(());
            }
        };
        for (i, layer) in manifest.layers.iter().enumerate() {
            if out.len() >= self.limits.max_signatures {
                break;
            }
            if layer.media_type.as_deref() != Some(kind.layer_type()) {
                continue;
            }
            let source = format!("{tag} layer {}", i + 1);
            let payload = match self.blob(layer, &what).await? {
                Ok(p) => p,
                Err(reason) => {
                    let hint = kind
                        .hint()
                        .map(|_| announced_attestation(layer, "predicateType").unwrap_or_default());
                    out.push(unusable_as(source, reason, hint));
                    continue;
                }
            };
            let annotations = layer.annotations.clone();
            out.push(Candidate {
                source,
                kind: match kind {
                    LegacyKind::Signature => CandidateKind::Legacy {
                        payload,
                        annotations,
                    },
                    LegacyKind::Attestation => CandidateKind::LegacyAttestation {
                        envelope: payload,
                        annotations,
                    },
                },
            });
        }
        Ok(())
    }

    /// The unsigned in-toto statements of BuildKit's attestation manifests in `index`.
    async fn buildkit_attestations(
        &self,
        index: &Document,
        out: &mut Vec<Candidate>,
    ) -> Result<(), LookupError> {
        for d in index.attestation_children() {
            if out.len() >= self.limits.max_signatures {
                break;
            }
            let about = d.attestation_about();
            let digest = &d.digest;
            let source = format!("BuildKit attestation manifest {digest}");
            let Some(about) = about else {
                out.push(unusable_as(
                    source,
                    format!("no valid {REFERENCE_DIGEST} annotation"),
                    Some(String::new()),
                ));
                continue;
            };
            let path = format!("/v2/{}/manifests/{digest}", self.repo);
            let bytes = match self.signature_manifest(path, &source).await? {
                Some(Ok(bytes)) => bytes,
                Some(Err(reason)) => {
                    out.push(unusable_as(source, reason, Some(String::new())));
                    continue;
                }
                None => {
                    out.push(unusable_as(
                        source,
                        "listed in the index but missing (404)",
                        Some(String::new()),
                    ));
                    continue;
                }
            };
            let manifest = match Some(&bytes)
                .filter(|b| digest.matches(b))
                .and_then(|b| Document::parse(b, Reading::Manifest).ok())
            {
                Some(m) => m,
                None => {
                    out.push(unusable_as(
                        source,
                        "manifest is malformed or does not match its digest",
                        Some(String::new()),
                    ));
                    continue;
                }
            };
            for layer in &manifest.layers {
                if out.len() >= self.limits.max_signatures {
                    break;
                }
                if layer.media_type.as_deref() != Some(IN_TOTO) {
                    continue;
                }
                out.push(match self.blob(layer, &source).await? {
                    Ok(statement) => Candidate {
                        source: source.clone(),
                        kind: CandidateKind::Unsigned {
                            statement,
                            about: about.clone(),
                        },
                    },
                    Err(reason) => unusable_as(source.clone(), reason, Some(String::new())),
                });
            }
        }
        Ok(())
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

/// An unusable candidate that its descriptor announced as an attestation of `predicate_type`.
fn unusable_as(
    source: String,
    reason: impl Into<String>,
    attestation: Option<String>,
) -> Candidate {
    Candidate {
        source,
        kind: CandidateKind::Unusable {
            reason: reason.into(),
            attestation,
        },
    }
}

/// cosign's annotation of a bundle referrer naming its statement's predicate type.
const BUNDLE_PREDICATE_TYPE: &str = "dev.sigstore.bundle.predicateType";

/// The predicate type a descriptor announces, when it is not cosign's signature predicate.
fn announced_attestation(d: &Descriptor, key: &str) -> Option<String> {
    d.annotation(key)
        .filter(|t| *t != super::COSIGN_SIGN_PREDICATE)
        .map(str::to_owned)
}

fn accept(media_type: &'static str) -> HeaderMap {
    let mut h = HeaderMap::new();
    h.insert(ACCEPT, HeaderValue::from_static(media_type));
    h
}

/// The bundle referrers listed in a referrers index (an API page or the tag-schema index); an
/// index that does not parse is an error (a lookup fault, never "unsigned"). Pure, for the fuzz
/// targets (`fuzz/`).
pub fn bundle_referrers_in(index: &[u8]) -> Result<Vec<Descriptor>, DocumentError> {
    Ok(bundles_only(
        Document::parse(index, Reading::Index)?.manifests,
    ))
}

fn bundles_only(descriptors: Vec<Descriptor>) -> Vec<Descriptor> {
    descriptors
        .into_iter()
        .filter(|d| d.artifact_type.as_deref() == Some(SIGSTORE_BUNDLE))
        .collect()
}

/// The path and query of a `Link: <…>; rel="next"` header. Only the path is taken from an
/// absolute URL: pagination never leaves the configured upstream host. Public for the fuzz
/// targets (`fuzz/`).
pub fn next_page(link: &HeaderValue) -> Option<String> {
    let text = link.to_str().ok()?;
    if !text.contains("rel=\"next\"") && !text.contains("rel=next") {
        return None;
    }
    let start = text.find('<')?;
    let end = text[start..].find('>')? + start;
    let base = url::Url::parse("http://upstream.invalid/").ok()?;
    let url = base.join(&text[start + 1..end]).ok()?;
    if !url.path().starts_with("/v2/") {
        return None;
    }
    Some(match url.query() {
        Some(q) => format!("{}?{q}", url.path()),
        None => url.path().to_owned(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn next_page_stays_on_the_upstream() {
        let h = |s: &str| HeaderValue::from_str(s).unwrap();
        assert_eq!(
            next_page(&h(r#"</v2/a/referrers/sha256:x?last=y>; rel="next""#)).as_deref(),
            Some("/v2/a/referrers/sha256:x?last=y")
        );
        assert_eq!(
            next_page(&h(
                r#"<https://evil.example/v2/a/referrers/d?n=1>; rel="next""#
            ))
            .as_deref(),
            Some("/v2/a/referrers/d?n=1")
        );
        assert_eq!(next_page(&h(r#"</v2/a?x>; rel="prev""#)), None);
        assert_eq!(next_page(&h(r#"</elsewhere>; rel="next""#)), None);
    }

    #[test]
    fn only_bundle_referrers_are_kept() {
        let json = format!(
            r#"{{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","manifests":[
              {{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"sha256:{a}","size":1,"artifactType":"{SIGSTORE_BUNDLE}"}},
              {{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"sha256:{b}","size":1,"artifactType":"application/spdx+json"}},
              {{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"sha256:{b}","size":1}}]}}"#,
            a = "a".repeat(64),
            b = "b".repeat(64)
        );
        let index = Document::parse(json.as_bytes(), Reading::Index).unwrap();
        let kept = bundles_only(index.manifests);
        assert_eq!(bundle_referrers_in(json.as_bytes()).unwrap(), kept);
        assert!(bundle_referrers_in(b"{\"manifests\": 1}").is_err());
        assert_eq!(kept.len(), 1);
        assert_eq!(
            kept[0].digest.to_string(),
            format!("sha256:{}", "a".repeat(64))
        );
    }
}
