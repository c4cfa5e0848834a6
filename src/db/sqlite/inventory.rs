//! The inventory's calls on SQLite (the statements are shared with PostgreSQL: SQLite reads
//! `$n` placeholders too).

use rusqlite::params;

use super::{blocking, lock, Sqlite};
use crate::db::inventory::{self as q, AdvisoryCounts, AdvisoryRow};
use crate::db::DbError;

impl Sqlite {
    pub async fn put_advisories(&self, rows: Vec<AdvisoryRow>) -> Result<(), DbError> {
        let conn = self.writer.clone();
        blocking(&self.path, move || {
            let mut conn = lock(&conn);
            let tx = conn.transaction()?;
            let now = crate::db::now_ms();
            for r in &rows {
                tx.prepare_cached(q::UPSERT_ADVISORY)?.execute(params![
                    r.id,
                    r.modified,
                    r.withdrawn,
                    r.summary,
                    r.document,
                    now
                ])?;
                tx.prepare_cached(q::DELETE_IDS)?.execute(params![r.id])?;
                tx.prepare_cached(q::DELETE_PACKAGES)?
                    .execute(params![r.id])?;
                for alias in &r.ids {
                    tx.prepare_cached(q::INSERT_ID)?
                        .execute(params![alias, r.id])?;
                }
                for (eco, name) in &r.packages {
                    tx.prepare_cached(q::INSERT_PACKAGE)?
                        .execute(params![r.id, eco, name])?;
                }
            }
            tx.commit()?;
            Ok(())
        })
        .await
    }

    pub async fn advisories_named(&self, alias: String) -> Result<Vec<(String, String)>, DbError> {
        let conn = self.reader.clone();
        blocking(&self.path, move || {
            let conn = lock(&conn);
            let mut stmt = conn.prepare_cached(q::NAMED)?;
            let rows = stmt.query_map(params![alias], |r| Ok((r.get(0)?, r.get(1)?)))?;
            Ok(rows.collect::<Result<Vec<_>, _>>()?)
        })
        .await
    }

    pub async fn advisory_counts(&self) -> Result<AdvisoryCounts, DbError> {
        let conn = self.reader.clone();
        blocking(&self.path, move || {
            let conn = lock(&conn);
            Ok(conn.query_row(q::COUNTS, [], |r| {
                Ok(AdvisoryCounts {
                    advisories: r.get(0)?,
                    withdrawn: r.get(1)?,
                })
            })?)
        })
        .await
    }
}

use crate::db::inventory::{DigestPulls, PackageHit, PackageRow, PullsWithin, SbomRow, Unrecorded};
use rusqlite::OptionalExtension;

impl Sqlite {
    pub async fn put_sbom(&self, s: SbomRow, packages: Vec<PackageRow>) -> Result<(), DbError> {
        let conn = self.writer.clone();
        blocking(&self.path, move || {
            let mut conn = lock(&conn);
            let tx = conn.transaction()?;
            tx.prepare_cached(q::UPSERT_SBOM)?.execute(params![
                s.digest,
                s.image,
                s.status,
                s.provenance,
                s.signer,
                s.format,
                s.error,
                packages.len() as i64,
                crate::db::now_ms()
            ])?;
            tx.prepare_cached(q::DELETE_SBOM_PACKAGES)?
                .execute(params![s.digest])?;
            {
                let mut stmt = tx.prepare_cached(q::INSERT_SBOM_PACKAGE)?;
                for p in &packages {
                    stmt.execute(params![
                        s.digest,
                        p.key,
                        p.version,
                        p.purl,
                        p.keyed,
                        p.ecosystem,
                        p.name,
                        p.osv_name,
                        p.upstream,
                        p.distro
                    ])?;
                }
            }
            tx.commit()?;
            Ok(())
        })
        .await
    }

    pub async fn find_packages(
        &self,
        sql: String,
        args: Vec<String>,
        lane: crate::db::Lane,
    ) -> Result<Vec<PackageHit>, DbError> {
        let conn = self.reader_in(lane);
        blocking(&self.path, move || {
            let conn = lock(&conn);
            let mut stmt = conn.prepare_cached(&sql)?;
            let rows = stmt.query_map(rusqlite::params_from_iter(args.iter()), |r| {
                Ok(q::hit(texts(r)?))
            })?;
            Ok(rows.collect::<Result<Vec<_>, _>>()?)
        })
        .await
    }

    pub async fn pulls_of(
        &self,
        digests: Vec<String>,
        within: PullsWithin,
        lane: crate::db::Lane,
    ) -> Result<Vec<DigestPulls>, DbError> {
        let conn = self.reader_in(lane);
        let list = serde_json::Value::from(digests).to_string();
        blocking(&self.path, move || {
            let conn = lock(&conn);
            let mut stmt = conn.prepare_cached(q::PULLS_OF_SQLITE)?;
            let mut rows = stmt.query(params![list, within.since, within.rule, within.upstream])?;
            let mut sums = q::PullsSums::default();
            while let Some(r) = rows.next()? {
                let text = |i: usize| super::text_at(r, i, q::PULLS_OF_SQLITE);
                sums.read(text, |i| r.get(i))?;
            }
            Ok(sums.finish())
        })
        .await
    }

    pub async fn sbom_counts(&self) -> Result<Vec<(String, i64)>, DbError> {
        let conn = self.reader.clone();
        blocking(&self.path, move || {
            let conn = lock(&conn);
            let mut stmt = conn.prepare_cached(q::SBOM_COUNTS)?;
            let rows = stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?;
            Ok(rows.collect::<Result<Vec<_>, _>>()?)
        })
        .await
    }

    pub async fn sbom_state(&self, digest: String) -> Result<Option<(String, i64)>, DbError> {
        let conn = self.reader.clone();
        blocking(&self.path, move || {
            let conn = lock(&conn);
            let mut stmt = conn.prepare_cached(q::SBOM_STATE)?;
            Ok(stmt
                .query_row(params![digest], |r| Ok((r.get(0)?, r.get(1)?)))
                .optional()?)
        })
        .await
    }

    pub async fn sbom_of(&self, digest: String) -> Result<Option<SbomRow>, DbError> {
        let conn = self.reader.clone();
        blocking(&self.path, move || {
            let conn = lock(&conn);
            let mut stmt = conn.prepare_cached(q::SBOM_OF)?;
            Ok(stmt
                .query_row(params![digest], |r| Ok(q::sbom_row(texts(r)?)))
                .optional()?)
        })
        .await
    }

    pub async fn unrecorded(&self, limit: i64) -> Result<Vec<Unrecorded>, DbError> {
        let conn = self.reader.clone();
        blocking(&self.path, move || {
            let conn = lock(&conn);
            let mut stmt = conn.prepare_cached(q::UNRECORDED)?;
            let rows = stmt.query_map(params![limit], |r| {
                Ok(Unrecorded {
                    image: r.get(0)?,
                    digest: r.get(1)?,
                    upstream: r.get(2)?,
                    verified: r.get::<_, i64>(3)? > 0,
                })
            })?;
            Ok(rows.collect::<Result<Vec<_>, _>>()?)
        })
        .await
    }
}

/// A row's first `N` columns, each text.
fn texts<const N: usize>(r: &rusqlite::Row) -> rusqlite::Result<[String; N]> {
    let mut c: [String; N] = std::array::from_fn(|_| String::new());
    for (i, v) in c.iter_mut().enumerate() {
        *v = r.get(i)?;
    }
    Ok(c)
}
