//! SBOM documents read into packages: SPDX 2.2/2.3 JSON ([`spdx2`]), SPDX 3.0 JSON-LD
//! ([`spdx3`]) and CycloneDX 1.4–1.7 JSON ([`cyclonedx`]). Each format is a few small serde
//! structs of the fields the inventory uses; unknown fields are ignored, fields of the wrong type
//! reject the document with serde's reason (where it is).
//!
//! A document is bounded before it is read ([`MAX_BYTES`]), its nesting by serde_json's
//! recursion limit and by [`MAX_NESTING`] component levels, its size by [`MAX_PACKAGES`]. Every
//! rejection is an [`SbomError`] whose `Display` says why, for the inventory to show as "an
//! unparseable SBOM".
//!
//! Packages are keyed by purl (the `packageurl` crate's canonical form, without version,
//! qualifiers or subpath); a package with no (valid) purl is keyed by ecosystem + name and
//! flagged [`Keyed::Name`], so an answer can say it matched by name only.

pub mod cyclonedx;
pub mod spdx2;
pub mod spdx3;

use std::collections::BTreeMap;
use std::str::FromStr;

use packageurl::PackageUrl;
use serde::Deserialize;

/// The largest SBOM read (64 MiB): larger ones are rejected, not truncated.
pub const MAX_BYTES: usize = 64 * 1024 * 1024;
/// The deepest nesting of CycloneDX components accepted.
pub const MAX_NESTING: usize = 32;
/// The most packages one SBOM may list.
pub const MAX_PACKAGES: usize = 500_000;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SbomError {
    #[error("the SBOM is {size} bytes, more than the {max} bytes accepted")]
    TooLarge { size: usize, max: usize },
    #[error("the SBOM could not be read from the registry: {0}")]
    Unreadable(String),
    #[error("the SBOM is not a JSON document of the expected shape: {0}")]
    Json(String),
    #[error("the SBOM nests components {depth} levels deep, more than the {max} accepted")]
    TooDeep { depth: usize, max: usize },
    #[error("the SBOM lists more than {max} packages")]
    TooManyPackages { max: usize },
    #[error("the document is neither SPDX (spdxVersion, @graph) nor CycloneDX (bomFormat)")]
    UnknownFormat,
    #[error(
        "{format} version {version:?} is not supported (SPDX 2.2, 2.3, 3.0; CycloneDX 1.4 to 1.7)"
    )]
    UnsupportedVersion {
        format: &'static str,
        version: String,
    },
}

/// Which format a document was.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Format {
    #[serde(rename = "spdx-2")]
    Spdx2,
    #[serde(rename = "spdx-3")]
    Spdx3,
    #[serde(rename = "cyclonedx")]
    CycloneDx,
}

impl Format {
    pub fn as_str(self) -> &'static str {
        match self {
            Format::Spdx2 => "spdx-2",
            Format::Spdx3 => "spdx-3",
            Format::CycloneDx => "cyclonedx",
        }
    }
}

/// How a package is keyed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Keyed {
    /// By its purl.
    Purl,
    /// No valid purl: by ecosystem (when known) and name only.
    Name,
}

/// One package an SBOM lists.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Package {
    /// `pkg:type/namespace/name` (canonical), or `name:<ecosystem>/<name>` when keyed by name.
    pub key: String,
    pub keyed: Keyed,
    /// The purl type (`npm`, `maven`, `deb`, ...), when known.
    pub ecosystem: Option<String>,
    pub name: String,
    pub version: Option<String>,
    /// The full canonical purl, qualifiers included.
    pub purl: Option<String>,
    /// The purl's `distro` qualifier (`debian-12`, `alpine-3.19`, ...).
    pub distro: Option<String>,
    /// The purl's `upstream` qualifier: the source package (name, without its version).
    pub upstream: Option<String>,
    pub cpe: Option<String>,
}

/// What a document held.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sbom {
    pub format: Format,
    /// The format's version as written (`SPDX-2.3`, `1.6`, ...).
    pub spec_version: String,
    /// Distinct packages, sorted.
    pub packages: Vec<Package>,
}

/// The fields of every format at the top of a document, read in one pass.
#[derive(Deserialize)]
struct Top {
    #[serde(rename = "spdxVersion")]
    spdx_version: Option<String>,
    #[serde(default)]
    packages: Vec<spdx2::Package>,
    #[serde(rename = "bomFormat")]
    bom_format: Option<String>,
    #[serde(rename = "specVersion")]
    spec_version: Option<String>,
    #[serde(default)]
    components: Vec<cyclonedx::Component>,
    metadata: Option<cyclonedx::Metadata>,
    #[serde(rename = "@graph")]
    graph: Option<Vec<spdx3::Element>>,
}

/// Reads an SBOM document (the JSON of an SPDX or CycloneDX file, or an attestation's predicate).
pub fn parse(bytes: &[u8]) -> Result<Sbom, SbomError> {
    if bytes.len() > MAX_BYTES {
        return Err(SbomError::TooLarge {
            size: bytes.len(),
            max: MAX_BYTES,
        });
    }
    let top: Top = serde_json::from_slice(bytes).map_err(|e| SbomError::Json(e.to_string()))?;
    read(top)
}

