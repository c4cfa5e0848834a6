//! Documents attached to a digest as unsigned referrers (an SBOM pushed with `oras attach`, a
//! Harbor SBOM accessory): listed by the same referrers API or tag-schema answer as the bundle
//! referrers ([`super::referrers`], so a kept answer serves both), then each referrer's manifest
//! and its layers, bounded and checked against their digests. Nothing here is a signature: the
//! inventory takes these as unsigned and says so.

use bytes::Bytes;

use super::{Discovery, Memory};
use crate::config::Limits;
use crate::oci::{media, Descriptor, Digest, Document, Reading, RepoName};
use crate::signature::LookupError;
use crate::upstream::Upstream;

/// The most layers read of one attached document's manifest.
const MAX_LAYERS: usize = 4;

/// One referrer's document: where it was found, its artifact type, and its layers (each the
/// bytes, or why it could not be read).
#[derive(Debug, Clone)]
pub struct Attached {
    pub source: String,
    pub artifact_type: String,
    pub layers: Vec<Result<Bytes, String>>,
}

/// The referrers of `digest` whose artifact type is an SBOM's ([`media::is_sbom_artifact`]), at
/// most `limits.max_signatures` of them, their blobs bounded by `limits.max_signature_bytes`.
/// A referrer that cannot be read is listed with its reason; a listing that fails is a fault.
pub async fn attached_sboms(
    upstream: &Upstream,
    repo: &RepoName,
    digest: &Digest,
    limits: &Limits,
    memory: &Memory,
) -> Result<Vec<Attached>, LookupError> {
    let d = Discovery {
        upstream,
        repo,
        limits,
        memory,
    };
    let mut out = Vec::new();
    for referrer in d.referrers(digest, is_sbom).await? {
        if out.len() >= limits.max_signatures {
            break;
        }
        out.push(d.attached(&referrer).await?);
    }
    Ok(out)
}

fn is_sbom(d: &Descriptor) -> bool {
    d.artifact_type
        .as_deref()
        .is_some_and(media::is_sbom_artifact)
}

impl Discovery<'_> {
    async fn attached(&self, referrer: &Descriptor) -> Result<Attached, LookupError> {
        let digest = &referrer.digest;
        let source = format!("referrer {digest}");
        let mut out = Attached {
            source: source.clone(),
            artifact_type: referrer.artifact_type.clone().unwrap_or_default(),
            layers: Vec::new(),
        };
        let path = format!("/v2/{}/manifests/{digest}", self.repo);
        let bytes = match self.signature_manifest(path, &source).await? {
            Some(Ok(bytes)) => bytes,
            Some(Err(reason)) => {
                out.layers.push(Err(reason));
                return Ok(out);
            }
            None => {
                out.layers.push(Err("listed but missing (404)".to_owned()));
                return Ok(out);
            }
        };
        let manifest = match Some(&bytes)
            .filter(|b| digest.matches(b))
            .map(|b| Document::parse(b, Reading::Manifest))
        {
            Some(Ok(m)) => m,
            Some(Err(e)) => {
                out.layers.push(Err(format!("manifest is malformed: {e}")));
                return Ok(out);
            }
            None => {
                out.layers
                    .push(Err("manifest does not match its digest".to_owned()));
                return Ok(out);
            }
        };
        // An OCI 1.1 artifact manifest lists its files as `layers` (`oras attach`); the older
        // artifact manifest as `blobs`.
        for layer in manifest
            .layers
            .iter()
            .chain(&manifest.blobs)
            .take(MAX_LAYERS)
        {
            out.layers.push(self.blob(layer, &source).await?);
        }
        if out.layers.is_empty() {
            out.layers
                .push(Err("the manifest lists no layer".to_owned()));
        }
        Ok(out)
    }
}
