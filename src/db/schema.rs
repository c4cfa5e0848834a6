//! The schema, as numbered migrations applied in order at start-up (both backends run the same
//! list; a database already at a version skips it). A database whose version is newer than the
//! program's is refused rather than written to.
//!
//! `pulls` is the ledger: one row per (UTC day, image, digest, tag, rule, mode, verdict,
//! admission, client), its pull count and first/last seen widened as pulls are added. The
//! partial index `pulls_findings` holds only what an audit report lists, so a report over a
//! window of mostly verified pulls reads only the rows it prints.
//!
//! Migration 3 widens the findings index on SQLite to cover the report's columns. Migration 4
//! indexes `pulls` by digest, for the inventory's answers (the pulls of the digests matched).
//!
//! Migration 5 is the console's: `pull_hours`, the ledger's pulls summed per (UTC hour, rule,
//! mode, verdict, admission), kept by the same transaction that adds pulls (and filled from the
//! existing rows, each counted in the hour it was last seen), so the overview's chart reads a few
//! hundred rows instead of the whole ledger; and `verdicts`, the latest full verdict of each
//! (digest, rule), as JSON (every signature, attestation and condition), with when it was first
//! and last decided.
//!
//! Migration 6 widens the digest index on SQLite to cover what the inventory's answers read
//! of each digest's pulls.
//!
//! Migration 2 is the inventory's: `advisories` (one OSV document per id, kept whole and read
//! back by `inventory::osv`), `advisory_ids` (the id and every alias, for look-ups by CVE or
//! GHSA id), `advisory_packages` (which (purl type, name) each names, for matching), and for
//! the SBOMs of pulled digests `sboms` (one row per digest: found or not, where from, why
//! unreadable) and `sbom_packages` (its packages, indexed by purl key, name and OSV name).
//!
//! Migration 7 stores each distinct package once: `packages` (a package's fields under an id,
//! found by its fingerprint, [`super::inventory::fingerprint`], and indexed by purl key, name,
//! OSV name and source package) and `sbom_contents` (digest, package id), filled from
//! `sbom_packages`, which it drops. The same package is in hundreds of images: an answer
//! compares each distinct version once and then reads which digests list the matches, and an
//! SBOM whose packages are known already adds only its (digest, id) pairs.
//!
//! Migration 8 sums the ledger per digest (`digest_pulls`, with the sets it counts,
//! `digest_clients` and `digest_tags`; see [`super::rollup`]), filled from `pulls`, for the
//! inventory's answers over all pulls; and on PostgreSQL widens the digest index as migration 6
//! did on SQLite.

/// The newest schema version this program knows.
pub const VERSION: i64 = 8;

/// The rows an audit report lists: unverified, lookup faults and refusals. Queries repeat it
/// exactly so that the partial index applies.
pub const FINDINGS_PREDICATE: &str =
    "(verdict IN ('unverified', 'error') OR admission = 'refused')";

/// The columns of `pulls` that make a row's key, in key order.
pub const KEY_COLUMNS: &str =
    "day, image, digest, tag, rule, mode, verdict, admission, client_addr, user_agent, user_name";

/// The tables of the per-digest sums, each declared with `$options` (SQLite's `WITHOUT ROWID`),
/// then the statements `$more`.
macro_rules! digest_sums_tables {
    ($options:literal $(, $more:literal)*) => {
        [
            concat!(
                "CREATE TABLE digest_pulls (
                    digest TEXT PRIMARY KEY,
                    first_seen BIGINT NOT NULL,
                    last_seen BIGINT NOT NULL,
                    pulls BIGINT NOT NULL,
                    clients BIGINT NOT NULL,
                    tags TEXT NOT NULL
                )",
                $options
            ),
            concat!(
                "CREATE TABLE digest_clients (
                    digest TEXT NOT NULL,
                    client_addr TEXT NOT NULL,
                    last_seen BIGINT NOT NULL,
                    PRIMARY KEY (digest, client_addr)
                )",
                $options
            ),
            concat!(
                "CREATE TABLE digest_tags (
                    digest TEXT NOT NULL,
                    tag TEXT NOT NULL,
                    last_seen BIGINT NOT NULL,
                    PRIMARY KEY (digest, tag)
                )",
                $options
            ),
            $($more),*
        ]
    };
}

/// One migration: the statements of the backend's own list, then those both backends run.
pub struct Migration {
    pub both: &'static [&'static str],
    pub sqlite: &'static [&'static str],
    pub postgres: &'static [&'static str],
}

