//! The ledger's sums per digest (schema migration 8) against the pulls they sum, on SQLite and
//! on a real PostgreSQL: after batches that repeat clients, tags and rows, after a retention
//! prune, and after migration 8 filled them from a ledger written at schema 7.

use portcullis::config::DatabaseSettings;
use portcullis::db::inventory::{DigestPulls, PullsWithin};
use portcullis::db::{Database, PullRow};

use crate::ledger::Postgres;

fn digest(c: char) -> String {
    format!("sha256:{}", c.to_string().repeat(64))
}

/// A pull of digest `d` by `client` on UTC day `day`, first and last seen at `seen` ms.
fn pull(d: char, tag: &str, client: &str, day: i64, pulls: i64, seen: i64) -> PullRow {
    PullRow {
        day,
        image: "registry.local/company/app".into(),
        digest: digest(d),
        tag: tag.into(),
        upstream: "registry.local".into(),
        rule: "company".into(),
        mode: "audit".into(),
        verdict: "verified".into(),
        admission: "served".into(),
        finding: "none".into(),
        client_addr: client.into(),
        user_agent: "containerd/2.0".into(),
        user_name: String::new(),
        reasons: "[]".into(),
        identities: "[]".into(),
        pulls,
        first_seen: seen,
        last_seen: seen,
    }
}

/// The pulls of `digests` from the sums (over all pulls) and from the rows (every pull since
/// 1 ms, which is all of them here): they must agree.
async fn both_ways(db: &Database, digests: &[char]) -> Vec<DigestPulls> {
    let wanted: Vec<String> = digests.iter().map(|&c| digest(c)).collect();
    let all = PullsWithin {
        since: 0,
        rule: String::new(),
        upstream: String::new(),
    };
    assert!(all.is_all());
    let rows = PullsWithin {
        since: 1,
        ..all.clone()
    };
    let summed = db.pulls_of(wanted.clone(), all).await.unwrap();
    let counted = db.pulls_of(wanted, rows).await.unwrap();
    assert_eq!(summed, counted, "the sums per digest differ from the pulls");
    summed
}

/// Batches, a repeat of a row's key, a pull by digest, and prunes.
async fn batches_and_a_prune(db: &Database) {
    let day = 86_400;
    db.add_pulls(vec![
        pull('a', "v1", "10.0.0.1", 0, 2, 1_000),
        pull('a', "", "10.0.0.2", 0, 1, 2_000),
        // a's first pull, and its client's only one.
        pull('a', "v1", "10.0.0.4", 0, 1, 500),
        // A tag pulled once, early.
        pull('a', "old", "10.0.0.1", 0, 1, 2_500),
        pull('b', "v2", "10.0.0.1", 0, 1, 1_500),
    ])
    .await
    .unwrap();
    db.add_pulls(vec![
        // The same key as the first row: one row, three more pulls, seen later.
        pull('a', "v1", "10.0.0.1", 0, 3, 5_000),
        pull('a', "latest", "10.0.0.3", day, 1, 90_000_000),
        pull('b', "v2", "10.0.0.1", day, 4, 90_000_100),
    ])
    .await
    .unwrap();
    let sums = both_ways(db, &['a', 'b', 'c']).await;
    assert_eq!(sums.len(), 2, "{sums:?}");
    let a = &sums[0];
    assert_eq!(a.tags, ["latest", "old", "v1"]);
    assert_eq!((a.first_seen, a.last_seen), (500, 90_000_000));
    assert_eq!((a.pulls, a.clients), (9, 4));
    assert_eq!((sums[1].pulls, sums[1].clients), (5, 1));

    // The prune takes a's first pull (500), the pull by digest (2 000), the early tag (2 500)
    // and b's first row (1 500); a's first row was last seen at 5 000.
    assert_eq!(db.prune(3_000).await.unwrap(), 4);
    let sums = both_ways(db, &['a', 'b']).await;
    let a = &sums[0];
    assert_eq!(a.tags, ["latest", "v1"]);
    assert_eq!((a.pulls, a.clients, a.first_seen), (6, 2, 1_000));
    assert_eq!((sums[1].pulls, sums[1].first_seen), (4, 90_000_100));

    // Up to the second day: a's first seen is its second day's.
    assert_eq!(db.prune(86_400_000).await.unwrap(), 1);
    let sums = both_ways(db, &['a', 'b']).await;
    assert_eq!((sums[0].pulls, sums[0].clients), (1, 1));
    assert_eq!(sums[0].first_seen, 90_000_000);
    assert_eq!(sums[0].tags, ["latest"]);

    // Everything pruned: no sums left.
    db.prune(i64::MAX).await.unwrap();
    assert!(both_ways(db, &['a', 'b']).await.is_empty());
}

