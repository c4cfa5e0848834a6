//! Source 3: BuildKit's attestation manifests inside an image index. Each is about one child
//! manifest (its `vnd.docker.reference.digest` annotation) and holds unsigned in-toto
//! statements; they count only where a requirement accepts unsigned attestations.

use super::{unusable_as, Discovery};
use crate::oci::document::REFERENCE_DIGEST;
use crate::oci::media::IN_TOTO;
use crate::oci::{Document, Reading};
use crate::signature::{Announced, Candidate, CandidateKind, LookupError};

impl Discovery<'_> {
    /// The unsigned in-toto statements of BuildKit's attestation manifests in `index`.
    pub(super) async fn buildkit_attestations(
        &self,
        index: &Document,
        out: &mut Vec<Candidate>,
    ) -> Result<(), LookupError> {
        for d in index.attestation_children() {
            if out.len() >= self.limits.max_signatures {
                break;
            }
            let about = d.attestation_about();
            let digest = &d.digest;
            let source = format!("BuildKit attestation manifest {digest}");
            let Some(about) = about else {
                out.push(unusable_as(
                    source,
                    format!("no valid {REFERENCE_DIGEST} annotation"),
                    Announced::UnknownAttestation,
                ));
                continue;
            };
            let path = format!("/v2/{}/manifests/{digest}", self.repo);
            let bytes = match self.signature_manifest(path, &source).await? {
                Some(Ok(bytes)) => bytes,
                Some(Err(reason)) => {
                    out.push(unusable_as(source, reason, Announced::UnknownAttestation));
                    continue;
                }
                None => {
                    out.push(unusable_as(
                        source,
                        "listed in the index but missing (404)",
                        Announced::UnknownAttestation,
                    ));
                    continue;
                }
            };
            let manifest = match Some(&bytes)
                .filter(|b| digest.matches(b))
                .and_then(|b| Document::parse(b, Reading::Manifest).ok())
            {
                Some(m) => m,
                None => {
                    out.push(unusable_as(
                        source,
                        "manifest is malformed or does not match its digest",
                        Announced::UnknownAttestation,
                    ));
                    continue;
                }
            };
            for layer in &manifest.layers {
                if out.len() >= self.limits.max_signatures {
                    break;
                }
                if layer.media_type.as_deref() != Some(IN_TOTO) {
                    continue;
                }
                out.push(match self.blob(layer, &source).await? {
                    Ok(statement) => Candidate {
                        source: source.clone(),
                        kind: CandidateKind::Unsigned {
                            statement,
                            about: about.clone(),
                        },
                    },
                    Err(reason) => {
                        unusable_as(source.clone(), reason, Announced::UnknownAttestation)
                    }
                });
            }
        }
        Ok(())
    }
}
