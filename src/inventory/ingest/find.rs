//! One digest's SBOMs, found and ranked: signed attestations whose predicate type is SPDX's or
//! CycloneDX's (cosign v3 bundle referrers and legacy `.att` layers, each verified under the
//! rule's attestors), BuildKit's SBOM statements inside an index (one per child, trusted only
//! when the index itself was verified), and SBOMs attached as unsigned referrers (SPDX,
//! CycloneDX, Harbor's accessory). Discovery is `signature::discovery`'s and signature checks
//! `signature::verify`'s; what this module owns is which documents count and in which order.
//!
//! Per digest, the best readable document is recorded: signed and verified, then BuildKit's
//! under a verified index, then an unsigned referrer, then BuildKit's under an index that was
//! not verified, then a signed one whose signature no attestor accepted (its statement must
//! still name the digest). When none is readable the digest is recorded as having an
//! unreadable SBOM, with the reason of the best one. Every answer shows where its SBOM came
//! from ([`Provenance`]).

use std::collections::BTreeMap;

use bytes::Bytes;

use super::{bare_row, Ingested, Job};
use crate::config::Limits;
use crate::db::inventory::SbomRow;
use crate::db::{Database, DbError};
use crate::inventory::query::record_sbom;
use crate::inventory::sbom::{self, Sbom, SbomError};
use crate::oci::{media, Digest, Document, ImageName, Reading};
use crate::policy::Signing;
use crate::signature::discovery::{self, Attached, BuildkitIndex, Memory, Wants};
use crate::signature::verify::{check_attestations, names_digest, unsigned_attestations};
use crate::signature::{Candidate, CandidateKind, LookupError};

/// The largest signature document read while looking for SBOMs: an SBOM of
/// [`sbom::MAX_BYTES`], base64-encoded in a DSSE envelope, with room for the envelope.
pub const MAX_DOCUMENT_BYTES: usize = sbom::MAX_BYTES / 3 * 4 + 1024 * 1024;

/// The predicate types of SBOM attestations (a prefix: SPDX and CycloneDX add versions).
const SBOM_PREDICATES: [&str; 3] = [
    "https://spdx.dev/Document",
    "https://cyclonedx.org/bom",
    "https://cyclonedx.org/schema",
];

pub fn is_sbom_predicate(predicate_type: &str) -> bool {
    SBOM_PREDICATES
        .iter()
        .any(|p| predicate_type.starts_with(p))
}

#[derive(Debug)]
pub enum FindError {
    Lookup(LookupError),
    Internal(String),
}

impl From<LookupError> for FindError {
    fn from(e: LookupError) -> Self {
        FindError::Lookup(e)
    }
}

/// What a digest's row says (the `status` column).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    Found,
    None,
    Unparseable,
    /// An image index: its children have rows of their own.
    Index,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Found => "found",
            Status::None => "none",
            Status::Unparseable => "unparseable",
            Status::Index => "index",
        }
    }
}

/// Where an SBOM came from (the `provenance` column).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Provenance {
    /// A signed attestation that verified under an attestor of the rule.
    Signed,
    /// A BuildKit attestation inside an index that was verified.
    Buildkit,
    /// An unsigned referrer, or a BuildKit attestation inside an index that was not verified.
    Unsigned,
    /// A signed attestation whose signature no attestor of the rule accepted.
    Unverified,
}

impl Provenance {
    pub fn as_str(self) -> &'static str {
        match self {
            Provenance::Signed => "signed",
            Provenance::Buildkit => "buildkit",
            Provenance::Unsigned => "unsigned",
            Provenance::Unverified => "unverified",
        }
    }
}

/// One SBOM document found, not yet read.
struct Found {
    about: Digest,
    /// Lower is better (see the module's order).
    rank: u8,
    provenance: Provenance,
    /// The signer, or where an unsigned one was found, or why a signature was not accepted.
    detail: String,
    body: Body,
}

