//! SPDX 3.0 JSON-LD: the `@graph` elements of type `software_Package` with `name`,
//! `software_packageVersion`, and the purl as `software_packageUrl` or as an
//! `externalIdentifier` of type `packageUrl` (a `cpe23` identifier is the CPE). Elements of
//! every other type are skipped.

use serde::Deserialize;

use super::{Collector, SbomError};

#[derive(Deserialize)]
pub(super) struct Element {
    #[serde(rename = "type", alias = "@type")]
    kind: Option<String>,
    name: Option<String>,
    #[serde(rename = "software_packageVersion")]
    version: Option<String>,
    #[serde(rename = "software_packageUrl")]
    package_url: Option<String>,
    #[serde(rename = "externalIdentifier", default)]
    external_identifier: Vec<ExternalIdentifier>,
}

#[derive(Deserialize)]
struct ExternalIdentifier {
    #[serde(rename = "externalIdentifierType", default)]
    kind: String,
    #[serde(default)]
    identifier: String,
}

pub(super) fn collect(graph: Vec<Element>, out: &mut Collector) -> Result<(), SbomError> {
    for e in graph {
        if !matches!(e.kind.as_deref(), Some("software_Package" | "Package")) {
            continue;
        }
        let ident = |kind: &str| {
            e.external_identifier
                .iter()
                .find(|i| i.kind == kind)
                .map(|i| i.identifier.as_str())
        };
        let purl = e.package_url.as_deref().or_else(|| ident("packageUrl"));
        let cpe = ident("cpe23").or_else(|| ident("cpe22"));
        out.add(e.name.as_deref(), e.version.as_deref(), purl, cpe)?;
    }
    Ok(())
}
