//! How long the audit report takes over a large ledger (issue target: `portcullis audit --since
//! 7d` over 1 000 000 pull records across 10 000 images in under 200 ms, on SQLite and on
//! PostgreSQL).
//!
//! Seeds a fresh ledger with LEDGER_ROWS aggregated rows (10 000 images, 100 clients each, spread
//! over the last 7 days; 90 % verified, 6 % let through unverified by an audit rule, 3 % refused,
//! 1 % lookup faults) through the database layer the proxy writes with, then times the report
//! `portcullis audit` prints (query and grouping, JSON rendered), best and median of 5 runs.
//! SQLite always; PostgreSQL when PORTCULLIS_BENCH_POSTGRES_URL names an empty database.
//! Run: `cargo bench --bench ledger_audit`; `LEDGER_SQLITE_PATH` keeps the seeded SQLite file
//! (benchmark-harness/ledger.sh does, to time the `portcullis audit` command itself on it).

use std::time::{Duration, Instant};

use portcullis::db::Database;
use portcullis::ledger::report::{self, Query};

#[path = "common/databases.rs"]
mod databases;
#[path = "common/ledger_rows.rs"]
mod ledger_rows;

use ledger_rows::{rows, IMAGES};

async fn measure(name: &str, db: &Database, total: usize) {
    let now = portcullis::ledger::now_ms();
    let started = Instant::now();
    for batch in rows(total, now) {
        db.add_pulls(batch).await.expect("seeding the ledger");
    }
    let seeded = started.elapsed();
    let q = Query {
        since: Duration::from_secs(7 * 86_400),
        rule: None,
        image: None,
    };
    let mut times = Vec::new();
    let mut entries = 0;
    for _ in 0..5 {
        let t = Instant::now();
        let r = report::audit(db, &q).await.expect("audit report");
        let json = serde_json::to_vec(&r).expect("JSON");
        times.push(t.elapsed());
        entries = r.let_through.len() + r.refused.len() + r.faults.len();
        std::hint::black_box(json);
    }
    times.sort();
    println!(
        "ledger_audit {name}: {total} rows, {IMAGES} images, seeded in {:.1} s; audit --since 7d: best {:.0} ms, median {:.0} ms ({entries} entries)",
        seeded.as_secs_f64(),
        times[0].as_secs_f64() * 1000.0,
        times[2].as_secs_f64() * 1000.0,
    );
}

#[tokio::main]
async fn main() {
    let total: usize = std::env::var("LEDGER_ROWS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1_000_000);
    let dir = tempfile::tempdir().expect("temp dir");
    // LEDGER_SQLITE_PATH keeps the seeded file (benchmark-harness/ledger.sh then times the real
    // `portcullis audit` command on it); it must not exist yet.
    let path = std::env::var_os("LEDGER_SQLITE_PATH")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| dir.path().join("portcullis.db"));
    assert!(!path.exists(), "{} exists already", path.display());
    for (name, db) in databases::databases(path).await {
        measure(name, &db, total).await;
    }
}
