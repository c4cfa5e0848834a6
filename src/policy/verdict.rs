//! Verdicts, decisions and reports: what the checks of a rule's attestors made of the signatures
//! and attestations found for a digest ([`Rule::evaluate`], [`Rule::evaluate_attestations`]),
//! and what the rule's mode does with it ([`decide`]). The checks themselves are `signature`'s.

use super::{attestation, Mode, Rule};
use crate::oci::Digest;

/// What one attestor made of one signature that verified under it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Evidence {
    /// 1-based index of the attestor in the rule.
    pub attestor: usize,
    /// Where the signature came from: `referrer sha256:…` or `tag sha256-….sig`.
    pub source: String,
    /// The signer: a certificate identity and issuer, or the key's origin.
    pub signer: String,
}

/// The outcome of verifying one digest under one rule.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Verdict {
    pub verified: bool,
    /// Why it is not verified (or, when verified, notes such as the parent index that covers it).
    pub reasons: Vec<String>,
    /// The attestors that verified, one entry each.
    pub evidence: Vec<Evidence>,
    /// Every signer whose signature verified cryptographically, allowed or not.
    pub identities: Vec<String>,
    /// Signatures found for the digest.
    pub signatures: usize,
    /// Attestations found for the digest (and, for an index, BuildKit's for its children), with
    /// what each requirement made of them.
    pub attestations: Vec<AttestationReport>,
    /// Every signature found and what became of it.
    pub signature_reports: Vec<SignatureReport>,
}

/// A signature found for a digest: the first attestor that verified it, or why none did.
#[derive(Debug, Clone, serde::Serialize)]
pub struct SignatureReport {
    pub source: String,
    pub verified_by: Option<String>,
    pub errors: Vec<String>,
}

/// An attestation found for a digest, after its signature was checked.
#[derive(Debug, Clone)]
pub struct FoundAttestation {
    pub source: String,
    /// The statement's `predicateType`; `None` when the statement could not be read.
    pub predicate_type: Option<String>,
    pub signing: Signing,
    /// The digest its statement is about: the digest being verified, or for BuildKit
    /// attestations inside an index, one of the index's children.
    pub about: Digest,
    pub predicate: serde_json::Value,
    pub subject: serde_json::Value,
}

/// What became of an attestation's signature.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Signing {
    /// Signed, and the signature verified under an attestor of the rule.
    Verified { signer: String },
    /// Signed, but the signature did not verify (or could not be read); the reason names the
    /// source where the check did.
    Rejected { reason: String },
    /// A BuildKit attestation: no signature at all, trusted only through a verified index.
    /// `problem` says why the statement cannot be used (unreadable, or about another digest).
    Unsigned { problem: Option<String> },
}

// === impl FoundAttestation ===

impl FoundAttestation {
    /// The signer shown in reports: the verified signer, `unsigned (BuildKit)`, or none.
    fn verified_by(&self) -> Option<String> {
        match &self.signing {
            Signing::Verified { signer } => Some(signer.clone()),
            Signing::Rejected { .. } => None,
            Signing::Unsigned { .. } => Some("unsigned (BuildKit)".to_owned()),
        }
    }

    fn error(&self) -> Option<String> {
        match &self.signing {
            Signing::Verified { .. } | Signing::Unsigned { problem: None } => None,
            Signing::Rejected { reason } => Some(reason.clone()),
            Signing::Unsigned { problem } => problem.clone(),
        }
    }

    /// Whether `req` may use this attestation for `digest` (an index's `platform_children`
    /// for BuildKit ones); otherwise why not, for the reasons of a refusal.
    fn usable_for(
        &self,
        req: &attestation::Requirement,
        digest: &Digest,
        platform_children: &[Digest],
    ) -> Result<(), String> {
        match &self.signing {
            Signing::Verified { .. } if self.about == *digest => Ok(()),
            Signing::Verified { .. } => Err(format!("{}: not about {digest}", self.source)),
            // Errors from the checks already name the source.
            Signing::Rejected { reason } if reason.starts_with(&self.source) => Err(reason.clone()),
            Signing::Rejected { reason } => Err(format!("{}: {reason}", self.source)),
            Signing::Unsigned { problem: Some(p) } => Err(format!("{}: {p}", self.source)),
            Signing::Unsigned { problem: None } if !req.allow_unsigned => Err(format!(
                "{}: unsigned (BuildKit), and allow_unsigned is off",
                self.source
            )),
            Signing::Unsigned { problem: None } if platform_children.contains(&self.about) => {
                Ok(())
            }
            Signing::Unsigned { problem: None } => Err(format!(
                "{}: unsigned (BuildKit), about {} which is not a platform manifest of the index",
                self.source, self.about
            )),
        }
    }
}

