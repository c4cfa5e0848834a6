//! The shared backend: PostgreSQL through tokio-postgres, TLS by rustls (aws-lc-rs, the same
//! roots as the upstreams) when the URL's `sslmode` asks for it. Several replicas write to one
//! database: every write is an upsert that adds to a row, so concurrent writers never lose each
//! other's pulls, and migrations run under a transaction-scoped advisory lock so that replicas
//! starting together migrate once.
//!
//! One connection is kept (and a second, opened when first needed, for the second part of a
//! read split in two: the newer half of the audit summary's window, half of an answer's
//! digests and of its packages' holders, half of its advisories' look-ups); when one breaks
//! (server restarted, network cut) the next call opens a new one, so recording resumes by
//! itself once the server is back. The process's transactions take turns on the first
//! connection (`turn`). Every call, connecting included, is bounded by [`CALL_TIMEOUT`]
//! (bringing the schema up to date by [`super::MIGRATION_TIMEOUT`]).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::Mutex;
use tokio_postgres::{Client, Config, Row};

use super::{
    schema, split_tags, summary, where_clause, ClientSummary, DbError, DigestSummary, Filter,
    ImageClients, PullRow, CALL_TIMEOUT,
};
use crate::config::Secret;
use crate::db::console::HourRow;

mod console;
mod inventory;
mod rollup;

/// The advisory lock key migrations hold ("portcull" in ASCII).
const MIGRATION_LOCK: i64 = 0x706f_7274_6375_6c6c;

pub struct Postgres {
    config: Config,
    tls: tokio_postgres_rustls::MakeRustlsConnect,
    client: Mutex<Option<Arc<Client>>>,
    /// A second connection, opened when first needed, for reads split in two
    /// ([`super::Lane`]).
    second: Mutex<Option<Arc<Client>>>,
    /// Whether this process has brought the schema up to date (done on the first connection).
    migrated: AtomicBool,
    /// Held by each transaction on the first connection for its whole length: the tasks of
    /// one process (the ledger's flush and prune, the ingest, imports) share that connection,
    /// on which two open transactions would be one (a `COMMIT` of either committing both).
    transactions: Mutex<()>,
}

