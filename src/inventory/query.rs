//! The inventory's answers (`portcullis inventory query|affected`): the images whose SBOMs list
//! a package (in a range, or affected by an advisory), each with its digest, tags, the matched
//! version and range, what the ledger says of its pulls and where its SBOM came from, and what
//! the answer could not see: digests with no SBOM or an unreadable one, and versions that could
//! not be compared (or only by the generic fallback, flagged on the entry).

use std::collections::HashMap;

pub mod image;

use super::osv::{self, Advisory, Verdict};
use super::sbom::{self, Keyed, Package};
use super::versions::{Range, Scheme};
use crate::db::inventory::{PackageLookup, PackageRow, PullsWithin, SbomRow, StoredPackage};
use crate::db::{Database, DbError};
use crate::policy::Pattern;

#[derive(Debug, thiserror::Error)]
pub enum QueryError {
    #[error("{0:?} is not a package URL")]
    Purl(String),
    #[error("inventory database: {0}")]
    Db(#[from] DbError),
    #[error("no imported advisory is named {0} (portcullis advisories import)")]
    NoAdvisory(String),
    #[error("stored advisory {id}: {error}")]
    StoredAdvisory { id: String, error: osv::OsvError },
}

/// The imported advisories named `name` (their id or an alias such as a CVE id), read back.
pub async fn named_advisories(db: &Database, name: &str) -> Result<Vec<Advisory>, QueryError> {
    let found = db.advisories_named(name).await?;
    if found.is_empty() {
        return Err(QueryError::NoAdvisory(name.to_owned()));
    }
    found
        .into_iter()
        .map(|(id, doc)| {
            Advisory::parse(doc.as_bytes())
                .map_err(|error| QueryError::StoredAdvisory { id, error })
        })
        .collect()
}

/// One image digest that contains the package asked about.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Entry {
    pub image: String,
    pub digest: String,
    pub tags: Vec<String>,
    pub package: String,
    pub purl: String,
    pub version: String,
    /// The range that matched (the one asked for, or the advisory's), when there was one.
    pub range: Option<String>,
    /// The advisory that matched, for `affected`.
    pub advisory: Option<String>,
    pub scheme: Scheme,
    /// False when compared by the generic fallback or keyed by name only: check by hand.
    pub exact: bool,
    pub keyed: Keyed,
    pub first_pulled: Option<i64>,
    pub last_pulled: Option<i64>,
    pub pulls: i64,
    pub clients: i64,
    /// `signed`, `buildkit`, `unsigned` or `unverified` (signed, but no attestor accepted it).
    pub sbom_provenance: String,
    /// The signer of a signed SBOM; where an unsigned one was found; why a signature was not
    /// accepted.
    pub sbom_signer: String,
}

/// What an answer could not see.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct Unseen {
    /// Digests recorded with no SBOM.
    pub no_sbom: i64,
    /// Digests whose SBOM could not be read.
    pub unparseable_sbom: i64,
    /// Matching packages whose version could not be compared.
    pub uncompared: Vec<Uncompared>,
}

#[derive(Debug, Clone, serde::Serialize)]
pub struct Uncompared {
    pub image: String,
    pub digest: String,
    pub version: String,
    pub reason: String,
}

#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct Answer {
    pub entries: Vec<Entry>,
    pub unseen: Unseen,
    /// Advisories asked about that are withdrawn (they match nothing).
    pub withdrawn: Vec<String>,
}

/// Which pulls an answer counts: since (ms; 0: all), under a rule, from an upstream; and which
/// images it lists (a glob over the canonical name, e.g. `docker.io/company/**`). With a time,
/// rule or upstream given, a digest with no such pull is left out.
#[derive(Debug, Clone, Default)]
pub struct Scope {
    pub since: i64,
    pub rule: Option<String>,
    pub upstream: Option<String>,
    pub image: Option<Pattern>,
}

impl Scope {
    /// The `since` of pulls made within `window` of now (0, all pulls, without one).
    pub fn since(window: Option<std::time::Duration>) -> i64 {
        window.map_or(0, |d| crate::db::now_ms() - d.as_millis() as i64)
    }

    fn narrows_pulls(&self) -> bool {
        self.since > 0 || self.rule.is_some() || self.upstream.is_some()
    }
}

