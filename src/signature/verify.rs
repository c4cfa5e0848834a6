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

use base64::Engine as _;
use sigstore_types::{Bundle, Sha256Hash};
use sigstore_verify::{PublicKeyVerificationPolicy, VerificationPolicy};

use super::legacy::{self, check_payload, LegacySignature};
use super::{Candidate, CandidateKind, TrustRoot, COSIGN_SIGN_PREDICATE};
use crate::oci::{Algorithm, Digest};
use crate::policy::{
    Attestor, AttestorCheck, Evidence, FoundAttestation, Rule, SignatureReport, Signing,
};

/// What a candidate is evidence of.
enum Role {
    Signature,
    /// A signed in-toto statement other than cosign's signature.
    Attestation(Statement),
}

/// The parts of an in-toto statement the requirements look at.
struct Statement {
    predicate_type: String,
    predicate: serde_json::Value,
    subject: serde_json::Value,
}

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

/// A candidate made ready for the verifier.
enum Prepared {
    /// The bundle and the artifact it must verify over.
    Ready {
        bundle: Box<Bundle>,
        artifact: Artifact,
        keyless: bool,
        /// A key signature with no log entry: checkable only directly, under `ignore_tlog`.
        direct: Option<(Vec<u8>, sigstore_types::SignatureBytes)>,
    },
    /// Unusable for every attestor, with the reason.
    Rejected(String),
}