/// Migration `n` (1-based) is `MIGRATIONS[n - 1]`: its statements run in one transaction.
pub const MIGRATIONS: &[Migration] = &[
    Migration {
        both: LEDGER,
        sqlite: &[],
        postgres: &[],
    },
    Migration {
        both: INVENTORY,
        sqlite: &[],
        postgres: &[],
    },
    // On SQLite the findings index covers every column the audit report reads, so the report
    // reads the index alone (half the time of a look-up in the table per row). PostgreSQL keeps
    // the narrow index: its index entries are limited to about 2.7 kB, and `reasons` and
    // `identities` are not bounded.
    Migration {
        both: &[],
        sqlite: &[
            "DROP INDEX pulls_findings",
            "CREATE INDEX pulls_findings ON pulls (last_seen, image, digest, upstream, rule, mode, verdict, admission, finding, tag, reasons, identities, client_addr, user_name, pulls, first_seen) WHERE (verdict IN ('unverified', 'error') OR admission = 'refused')",
        ],
        postgres: &[],
    },
    Migration {
        both: &["CREATE INDEX pulls_digest ON pulls (digest, last_seen)"],
        sqlite: &[],
        postgres: &[],
    },
    Migration {
        both: CONSOLE,
        sqlite: &[],
        postgres: &[],
    },
    // On SQLite the digest index covers what the inventory's answers read of each digest's
    // pulls (tags, times, counts, clients, within a time, rule and upstream), so that an
    // answer naming thousands of digests reads index entries in order instead of looking up
    // each of their rows in the table. PostgreSQL keeps the narrow index (its index-only
    // scans depend on the visibility map, which a busy ledger keeps stale).
    Migration {
        both: &[],
        sqlite: &[
            "DROP INDEX pulls_digest",
            "CREATE INDEX pulls_digest ON pulls (digest, last_seen, rule, upstream, tag, first_seen, pulls, client_addr)",
        ],
        postgres: &[],
    },
    // The packages of every SBOM stored once each: `packages` (one row per distinct package,
    // found by its fingerprint) and `sbom_contents` (which digest lists which package).
    Migration {
        both: &[
            "CREATE INDEX packages_key ON packages (key)",
            "CREATE INDEX packages_name ON packages (name)",
            "CREATE INDEX packages_osv ON packages (ecosystem, osv_name)",
            "CREATE INDEX packages_upstream ON packages (ecosystem, upstream)",
            "CREATE INDEX sbom_contents_package ON sbom_contents (package, digest)",
        ],
        sqlite: SQLITE_PACKAGES,
        postgres: POSTGRES_PACKAGES,
    },
    // Each digest's pulls summed (`super::rollup`), filled from the ledger. On PostgreSQL the
    // digest index now carries what the answers narrowed by time, rule or upstream read, as
    // SQLite's does since migration 6: past days' rows stay all-visible once autovacuum has
    // passed, so their index-only scans skip the table; today's rows are read from it.
    Migration {
        both: DIGEST_SUMS,
        sqlite: &digest_sums_tables!(" WITHOUT ROWID"),
        postgres: &digest_sums_tables!(
            "",
            "DROP INDEX pulls_digest",
            "CREATE INDEX pulls_digest ON pulls (digest, last_seen) INCLUDE (rule, upstream, tag, first_seen, pulls, client_addr)"
        ),
    },
];

/// Migration 8, after each backend created the tables: the sums filled from the ledger, and
/// the pairs indexed by when they were last seen (what a prune deletes).
const DIGEST_SUMS: &[&str] = &[
    "INSERT INTO digest_tags (digest, tag, last_seen)
        SELECT digest, tag, max(last_seen) FROM pulls WHERE tag <> '' GROUP BY digest, tag",
    "INSERT INTO digest_clients (digest, client_addr, last_seen)
        SELECT digest, client_addr, max(last_seen) FROM pulls GROUP BY digest, client_addr",
    "INSERT INTO digest_pulls (digest, first_seen, last_seen, pulls, clients, tags)
        SELECT digest, min(first_seen), max(last_seen), sum(pulls), count(DISTINCT client_addr),
            coalesce((SELECT string_agg(t.tag, ',') FROM digest_tags t
                WHERE t.digest = pulls.digest), '')
        FROM pulls GROUP BY digest",
    "CREATE INDEX digest_clients_last_seen ON digest_clients (last_seen)",
    "CREATE INDEX digest_tags_last_seen ON digest_tags (last_seen)",
];

