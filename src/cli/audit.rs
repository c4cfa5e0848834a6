//! `portcullis audit`: the audit report from the ledger ([`crate::ledger::report`]) of the
//! database the configuration names, and with `--what-if`, what a proposed configuration would
//! change ([`super::what_if`]). Returns reports; printing is `main`'s.

use crate::config::Config;
use crate::db::{Database, DbError};
use crate::ledger::report::{self, AuditReport, Query, ReportError};

#[derive(Debug, thiserror::Error)]
pub enum AuditError {
    #[error("opening the ledger database ({database}): {error}")]
    Open { database: String, error: DbError },
    #[error("{0}")]
    Report(#[from] ReportError),
}

/// Opens the configuration's database (migrating it, as `serve` would).
pub async fn open(config: &Config) -> Result<Database, AuditError> {
    Database::open(&config.database)
        .await
        .map_err(|error| AuditError::Open {
            database: config.database.describe(),
            error,
        })
}

/// The audit report of `config`'s ledger.
pub async fn audit(config: &Config, q: &Query) -> Result<AuditReport, AuditError> {
    let db = open(config).await?;
    Ok(report::audit(&db, q).await?)
}
