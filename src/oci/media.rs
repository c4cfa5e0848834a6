//! Media types and artifact types, each spelled once: the manifest and index types of OCI and
//! Docker, the layer types of cosign, Sigstore and in-toto documents, and the `Accept` lists
//! built from them. Nothing here parses a document (that is [`super::document`]).

/// An OCI image index.
pub const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
/// An OCI image manifest.
pub const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
/// A Docker manifest list (the Docker form of an index).
pub const DOCKER_MANIFEST_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";
/// A Docker image manifest, schema 2.
pub const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";

/// Every manifest type a pull can handle: sent upstream when a client names none, and for
/// manifests the proxy reads itself.
pub const ACCEPT_ANY_MANIFEST: &str = "application/vnd.oci.image.index.v1+json, \
application/vnd.oci.image.manifest.v1+json, \
application/vnd.docker.distribution.manifest.list.v2+json, \
application/vnd.docker.distribution.manifest.v2+json";
/// Image manifests only (no index): what a signature or attestation manifest is.
pub const ACCEPT_IMAGE_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json, \
application/vnd.docker.distribution.manifest.v2+json";

/// The artifact type (and layer type) of a Sigstore bundle (cosign v3).
pub const SIGSTORE_BUNDLE: &str = "application/vnd.dev.sigstore.bundle.v0.3+json";
/// The layer type of a legacy cosign signature (`.sig` tag scheme).
pub const COSIGN_SIMPLE_SIGNING: &str = "application/vnd.dev.cosign.simplesigning.v1+json";
/// The layer type of a legacy cosign attestation (`.att` tag scheme).
pub const DSSE_ENVELOPE: &str = "application/vnd.dsse.envelope.v1+json";
/// The layer type of a BuildKit attestation manifest's (unsigned) in-toto statement.
pub const IN_TOTO: &str = "application/vnd.in-toto+json";

/// The artifact types of SBOMs attached as (unsigned) referrers: SPDX and CycloneDX JSON, and
/// Harbor's SBOM accessory.
pub const SBOM_ARTIFACT_TYPES: [&str; 3] = [
    "application/spdx+json",
    "application/vnd.cyclonedx+json",
    "application/vnd.goharbor.harbor.sbom.v1",
];

/// Whether an artifact type names an SBOM (parameters ignored: `application/vnd.cyclonedx+json;
/// version=1.6` is one).
pub fn is_sbom_artifact(artifact_type: &str) -> bool {
    let essence = essence(artifact_type);
    SBOM_ARTIFACT_TYPES
        .iter()
        .any(|t| essence.eq_ignore_ascii_case(t))
}

/// An image index or Docker manifest list, by media type (parameters ignored).
pub fn is_index(media_type: &str) -> bool {
    let essence = essence(media_type);
    essence == OCI_INDEX || essence == DOCKER_MANIFEST_LIST
}

/// A media type without its parameters (`type/subtype`, trimmed).
fn essence(media_type: &str) -> &str {
    media_type.split(';').next().unwrap_or("").trim()
}

#[cfg(test)]
mod tests {
    #[test]
    fn sbom_artifact_types_ignore_parameters() {
        assert!(super::is_sbom_artifact("application/spdx+json"));
        assert!(super::is_sbom_artifact(
            "application/vnd.cyclonedx+json; version=1.6"
        ));
        assert!(super::is_sbom_artifact(
            "application/vnd.goharbor.harbor.sbom.v1"
        ));
        assert!(!super::is_sbom_artifact(super::SIGSTORE_BUNDLE));
        assert!(!super::is_sbom_artifact("application/spdx+jsonx"));
    }

    use super::*;

    #[test]
    fn index_types_ignore_parameters() {
        assert!(is_index(OCI_INDEX));
        assert!(is_index(&format!("{DOCKER_MANIFEST_LIST}; charset=utf-8")));
        assert!(!is_index(OCI_MANIFEST));
        assert!(!is_index(""));
    }
}
