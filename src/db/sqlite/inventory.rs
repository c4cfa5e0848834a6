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

use crate::db::inventory::{
    DigestPulls, PackageRow, PullsWithin, SbomRow, StoredPackage, Unrecorded,
};
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
            tx.prepare_cached(q::DELETE_CONTENTS)?
                .execute(params![s.digest])?;
            {
                let mut find = tx.prepare_cached(q::PACKAGE_ID)?;
                let mut insert = tx.prepare_cached(q::INSERT_PACKAGE_ROW)?;
                let mut list = tx.prepare_cached(q::INSERT_CONTENT)?;
                for p in &packages {
                    let fingerprint = q::fingerprint(p);
                    let found: Option<i64> = find
                        .query_row(params![fingerprint], |r| r.get(0))
                        .optional()?;
                    let id = match found {
                        Some(id) => id,
                        None => {
                            let [a, b, c, d, e, f, g, h, i] = q::fields(p);
                            insert.execute(params![fingerprint, a, b, c, d, e, f, g, h, i])?;
                            tx.last_insert_rowid()
                        }
                    };
                    list.execute(params![s.digest, id])?;
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
    ) -> Result<Vec<StoredPackage>, DbError> {
        let conn = self.reader_in(lane);
        blocking(&self.path, move || {
            let conn = lock(&conn);
            Ok(stored_packages(&conn, &sql, &args)?)
        })
        .await
    }

    pub async fn find_osv_packages(
        &self,
        wanted: Vec<(String, String)>,
        lane: crate::db::Lane,
    ) -> Result<Vec<Vec<StoredPackage>>, DbError> {
        let conn = self.reader_in(lane);
        blocking(&self.path, move || {
            let conn = lock(&conn);
            let mut found = Vec::with_capacity(wanted.len());
            for (ecosystem, name) in wanted {
                let lookup = q::PackageLookup::Osv { ecosystem, name };
                let (sql, args) = q::lookup_sql(&lookup);
                found.push(stored_packages(&conn, &sql, &args)?);
            }
            Ok(found)
        })
        .await
    }

    pub async fn holders_of(
        &self,
        ids: Vec<i64>,
        lane: crate::db::Lane,
    ) -> Result<q::Holders, DbError> {
        let conn = self.reader_in(lane);
        let list = serde_json::Value::from(ids).to_string();
        blocking(&self.path, move || {
            let conn = lock(&conn);
            let mut stmt = conn.prepare_cached(q::HOLDERS_OF_SQLITE)?;
            let mut rows = stmt.query(params![list])?;
            let mut holders = q::Holders::default();
            while let Some(r) = rows.next()? {
                let digest: &str = r.get_ref(1)?.as_str().map_err(|e| {
                    rusqlite::Error::FromSqlConversionFailure(
                        1,
                        rusqlite::types::Type::Text,
                        e.into(),
                    )
                })?;
                holders.add(r.get(0)?, digest, || texts(r, 1).map(q::sbom_row))?;
            }
            Ok(holders)
        })
        .await
    }

    pub async fn packages_in(&self, digest: String) -> Result<Vec<PackageRow>, DbError> {
        let conn = self.reader.clone();
        blocking(&self.path, move || {
            let conn = lock(&conn);
            let mut stmt = conn.prepare_cached(q::PACKAGES_IN)?;
            let rows = stmt.query_map(params![digest], |r| Ok(q::package_row(texts(r, 0)?)))?;
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
                .query_row(params![digest], |r| Ok(q::sbom_row(texts(r, 0)?)))
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

/// `N` columns of a row from `first` on, each text.
fn texts<const N: usize>(r: &rusqlite::Row, first: usize) -> rusqlite::Result<[String; N]> {
    let mut c: [String; N] = std::array::from_fn(|_| String::new());
    for (i, v) in c.iter_mut().enumerate() {
        *v = r.get(first + i)?;
    }
    Ok(c)
}

/// Registers `portcullis_fingerprint(key, version, purl, keyed, ecosystem, name, osv_name,
/// upstream, distro)` on `conn`: [`q::fingerprint`] for migration 7's SQL.
pub(super) fn register_fingerprint(conn: &rusqlite::Connection) -> rusqlite::Result<()> {
    use rusqlite::functions::FunctionFlags;
    conn.create_scalar_function(
        "portcullis_fingerprint",
        9,
        FunctionFlags::SQLITE_UTF8 | FunctionFlags::SQLITE_DETERMINISTIC,
        |ctx| {
            let mut c: [String; 9] = std::array::from_fn(|_| String::new());
            for (i, v) in c.iter_mut().enumerate() {
                *v = ctx.get(i)?;
            }
            Ok(q::fingerprint(&q::package_row(c)))
        },
    )
}

/// The packages a look-up statement ([`q::lookup_sql`]) finds, with their ids.
fn stored_packages(
    conn: &rusqlite::Connection,
    sql: &str,
    args: &[String],
) -> rusqlite::Result<Vec<StoredPackage>> {
    let mut stmt = conn.prepare_cached(sql)?;
    let rows = stmt.query_map(rusqlite::params_from_iter(args.iter()), |r| {
        Ok(StoredPackage {
            id: r.get(0)?,
            row: q::package_row(texts(r, 1)?),
        })
    })?;
    rows.collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::db::inventory::PackageLookup;
    use crate::db::Lane;
    use rusqlite::Connection;

    fn package(name: &str, version: &str) -> PackageRow {
        PackageRow {
            key: format!("pkg:maven/org.example/{name}"),
            version: version.into(),
            purl: format!("pkg:maven/org.example/{name}@{version}"),
            keyed: "purl".into(),
            ecosystem: "maven".into(),
            name: name.into(),
            osv_name: format!("org.example:{name}"),
            upstream: String::new(),
            distro: String::new(),
        }
    }

    fn sbom(d: char) -> SbomRow {
        SbomRow {
            digest: format!("sha256:{}", d.to_string().repeat(64)),
            image: format!("docker.io/company/{d}"),
            status: "found".into(),
            provenance: "signed".into(),
            signer: "ci".into(),
            format: "spdx".into(),
            error: String::new(),
        }
    }

    /// A database at schema 6 with packages in the old one-row-per-digest table, migrated to 7:
    /// each distinct package stored once, every SBOM still listing its packages, and the
    /// fingerprints migration 7 computed in SQL equal to those of later ingests.
    #[tokio::test]
    async fn migration_7_stores_each_package_once_and_keeps_what_each_sbom_lists() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("portcullis.db");
        {
            let conn = Connection::open(&path).unwrap();
            let migrated =
                super::super::migrate_through(&conn, &crate::db::schema::MIGRATIONS[..6]);
            assert!(migrated.is_ok());
            let mut renamed = package("log4j-core", "2.14.1");
            renamed.name = "log4j".into();
            for (d, packages) in [
                (
                    'a',
                    vec![package("log4j-core", "2.14.1"), package("guava", "31.0")],
                ),
                ('b', vec![package("log4j-core", "2.14.1")]),
                ('c', vec![renamed, package("log4j-core", "2.17.1")]),
            ] {
                let s = sbom(d);
                conn.execute(
                    q::UPSERT_SBOM,
                    params![
                        s.digest,
                        s.image,
                        s.status,
                        s.provenance,
                        s.signer,
                        s.format,
                        s.error,
                        packages.len() as i64,
                        1
                    ],
                )
                .unwrap();
                for p in &packages {
                    let [a, b, c, e, f, g, h, i, j] = q::fields(p);
                    conn.execute(
                        "INSERT INTO sbom_packages (digest, key, version, purl, keyed, ecosystem,
                            name, osv_name, upstream, distro)
                         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
                        params![s.digest, a, b, c, e, f, g, h, i, j],
                    )
                    .unwrap();
                }
            }
        }
        let db = Sqlite::open(path).await.unwrap();
        let log4j = PackageLookup::Key("pkg:maven/org.example/log4j-core".into());
        let (sql, args) = crate::db::inventory::lookup_sql(&log4j);
        let mut found = db.find_packages(sql, args, Lane::First).await.unwrap();
        found.sort_by(|a, b| (&a.row.version, &a.row.name).cmp(&(&b.row.version, &b.row.name)));
        // 2.14.1 under two names, and 2.17.1: three distinct packages for four listings.
        let names: Vec<(&str, &str)> = found
            .iter()
            .map(|p| (p.row.version.as_str(), p.row.name.as_str()))
            .collect();
        assert_eq!(
            names,
            [
                ("2.14.1", "log4j"),
                ("2.14.1", "log4j-core"),
                ("2.17.1", "log4j-core")
            ]
        );
        let holders = db
            .holders_of(vec![found[1].id], Lane::Second)
            .await
            .unwrap();
        let mut holders: Vec<(i64, SbomRow)> =
            holders.pairs().map(|(id, s)| (id, s.clone())).collect();
        holders.sort_by(|a, b| a.1.digest.cmp(&b.1.digest));
        assert_eq!(
            holders,
            vec![(found[1].id, sbom('a')), (found[1].id, sbom('b'))]
        );
        assert_eq!(
            db.packages_in(sbom('a').digest).await.unwrap(),
            vec![package("guava", "31.0"), package("log4j-core", "2.14.1")]
        );
        // A later SBOM with the same package refers to the migrated row.
        db.put_sbom(sbom('d'), vec![package("log4j-core", "2.14.1")])
            .await
            .unwrap();
        let holders = db.holders_of(vec![found[1].id], Lane::First).await.unwrap();
        assert_eq!(holders.pairs().count(), 3);
        let conn = lock(&db.reader);
        let stored: i64 = conn
            .query_row("SELECT count(*) FROM packages", [], |r| r.get(0))
            .unwrap();
        assert_eq!(stored, 4);
    }
}