/// An attestation and what each requirement of its type made of it.
#[derive(Debug, Clone, serde::Serialize)]
pub struct AttestationReport {
    pub source: String,
    /// `None` when the statement could not be read.
    pub predicate_type: Option<String>,
    /// The signer, `unsigned (BuildKit)`, or null when its signature did not verify.
    pub verified_by: Option<String>,
    pub error: Option<String>,
    pub about: String,
    pub requirements: Vec<RequirementReport>,
}

#[derive(Debug, Clone, serde::Serialize)]
pub struct RequirementReport {
    pub requirement: String,
    pub satisfied: bool,
    pub conditions: Vec<attestation::ConditionResult>,
}

/// What a verdict says, as metrics and audit events name it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum VerdictResult {
    Verified,
    Unverified,
}

impl VerdictResult {
    pub fn as_str(self) -> &'static str {
        match self {
            VerdictResult::Verified => "verified",
            VerdictResult::Unverified => "unverified",
        }
    }
}

impl Verdict {
    pub fn result(&self) -> VerdictResult {
        if self.verified {
            VerdictResult::Verified
        } else {
            VerdictResult::Unverified
        }
    }

    /// A short reason for a refusal message.
    pub fn summary(&self) -> String {
        if self.reasons.is_empty() {
            "not verified".to_owned()
        } else {
            self.reasons.join("; ")
        }
    }
}

/// What one candidate signature made of one attestor.
pub type AttestorCheck = Result<Evidence, String>;

impl Rule {
    /// Combines per-signature checks into a verdict: verified when at least `count` distinct
    /// attestors each verified some signature. `checks[i]` holds the checks of attestor `i`.
    pub fn evaluate(
        &self,
        signatures: usize,
        checks: Vec<Vec<AttestorCheck>>,
        identities: Vec<String>,
    ) -> Verdict {
        let mut evidence = Vec::new();
        let mut reasons = Vec::new();
        for (i, per_sig) in checks.into_iter().enumerate() {
            let mut failures = Vec::new();
            let mut ok = None;
            for c in per_sig {
                match c {
                    Ok(e) => {
                        ok = Some(e);
                        break;
                    }
                    Err(r) => failures.push(r),
                }
            }
            match ok {
                Some(e) => evidence.push(e),
                None if signatures > 0 => {
                    // Distinct reasons only, bounded: one bad signature repeated 30 times is
                    // one reason.
                    failures.dedup();
                    failures.truncate(4);
                    reasons.push(format!(
                        "attestor {} ({}): {}",
                        i + 1,
                        self.attestors[i],
                        if failures.is_empty() {
                            "no signature of its kind".to_owned()
                        } else {
                            failures.join(" | ")
                        }
                    ))
                }
                None => {}
            }
        }
        let verified = evidence.len() >= self.count;
        if signatures == 0 {
            reasons.insert(0, "no signatures found".to_owned());
        } else if !verified {
            reasons.insert(
                0,
                format!(
                    "no signature from an allowed identity ({} of {} required attestor(s) verified, {} signature(s) found)",
                    evidence.len(),
                    self.count,
                    signatures
                ),
            );
        }
        if verified {
            reasons.clear();
        }
        Verdict {
            verified,
            reasons,
            evidence,
            identities,
            signatures,
            attestations: Vec::new(),
            signature_reports: Vec::new(),
        }
    }

