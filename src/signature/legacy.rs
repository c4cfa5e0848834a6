//! Legacy cosign signatures (`<alg>-<hex>.sig` simple-signing layers) as Sigstore bundles.
//!
//! cosign before v3 stores a signature as a layer whose blob is the signed payload and whose
//! annotations carry the rest: `dev.cosignproject.cosign/signature` (base64),
//! `dev.sigstore.cosign/certificate` + `dev.sigstore.cosign/chain` (PEM, keyless), and
//! `dev.sigstore.cosign/bundle` (the Rekor entry: body, integrated time, log index and ID, and the
//! SET). [`to_bundle`] turns these into a v0.1 bundle so that the one verifier checks them like
//! any other bundle; [`check_payload`] checks what the verifier cannot know: that the payload is
//! a cosign image signature naming digest D.

use std::collections::BTreeMap;

use base64::Engine as _;
use sigstore_types::{
    Bundle, CanonicalizedBody, DerCertificate, HashAlgorithm, InclusionPromise, KindVersion, LogId,
    LogIndex, LogKeyId, MediaType, MessageDigest, MessageSignature, PublicKeyIdentifier,
    SignatureBytes, SignatureContent, SignedTimestamp, TransparencyLogEntry, VerificationMaterial,
    VerificationMaterialContent, X509Certificate,
};

use crate::oci::Digest;

pub const SIGNATURE: &str = "dev.cosignproject.cosign/signature";
pub const CERTIFICATE: &str = "dev.sigstore.cosign/certificate";
pub const CHAIN: &str = "dev.sigstore.cosign/chain";
pub const REKOR_BUNDLE: &str = "dev.sigstore.cosign/bundle";

const SIGNATURE_TYPE: &str = "cosign container image signature";

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum LegacyError {
    #[error("annotation {0} is missing")]
    Missing(&'static str),
    #[error("annotation {annotation} is malformed: {reason}")]
    Malformed {
        annotation: &'static str,
        reason: String,
    },
    #[error("payload is not a cosign simple-signing document: {0}")]
    Payload(String),
    #[error("payload has type {0:?}, not \"cosign container image signature\"")]
    PayloadType(String),
    #[error("payload signs {signed}, not {expected}")]
    OtherDigest { signed: String, expected: String },
}

/// What a simple-signing layer carries, parsed from its annotations.
#[derive(Debug)]
pub struct LegacySignature {
    pub signature: SignatureBytes,
    /// The signing certificate and chain (keyless); empty for key signatures.
    pub certificates: Vec<X509Certificate>,
    /// The Rekor entry, when the signature was logged.
    pub tlog: Option<TransparencyLogEntry>,
}

impl LegacySignature {
    pub fn parse(annotations: &BTreeMap<String, String>) -> Result<LegacySignature, LegacyError> {
        let get = |k: &'static str| annotations.get(k).map(String::as_str);
        let malformed = |annotation: &'static str, reason: String| LegacyError::Malformed {
            annotation,
            reason,
        };
        let signature = SignatureBytes::from_base64(
            get(SIGNATURE)
                .ok_or(LegacyError::Missing(SIGNATURE))?
                .trim(),
        )
        .map_err(|e| malformed(SIGNATURE, e.to_string()))?;

        let (certificates, tlog) = material(annotations)?;
        Ok(LegacySignature {
            signature,
            certificates,
            tlog,
        })
    }

    /// The v0.1 bundle for this signature over `payload`.
    pub fn to_bundle(&self, payload: &[u8]) -> Bundle {
        let content = if self.certificates.is_empty() {
            VerificationMaterialContent::PublicKey(PublicKeyIdentifier::new(""))
        } else {
            VerificationMaterialContent::X509CertificateChain {
                certificates: self.certificates.clone(),
            }
        };
        let material = VerificationMaterial::new(content)
            .with_tlog_entries(self.tlog.iter().cloned().collect());
        let digest = sigstore_crypto::sha256(payload);
        let signature = SignatureContent::MessageSignature(
            MessageSignature::new(self.signature.clone())
                .with_message_digest(MessageDigest::new(HashAlgorithm::Sha2256, digest.into())),
        );
        Bundle::new(MediaType::Bundle0_1, material, signature)
    }
}

