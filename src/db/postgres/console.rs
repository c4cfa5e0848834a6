//! The console's calls on PostgreSQL, bounded like every other call.

use super::{bounded, in_transaction, Postgres};
use crate::db::console::{self as q, HourRow, VerdictRow};
use crate::db::DbError;

fn verdict_row(r: &tokio_postgres::Row) -> Result<VerdictRow, DbError> {
    Ok(VerdictRow {
        digest: r.try_get(0)?,
        rule: r.try_get(1)?,
        image: r.try_get(2)?,
        verified: r.try_get::<_, i64>(3)? != 0,
        first_decided: r.try_get(4)?,
        decided_at: r.try_get(5)?,
        detail: r.try_get(6)?,
    })
}

impl Postgres {
    pub async fn pull_hours(&self, since_hour: i64) -> Result<Vec<HourRow>, DbError> {
        let client = self.client().await?;
        let result = bounded(client.query(
            "SELECT hour, rule, mode, verdict, admission, pulls FROM pull_hours
             WHERE hour >= $1 ORDER BY hour",
            &[&since_hour],
        ))
        .await;
        self.forget_if_failed(&client, result.is_err()).await;
        result?
            .iter()
            .map(|r| {
                Ok(HourRow {
                    hour: r.try_get(0)?,
                    rule: r.try_get(1)?,
                    mode: r.try_get(2)?,
                    verdict: r.try_get(3)?,
                    admission: r.try_get(4)?,
                    pulls: r.try_get(5)?,
                })
            })
            .collect()
    }

    pub async fn put_verdicts(&self, rows: Vec<VerdictRow>) -> Result<(), DbError> {
        let turn = self.turn().await?;
        let client = self.client().await?;
        let result = bounded(in_transaction(&turn, &client, async {
            for r in &rows {
                let verified = i64::from(r.verified);
                client
                    .execute(
                        q::UPSERT_VERDICT,
                        &[
                            &r.digest,
                            &r.rule,
                            &r.image,
                            &verified,
                            &r.first_decided,
                            &r.decided_at,
                            &r.detail,
                        ],
                    )
                    .await?;
            }
            Ok::<(), tokio_postgres::Error>(())
        }))
        .await;
        self.forget_if_failed(&client, result.is_err()).await;
        result
    }

    pub async fn verdicts(
        &self,
        sql: &str,
        digests: &[String],
    ) -> Result<Vec<VerdictRow>, DbError> {
        let client = self.client().await?;
        let params: Vec<&(dyn tokio_postgres::types::ToSql + Sync)> = digests
            .iter()
            .map(|d| d as &(dyn tokio_postgres::types::ToSql + Sync))
            .collect();
        let result = bounded(client.query(sql, &params)).await;
        self.forget_if_failed(&client, result.is_err()).await;
        result?.iter().map(verdict_row).collect()
    }

    pub async fn new_verdicts(&self, since: i64, limit: i64) -> Result<Vec<VerdictRow>, DbError> {
        let client = self.client().await?;
        let sql = format!(
            "{} WHERE first_decided >= $1 ORDER BY first_decided DESC LIMIT $2",
            q::SELECT_VERDICT
        );
        let result = bounded(client.query(&sql, &[&since, &limit])).await;
        self.forget_if_failed(&client, result.is_err()).await;
        result?.iter().map(verdict_row).collect()
    }
}
