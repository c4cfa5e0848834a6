//! Verification of candidate signatures and attestations against a rule's attestors, with
//! `sigstore-verify`.
//!
//! Each candidate is checked cryptographically once per kind of trust: a certificate-signed
//! candidate once with an open identity (the verifier checks the Fulcio chain, SCT, Rekor SET or
//! inclusion proof and checkpoint, TSA timestamps, and the signature), after which each keyless
//! attestor matches the *verified* identity and issuer of that same signature; a key-signed
//! candidate once per key attestor. On top of the verifier's checks: a legacy payload must name
//! D (`legacy::check_payload`), and a DSSE statement's subjects must contain D (the verifier
//! checks it). A DSSE statement with cosign's signature predicate is a signature; any other
//! predicate makes it an attestation, verified the same way and handed to the rule's attestation
//! requirements with its statement. BuildKit's unsigned statements are passed on as unsigned.
//! How each kind of candidate is made ready for the verifier is [`prepare`]'s.

mod prepare;

use sigstore_types::Bundle;
use sigstore_verify::{PublicKeyVerificationPolicy, VerificationPolicy};

use super::{Candidate, CandidateKind, TrustRoot};
use crate::oci::Digest;
use crate::policy::{
    Attestor, AttestorCheck, Evidence, FoundAttestation, Rule, SignatureReport, Signing,
};
use prepare::{parse_statement, prepare, Artifact, Prepared, Role, Statement};

/// Everything the checks found, for `Rule::evaluate` and `Rule::evaluate_attestations`.
pub struct Checked {
    /// Signature candidates (attestations excluded).
    pub signatures: usize,
    /// Per attestor, one check per signature candidate.
    pub checks: Vec<Vec<AttestorCheck>>,
    pub identities: Vec<String>,
    pub attestations: Vec<FoundAttestation>,
    /// Every signature candidate and what became of it.
    pub signature_reports: Vec<SignatureReport>,
}

/// Checks every candidate against every attestor of `rule`: the signature checks per attestor
/// (in attestor order), every signer whose signature verified cryptographically, and the
/// attestations found (each with the first attestor that verified it).
pub fn check_all(
    root: &TrustRoot,
    rule: &Rule,
    digest: &Digest,
    candidates: &[Candidate],
) -> Checked {
    let mut checks: Vec<Vec<AttestorCheck>> = vec![Vec::new(); rule.attestors.len()];
    let mut identities: Vec<String> = Vec::new();
    let mut attestations = Vec::new();
    let mut signature_reports = Vec::new();
    let mut signatures = 0;
    for c in candidates {
        if let CandidateKind::Unsigned { statement, about } = &c.kind {
            if !rule.attestations.is_empty() {
                attestations.push(unsigned_attestation(c, statement, about));
            }
            continue;
        }
        // An unreadable attestation is reported as one; an unreadable signature is rejected by
        // every attestor below.
        if let CandidateKind::Unusable { reason, announced } = &c.kind {
            if let Some(predicate_type) = announced.predicate_type() {
                if !rule.attestations.is_empty() {
                    attestations.push(FoundAttestation {
                        source: c.source.clone(),
                        predicate_type: Some(predicate_type.to_owned()),
                        signing: Signing::Rejected {
                            reason: format!("{}: {reason}", c.source),
                        },
                        about: digest.clone(),
                        predicate: serde_json::Value::Null,
                        subject: serde_json::Value::Null,
                    });
                }
                continue;
            }
        }
        let (prepared, role) = prepare(c, digest);
        if let Role::Attestation(_) = &role {
            if rule.attestations.is_empty() {
                continue;
            }
        } else {
            signatures += 1;
        }
        let keyless_result = open_identity(root, &prepared);
        if let Role::Attestation(st) = role {
            attestations.push(check_attestation(
                root,
                &rule.attestors,
                digest,
                c,
                &prepared,
                keyless_result.as_ref(),
                st,
            ));
            continue;
        }
        if let Some(Ok((id, iss))) = &keyless_result {
            push_unique(&mut identities, format!("{id} (issuer {iss})"));
        }
        let mut report = SignatureReport {
            source: c.source.clone(),
            verified_by: None,
            errors: Vec::new(),
        };
        let candidate = prepared.candidate(c, keyless_result.as_ref());
        for (i, attestor) in rule.attestors.iter().enumerate() {
            let check = match &candidate {
                None => Err(format!("{}: {}", c.source, prepared.rejection())),
                Some(ready) => ready.check(root, attestor, i + 1, &mut identities),
            };
            match &check {
                Ok(e) if report.verified_by.is_none() => {
                    report.verified_by = Some(format!("attestor {}: {}", i + 1, e.signer))
                }
                Ok(_) => {}
                Err(e) => push_unique(&mut report.errors, e.clone()),
            }
            checks[i].push(check);
        }
        if report.verified_by.is_some() {
            report.errors.clear();
        }
        signature_reports.push(report);
    }
    Checked {
        signatures,
        checks,
        identities,
        attestations,
        signature_reports,
    }
}

