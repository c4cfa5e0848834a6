//! The console's calls on SQLite (the statements are shared with PostgreSQL: SQLite reads `$n`
//! placeholders too).

use rusqlite::{params, params_from_iter, Transaction};

use super::{blocking, lock, Sqlite};
use crate::db::console::{self as q, HourRow, VerdictRow};
use crate::db::DbError;

/// Adds a batch's hours to `pull_hours`, inside the transaction that adds its pulls.
pub(super) fn add_hours(tx: &Transaction<'_>, hours: &[HourRow]) -> rusqlite::Result<()> {
    let mut stmt = tx.prepare_cached(q::UPSERT_HOUR)?;
    for h in hours {
        stmt.execute(params![
            h.hour,
            h.rule,
            h.mode,
            h.verdict,
            h.admission,
            h.pulls
        ])?;
    }
    Ok(())
}

fn verdict_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<VerdictRow> {
    Ok(VerdictRow {
        digest: r.get(0)?,
        rule: r.get(1)?,
        image: r.get(2)?,
        verified: r.get::<_, i64>(3)? != 0,
        first_decided: r.get(4)?,
        decided_at: r.get(5)?,
        detail: r.get(6)?,
    })
}

impl Sqlite {
    pub async fn pull_hours(&self, since_hour: i64) -> Result<Vec<HourRow>, DbError> {
        let conn = self.reader.clone();
        blocking(&self.path, move || {
            let conn = lock(&conn);
            let mut stmt = conn.prepare_cached(
                "SELECT hour, rule, mode, verdict, admission, pulls FROM pull_hours
                 WHERE hour >= $1 ORDER BY hour",
            )?;
            let rows = stmt.query_map(params![since_hour], |r| {
                Ok(HourRow {
                    hour: r.get(0)?,
                    rule: r.get(1)?,
                    mode: r.get(2)?,
                    verdict: r.get(3)?,
                    admission: r.get(4)?,
                    pulls: r.get(5)?,
                })
            })?;
            Ok(rows.collect::<Result<Vec<_>, _>>()?)
        })
        .await
    }

    pub async fn put_verdicts(&self, rows: Vec<VerdictRow>) -> Result<(), DbError> {
        let conn = self.writer.clone();
        blocking(&self.path, move || {
            let mut conn = lock(&conn);
            let tx = conn.transaction()?;
            {
                let mut stmt = tx.prepare_cached(q::UPSERT_VERDICT)?;
                for r in &rows {
                    stmt.execute(params![
                        r.digest,
                        r.rule,
                        r.image,
                        i64::from(r.verified),
                        r.first_decided,
                        r.decided_at,
                        r.detail
                    ])?;
                }
            }
            tx.commit()?;
            Ok(())
        })
        .await
    }

    pub async fn verdicts(
        &self,
        sql: String,
        digests: Vec<String>,
    ) -> Result<Vec<VerdictRow>, DbError> {
        let conn = self.reader.clone();
        blocking(&self.path, move || {
            let conn = lock(&conn);
            let mut stmt = conn.prepare(&sql)?;
            let rows = stmt.query_map(params_from_iter(digests.iter()), verdict_row)?;
            Ok(rows.collect::<Result<Vec<_>, _>>()?)
        })
        .await
    }

    pub async fn new_verdicts(&self, since: i64, limit: i64) -> Result<Vec<VerdictRow>, DbError> {
        let conn = self.reader.clone();
        blocking(&self.path, move || {
            let conn = lock(&conn);
            let mut stmt = conn.prepare_cached(&format!(
                "{} WHERE first_decided >= $1 ORDER BY first_decided DESC LIMIT $2",
                q::SELECT_VERDICT
            ))?;
            let rows = stmt.query_map(params![since, limit], verdict_row)?;
            Ok(rows.collect::<Result<Vec<_>, _>>()?)
        })
        .await
    }
}
