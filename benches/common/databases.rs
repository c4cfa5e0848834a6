//! The databases a bench measures: SQLite at a path, and PostgreSQL when
//! PORTCULLIS_BENCH_POSTGRES_URL names an empty database. Shared by `benches/ledger_audit.rs`
//! and `benches/inventory.rs`.

use portcullis::config::DatabaseSettings;
use portcullis::db::Database;

/// Each database by name (`sqlite`, then `postgresql`), opened and migrated.
pub async fn databases(sqlite: std::path::PathBuf) -> Vec<(&'static str, Database)> {
    let mut out = vec![(
        "sqlite",
        Database::open(&DatabaseSettings::Sqlite { path: sqlite })
            .await
            .expect("sqlite"),
    )];
    if let Ok(url) = std::env::var("PORTCULLIS_BENCH_POSTGRES_URL") {
        let settings = DatabaseSettings::Postgres {
            url,
            password: None,
            password_env: None,
        };
        out.push((
            "postgresql",
            Database::open(&settings).await.expect("postgresql"),
        ));
    }
    out
}
