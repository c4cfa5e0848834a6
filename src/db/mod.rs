//! The database layer (DESIGN.md §2 `database`, §10): one interface, [`Database`], over two
//! backends: embedded SQLite ([`sqlite`], `state_dir/portcullis.db`, the default) and PostgreSQL
//! ([`postgres`], shared by several replicas). Opening a database runs its migrations
//! ([`schema`]); every call is bounded by a timeout, and SQLite's blocking calls run on tokio's
//! blocking pool, never on the async runtime.
//!
//! The tables and queries are the ledger's and later the inventory's, but this module speaks only
//! plain rows ([`PullRow`], [`DigestSummary`], ...): strings and integers. What the rows mean
//! (verdicts, findings, the audit report) is `ledger`'s. Nothing here logs a password: the
//! PostgreSQL password comes from the environment variable `password_env` names and is handed to
//! the driver only.

pub mod console;
pub mod inventory;
pub mod postgres;
pub mod rollup;
pub mod schema;
pub mod sqlite;
mod summary;

use std::path::PathBuf;
use std::time::Duration;

use crate::config::DatabaseSettings;

/// The last-seen times one prune transaction takes at most ([`Database::prune`]): an hour.
pub const PRUNE_STEP_MS: i64 = 3_600_000;

/// How long one database call may take before it counts as a fault.
pub const CALL_TIMEOUT: Duration = Duration::from_secs(10);

/// How long bringing the schema up to date may take: a migration that moves rows (7, the
/// inventory's packages) takes a while on a large database, once, at the first start after an
/// upgrade.
pub const MIGRATION_TIMEOUT: Duration = Duration::from_secs(30 * 60);

#[derive(Debug, thiserror::Error)]
pub enum DbError {
    #[error("sqlite database {}: {error}", path.display())]
    Sqlite {
        path: PathBuf,
        error: rusqlite::Error,
    },
    #[error("cannot create the state directory {}: {error}", path.display())]
    StateDir {
        path: PathBuf,
        error: std::io::Error,
    },
    #[error("postgresql database: {0}")]
    Postgres(#[from] tokio_postgres::Error),
    #[error("postgresql database url: {0}")]
    Url(String),
    #[error("the database did not answer within {0:?}")]
    Timeout(Duration),
    #[error("a database call was cancelled: {0}")]
    Task(String),
    #[error("the database schema is version {found}, newer than this program knows ({known}): upgrade portcullis")]
    SchemaTooNew { found: i64, known: i64 },
    #[error("cannot start the SQLite checkpoint thread: {0}")]
    Thread(std::io::Error),
}

/// One aggregated ledger row: the pulls of one digest by one client under one verdict during one
/// UTC day. Empty strings stand for "none" (no tag, no rule, no user).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PullRow {
    /// Unix seconds of the UTC day the pulls fell in.
    pub day: i64,
    pub image: String,
    pub digest: String,
    pub tag: String,
    pub upstream: String,
    pub rule: String,
    pub mode: String,
    pub verdict: String,
    pub admission: String,
    pub finding: String,
    pub client_addr: String,
    pub user_agent: String,
    pub user_name: String,
    /// JSON array of strings.
    pub reasons: String,
    /// JSON array of strings.
    pub identities: String,
    pub pulls: i64,
    /// Unix milliseconds.
    pub first_seen: i64,
    pub last_seen: i64,
}

impl PullRow {
    /// The row's key ([`schema::KEY_COLUMNS`]), in key order.
    fn key(&self) -> (i64, [&str; 10]) {
        (
            self.day,
            [
                &self.image,
                &self.digest,
                &self.tag,
                &self.rule,
                &self.mode,
                &self.verdict,
                &self.admission,
                &self.client_addr,
                &self.user_agent,
                &self.user_name,
            ],
        )
    }
}

/// What the audit report and the image view select.
#[derive(Debug, Clone, Default)]
pub struct Filter {
    /// Rows last seen at or after this (unix milliseconds).
    pub since: i64,
    /// Only this rule.
    pub rule: Option<String>,
    /// Only this image.
    pub image: Option<String>,
    /// Only rows an audit report lists: unverified, lookup faults, refusals.
    pub findings_only: bool,
}

/// Which of a backend's two reading connections a call runs on: a read split in two parts
/// (the audit summary's halves, the pulls of an answer's digests, an advisory's look-ups) runs
/// both at once.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lane {
    First,
    Second,
}