enum Body {
    Value(serde_json::Value),
    Bytes(Bytes),
    Broken(String),
}

/// What to record for one digest.
pub struct Recording {
    pub digest: Digest,
    choice: Choice,
}

enum Choice {
    Bare(Status),
    Read {
        provenance: Provenance,
        detail: String,
        parsed: Result<Sbom, SbomError>,
    },
}

impl Recording {
    pub async fn write(self, db: &Database, image: &ImageName) -> Result<Ingested, DbError> {
        match self.choice {
            Choice::Bare(status) => {
                db.put_sbom(bare_row(&self.digest, image, status), Vec::new())
                    .await?;
                Ok(match status {
                    Status::Index => Ingested::Index,
                    _ => Ingested::None,
                })
            }
            Choice::Read {
                provenance,
                detail,
                parsed,
            } => {
                let kind = if parsed.is_ok() {
                    Ingested::Found
                } else {
                    Ingested::Unparseable
                };
                let row = SbomRow {
                    provenance: provenance.as_str().to_owned(),
                    signer: detail,
                    ..bare_row(&self.digest, image, Status::Found)
                };
                record_sbom(db, row, parsed).await?;
                Ok(kind)
            }
        }
    }
}

/// The SBOMs of `job.digest` (and, for an index, of its children from BuildKit's
/// attestations), read and ranked: the job's own digest always has a recording.
pub async fn find(job: &Job, memory: &Memory) -> Result<Vec<Recording>, FindError> {
    let limits = Limits {
        max_signature_bytes: MAX_DOCUMENT_BYTES.max(job.limits.max_signature_bytes),
        ..job.limits.clone()
    };
    let repo = &job.image.repo;
    // An index's BuildKit attestations are read from the index; a digest of unknown media
    // type (the backfill's) is fetched to see whether it is one.
    let index = match job.media_type.as_deref() {
        Some(t) if !media::is_index(t) => None,
        _ => discovery::manifest_by_digest(&job.upstream, repo, &job.digest, &job.limits, memory)
            .await?
            .and_then(|b| Document::parse(&b, Reading::Index).ok())
            .filter(|index| index.platform_children().next().is_some()),
    };
    let wants = Wants {
        attestations: true,
        buildkit: index.as_ref().map(|index| BuildkitIndex {
            upstream: &job.upstream,
            repo,
            index,
        }),
    };
    let (sig_upstream, sig_repo) = &job.signatures;
    let (candidates, attached) = tokio::try_join!(
        Box::pin(discovery::discover(
            sig_upstream,
            sig_repo,
            &job.digest,
            &limits,
            memory,
            wants,
        )),
        Box::pin(discovery::attached_sboms(
            &job.upstream,
            repo,
            &job.digest,
            &limits,
            memory
        )),
    )?;
    let (root, attestors, digest) = (job.root.clone(), job.attestors.clone(), job.digest.clone());
    let (verified, is_index) = (job.verified, index.is_some());
    // Signature checks and reading SBOMs of megabytes are CPU work: off the async workers.
    tokio::task::spawn_blocking(move || {
        let mut found = signed(&root, &attestors, &digest, &candidates);
        found.extend(buildkit(&candidates, verified));
        found.extend(referrers(&digest, attached));
        choose(&digest, is_index, found)
    })
    .await
    .map_err(|e| FindError::Internal(e.to_string()))
}

