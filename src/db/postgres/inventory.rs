//! The inventory's calls on PostgreSQL: each call's statements in one transaction on the
//! shared connection, bounded like every other call.

use super::{bounded, in_transaction, Postgres};
use crate::db::inventory::{self as q, AdvisoryCounts, AdvisoryRow};
use crate::db::DbError;

impl Postgres {
    pub async fn put_advisories(&self, rows: Vec<AdvisoryRow>) -> Result<(), DbError> {
        let turn = self.turn().await?;
        let client = self.client().await?;
        let now = crate::db::now_ms();
        let result = bounded(in_transaction(&turn, &client, async {
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

use crate::db::inventory::{
    DigestPulls, PackageRow, PullsWithin, SbomRow, StoredPackage, Unrecorded,
};

/// How many packages one insert statement carries.
const INSERT_CHUNK: usize = 10_000;

impl Postgres {
    pub async fn put_sbom(&self, s: SbomRow, packages: Vec<PackageRow>) -> Result<(), DbError> {
        let turn = self.turn().await?;
        let client = self.client().await?;
        let now = crate::db::now_ms();
        let count = packages.len() as i64;
        let result = bounded(in_transaction(&turn, &client, async {
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
            client.execute(q::DELETE_CONTENTS, &[&s.digest]).await?;
            // Two statements per chunk of packages: an SBOM of 50 000 packages is a few round
            // trips, not 50 000.
            for chunk in packages.chunks(INSERT_CHUNK) {
                let fingerprints: Vec<Vec<u8>> = chunk.iter().map(q::fingerprint).collect();
                let mut columns: [Vec<&str>; 9] = Default::default();
                for p in chunk {
                    for (c, v) in columns.iter_mut().zip(q::fields(p)) {
                        c.push(v);
                    }
                }
                let mut params: Vec<&(dyn tokio_postgres::types::ToSql + Sync)> =
                    vec![&fingerprints];
                params.extend(
                    columns
                        .iter()
                        .map(|c| c as &(dyn tokio_postgres::types::ToSql + Sync)),
                );
                client.execute(q::INSERT_PACKAGE_ROWS, &params).await?;
                client
                    .execute(q::INSERT_CONTENTS, &[&s.digest, &fingerprints])
                    .await?;
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
    ) -> Result<Vec<StoredPackage>, DbError> {
        let slot = self.slot(lane);
        let client = self.client_in(slot).await?;
        let params: Vec<&(dyn tokio_postgres::types::ToSql + Sync)> =
            args.iter().map(|a| a as _).collect();
        let result = bounded(client.query(sql, &params)).await;
        self.forget_in(slot, &client, result.is_err()).await;
        result?
            .iter()
            .map(|r| {
                Ok(StoredPackage {
                    id: r.try_get(0)?,
                    row: q::package_row(texts(r, 1)?),
                })
            })
            .collect()
    }

    pub async fn find_osv_packages(
        &self,
        wanted: &[(String, String)],
        lane: crate::db::Lane,
    ) -> Result<Vec<Vec<StoredPackage>>, DbError> {
        let (ecosystems, names): (Vec<&str>, Vec<&str>) =
            wanted.iter().map(|(e, n)| (e.as_str(), n.as_str())).unzip();
        let slot = self.slot(lane);
        let client = self.client_in(slot).await?;
        let result = bounded(client.query(q::FIND_OSV_POSTGRES, &[&ecosystems, &names])).await;
        self.forget_in(slot, &client, result.is_err()).await;
        let mut found: Vec<Vec<StoredPackage>> = vec![Vec::new(); wanted.len()];
        for r in result? {
            let n: i64 = r.try_get(0)?;
            let package = StoredPackage {
                id: r.try_get(1)?,
                row: q::package_row(texts(&r, 2)?),
            };
            // Numbered from 1 by the statement, one of `wanted`'s places.
            if let Some(list) = usize::try_from(n - 1).ok().and_then(|i| found.get_mut(i)) {
                list.push(package);
            }
        }
        Ok(found)
    }

    pub async fn holders_of(
        &self,
        ids: &[i64],
        lane: crate::db::Lane,
    ) -> Result<q::Holders, DbError> {
        let slot = self.slot(lane);
        let client = self.client_in(slot).await?;
        let result = bounded(client.query(q::HOLDERS_OF_POSTGRES, &[&ids])).await;
        self.forget_in(slot, &client, result.is_err()).await;
        let mut holders = q::Holders::default();
        for r in result? {
            holders.add(r.try_get(0)?, r.try_get(1)?, || {
                Ok::<_, DbError>(q::sbom_row(texts(&r, 1)?))
            })?;
        }
        Ok(holders)
    }

    pub async fn packages_in(&self, digest: &str) -> Result<Vec<PackageRow>, DbError> {
        let client = self.client().await?;
        let result = bounded(client.query(q::PACKAGES_IN, &[&digest])).await;
        self.forget_if_failed(&client, result.is_err()).await;
        result?
            .iter()
            .map(|r| Ok(q::package_row(texts(r, 0)?)))
            .collect()
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
        result?.map(|r| Ok(q::sbom_row(texts(&r, 0)?))).transpose()
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

/// `N` columns of a row from `first` on, each text.
fn texts<const N: usize>(
    r: &tokio_postgres::Row,
    first: usize,
) -> Result<[String; N], tokio_postgres::Error> {
    let mut c: [String; N] = std::array::from_fn(|_| String::new());
    for (i, v) in c.iter_mut().enumerate() {
        *v = r.try_get(first + i)?;
    }
    Ok(c)
}
