//! The inventory's rows (schema migrations 2 and 7) and their calls on [`Database`]: OSV
//! advisories stored whole with their ids, aliases and package names; each digest's SBOM row;
//! each distinct package once, and which digests list it. Plain strings, as the rest of this
//! layer; what they mean is `inventory`'s.

use super::{Database, DbError, Lane};

mod holders;
pub use holders::Holders;

/// From how many digests [`Database::pulls_of`] reads two halves at once.
const SPLIT_PULLS_AT: usize = 512;

/// From how many packages [`Database::holders_of`] reads two halves at once (a package is
/// often in hundreds of images).
const SPLIT_HOLDERS_AT: usize = 16;

/// One advisory as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AdvisoryRow {
    pub id: String,
    pub modified: String,
    /// When it was withdrawn, empty when it stands.
    pub withdrawn: String,
    pub summary: String,
    /// The OSV JSON as imported.
    pub document: String,
    /// The id and its aliases, upper-cased for look-ups.
    pub ids: Vec<String>,
    /// (purl type, OSV name) pairs it names.
    pub packages: Vec<(String, String)>,
}

/// What the advisory tables hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct AdvisoryCounts {
    pub advisories: i64,
    pub withdrawn: i64,
}

impl Database {
    /// Stores advisories in one transaction, each replacing what was stored under its id.
    pub async fn put_advisories(&self, rows: Vec<AdvisoryRow>) -> Result<(), DbError> {
        if rows.is_empty() {
            return Ok(());
        }
        match self {
            Database::Sqlite(db) => db.put_advisories(rows).await,
            Database::Postgres(db) => db.put_advisories(rows).await,
        }
    }

    /// The (id, document) of every advisory with this id or alias (case-blind).
    pub async fn advisories_named(&self, alias: &str) -> Result<Vec<(String, String)>, DbError> {
        let alias = alias.trim().to_ascii_uppercase();
        match self {
            Database::Sqlite(db) => db.advisories_named(alias).await,
            Database::Postgres(db) => db.advisories_named(&alias).await,
        }
    }

    pub async fn advisory_counts(&self) -> Result<AdvisoryCounts, DbError> {
        match self {
            Database::Sqlite(db) => db.advisory_counts().await,
            Database::Postgres(db) => db.advisory_counts().await,
        }
    }
}

pub(super) const UPSERT_ADVISORY: &str = "INSERT INTO advisories
        (id, modified, withdrawn, summary, document, imported_at)
     VALUES ($1, $2, $3, $4, $5, $6)
     ON CONFLICT (id) DO UPDATE SET modified = excluded.modified,
        withdrawn = excluded.withdrawn, summary = excluded.summary,
        document = excluded.document, imported_at = excluded.imported_at";
pub(super) const DELETE_IDS: &str = "DELETE FROM advisory_ids WHERE id = $1";
pub(super) const DELETE_PACKAGES: &str = "DELETE FROM advisory_packages WHERE id = $1";
pub(super) const INSERT_ID: &str =
    "INSERT INTO advisory_ids (alias, id) VALUES ($1, $2) ON CONFLICT DO NOTHING";
pub(super) const INSERT_PACKAGE: &str =
    "INSERT INTO advisory_packages (id, ecosystem, name) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING";
pub(super) const NAMED: &str = "SELECT a.id, a.document FROM advisory_ids i
     JOIN advisories a ON a.id = i.id WHERE i.alias = $1 ORDER BY a.id";
pub(super) const COUNTS: &str =
    "SELECT count(*), coalesce(sum(CASE WHEN withdrawn <> '' THEN 1 ELSE 0 END), 0)
     FROM advisories";

/// One digest's SBOM as the inventory recorded it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SbomRow {
    pub digest: String,
    pub image: String,
    /// `found`, `none` or `unparseable`.
    pub status: String,
    /// `signed`, `buildkit` or `unsigned`; empty when none was found.
    pub provenance: String,
    /// Who signed it, when signed.
    pub signer: String,
    pub format: String,
    /// Why it could not be read.
    pub error: String,
}

/// One package of an SBOM.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PackageRow {
    pub key: String,
    pub version: String,
    pub purl: String,
    /// `purl` or `name`.
    pub keyed: String,
    pub ecosystem: String,
    pub name: String,
    pub osv_name: String,
    pub upstream: String,
    pub distro: String,
}