/// Signed SBOM attestations, verified under `attestors`; unreadable ones announced as SBOMs.
fn signed(
    root: &crate::signature::TrustRoot,
    attestors: &[crate::policy::Attestor],
    digest: &Digest,
    candidates: &[Candidate],
) -> Vec<Found> {
    let mut out = Vec::new();
    for c in candidates {
        if let CandidateKind::Unusable { reason, announced } = &c.kind {
            if announced.predicate_type().is_some_and(is_sbom_predicate) {
                out.push(Found {
                    about: digest.clone(),
                    rank: 4,
                    provenance: Provenance::Unverified,
                    detail: c.source.clone(),
                    body: Body::Broken(format!("{}: {reason}", c.source)),
                });
            }
        }
    }
    for a in check_attestations(root, attestors, digest, candidates) {
        if !a.predicate_type.as_deref().is_some_and(is_sbom_predicate) {
            continue;
        }
        let (rank, provenance, detail) = match a.signing {
            Signing::Verified { signer } => (0, Provenance::Signed, signer),
            // Not accepted, but about this digest: better than nothing, and said so.
            Signing::Rejected { reason } if names_digest(&a.subject, digest) => {
                (4, Provenance::Unverified, format!("{}: {reason}", a.source))
            }
            Signing::Rejected { .. } | Signing::Unsigned { .. } => continue,
        };
        out.push(Found {
            about: a.about,
            rank,
            provenance,
            detail,
            body: Body::Value(a.predicate),
        });
    }
    out
}

/// BuildKit's SBOM statements inside an index, each about the child it names.
fn buildkit(candidates: &[Candidate], index_verified: bool) -> Vec<Found> {
    unsigned_attestations(candidates)
        .into_iter()
        .filter(|a| a.predicate_type.as_deref().is_some_and(is_sbom_predicate))
        .filter(|a| matches!(a.signing, Signing::Unsigned { problem: None }))
        .map(|a| {
            let (rank, provenance, detail) = if index_verified {
                (1, Provenance::Buildkit, a.source)
            } else {
                (
                    3,
                    Provenance::Unsigned,
                    format!("{}, in an index that was not verified", a.source),
                )
            };
            Found {
                about: a.about,
                rank,
                provenance,
                detail,
                body: Body::Value(a.predicate),
            }
        })
        .collect()
}

/// SBOMs attached as unsigned referrers: every layer of each.
fn referrers(digest: &Digest, attached: Vec<Attached>) -> Vec<Found> {
    let mut out = Vec::new();
    for a in attached {
        let detail = format!("{} ({})", a.source, a.artifact_type);
        for layer in a.layers {
            out.push(Found {
                about: digest.clone(),
                rank: 2,
                provenance: Provenance::Unsigned,
                detail: detail.clone(),
                body: match layer {
                    Ok(bytes) => Body::Bytes(bytes),
                    Err(reason) => Body::Broken(format!("{}: {reason}", a.source)),
                },
            });
        }
    }
    out
}