/// One of the two parts of a window that [`Database::summaries`] reads at once: rows last seen
/// before a time (and at or after the filter's `since`), or at or after it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Half {
    Before(i64),
    From(i64),
}

impl Half {
    /// Halfway from `since` to `now` (ms), `since` itself when the window is empty.
    fn middle(since: i64, now: i64) -> i64 {
        if now <= since {
            since
        } else {
            since.saturating_add(now.saturating_sub(since) / 2)
        }
    }

    /// The connection the half reads on.
    fn lane(self) -> Lane {
        match self {
            Half::Before(_) => Lane::First,
            Half::From(_) => Lane::Second,
        }
    }

    /// The condition on `last_seen` the half adds to a filter's (its bound is a number this
    /// program computed, written into the statement).
    fn clause(self) -> String {
        match self {
            Half::Before(t) => format!(" AND last_seen < {t}"),
            Half::From(t) => format!(" AND last_seen >= {t}"),
        }
    }
}

/// The pulls of one digest under one (rule, mode, verdict, admission), summed over the window.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DigestSummary {
    pub image: String,
    pub digest: String,
    pub upstream: String,
    pub rule: String,
    pub mode: String,
    pub verdict: String,
    pub admission: String,
    pub finding: String,
    /// Distinct tags it was asked for by, sorted; no entry for requests by digest.
    pub tags: Vec<String>,
    pub reasons: String,
    pub identities: String,
    pub pulls: i64,
    /// Distinct (address, user) pairs.
    pub clients: i64,
    pub first_seen: i64,
    pub last_seen: i64,
}

impl DigestSummary {
    /// What it sums over: (image, digest, rule, mode, verdict, admission).
    pub fn group(&self) -> (&str, &str, &str, &str, &str, &str) {
        (
            &self.image,
            &self.digest,
            &self.rule,
            &self.mode,
            &self.verdict,
            &self.admission,
        )
    }
}

/// Distinct clients of one image under one (rule, verdict, admission), over the window.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageClients {
    pub image: String,
    pub rule: String,
    pub verdict: String,
    pub admission: String,
    pub clients: i64,
}

impl ImageClients {
    /// What it counts over: (image, rule, verdict, admission).
    pub fn group(&self) -> (&str, &str, &str, &str) {
        (&self.image, &self.rule, &self.verdict, &self.admission)
    }
}

/// One client of an image, over the window.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientSummary {
    pub client_addr: String,
    pub user_agent: String,
    pub user_name: String,
    pub pulls: i64,
    pub first_seen: i64,
    pub last_seen: i64,
}

/// The database: SQLite or PostgreSQL.
pub enum Database {
    Sqlite(sqlite::Sqlite),
    Postgres(Box<postgres::Postgres>),
}

impl Database {
    /// Opens (creating when needed) the database and brings its schema up to date.
    pub async fn open(settings: &DatabaseSettings) -> Result<Database, DbError> {
        match settings {
            DatabaseSettings::Sqlite { path } => {
                Ok(Database::Sqlite(sqlite::Sqlite::open(path.clone()).await?))
            }
            DatabaseSettings::Postgres { url, password, .. } => Ok(Database::Postgres(Box::new(
                postgres::Postgres::open(url, password.as_ref()).await?,
            ))),
        }
    }