/// A distinct package as stored, under its id: every SBOM that lists it refers to that id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredPackage {
    pub id: i64,
    pub row: PackageRow,
}

/// How a package is looked up.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PackageLookup {
    /// By purl key (`pkg:type/namespace/name`).
    Key(String),
    /// By name, any ecosystem.
    Name(String),
    /// By (purl type, OSV name), also matching the `upstream` qualifier.
    Osv { ecosystem: String, name: String },
}

/// A package's identity in `packages`: SHA-256 over each field's length (4 bytes, big-endian)
/// and bytes, in column order (what migration 7 computes in SQL for the rows it moves).
pub fn fingerprint(p: &PackageRow) -> Vec<u8> {
    use sha2::Digest;
    let mut h = sha2::Sha256::new();
    for field in fields(p) {
        // An SBOM field longer than 4 GiB cannot reach here (SBOMs are bounded far below).
        h.update((field.len() as u32).to_be_bytes());
        h.update(field.as_bytes());
    }
    h.finalize().to_vec()
}

/// A digest pulled (and served) that the inventory has not recorded, as the ledger knows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unrecorded {
    pub image: String,
    pub digest: String,
    pub upstream: String,
    /// Whether any of its pulls was verified.
    pub verified: bool,
}

impl Database {
    /// Records a digest's SBOM (or its absence), replacing what was recorded for it.
    pub async fn put_sbom(&self, sbom: SbomRow, packages: Vec<PackageRow>) -> Result<(), DbError> {
        match self {
            Database::Sqlite(db) => db.put_sbom(sbom, packages).await,
            Database::Postgres(db) => db.put_sbom(sbom, packages).await,
        }
    }

    /// The distinct packages a look-up finds (each listed by one SBOM or more, or by none
    /// once the SBOMs that listed it were replaced).
    pub async fn find_packages(
        &self,
        lookup: &PackageLookup,
    ) -> Result<Vec<StoredPackage>, DbError> {
        let (sql, params) = lookup_sql(lookup);
        match self {
            Database::Sqlite(db) => db.find_packages(sql, params, Lane::First).await,
            Database::Postgres(db) => db.find_packages(&sql, &params, Lane::First).await,
        }
    }

    /// What [`PackageLookup::Osv`] finds for each (ecosystem, OSV name) of `wanted`, in its
    /// order, each as [`lookup_sql`] would find it alone (by OSV name, then by source package):
    /// the look-ups of an answer's advisories as two reads at once, one on each [`Lane`], each
    /// of its half of `wanted` (one statement each on PostgreSQL instead of a round trip per
    /// name); one look-up is one read.
    pub async fn find_osv_packages(
        &self,
        wanted: Vec<(String, String)>,
    ) -> Result<Vec<Vec<StoredPackage>>, DbError> {
        let read = |wanted: Vec<(String, String)>, lane| async move {
            if wanted.is_empty() {
                return Ok(Vec::new());
            }
            match self {
                Database::Sqlite(db) => db.find_osv_packages(wanted, lane).await,
                Database::Postgres(db) => db.find_osv_packages(&wanted, lane).await,
            }
        };
        in_two(wanted, read, Vec::extend).await
    }

    /// The SBOMs that list any of the packages `ids`, each once, and which of them each lists.
    /// Many ids are read as two halves at once, as [`Database::pulls_of`] does.
    pub async fn holders_of(&self, ids: Vec<i64>) -> Result<Holders, DbError> {
        let read = |ids: Vec<i64>, lane| async move {
            match self {
                Database::Sqlite(db) => db.holders_of(ids, lane).await,
                Database::Postgres(db) => db.holders_of(&ids, lane).await,
            }
        };
        self.in_halves(ids, SPLIT_HOLDERS_AT, read, Holders::merge)
            .await
    }

    /// The packages one digest's SBOM lists, by key and version.
    pub async fn packages_in(&self, digest: &str) -> Result<Vec<PackageRow>, DbError> {
        match self {
            Database::Sqlite(db) => db.packages_in(digest.to_owned()).await,
            Database::Postgres(db) => db.packages_in(digest).await,
        }
    }

    /// What is recorded for a digest: its status and when it was ingested (ms).
    pub async fn sbom_state(&self, digest: &str) -> Result<Option<(String, i64)>, DbError> {
        match self {
            Database::Sqlite(db) => db.sbom_state(digest.to_owned()).await,
            Database::Postgres(db) => db.sbom_state(digest).await,
        }
    }

