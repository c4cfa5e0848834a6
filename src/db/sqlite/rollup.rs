//! The ledger's sums per digest on SQLite ([`crate::db::rollup`]): kept by the writer's
//! transaction that adds pulls, subtracted from by a prune, read by the inventory's answers
//! over all pulls.

use rusqlite::{params, Transaction};

use super::{blocking, lock, Sqlite};
use crate::db::inventory::DigestPulls;
use crate::db::rollup::{self as q, Rollup};
use crate::db::DbError;

/// Adds a batch's sums, inside the transaction that adds its pulls: a client address counts,
/// and a tag is appended, when its pair with the digest is new.
pub(super) fn add(tx: &Transaction<'_>, rollup: &Rollup) -> rusqlite::Result<()> {
    let mut sums = tx.prepare_cached(q::ADD_SQLITE)?;
    for (digest, d) in &rollup.0 {
        let gained = pairs(tx, [q::INSERT_CLIENT, q::TOUCH_CLIENT], digest, &d.clients)?;
        let tags = pairs(tx, [q::INSERT_TAG, q::TOUCH_TAG], digest, &d.tags)?.join(",");
        sums.execute(params![
            digest,
            d.first_seen,
            d.last_seen,
            d.pulls,
            gained.len() as i64,
            tags
        ])?;
    }
    Ok(())
}

/// Records `digest`'s pairs with each of `seen` (value, last seen) by `insert`, or `touch`
/// when known already; the values that were new.
fn pairs<'a>(
    tx: &Transaction<'_>,
    [insert, touch]: [&str; 2],
    digest: &str,
    seen: &'a std::collections::BTreeMap<String, i64>,
) -> rusqlite::Result<Vec<&'a str>> {
    let mut insert = tx.prepare_cached(insert)?;
    let mut touch = tx.prepare_cached(touch)?;
    let mut new = Vec::new();
    for (value, last_seen) in seen {
        if insert.execute(params![digest, value, last_seen])? > 0 {
            new.push(value.as_str());
        } else {
            touch.execute(params![digest, value, last_seen])?;
        }
    }
    Ok(new)
}

/// Deletes the pulls last seen before `before` and subtracts them from the sums, in `tx`; the
/// number of pulls rows deleted.
pub(super) fn prune(tx: &Transaction<'_>, before: i64) -> rusqlite::Result<usize> {
    tx.execute(
        "CREATE TEMP TABLE IF NOT EXISTS pruned_digests
            (digest TEXT PRIMARY KEY, pulls BIGINT NOT NULL, clients BIGINT NOT NULL)",
        [],
    )?;
    tx.execute("DELETE FROM pruned_digests", [])?;
    let mut deleted = 0;
    for (i, sql) in q::PRUNE.iter().enumerate() {
        let n = tx.execute(sql, params![before])?;
        if i == q::PRUNE_PULLS {
            deleted = n;
        }
    }
    tx.execute("DELETE FROM pruned_digests", [])?;
    Ok(deleted)
}

impl Sqlite {
    /// When the oldest pull left was last seen.
    pub async fn oldest_pull(&self) -> Result<Option<i64>, DbError> {
        let conn = self.writer.clone();
        blocking(&self.path, move || {
            let conn = lock(&conn);
            Ok(conn.query_row(q::OLDEST_PULL, [], |r| r.get(0))?)
        })
        .await
    }

    pub async fn digest_pulls(
        &self,
        digests: Vec<String>,
        lane: crate::db::Lane,
    ) -> Result<Vec<DigestPulls>, DbError> {
        let conn = self.reader_in(lane);
        let list = serde_json::Value::from(digests).to_string();
        blocking(&self.path, move || {
            let conn = lock(&conn);
            let mut stmt = conn.prepare_cached(q::READ_SQLITE)?;
            let rows = stmt.query_map(params![list], |r| {
                Ok(q::read(
                    r.get(0)?,
                    [r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?],
                    r.get(5)?,
                ))
            })?;
            Ok(rows.collect::<Result<Vec<_>, _>>()?)
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use crate::config::DatabaseSettings;
    use crate::db::inventory::PullsWithin;
    use crate::db::{schema, Database};
    use rusqlite::{params, Connection};

    /// A ledger written at schema 7, opened by this version: migration 8 sums each digest's
    /// pulls as the rows do (the e2e tests check batches and prunes on both backends).
    #[tokio::test]
    async fn migration_8_sums_an_existing_ledger() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("portcullis.db");
        {
            let conn = Connection::open(&path).unwrap();
            super::super::inventory::register_fingerprint(&conn).unwrap();
            assert!(super::super::migrate_through(&conn, &schema::MIGRATIONS[..7]).is_ok());
            for (day, digest, tag, client, pulls, seen) in [
                (0, "sha256:a", "v1", "10.0.0.1", 2, 1_000),
                (86_400, "sha256:a", "v1", "10.0.0.1", 5, 90_000_000),
                (0, "sha256:a", "", "10.0.0.2", 1, 2_000),
                (0, "sha256:b", "v2", "10.0.0.1", 1, 1_500),
            ] {
                conn.execute(
                    "INSERT INTO pulls VALUES ($1, 'company/app', $2, $3, 'docker.io', 'company',
                        'audit', 'verified', 'served', '', $4, 'containerd', '', '[]', '[]',
                        $5, $6, $6)",
                    params![day, digest, tag, client, pulls, seen],
                )
                .unwrap();
            }
        }
        let db = Database::open(&DatabaseSettings::Sqlite { path })
            .await
            .unwrap();
        let wanted = vec!["sha256:a".to_owned(), "sha256:b".to_owned()];
        let all = PullsWithin::default();
        let rows = PullsWithin {
            since: 1,
            ..PullsWithin::default()
        };
        let summed = db.pulls_of(wanted.clone(), all).await.unwrap();
        assert_eq!(summed, db.pulls_of(wanted, rows).await.unwrap());
        assert_eq!((summed[0].pulls, summed[0].clients), (8, 2));
        assert_eq!(summed[0].tags, ["v1"]);
        assert_eq!((summed[1].first_seen, summed[1].last_seen), (1_500, 1_500));
    }
}
