//! Source 1: the OCI 1.1 referrers API `/v2/R/referrers/D` (following `Link` pagination,
//! bounded), or, when it answers 404/405, the referrers tag schema (an index tagged
//! `<alg>-<hex>`, asked for as an OCI index whatever else). An upstream that answered 404/405
//! is not asked the API again for [`API_SUPPORT_TTL`]: its lookups go to the tag schema first. Referrers whose `artifactType` is a
//! Sigstore bundle are fetched: their manifest, then the bundle layer. A malformed referrers
//! index is a lookup fault; a malformed bundle referrer is one unusable candidate.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use http::{HeaderValue, StatusCode};

use super::{announced_attestation, unusable_as, Discovery};
use crate::oci::media::{OCI_INDEX, SIGSTORE_BUNDLE};
use crate::oci::{Descriptor, Digest, Document, DocumentError, Reading};
use crate::signature::{Announced, Candidate, CandidateKind, LookupError};
use crate::store::answers::Outcome;
use crate::upstream::Kind;

/// cosign's annotation of a bundle referrer naming its statement's predicate type.
const BUNDLE_PREDICATE_TYPE: &str = "dev.sigstore.bundle.predicateType";

impl Discovery<'_> {
    /// The descriptors of bundle referrers of `digest`, from the API or the fallback tag.
    pub(super) async fn bundle_referrers(
        &self,
        digest: &Digest,
    ) -> Result<Vec<Descriptor>, LookupError> {
        self.referrers(digest, is_bundle).await
    }

    /// The descriptors of the referrers of `digest` that `keep` keeps, from the API or the
    /// fallback tag (both asked the same way whatever is kept, so their kept answers are shared).
    pub(super) async fn referrers(
        &self,
        digest: &Digest,
        keep: fn(&Descriptor) -> bool,
    ) -> Result<Vec<Descriptor>, LookupError> {
        let mut out = Vec::new();
        let support = &self.memory.referrers_api;
        if support.known(&self.upstream.key) == Some(false) {
            return self.fallback_referrers(digest, keep).await;
        }
        let mut path = format!("/v2/{}/referrers/{}", self.repo, digest);
        for page in 0..self.limits.max_referrers_pages {
            let what = format!("referrers of {digest} (page {})", page + 1);
            let answer = Box::pin(self.answer(
                Kind::Referrers,
                path.clone(),
                Some(OCI_INDEX),
                self.limits.max_referrers_bytes,
                &what,
            ))
            .await?;
            match answer.outcome {
                Outcome::Found => {
                    if page == 0 {
                        support.learn(&self.upstream.key, true);
                    }
                }
                // No referrers API: the tag schema takes over (only on the first page).
                Outcome::NotFound | Outcome::NotAllowed if page == 0 => {
                    support.learn(&self.upstream.key, false);
                    return self.fallback_referrers(digest, keep).await;
                }
                Outcome::NotFound => return Err(self.status(&what, StatusCode::NOT_FOUND)),
                Outcome::NotAllowed => {
                    return Err(self.status(&what, StatusCode::METHOD_NOT_ALLOWED))
                }
            }
            out.extend(referrers_in(&answer.body, keep).map_err(|e| self.malformed(&what, e))?);
            match answer
                .link
                .as_deref()
                .and_then(|l| HeaderValue::from_str(l).ok())
                .and_then(|l| next_page(&l))
            {
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

    async fn fallback_referrers(
        &self,
        digest: &Digest,
        keep: fn(&Descriptor) -> bool,
    ) -> Result<Vec<Descriptor>, LookupError> {
        let tag = digest.fallback_tag();
        let what = format!("referrers fallback tag {tag}");
        let Some(bytes) = self
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
        referrers_in(&bytes, keep).map_err(|e| self.malformed(&what, e))
    }

    /// Fetches a bundle referrer's manifest and its bundle layers.
    pub(super) async fn bundles_of(
        &self,
        referrer: &Descriptor,
        out: &mut Vec<Candidate>,
    ) -> Result<(), LookupError> {
        let digest = &referrer.digest;
        let what = format!("bundle referrer {digest}");
        let source = what.clone();
        let hint =
            announced_attestation(referrer, BUNDLE_PREDICATE_TYPE).unwrap_or(Announced::Signature);
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
}

/// How long what an upstream said about the referrers API is believed: a registry upgraded to
/// answer it is asked again within this time.
const API_SUPPORT_TTL: Duration = Duration::from_secs(10 * 60);

/// Per upstream, whether it answered the referrers API (`200`) or not (`404`/`405`), and when.
/// Keyed by the configured upstreams' keys: bounded by the configuration.
#[derive(Default)]
pub(super) struct ApiSupport(Mutex<HashMap<String, (bool, Instant)>>);

impl ApiSupport {
    /// What `upstream` last said, if within [`API_SUPPORT_TTL`].
    pub(super) fn known(&self, upstream: &str) -> Option<bool> {
        let map = self.0.lock().unwrap_or_else(|e| e.into_inner());
        map.get(upstream)
            .filter(|(_, at)| at.elapsed() < API_SUPPORT_TTL)
            .map(|(answers, _)| *answers)
    }

    pub(super) fn learn(&self, upstream: &str, answers: bool) {
        let mut map = self.0.lock().unwrap_or_else(|e| e.into_inner());
        map.insert(upstream.to_owned(), (answers, Instant::now()));
    }
}

/// The bundle referrers listed in a referrers index (an API page or the tag-schema index); an
/// index that does not parse is an error (a lookup fault, never "unsigned"). Pure, for the fuzz
/// targets (`fuzz/`).
pub fn bundle_referrers_in(index: &[u8]) -> Result<Vec<Descriptor>, DocumentError> {
    referrers_in(index, is_bundle)
}

/// The referrers listed in a referrers index that `keep` keeps.
fn referrers_in(
    index: &[u8],
    keep: fn(&Descriptor) -> bool,
) -> Result<Vec<Descriptor>, DocumentError> {
    Ok(Document::parse(index, Reading::Index)?
        .manifests
        .into_iter()
        .filter(keep)
        .collect())
}

fn is_bundle(d: &Descriptor) -> bool {
    d.artifact_type.as_deref() == Some(SIGSTORE_BUNDLE)
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
        let kept: Vec<Descriptor> = index.manifests.into_iter().filter(is_bundle).collect();
        assert_eq!(bundle_referrers_in(json.as_bytes()).unwrap(), kept);
        assert!(bundle_referrers_in(b"{\"manifests\": 1}").is_err());
        assert_eq!(kept.len(), 1);
        assert_eq!(
            kept[0].digest.to_string(),
            format!("sha256:{}", "a".repeat(64))
        );
    }
}