    /// The SBOM row recorded for a digest.
    pub async fn sbom_of(&self, digest: &str) -> Result<Option<SbomRow>, DbError> {
        match self {
            Database::Sqlite(db) => db.sbom_of(digest.to_owned()).await,
            Database::Postgres(db) => db.sbom_of(digest).await,
        }
    }

    /// Up to `limit` digests served according to the ledger with no SBOM row, the most
    /// recently pulled first: what a backfill ingests.
    pub async fn unrecorded(&self, limit: i64) -> Result<Vec<Unrecorded>, DbError> {
        match self {
            Database::Sqlite(db) => db.unrecorded(limit).await,
            Database::Postgres(db) => db.unrecorded(limit).await,
        }
    }

    /// How many recorded digests have each SBOM status.
    pub async fn sbom_counts(&self) -> Result<Vec<(String, i64)>, DbError> {
        match self {
            Database::Sqlite(db) => db.sbom_counts().await,
            Database::Postgres(db) => db.sbom_counts().await,
        }
    }
}

impl Database {
    /// The ledger's pulls of each of `digests` [`PullsWithin`]: its tags, first and last seen,
    /// pull count and distinct client addresses, in digest order. Digests with no such pull are
    /// absent. Many digests are read as two halves at once, each on its own connection (sorted
    /// and without repeats first, so that a digest's sums are all in its half).
    pub async fn pulls_of(
        &self,
        digests: Vec<String>,
        within: PullsWithin,
    ) -> Result<Vec<DigestPulls>, DbError> {
        let within = &within;
        // Over all pulls, each digest's sums are one row (`super::rollup`).
        let all = within.is_all();
        let read = |digests: Vec<String>, lane| async move {
            match self {
                Database::Sqlite(db) if all => db.digest_pulls(digests, lane).await,
                Database::Postgres(db) if all => db.digest_pulls(&digests, lane).await,
                Database::Sqlite(db) => db.pulls_of(digests, within.clone(), lane).await,
                Database::Postgres(db) => db.pulls_of(&digests, within, lane).await,
            }
        };
        self.in_halves(digests, SPLIT_PULLS_AT, read, Vec::extend)
            .await
    }

    /// `read` of `keys`, sorted and without repeats: at once when fewer than `at`, else as two
    /// halves at once, one on each [`Lane`], the second's answer given to `merge` with the
    /// first's (answers in key order concatenated stay in key order). No keys, no read.
    async fn in_halves<K, R, F, Fut>(
        &self,
        mut keys: Vec<K>,
        at: usize,
        read: F,
        merge: fn(&mut R, R),
    ) -> Result<R, DbError>
    where
        K: Ord,
        R: Default,
        F: Fn(Vec<K>, Lane) -> Fut,
        Fut: std::future::Future<Output = Result<R, DbError>>,
    {
        keys.sort();
        keys.dedup();
        if keys.is_empty() {
            return Ok(R::default());
        }
        if keys.len() < at {
            return read(keys, Lane::First).await;
        }
        in_two(keys, read, merge).await
    }
}

/// `read` of the first half of `keys` (the larger, when their number is odd) on the first
/// [`Lane`] and of the rest on the second, at once; the second's answer given to `merge` with
/// the first's.
async fn in_two<K, R, F, Fut>(mut keys: Vec<K>, read: F, merge: fn(&mut R, R)) -> Result<R, DbError>
where
    F: Fn(Vec<K>, Lane) -> Fut,
    Fut: std::future::Future<Output = Result<R, DbError>>,
{
    let second = keys.split_off(keys.len().div_ceil(2));
    let (mut first, second) =
        tokio::try_join!(read(keys, Lane::First), read(second, Lane::Second))?;
    merge(&mut first, second);
    Ok(first)
}

/// Which pulls [`Database::pulls_of`] counts: last seen at or after `since` (ms; 0: all), under
/// `rule` and from `upstream` (empty: any).
#[derive(Debug, Clone, Default)]
pub struct PullsWithin {
    pub since: i64,
    pub rule: String,
    pub upstream: String,
}

impl PullsWithin {
    /// Whether this is every pull the ledger keeps (no time, rule or upstream).
    pub fn is_all(&self) -> bool {
        self.since <= 0 && self.rule.is_empty() && self.upstream.is_empty()
    }
}

