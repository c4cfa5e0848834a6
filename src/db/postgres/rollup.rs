//! The ledger's sums per digest on PostgreSQL ([`crate::db::rollup`]). Replicas add pulls at
//! once, each batch in three statements; a prune subtracts what it deletes. A transaction-scoped
//! advisory lock keeps the two apart: adding takes it shared, pruning exclusive, each as its
//! transaction's first statement, so a batch never adds to sums that a prune is computing from
//! rows that batch has not committed yet.

use std::collections::HashMap;

use tokio_postgres::Client;

use super::{bounded, Postgres};
use crate::db::inventory::DigestPulls;
use crate::db::rollup::{self as q, Rollup};
use crate::db::DbError;

/// The advisory lock key of the per-digest sums ("pdigests" in ASCII).
const SUMS_LOCK: i64 = 0x7064_6967_6573_7473;

/// Takes the sums' lock shared, for a transaction that adds pulls.
pub(super) async fn share(client: &Client) -> Result<(), tokio_postgres::Error> {
    client
        .execute("SELECT pg_advisory_xact_lock_shared($1)", &[&SUMS_LOCK])
        .await
        .map(drop)
}

/// Adds a batch's sums, inside the transaction that adds its pulls.
pub(super) async fn add(client: &Client, sums: &Rollup) -> Result<(), tokio_postgres::Error> {
    let mut digests = Vec::new();
    let mut ints: [Vec<i64>; 3] = Default::default();
    let mut clients = Pairs::default();
    let mut tags = Pairs::default();
    for (digest, d) in &sums.0 {
        digests.push(digest.as_str());
        for (c, v) in ints.iter_mut().zip([d.first_seen, d.last_seen, d.pulls]) {
            c.push(v);
        }
        clients.extend(digest, &d.clients);
        tags.extend(digest, &d.tags);
    }
    let gained: HashMap<String, i64> = news(client, q::ADD_CLIENTS_POSTGRES, &clients).await?;
    let added: HashMap<String, String> = news(client, q::ADD_TAGS_POSTGRES, &tags).await?;
    let gained: Vec<i64> = digests
        .iter()
        .map(|d| gained.get(*d).copied().unwrap_or(0))
        .collect();
    let added: Vec<&str> = digests
        .iter()
        .map(|d| added.get(*d).map_or("", String::as_str))
        .collect();
    let [first, last, pulls] = &ints;
    client
        .execute(
            q::ADD_POSTGRES,
            &[&digests, first, last, pulls, &gained, &added],
        )
        .await?;
    Ok(())
}

/// Records `pairs` by `sql` ([`q::ADD_CLIENTS_POSTGRES`], [`q::ADD_TAGS_POSTGRES`]): what was
/// new, per digest. No pairs, no statement.
async fn news<V>(
    client: &Client,
    sql: &str,
    pairs: &Pairs<'_>,
) -> Result<HashMap<String, V>, tokio_postgres::Error>
where
    V: for<'r> tokio_postgres::types::FromSql<'r>,
{
    if pairs.digests.is_empty() {
        return Ok(HashMap::new());
    }
    client
        .query(sql, &[&pairs.digests, &pairs.values, &pairs.seen])
        .await?
        .iter()
        .map(|r| Ok((r.try_get(0)?, r.try_get(1)?)))
        .collect()
}

/// (digest, value, last seen) triples as three arrays.
#[derive(Default)]
struct Pairs<'a> {
    digests: Vec<&'a str>,
    values: Vec<&'a str>,
    seen: Vec<i64>,
}

impl<'a> Pairs<'a> {
    fn extend(&mut self, digest: &'a str, seen: &'a std::collections::BTreeMap<String, i64>) {
        for (value, last_seen) in seen {
            self.digests.push(digest);
            self.values.push(value);
            self.seen.push(*last_seen);
        }
    }
}

/// Deletes the pulls last seen before `before` and subtracts them from the sums, inside a
/// transaction; the number of pulls rows deleted.
pub(super) async fn prune(client: &Client, before: i64) -> Result<u64, tokio_postgres::Error> {
    client
        .execute("SELECT pg_advisory_xact_lock($1)", &[&SUMS_LOCK])
        .await?;
    client
        .batch_execute(
            "CREATE TEMP TABLE pruned_digests
                (digest TEXT PRIMARY KEY, pulls BIGINT NOT NULL, clients BIGINT NOT NULL)
                ON COMMIT DROP",
        )
        .await?;
    let mut deleted = 0;
    for (i, sql) in q::PRUNE.iter().enumerate() {
        let n = client.execute(*sql, &[&before]).await?;
        if i == q::PRUNE_PULLS {
            deleted = n;
        }
    }
    Ok(deleted)
}

impl Postgres {
    /// When the oldest pull left was last seen.
    pub async fn oldest_pull(&self) -> Result<Option<i64>, DbError> {
        let client = self.client().await?;
        let result = bounded(client.query_one(q::OLDEST_PULL, &[])).await;
        self.forget_if_failed(&client, result.is_err()).await;
        Ok(result?.try_get(0)?)
    }

    pub async fn digest_pulls(
        &self,
        digests: &[String],
        lane: crate::db::Lane,
    ) -> Result<Vec<DigestPulls>, DbError> {
        let slot = self.slot(lane);
        let client = self.client_in(slot).await?;
        let result = bounded(client.query(q::READ_POSTGRES, &[&digests])).await;
        self.forget_in(slot, &client, result.is_err()).await;
        result?
            .iter()
            .map(|r| {
                Ok(q::read(
                    r.try_get(0)?,
                    [r.try_get(1)?, r.try_get(2)?, r.try_get(3)?, r.try_get(4)?],
                    r.try_get(5)?,
                ))
            })
            .collect()
    }
}