/// `inventory query`: by purl (`pkg:...`) or name, optionally within a range, in `scope`.
pub async fn query(
    db: &Database,
    package: &str,
    range: Option<&Range>,
    scope: &Scope,
) -> Result<Answer, QueryError> {
    let lookup = if package.starts_with("pkg:") {
        PackageLookup::Key(sbom::key_of(package).ok_or_else(|| QueryError::Purl(package.into()))?)
    } else {
        PackageLookup::Name(package.to_owned())
    };
    // Each distinct package is compared once, however many images list it.
    let judged = db
        .find_packages(&lookup)
        .await?
        .into_iter()
        .filter_map(|p| {
            let scheme = scheme_of(&p.row);
            let judged = match range {
                None => Judged::Found {
                    range: None,
                    advisory: None,
                    scheme,
                },
                Some(r) => match r.contains(r.own_scheme().unwrap_or(scheme), &p.row.version) {
                    Ok(true) => Judged::Found {
                        range: Some(r.to_string()),
                        advisory: None,
                        scheme,
                    },
                    Ok(false) => return None,
                    Err(e) => Judged::Uncompared(e.to_string()),
                },
            };
            Some((p, judged))
        })
        .collect();
    let (answer, matches) = expand(db, Answer::default(), judged).await?;
    finish(db, answer, matches, scope).await
}

/// `inventory affected`: the stored packages the advisories affect, in `scope`.
pub async fn affected(
    db: &Database,
    advisories: &[Advisory],
    scope: &Scope,
) -> Result<Answer, QueryError> {
    let mut answer = Answer::default();
    // Each (ecosystem, OSV name) to look up, and the advisory that names it.
    let (mut askers, mut wanted) = (Vec::new(), Vec::new());
    for a in advisories {
        if a.withdrawn.is_some() {
            answer.withdrawn.push(a.id.clone());
            continue;
        }
        for (ecosystem, name) in a.packages() {
            if !ecosystem.is_empty() {
                askers.push(a);
                wanted.push((ecosystem.to_owned(), name));
            }
        }
    }
    // Each distinct package is checked once, however many images list it.
    let mut judged = Vec::new();
    for (a, packages) in askers.into_iter().zip(db.find_osv_packages(wanted).await?) {
        for p in packages {
            let verdict = a.check_named(&package_of(&p.row), &p.row.osv_name);
            let judgement = match verdict {
                Verdict::Affected { range, scheme } => Judged::Found {
                    range: Some(range),
                    advisory: Some(a.id.clone()),
                    scheme,
                },
                Verdict::NotAffected => continue,
                Verdict::Unknown { reason } => Judged::Uncompared(reason),
            };
            judged.push((p, judgement));
        }
    }
    let (answer, matches) = expand(db, answer, judged).await?;
    finish(db, answer, matches, scope).await
}

/// What an answer makes of one stored package.
enum Judged {
    /// It matched: within `range` (of `advisory`), compared by `scheme`.
    Found {
        range: Option<String>,
        advisory: Option<String>,
        scheme: Scheme,
    },
    /// Its version could not be compared, for this reason.
    Uncompared(String),
}

/// The matches of an answer before the ledger is joined: each distinct SBOM that lists a judged
/// package once, and the pairs of the two, so that an answer naming thousands of digests
/// neither copies an SBOM's or a package's text for every pair nor sorts them as text.
struct Matches {
    /// Distinct SBOMs (by digest).
    sboms: Vec<SbomRow>,
    judged: Vec<(StoredPackage, Judged)>,
    /// (SBOM, judged package) indices of the pairs found, in (image, digest, package key,
    /// version) order, and in the judged packages' order between equals.
    hits: Vec<(usize, usize)>,
}

/// Each judged package with every SBOM that lists it: the matches, by image, digest, package
/// and version, and those that could not be compared added to `answer`'s unseen.
async fn expand(
    db: &Database,
    mut answer: Answer,
    judged: Vec<(StoredPackage, Judged)>,
) -> Result<(Answer, Matches), DbError> {
    let holders = db
        .holders_of(judged.iter().map(|(p, _)| p.id).collect())
        .await?;
    let mut held_by: HashMap<i64, Vec<usize>> = HashMap::new();
    for (id, at) in holders.listings {
        held_by.entry(id).or_default().push(at);
    }
    let sboms = holders.sboms;
    // Each SBOM's place in (image, digest) order.
    let mut order: Vec<usize> = (0..sboms.len()).collect();
    order.sort_unstable_by(|&a, &b| {
        let (a, b) = (&sboms[a], &sboms[b]);
        (&a.image, &a.digest).cmp(&(&b.image, &b.digest))
    });
    let mut place = vec![0; sboms.len()];
    for (n, &at) in order.iter().enumerate() {
        place[at] = n;
    }
    // Judged packages in (key, version) order, equals in their own order.
    let mut by_key: Vec<usize> = (0..judged.len()).collect();
    by_key.sort_by(|&a, &b| {
        let (a, b) = (&judged[a].0.row, &judged[b].0.row);
        (&a.key, &a.version).cmp(&(&b.key, &b.version))
    });
    let mut rank = vec![0; judged.len()];
    for (n, &j) in by_key.iter().enumerate() {
        rank[j] = n;
    }
    let mut hits = Vec::new();
    for (j, (p, judgement)) in judged.iter().enumerate() {
        for &at in held_by.get(&p.id).into_iter().flatten() {
            match judgement {
                Judged::Found { .. } => hits.push((at, j)),
                Judged::Uncompared(reason) => {
                    answer
                        .unseen
                        .uncompared
                        .push(uncompared(&sboms[at], &p.row, reason.clone()))
                }
            }
        }
    }
    hits.sort_unstable_by_key(|&(at, j)| (place[at], rank[j]));
    answer
        .unseen
        .uncompared
        .sort_by(|a, b| (&a.image, &a.digest, &a.version).cmp(&(&b.image, &b.digest, &b.version)));
    Ok((
        answer,
        Matches {
            sboms,
            judged,
            hits,
        },
    ))
}

