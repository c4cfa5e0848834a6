//! The rules: modes, what applies to a repository no rule matches, each rule validated with its
//! fingerprint ([`RuleSpec::build`]), the set of them ([`build`]) and which one applies to an
//! image ([`PolicySet::select`]: the most specific pattern). What a rule makes of signatures is
//! [`super::verdict`].

use std::fmt;
use std::sync::Arc;

use sha2::{Digest as _, Sha256};

use super::{Attestor, Pattern, Requirement};
use crate::oci::ImageName;

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