/// Migration 7 on SQLite: the new tables filled from `sbom_packages`, which is then dropped
/// (`portcullis_fingerprint` is [`super::inventory::fingerprint`], registered on the
/// connection that migrates). A statement's `WHERE true` lets SQLite tell an upsert clause
/// from a join's.
const SQLITE_PACKAGES: &[&str] = &[
    "CREATE TABLE packages (
        id INTEGER PRIMARY KEY,
        fingerprint BLOB NOT NULL UNIQUE,
        key TEXT NOT NULL,
        version TEXT NOT NULL,
        purl TEXT NOT NULL,
        keyed TEXT NOT NULL,
        ecosystem TEXT NOT NULL,
        name TEXT NOT NULL,
        osv_name TEXT NOT NULL,
        upstream TEXT NOT NULL,
        distro TEXT NOT NULL
    )",
    "CREATE TABLE sbom_contents (
        digest TEXT NOT NULL,
        package BIGINT NOT NULL,
        PRIMARY KEY (digest, package)
    ) WITHOUT ROWID",
    "INSERT INTO packages (fingerprint, key, version, purl, keyed, ecosystem, name, osv_name, upstream, distro)
        SELECT portcullis_fingerprint(key, version, purl, keyed, ecosystem, name, osv_name, upstream, distro),
            key, version, purl, keyed, ecosystem, name, osv_name, upstream, distro
        FROM (SELECT DISTINCT key, version, purl, keyed, ecosystem, name, osv_name, upstream, distro FROM sbom_packages)",
    "INSERT INTO sbom_contents (digest, package)
        SELECT o.digest, p.id FROM sbom_packages o JOIN packages p
            ON p.fingerprint = portcullis_fingerprint(o.key, o.version, o.purl, o.keyed, o.ecosystem, o.name, o.osv_name, o.upstream, o.distro)
        WHERE true ON CONFLICT DO NOTHING",
    "DROP TABLE sbom_packages",
];

/// Migration 7 on PostgreSQL, as [`SQLITE_PACKAGES`]; the fingerprint is the same SHA-256
/// over each field's length (4 bytes, big-endian) and UTF-8 bytes, in column order.
const POSTGRES_PACKAGES: &[&str] = &[
    "CREATE TABLE packages (
        id BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY,
        fingerprint BYTEA NOT NULL UNIQUE,
        key TEXT NOT NULL,
        version TEXT NOT NULL,
        purl TEXT NOT NULL,
        keyed TEXT NOT NULL,
        ecosystem TEXT NOT NULL,
        name TEXT NOT NULL,
        osv_name TEXT NOT NULL,
        upstream TEXT NOT NULL,
        distro TEXT NOT NULL
    )",
    "CREATE TABLE sbom_contents (
        digest TEXT NOT NULL,
        package BIGINT NOT NULL,
        PRIMARY KEY (digest, package)
    )",
    "CREATE FUNCTION pg_temp.portcullis_fingerprint(VARIADIC f text[]) RETURNS bytea
        LANGUAGE sql IMMUTABLE AS
        $$ SELECT sha256(coalesce(string_agg(int4send(octet_length(x)) || convert_to(x, 'UTF8'), ''::bytea ORDER BY n), ''::bytea))
           FROM unnest(f) WITH ORDINALITY AS t(x, n) $$",
    "INSERT INTO packages (fingerprint, key, version, purl, keyed, ecosystem, name, osv_name, upstream, distro)
        SELECT pg_temp.portcullis_fingerprint(key, version, purl, keyed, ecosystem, name, osv_name, upstream, distro),
            key, version, purl, keyed, ecosystem, name, osv_name, upstream, distro
        FROM (SELECT DISTINCT key, version, purl, keyed, ecosystem, name, osv_name, upstream, distro FROM sbom_packages) d",
    "INSERT INTO sbom_contents (digest, package)
        SELECT o.digest, p.id FROM sbom_packages o JOIN packages p
            ON p.fingerprint = pg_temp.portcullis_fingerprint(o.key, o.version, o.purl, o.keyed, o.ecosystem, o.name, o.osv_name, o.upstream, o.distro)
        ON CONFLICT DO NOTHING",
    "DROP TABLE sbom_packages",
    "DROP FUNCTION pg_temp.portcullis_fingerprint(text[])",
];

const CONSOLE: &[&str] = &[
    "CREATE TABLE pull_hours (
        hour BIGINT NOT NULL,
        rule TEXT NOT NULL,
        mode TEXT NOT NULL,
        verdict TEXT NOT NULL,
        admission TEXT NOT NULL,
        pulls BIGINT NOT NULL,
        PRIMARY KEY (hour, rule, mode, verdict, admission)
    )",
    "INSERT INTO pull_hours (hour, rule, mode, verdict, admission, pulls)
        SELECT (last_seen / 3600000) * 3600, rule, mode, verdict, admission, sum(pulls)
        FROM pulls GROUP BY (last_seen / 3600000) * 3600, rule, mode, verdict, admission",
    "CREATE TABLE verdicts (
        digest TEXT NOT NULL,
        rule TEXT NOT NULL,
        image TEXT NOT NULL,
        verified BIGINT NOT NULL,
        first_decided BIGINT NOT NULL,
        decided_at BIGINT NOT NULL,
        detail TEXT NOT NULL,
        PRIMARY KEY (digest, rule)
    )",
    "CREATE INDEX verdicts_first ON verdicts (first_decided)",
];

