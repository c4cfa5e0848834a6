//! Policy: the rules of the configuration, which one applies to an image ([`rules`]), and what
//! the signatures found make of a rule: verdicts, decisions and reports ([`verdict`]).
//!
//! A [`PolicySet`] is built once at configuration load ([`build`]) from the raw `policies` list:
//! globs compiled ([`pattern`]), regexps compiled and public keys parsed ([`attestor`]),
//! attestation conditions compiled ([`attestation`]), and each rule given a [`Fingerprint`] of
//! everything that decides its verdict, so a cached verdict can never outlive a change of rule.
//! [`Rule::evaluate`] counts the attestors that verified (`count`), and [`decide`] turns a
//! verification outcome into a [`Decision`]. This module does no I/O: discovery and
//! cryptography are `signature`'s.

pub mod attestation;
pub mod attestor;
pub mod pattern;
pub mod rules;
pub mod verdict;

pub use attestation::Requirement;
pub use attestor::{Attestor, Matcher};
pub use pattern::Pattern;
pub use rules::{
    build, Fingerprint, Mode, PolicyError, PolicySet, Rule, RuleSpec, Selection, Unmatched,
};
pub use verdict::{
    decide, AttestationReport, AttestorCheck, Decision, DecisionKind, Evidence, FoundAttestation,
    RequirementReport, SignatureReport, Signing, Verdict, VerdictResult,
};

#[cfg(test)]
mod tests;