/// Batches and prunes at once from one process (the ledger's flush and its hourly prune are
/// separate tasks sharing the database's connections): the sums still equal the pulls.
async fn batches_and_prunes_at_once(db: &Database) {
    let hour = 3_600_000;
    let work = (0..24i64).map(|i| async move {
        let seen = 10 * hour + i * hour;
        let batch = db.add_pulls(vec![
            pull(
                'd',
                &format!("t{}", i % 3),
                &format!("10.1.0.{}", i % 5),
                0,
                1,
                seen,
            ),
            pull('e', "", &format!("10.2.0.{i}"), 0, 2, seen + 1),
        ]);
        let prune = db.prune(seen - 6 * hour);
        let (added, pruned) = tokio::join!(batch, prune);
        added.unwrap();
        pruned.unwrap();
    });
    futures_util::future::join_all(work).await;
    let sums = both_ways(db, &['d', 'e']).await;
    assert_eq!(sums.len(), 2, "{sums:?}");
}

async fn on_postgresql(url: String) -> Database {
    Database::open(&DatabaseSettings::Postgres {
        url,
        password: None,
        password_env: None,
    })
    .await
    .unwrap()
}

#[tokio::test]
async fn the_sums_per_digest_follow_the_pulls_on_sqlite() {
    let tmp = tempfile::tempdir().unwrap();
    let db = Database::open(&DatabaseSettings::Sqlite {
        path: tmp.path().join("portcullis.db"),
    })
    .await
    .unwrap();
    batches_and_a_prune(&db).await;
    batches_and_prunes_at_once(&db).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_sums_per_digest_follow_the_pulls_on_postgresql() {
    let Some(pg) = Postgres::get() else {
        return;
    };
    let db = on_postgresql(pg.database("digest_sums").await).await;
    batches_and_a_prune(&db).await;
    batches_and_prunes_at_once(&db).await;
}

/// A PostgreSQL ledger written at schema 7, opened by this version: migration 8 sums it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn migration_8_sums_an_existing_ledger_on_postgresql() {
    let Some(pg) = Postgres::get() else {
        return;
    };
    let (url, client) = pg.database_at("migration_8", 7).await;
    for p in [
        pull('a', "v1", "10.0.0.1", 0, 2, 1_000),
        pull('a', "v1", "10.0.0.1", 86_400, 5, 90_000_000),
        pull('a', "", "10.0.0.2", 0, 1, 2_000),
        pull('b', "v2", "10.0.0.1", 0, 1, 1_500),
    ] {
        client
            .execute(
                "INSERT INTO pulls (day, image, digest, tag, upstream, rule, mode, verdict,
                    admission, finding, client_addr, user_agent, user_name, reasons,
                    identities, pulls, first_seen, last_seen)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15,
                    $16, $17, $18)",
                &[
                    &p.day,
                    &p.image,
                    &p.digest,
                    &p.tag,
                    &p.upstream,
                    &p.rule,
                    &p.mode,
                    &p.verdict,
                    &p.admission,
                    &p.finding,
                    &p.client_addr,
                    &p.user_agent,
                    &p.user_name,
                    &p.reasons,
                    &p.identities,
                    &p.pulls,
                    &p.first_seen,
                    &p.last_seen,
                ],
            )
            .await
            .unwrap();
    }
    let db = on_postgresql(url).await;
    let sums = both_ways(&db, &['a', 'b']).await;
    assert_eq!((sums[0].pulls, sums[0].clients), (8, 2));
    assert_eq!(sums[0].tags, ["v1"]);
    // Later batches add to the migrated sums.
    db.add_pulls(vec![pull('b', "v2", "10.0.0.9", 86_400, 1, 90_000_000)])
        .await
        .unwrap();
    let sums = both_ways(&db, &['a', 'b']).await;
    assert_eq!((sums[1].pulls, sums[1].clients), (2, 2));
}