    /// `sqlite` or `postgresql`, for logs and metrics.
    pub fn kind(&self) -> &'static str {
        match self {
            Database::Sqlite(_) => "sqlite",
            Database::Postgres(_) => "postgresql",
        }
    }

    /// Adds `rows` to the ledger in one transaction: a row whose key (day, image, digest, tag,
    /// rule, mode, verdict, admission, client) exists has its pulls added and its first/last seen
    /// widened. The keys of `rows` must be distinct. The same transaction adds their pulls to
    /// the hourly sums ([`console::HourRow`]).
    pub async fn add_pulls(&self, mut rows: Vec<PullRow>) -> Result<(), DbError> {
        if rows.is_empty() {
            return Ok(());
        }
        // In key order: replicas writing at once take the rows' locks in one order.
        rows.sort_by(|a, b| a.key().cmp(&b.key()));
        let hours = console::hours_of(&rows);
        let sums = rollup::Rollup::of(&rows);
        match self {
            Database::Sqlite(db) => db.add_pulls(rows, hours, sums).await,
            Database::Postgres(db) => db.add_pulls(rows, hours, sums).await,
        }
    }

    /// The window's pulls summed per (image, digest, rule, mode, verdict, admission).
    pub async fn digests(&self, filter: &Filter) -> Result<Vec<DigestSummary>, DbError> {
        match self {
            Database::Sqlite(db) => db.digests(filter.clone()).await,
            Database::Postgres(db) => db.digests(filter).await,
        }
    }

    /// What [`Database::digests`] and [`Database::image_clients`] answer together, in one pass
    /// over the window's rows (what the audit report reads). The window is read as two halves
    /// by `last_seen` at once, each on its own connection (and so its own core, the database
    /// server's included), and their sums merged: a week of a large ledger is bounded by
    /// reading its rows.
    pub async fn summaries(
        &self,
        filter: &Filter,
    ) -> Result<(Vec<DigestSummary>, Vec<ImageClients>), DbError> {
        let mid = Half::middle(filter.since, now_ms());
        let (older, newer) = (Half::Before(mid), Half::From(mid));
        let (mut sums, newer) = match self {
            Database::Sqlite(db) => tokio::try_join!(
                db.summaries(filter.clone(), older),
                db.summaries(filter.clone(), newer)
            )?,
            Database::Postgres(db) => {
                tokio::try_join!(db.summaries(filter, older), db.summaries(filter, newer))?
            }
        };
        sums.merge(newer);
        Ok(sums.finish())
    }

    /// Distinct clients per (image, rule, verdict, admission) over the window.
    pub async fn image_clients(&self, filter: &Filter) -> Result<Vec<ImageClients>, DbError> {
        match self {
            Database::Sqlite(db) => db.image_clients(filter.clone()).await,
            Database::Postgres(db) => db.image_clients(filter).await,
        }
    }

    /// The clients of one image over the window, most recent first, at most `limit`.
    pub async fn clients_of(
        &self,
        image: &str,
        since: i64,
        limit: i64,
    ) -> Result<Vec<ClientSummary>, DbError> {
        match self {
            Database::Sqlite(db) => db.clients_of(image.to_owned(), since, limit).await,
            Database::Postgres(db) => db.clients_of(image, since, limit).await,
        }
    }

    /// Deletes rows last seen before `before` (unix milliseconds); returns how many. One
    /// transaction takes at most [`PRUNE_STEP_MS`] of last-seen times, from the oldest pull on:
    /// a prune that has much to delete (retention shortened, the first after a long stop) is
    /// many short transactions, each bounded by [`CALL_TIMEOUT`], between which pulls are
    /// recorded, instead of one that could never finish in time.
    pub async fn prune(&self, before: i64) -> Result<u64, DbError> {
        let mut deleted = 0;
        loop {
            let oldest = match self {
                Database::Sqlite(db) => db.oldest_pull().await?,
                Database::Postgres(db) => db.oldest_pull().await?,
            };
            let bound = match oldest {
                Some(o) if o < before => o.saturating_add(PRUNE_STEP_MS).min(before),
                _ => before,
            };
            deleted += match self {
                Database::Sqlite(db) => db.prune(bound).await?,
                Database::Postgres(db) => db.prune(bound).await?,
            };
            if bound >= before {
                return Ok(deleted);
            }
        }
    }
}

/// The `WHERE` clause of a filter, with `$n` placeholders from `first` on (SQLite accepts the
/// same `?n` numbering), and the string parameters in order after `since`.
fn where_clause(filter: &Filter, placeholder: fn(usize) -> String) -> (String, Vec<String>) {
    let mut sql = format!("last_seen >= {}", placeholder(1));
    let mut params = Vec::new();
    if let Some(rule) = &filter.rule {
        params.push(rule.clone());
        sql.push_str(&format!(" AND rule = {}", placeholder(params.len() + 1)));
    }
    if let Some(image) = &filter.image {
        params.push(image.clone());
        sql.push_str(&format!(" AND image = {}", placeholder(params.len() + 1)));
    }
    if filter.findings_only {
        sql.push_str(&format!(" AND {}", schema::FINDINGS_PREDICATE));
    }
    (sql, params)
}

/// Splits an aggregated, comma-separated tag list, dropping the empty "by digest" entry.
fn split_tags(s: Option<String>) -> Vec<String> {
    let mut tags: Vec<String> = s
        .unwrap_or_default()
        .split(',')
        .filter(|t| !t.is_empty())
        .map(str::to_owned)
        .collect();
    tags.sort();
    tags.dedup();
    tags
}

/// Now, in unix milliseconds.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}
