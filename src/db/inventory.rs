//! The inventory's rows (schema migration 2) and their calls on [`Database`]: OSV advisories
//! stored whole with their ids, aliases and package names. Plain strings, as the rest of this
//! layer; what they mean is `inventory`'s.

use super::{Database, DbError};

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
