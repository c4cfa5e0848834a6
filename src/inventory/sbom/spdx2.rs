//! SPDX 2.2 / 2.3 JSON: `packages[]` with `name`, `versionInfo` and `externalRefs`, where the
//! purl is a `purl` reference of category `PACKAGE-MANAGER` (2.3) or `PACKAGE_MANAGER` (2.2's
//! spelling, still written by some tools) and the CPE a `cpe23Type` (or `cpe22Type`) reference.

use serde::Deserialize;

use super::{Collector, SbomError};

#[derive(Deserialize)]
pub(super) struct Package {
    name: Option<String>,
    #[serde(rename = "versionInfo")]
    version_info: Option<String>,
    #[serde(rename = "externalRefs", default)]
    external_refs: Vec<ExternalRef>,
}

#[derive(Deserialize)]
struct ExternalRef {
    #[serde(rename = "referenceCategory", default)]
    category: String,
    #[serde(rename = "referenceType", default)]
    kind: String,
    #[serde(rename = "referenceLocator", default)]
    locator: String,
}

pub(super) fn collect(packages: Vec<Package>, out: &mut Collector) -> Result<(), SbomError> {
    for p in packages {
        let purl = p
            .external_refs
            .iter()
            .find(|r| {
                matches!(r.category.as_str(), "PACKAGE-MANAGER" | "PACKAGE_MANAGER")
                    && r.kind == "purl"
            })
            .map(|r| r.locator.as_str());
        let cpe = p
            .external_refs
            .iter()
            .find(|r| r.kind == "cpe23Type")
            .or_else(|| p.external_refs.iter().find(|r| r.kind == "cpe22Type"))
            .map(|r| r.locator.as_str());
        out.add(p.name.as_deref(), p.version_info.as_deref(), purl, cpe)?;
    }
    Ok(())
}
