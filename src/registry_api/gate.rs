//! The policy gate: after a manifest's digest is proven and before a byte of it is served, the
//! rule that applies to the image decides. [`Gate::evaluate`] answers with a typed [`Outcome`];
//! the manifest pipeline, the blob route and `portcullis verify` all call exactly that.
//!
//! - no rule and `unmatched: allow`, or a rule in `off` → served as is;
//! - no rule and `unmatched: deny` → `403 DENIED`;
//! - `enforce` → served only when the digest is verified; unverified → `403 DENIED` naming the
//!   rule and the reason; a lookup fault → `503 UNAVAILABLE` (fail closed, retryable);
//! - `audit` → always served; the verdict (or fault) is recorded.
//!
//! A verified manifest covers what it references ([`Engine::cover_children`]): an index its child
//! manifests, an image its config and layers, so that under a strict rule the blob route serves
//! the JSON blobs of a verified image (and nothing else that could be a manifest). Turning an
//! outcome into a refusal is [`Outcome::admit`]; the verdict metric is [`Outcome::record`], once
//! per request; the audit event is written once per computed verdict (in `signature`).

use std::sync::Arc;

use super::error::{ApiError, PolicyDenied};
use crate::metrics::Metrics;
use crate::oci::{Digest, ImageName, RepoName};
use crate::policy::{decide, Decision, Mode, Rule, Selection, Unmatched, Verdict};
use crate::signature::{Engine, Lookup, LookupError};
use crate::upstream::mapping::Upstreams;
use crate::upstream::Upstream;

/// The rule stage's answer for one image: which rule applies, and where it looks for
/// signatures (the image's own repository, or the rule's signature repository).
pub struct AppliedRule {
    pub selection: Selection,
    pub signatures: (Arc<Upstream>, RepoName),
}

impl AppliedRule {
    /// Selects the rule for `image`, served by `upstream`.
    pub fn select(
        policies: &crate::policy::PolicySet,
        upstreams: &Upstreams,
        upstream: &Arc<Upstream>,
        image: &ImageName,
    ) -> AppliedRule {
        let selection = policies.select(image);
        let signatures = match &selection {
            Selection::Rule { rule, .. } => rule
                .signature_repository
                .as_ref()
                // The configuration only accepts signature repositories on configured upstreams.
                .and_then(|r| Some((upstreams.get(&r.registry)?.clone(), r.repo.clone()))),
            Selection::Unmatched(_) => None,
        }
        .unwrap_or_else(|| (upstream.clone(), image.repo.clone()));
        AppliedRule {
            selection,
            signatures,
        }
    }

    /// True when an unverified manifest would be refused here (an enforce rule, or no rule under
    /// `unmatched: deny`): then manifest bytes must not leave through the blob route either.
    pub fn is_strict(&self) -> bool {
        match &self.selection {
            Selection::Rule { rule, .. } => rule.mode == Mode::Enforce,
            Selection::Unmatched(u) => *u == Unmatched::Deny,
        }
    }
}

/// What the gate is asked about: one digest of one image.
pub struct Subject<'a> {
    pub image: &'a ImageName,
    /// The upstream serving the image (BuildKit attestations live beside it).
    pub image_upstream: &'a Arc<Upstream>,
    pub digest: &'a Digest,
    /// The media type, when known; `Some("")` for a document from the blob route, which covers
    /// nothing.
    pub media_type: Option<&'a str>,
    /// The document's bytes, when the caller holds them (not for a `HEAD` answered from headers).
    pub manifest: Option<&'a [u8]>,
}

/// What the gate made of a subject.
#[derive(Debug)]
pub enum Outcome {
    /// No rule matches and unmatched repositories are allowed: served without a check.
    Unmatched,
    /// No rule matches and unmatched repositories are denied.
    UnmatchedDenied,
    /// The rule's mode is `off`: served without a check.
    Off(Arc<Rule>),
    /// The rule's verdict and what it means under the rule's mode.
    Decided {
        rule: Arc<Rule>,
        verdict: Arc<Verdict>,
        decision: Decision,
    },
    /// The signature lookup failed: never "unsigned", never "signed".
    Fault {
        rule: Arc<Rule>,
        error: Arc<LookupError>,
    },
}

/// The gate: the verdict engine behind the rules.
pub struct Gate {
    pub engine: Arc<Engine>,
}

impl Gate {
    /// The outcome for `subject` under `rule`: a verdict (cached, or discovered and verified) and
    /// its decision. A verified manifest that is let through covers what it references.
    pub async fn evaluate(&self, rule: &AppliedRule, subject: &Subject<'_>) -> Outcome {
        self.evaluate_with(rule, subject, None).await
    }

