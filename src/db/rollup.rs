//! The ledger's sums per digest, for answers over all of its pulls (the inventory's answers
//! without a window, rule or upstream: [`super::Database::pulls_of`]). `digest_pulls` holds each
//! digest's first and last seen, pull count and number of distinct client addresses;
//! `digest_clients` and `digest_tags` are the sets it counts and lists (schema migration 8),
//! its tags also kept in its row, comma-separated (a tag has no comma), so that a read is one
//! look-up per digest.
//!
//! They are kept by the transaction that adds pulls ([`Rollup`]: a client address is counted,
//! and a tag appended, when its pair with the digest is new), and rebuilt from `pulls` for the digests a retention
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

/// The rest of both backends' upsert: counts added, new tags appended.
macro_rules! add_counts {
    () => {
        "
        pulls = digest_pulls.pulls + excluded.pulls,
        clients = digest_pulls.clients + excluded.clients,
        tags = CASE WHEN excluded.tags = '' THEN digest_pulls.tags
            WHEN digest_pulls.tags = '' THEN excluded.tags
            ELSE digest_pulls.tags || ',' || excluded.tags END"
    };
}

/// A (digest, client address) pair, kept when new: `$1` digest, `$2` address.
pub(super) const INSERT_CLIENT: &str =
    "INSERT INTO digest_clients (digest, client_addr) VALUES ($1, $2) ON CONFLICT DO NOTHING";
/// A (digest, tag) pair, kept when new: `$1` digest, `$2` tag.
pub(super) const INSERT_TAG: &str =
    "INSERT INTO digest_tags (digest, tag) VALUES ($1, $2) ON CONFLICT DO NOTHING";
/// Adds one digest's batch (SQLite): `$1` digest, `$2` first seen, `$3` last seen, `$4` pulls,
/// `$5` the number of client addresses new to it, `$6` its new tags, comma-separated.
pub(super) const ADD_SQLITE: &str = concat!(
    "INSERT INTO digest_pulls
        (digest, first_seen, last_seen, pulls, clients, tags) VALUES ($1, $2, $3, $4, $5, $6)
     ON CONFLICT (digest) DO UPDATE SET
        first_seen = min(digest_pulls.first_seen, excluded.first_seen),
        last_seen = max(digest_pulls.last_seen, excluded.last_seen),",
    add_counts!()
);
/// Adds a whole batch (PostgreSQL), in one statement: `$1`..`$4` the digests with their first
/// seen, last seen and pulls; `$5`, `$6` the (digest, client address) pairs; `$7`, `$8` the
/// (digest, tag) pairs. The pairs that are new (`RETURNING` gives only rows inserted) are the
/// clients each digest gains and the tags it adds; a pair a concurrent replica inserts first
/// waits on the primary key and is not counted twice.
pub(super) const ADD_POSTGRES: &str = concat!(
    "WITH new_clients AS (
        INSERT INTO digest_clients (digest, client_addr)
        SELECT * FROM UNNEST($5::text[], $6::text[])
        ON CONFLICT DO NOTHING RETURNING digest
     ), new_tags AS (
        INSERT INTO digest_tags (digest, tag)
        SELECT * FROM UNNEST($7::text[], $8::text[])
        ON CONFLICT DO NOTHING RETURNING digest, tag
     ), clients AS (SELECT digest, count(*) AS n FROM new_clients GROUP BY digest),
     tags AS (SELECT digest, string_agg(tag, ',') AS tags FROM new_tags GROUP BY digest)
     INSERT INTO digest_pulls (digest, first_seen, last_seen, pulls, clients, tags)
     SELECT b.digest, b.first_seen, b.last_seen, b.pulls, coalesce(c.n, 0), coalesce(t.tags, '')
     FROM UNNEST($1::text[], $2::bigint[], $3::bigint[], $4::bigint[])
        AS b(digest, first_seen, last_seen, pulls)
     LEFT JOIN clients c ON c.digest = b.digest
     LEFT JOIN tags t ON t.digest = b.digest
     ORDER BY b.digest
     ON CONFLICT (digest) DO UPDATE SET
        first_seen = LEAST(digest_pulls.first_seen, excluded.first_seen),
        last_seen = GREATEST(digest_pulls.last_seen, excluded.last_seen),",
    add_counts!()
);

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
pub(super) const READ_SQLITE: &str =
    "SELECT digest, first_seen, last_seen, pulls, clients, tags FROM digest_pulls
     WHERE digest IN (SELECT value FROM json_each(?1)) ORDER BY digest";
/// The same on PostgreSQL: `$1` the digests.
pub(super) const READ_POSTGRES: &str =
    "SELECT digest, first_seen, last_seen, pulls, clients, tags FROM digest_pulls
     WHERE digest = ANY($1) ORDER BY digest";

/// A row of [`READ_SQLITE`] / [`READ_POSTGRES`] (the tags comma-separated, in no order).
pub(super) fn read(
    digest: String,
    [first_seen, last_seen, pulls, clients]: [i64; 4],
    tags: String,
) -> DigestPulls {
    DigestPulls {
        digest,
        tags: super::split_tags(Some(tags)),
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
        let d = read("sha256:a".into(), [1, 2, 3, 4], "v2,v1,,v1".into());
        assert_eq!(d.tags, ["v1", "v2"]);
        assert_eq!(
            (d.first_seen, d.last_seen, d.pulls, d.clients),
            (1, 2, 3, 4)
        );
        assert!(read("sha256:a".into(), [0; 4], String::new()).tags.is_empty());
    }
}
