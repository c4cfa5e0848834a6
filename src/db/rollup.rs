//! The ledger's sums per digest, for answers over all of its pulls (the inventory's answers
//! without a window, rule or upstream: [`super::Database::pulls_of`]). `digest_pulls` holds each
//! digest's first and last seen, pull count and number of distinct client addresses;
//! `digest_clients` and `digest_tags` are the sets it counts and lists (schema migration 8).
//!
//! They are kept by the transaction that adds pulls ([`Rollup`]: a client address is counted
//! when its (digest, address) pair is new), and rebuilt from `pulls` for the digests a retention
//! prune removed rows of ([`REBUILD_PRUNED`]). An answer naming 8 000 digests then reads 8 000
//! rows instead of the 260 000 pulls behind them.

use std::collections::{BTreeMap, BTreeSet};

use super::inventory::DigestPulls;
use super::PullRow;

/// One digest's part of a batch of pulls.
#[derive(Debug, Default, PartialEq, Eq)]
pub(super) struct DigestBatch {
    pub first_seen: i64,
    pub last_seen: i64,
    pub pulls: i64,
    /// The client addresses that pulled it, sorted, without repeats.
    pub clients: BTreeSet<String>,
    /// Its tags (not the empty tag of pulls by digest), sorted, without repeats.
    pub tags: BTreeSet<String>,
}

/// A batch of pulls summed per digest, in digest order: concurrent writers (PostgreSQL
/// replicas) then take the rows' locks in one order.
#[derive(Debug, Default)]
pub struct Rollup(pub(super) BTreeMap<String, DigestBatch>);

impl Rollup {
    pub(super) fn of(rows: &[PullRow]) -> Rollup {
        let mut out: BTreeMap<String, DigestBatch> = BTreeMap::new();
        for r in rows {
            let d = out.entry(r.digest.clone()).or_insert(DigestBatch {
                first_seen: r.first_seen,
                last_seen: r.last_seen,
                ..DigestBatch::default()
            });
            d.first_seen = d.first_seen.min(r.first_seen);
            d.last_seen = d.last_seen.max(r.last_seen);
            d.pulls += r.pulls;
            d.clients.insert(r.client_addr.clone());
            if !r.tag.is_empty() {
                d.tags.insert(r.tag.clone());
            }
        }
        Rollup(out)
    }
}

/// A (digest, client address) pair, kept when new: `$1` digest, `$2` address.
pub(super) const INSERT_CLIENT: &str =
    "INSERT INTO digest_clients (digest, client_addr) VALUES ($1, $2) ON CONFLICT DO NOTHING";
/// A (digest, tag) pair: `$1` digest, `$2` tag.
pub(super) const INSERT_TAG: &str =
    "INSERT INTO digest_tags (digest, tag) VALUES ($1, $2) ON CONFLICT DO NOTHING";
/// Adds one digest's batch (SQLite): `$1` digest, `$2` first seen, `$3` last seen, `$4` pulls,
/// `$5` client addresses new to it.
pub(super) const ADD_SQLITE: &str = "INSERT INTO digest_pulls
        (digest, first_seen, last_seen, pulls, clients) VALUES ($1, $2, $3, $4, $5)
     ON CONFLICT (digest) DO UPDATE SET
        first_seen = min(digest_pulls.first_seen, excluded.first_seen),
        last_seen = max(digest_pulls.last_seen, excluded.last_seen),
        pulls = digest_pulls.pulls + excluded.pulls,
        clients = digest_pulls.clients + excluded.clients";
/// Adds a whole batch (PostgreSQL), in one statement: `$1`..`$4` the digests with their first
/// seen, last seen and pulls; `$5`, `$6` the (digest, client address) pairs. The pairs that are
/// new (`RETURNING` only rows inserted) are the clients each digest gains; a pair a concurrent
/// replica inserts first waits on the primary key and is not counted twice.
pub(super) const ADD_POSTGRES: &str = "WITH fresh AS (
        INSERT INTO digest_clients (digest, client_addr)
        SELECT * FROM UNNEST($5::text[], $6::text[])
        ON CONFLICT DO NOTHING RETURNING digest
     ), gained AS (SELECT digest, count(*) AS n FROM fresh GROUP BY digest)
     INSERT INTO digest_pulls (digest, first_seen, last_seen, pulls, clients)
     SELECT b.digest, b.first_seen, b.last_seen, b.pulls, coalesce(g.n, 0)
     FROM UNNEST($1::text[], $2::bigint[], $3::bigint[], $4::bigint[])
        AS b(digest, first_seen, last_seen, pulls)
     LEFT JOIN gained g ON g.digest = b.digest
     ORDER BY b.digest
     ON CONFLICT (digest) DO UPDATE SET
        first_seen = LEAST(digest_pulls.first_seen, excluded.first_seen),
        last_seen = GREATEST(digest_pulls.last_seen, excluded.last_seen),
        pulls = digest_pulls.pulls + excluded.pulls,
        clients = digest_pulls.clients + excluded.clients";