/// One digest's pulls, from [`Database::pulls_of`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DigestPulls {
    pub digest: String,
    /// Sorted, without the empty tag of pulls by digest.
    pub tags: Vec<String>,
    pub first_seen: i64,
    pub last_seen: i64,
    pub pulls: i64,
    pub clients: i64,
}

/// The ledger rows [`Database::pulls_of`] reads, summed per digest here: SQL's
/// `count(DISTINCT ...)` and `group_concat(DISTINCT ...)` build a b-tree per digest, several
/// times the cost of reading the rows, for answers that name thousands of digests. Clients are
/// numbered once, so a digest keeps a number per row and dedups them at the end.
#[derive(Default)]
pub(super) struct PullsSums {
    digests: foldhash::HashMap<Vec<u8>, PullsSum>,
    clients: super::summary::Numbers,
}

struct PullsSum {
    tags: Vec<String>,
    first_seen: i64,
    last_seen: i64,
    pulls: i64,
    clients: Vec<u32>,
}

impl PullsSums {
    /// Adds a row of [`PULLS_OF_SQLITE`] / [`PULLS_OF_POSTGRES`], its columns read by the
    /// backend's accessors (text as its bytes).
    pub(super) fn read<'a, E>(
        &mut self,
        text: impl Fn(usize) -> Result<&'a [u8], E>,
        int: impl Fn(usize) -> Result<i64, E>,
    ) -> Result<(), E> {
        self.add(text(0)?, text(1)?, int(2)?, int(3)?, int(4)?, text(5)?);
        Ok(())
    }

    /// One row of [`PULLS_OF_SQLITE`] / [`PULLS_OF_POSTGRES`] (text as its bytes).
    pub(super) fn add(
        &mut self,
        digest: &[u8],
        tag: &[u8],
        first_seen: i64,
        last_seen: i64,
        pulls: i64,
        client: &[u8],
    ) {
        let client = self.clients.of(client);
        let sum = match self.digests.get_mut(digest) {
            Some(s) => s,
            None => self.digests.entry(digest.to_vec()).or_insert(PullsSum {
                tags: Vec::new(),
                first_seen,
                last_seen,
                pulls: 0,
                clients: Vec::new(),
            }),
        };
        // The empty tag is a pull by digest.
        if !tag.is_empty() && !sum.tags.iter().any(|t| t.as_bytes() == tag) {
            sum.tags.push(String::from_utf8_lossy(tag).into_owned());
        }
        sum.first_seen = sum.first_seen.min(first_seen);
        sum.last_seen = sum.last_seen.max(last_seen);
        sum.pulls += pulls;
        sum.clients.push(client);
    }

    pub(super) fn finish(self) -> Vec<DigestPulls> {
        let mut out: Vec<DigestPulls> = self
            .digests
            .into_iter()
            .map(|(digest, mut s)| {
                s.tags.sort();
                DigestPulls {
                    digest: String::from_utf8_lossy(&digest).into_owned(),
                    tags: s.tags,
                    first_seen: s.first_seen,
                    last_seen: s.last_seen,
                    pulls: s.pulls,
                    clients: super::summary::distinct(&mut s.clients),
                }
            })
            .collect();
        out.sort_by(|a, b| a.digest.cmp(&b.digest));
        out
    }
}

/// [`Database::pulls_of`]'s rows on SQLite: `?1` a JSON array of digests, then [`PullsWithin`]'s
/// fields (read from the covering index `pulls_digest`, migration 6).
pub(super) const PULLS_OF_SQLITE: &str =
    "SELECT digest, tag, first_seen, last_seen, pulls, client_addr
     FROM pulls WHERE digest IN (SELECT value FROM json_each(?1)) AND last_seen >= ?2
        AND (?3 = '' OR rule = ?3) AND (?4 = '' OR upstream = ?4)";
/// [`Database::pulls_of`]'s rows on PostgreSQL: `$1` an array of digests, then [`PullsWithin`]'s.
pub(super) const PULLS_OF_POSTGRES: &str =
    "SELECT digest, tag, first_seen, last_seen, pulls, client_addr
     FROM pulls WHERE digest = ANY($1) AND last_seen >= $2
        AND ($3 = '' OR rule = $3) AND ($4 = '' OR upstream = $4)";

