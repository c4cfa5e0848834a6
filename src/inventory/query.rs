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
use crate::db::inventory::{
    PackageHit, PackageLookup, PackageRow, PullsWithin, SbomRow, StoredPackage,
};
use crate::db::{Database, DbError, Lane};
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
    let (answer, found) = expand(db, Answer::default(), judged).await?;
    finish(db, answer, found, scope).await
}

/// `inventory affected`: the stored packages the advisories affect, in `scope`.
pub async fn affected(
    db: &Database,
    advisories: &[Advisory],
    scope: &Scope,
) -> Result<Answer, QueryError> {
    let mut answer = Answer::default();
    let mut lookups = Vec::new();
    for a in advisories {
        if a.withdrawn.is_some() {
            answer.withdrawn.push(a.id.clone());
            continue;
        }
        for (ecosystem, name) in a.packages() {
            if !ecosystem.is_empty() {
                let ecosystem = ecosystem.to_owned();
                lookups.push((a, PackageLookup::Osv { ecosystem, name }));
            }
        }
    }
    // Two look-ups at a time, each on its own connection; each distinct package is checked
    // once, however many images list it.
    let mut judged = Vec::new();
    for pair in lookups.chunks(2) {
        let looked_up = pair
            .iter()
            .zip([Lane::First, Lane::Second])
            .map(|((_, lookup), lane)| db.find_packages_in(lookup, lane));
        let packages = futures_util::future::try_join_all(looked_up).await?;
        for ((a, _), packages) in pair.iter().zip(packages) {
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
    }
    let (answer, found) = expand(db, answer, judged).await?;
    finish(db, answer, found, scope).await
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

/// Each judged package with every SBOM that lists it: the matches, by image, digest, package
/// and version, and those that could not be compared added to `answer`'s unseen.
async fn expand(
    db: &Database,
    mut answer: Answer,
    judged: Vec<(StoredPackage, Judged)>,
) -> Result<(Answer, Vec<Found>), DbError> {
    let mut holders: HashMap<i64, Vec<SbomRow>> = HashMap::new();
    for (id, sbom) in db
        .holders_of(judged.iter().map(|(p, _)| p.id).collect())
        .await?
    {
        holders.entry(id).or_default().push(sbom);
    }
    let mut found = Vec::new();
    for (p, judgement) in judged {
        let Some(sboms) = holders.get(&p.id) else {
            continue;
        };
        for sbom in sboms {
            let hit = PackageHit {
                sbom: sbom.clone(),
                package: p.row.clone(),
            };
            match &judgement {
                Judged::Found {
                    range,
                    advisory,
                    scheme,
                } => found.push((hit, range.clone(), advisory.clone(), *scheme)),
                Judged::Uncompared(reason) => answer
                    .unseen
                    .uncompared
                    .push(uncompared(&hit, reason.clone())),
            }
        }
    }
    fn order(h: &PackageHit) -> (&str, &str, &str, &str) {
        (
            h.sbom.image.as_str(),
            h.sbom.digest.as_str(),
            h.package.key.as_str(),
            h.package.version.as_str(),
        )
    }
    found.sort_by(|a, b| order(&a.0).cmp(&order(&b.0)));
    answer
        .unseen
        .uncompared
        .sort_by(|a, b| (&a.image, &a.digest, &a.version).cmp(&(&b.image, &b.digest, &b.version)));
    Ok((answer, found))
}

fn scheme_of(p: &PackageRow) -> Scheme {
    if p.keyed == "name" {
        Scheme::Generic
    } else {
        Scheme::of_purl_type(&p.ecosystem)
    }
}

fn uncompared(hit: &PackageHit, reason: String) -> Uncompared {
    Uncompared {
        image: hit.sbom.image.clone(),
        digest: hit.sbom.digest.clone(),
        version: hit.package.version.clone(),
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
        keyed: if p.keyed == "name" {
            Keyed::Name
        } else {
            Keyed::Purl
        },
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

type Found = (PackageHit, Option<String>, Option<String>, Scheme);

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
    mut found: Vec<Found>,
    scope: &Scope,
) -> Result<Answer, QueryError> {
    if let Some(image) = &scope.image {
        found.retain(|f| image.is_match(&f.0.sbom.image));
    }
    let ledger = pulls_of(db, found.iter().map(|f| f.0.sbom.digest.clone()), scope).await?;
    for (hit, range, advisory, scheme) in found {
        let pulls = ledger.get(&hit.sbom.digest);
        if scope.narrows_pulls() && pulls.is_none() {
            continue;
        }
        let (tags, first, last, count, clients) = match pulls {
            Some(p) => (p.tags.clone(), p.first, p.last, p.pulls, p.clients),
            None => (Vec::new(), None, None, 0, 0),
        };
        let keyed = package_of(&hit.package).keyed;
        answer.entries.push(Entry {
            image: hit.sbom.image,
            digest: hit.sbom.digest,
            tags,
            package: hit.package.key,
            purl: hit.package.purl,
            version: hit.package.version,
            range,
            advisory,
            exact: scheme.is_exact() && keyed == Keyed::Purl,
            scheme,
            keyed,
            first_pulled: first,
            last_pulled: last,
            pulls: count,
            clients,
            sbom_provenance: hit.sbom.provenance,
            sbom_signer: hit.sbom.signer,
        });
    }
    for (status, n) in db.sbom_counts().await? {
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
