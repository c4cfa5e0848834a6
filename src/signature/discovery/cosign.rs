//! Source 2: cosign's tag scheme. `<alg>-<hex>.sig` is a manifest whose simple-signing layers
//! carry the signature in their annotations; `<alg>-<hex>.att` (asked only under attestation
//! rules) one whose layers are DSSE envelopes.

use super::{announced_attestation, unusable_as, Discovery};
use crate::oci::media::{COSIGN_SIMPLE_SIGNING, DSSE_ENVELOPE};
use crate::oci::{Digest, Document, Reading};
use crate::signature::{Announced, Candidate, CandidateKind, LookupError};

/// The cosign tag schemes: `.sig` (simple signing) and `.att` (DSSE attestations).
#[derive(Clone, Copy)]
pub(super) enum LegacyKind {
    Signature,
    Attestation,
}

impl LegacyKind {
    fn suffix(self) -> &'static str {
        match self {
            LegacyKind::Signature => "sig",
            LegacyKind::Attestation => "att",
        }
    }

    /// What an unreadable candidate of this kind counts as (see `unusable_as`).
    fn announced(self) -> Announced {
        match self {
            LegacyKind::Signature => Announced::Signature,
            LegacyKind::Attestation => Announced::UnknownAttestation,
        }
    }

    fn layer_type(self) -> &'static str {
        match self {
            LegacyKind::Signature => COSIGN_SIMPLE_SIGNING,
            LegacyKind::Attestation => DSSE_ENVELOPE,
        }
    }
}

impl Discovery<'_> {
    /// cosign's `<alg>-<hex>.sig` manifest and its simple-signing layers, or its
    /// `<alg>-<hex>.att` manifest and its DSSE layers.
    pub(super) async fn legacy_layers(
        &self,
        digest: &Digest,
        kind: LegacyKind,
        out: &mut Vec<Candidate>,
    ) -> Result<(), LookupError> {
        let tag = format!("{}.{}", digest.fallback_tag(), kind.suffix());
        let what = format!("signature tag {tag}");
        let path = format!("/v2/{}/manifests/{tag}", self.repo);
        let bytes = match self.signature_manifest(path, &what).await? {
            Some(Ok(bytes)) => bytes,
            Some(Err(reason)) => {
                out.push(unusable_as(tag, reason, kind.announced()));
                return Ok(());
            }
            None => return Ok(()),
        };
        let manifest = match Document::parse(&bytes, Reading::Manifest) {
            Ok(m) => m,
            Err(e) => {
                out.push(unusable_as(
                    tag,
                    format!("manifest is malformed: {e}"),
                    kind.announced(),
                ));
                return Ok(());
            }
        };
        for (i, layer) in manifest.layers.iter().enumerate() {
            if out.len() >= self.limits.max_signatures {
                break;
            }
            if layer.media_type.as_deref() != Some(kind.layer_type()) {
                continue;
            }
            let source = format!("{tag} layer {}", i + 1);
            let payload = match self.blob(layer, &what).await? {
                Ok(p) => p,
                Err(reason) => {
                    let announced = match kind {
                        LegacyKind::Signature => Announced::Signature,
                        LegacyKind::Attestation => announced_attestation(layer, "predicateType")
                            .unwrap_or(Announced::UnknownAttestation),
                    };
                    out.push(unusable_as(source, reason, announced));
                    continue;
                }
            };
            let annotations = layer.annotations.clone();
            out.push(Candidate {
                source,
                kind: match kind {
                    LegacyKind::Signature => CandidateKind::Legacy {
                        payload,
                        annotations,
                    },
                    LegacyKind::Attestation => CandidateKind::LegacyAttestation {
                        envelope: payload,
                        annotations,
                    },
                },
            });
        }
        Ok(())
    }
}