/// Reads an SBOM already parsed as JSON (an attestation's predicate, whose envelope was read
/// bounded): the same checks as [`parse`] but the size.
pub fn parse_value(value: serde_json::Value) -> Result<Sbom, SbomError> {
    // Some attesters wrap the document as a JSON string.
    let top: Top = match value {
        serde_json::Value::String(s) => return parse(s.as_bytes()),
        v => serde_json::from_value(v).map_err(|e| SbomError::Json(e.to_string()))?,
    };
    read(top)
}

fn read(top: Top) -> Result<Sbom, SbomError> {
    let mut out = Collector::default();
    let (format, spec_version) = if let Some(v) = top.spdx_version {
        if !matches!(v.as_str(), "SPDX-2.2" | "SPDX-2.3") {
            return Err(SbomError::UnsupportedVersion {
                format: "SPDX",
                version: v,
            });
        }
        spdx2::collect(top.packages, &mut out)?;
        (Format::Spdx2, v)
    } else if let Some(graph) = top.graph {
        spdx3::collect(graph, &mut out)?;
        (Format::Spdx3, "3.0".to_owned())
    } else if top.bom_format.as_deref() == Some("CycloneDX") {
        let v = top.spec_version.unwrap_or_default();
        if !matches!(v.as_str(), "1.4" | "1.5" | "1.6" | "1.7") {
            return Err(SbomError::UnsupportedVersion {
                format: "CycloneDX",
                version: v,
            });
        }
        cyclonedx::collect(top.metadata, top.components, &mut out)?;
        (Format::CycloneDx, v)
    } else {
        return Err(SbomError::UnknownFormat);
    };
    Ok(Sbom {
        format,
        spec_version,
        packages: out.packages.into_values().collect(),
    })
}

/// Packages as they are found, deduplicated by (key, version, purl), bounded.
#[derive(Default)]
pub(crate) struct Collector {
    packages: BTreeMap<(String, Option<String>, Option<String>), Package>,
}

impl Collector {
    /// Adds a package from its name, version and (possibly absent or invalid) purl.
    pub(crate) fn add(
        &mut self,
        name: Option<&str>,
        version: Option<&str>,
        purl: Option<&str>,
        cpe: Option<&str>,
    ) -> Result<(), SbomError> {
        let Some(package) = package(name, version, purl, cpe) else {
            return Ok(());
        };
        let id = (
            package.key.clone(),
            package.version.clone(),
            package.purl.clone(),
        );
        if let Some(seen) = self.packages.get_mut(&id) {
            // The same package found twice (syft lists one per location): one entry, the CPE
            // of whichever names one.
            if seen.cpe.is_none() {
                seen.cpe = package.cpe;
            }
            return Ok(());
        }
        if self.packages.len() >= MAX_PACKAGES {
            return Err(SbomError::TooManyPackages { max: MAX_PACKAGES });
        }
        self.packages.insert(id, package);
        Ok(())
    }
}

fn nonempty(s: Option<&str>) -> Option<&str> {
    s.map(str::trim)
        .filter(|s| !s.is_empty() && *s != "NOASSERTION" && *s != "NONE")
}

/// The key of a purl (`pkg:type/namespace/name`, canonical), for look-ups.
pub fn key_of(purl: &str) -> Option<String> {
    package(None, None, Some(purl), None)
        .filter(|p| p.keyed == Keyed::Purl)
        .map(|p| p.key)
}

/// A package from what a document says of it; `None` when it names nothing.
fn package(
    name: Option<&str>,
    version: Option<&str>,
    purl: Option<&str>,
    cpe: Option<&str>,
) -> Option<Package> {
    let cpe = nonempty(cpe).map(str::to_owned);
    if let Some(p) = nonempty(purl).and_then(|p| PackageUrl::from_str(p).ok()) {
        let mut key = PackageUrl::new(p.ty().to_owned(), p.name().to_owned()).ok()?;
        if let Some(ns) = p.namespace() {
            key.with_namespace(ns.to_owned()).ok()?;
        }
        let qualifier = |k: &str| {
            p.qualifiers()
                .get(k)
                .map(|v| v.to_string())
                .filter(|v| !v.is_empty())
        };
        let upstream = qualifier("upstream").map(|u| match u.split_once('@') {
            Some((name, _version)) => name.to_owned(),
            None => u,
        });
        return Some(Package {
            key: key.to_string(),
            keyed: Keyed::Purl,
            ecosystem: Some(p.ty().to_owned()),
            name: p.name().to_owned(),
            version: p
                .version()
                .map(str::to_owned)
                .or_else(|| nonempty(version).map(str::to_owned)),
            purl: Some(p.to_string()),
            distro: qualifier("distro"),
            upstream,
            cpe,
        });
    }
    let name = nonempty(name)?;
    Some(Package {
        key: format!("name:{name}"),
        keyed: Keyed::Name,
        ecosystem: None,
        name: name.to_owned(),
        version: nonempty(version).map(str::to_owned),
        purl: None,
        distro: None,
        upstream: None,
        cpe,
    })
}

#[cfg(test)]
mod tests;