const LEDGER: &[&str] = &[
    "CREATE TABLE pulls (
        day BIGINT NOT NULL,
        image TEXT NOT NULL,
        digest TEXT NOT NULL,
        tag TEXT NOT NULL,
        upstream TEXT NOT NULL,
        rule TEXT NOT NULL,
        mode TEXT NOT NULL,
        verdict TEXT NOT NULL,
        admission TEXT NOT NULL,
        finding TEXT NOT NULL,
        client_addr TEXT NOT NULL,
        user_agent TEXT NOT NULL,
        user_name TEXT NOT NULL,
        reasons TEXT NOT NULL,
        identities TEXT NOT NULL,
        pulls BIGINT NOT NULL,
        first_seen BIGINT NOT NULL,
        last_seen BIGINT NOT NULL,
        PRIMARY KEY (day, image, digest, tag, rule, mode, verdict, admission, client_addr, user_agent, user_name)
    )",
    "CREATE INDEX pulls_last_seen ON pulls (last_seen)",
    "CREATE INDEX pulls_image ON pulls (image, last_seen)",
    "CREATE INDEX pulls_findings ON pulls (last_seen) WHERE (verdict IN ('unverified', 'error') OR admission = 'refused')",
];

const INVENTORY: &[&str] = &[
    "CREATE TABLE advisories (
        id TEXT PRIMARY KEY,
        modified TEXT NOT NULL,
        withdrawn TEXT NOT NULL,
        summary TEXT NOT NULL,
        document TEXT NOT NULL,
        imported_at BIGINT NOT NULL
    )",
    "CREATE TABLE advisory_ids (
        alias TEXT NOT NULL,
        id TEXT NOT NULL,
        PRIMARY KEY (alias, id)
    )",
    "CREATE INDEX advisory_ids_id ON advisory_ids (id)",
    "CREATE TABLE advisory_packages (
        id TEXT NOT NULL,
        ecosystem TEXT NOT NULL,
        name TEXT NOT NULL,
        PRIMARY KEY (id, ecosystem, name)
    )",
    "CREATE INDEX advisory_packages_name ON advisory_packages (ecosystem, name)",
    "CREATE TABLE sboms (
        digest TEXT PRIMARY KEY,
        image TEXT NOT NULL,
        status TEXT NOT NULL,
        provenance TEXT NOT NULL,
        signer TEXT NOT NULL,
        format TEXT NOT NULL,
        error TEXT NOT NULL,
        packages BIGINT NOT NULL,
        ingested_at BIGINT NOT NULL
    )",
    "CREATE TABLE sbom_packages (
        digest TEXT NOT NULL,
        key TEXT NOT NULL,
        version TEXT NOT NULL,
        purl TEXT NOT NULL,
        keyed TEXT NOT NULL,
        ecosystem TEXT NOT NULL,
        name TEXT NOT NULL,
        osv_name TEXT NOT NULL,
        upstream TEXT NOT NULL,
        distro TEXT NOT NULL,
        PRIMARY KEY (digest, key, version, purl)
    )",
    "CREATE INDEX sbom_packages_key ON sbom_packages (key)",
    "CREATE INDEX sbom_packages_name ON sbom_packages (name)",
    "CREATE INDEX sbom_packages_osv ON sbom_packages (ecosystem, osv_name)",
    "CREATE INDEX sbom_packages_upstream ON sbom_packages (ecosystem, upstream)",
];

/// The table that records which migrations ran.
pub const VERSION_TABLE: &str =
    "CREATE TABLE IF NOT EXISTS portcullis_schema (version BIGINT PRIMARY KEY, applied_at BIGINT NOT NULL)";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_partial_index_is_the_findings_predicate() {
        assert!(LEDGER[3].ends_with(&format!("WHERE {FINDINGS_PREDICATE}")));
        assert!(MIGRATIONS[2].sqlite[1].ends_with(&format!("WHERE {FINDINGS_PREDICATE}")));
        assert_eq!(MIGRATIONS.len() as i64, VERSION);
        assert!(LEDGER[0].contains(&format!("PRIMARY KEY ({KEY_COLUMNS})")));
        // The inventory's digest index covers what its answers read.
        for column in [
            "digest",
            "tag",
            "first_seen",
            "last_seen",
            "pulls",
            "client_addr",
            "rule",
            "upstream",
        ] {
            assert!(MIGRATIONS[5].sqlite[1].contains(column), "{column}");
            assert!(
                super::super::inventory::PULLS_OF_SQLITE.contains(column),
                "{column}"
            );
        }
        // The covering index holds every column the report selects.
        for column in super::super::summary::COLUMNS.split(',').map(str::trim) {
            assert!(MIGRATIONS[2].sqlite[1].contains(column), "{column}");
        }
    }
}
