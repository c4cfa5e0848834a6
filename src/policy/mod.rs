//! Policy: the rules of the configuration, which one applies to an image, and what a verdict
//! means under its mode.
//!
//! A [`PolicySet`] is built once at configuration load ([`build`]) from the raw `policies` list:
//! globs compiled ([`pattern`]), regexps compiled and public keys parsed ([`attestor`]), and
//! each rule given a [`Fingerprint`] of everything that decides its verdict, so a cached verdict
//! can never outlive a change of rule. [`Rule::evaluate`] counts the attestors that verified
//! (`count`), and [`decide`] turns a verification outcome into a [`Decision`]. This module does no
//! I/O: discovery and cryptography are `signature`'s.

pub mod attestation;
pub mod attestor;
pub mod pattern;

use std::fmt;
use std::sync::Arc;

use sha2::{Digest as _, Sha256};

pub use attestation::Requirement;
pub use attestor::{Attestor, Matcher};
pub use pattern::Pattern;

use crate::oci::{Digest, ImageName};

/// What a rule does with an image that is not verified.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    /// Refuse it: `403 DENIED`.
    Enforce,
    /// Serve it and record an audit event.
    Audit,
    /// Do not look for signatures at all.
    Off,
}

impl Mode {
    pub fn as_str(self) -> &'static str {
        match self {
            Mode::Enforce => "enforce",
            Mode::Audit => "audit",
            Mode::Off => "off",
        }
    }
}

/// What happens to a repository that no rule matches.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Unmatched {
    #[default]
    Allow,
    Deny,
}

/// A hash of everything that decides a rule's verdict (attestors, keys, count, mode, signature
/// repository). Part of every verdict cache key.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Fingerprint(pub [u8; 32]);

impl fmt::Debug for Fingerprint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", &hex::encode(self.0)[..16])
    }
}

/// One validated rule of `policies`.
#[derive(Debug)]
pub struct Rule {
    pub name: String,
    pub patterns: Vec<Pattern>,
    pub mode: Mode,
    /// How many distinct attestors must each verify a signature.
    pub count: usize,
    pub attestors: Vec<Attestor>,
    /// Where signatures are looked up instead of the image's own repository (cosign's
    /// `COSIGN_REPOSITORY`).
    pub signature_repository: Option<ImageName>,
    /// Attestations that must each be present, verified, and satisfy their conditions.
    pub attestations: Vec<Requirement>,
    pub fingerprint: Fingerprint,
}

/// All rules, in file order, and what happens to images none of them matches.
#[derive(Debug, Default, Clone)]
pub struct PolicySet {
    pub rules: Vec<Arc<Rule>>,
    pub unmatched: Unmatched,
}

/// Which rule applies to an image, and why.
#[derive(Debug, Clone)]
pub enum Selection {
    Rule {
        rule: Arc<Rule>,
        /// The pattern that won.
        pattern: String,
    },
    Unmatched(Unmatched),
}

impl PolicySet {
    /// The rule whose matching pattern is most specific (longest literal prefix; ties go to the
    /// pattern first in the file).
    pub fn select(&self, image: &ImageName) -> Selection {
        let name = image.to_string();
        let mut best: Option<(&Arc<Rule>, &Pattern)> = None;
        for rule in &self.rules {
            for p in &rule.patterns {
                if p.is_match(&name) && best.is_none_or(|(_, b)| p.specificity() > b.specificity())
                {
                    best = Some((rule, p));
                }
            }
        }
        match best {
            Some((rule, p)) => Selection::Rule {
                rule: rule.clone(),
                pattern: p.as_str().to_owned(),
            },
            None => Selection::Unmatched(self.unmatched),
        }
    }

    /// Every pattern that matches `image`, in file order, for `check-config`.
    pub fn matches<'a>(&'a self, image: &ImageName) -> Vec<(&'a Rule, &'a Pattern)> {
        let name = image.to_string();
        self.rules
            .iter()
            .flat_map(|r| r.patterns.iter().map(move |p| (r.as_ref(), p)))
            .filter(|(_, p)| p.is_match(&name))
            .collect()
    }
}