/// A stored package's columns: its id, then [`PackageRow`]'s fields in order.
pub(super) const PACKAGE_COLUMNS: &str =
    "id, key, version, purl, keyed, ecosystem, name, osv_name, upstream, distro";

pub(super) fn lookup_sql(lookup: &PackageLookup) -> (String, Vec<String>) {
    let select = |clause: &str| format!("SELECT {PACKAGE_COLUMNS} FROM packages WHERE {clause}");
    match lookup {
        PackageLookup::Key(k) => (select("key = $1"), vec![k.clone()]),
        PackageLookup::Name(n) => (select("name = $1"), vec![n.clone()]),
        // By OSV name, or (a distro's binary package) by its source package: two look-ups, each
        // on its own index; an OR of the two would read every package of the ecosystem.
        PackageLookup::Osv { ecosystem, name } => (
            format!(
                "{} UNION ALL {}",
                select("ecosystem = $1 AND osv_name = $2"),
                select("ecosystem = $1 AND upstream = $2 AND osv_name <> $2"),
            ),
            vec![ecosystem.clone(), name.clone()],
        ),
    }
}

/// [`Database::find_osv_packages`] on PostgreSQL: `$1` the ecosystems and `$2` the OSV names,
/// each pair's packages numbered by its place (from 1), found as [`lookup_sql`] finds them.
pub(super) const FIND_OSV_POSTGRES: &str = "SELECT l.n, p.* FROM
        unnest($1::text[], $2::text[]) WITH ORDINALITY AS l(ecosystem, name, n)
     CROSS JOIN LATERAL (
        SELECT id, key, version, purl, keyed, ecosystem, name, osv_name, upstream, distro
            FROM packages WHERE ecosystem = l.ecosystem AND osv_name = l.name
        UNION ALL
        SELECT id, key, version, purl, keyed, ecosystem, name, osv_name, upstream, distro
            FROM packages
            WHERE ecosystem = l.ecosystem AND upstream = l.name AND osv_name <> l.name) p";

/// [`Database::holders_of`] on SQLite: `?1` a JSON array of package ids.
pub(super) const HOLDERS_OF_SQLITE: &str = "SELECT c.package, s.digest, s.image, s.status,
        s.provenance, s.signer, s.format, s.error
     FROM sbom_contents c JOIN sboms s ON s.digest = c.digest
     WHERE c.package IN (SELECT value FROM json_each(?1))";
/// [`Database::holders_of`] on PostgreSQL: `$1` an array of package ids.
pub(super) const HOLDERS_OF_POSTGRES: &str = "SELECT c.package, s.digest, s.image, s.status,
        s.provenance, s.signer, s.format, s.error
     FROM sbom_contents c JOIN sboms s ON s.digest = c.digest
     WHERE c.package = ANY($1)";
/// [`Database::packages_in`]: `$1` the digest.
pub(super) const PACKAGES_IN: &str = "SELECT p.key, p.version, p.purl, p.keyed, p.ecosystem,
        p.name, p.osv_name, p.upstream, p.distro
     FROM sbom_contents c JOIN packages p ON p.id = c.package
     WHERE c.digest = $1 ORDER BY p.key, p.version, p.purl";

pub(super) const UPSERT_SBOM: &str = "INSERT INTO sboms
        (digest, image, status, provenance, signer, format, error, packages, ingested_at)
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)
     ON CONFLICT (digest) DO UPDATE SET image = excluded.image, status = excluded.status,
        provenance = excluded.provenance, signer = excluded.signer, format = excluded.format,
        error = excluded.error, packages = excluded.packages, ingested_at = excluded.ingested_at";
pub(super) const DELETE_CONTENTS: &str = "DELETE FROM sbom_contents WHERE digest = $1";
/// The id of the package with fingerprint `$1` (SQLite, whose one writer inserts it when
/// missing).
pub(super) const PACKAGE_ID: &str = "SELECT id FROM packages WHERE fingerprint = $1";
pub(super) const INSERT_PACKAGE_ROW: &str = "INSERT INTO packages
        (fingerprint, key, version, purl, keyed, ecosystem, name, osv_name, upstream, distro)
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)";
pub(super) const INSERT_CONTENT: &str =
    "INSERT INTO sbom_contents (digest, package) VALUES ($1, $2) ON CONFLICT DO NOTHING";
