//! The policy gate of the manifest pipeline: after a manifest's digest is proven and before a
//! byte of it is served, the rule that applies to the image decides.
//!
//! - no rule and `unmatched: allow`, or a rule in `off` → served as is;
//! - no rule and `unmatched: deny` → `403 DENIED`;
//! - `enforce` → served only when the digest is verified; unverified → `403 DENIED` naming the
//!   rule and the reason; a lookup fault → `503 UNAVAILABLE` (fail closed, retryable);
//! - `audit` → always served; the verdict (or fault) is recorded.
//!
//! A verified manifest covers what it references ([`Engine::cover_children`]): an index its child
//! manifests, an image its config and layers, so that under a strict rule the blob route serves
//! the JSON blobs of a verified image (and nothing else that could be a manifest). The verdict
//! metric is recorded here, once per request; the audit event once per computed verdict (in
//! `signature`).

use std::sync::Arc;

use super::error::{ApiError, PolicyDenied};
use crate::metrics::Metrics;
use crate::oci::{Digest, ImageName, RepoName};
use crate::policy::{decide, Decision, Mode, Selection, Unmatched};
use crate::signature::{Engine, Lookup};
use crate::upstream::Upstream;

/// Everything a request needs to pass the gate.
pub struct Gate {
    pub selection: Selection,
    pub engine: Arc<Engine>,
    pub metrics: Arc<Metrics>,
    /// Where this image's signatures live: its own repository, or the rule's signature
    /// repository.
    pub signatures: (Arc<Upstream>, RepoName),
    /// The upstream serving the image.
    pub image_upstream: Arc<Upstream>,
}

impl Gate {
    /// True when an unverified manifest would be refused here (an enforce rule, or no rule under
    /// `unmatched: deny`): then manifest bytes must not leave through the blob route either.
    pub fn is_strict(&self) -> bool {
        match &self.selection {
            Selection::Rule { rule, .. } => rule.mode == Mode::Enforce,
            Selection::Unmatched(u) => *u == Unmatched::Deny,
        }
    }

    /// Lets `digest` of `image` through or refuses it. `manifest` is the fetched document with its
    /// media type, when there is one (not for `HEAD`): a verified index covers its children.
    pub async fn check(
        &self,
        image: &ImageName,
        digest: &Digest,
        manifest: Option<(&str, &[u8])>,
    ) -> Result<(), ApiError> {
        let media_type = manifest.map(|(t, _)| t);
        self.check_inner(image, digest, media_type, manifest.map(|(_, b)| b))
            .await
    }

    /// [`Gate::check`] for a `HEAD`: the media type the upstream announced, no bytes.
    pub async fn check_head(
        &self,
        image: &ImageName,
        digest: &Digest,
        media_type: Option<&str>,
    ) -> Result<(), ApiError> {
        self.check_inner(image, digest, media_type, None).await
    }

    async fn check_inner(
        &self,
        image: &ImageName,
        digest: &Digest,
        media_type: Option<&str>,
        bytes: Option<&[u8]>,
    ) -> Result<(), ApiError> {
        let rule = match &self.selection {
            Selection::Unmatched(Unmatched::Allow) => return Ok(()),
            Selection::Unmatched(Unmatched::Deny) => {
                self.record("<unmatched>", Mode::Enforce, "unmatched");
                return Err(ApiError::PolicyDenied(Box::new(PolicyDenied {
                    image: image.clone(),
                    digest: digest.clone(),
                    rule: None,
                    reason:
                        "no signature requirement applies, and unmatched repositories are denied"
                            .to_owned(),
                })));
            }
            Selection::Rule { rule, .. } if rule.mode == Mode::Off => return Ok(()),
            Selection::Rule { rule, .. } => rule,
        };
        let (upstream, repo) = &self.signatures;
        let lookup = Lookup {
            image,
            image_upstream: &self.image_upstream,
            manifest: bytes,
            media_type,
            digest,
            rule,
            upstream,
            repo,
        };
        let outcome = self.engine.verdict(&lookup).await;
        let outcome = match outcome {
            Ok(o) => o,
            Err(error) => {
                self.record(&rule.name, rule.mode, "error");
                return match rule.mode {
                    Mode::Audit | Mode::Off => Ok(()),
                    Mode::Enforce => Err(ApiError::SignatureLookup {
                        image: image.clone(),
                        digest: digest.clone(),
                        rule: rule.name.clone(),
                        error,
                    }),
                };
            }
        };
        let verdict = &outcome;
        self.record(&rule.name, rule.mode, verdict.result());
        match decide(rule.mode, verdict) {
            Decision::Allow => {
                // A document without a media type came through the blob route: it covers nothing.
                if let (Some(media_type), Some(bytes)) = (media_type, bytes) {
                    if verdict.verified && !media_type.is_empty() {
                        self.engine.cover_children(bytes, &lookup).await;
                    }
                }
                Ok(())
            }
            Decision::Audit { reason } => {
                tracing::debug!(%image, %digest, rule = %rule.name, %reason, "serving unverified manifest (audit)");
                Ok(())
            }
            Decision::Deny { reason } => Err(ApiError::PolicyDenied(Box::new(PolicyDenied {
                image: image.clone(),
                digest: digest.clone(),
                rule: Some(rule.name.clone()),
                reason,
            }))),
        }
    }

    fn record(&self, rule: &str, mode: Mode, result: &str) {
        self.metrics
            .verdicts
            .with_label_values(&[rule, mode.as_str(), result])
            .inc();
    }
}