// === verdicts ===

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
    pub predicate_type: String,
    /// The attestor-verified signer, `None` when it did not verify (see `error`) or is unsigned.
    pub signer: Option<String>,
    /// A BuildKit attestation: no signature at all.
    pub unsigned: bool,
    /// Why its signature did not verify.
    pub error: Option<String>,
    /// The digest its statement is about: the digest being verified, or for BuildKit
    /// attestations inside an index, one of the index's children.
    pub about: Digest,
    pub predicate: serde_json::Value,
    pub subject: serde_json::Value,
}

/// An attestation and what each requirement of its type made of it.
#[derive(Debug, Clone, serde::Serialize)]
pub struct AttestationReport {
    pub source: String,
    pub predicate_type: String,
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
                verified_by: if f.unsigned {
                    Some("unsigned (BuildKit)".to_owned())
                } else {
                    f.signer.clone()
                },
                error: f.error.clone(),
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
                if !req.predicate_types.contains(&f.predicate_type) {
                    continue;
                }
                of_type += 1;
                let counts = if f.unsigned {
                    req.allow_unsigned && platform_children.contains(&f.about)
                } else {
                    f.signer.is_some() && f.about == *digest
                };
                if !counts {
                    unverified.push(match (&f.error, f.unsigned) {
                        // Errors from the checks already name the source.
                        (Some(e), _) if e.starts_with(&f.source) => e.clone(),
                        (Some(e), _) => format!("{}: {e}", f.source),
                        (None, true) => format!(
                            "{}: unsigned (BuildKit), and allow_unsigned is off",
                            f.source
                        ),
                        (None, false) => format!("{}: not verified", f.source),
                    });
                    continue;
                }
                usable += 1;
                let (conditions, result) =
                    req.evaluate(&f.predicate_type, &f.predicate, &f.subject);
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

// === building ===

/// A rule as written, for [`build`]; see `config::raw::RawPolicy`.
pub struct RuleSpec {
    pub name: String,
    pub patterns: Vec<Pattern>,
    pub mode: Mode,
    pub count: Option<usize>,
    pub attestors: Vec<Attestor>,
    pub signature_repository: Option<ImageName>,
    pub attestations: Vec<Requirement>,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum PolicyError {
    #[error("rule name {0:?} is used twice; names label metrics and audit events")]
    DuplicateName(String),
    #[error("a rule needs a name")]
    EmptyName,
    #[error("a rule needs at least one pattern")]
    NoPatterns,
    #[error("mode {mode} needs at least one attestor")]
    NoAttestors { mode: &'static str },
    #[error("count {count} is more than the {attestors} attestor(s) given")]
    CountTooLarge { count: usize, attestors: usize },
    #[error("count must be at least 1")]
    CountZero,
}

impl RuleSpec {
    /// Validates a rule and computes its fingerprint.
    pub fn build(self) -> Result<Rule, PolicyError> {
        if self.name.trim().is_empty() {
            return Err(PolicyError::EmptyName);
        }
        if self.patterns.is_empty() {
            return Err(PolicyError::NoPatterns);
        }
        if self.mode != Mode::Off && self.attestors.is_empty() {
            return Err(PolicyError::NoAttestors {
                mode: self.mode.as_str(),
            });
        }
        let count = self.count.unwrap_or(1);
        if count == 0 {
            return Err(PolicyError::CountZero);
        }
        if self.mode != Mode::Off && count > self.attestors.len() {
            return Err(PolicyError::CountTooLarge {
                count,
                attestors: self.attestors.len(),
            });
        }
        let mut h = Sha256::new();
        let mut field = |s: &[u8]| {
            h.update((s.len() as u64).to_be_bytes());
            h.update(s);
        };
        field(self.name.as_bytes());
        field(self.mode.as_str().as_bytes());
        field(&(count as u64).to_be_bytes());
        for a in &self.attestors {
            field(&a.fingerprint_bytes());
        }
        if let Some(r) = &self.signature_repository {
            field(r.to_string().as_bytes());
        }
        for a in &self.attestations {
            field(b"attestation");
            field(a.name.as_bytes());
            for t in &a.predicate_types {
                field(t.as_bytes());
            }
            field(&[u8::from(a.allow_unsigned)]);
            for c in &a.conditions {
                field(c.source.as_bytes());
            }
        }
        let fingerprint = Fingerprint(h.finalize().into());
        Ok(Rule {
            name: self.name,
            patterns: self.patterns,
            mode: self.mode,
            count,
            attestors: self.attestors,
            signature_repository: self.signature_repository,
            attestations: self.attestations,
            fingerprint,
        })
    }
}

/// Builds the set; rule names must be unique.
pub fn build(rules: Vec<Rule>, unmatched: Unmatched) -> Result<PolicySet, PolicyError> {
    let mut seen = std::collections::HashSet::new();
    for r in &rules {
        if !seen.insert(r.name.clone()) {
            return Err(PolicyError::DuplicateName(r.name.clone()));
        }
    }
    Ok(PolicySet {
        rules: rules.into_iter().map(Arc::new).collect(),
        unmatched,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn image(s: &str) -> ImageName {
        let (registry, repo) = s.split_once('/').unwrap();
        ImageName {
            registry: registry.to_owned(),
            repo: repo.parse().unwrap(),
        }
    }

    fn keyless() -> Attestor {
        Attestor::keyless(
            Matcher::regexp("https://github.com/company/.+").unwrap(),
            Matcher::Exact("https://token.actions.githubusercontent.com".into()),
        )
    }

    fn rule(name: &str, patterns: &[&str], mode: Mode) -> Rule {
        RuleSpec {
            name: name.into(),
            patterns: patterns.iter().map(|p| Pattern::new(p).unwrap()).collect(),
            mode,
            count: None,
            attestors: vec![keyless()],
            signature_repository: None,
            attestations: Vec::new(),
        }
        .build()
        .unwrap()
    }

    fn selected(set: &PolicySet, img: &str) -> Option<String> {
        match set.select(&image(img)) {
            Selection::Rule { rule, .. } => Some(rule.name.clone()),
            Selection::Unmatched(_) => None,
        }
    }

    #[test]
    fn most_specific_pattern_wins_and_ties_go_to_the_first() {
        let set = build(
            vec![
                rule("broad", &["ghcr.io/**"], Mode::Audit),
                rule("company", &["ghcr.io/company/**"], Mode::Enforce),
                rule("app", &["ghcr.io/company/app"], Mode::Enforce),
                rule("tie", &["ghcr.io/company/**"], Mode::Enforce),
            ],
            Unmatched::Deny,
        )
        .unwrap();
        assert_eq!(
            selected(&set, "ghcr.io/company/app").as_deref(),
            Some("app")
        );
        assert_eq!(
            selected(&set, "ghcr.io/company/api").as_deref(),
            Some("company")
        );
        assert_eq!(
            selected(&set, "ghcr.io/company/team/api").as_deref(),
            Some("company")
        );
        assert_eq!(selected(&set, "ghcr.io/other/x").as_deref(), Some("broad"));
        assert_eq!(selected(&set, "docker.io/library/nginx"), None);
        assert!(matches!(
            set.select(&image("quay.io/x/y")),
            Selection::Unmatched(Unmatched::Deny)
        ));
        assert_eq!(set.matches(&image("ghcr.io/company/app")).len(), 4);
    }

    #[test]
    fn fingerprint_changes_with_what_decides_the_verdict() {
        let a = rule("r", &["x/**"], Mode::Enforce);
        let b = rule("r", &["x/**", "y/**"], Mode::Enforce);
        let c = rule("r", &["x/**"], Mode::Audit);
        // Patterns select a rule; they do not change what it accepts.
        assert_eq!(a.fingerprint, b.fingerprint);
        assert_ne!(a.fingerprint, c.fingerprint);
        let mut spec = RuleSpec {
            name: "r".into(),
            patterns: vec![Pattern::new("x/**").unwrap()],
            mode: Mode::Enforce,
            count: None,
            attestors: vec![Attestor::keyless(
                Matcher::regexp("https://github.com/company/api/.+").unwrap(),
                Matcher::Exact("https://token.actions.githubusercontent.com".into()),
            )],
            signature_repository: None,
            attestations: Vec::new(),
        };
        assert_ne!(spec_fp(&spec), a.fingerprint);
        spec.attestors = vec![keyless()];
        assert_eq!(spec_fp(&spec), a.fingerprint);
        // Attestation requirements are part of what a rule accepts.
        let req = |cond: &str| attestation::Requirement {
            name: "p".into(),
            predicate_types: vec!["https://slsa.dev/provenance/v1".into()],
            conditions: vec![attestation::Condition::compile(1, cond).unwrap()],
            allow_unsigned: false,
        };
        spec.attestations = vec![req("predicate.a == 1")];
        let with_a = spec_fp(&spec);
        assert_ne!(with_a, a.fingerprint);
        spec.attestations = vec![req("predicate.a == 2")];
        assert_ne!(spec_fp(&spec), with_a);
    }

    fn spec_fp(s: &RuleSpec) -> Fingerprint {
        RuleSpec {
            name: s.name.clone(),
            patterns: s.patterns.clone(),
            mode: s.mode,
            count: s.count,
            attestors: s.attestors.clone(),
            signature_repository: s.signature_repository.clone(),
            attestations: s.attestations.clone(),
        }
        .build()
        .unwrap()
        .fingerprint
    }

    #[test]
    fn rule_validation() {
        let base = || RuleSpec {
            name: "r".into(),
            patterns: vec![Pattern::new("x/**").unwrap()],
            mode: Mode::Enforce,
            count: None,
            attestors: vec![keyless()],
            signature_repository: None,
            attestations: Vec::new(),
        };
        let mut s = base();
        s.attestors.clear();
        assert_eq!(
            s.build().unwrap_err(),
            PolicyError::NoAttestors { mode: "enforce" }
        );
        let mut s = base();
        s.count = Some(2);
        assert_eq!(
            s.build().unwrap_err(),
            PolicyError::CountTooLarge {
                count: 2,
                attestors: 1
            }
        );
        let mut s = base();
        s.count = Some(0);
        assert_eq!(s.build().unwrap_err(), PolicyError::CountZero);
        let mut s = base();
        s.patterns.clear();
        assert_eq!(s.build().unwrap_err(), PolicyError::NoPatterns);
        let mut s = base();
        s.mode = Mode::Off;
        s.attestors.clear();
        assert!(s.build().is_ok());
        assert_eq!(
            build(
                vec![
                    rule("a", &["x/*"], Mode::Audit),
                    rule("a", &["y/*"], Mode::Audit)
                ],
                Unmatched::Allow
            )
            .unwrap_err(),
            PolicyError::DuplicateName("a".into())
        );
    }

    fn ev(attestor: usize) -> AttestorCheck {
        Ok(Evidence {
            attestor,
            source: "s".into(),
            signer: "x".into(),
        })
    }

    #[test]
    fn count_is_across_attestors() {
        let mut r = rule("r", &["x/**"], Mode::Enforce);
        r.attestors.push(keyless());
        r.count = 2;
        // Both attestors satisfied (each by some signature).
        let v = r.evaluate(
            2,
            vec![vec![ev(1), Err("x".into())], vec![Err("y".into()), ev(2)]],
            vec![],
        );
        assert!(v.verified, "{v:?}");
        // One attestor satisfied twice does not make two.
        let v = r.evaluate(
            2,
            vec![vec![ev(1), ev(1)], vec![Err("wrong identity".into())]],
            vec![],
        );
        assert!(!v.verified);
        assert!(v.reasons[0].contains("1 of 2"), "{v:?}");
        assert!(v.reasons[1].contains("wrong identity"), "{v:?}");
        let v = r.evaluate(0, vec![vec![], vec![]], vec![]);
        assert_eq!(v.reasons, vec!["no signatures found".to_owned()]);
    }

    #[test]
    fn decisions_follow_the_mode() {
        let r = rule("r", &["x/**"], Mode::Enforce);
        let no = r.evaluate(0, vec![vec![]], vec![]);
        let yes = r.evaluate(1, vec![vec![ev(1)]], vec![]);
        assert_eq!(decide(Mode::Enforce, &yes), Decision::Allow);
        assert!(
            matches!(decide(Mode::Enforce, &no), Decision::Deny { reason } if reason == "no signatures found")
        );
        assert!(matches!(decide(Mode::Audit, &no), Decision::Audit { .. }));
        assert_eq!(decide(Mode::Off, &no), Decision::Allow);
    }
}