/// How a stored package is keyed (its `keyed` column).
fn keyed_of(p: &PackageRow) -> Keyed {
    if p.keyed == "name" {
        Keyed::Name
    } else {
        Keyed::Purl
    }
}

fn scheme_of(p: &PackageRow) -> Scheme {
    if keyed_of(p) == Keyed::Name {
        Scheme::Generic
    } else {
        Scheme::of_purl_type(&p.ecosystem)
    }
}

fn uncompared(sbom: &SbomRow, package: &PackageRow, reason: String) -> Uncompared {
    Uncompared {
        image: sbom.image.clone(),
        digest: sbom.digest.clone(),
        version: package.version.clone(),
        reason,
    }
}

fn some(s: &str) -> Option<String> {
    (!s.is_empty()).then(|| s.to_owned())
}

/// The SBOM package a stored row was made from.
pub fn package_of(p: &PackageRow) -> Package {
    Package {
        key: p.key.clone(),
        keyed: keyed_of(p),
        ecosystem: some(&p.ecosystem),
        name: p.name.clone(),
        version: some(&p.version),
        purl: some(&p.purl),
        distro: some(&p.distro),
        upstream: some(&p.upstream),
        cpe: None,
    }
}

/// The stored form of an SBOM's packages.
pub fn rows_of(packages: &[Package]) -> Vec<PackageRow> {
    packages
        .iter()
        .map(|p| PackageRow {
            key: p.key.clone(),
            version: p.version.clone().unwrap_or_default(),
            purl: p.purl.clone().unwrap_or_default(),
            keyed: match p.keyed {
                Keyed::Purl => "purl",
                Keyed::Name => "name",
            }
            .to_owned(),
            ecosystem: p.ecosystem.clone().unwrap_or_default(),
            name: p.name.clone(),
            osv_name: osv::osv_name(p),
            upstream: p.upstream.clone().unwrap_or_default(),
            distro: p.distro.clone().unwrap_or_default(),
        })
        .collect()
}

/// What the ledger says of one digest's pulls.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct Pulls {
    pub tags: Vec<String>,
    pub first: Option<i64>,
    pub last: Option<i64>,
    pub pulls: i64,
    pub clients: i64,
}

/// The ledger's pulls of `digests` in `scope` (its time, rule and upstream), by digest.
pub async fn pulls_of(
    db: &Database,
    digests: impl IntoIterator<Item = String>,
    scope: &Scope,
) -> Result<HashMap<String, Pulls>, DbError> {
    let wanted: Vec<String> = digests.into_iter().collect();
    let within = PullsWithin {
        since: scope.since,
        rule: scope.rule.clone().unwrap_or_default(),
        upstream: scope.upstream.clone().unwrap_or_default(),
    };
    Ok(db
        .pulls_of(wanted, within)
        .await?
        .into_iter()
        .map(|d| {
            let pulls = Pulls {
                tags: d.tags,
                first: Some(d.first_seen),
                last: Some(d.last_seen),
                pulls: d.pulls,
                clients: d.clients,
            };
            (d.digest, pulls)
        })
        .collect())
}