    /// The signature verdict combined with the attestation requirements: verified only when
    /// the signatures are and every requirement holds for `digest`. For an image index,
    /// `platform_children` are its image manifests: a requirement that accepts unsigned
    /// (BuildKit) attestations also holds when each of them has one that satisfies it.
    pub fn evaluate_attestations(
        &self,
        mut verdict: Verdict,
        digest: &Digest,
        found: &[FoundAttestation],
        platform_children: &[Digest],
    ) -> Verdict {
        let mut reports: Vec<AttestationReport> = found
            .iter()
            .map(|f| AttestationReport {
                source: f.source.clone(),
                predicate_type: f.predicate_type.clone(),
                verified_by: f.verified_by(),
                error: f.error(),
                about: f.about.to_string(),
                requirements: Vec::new(),
            })
            .collect();
        let mut failures = Vec::new();
        for req in &self.attestations {
            // Every attestation of the type is evaluated, for the report.
            let mut passed_about: Vec<&Digest> = Vec::new();
            let mut first_failure: Option<String> = None;
            let mut of_type = 0;
            let mut usable = 0;
            let mut unverified = Vec::new();
            for (f, report) in found.iter().zip(reports.iter_mut()) {
                let Some(predicate_type) = &f.predicate_type else {
                    continue;
                };
                if !req.predicate_types.contains(predicate_type) {
                    continue;
                }
                of_type += 1;
                if let Err(why) = f.usable_for(req, digest, platform_children) {
                    unverified.push(why);
                    continue;
                }
                usable += 1;
                let (conditions, result) = req.evaluate(predicate_type, &f.predicate, &f.subject);
                let satisfied = result.is_ok();
                if let Err(r) = result {
                    first_failure.get_or_insert(r);
                } else {
                    passed_about.push(&f.about);
                }
                report.requirements.push(RequirementReport {
                    requirement: req.name.clone(),
                    satisfied,
                    conditions,
                });
            }
            let for_digest = passed_about.contains(&digest);
            let for_children = req.allow_unsigned
                && !platform_children.is_empty()
                && platform_children.iter().all(|c| passed_about.contains(&c));
            if for_digest || for_children {
                continue;
            }
            failures.push(if of_type == 0 {
                format!(
                    "{}: no {} attestation found",
                    req.name,
                    req.predicate_types.join(" or ")
                )
            } else if usable == 0 {
                unverified.dedup();
                unverified.truncate(4);
                format!(
                    "{}: no verified {} attestation ({})",
                    req.name,
                    req.predicate_types.join(" or "),
                    unverified.join(" | ")
                )
            } else {
                first_failure.unwrap_or_else(|| {
                    format!(
                        "{}: not every platform manifest of the index has a satisfying attestation",
                        req.name
                    )
                })
            });
        }
        verdict.attestations = reports;
        if !failures.is_empty() {
            verdict.verified = false;
            verdict.reasons.extend(failures);
        }
        verdict
    }
}

// === decisions ===

/// What the proxy does with a manifest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// Serve it.
    Allow,
    /// Refuse it with `403 DENIED` (enforce, or an unmatched repository under `unmatched: deny`).
    Deny { reason: String },
    /// Serve it, recording that enforce would have refused it.
    Audit { reason: String },
}

/// Which of the three a [`Decision`] is, for reports (`allow`, `deny`, `audit`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum DecisionKind {
    Allow,
    Deny,
    Audit,
}

impl Decision {
    pub fn kind(&self) -> DecisionKind {
        match self {
            Decision::Allow => DecisionKind::Allow,
            Decision::Deny { .. } => DecisionKind::Deny,
            Decision::Audit { .. } => DecisionKind::Audit,
        }
    }
}

/// The decision for a rule's mode and a verification outcome. `outcome` is `Err` when the
/// signature lookup failed: that is never "unsigned", and in enforce it is not "deny" either; the
/// caller answers `503` (see `registry_api::gate`).
pub fn decide(mode: Mode, verdict: &Verdict) -> Decision {
    match (mode, verdict.verified) {
        (_, true) | (Mode::Off, _) => Decision::Allow,
        (Mode::Enforce, false) => Decision::Deny {
            reason: verdict.summary(),
        },
        (Mode::Audit, false) => Decision::Audit {
            reason: verdict.summary(),
        },
    }
}
