//! The inventory's calls on PostgreSQL: each call's statements in one transaction on the
//! shared connection, bounded like every other call.

use super::{bounded, in_transaction, Postgres};
use crate::db::inventory::{self as q, AdvisoryCounts, AdvisoryRow};
use crate::db::DbError;

impl Postgres {
    pub async fn put_advisories(&self, rows: Vec<AdvisoryRow>) -> Result<(), DbError> {
        let client = self.client().await?;
        let now = crate::db::now_ms();
        let result = bounded(in_transaction(&client, async {
            for r in &rows {
                client
                    .execute(
                        q::UPSERT_ADVISORY,
                        &[
                            &r.id,
                            &r.modified,
                            &r.withdrawn,
                            &r.summary,
                            &r.document,
                            &now,
                        ],
                    )
                    .await?;
                client.execute(q::DELETE_IDS, &[&r.id]).await?;
                client.execute(q::DELETE_PACKAGES, &[&r.id]).await?;
                for alias in &r.ids {
                    client.execute(q::INSERT_ID, &[alias, &r.id]).await?;
                }
                for (eco, name) in &r.packages {
                    client
                        .execute(q::INSERT_PACKAGE, &[&r.id, eco, name])
                        .await?;
                }
            }
            Ok::<(), tokio_postgres::Error>(())
        }))
        .await;
        self.forget_if_failed(&client, result.is_err()).await;
        result
    }

    pub async fn advisories_named(&self, alias: &str) -> Result<Vec<(String, String)>, DbError> {
        let client = self.client().await?;
        let result = bounded(client.query(q::NAMED, &[&alias])).await;
        self.forget_if_failed(&client, result.is_err()).await;
        result?
            .iter()
            .map(|r| Ok((r.try_get(0)?, r.try_get(1)?)))
            .collect()
    }

    pub async fn advisory_counts(&self) -> Result<AdvisoryCounts, DbError> {
        let client = self.client().await?;
        let result = bounded(client.query_one(q::COUNTS, &[])).await;
        self.forget_if_failed(&client, result.is_err()).await;
        let row = result?;
        Ok(AdvisoryCounts {
            advisories: row.try_get(0)?,
            withdrawn: row.try_get(1)?,
        })
    }
}

use crate::db::inventory::{DigestPulls, PackageHit, PackageRow, PullsWithin, SbomRow, Unrecorded};

/// How many packages one insert statement carries.
const INSERT_CHUNK: usize = 10_000;

impl Postgres {
    pub async fn put_sbom(&self, s: SbomRow, packages: Vec<PackageRow>) -> Result<(), DbError> {
        let client = self.client().await?;
        let now = crate::db::now_ms();
        let count = packages.len() as i64;
        let result = bounded(in_transaction(&client, async {
            client
                .execute(
                    q::UPSERT_SBOM,
                    &[
                        &s.digest,
                        &s.image,
                        &s.status,
                        &s.provenance,
                        &s.signer,
                        &s.format,
                        &s.error,
                        &count,
                        &now,
                    ],
                )
                .await?;
            client
                .execute(q::DELETE_SBOM_PACKAGES, &[&s.digest])
                .await?;
            // One statement per chunk of packages: an SBOM of 50 000 packages is a few round
            // trips, not 50 000.
            for chunk in packages.chunks(INSERT_CHUNK) {
                let column = |f: fn(&PackageRow) -> &String| -> Vec<&str> {
                    chunk.iter().map(|p| f(p).as_str()).collect()
                };
                let columns = [
                    column(|p| &p.key),
                    column(|p| &p.version),
                    column(|p| &p.purl),
                    column(|p| &p.keyed),
                    column(|p| &p.ecosystem),
                    column(|p| &p.name),
                    column(|p| &p.osv_name),
                    column(|p| &p.upstream),
                    column(|p| &p.distro),
                ];
                let mut params: Vec<&(dyn tokio_postgres::types::ToSql + Sync)> = vec![&s.digest];
                params.extend(
                    columns
                        .iter()
                        .map(|c| c as &(dyn tokio_postgres::types::ToSql + Sync)),
                );
                client.execute(q::INSERT_SBOM_PACKAGES, &params).await?;
            }
            Ok::<(), tokio_postgres::Error>(())
        }))
        .await;
        self.forget_if_failed(&client, result.is_err()).await;
        result
    }