impl Postgres {
    /// Connects and migrates. `url` is a `postgres://` URL (or key=value string) without a
    /// password; `password` comes from `password_env`.
    pub async fn open(url: &str, password: Option<&Secret>) -> Result<Postgres, DbError> {
        let mut config: Config = url
            .parse()
            .map_err(|e: tokio_postgres::Error| DbError::Url(e.to_string()))?;
        if let Some(p) = password {
            config.password(p.expose());
        }
        config.connect_timeout(CALL_TIMEOUT);
        let tls_config = rustls::ClientConfig::builder_with_provider(Arc::new(
            rustls::crypto::aws_lc_rs::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .map_err(|e| DbError::Url(format!("TLS set-up: {e}")))?
        .with_root_certificates(crate::upstream::base_roots())
        .with_no_client_auth();
        let db = Postgres {
            config,
            tls: tokio_postgres_rustls::MakeRustlsConnect::new(tls_config),
            client: Mutex::new(None),
            second: Mutex::new(None),
            migrated: AtomicBool::new(false),
            transactions: Mutex::new(()),
        };
        // A server that is down now is not a start-up error: the proxy serves without it, and
        // the first call that reaches it migrates. A schema newer than this program is.
        match db.client().await {
            Ok(_) => {}
            Err(e @ DbError::SchemaTooNew { .. }) => return Err(e),
            Err(e) => tracing::warn!(
                error = %e,
                "postgresql database unreachable at start-up; retried on each ledger write"
            ),
        }
        Ok(db)
    }

    /// This process's turn to run a transaction on the first connection ([`Postgres`]'s
    /// `transactions`), waited for at most [`CALL_TIMEOUT`]; [`in_transaction`] requires it.
    async fn turn(&self) -> Result<Turn<'_>, DbError> {
        tokio::time::timeout(CALL_TIMEOUT, self.transactions.lock())
            .await
            .map(|held| Turn { _held: held })
            .map_err(|_| DbError::Timeout(CALL_TIMEOUT))
    }

    /// The open connection, or a new one.
    async fn client(&self) -> Result<Arc<Client>, DbError> {
        self.client_in(&self.client).await
    }

    /// The connection slot of `lane`.
    fn slot(&self, lane: super::Lane) -> &Mutex<Option<Arc<Client>>> {
        match lane {
            super::Lane::First => &self.client,
            super::Lane::Second => &self.second,
        }
    }

    /// The open connection of `slot`, or a new one (the first connection of the process also
    /// migrates).
    async fn client_in(&self, slot: &Mutex<Option<Arc<Client>>>) -> Result<Arc<Client>, DbError> {
        let mut slot = slot.lock().await;
        if let Some(c) = slot.as_ref().filter(|c| !c.is_closed()) {
            return Ok(c.clone());
        }
        *slot = None;
        let (client, connection) = bounded(self.config.connect(self.tls.clone())).await?;
        tokio::spawn(async move {
            if let Err(e) = connection.await {
                tracing::debug!(error = %e, "postgresql connection closed");
            }
        });
        if !self.migrated.load(Ordering::Acquire) {
            migrate(&client).await?;
            self.migrated.store(true, Ordering::Release);
        }
        let client = Arc::new(client);
        *slot = Some(client.clone());
        Ok(client)
    }
}

/// Brings the schema up to date, once per process (replicas serialise on the advisory lock).
async fn migrate(client: &Client) -> Result<(), DbError> {
    bounded_for(super::MIGRATION_TIMEOUT, async {
        client.batch_execute("BEGIN").await?;
        let result = migrate_locked(client).await;
        match &result {
            Ok(()) => client.batch_execute("COMMIT").await?,
            Err(_) => client.batch_execute("ROLLBACK").await?,
        }
        result
    })
    .await
}

impl Postgres {
    pub async fn add_pulls(
        &self,
        rows: Vec<PullRow>,
        hours: Vec<HourRow>,
        sums: super::rollup::Rollup,
    ) -> Result<(), DbError> {
        let turn = self.turn().await?;
        let client = self.client().await?;
        // One statement for the whole batch: the rows as arrays, unnested.
        let mut cols: [Vec<&str>; 13] = Default::default();
        let mut ints: [Vec<i64>; 4] = Default::default();
        for r in &rows {
            for (c, v) in cols.iter_mut().zip([
                &r.image,
                &r.digest,
                &r.tag,
                &r.upstream,
                &r.rule,
                &r.mode,
                &r.verdict,
                &r.admission,
                &r.finding,
                &r.client_addr,
                &r.user_agent,
                &r.user_name,
                &r.reasons,
            ]) {
                c.push(v.as_str());
            }
            for (c, v) in ints
                .iter_mut()
                .zip([r.day, r.pulls, r.first_seen, r.last_seen])
            {
                c.push(v);
            }
        }
        let identities: Vec<&str> = rows.iter().map(|r| r.identities.as_str()).collect();
        let sql = format!(
            "INSERT INTO pulls (image, digest, tag, upstream, rule, mode, verdict, admission,
                finding, client_addr, user_agent, user_name, reasons, identities, day, pulls,
                first_seen, last_seen)
             SELECT * FROM UNNEST($1::text[], $2::text[], $3::text[], $4::text[], $5::text[],
                $6::text[], $7::text[], $8::text[], $9::text[], $10::text[], $11::text[],
                $12::text[], $13::text[], $14::text[], $15::bigint[], $16::bigint[],
                $17::bigint[], $18::bigint[])
             ON CONFLICT ({}) DO UPDATE SET
                pulls = pulls.pulls + excluded.pulls,
                first_seen = LEAST(pulls.first_seen, excluded.first_seen),
                last_seen = GREATEST(pulls.last_seen, excluded.last_seen),
                upstream = excluded.upstream,
                finding = excluded.finding,
                reasons = excluded.reasons,
                identities = excluded.identities",
            schema::KEY_COLUMNS
        );
        let [c0, c1, c2, c3, c4, c5, c6, c7, c8, c9, c10, c11, c12] = &cols;
        let [i0, i1, i2, i3] = &ints;
        let result = bounded(in_transaction(&turn, &client, async {
            rollup::share(&client).await?;
            client
                .execute(
                    &sql,
                    &[
                        c0,
                        c1,
                        c2,
                        c3,
                        c4,
                        c5,
                        c6,
                        c7,
                        c8,
                        c9,
                        c10,
                        c11,
                        c12,
                        &identities,
                        i0,
                        i1,
                        i2,
                        i3,
                    ],
                )
                .await?;
            for h in &hours {
                client
                    .execute(
                        crate::db::console::UPSERT_HOUR,
                        &[
                            &h.hour,
                            &h.rule,
                            &h.mode,
                            &h.verdict,
                            &h.admission,
                            &h.pulls,
                        ],
                    )
                    .await?;
            }
            rollup::add(&client, &sums).await?;
            Ok::<(), tokio_postgres::Error>(())
        }))
        .await;
        self.forget_if_failed(&client, result.is_err()).await;
        result
    }

