//! The ledger's sums per digest, for answers over all of its pulls (the inventory's answers
//! without a window, rule or upstream: [`super::Database::pulls_of`]). `digest_pulls` holds each
//! digest's first and last seen, pull count, number of distinct client addresses and tags
//! (comma-separated: a tag has no comma), so that a read is one look-up per digest;
//! `digest_clients` and `digest_tags` are the sets it counts and lists, each pair with when it
//! was last seen (schema migration 8).
//!
//! They are kept by the transaction that adds pulls ([`Rollup`]: a client address is counted,
//! and a tag appended, when its pair with the digest is new). A retention prune subtracts what
//! it deletes ([`PRUNE`]): the pulls of the deleted rows, the pairs last seen before its bound
//! (none of their rows is left), and a digest's first seen is found again among its oldest
//! day's rows left. Its cost follows what it deletes, not the size of the ledger. An answer
//! naming 8 000 digests then reads 8 000 rows instead of the 260 000 pulls behind them.

use std::collections::BTreeMap;

use super::inventory::DigestPulls;
use super::PullRow;

/// One digest's part of a batch of pulls.
#[derive(Debug, Default, PartialEq, Eq)]
pub(super) struct DigestBatch {
    pub first_seen: i64,
    pub last_seen: i64,
    pub pulls: i64,
    /// The client addresses that pulled it, each with when it last did, sorted.
    pub clients: BTreeMap<String, i64>,
    /// Its tags (not the empty tag of pulls by digest), each with when it was last pulled by
    /// it, sorted.
    pub tags: BTreeMap<String, i64>,
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
            let seen = d
                .clients
                .entry(r.client_addr.clone())
                .or_insert(r.last_seen);
            *seen = (*seen).max(r.last_seen);
            if !r.tag.is_empty() {
                let seen = d.tags.entry(r.tag.clone()).or_insert(r.last_seen);
                *seen = (*seen).max(r.last_seen);
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

/// A (digest, client address) pair last seen at `?3`, inserted when new (SQLite, as the
/// other statements of its pairs; [`TOUCH_CLIENT`] when known).
pub(super) const INSERT_CLIENT: &str = "INSERT INTO digest_clients (digest, client_addr, last_seen)
     VALUES (?1, ?2, ?3) ON CONFLICT DO NOTHING";
/// A known (digest, client address) pair seen again at `?3`.
pub(super) const TOUCH_CLIENT: &str = "UPDATE digest_clients SET last_seen = ?3
     WHERE digest = ?1 AND client_addr = ?2 AND last_seen < ?3";
/// A (digest, tag) pair, as [`INSERT_CLIENT`].
pub(super) const INSERT_TAG: &str = "INSERT INTO digest_tags (digest, tag, last_seen)
     VALUES (?1, ?2, ?3) ON CONFLICT DO NOTHING";
/// A known (digest, tag) pair, as [`TOUCH_CLIENT`].
pub(super) const TOUCH_TAG: &str = "UPDATE digest_tags SET last_seen = ?3
     WHERE digest = ?1 AND tag = ?2 AND last_seen < ?3";
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
/// The (digest, client address, last seen) triples of a batch (PostgreSQL): `$1`..`$3`; the
/// answer is how many were new, per digest. A pair inserted by this statement (`xmax = 0`: no
/// earlier version of its row) is a client the digest gains; a pair a concurrent replica
/// inserts first waits on the primary key, is updated instead and is not counted twice. A
/// batch's pairs, its tags and its sums are three statements in this order, each in digest
/// order, so that replicas writing at once take their locks in one order.
pub(super) const ADD_CLIENTS_POSTGRES: &str = "WITH pairs AS (
        INSERT INTO digest_clients (digest, client_addr, last_seen)
        SELECT * FROM UNNEST($1::text[], $2::text[], $3::bigint[])
        ON CONFLICT (digest, client_addr) DO UPDATE SET last_seen = excluded.last_seen
            WHERE digest_clients.last_seen < excluded.last_seen
        RETURNING digest, xmax = 0 AS inserted
     )
     SELECT digest, count(*) FROM pairs WHERE inserted GROUP BY digest";
/// The (digest, tag, last seen) triples, as [`ADD_CLIENTS_POSTGRES`]; the answer is each
/// digest's new tags, comma-separated.
pub(super) const ADD_TAGS_POSTGRES: &str = "WITH pairs AS (
        INSERT INTO digest_tags (digest, tag, last_seen)
        SELECT * FROM UNNEST($1::text[], $2::text[], $3::bigint[])
        ON CONFLICT (digest, tag) DO UPDATE SET last_seen = excluded.last_seen
            WHERE digest_tags.last_seen < excluded.last_seen
        RETURNING digest, tag, xmax = 0 AS inserted
     )
     SELECT digest, string_agg(tag, ',') FROM pairs WHERE inserted GROUP BY digest";
