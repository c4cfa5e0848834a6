//! One parsed view of an OCI manifest or image index ([`Document`]): its media and artifact
//! type, `subject`, config, layers, blobs and child manifests, each child with its platform and
//! annotations, and the BuildKit attestation children among them.
//!
//! There is one parser and it is lenient by default: fields it does not know are ignored, and it
//! never re-serialises anything (the bytes a client gets are the bytes the upstream sent). How
//! strict it is, is the caller's explicit choice ([`Reading`]), because callers differ today: the
//! `mediaType` of a document an upstream sent without a `Content-Type` is read from whatever
//! parses, the digests a verified manifest covers come from any well-formed descriptor list,
//! while signature documents and BuildKit indexes must follow the OCI schema. The parser is
//! bounded by its input: every caller reads the bytes bounded (`limits`), and nesting is bounded
//! by the JSON reader's recursion limit. This module does no I/O.

use std::collections::BTreeMap;

use serde::Deserialize;

use super::reference::{Digest, ParseError};

/// BuildKit's annotation marking a child of an index as an attestation manifest, and its value.
const REFERENCE_TYPE: &str = "vnd.docker.reference.type";
const ATTESTATION_MANIFEST: &str = "attestation-manifest";
/// BuildKit's annotation naming the child manifest an attestation manifest is about.
pub const REFERENCE_DIGEST: &str = "vnd.docker.reference.digest";

/// How strictly a document is read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reading {
    /// Whatever can be read: a document whose fields do not have the shapes below still yields
    /// its `mediaType`, and a descriptor whose digest does not parse is skipped.
    Lenient,
    /// The digests it references: every descriptor list must be a list of descriptors with a
    /// digest, but a digest that does not parse is skipped (it cannot name anything served).
    References,
    /// The OCI image index schema: `schemaVersion` and `manifests`, every descriptor with a
    /// `mediaType`, a valid digest and a `size`.
    Index,
    /// The OCI image manifest schema: `schemaVersion`, `config` and `layers`, every descriptor
    /// with a `mediaType`, a valid digest and a `size`.
    Manifest,
}

impl Reading {
    fn is_schema(self) -> bool {
        matches!(self, Reading::Index | Reading::Manifest)
    }
}

#[derive(Debug, thiserror::Error)]
pub enum DocumentError {
    #[error("{0}")]
    Json(#[from] serde_json::Error),
    #[error("not an OCI image {what}: `{field}` is missing")]
    Missing {
        what: &'static str,
        field: &'static str,
    },
    #[error("descriptor digest: {0}")]
    Digest(#[from] ParseError),
}

/// A manifest or an index, as far as the proxy reads one.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Document {
    pub media_type: Option<String>,
    pub artifact_type: Option<String>,
    pub subject: Option<Descriptor>,
    pub config: Option<Descriptor>,
    pub layers: Vec<Descriptor>,
    /// An index's child manifests (platform images and BuildKit attestation manifests).
    pub manifests: Vec<Descriptor>,
    /// An artifact manifest's blobs.
    pub blobs: Vec<Descriptor>,
}

/// A content descriptor: what a document says about a piece of content it references.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Descriptor {
    pub media_type: Option<String>,
    pub digest: Digest,
    pub size: Option<u64>,
    pub artifact_type: Option<String>,
    pub platform: Option<Platform>,
    pub annotations: BTreeMap<String, String>,
}

/// The platform of an index's child manifest.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct Platform {
    pub architecture: String,
    pub os: String,
    pub variant: Option<String>,
}

// === impl Document ===

impl Document {
    pub fn parse(bytes: &[u8], reading: Reading) -> Result<Document, DocumentError> {
        let raw: RawDocument = match serde_json::from_slice(bytes) {
            Ok(raw) => raw,
            Err(e) if reading == Reading::Lenient => {
                #[derive(Deserialize)]
                struct MediaTypeOnly {
                    #[serde(rename = "mediaType")]
                    media_type: String,
                }
                let m: MediaTypeOnly = serde_json::from_slice(bytes).map_err(|_| e)?;
                return Ok(Document {
                    media_type: Some(m.media_type),
                    ..Document::default()
                });
            }
            Err(e) => return Err(e.into()),
        };
        raw.into_document(reading)
    }

    /// The digests this document references, at most `max`: an index's child manifests, an
    /// image's config and layers, an artifact's blobs.
    pub fn referenced(&self, max: usize) -> Vec<Digest> {
        self.manifests
            .iter()
            .chain(&self.config)
            .chain(&self.layers)
            .chain(&self.blobs)
            .map(|d| d.digest.clone())
            .take(max)
            .collect()
    }