/// Joins the matches with the ledger, and keeps those in `scope`.
async fn finish(
    db: &Database,
    mut answer: Answer,
    matches: Matches,
    scope: &Scope,
) -> Result<Answer, QueryError> {
    let Matches {
        sboms,
        judged,
        mut hits,
    } = matches;
    if let Some(image) = &scope.image {
        let shown: Vec<bool> = sboms.iter().map(|s| image.is_match(&s.image)).collect();
        hits.retain(|&(s, _)| shown[s]);
    }
    let mut listed = vec![false; sboms.len()];
    for &(s, _) in &hits {
        listed[s] = true;
    }
    let digests = sboms
        .iter()
        .zip(&listed)
        .filter(|(_, listed)| **listed)
        .map(|(s, _)| s.digest.clone());
    // The SBOM counts do not depend on the pulls: read at the same time.
    let (ledger, counts) = tokio::try_join!(pulls_of(db, digests, scope), db.sbom_counts())?;
    answer.entries.reserve(hits.len());
    for (s, j) in hits {
        let (sbom, (p, judgement)) = (&sboms[s], &judged[j]);
        let Judged::Found {
            range,
            advisory,
            scheme,
        } = judgement
        else {
            continue;
        };
        let pulls = ledger.get(&sbom.digest);
        if scope.narrows_pulls() && pulls.is_none() {
            continue;
        }
        let (tags, first, last, count, clients) = match pulls {
            Some(p) => (p.tags.clone(), p.first, p.last, p.pulls, p.clients),
            None => (Vec::new(), None, None, 0, 0),
        };
        let keyed = keyed_of(&p.row);
        answer.entries.push(Entry {
            image: sbom.image.clone(),
            digest: sbom.digest.clone(),
            tags,
            package: p.row.key.clone(),
            purl: p.row.purl.clone(),
            version: p.row.version.clone(),
            range: range.clone(),
            advisory: advisory.clone(),
            exact: scheme.is_exact() && keyed == Keyed::Purl,
            scheme: *scheme,
            keyed,
            first_pulled: first,
            last_pulled: last,
            pulls: count,
            clients,
            sbom_provenance: sbom.provenance.clone(),
            sbom_signer: sbom.signer.clone(),
        });
    }
    for (status, n) in counts {
        match status.as_str() {
            "none" => answer.unseen.no_sbom = n,
            "unparseable" => answer.unseen.unparseable_sbom = n,
            _ => {}
        }
    }
    Ok(answer)
}

/// Records a digest's SBOM as read (or why it could not be), for the ingest stage and tests.
pub async fn record_sbom(
    db: &Database,
    mut row: SbomRow,
    parsed: Result<sbom::Sbom, sbom::SbomError>,
) -> Result<(), DbError> {
    match parsed {
        Ok(s) => {
            row.status = "found".to_owned();
            row.format = s.format.as_str().to_owned();
            db.put_sbom(row, rows_of(&s.packages)).await
        }
        Err(e) => {
            row.status = "unparseable".to_owned();
            row.error = e.to_string();
            db.put_sbom(row, Vec::new()).await
        }
    }
}

impl std::fmt::Display for Answer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.entries.is_empty() {
            writeln!(f, "no pulled image contains it")?;
        }
        for e in &self.entries {
            let tags = if e.tags.is_empty() {
                "(by digest)".to_owned()
            } else {
                e.tags.join(", ")
            };
            writeln!(f, "{}@{}  tags: {tags}", e.image, e.digest)?;
            write!(f, "  {} {}", e.package, e.version)?;
            if let Some(r) = &e.range {
                write!(f, "  matched {r}")?;
            }
            if let Some(a) = &e.advisory {
                write!(f, " of {a}")?;
            }
            if !e.exact {
                write!(
                    f,
                    "  [not exact: {} comparison / {:?}-keyed, check by hand]",
                    e.scheme.as_str(),
                    e.keyed
                )?;
            }
            writeln!(f)?;
            writeln!(
                f,
                "  pulled {} times by {} clients, first {}, last {}; SBOM {}",
                e.pulls,
                e.clients,
                when(e.first_pulled),
                when(e.last_pulled),
                provenance(&e.sbom_provenance, &e.sbom_signer),
            )?;
        }
        for id in &self.withdrawn {
            writeln!(f, "advisory {id} is withdrawn: it matches nothing")?;
        }
        writeln!(
            f,
            "not seen: {} pulled digests with no SBOM, {} with an unreadable SBOM, {} versions that could not be compared",
            self.unseen.no_sbom,
            self.unseen.unparseable_sbom,
            self.unseen.uncompared.len()
        )?;
        for u in &self.unseen.uncompared {
            writeln!(f, "  {}@{} {}: {}", u.image, u.digest, u.version, u.reason)?;
        }
        Ok(())
    }
}

/// A time in ms as RFC 3339, `-` when unknown.
pub(crate) fn when(t: Option<i64>) -> String {
    t.and_then(|ms| jiff::Timestamp::from_millisecond(ms).ok())
        .map_or("-".to_owned(), |t| t.to_string())
}

/// Where an SBOM came from, as a person reads it: `signed by ID`, `unsigned (referrer ...)`.
pub(crate) fn provenance(provenance: &str, detail: &str) -> String {
    match (provenance, detail) {
        (p, "") => p.to_owned(),
        ("signed", d) => format!("signed by {d}"),
        (p, d) => format!("{p} ({d})"),
    }
}

#[cfg(test)]
mod tests;