/// Adds a batch's sums (PostgreSQL): `$1`..`$6` the digests with their first seen, last seen,
/// pulls, clients gained and new tags.
pub(super) const ADD_POSTGRES: &str = concat!(
    "INSERT INTO digest_pulls (digest, first_seen, last_seen, pulls, clients, tags)
     SELECT * FROM UNNEST($1::text[], $2::bigint[], $3::bigint[], $4::bigint[], $5::bigint[],
        $6::text[])
     ORDER BY 1
     ON CONFLICT (digest) DO UPDATE SET
        first_seen = LEAST(digest_pulls.first_seen, excluded.first_seen),
        last_seen = GREATEST(digest_pulls.last_seen, excluded.last_seen),",
    add_counts!()
);

/// A prune's statements after the backend created the temporary table
/// `pruned_digests (digest, pulls, clients)`, each with `$1` the prune's bound (`?1` on SQLite
/// names the same first parameter), in order: the digests it takes rows of, with those rows'
/// pulls; the client pairs it takes (none of whose rows is left: a pair's last seen is its
/// rows' latest), counted per digest; the rows and the pairs; the digests with nothing left;
/// then for the others the subtraction, their tags listed again and their first seen found
/// again. Rows are per UTC day, their first and last seen within it, so a digest's earliest
/// first seen left is among the rows of the day of its earliest last seen left (an index range
/// of the digest index). Each statement reads what it deletes, or the rows of the digests it
/// subtracts from, through an index: its cost follows what the prune deletes.
pub(super) const PRUNE: [&str; 7] = [
    "INSERT INTO pruned_digests (digest, pulls, clients)
        SELECT digest, sum(pulls), 0 FROM pulls WHERE last_seen < $1 GROUP BY digest",
    "UPDATE pruned_digests SET clients = c.n
     FROM (SELECT digest, count(*) AS n FROM digest_clients WHERE last_seen < $1
        GROUP BY digest) c
     WHERE c.digest = pruned_digests.digest",
    "DELETE FROM pulls WHERE last_seen < $1",
    "DELETE FROM digest_clients WHERE last_seen < $1",
    "DELETE FROM digest_tags WHERE last_seen < $1",
    "DELETE FROM digest_pulls WHERE last_seen < $1
        AND digest IN (SELECT digest FROM pruned_digests)",
    "UPDATE digest_pulls SET pulls = digest_pulls.pulls - p.pulls,
        clients = digest_pulls.clients - p.clients,
        tags = coalesce((SELECT string_agg(t.tag, ',') FROM digest_tags t
            WHERE t.digest = digest_pulls.digest), ''),
        first_seen = coalesce((SELECT min(f.first_seen) FROM pulls f
            WHERE f.digest = digest_pulls.digest AND f.last_seen >= $1
                AND f.last_seen < (SELECT (min(n.last_seen) / 86400000 + 1) * 86400000
                    FROM pulls n WHERE n.digest = digest_pulls.digest AND n.last_seen >= $1)),
            digest_pulls.first_seen)
     FROM pruned_digests p WHERE p.digest = digest_pulls.digest AND digest_pulls.last_seen >= $1",
];

/// Which of [`PRUNE`] deletes the pulls (its count is the prune's).
pub(super) const PRUNE_PULLS: usize = 2;

/// When the oldest pull left was last seen (`NULL`: none).
pub(super) const OLDEST_PULL: &str = "SELECT min(last_seen) FROM pulls";

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
        let clients: Vec<(&str, i64)> = b.clients.iter().map(|(c, s)| (c.as_str(), *s)).collect();
        assert_eq!(clients, [("10.0.0.1", 110), ("10.0.0.3", 310)]);
        let tags: Vec<(&str, i64)> = b.tags.iter().map(|(t, s)| (t.as_str(), *s)).collect();
        assert_eq!(tags, [("v1", 310), ("v2", 30)]);
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
        assert!(read("sha256:a".into(), [0; 4], String::new())
            .tags
            .is_empty());
    }
}