/// Per digest, the best readable document (or the best one's reason when none is readable);
/// the job's own digest is recorded as having none (or as an index) when nothing was found.
fn choose(digest: &Digest, is_index: bool, found: Vec<Found>) -> Vec<Recording> {
    let mut by_digest: BTreeMap<String, (Digest, Vec<Found>)> = BTreeMap::new();
    for f in found {
        by_digest
            .entry(f.about.to_string())
            .or_insert_with(|| (f.about.clone(), Vec::new()))
            .1
            .push(f);
    }
    let mut out = Vec::new();
    if !by_digest.contains_key(&digest.to_string()) {
        out.push(Recording {
            digest: digest.clone(),
            choice: Choice::Bare(if is_index {
                Status::Index
            } else {
                Status::None
            }),
        });
    }
    for (about, mut docs) in by_digest.into_values() {
        docs.sort_by_key(|d| d.rank);
        let mut failed: Option<(Provenance, String, SbomError)> = None;
        let mut chosen = None;
        for d in docs {
            let parsed = match d.body {
                Body::Value(v) => sbom::parse_value(v),
                Body::Bytes(b) => sbom::parse(&b),
                Body::Broken(reason) => Err(SbomError::Unreadable(reason)),
            };
            match parsed {
                Ok(s) => {
                    chosen = Some((d.provenance, d.detail, Ok(s)));
                    break;
                }
                Err(e) if failed.is_none() => failed = Some((d.provenance, d.detail, e)),
                Err(_) => {}
            }
        }
        let (provenance, detail, parsed) = match chosen.or(failed.map(|(p, d, e)| (p, d, Err(e)))) {
            Some(c) => c,
            None => continue,
        };
        out.push(Recording {
            digest: about,
            choice: Choice::Read {
                provenance,
                detail,
                parsed,
            },
        });
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const SPDX: &str = r#"{"spdxVersion":"SPDX-2.3","packages":[{"name":"musl","versionInfo":"1.2.5-r0",
        "externalRefs":[{"referenceCategory":"PACKAGE-MANAGER","referenceType":"purl",
        "referenceLocator":"pkg:apk/alpine/musl@1.2.5-r0"}]}]}"#;

    fn found(about: char, rank: u8, provenance: Provenance, body: Body) -> Found {
        Found {
            about: Digest::repeated(about),
            rank,
            provenance,
            detail: format!("rank {rank}"),
            body,
        }
    }

    fn read(r: &Recording) -> (Provenance, &str, Result<usize, String>) {
        match &r.choice {
            Choice::Read {
                provenance,
                detail,
                parsed,
            } => (
                *provenance,
                detail,
                parsed
                    .as_ref()
                    .map(|s| s.packages.len())
                    .map_err(|e| e.to_string()),
            ),
            Choice::Bare(s) => panic!("bare {s:?}"),
        }
    }

    #[test]
    fn the_best_readable_document_wins() {
        let out = choose(
            &Digest::repeated('a'),
            false,
            vec![
                found('a', 2, Provenance::Unsigned, Body::Bytes(SPDX.into())),
                found('a', 0, Provenance::Signed, Body::Bytes("{}".into())),
                found('a', 4, Provenance::Unverified, Body::Broken("gone".into())),
            ],
        );
        assert_eq!(out.len(), 1);
        // The signed one does not read: the unsigned referrer is recorded, and said so.
        assert_eq!(read(&out[0]), (Provenance::Unsigned, "rank 2", Ok(1)));
    }

    #[test]
    fn nothing_readable_records_the_best_reason() {
        let out = choose(
            &Digest::repeated('a'),
            false,
            vec![
                found(
                    'a',
                    4,
                    Provenance::Unverified,
                    Body::Broken("too large".into()),
                ),
                found('a', 0, Provenance::Signed, Body::Bytes("[1]".into())),
            ],
        );
        let (p, _, parsed) = read(&out[0]);
        assert_eq!(p, Provenance::Signed);
        assert!(parsed.unwrap_err().contains("not a JSON document"));
    }

    #[test]
    fn an_index_records_its_children_and_itself() {
        let value: serde_json::Value = serde_json::from_str(SPDX).unwrap();
        let out = choose(
            &Digest::repeated('e'),
            true,
            vec![found('c', 1, Provenance::Buildkit, Body::Value(value))],
        );
        assert_eq!(out.len(), 2);
        assert_eq!(out[0].digest, Digest::repeated('e'));
        assert!(matches!(out[0].choice, Choice::Bare(Status::Index)));
        assert_eq!(out[1].digest, Digest::repeated('c'));
        assert_eq!(read(&out[1]).0, Provenance::Buildkit);
        let none = choose(&Digest::repeated('a'), false, Vec::new());
        assert!(matches!(none[0].choice, Choice::Bare(Status::None)));
    }

    #[test]
    fn sbom_predicates_are_spdx_and_cyclonedx() {
        assert!(is_sbom_predicate("https://spdx.dev/Document"));
        assert!(is_sbom_predicate("https://spdx.dev/Document/v2.3"));
        assert!(is_sbom_predicate("https://cyclonedx.org/bom/v1.6"));
        assert!(is_sbom_predicate("https://cyclonedx.org/schema"));
        assert!(!is_sbom_predicate("https://slsa.dev/provenance/v1"));
    }
}