    pub async fn digests(&self, filter: &Filter) -> Result<Vec<DigestSummary>, DbError> {
        let (clause, strings) = where_clause(filter, |n| format!("${n}"));
        let sql = format!(
            "SELECT image, digest, max(upstream), rule, mode, verdict, admission, max(finding),
                string_agg(DISTINCT tag, ','), max(reasons), max(identities),
                sum(pulls)::bigint, count(DISTINCT client_addr || ' ' || user_name),
                min(first_seen), max(last_seen)
             FROM pulls WHERE {clause}
             GROUP BY image, digest, rule, mode, verdict, admission"
        );
        let rows = self.query(&sql, filter.since, &strings).await?;
        rows.iter()
            .map(|row| {
                Ok(DigestSummary {
                    image: row.try_get(0)?,
                    digest: row.try_get(1)?,
                    upstream: row.try_get(2)?,
                    rule: row.try_get(3)?,
                    mode: row.try_get(4)?,
                    verdict: row.try_get(5)?,
                    admission: row.try_get(6)?,
                    finding: row.try_get(7)?,
                    tags: split_tags(row.try_get(8)?),
                    reasons: row.try_get(9)?,
                    identities: row.try_get(10)?,
                    pulls: row.try_get(11)?,
                    clients: row.try_get(12)?,
                    first_seen: row.try_get(13)?,
                    last_seen: row.try_get(14)?,
                })
            })
            .collect()
    }

    /// Streams one half of the window's rows (never all held at once) into
    /// [`summary::Summaries`] ([`super::Database::summaries`]), on the half's own connection.
    pub async fn summaries(
        &self,
        filter: &Filter,
        half: super::Half,
    ) -> Result<summary::Summaries, DbError> {
        let (clause, strings) = where_clause(filter, |n| format!("${n}"));
        let sql = format!(
            "SELECT {} FROM pulls WHERE {clause}{}",
            summary::COLUMNS,
            half.clause()
        );
        let slot = self.slot(half.lane());
        let client = self.client_in(slot).await?;
        let mut params: Vec<&(dyn tokio_postgres::types::ToSql + Sync)> = vec![&filter.since];
        for s in &strings {
            params.push(s);
        }
        let result = bounded(async {
            let rows = client.query_raw(sql.as_str(), params).await?;
            futures_util::pin_mut!(rows);
            let mut sums = summary::Summaries::default();
            while let Some(row) = futures_util::StreamExt::next(&mut rows).await {
                let row = row?;
                let text = |i: usize| row.try_get::<_, RawText<'_>>(i).map(|t| t.0);
                sums.add(summary::Row::read(text, |i| row.try_get(i))?);
            }
            Ok::<_, tokio_postgres::Error>(sums)
        })
        .await;
        self.forget_in(slot, &client, result.is_err()).await;
        result
    }

    pub async fn image_clients(&self, filter: &Filter) -> Result<Vec<ImageClients>, DbError> {
        let (clause, strings) = where_clause(filter, |n| format!("${n}"));
        let sql = format!(
            "SELECT image, rule, verdict, admission,
                count(DISTINCT client_addr || ' ' || user_name)
             FROM pulls WHERE {clause}
             GROUP BY image, rule, verdict, admission"
        );
        let rows = self.query(&sql, filter.since, &strings).await?;
        rows.iter()
            .map(|row| {
                Ok(ImageClients {
                    image: row.try_get(0)?,
                    rule: row.try_get(1)?,
                    verdict: row.try_get(2)?,
                    admission: row.try_get(3)?,
                    clients: row.try_get(4)?,
                })
            })
            .collect()
    }

    pub async fn clients_of(
        &self,
        image: &str,
        since: i64,
        limit: i64,
    ) -> Result<Vec<ClientSummary>, DbError> {
        let client = self.client().await?;
        let result = bounded(client.query(
            "SELECT client_addr, user_agent, user_name, sum(pulls)::bigint, min(first_seen),
                max(last_seen)
             FROM pulls WHERE image = $1 AND last_seen >= $2
             GROUP BY client_addr, user_agent, user_name
             ORDER BY max(last_seen) DESC LIMIT $3",
            &[&image, &since, &limit],
        ))
        .await;
        self.forget_if_failed(&client, result.is_err()).await;
        result?
            .iter()
            .map(|row| {
                Ok(ClientSummary {
                    client_addr: row.try_get(0)?,
                    user_agent: row.try_get(1)?,
                    user_name: row.try_get(2)?,
                    pulls: row.try_get(3)?,
                    first_seen: row.try_get(4)?,
                    last_seen: row.try_get(5)?,
                })
            })
            .collect()
    }

    pub async fn prune(&self, before: i64) -> Result<u64, DbError> {
        let turn = self.turn().await?;
        let client = self.client().await?;
        let hour = before.div_euclid(1000);
        let result = bounded(in_transaction(&turn, &client, async {
            let n = rollup::prune(&client, before).await?;
            client
                .execute("DELETE FROM pull_hours WHERE hour < $1", &[&hour])
                .await?;
            client
                .execute("DELETE FROM verdicts WHERE decided_at < $1", &[&before])
                .await?;
            Ok::<u64, tokio_postgres::Error>(n)
        }))
        .await;
        self.forget_if_failed(&client, result.is_err()).await;
        result
    }