/// The (digest, tag) pairs of a batch (PostgreSQL): `$1` digests, `$2` tags.
pub(super) const ADD_TAGS_POSTGRES: &str = "INSERT INTO digest_tags (digest, tag)
     SELECT * FROM UNNEST($1::text[], $2::text[]) ON CONFLICT DO NOTHING";

/// The digests a prune removes rows of, collected before the rows go (`$1` the prune's
/// bound), into the temporary table `pruned_digests` (created by the backend).
pub(super) const COLLECT_PRUNED: &str =
    "INSERT INTO pruned_digests (digest) SELECT DISTINCT digest FROM pulls WHERE last_seen < $1";
/// The sums of the digests in `pruned_digests`, forgotten before [`REBUILD_PRUNED`].
pub(super) const FORGET_PRUNED: [&str; 3] = [
    "DELETE FROM digest_pulls WHERE digest IN (SELECT digest FROM pruned_digests)",
    "DELETE FROM digest_clients WHERE digest IN (SELECT digest FROM pruned_digests)",
    "DELETE FROM digest_tags WHERE digest IN (SELECT digest FROM pruned_digests)",
];
/// The sums of the digests in `pruned_digests`, from the pulls left.
pub(super) const REBUILD_PRUNED: [&str; 3] =
    super::schema::rebuild_digest_sums!("digest IN (SELECT digest FROM pruned_digests)");

/// [`super::Database::pulls_of`] over all pulls on SQLite: `?1` a JSON array of digests.
pub(super) const READ_SQLITE: &str = "SELECT d.digest, d.first_seen, d.last_seen, d.pulls,
        d.clients, (SELECT group_concat(t.tag, char(10)) FROM digest_tags t
            WHERE t.digest = d.digest)
     FROM digest_pulls d WHERE d.digest IN (SELECT value FROM json_each(?1)) ORDER BY d.digest";
/// The same on PostgreSQL: `$1` the digests.
pub(super) const READ_POSTGRES: &str = "SELECT d.digest, d.first_seen, d.last_seen, d.pulls,
        d.clients, (SELECT string_agg(t.tag, E'\\n') FROM digest_tags t
            WHERE t.digest = d.digest)
     FROM digest_pulls d WHERE d.digest = ANY($1) ORDER BY d.digest";

/// A row of [`READ_SQLITE`] / [`READ_POSTGRES`]: the tags come newline-separated (a tag has
/// none), in no order.
pub(super) fn read(
    digest: String,
    [first_seen, last_seen, pulls, clients]: [i64; 4],
    tags: Option<String>,
) -> DigestPulls {
    let mut tags: Vec<String> = tags
        .unwrap_or_default()
        .split('\n')
        .filter(|t| !t.is_empty())
        .map(str::to_owned)
        .collect();
    tags.sort();
    tags.dedup();
    DigestPulls {
        digest,
        tags,
        first_seen,
        last_seen,
        pulls,
        clients,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(digest: &str, tag: &str, client: &str, pulls: i64, seen: i64) -> PullRow {
        PullRow {
            day: 0,
            image: "docker.io/company/app".into(),
            digest: digest.into(),
            tag: tag.into(),
            upstream: "docker.io".into(),
            rule: "company".into(),
            mode: "audit".into(),
            verdict: "verified".into(),
            admission: "served".into(),
            finding: String::new(),
            client_addr: client.into(),
            user_agent: String::new(),
            user_name: String::new(),
            reasons: "[]".into(),
            identities: "[]".into(),
            pulls,
            first_seen: seen,
            last_seen: seen + 10,
        }
    }

    #[test]
    fn a_batch_is_summed_per_digest_in_digest_order() {
        let rollup = Rollup::of(&[
            row("sha256:b", "v1", "10.0.0.1", 2, 100),
            row("sha256:a", "", "10.0.0.2", 1, 50),
            row("sha256:b", "v2", "10.0.0.1", 3, 20),
            row("sha256:b", "v1", "10.0.0.3", 1, 300),
        ]);
        let digests: Vec<&str> = rollup.0.keys().map(String::as_str).collect();
        assert_eq!(digests, ["sha256:a", "sha256:b"]);
        let b = &rollup.0["sha256:b"];
        assert_eq!((b.first_seen, b.last_seen, b.pulls), (20, 310, 6));
        assert_eq!(
            b.clients.iter().collect::<Vec<_>>(),
            ["10.0.0.1", "10.0.0.3"]
        );
        assert_eq!(b.tags.iter().collect::<Vec<_>>(), ["v1", "v2"]);
        // A pull by digest lists no tag.
        assert!(rollup.0["sha256:a"].tags.is_empty());
    }

    #[test]
    fn read_tags_are_sorted_without_the_empty_one() {
        let d = read("sha256:a".into(), [1, 2, 3, 4], Some("v2\nv1\n\nv1".into()));
        assert_eq!(d.tags, ["v1", "v2"]);
        assert_eq!(
            (d.first_seen, d.last_seen, d.pulls, d.clients),
            (1, 2, 3, 4)
        );
        assert!(read("sha256:a".into(), [0; 4], None).tags.is_empty());
    }
}