/// The signed attestations among `candidates` (signatures, BuildKit's unsigned statements and
/// unreadable candidates left out), each with the first of `attestors` that verified it, or why
/// none did: for the inventory, which reads SBOM attestations whatever the rule requires.
pub fn check_attestations(
    root: &TrustRoot,
    attestors: &[Attestor],
    digest: &Digest,
    candidates: &[Candidate],
) -> Vec<FoundAttestation> {
    let mut out = Vec::new();
    for c in candidates {
        if matches!(
            c.kind,
            CandidateKind::Unsigned { .. } | CandidateKind::Unusable { .. }
        ) {
            continue;
        }
        let (prepared, role) = prepare(c, digest);
        if let Role::Attestation(st) = role {
            let keyless_result = open_identity(root, &prepared);
            out.push(check_attestation(
                root,
                attestors,
                digest,
                c,
                &prepared,
                keyless_result.as_ref(),
                st,
            ));
        }
    }
    out
}

/// BuildKit's unsigned statements among `candidates`, each about the child it names.
pub fn unsigned_attestations(candidates: &[Candidate]) -> Vec<FoundAttestation> {
    candidates
        .iter()
        .filter_map(|c| match &c.kind {
            CandidateKind::Unsigned { statement, about } => {
                Some(unsigned_attestation(c, statement, about))
            }
            _ => None,
        })
        .collect()
}

/// A certificate-signed candidate verified once with an open identity: its verified identity
/// and issuer, or why it did not verify; `None` for a key-signed or rejected candidate.
fn open_identity(
    root: &TrustRoot,
    prepared: &Prepared,
) -> Option<Result<(String, String), String>> {
    match prepared {
        Prepared::Ready {
            bundle,
            artifact,
            keyless: true,
            ..
        } => Some(
            verify(root, artifact, bundle, &VerificationPolicy::any_identity()).map(|r| {
                (
                    r.identity().map(|i| i.to_string()).unwrap_or_default(),
                    r.issuer().unwrap_or_default().to_owned(),
                )
            }),
        ),
        _ => None,
    }
}

/// A signed attestation: verified by the first of the rule's attestors that accepts it.
fn check_attestation(
    root: &TrustRoot,
    attestors: &[Attestor],
    digest: &Digest,
    c: &Candidate,
    prepared: &Prepared,
    keyless_result: Option<&Result<(String, String), String>>,
    st: Statement,
) -> FoundAttestation {
    let signing = match prepared.candidate(c, keyless_result) {
        None => Signing::Rejected {
            reason: prepared.rejection().to_owned(),
        },
        Some(ready) => {
            let mut errors = Vec::new();
            let mut scratch = Vec::new();
            let verified = attestors.iter().enumerate().find_map(|(i, attestor)| {
                match ready.check(root, attestor, i + 1, &mut scratch) {
                    Ok(e) => Some(e.signer),
                    Err(e) => {
                        errors.push(e);
                        None
                    }
                }
            });
            match verified {
                Some(signer) => Signing::Verified { signer },
                None => {
                    errors.dedup();
                    Signing::Rejected {
                        reason: if errors.is_empty() {
                            "the rule has no attestors".to_owned()
                        } else {
                            errors.join(" | ")
                        },
                    }
                }
            }
        }
    };
    FoundAttestation {
        source: c.source.clone(),
        predicate_type: Some(st.predicate_type),
        signing,
        about: digest.clone(),
        predicate: st.predicate,
        subject: st.subject,
    }
}

/// A BuildKit attestation: an unsigned statement about `about` (a child of the index).
fn unsigned_attestation(c: &Candidate, statement: &[u8], about: &Digest) -> FoundAttestation {
    let (predicate_type, problem, predicate, subject) = match parse_statement(statement) {
        Ok(st) => {
            let problem = (!names_digest(&st.subject, about))
                .then(|| format!("statement subject does not name {about}"));
            (Some(st.predicate_type), problem, st.predicate, st.subject)
        }
        Err(e) => (
            None,
            Some(e),
            serde_json::Value::Null,
            serde_json::Value::Null,
        ),
    };
    FoundAttestation {
        source: c.source.clone(),
        predicate_type,
        signing: Signing::Unsigned { problem },
        about: about.clone(),
        predicate,
        subject,
    }
}

