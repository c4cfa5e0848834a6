//! The inventory (DESIGN.md §3 `portcullis inventory`, `portcullis advisories import`): what
//! packages the images that were really pulled contain, and which of them an advisory affects.
//!
//! - [`sbom`]: SPDX 2.2/2.3 JSON, SPDX 3.0 JSON-LD and CycloneDX 1.4–1.7 JSON read into one list
//!   of packages keyed by purl, with size and depth bounds.
//! - [`versions`]: version ordering and range matching per ecosystem (SemVer, Maven, PEP 440,
//!   Debian, RPM, Alpine, RubyGems, NuGet), the generic fallback always flagged.
//! - [`osv`]: OSV advisories read and matched against a package version.
//! - [`advisories`]: `portcullis advisories import`: OSV files, directories and zip archives
//!   stored through [`crate::db`].
//! - [`ingest`]: the SBOMs of every digest served, found (through `signature::discovery`) and
//!   recorded off the request path; [`query`]: the answers.
//!
//! This module owns the meaning of SBOMs, versions and advisories; it reaches upstreams only
//! through `signature::discovery`, and the database only through [`crate::db`]'s plain rows.

pub mod advisories;
pub mod ingest;
pub mod osv;
pub mod query;
pub mod sbom;
pub mod versions;
