//! A candidate made ready for the verifier ([`prepare`]): a cosign v3 bundle, a legacy `.sig`
//! turned into a bundle over its payload, or a legacy `.att` layer turned into a DSSE bundle,
//! each with the artifact it must verify over and its role (a signature, or an attestation
//! with its in-toto statement). A candidate that cannot be made ready is rejected with the
//! reason, for every attestor.

use base64::Engine as _;
use sigstore_types::{Bundle, Sha256Hash};

use super::ReadyCandidate;
use crate::oci::{Algorithm, Digest};
use crate::signature::legacy::{self, check_payload, LegacySignature};
use crate::signature::{Candidate, CandidateKind, COSIGN_SIGN_PREDICATE};

/// What a candidate is evidence of.
pub(super) enum Role {
    Signature,
    /// A signed in-toto statement other than cosign's signature.
    Attestation(Statement),
}

/// The parts of an in-toto statement the requirements look at.
pub(super) struct Statement {
    pub(super) predicate_type: String,
    pub(super) predicate: serde_json::Value,
    pub(super) subject: serde_json::Value,
}

/// A candidate made ready for the verifier.
pub(super) enum Prepared {
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

pub(super) enum Artifact {
    Digest(Sha256Hash),
    Payload(Vec<u8>),
}

pub(super) fn parse_statement(bytes: &[u8]) -> Result<Statement, String> {
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
    pub(super) fn candidate<'a>(
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

    pub(super) fn rejection(&self) -> &str {
        match self {
            Prepared::Rejected(reason) => reason,
            Prepared::Ready { .. } => "",
        }
    }
}

pub(super) fn prepare(c: &Candidate, digest: &Digest) -> (Prepared, Role) {
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