/// Many packages in one statement (PostgreSQL), those stored already left as they are (by
/// another replica, maybe, at the same time): `$1` the fingerprints, `$2`..`$10` one array per
/// column.
pub(super) const INSERT_PACKAGE_ROWS: &str = "INSERT INTO packages
        (fingerprint, key, version, purl, keyed, ecosystem, name, osv_name, upstream, distro)
     SELECT * FROM UNNEST($1::bytea[], $2::text[], $3::text[], $4::text[], $5::text[],
        $6::text[], $7::text[], $8::text[], $9::text[], $10::text[])
     ON CONFLICT (fingerprint) DO NOTHING";
/// The digest `$1` lists the packages of fingerprints `$2` (PostgreSQL, after
/// [`INSERT_PACKAGE_ROWS`]).
pub(super) const INSERT_CONTENTS: &str = "INSERT INTO sbom_contents (digest, package)
     SELECT $1, id FROM packages WHERE fingerprint = ANY($2::bytea[]) ON CONFLICT DO NOTHING";
pub(super) const SBOM_STATE: &str = "SELECT status, ingested_at FROM sboms WHERE digest = $1";
pub(super) const SBOM_OF: &str =
    "SELECT digest, image, status, provenance, signer, format, error FROM sboms WHERE digest = $1";
pub(super) const UNRECORDED: &str = "SELECT p.image, p.digest, p.upstream,
        max(CASE WHEN p.verdict = 'verified' THEN 1 ELSE 0 END) AS verified,
        max(p.last_seen) AS last
     FROM pulls p
     WHERE p.admission = 'served'
       AND NOT EXISTS (SELECT 1 FROM sboms s WHERE s.digest = p.digest)
     GROUP BY p.image, p.digest, p.upstream
     ORDER BY last DESC
     LIMIT $1";
pub(super) const SBOM_COUNTS: &str =
    "SELECT status, count(*) FROM sboms GROUP BY status ORDER BY status";

/// An SBOM row from [`SBOM_OF`]'s columns.
pub(super) fn sbom_row(c: [String; 7]) -> SbomRow {
    let [digest, image, status, provenance, signer, format, error] = c;
    SbomRow {
        digest,
        image,
        status,
        provenance,
        signer,
        format,
        error,
    }
}

/// A package from [`PackageRow`]'s fields in order.
pub(super) fn package_row(c: [String; 9]) -> PackageRow {
    let [key, version, purl, keyed, ecosystem, name, osv_name, upstream, distro] = c;
    PackageRow {
        key,
        version,
        purl,
        keyed,
        ecosystem,
        name,
        osv_name,
        upstream,
        distro,
    }
}

/// The fields of `p` in column order, for statements that take them one by one.
pub(super) fn fields(p: &PackageRow) -> [&str; 9] {
    [
        &p.key,
        &p.version,
        &p.purl,
        &p.keyed,
        &p.ecosystem,
        &p.name,
        &p.osv_name,
        &p.upstream,
        &p.distro,
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pulls_are_summed_per_digest_with_distinct_tags_and_clients() {
        let mut sums = PullsSums::default();
        for (digest, tag, first, last, pulls, client) in [
            ("sha256:b", "v1", 50, 60, 2, "10.0.0.1"),
            ("sha256:a", "", 10, 20, 1, "10.0.0.1"),
            ("sha256:a", "v2", 5, 30, 3, "10.0.0.2"),
            ("sha256:a", "v1", 15, 25, 4, "10.0.0.1"),
            ("sha256:a", "v2", 12, 40, 1, "10.0.0.3"),
            ("sha256:b", "v1", 45, 55, 1, "10.0.0.1"),
        ] {
            sums.add(
                digest.as_bytes(),
                tag.as_bytes(),
                first,
                last,
                pulls,
                client.as_bytes(),
            );
        }
        let got = sums.finish();
        assert_eq!(
            got,
            vec![
                DigestPulls {
                    digest: "sha256:a".into(),
                    tags: vec!["v1".into(), "v2".into()],
                    first_seen: 5,
                    last_seen: 40,
                    pulls: 9,
                    clients: 3,
                },
                DigestPulls {
                    digest: "sha256:b".into(),
                    tags: vec!["v1".into()],
                    first_seen: 45,
                    last_seen: 60,
                    pulls: 3,
                    clients: 1,
                },
            ]
        );
    }
}
