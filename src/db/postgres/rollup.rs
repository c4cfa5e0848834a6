//! The ledger's sums per digest on PostgreSQL ([`crate::db::rollup`]). Replicas add pulls at
//! once, each batch in one statement; a prune rebuilds the sums of the
//! digests it removed rows of. A transaction-scoped advisory lock keeps the two apart: adding
//! takes it shared, pruning exclusive, each as its transaction's first statement, so a batch
//! never adds to sums that a prune is rebuilding from rows that batch has not committed yet.

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
    let mut clients: [Vec<&str>; 2] = Default::default();
    let mut tags: [Vec<&str>; 2] = Default::default();
    for (digest, d) in &sums.0 {
        digests.push(digest.as_str());
        for (c, v) in ints.iter_mut().zip([d.first_seen, d.last_seen, d.pulls]) {
            c.push(v);
        }
        for c in &d.clients {
            clients[0].push(digest);
            clients[1].push(c);
        }
        for t in &d.tags {
            tags[0].push(digest);
            tags[1].push(t);
        }
    }
    let [first, last, pulls] = &ints;
    client
        .execute(
            q::ADD_POSTGRES,
            &[
                &digests,
                first,
                last,
                pulls,
                &clients[0],
                &clients[1],
                &tags[0],
                &tags[1],
            ],
        )
        .await?;
    Ok(())
}

/// Deletes the pulls last seen before `before` and rebuilds the sums of the digests they were
/// of, inside a transaction; the number of pulls rows deleted.
pub(super) async fn prune(client: &Client, before: i64) -> Result<u64, tokio_postgres::Error> {
    client
        .execute("SELECT pg_advisory_xact_lock($1)", &[&SUMS_LOCK])
        .await?;
    client
        .batch_execute("CREATE TEMP TABLE pruned_digests (digest TEXT PRIMARY KEY) ON COMMIT DROP")
        .await?;
    client.execute(q::COLLECT_PRUNED, &[&before]).await?;
    let n = client
        .execute("DELETE FROM pulls WHERE last_seen < $1", &[&before])
        .await?;
    for sql in q::FORGET_PRUNED.iter().chain(&q::REBUILD_PRUNED) {
        client.batch_execute(sql).await?;
    }
    Ok(n)
}

impl Postgres {
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