    async fn query(&self, sql: &str, since: i64, strings: &[String]) -> Result<Vec<Row>, DbError> {
        let client = self.client().await?;
        let mut params: Vec<&(dyn tokio_postgres::types::ToSql + Sync)> = vec![&since];
        for s in strings {
            params.push(s);
        }
        let result = bounded(client.query(sql, &params)).await;
        self.forget_if_failed(&client, result.is_err()).await;
        result
    }

    /// Drops the connection after a failed call (it may have broken, or be left mid-statement
    /// by a timeout), so the next call opens a new one.
    async fn forget_if_failed(&self, client: &Arc<Client>, failed: bool) {
        self.forget_in(&self.client, client, failed).await
    }

    async fn forget_in(
        &self,
        slot: &Mutex<Option<Arc<Client>>>,
        client: &Arc<Client>,
        failed: bool,
    ) {
        if failed || client.is_closed() {
            let mut slot = slot.lock().await;
            if slot.as_ref().is_some_and(|c| Arc::ptr_eq(c, client)) {
                *slot = None;
            }
        }
    }
}

async fn migrate_locked(client: &Client) -> Result<(), DbError> {
    client
        .execute("SELECT pg_advisory_xact_lock($1)", &[&MIGRATION_LOCK])
        .await?;
    // The server's notice that the version table exists already would be logged by every
    // command that opens the database; this transaction's warnings and errors are enough.
    client
        .batch_execute("SET LOCAL client_min_messages = warning")
        .await?;
    client.batch_execute(schema::VERSION_TABLE).await?;
    let current: i64 = client
        .query_one(
            "SELECT coalesce(max(version), 0) FROM portcullis_schema",
            &[],
        )
        .await?
        .try_get(0)?;
    if current > schema::VERSION {
        return Err(DbError::SchemaTooNew {
            found: current,
            known: schema::VERSION,
        });
    }
    for (i, migration) in schema::MIGRATIONS.iter().enumerate() {
        let version = i as i64 + 1;
        if version <= current {
            continue;
        }
        for s in migration.postgres.iter().chain(migration.both) {
            client.batch_execute(s).await?;
        }
        client
            .execute(
                "INSERT INTO portcullis_schema (version, applied_at) VALUES ($1, $2)",
                &[&version, &super::now_ms()],
            )
            .await?;
    }
    Ok(())
}

/// A transaction's turn on the first connection ([`Postgres::turn`]), held until dropped.
struct Turn<'a> {
    _held: tokio::sync::MutexGuard<'a, ()>,
}

/// Runs `body` between `BEGIN` and `COMMIT` on `client`, during the caller's `turn`; a failed
/// body is rolled back and its error returned.
async fn in_transaction<T, F>(
    _turn: &Turn<'_>,
    client: &Client,
    body: F,
) -> Result<T, tokio_postgres::Error>
where
    F: std::future::Future<Output = Result<T, tokio_postgres::Error>>,
{
    client.batch_execute("BEGIN").await?;
    match body.await {
        Ok(v) => {
            client.batch_execute("COMMIT").await?;
            Ok(v)
        }
        Err(e) => {
            let _ = client.batch_execute("ROLLBACK").await;
            Err(e)
        }
    }
}

/// A `TEXT` column's bytes as the server sent them, for the rows a summary reads by the
/// hundred thousand: [`summary::Row`] takes bytes and decodes (lossily) only what it keeps, so
/// the UTF-8 check and type-name look-up of `&str` would be spent on every column of every row.
struct RawText<'a>(&'a [u8]);

impl<'a> tokio_postgres::types::FromSql<'a> for RawText<'a> {
    fn from_sql(
        _: &tokio_postgres::types::Type,
        raw: &'a [u8],
    ) -> Result<Self, Box<dyn std::error::Error + Sync + Send>> {
        Ok(RawText(raw))
    }

    fn accepts(ty: &tokio_postgres::types::Type) -> bool {
        use tokio_postgres::types::Type;
        *ty == Type::TEXT || *ty == Type::VARCHAR
    }
}

/// Bounds a database call by [`CALL_TIMEOUT`].
async fn bounded<T, E, F>(f: F) -> Result<T, DbError>
where
    F: std::future::Future<Output = Result<T, E>>,
    DbError: From<E>,
{
    bounded_for(CALL_TIMEOUT, f).await
}

/// [`bounded`] by `limit`.
async fn bounded_for<T, E, F>(limit: Duration, f: F) -> Result<T, DbError>
where
    F: std::future::Future<Output = Result<T, E>>,
    DbError: From<E>,
{
    match tokio::time::timeout(limit, f).await {
        Ok(r) => r.map_err(DbError::from),
        Err(_) => Err(DbError::Timeout(limit)),
    }
}