    pub async fn find_packages(
        &self,
        sql: &str,
        args: &[String],
        lane: crate::db::Lane,
    ) -> Result<Vec<PackageHit>, DbError> {
        let slot = self.slot(lane);
        let client = self.client_in(slot).await?;
        let params: Vec<&(dyn tokio_postgres::types::ToSql + Sync)> =
            args.iter().map(|a| a as _).collect();
        let result = bounded(client.query(sql, &params)).await;
        self.forget_in(slot, &client, result.is_err()).await;
        result?.iter().map(|r| Ok(q::hit(texts(r)?))).collect()
    }

    pub async fn pulls_of(
        &self,
        digests: &[String],
        within: &PullsWithin,
        lane: crate::db::Lane,
    ) -> Result<Vec<DigestPulls>, DbError> {
        let slot = self.slot(lane);
        let client = self.client_in(slot).await?;
        let params: [&(dyn tokio_postgres::types::ToSql + Sync); 4] =
            [&digests, &within.since, &within.rule, &within.upstream];
        // Streamed: an answer naming thousands of digests reads hundreds of thousands of rows.
        let result = bounded(async {
            let rows = client.query_raw(q::PULLS_OF_POSTGRES, params).await?;
            futures_util::pin_mut!(rows);
            let mut sums = q::PullsSums::default();
            while let Some(r) = futures_util::StreamExt::next(&mut rows).await {
                let r = r?;
                let text = |i: usize| r.try_get::<_, super::RawText<'_>>(i).map(|t| t.0);
                sums.read(text, |i| r.try_get(i))?;
            }
            Ok::<_, tokio_postgres::Error>(sums.finish())
        })
        .await;
        self.forget_in(slot, &client, result.is_err()).await;
        result
    }

    pub async fn sbom_counts(&self) -> Result<Vec<(String, i64)>, DbError> {
        let client = self.client().await?;
        let result = bounded(client.query(q::SBOM_COUNTS, &[])).await;
        self.forget_if_failed(&client, result.is_err()).await;
        result?
            .iter()
            .map(|r| Ok((r.try_get(0)?, r.try_get(1)?)))
            .collect()
    }

    pub async fn sbom_state(&self, digest: &str) -> Result<Option<(String, i64)>, DbError> {
        let client = self.client().await?;
        let result = bounded(client.query_opt(q::SBOM_STATE, &[&digest])).await;
        self.forget_if_failed(&client, result.is_err()).await;
        result?
            .map(|r| Ok((r.try_get(0)?, r.try_get(1)?)))
            .transpose()
    }

    pub async fn sbom_of(&self, digest: &str) -> Result<Option<SbomRow>, DbError> {
        let client = self.client().await?;
        let result = bounded(client.query_opt(q::SBOM_OF, &[&digest])).await;
        self.forget_if_failed(&client, result.is_err()).await;
        result?.map(|r| Ok(q::sbom_row(texts(&r)?))).transpose()
    }

    pub async fn unrecorded(&self, limit: i64) -> Result<Vec<Unrecorded>, DbError> {
        let client = self.client().await?;
        let result = bounded(client.query(q::UNRECORDED, &[&limit])).await;
        self.forget_if_failed(&client, result.is_err()).await;
        result?
            .iter()
            .map(|r| {
                Ok(Unrecorded {
                    image: r.try_get(0)?,
                    digest: r.try_get(1)?,
                    upstream: r.try_get(2)?,
                    verified: r.try_get::<_, i32>(3)? > 0,
                })
            })
            .collect()
    }
}

/// A row's first `N` columns, each text.
fn texts<const N: usize>(r: &tokio_postgres::Row) -> Result<[String; N], tokio_postgres::Error> {
    let mut c: [String; N] = std::array::from_fn(|_| String::new());
    for (i, v) in c.iter_mut().enumerate() {
        *v = r.try_get(i)?;
    }
    Ok(c)
}