    /// The verdict for `digest` computed before its manifest is fetched, when it cannot depend
    /// on the manifest's bytes (a rule in audit or enforce that requires no attestations, so no
    /// BuildKit index is read): signature discovery then runs beside the manifest fetch instead
    /// of after it. `None` where the verdict needs the manifest (or no verdict is needed). It is
    /// handed to [`Gate::evaluate_with`], which decides; nothing is decided or served here.
    pub async fn early_verdict(
        &self,
        rule: &AppliedRule,
        image: &ImageName,
        image_upstream: &Arc<Upstream>,
        digest: &Digest,
    ) -> Option<Result<Arc<Verdict>, Arc<LookupError>>> {
        let r = match &rule.selection {
            Selection::Rule { rule, .. }
                if rule.mode != Mode::Off && rule.attestations.is_empty() =>
            {
                rule
            }
            _ => return None,
        };
        let (upstream, repo) = &rule.signatures;
        let lookup = Lookup {
            image,
            image_upstream,
            manifest: None,
            media_type: None,
            digest,
            rule: r,
            upstream,
            repo,
        };
        Some(self.engine.verdict(&lookup).await)
    }

    /// [`Gate::evaluate`], with the verdict [`Gate::early_verdict`] computed for this subject's
    /// digest under this rule, if any.
    pub async fn evaluate_with(
        &self,
        rule: &AppliedRule,
        subject: &Subject<'_>,
        early: Option<Result<Arc<Verdict>, Arc<LookupError>>>,
    ) -> Outcome {
        let r = match &rule.selection {
            Selection::Unmatched(Unmatched::Allow) => return Outcome::Unmatched,
            Selection::Unmatched(Unmatched::Deny) => return Outcome::UnmatchedDenied,
            Selection::Rule { rule, .. } if rule.mode == Mode::Off => {
                return Outcome::Off(rule.clone())
            }
            Selection::Rule { rule, .. } => rule,
        };
        let (upstream, repo) = &rule.signatures;
        let lookup = Lookup {
            image: subject.image,
            image_upstream: subject.image_upstream,
            manifest: subject.manifest,
            media_type: subject.media_type,
            digest: subject.digest,
            rule: r,
            upstream,
            repo,
        };
        let verdict = match early {
            Some(v) => v,
            None => self.engine.verdict(&lookup).await,
        };
        let verdict = match verdict {
            Ok(v) => v,
            Err(error) => {
                return Outcome::Fault {
                    rule: r.clone(),
                    error,
                }
            }
        };
        let decision = decide(r.mode, &verdict);
        if decision == Decision::Allow && verdict.verified {
            // A document without a media type came through the blob route: it covers nothing.
            if let (Some(media_type), Some(bytes)) = (subject.media_type, subject.manifest) {
                if !media_type.is_empty() {
                    self.engine.cover_children(bytes, &lookup).await;
                }
            }
        }
        Outcome::Decided {
            rule: r.clone(),
            verdict,
            decision,
        }
    }
}

// === impl Outcome ===

impl Outcome {
    /// Lets the subject through, or the refusal the client gets.
    pub fn admit(self, image: &ImageName, digest: &Digest) -> Result<(), ApiError> {
        match self {
            Outcome::Unmatched | Outcome::Off(_) => Ok(()),
            Outcome::UnmatchedDenied => Err(ApiError::PolicyDenied(Box::new(PolicyDenied {
                image: image.clone(),
                digest: digest.clone(),
                rule: None,
                reason: "no signature requirement applies, and unmatched repositories are denied"
                    .to_owned(),
            }))),
            Outcome::Fault { rule, error } => match rule.mode {
                Mode::Audit | Mode::Off => Ok(()),
                Mode::Enforce => Err(ApiError::SignatureLookup {
                    image: image.clone(),
                    digest: digest.clone(),
                    rule: rule.name.clone(),
                    error,
                }),
            },
            Outcome::Decided { rule, decision, .. } => match decision {
                Decision::Allow => Ok(()),
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
            },
        }
    }

    /// The verdict metric: by rule, mode and result (`verified`, `unverified`, `error`), and
    /// `rule="<unmatched>"` for refused unmatched repositories. Unchecked subjects count nothing.
    pub fn record(&self, metrics: &Metrics) {
        let (rule, mode, result) = match self {
            Outcome::Unmatched | Outcome::Off(_) => return,
            Outcome::UnmatchedDenied => ("<unmatched>", Mode::Enforce, "unmatched"),
            Outcome::Fault { rule, .. } => (rule.name.as_str(), rule.mode, "error"),
            Outcome::Decided { rule, verdict, .. } => {
                (rule.name.as_str(), rule.mode, verdict.result().as_str())
            }
        };
        metrics
            .verdicts
            .with_label_values(&[rule, mode.as_str(), result])
            .inc();
    }
}