enum Artifact {
    Digest(Sha256Hash),
    Payload(Vec<u8>),
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
        let keyless_result = match &prepared {
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
        };
        if let Role::Attestation(st) = role {
            attestations.push(check_attestation(
                root,
                rule,
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

/// A signed attestation: verified by the first attestor of the rule that accepts it.
fn check_attestation(
    root: &TrustRoot,
    rule: &Rule,
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
            let verified =
                rule.attestors.iter().enumerate().find_map(|(i, attestor)| {
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
fn names_digest(subject: &serde_json::Value, d: &Digest) -> bool {
    subject.as_array().is_some_and(|list| {
        list.iter().any(|s| {
            s["digest"][d.algorithm().as_str()]
                .as_str()
                .is_some_and(|h| h.eq_ignore_ascii_case(d.hex()))
        })
    })
}

fn parse_statement(bytes: &[u8]) -> Result<Statement, String> {
    #[derive(serde::Deserialize)]
    #[serde(rename_all = "camelCase")]
    struct Raw {
        predicate_type: String,
        #[serde(default)]
        predicate: serde_json::Value,
        #[serde(default)]
        subject: serde_json::Value,
    }
    let r: Raw =
        serde_json::from_slice(bytes).map_err(|e| format!("not an in-toto statement: {e}"))?;
    Ok(Statement {
        predicate_type: r.predicate_type,
        predicate: r.predicate,
        subject: r.subject,
    })
}

// === impl Prepared ===

impl Prepared {
    /// The candidate ready for the attestors' checks, with what its open-identity check found;
    /// `None` when it was rejected (see [`Prepared::rejection`]).
    fn candidate<'a>(
        &'a self,
        source: &'a Candidate,
        keyless_result: Option<&'a Result<(String, String), String>>,
    ) -> Option<ReadyCandidate<'a>> {
        match self {
            Prepared::Rejected(_) => None,
            Prepared::Ready {
                bundle,
                artifact,
                keyless,
                direct,
            } => Some(ReadyCandidate {
                source,
                bundle,
                artifact,
                keyless: *keyless,
                direct: direct.as_ref(),
                keyless_result,
            }),
        }
    }

    fn rejection(&self) -> &str {
        match self {
            Prepared::Rejected(reason) => reason,
            Prepared::Ready { .. } => "",
        }
    }
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

fn prepare(c: &Candidate, digest: &Digest) -> (Prepared, Role) {
    let rejected = |r: String| (Prepared::Rejected(r), Role::Signature);
    let sha256 = || {
        if digest.algorithm() != Algorithm::Sha256 {
            return Err(format!(
                "Sigstore bundles sign sha256 digests; this manifest is {}",
                digest.algorithm().as_str()
            ));
        }
        Sha256Hash::from_hex(digest.hex())
            .map(Artifact::Digest)
            .map_err(|e| format!("digest: {e}"))
    };
    match &c.kind {
        CandidateKind::Unusable { reason, .. } => rejected(reason.clone()),
        // Handled before preparation; never reaches the verifier.
        CandidateKind::Unsigned { .. } => rejected("unsigned statement".to_owned()),
        CandidateKind::Bundle(json) => {
            let artifact = match sha256() {
                Ok(a) => a,
                Err(e) => return rejected(e),
            };
            let Ok(text) = std::str::from_utf8(json) else {
                return rejected("malformed bundle: not UTF-8".to_owned());
            };
            let role = match bundle_statement(json) {
                Err(reason) => return rejected(reason),
                Ok(Some(st)) if st.predicate_type != COSIGN_SIGN_PREDICATE => Role::Attestation(st),
                Ok(_) => Role::Signature,
            };
            let bundle = match Bundle::from_json(text) {
                Ok(b) => b,
                // An attestation stays one even when its bundle is broken.
                Err(e) => return (Prepared::Rejected(format!("malformed bundle: {e}")), role),
            };
            (
                Prepared::Ready {
                    keyless: bundle.signing_certificate().is_some(),
                    bundle: Box::new(bundle),
                    artifact,
                    direct: None,
                },
                role,
            )
        }
        CandidateKind::Legacy {
            payload,
            annotations,
        } => {
            let sig = match LegacySignature::parse(annotations) {
                Ok(s) => s,
                Err(e) => return rejected(format!("malformed cosign signature: {e}")),
            };
            // The payload is what was signed; it must be about this digest.
            if let Err(e) = check_payload(payload, digest) {
                return rejected(e.to_string());
            }
            let keyless = !sig.certificates.is_empty();
            let direct =
                (!keyless && sig.tlog.is_none()).then(|| (payload.to_vec(), sig.signature.clone()));
            (
                Prepared::Ready {
                    bundle: Box::new(sig.to_bundle(payload)),
                    artifact: Artifact::Payload(payload.to_vec()),
                    keyless,
                    direct,
                },
                Role::Signature,
            )
        }
        CandidateKind::LegacyAttestation {
            envelope,
            annotations,
        } => {
            let statement = |r: String| {
                (
                    Prepared::Rejected(r),
                    Role::Attestation(Statement {
                        predicate_type: annotations
                            .get("predicateType")
                            .cloned()
                            .unwrap_or_default(),
                        predicate: serde_json::Value::Null,
                        subject: serde_json::Value::Null,
                    }),
                )
            };
            let artifact = match sha256() {
                Ok(a) => a,
                Err(e) => return statement(e),
            };
            let (bundle, payload) = match legacy::attestation_bundle(envelope, annotations) {
                Ok(b) => b,
                Err(e) => return statement(format!("malformed cosign attestation: {e}")),
            };
            let st = match parse_statement(&payload) {
                Ok(st) => st,
                Err(e) => return statement(e),
            };
            (
                Prepared::Ready {
                    keyless: bundle.signing_certificate().is_some(),
                    bundle: Box::new(bundle),
                    artifact,
                    direct: None,
                },
                Role::Attestation(st),
            )
        }
    }
}

/// The in-toto statement of a DSSE bundle (`None` for a message signature).
fn bundle_statement(json: &[u8]) -> Result<Option<Statement>, String> {
    #[derive(serde::Deserialize)]
    #[serde(rename_all = "camelCase")]
    struct Outer {
        dsse_envelope: Option<Envelope>,
    }
    #[derive(serde::Deserialize)]
    struct Envelope {
        payload: String,
    }
    let outer: Outer =
        serde_json::from_slice(json).map_err(|e| format!("malformed bundle: {e}"))?;
    let Some(env) = outer.dsse_envelope else {
        return Ok(None);
    };
    let payload = base64::engine::general_purpose::STANDARD
        .decode(env.payload.trim())
        .map_err(|e| format!("malformed DSSE payload: {e}"))?;
    parse_statement(&payload)
        .map(Some)
        .map_err(|e| format!("DSSE payload is {e}"))
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