/// True when an in-toto subject list has an entry whose digest is `d`.
pub fn names_digest(subject: &serde_json::Value, d: &Digest) -> bool {
    subject.as_array().is_some_and(|list| {
        list.iter().any(|s| {
            s["digest"][d.algorithm().as_str()]
                .as_str()
                .is_some_and(|h| h.eq_ignore_ascii_case(d.hex()))
        })
    })
}

/// A prepared candidate, checked against one attestor at a time.
struct ReadyCandidate<'a> {
    source: &'a Candidate,
    bundle: &'a Bundle,
    artifact: &'a Artifact,
    keyless: bool,
    /// A key signature with no log entry: its payload and signature.
    direct: Option<&'a (Vec<u8>, sigstore_types::SignatureBytes)>,
    /// The certificate-signed candidate's one verification with an open identity.
    keyless_result: Option<&'a Result<(String, String), String>>,
}

impl ReadyCandidate<'_> {
    /// What attestor `index` (1-based) makes of this candidate; every signer whose signature
    /// verifies cryptographically lands in `identities`.
    fn check(
        &self,
        root: &TrustRoot,
        attestor: &Attestor,
        index: usize,
        identities: &mut Vec<String>,
    ) -> AttestorCheck {
        let ReadyCandidate {
            source: c,
            bundle,
            artifact,
            keyless,
            direct,
            keyless_result,
        } = *self;
        let fail = |reason: String| Err(format!("{}: {reason}", c.source));
        let evidence = |signer: String| {
            Ok(Evidence {
                attestor: index,
                source: c.source.clone(),
                signer,
            })
        };
        match attestor {
            Attestor::Keyless { subject, issuer } => {
                if !keyless {
                    return fail("signed with a key, not a Fulcio certificate".to_owned());
                }
                match keyless_result {
                    Some(Ok((id, iss))) if subject.is_match(id) && issuer.is_match(iss) => {
                        evidence(format!("{id} (issuer {iss})"))
                    }
                    Some(Ok((id, iss))) => fail(format!(
                        "signed by {id} (issuer {iss}), which this attestor does not allow"
                    )),
                    Some(Err(e)) => fail(e.clone()),
                    None => fail("not verified".to_owned()),
                }
            }
            Attestor::Key {
                key,
                insecure_ignore_tlog,
            } => {
                if keyless {
                    return fail("signed with a Fulcio certificate, not a key".to_owned());
                }
                let signer = format!("key {}", key.origin);
                if let Some((payload, sig)) = direct {
                    if !insecure_ignore_tlog {
                        return fail(
                            "key signature has no transparency log entry (the attestor does not set ignore_tlog)"
                                .to_owned(),
                        );
                    }
                    return match sigstore_crypto::VerificationKey::from_spki(&key.der)
                        .and_then(|k| k.verify(payload, sig))
                    {
                        Ok(()) => {
                            push_unique(identities, signer.clone());
                            evidence(format!("{signer} (no transparency log entry)"))
                        }
                        Err(e) => fail(format!("not signed by {}: {e}", key.origin)),
                    };
                }
                let policy = PublicKeyVerificationPolicy::new(key.der.clone());
                match verify(root, artifact, bundle, &policy) {
                    Ok(_) => {
                        push_unique(identities, signer.clone());
                        evidence(signer)
                    }
                    Err(e) => fail(format!("with key {}: {e}", key.origin)),
                }
            }
        }
    }
}

fn verify(
    root: &TrustRoot,
    artifact: &Artifact,
    bundle: &Bundle,
    policy: &(impl sigstore_verify::Policy + ?Sized),
) -> Result<sigstore_verify::VerificationResult, String> {
    let r = match artifact {
        Artifact::Digest(d) => root.verifier().verify(*d, bundle, policy),
        Artifact::Payload(p) => root.verifier().verify(p.as_slice(), bundle, policy),
    };
    r.map_err(|e| e.to_string())
}

fn push_unique(v: &mut Vec<String>, s: String) {
    if !v.contains(&s) {
        v.push(s);
    }
}

#[cfg(test)]
mod tests;

#[cfg(test)]
mod attestation_tests;
