//! `portcullis inventory image IMAGE@DIGEST`: what the inventory holds for one digest: whether
//! an SBOM was found and where it came from (or why it could not be read), its packages, and
//! what the ledger says of the digest's pulls.

use super::{package_of, provenance, pulls_of, when, Pulls, QueryError, Scope};
use crate::db::Database;
use crate::inventory::sbom::Keyed;

/// One digest's inventory.
#[derive(Debug, Clone, serde::Serialize)]
pub struct ImageAnswer {
    pub image: String,
    pub digest: String,
    /// `found`, `none`, `unparseable`, `index`; `not_ingested` when nothing is recorded.
    pub sbom_status: String,
    pub sbom_provenance: String,
    pub sbom_signer: String,
    pub sbom_format: String,
    /// Why the SBOM could not be read.
    pub sbom_error: String,
    pub packages: Vec<ImagePackage>,
    pub pulls: Pulls,
}

#[derive(Debug, Clone, serde::Serialize)]
pub struct ImagePackage {
    pub package: String,
    pub purl: String,
    pub version: String,
    pub ecosystem: String,
    pub keyed: Keyed,
}

/// The inventory of `digest`; `image` names it when nothing is recorded.
pub async fn image(db: &Database, image: &str, digest: &str) -> Result<ImageAnswer, QueryError> {
    let row = db.sbom_of(digest).await?;
    let packages = db
        .packages_in(digest)
        .await?
        .into_iter()
        .map(|p| ImagePackage {
            keyed: package_of(&p).keyed,
            package: p.key,
            purl: p.purl,
            version: p.version,
            ecosystem: p.ecosystem,
        })
        .collect();
    let pulls = pulls_of(db, [digest.to_owned()], &Scope::default())
        .await?
        .remove(digest)
        .unwrap_or_default();
    let (image, status, provenance, signer, format, error) = match row {
        Some(r) => (r.image, r.status, r.provenance, r.signer, r.format, r.error),
        None => (
            image.to_owned(),
            "not_ingested".to_owned(),
            String::new(),
            String::new(),
            String::new(),
            String::new(),
        ),
    };
    Ok(ImageAnswer {
        image,
        digest: digest.to_owned(),
        sbom_status: status,
        sbom_provenance: provenance,
        sbom_signer: signer,
        sbom_format: format,
        sbom_error: error,
        packages,
        pulls,
    })
}

impl std::fmt::Display for ImageAnswer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(f, "{}@{}", self.image, self.digest)?;
        let tags = if self.pulls.tags.is_empty() {
            "(by digest)".to_owned()
        } else {
            self.pulls.tags.join(", ")
        };
        writeln!(
            f,
            "  pulled {} times by {} clients, first {}, last {}; tags: {tags}",
            self.pulls.pulls,
            self.pulls.clients,
            when(self.pulls.first),
            when(self.pulls.last),
        )?;
        match self.sbom_status.as_str() {
            "found" => writeln!(
                f,
                "  SBOM {}, {}, {} packages:",
                self.sbom_format,
                provenance(&self.sbom_provenance, &self.sbom_signer),
                self.packages.len()
            )?,
            "none" => writeln!(f, "  no SBOM is attached (looked for when it was pulled)")?,
            "index" => writeln!(
                f,
                "  an image index: each platform's manifest has its own SBOM (inventory image on its digest)"
            )?,
            "unparseable" => writeln!(
                f,
                "  the SBOM ({}) could not be read: {}",
                provenance(&self.sbom_provenance, &self.sbom_signer),
                self.sbom_error
            )?,
            _ => writeln!(f, "  not ingested (yet): the digest was not pulled through this proxy since ingest began, or its ingest failed")?,
        }
        for p in &self.packages {
            let id = if p.purl.is_empty() {
                &p.package
            } else {
                &p.purl
            };
            let flag = if p.keyed == Keyed::Name {
                "  [no purl: keyed by name]"
            } else {
                ""
            };
            writeln!(f, "    {id}{flag}")?;
        }
        Ok(())
    }
}
