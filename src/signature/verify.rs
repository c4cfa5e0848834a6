//! Verification of candidate signatures against a rule's attestors, with `sigstore-verify`.
//!
//! Each candidate is checked cryptographically once per kind of trust: a certificate-signed
//! candidate once with an open identity (the verifier checks the Fulcio chain, SCT, Rekor SET or
//! inclusion proof and checkpoint, TSA timestamps, and the signature), after which each keyless
//! attestor matches the *verified* identity and issuer of that same signature; a key-signed
//! candidate once per key attestor. On top of the verifier's checks: a bundle's DSSE statement
//! must be a cosign image signature (`predicateType`) whose subjects contain D (the verifier
//! checks the subject), and a legacy payload must name D (`legacy::check_payload`).

use base64::Engine as _;
use sigstore_types::{Bundle, Sha256Hash};
use sigstore_verify::{PublicKeyVerificationPolicy, VerificationPolicy};

use super::legacy::{check_payload, LegacySignature};
use super::{Candidate, CandidateKind, TrustRoot, COSIGN_SIGN_PREDICATE};
use crate::policy::{Attestor, AttestorCheck, Evidence, Rule};
use crate::registry_api::reference::{Algorithm, Digest};

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

/// Checks every candidate against every attestor of `rule`. Returns the checks per attestor (in
/// attestor order) and every signer whose signature verified cryptographically.
pub fn check_all(
    root: &TrustRoot,
    rule: &Rule,
    digest: &Digest,
    candidates: &[Candidate],
) -> (Vec<Vec<AttestorCheck>>, Vec<String>) {
    let mut checks: Vec<Vec<AttestorCheck>> = vec![Vec::new(); rule.attestors.len()];
    let mut identities: Vec<String> = Vec::new();
    for c in candidates {
        let prepared = prepare(c, digest);
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
        if let Some(Ok((id, iss))) = &keyless_result {
            push_unique(&mut identities, format!("{id} (issuer {iss})"));
        }
        for (i, attestor) in rule.attestors.iter().enumerate() {
            let check = match &prepared {
                Prepared::Rejected(reason) => Err(format!("{}: {reason}", c.source)),
                Prepared::Ready {
                    bundle,
                    artifact,
                    keyless,
                    direct,
                } => check_one(
                    root,
                    attestor,
                    i + 1,
                    c,
                    bundle,
                    artifact,
                    *keyless,
                    direct.as_ref(),
                    keyless_result.as_ref(),
                    &mut identities,
                ),
            };
            checks[i].push(check);
        }
    }
    (checks, identities)
}

#[allow(clippy::too_many_arguments)]
fn check_one(
    root: &TrustRoot,
    attestor: &Attestor,
    index: usize,
    c: &Candidate,
    bundle: &Bundle,
    artifact: &Artifact,
    keyless: bool,
    direct: Option<&(Vec<u8>, sigstore_types::SignatureBytes)>,
    keyless_result: Option<&Result<(String, String), String>>,
    identities: &mut Vec<String>,
) -> AttestorCheck {
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

fn prepare(c: &Candidate, digest: &Digest) -> Prepared {
    match &c.kind {
        CandidateKind::Unusable(reason) => Prepared::Rejected(reason.clone()),
        CandidateKind::Bundle(json) => {
            if digest.algorithm() != Algorithm::Sha256 {
                return Prepared::Rejected(format!(
                    "Sigstore bundles sign sha256 digests; this manifest is {}",
                    digest.algorithm().as_str()
                ));
            }
            let Ok(text) = std::str::from_utf8(json) else {
                return Prepared::Rejected("malformed bundle: not UTF-8".to_owned());
            };
            let bundle = match Bundle::from_json(text) {
                Ok(b) => b,
                Err(e) => return Prepared::Rejected(format!("malformed bundle: {e}")),
            };
            if let Err(reason) = check_statement_type(json) {
                return Prepared::Rejected(reason);
            }
            let artifact = match Sha256Hash::from_hex(digest.hex()) {
                Ok(h) => Artifact::Digest(h),
                Err(e) => return Prepared::Rejected(format!("digest: {e}")),
            };
            Prepared::Ready {
                keyless: bundle.signing_certificate().is_some(),
                bundle: Box::new(bundle),
                artifact,
                direct: None,
            }
        }
        CandidateKind::Legacy {
            payload,
            annotations,
        } => {
            let sig = match LegacySignature::parse(annotations) {
                Ok(s) => s,
                Err(e) => return Prepared::Rejected(format!("malformed cosign signature: {e}")),
            };
            // The payload is what was signed; it must be about this digest.
            if let Err(e) = check_payload(payload, digest) {
                return Prepared::Rejected(e.to_string());
            }
            let keyless = !sig.certificates.is_empty();
            let direct =
                (!keyless && sig.tlog.is_none()).then(|| (payload.to_vec(), sig.signature.clone()));
            Prepared::Ready {
                bundle: Box::new(sig.to_bundle(payload)),
                artifact: Artifact::Payload(payload.to_vec()),
                keyless,
                direct,
            }
        }
    }
}

/// A bundle from a referrer counts as an image signature only when it is a DSSE in-toto
/// statement with cosign's signature predicate (attestations share the artifact type), or a
/// plain message signature over the manifest digest.
fn check_statement_type(json: &[u8]) -> Result<(), String> {
    #[derive(serde::Deserialize)]
    #[serde(rename_all = "camelCase")]
    struct Outer {
        dsse_envelope: Option<Envelope>,
    }
    #[derive(serde::Deserialize)]
    struct Envelope {
        payload: String,
    }
    #[derive(serde::Deserialize)]
    #[serde(rename_all = "camelCase")]
    struct Statement {
        predicate_type: String,
    }
    let outer: Outer =
        serde_json::from_slice(json).map_err(|e| format!("malformed bundle: {e}"))?;
    let Some(env) = outer.dsse_envelope else {
        return Ok(());
    };
    let payload = base64::engine::general_purpose::STANDARD
        .decode(env.payload.trim())
        .map_err(|e| format!("malformed DSSE payload: {e}"))?;
    let st: Statement = serde_json::from_slice(&payload)
        .map_err(|e| format!("DSSE payload is not an in-toto statement: {e}"))?;
    if st.predicate_type != COSIGN_SIGN_PREDICATE {
        return Err(format!(
            "an attestation ({}), not an image signature",
            st.predicate_type.chars().take(100).collect::<String>()
        ));
    }
    Ok(())
}

fn push_unique(v: &mut Vec<String>, s: String) {
    if !v.contains(&s) {
        v.push(s);
    }
}

#[cfg(test)]
#[path = "verify_tests.rs"]
mod tests;