/// The certificate (and chain) and the Rekor entry of a cosign layer's annotations.
type Material = (Vec<X509Certificate>, Option<TransparencyLogEntry>);

fn material(annotations: &BTreeMap<String, String>) -> Result<Material, LegacyError> {
    let get = |k: &'static str| annotations.get(k).map(String::as_str);
    let malformed =
        |annotation: &'static str, reason: String| LegacyError::Malformed { annotation, reason };
    let mut certificates = Vec::new();
    if let Some(cert) = get(CERTIFICATE).filter(|c| !c.trim().is_empty()) {
        // The chain annotation holds several PEM blocks; read them all.
        let pems = pem::parse_many(cert).map_err(|e| malformed(CERTIFICATE, e.to_string()))?;
        let leaf = pems
            .into_iter()
            .next()
            .ok_or_else(|| malformed(CERTIFICATE, "no PEM certificate".into()))?;
        certificates.push(X509Certificate::new(DerCertificate::new(
            leaf.into_contents(),
        )));
        if let Some(chain) = get(CHAIN) {
            for p in pem::parse_many(chain).map_err(|e| malformed(CHAIN, e.to_string()))? {
                certificates.push(X509Certificate::new(DerCertificate::new(p.into_contents())));
            }
        }
    }

    let tlog = get(REKOR_BUNDLE)
        .map(|b| rekor_entry(b).map_err(|reason| malformed(REKOR_BUNDLE, reason)))
        .transpose()?;
    Ok((certificates, tlog))
}

/// A cosign `.att` layer (a DSSE envelope; certificate, chain and Rekor entry in the
/// annotations) as a v0.1 bundle, with the envelope's payload (the in-toto statement).
pub fn attestation_bundle(
    envelope: &[u8],
    annotations: &BTreeMap<String, String>,
) -> Result<(Bundle, Vec<u8>), LegacyError> {
    let env: sigstore_types::DsseEnvelope = serde_json::from_slice(envelope)
        .map_err(|e| LegacyError::Payload(format!("DSSE envelope: {e}")))?;
    let payload = env.payload.as_bytes().to_vec();
    // The signature lives in the envelope (cosign writes an empty signature annotation).
    let (certificates, tlog) = material(annotations)?;
    let content = if certificates.is_empty() {
        VerificationMaterialContent::PublicKey(PublicKeyIdentifier::new(""))
    } else {
        VerificationMaterialContent::X509CertificateChain { certificates }
    };
    let material = VerificationMaterial::new(content).with_tlog_entries(tlog.into_iter().collect());
    Ok((
        Bundle::new(
            MediaType::Bundle0_1,
            material,
            SignatureContent::DsseEnvelope(env),
        ),
        payload,
    ))
}

/// cosign's `dev.sigstore.cosign/bundle`: `{"SignedEntryTimestamp": b64, "Payload": {"body": b64,
/// "integratedTime": n, "logIndex": n, "logID": hex}}`.
fn rekor_entry(json: &str) -> Result<TransparencyLogEntry, String> {
    #[derive(serde::Deserialize)]
    #[serde(rename_all = "PascalCase")]
    struct RekorBundle {
        signed_entry_timestamp: String,
        payload: RekorPayload,
    }
    #[derive(serde::Deserialize)]
    #[serde(rename_all = "camelCase")]
    struct RekorPayload {
        body: String,
        integrated_time: i64,
        log_index: u64,
        #[serde(rename = "logID")]
        log_id: String,
    }
    #[derive(serde::Deserialize)]
    #[serde(rename_all = "camelCase")]
    struct Body {
        kind: String,
        api_version: String,
    }
    let b: RekorBundle = serde_json::from_str(json).map_err(|e| e.to_string())?;
    let p = b.payload;
    let body_json = base64::engine::general_purpose::STANDARD
        .decode(p.body.trim())
        .map_err(|e| format!("body: {e}"))?;
    let body: Body = serde_json::from_slice(&body_json).map_err(|e| format!("body: {e}"))?;
    let kind = match (body.kind.as_str(), body.api_version.as_str()) {
        ("hashedrekord", "0.0.1") => KindVersion::HashedRekordV001,
        ("hashedrekord", "0.0.2") => KindVersion::HashedRekordV002,
        // Attestations (`.att`): cosign logs them as intoto (or dsse) entries.
        ("intoto", "0.0.2") => KindVersion::IntotoV002,
        ("dsse", "0.0.1") => KindVersion::DsseV001,
        (k, v) => return Err(format!("unsupported Rekor entry kind {k} {v}")),
    };
    let log_id = hex::decode(p.log_id.trim()).map_err(|e| format!("logID: {e}"))?;
    let time = jiff::Timestamp::from_second(p.integrated_time)
        .map_err(|e| format!("integratedTime: {e}"))?;
    Ok(TransparencyLogEntry::new(
        LogIndex::new(p.log_index).map_err(|e| format!("logIndex: {e}"))?,
        LogId::new(LogKeyId::new(log_id)),
        kind,
        CanonicalizedBody::from_base64(p.body.trim()).map_err(|e| format!("body: {e}"))?,
    )
    .with_integrated_time(time)
    .with_inclusion_promise(InclusionPromise::new(
        SignedTimestamp::from_base64(b.signed_entry_timestamp.trim())
            .map_err(|e| format!("SignedEntryTimestamp: {e}"))?,
    )))
}