    /// An index's image manifests, without BuildKit's attestation manifests.
    pub fn platform_children(&self) -> impl Iterator<Item = &Descriptor> {
        self.manifests
            .iter()
            .filter(|d| !d.is_attestation_manifest())
    }

    /// An index's BuildKit attestation manifests.
    pub fn attestation_children(&self) -> impl Iterator<Item = &Descriptor> {
        self.manifests
            .iter()
            .filter(|d| d.is_attestation_manifest())
    }
}

// === impl Descriptor ===

impl Descriptor {
    pub fn annotation(&self, key: &str) -> Option<&str> {
        self.annotations.get(key).map(String::as_str)
    }

    /// BuildKit marks the attestation manifests of an index with an annotation.
    pub fn is_attestation_manifest(&self) -> bool {
        self.annotation(REFERENCE_TYPE) == Some(ATTESTATION_MANIFEST)
    }

    /// The child manifest a BuildKit attestation manifest is about, when its annotation names a
    /// valid digest.
    pub fn attestation_about(&self) -> Option<Digest> {
        self.annotation(REFERENCE_DIGEST)?.parse().ok()
    }
}

// === raw ===

/// The document as written; every field optional, so that [`Reading`] decides what is required.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawDocument {
    schema_version: Option<u32>,
    media_type: Option<String>,
    artifact_type: Option<String>,
    subject: Option<RawDescriptor>,
    config: Option<RawDescriptor>,
    layers: Option<Vec<RawDescriptor>>,
    manifests: Option<Vec<RawDescriptor>>,
    blobs: Option<Vec<RawDescriptor>>,
    #[allow(dead_code)] // read for its shape: the schema says annotations are strings
    annotations: Option<BTreeMap<String, String>>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawDescriptor {
    media_type: Option<String>,
    digest: String,
    size: Option<u64>,
    artifact_type: Option<String>,
    platform: Option<Platform>,
    annotations: Option<BTreeMap<String, String>>,
}

impl RawDocument {
    fn into_document(self, reading: Reading) -> Result<Document, DocumentError> {
        let what = match reading {
            Reading::Manifest => "manifest",
            _ => "index",
        };
        let missing = |field| DocumentError::Missing { what, field };
        if reading.is_schema() && self.schema_version.is_none() {
            return Err(missing("schemaVersion"));
        }
        match reading {
            Reading::Index if self.manifests.is_none() => return Err(missing("manifests")),
            Reading::Manifest if self.config.is_none() => return Err(missing("config")),
            Reading::Manifest if self.layers.is_none() => return Err(missing("layers")),
            _ => {}
        }
        let one = |d: Option<RawDescriptor>| -> Result<Option<Descriptor>, DocumentError> {
            Ok(match d {
                Some(d) => d.into_descriptor(reading, what)?,
                None => None,
            })
        };
        let list = |l: Option<Vec<RawDescriptor>>| -> Result<Vec<Descriptor>, DocumentError> {
            let mut out = Vec::new();
            for d in l.unwrap_or_default() {
                out.extend(d.into_descriptor(reading, what)?);
            }
            Ok(out)
        };
        Ok(Document {
            media_type: self.media_type,
            artifact_type: self.artifact_type,
            subject: one(self.subject)?,
            config: one(self.config)?,
            layers: list(self.layers)?,
            manifests: list(self.manifests)?,
            blobs: list(self.blobs)?,
        })
    }
}

impl RawDescriptor {
    /// `None` for a descriptor skipped under a lenient reading.
    fn into_descriptor(
        self,
        reading: Reading,
        what: &'static str,
    ) -> Result<Option<Descriptor>, DocumentError> {
        if reading.is_schema() {
            if self.media_type.is_none() {
                return Err(DocumentError::Missing {
                    what,
                    field: "mediaType",
                });
            }
            if self.size.is_none() {
                return Err(DocumentError::Missing {
                    what,
                    field: "size",
                });
            }
        }
        let digest = match self.digest.parse::<Digest>() {
            Ok(d) => d,
            Err(e) if reading.is_schema() => return Err(e.into()),
            Err(_) => return Ok(None),
        };
        Ok(Some(Descriptor {
            media_type: self.media_type,
            digest,
            size: self.size,
            artifact_type: self.artifact_type,
            platform: self.platform,
            annotations: self.annotations.unwrap_or_default(),
        }))
    }
}

#[cfg(test)]
mod tests;