/// The payload must be a cosign image signature for `digest`.
pub fn check_payload(payload: &[u8], digest: &Digest) -> Result<(), LegacyError> {
    #[derive(serde::Deserialize)]
    struct SimpleSigning {
        critical: Critical,
    }
    #[derive(serde::Deserialize)]
    struct Critical {
        image: Image,
        #[serde(rename = "type")]
        kind: String,
    }
    #[derive(serde::Deserialize)]
    struct Image {
        #[serde(rename = "docker-manifest-digest")]
        digest: String,
    }
    let s: SimpleSigning =
        serde_json::from_slice(payload).map_err(|e| LegacyError::Payload(e.to_string()))?;
    if s.critical.kind != SIGNATURE_TYPE {
        return Err(LegacyError::PayloadType(
            s.critical.kind.chars().take(80).collect(),
        ));
    }
    if s.critical.image.digest != digest.to_string() {
        return Err(LegacyError::OtherDigest {
            signed: s.critical.image.digest.chars().take(140).collect(),
            expected: digest.to_string(),
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn payload(d: &str, kind: &str) -> Vec<u8> {
        format!(
            r#"{{"critical":{{"identity":{{"docker-reference":"x/y"}},"image":{{"docker-manifest-digest":"{d}"}},"type":"{kind}"}},"optional":null}}"#
        )
        .into_bytes()
    }

    #[test]
    fn payload_must_name_the_digest_and_the_type() {
        let d = Digest::repeated('a');
        check_payload(&payload(&d.to_string(), SIGNATURE_TYPE), &d).unwrap();
        assert!(matches!(
            check_payload(
                &payload(&Digest::repeated('b').to_string(), SIGNATURE_TYPE),
                &d
            ),
            Err(LegacyError::OtherDigest { .. })
        ));
        assert!(matches!(
            check_payload(&payload(&d.to_string(), "something else"), &d),
            Err(LegacyError::PayloadType(_))
        ));
        assert!(matches!(
            check_payload(b"[]", &d),
            Err(LegacyError::Payload(_))
        ));
    }

    #[test]
    fn annotations_are_required_and_parsed() {
        let mut a = BTreeMap::new();
        assert_eq!(
            LegacySignature::parse(&a).unwrap_err(),
            LegacyError::Missing(SIGNATURE)
        );
        a.insert(SIGNATURE.to_owned(), "AAAA".to_owned());
        let s = LegacySignature::parse(&a).unwrap();
        assert!(s.certificates.is_empty() && s.tlog.is_none());
        a.insert(REKOR_BUNDLE.to_owned(), "{}".to_owned());
        assert!(matches!(
            LegacySignature::parse(&a).unwrap_err(),
            LegacyError::Malformed {
                annotation: REKOR_BUNDLE,
                ..
            }
        ));
        a.remove(REKOR_BUNDLE);
        a.insert(
            CERTIFICATE.to_owned(),
            "-----BEGIN CERTIFICATE-----\n!!\n".to_owned(),
        );
        assert!(matches!(
            LegacySignature::parse(&a).unwrap_err(),
            LegacyError::Malformed {
                annotation: CERTIFICATE,
                ..
            }
        ));
    }
}
