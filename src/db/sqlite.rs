//! The embedded backend: one SQLite file (`state_dir/portcullis.db`), compiled in (rusqlite's
//! `bundled`), in WAL mode so that reports read while the ledger writes. Three connections, one
//! for writes and two for reads (a read split in two runs both parts at once: [`super::Lane`]),
//! each behind a mutex; every call runs on tokio's blocking pool and is bounded by
//! [`CALL_TIMEOUT`] (opening, which migrates, by [`super::MIGRATION_TIMEOUT`]). A locked
//! database waits at most [`BUSY_TIMEOUT`] before the call fails (and the ledger counts what it
//! could not write). Each connection reads through a memory map of the file ([`MMAP_BYTES`]).
//! A fourth connection checkpoints the log in the background ([`checkpoint`]).

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rusqlite::{params, params_from_iter, Connection, OpenFlags};

use super::{
    schema, split_tags, summary, where_clause, ClientSummary, DbError, DigestSummary, Filter,
    ImageClients, PullRow, CALL_TIMEOUT,
};
use crate::db::console::HourRow;

mod checkpoint;
mod console;
mod inventory;
mod rollup;

/// How long a statement waits for a lock held by another connection.
pub const BUSY_TIMEOUT: Duration = Duration::from_secs(2);

pub struct Sqlite {
    path: PathBuf,
    writer: Arc<Mutex<Connection>>,
    reader: Arc<Mutex<Connection>>,
    /// A second reader, for the second part of a read split in two ([`super::Lane`]).
    second_reader: Arc<Mutex<Connection>>,
    _checkpointer: checkpoint::Checkpointer,
}

impl Sqlite {
    /// Opens (or creates) the file, its directory included, and migrates it.
    pub async fn open(path: PathBuf) -> Result<Sqlite, DbError> {
        let p = path.clone();
        // Bounded by MIGRATION_TIMEOUT: opening migrates.
        let opened = blocking_for(&path, super::MIGRATION_TIMEOUT, move || {
            if let Some(dir) = p.parent().filter(|d| !d.as_os_str().is_empty()) {
                std::fs::create_dir_all(dir).map_err(|error| Fault::StateDir {
                    path: dir.to_path_buf(),
                    error,
                })?;
            }
            let writer = connect(&p)?;
            writer.pragma_update(None, "journal_mode", "WAL")?;
            writer.pragma_update(None, "synchronous", "NORMAL")?;
            writer.pragma_update(None, "wal_autocheckpoint", checkpoint::BACKSTOP_PAGES)?;
            // A transaction's dirty pages stay in memory up to WRITER_SPILL_PAGES before they
            // are spilled to the log mid-transaction (at the cache size otherwise): the 7 000
            // packages of a large SBOM dirty about 10 000 pages of the package indexes.
            writer.pragma_update(None, "cache_spill", WRITER_SPILL_PAGES)?;
            inventory::register_fingerprint(&writer)?;
            migrate(&writer)?;
            let reader = connect(&p)?;
            let second_reader = connect(&p)?;
            let checkpointer =
                checkpoint::Checkpointer::start(connect(&p)?, &p).map_err(Fault::Thread)?;
            Ok((writer, reader, second_reader, checkpointer))
        })
        .await?;
        let (writer, reader, second_reader, checkpointer) = opened;
        Ok(Sqlite {
            path,
            writer: Arc::new(Mutex::new(writer)),
            reader: Arc::new(Mutex::new(reader)),
            second_reader: Arc::new(Mutex::new(second_reader)),
            _checkpointer: checkpointer,
        })
    }

    /// The reading connection of `lane`.
    fn reader_in(&self, lane: super::Lane) -> Arc<Mutex<Connection>> {
        match lane {
            super::Lane::First => self.reader.clone(),
            super::Lane::Second => self.second_reader.clone(),
        }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub async fn add_pulls(
        &self,
        rows: Vec<PullRow>,
        hours: Vec<HourRow>,
        sums: super::rollup::Rollup,
    ) -> Result<(), DbError> {
        let conn = self.writer.clone();
        blocking(&self.path, move || {
            let mut conn = lock(&conn);
            let tx = conn.transaction()?;
            {
                let mut stmt = tx.prepare_cached(&format!(
                    "INSERT INTO pulls (day, image, digest, tag, upstream, rule, mode, verdict,
                        admission, finding, client_addr, user_agent, user_name, reasons,
                        identities, pulls, first_seen, last_seen)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15,
                        ?16, ?17, ?18)
                     ON CONFLICT ({}) DO UPDATE SET
                        pulls = pulls.pulls + excluded.pulls,
                        first_seen = min(pulls.first_seen, excluded.first_seen),
                        last_seen = max(pulls.last_seen, excluded.last_seen),
                        upstream = excluded.upstream,
                        finding = excluded.finding,
                        reasons = excluded.reasons,
                        identities = excluded.identities",
                    schema::KEY_COLUMNS
                ))?;
                for r in &rows {
                    stmt.execute(params![
                        r.day,
                        r.image,
                        r.digest,
                        r.tag,
                        r.upstream,
                        r.rule,
                        r.mode,
                        r.verdict,
                        r.admission,
                        r.finding,
                        r.client_addr,
                        r.user_agent,
                        r.user_name,
                        r.reasons,
                        r.identities,
                        r.pulls,
                        r.first_seen,
                        r.last_seen
                    ])?;
                }
            }
            console::add_hours(&tx, &hours)?;
            rollup::add(&tx, &sums)?;
            tx.commit()?;
            Ok(())
        })
        .await
    }

    pub async fn digests(&self, filter: Filter) -> Result<Vec<DigestSummary>, DbError> {
        let conn = self.reader.clone();
        blocking(&self.path, move || {
            let (clause, strings) = where_clause(&filter, |n| format!("?{n}"));
            let sql = format!(
                "SELECT image, digest, max(upstream), rule, mode, verdict, admission,
                    max(finding), group_concat(DISTINCT tag), max(reasons), max(identities),
                    sum(pulls), count(DISTINCT client_addr || ' ' || user_name),
                    min(first_seen), max(last_seen)
                 FROM pulls WHERE {clause}
                 GROUP BY image, digest, rule, mode, verdict, admission"
            );
            let conn = lock(&conn);
            let mut stmt = conn.prepare_cached(&sql)?;
            let params = params(filter.since, &strings);
            let rows = stmt.query_map(params_from_iter(params.iter()), |row| {
                Ok(DigestSummary {
                    image: row.get(0)?,
                    digest: row.get(1)?,
                    upstream: row.get(2)?,
                    rule: row.get(3)?,
                    mode: row.get(4)?,
                    verdict: row.get(5)?,
                    admission: row.get(6)?,
                    finding: row.get(7)?,
                    tags: split_tags(row.get(8)?),
                    reasons: row.get(9)?,
                    identities: row.get(10)?,
                    pulls: row.get(11)?,
                    clients: row.get(12)?,
                    first_seen: row.get(13)?,
                    last_seen: row.get(14)?,
                })
            })?;
            Ok(rows.collect::<Result<Vec<_>, _>>()?)
        })
        .await
    }

    /// One half of the window's rows, summed ([`super::Database::summaries`]), on the half's
    /// own reader.
    pub async fn summaries(
        &self,
        filter: Filter,
        half: super::Half,
    ) -> Result<summary::Summaries, DbError> {
        let conn = self.reader_in(half.lane());
        blocking(&self.path, move || {
            let (clause, strings) = where_clause(&filter, |n| format!("?{n}"));
            let sql = format!(
                "SELECT {} FROM pulls WHERE {clause}{}",
                summary::COLUMNS,
                half.clause()
            );
            let conn = lock(&conn);
            // Not cached: the halves' bound is in the text, new at each call.
            let mut stmt = conn.prepare(&sql)?;
            let params = params(filter.since, &strings);
            let mut rows = stmt.query(params_from_iter(params.iter()))?;
            let mut sums = summary::Summaries::default();
            while let Some(row) = rows.next()? {
                let text = |i: usize| text_at(row, i, summary::COLUMNS);
                sums.add(summary::Row::read(text, |i| row.get(i))?);
            }
            Ok(sums)
        })
        .await
    }

    pub async fn image_clients(&self, filter: Filter) -> Result<Vec<ImageClients>, DbError> {
        let conn = self.reader.clone();
        blocking(&self.path, move || {
            let (clause, strings) = where_clause(&filter, |n| format!("?{n}"));
            let sql = format!(
                "SELECT image, rule, verdict, admission,
                    count(DISTINCT client_addr || ' ' || user_name)
                 FROM pulls WHERE {clause}
                 GROUP BY image, rule, verdict, admission"
            );
            let conn = lock(&conn);
            let mut stmt = conn.prepare_cached(&sql)?;
            let params = params(filter.since, &strings);
            let rows = stmt.query_map(params_from_iter(params.iter()), |row| {
                Ok(ImageClients {
                    image: row.get(0)?,
                    rule: row.get(1)?,
                    verdict: row.get(2)?,
                    admission: row.get(3)?,
                    clients: row.get(4)?,
                })
            })?;
            Ok(rows.collect::<Result<Vec<_>, _>>()?)
        })
        .await
    }

    pub async fn clients_of(
        &self,
        image: String,
        since: i64,
        limit: i64,
    ) -> Result<Vec<ClientSummary>, DbError> {
        let conn = self.reader.clone();
        blocking(&self.path, move || {
            let conn = lock(&conn);
            let mut stmt = conn.prepare_cached(
                "SELECT client_addr, user_agent, user_name, sum(pulls), min(first_seen),
                    max(last_seen)
                 FROM pulls WHERE image = ?1 AND last_seen >= ?2
                 GROUP BY client_addr, user_agent, user_name
                 ORDER BY max(last_seen) DESC LIMIT ?3",
            )?;
            let rows = stmt.query_map(params![image, since, limit], |row| {
                Ok(ClientSummary {
                    client_addr: row.get(0)?,
                    user_agent: row.get(1)?,
                    user_name: row.get(2)?,
                    pulls: row.get(3)?,
                    first_seen: row.get(4)?,
                    last_seen: row.get(5)?,
                })
            })?;
            Ok(rows.collect::<Result<Vec<_>, _>>()?)
        })
        .await
    }

    pub async fn prune(&self, before: i64) -> Result<u64, DbError> {
        let conn = self.writer.clone();
        blocking(&self.path, move || {
            let mut conn = lock(&conn);
            let tx = conn.transaction()?;
            let n = rollup::prune(&tx, before)?;
            tx.execute(
                "DELETE FROM pull_hours WHERE hour < ?1",
                params![before.div_euclid(1000)],
            )?;
            tx.execute(
                "DELETE FROM verdicts WHERE decided_at < ?1",
                params![before],
            )?;
            tx.commit()?;
            Ok(n as u64)
        })
        .await
    }
}

/// A failure inside a blocking call, before it is given the database's path.
enum Fault {
    Sqlite(rusqlite::Error),
    StateDir {
        path: PathBuf,
        error: std::io::Error,
    },
    SchemaTooNew {
        found: i64,
    },
    Thread(std::io::Error),
}

impl From<rusqlite::Error> for Fault {
    fn from(e: rusqlite::Error) -> Fault {
        Fault::Sqlite(e)
    }
}

/// Runs `f` on the blocking pool, bounded by [`CALL_TIMEOUT`].
async fn blocking<T, F>(path: &Path, f: F) -> Result<T, DbError>
where
    T: Send + 'static,
    F: FnOnce() -> Result<T, Fault> + Send + 'static,
{
    blocking_for(path, CALL_TIMEOUT, f).await
}

/// [`blocking`], bounded by `limit`.
async fn blocking_for<T, F>(path: &Path, limit: Duration, f: F) -> Result<T, DbError>
where
    T: Send + 'static,
    F: FnOnce() -> Result<T, Fault> + Send + 'static,
{
    let task = tokio::task::spawn_blocking(f);
    match tokio::time::timeout(limit, task).await {
        Err(_) => Err(DbError::Timeout(limit)),
        Ok(Err(e)) => Err(DbError::Task(e.to_string())),
        Ok(Ok(Ok(v))) => Ok(v),
        Ok(Ok(Err(Fault::Sqlite(error)))) => Err(DbError::Sqlite {
            path: path.to_path_buf(),
            error,
        }),
        Ok(Ok(Err(Fault::StateDir { path, error }))) => Err(DbError::StateDir { path, error }),
        Ok(Ok(Err(Fault::SchemaTooNew { found }))) => Err(DbError::SchemaTooNew {
            found,
            known: schema::VERSION,
        }),
        Ok(Ok(Err(Fault::Thread(error)))) => Err(DbError::Thread(error)),
    }
}

/// Column `i` of `row` as the bytes of its text (`columns` names them, for the error when the
/// column holds something else).
fn text_at<'r>(
    row: &'r rusqlite::Row<'_>,
    i: usize,
    columns: &str,
) -> Result<&'r [u8], rusqlite::Error> {
    match row.get_ref(i)? {
        rusqlite::types::ValueRef::Text(t) => Ok(t),
        other => Err(rusqlite::Error::InvalidColumnType(
            i,
            columns.to_owned(),
            other.data_type(),
        )),
    }
}

/// The connection behind `m`. A panic while holding it leaves the connection usable (SQLite
/// rolls back an unfinished transaction when the next one begins), so a poisoned lock is taken.
fn lock(m: &Mutex<Connection>) -> std::sync::MutexGuard<'_, Connection> {
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

fn connect(path: &Path) -> Result<Connection, Fault> {
    let conn = Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_WRITE
            | OpenFlags::SQLITE_OPEN_CREATE
            | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )?;
    conn.busy_timeout(BUSY_TIMEOUT)?;
    // The inventory's package indexes run to millions of rows: a page cache of 32 MiB per
    // connection (SQLite's default is 2 MiB) keeps their upper levels in memory.
    conn.pragma_update(None, "cache_size", CACHE_KIB)?;
    // Pages read through a memory map of the file instead of copied into that cache by a
    // read call each: a report reads tens of thousands of pages of a file the OS caches anyway.
    conn.pragma_update(None, "mmap_size", MMAP_BYTES)?;
    Ok(conn)
}

/// The page cache of each connection, in KiB (negative: SQLite's unit for a size in KiB).
const CACHE_KIB: i64 = -32 * 1024;

/// How many dirty pages (4 KiB) the writer holds before it spills them: 128 MiB at most, and
/// only while a transaction that large runs.
const WRITER_SPILL_PAGES: i64 = 32 * 1024;

/// How much of the file each connection maps (address space, not memory: pages are resident
/// only while the OS keeps them cached).
const MMAP_BYTES: i64 = 1 << 30;

fn migrate(conn: &Connection) -> Result<(), Fault> {
    migrate_through(conn, schema::MIGRATIONS)
}

/// Applies those of `migrations` (the first of [`schema::MIGRATIONS`]) that `conn` lacks.
fn migrate_through(conn: &Connection, migrations: &[schema::Migration]) -> Result<(), Fault> {
    conn.execute_batch(schema::VERSION_TABLE)?;
    conn.execute_batch("BEGIN IMMEDIATE")?;
    let result = (|| {
        let current: i64 = conn.query_row(
            "SELECT coalesce(max(version), 0) FROM portcullis_schema",
            [],
            |r| r.get(0),
        )?;
        if current > schema::VERSION {
            return Err(Fault::SchemaTooNew { found: current });
        }
        for (i, migration) in migrations.iter().enumerate() {
            let version = i as i64 + 1;
            if version <= current {
                continue;
            }
            for s in migration.sqlite.iter().chain(migration.both) {
                conn.execute_batch(s)?;
            }
            conn.execute(
                "INSERT INTO portcullis_schema (version, applied_at) VALUES (?1, ?2)",
                params![version, super::now_ms()],
            )?;
        }
        Ok(())
    })();
    match result {
        Ok(()) => conn.execute_batch("COMMIT")?,
        Err(_) => {
            let _ = conn.execute_batch("ROLLBACK");
        }
    }
    result
}

fn params(since: i64, strings: &[String]) -> Vec<rusqlite::types::Value> {
    let mut v = vec![rusqlite::types::Value::Integer(since)];
    v.extend(strings.iter().cloned().map(rusqlite::types::Value::Text));
    v
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::db::Half;

    async fn add_pulls(db: &Sqlite, rows: Vec<PullRow>) -> Result<(), DbError> {
        let hours = crate::db::console::hours_of(&rows);
        let sums = crate::db::rollup::Rollup::of(&rows);
        db.add_pulls(rows, hours, sums).await
    }

    fn row(day: i64, client: &str, pulls: i64, seen: i64) -> PullRow {
        PullRow {
            day,
            image: "docker.io/company/app".into(),
            digest: format!("sha256:{}", "a".repeat(64)),
            tag: "v1".into(),
            upstream: "docker.io".into(),
            rule: "company".into(),
            mode: "audit".into(),
            verdict: "unverified".into(),
            admission: "served".into(),
            finding: "unsigned".into(),
            client_addr: client.into(),
            user_agent: "containerd/1.6".into(),
            user_name: String::new(),
            reasons: r#"["no signatures found"]"#.into(),
            identities: "[]".into(),
            pulls,
            first_seen: seen,
            last_seen: seen,
        }
    }

    #[tokio::test]
    async fn rows_aggregate_and_reports_sum_them() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state/portcullis.db");
        let db = Sqlite::open(path.clone()).await.unwrap();
        add_pulls(
            &db,
            vec![row(0, "10.0.0.1", 2, 1000), row(0, "10.0.0.2", 1, 2000)],
        )
        .await
        .unwrap();
        add_pulls(&db, vec![row(0, "10.0.0.1", 3, 3000)])
            .await
            .unwrap();
        let filter = Filter {
            findings_only: true,
            ..Filter::default()
        };
        let d = db.digests(filter.clone()).await.unwrap();
        assert_eq!(d.len(), 1);
        assert_eq!(d[0].pulls, 6);
        assert_eq!(d[0].clients, 2);
        assert_eq!((d[0].first_seen, d[0].last_seen), (1000, 3000));
        assert_eq!(d[0].tags, vec!["v1".to_owned()]);
        let since_later = Filter {
            since: 2500,
            ..filter
        };
        assert_eq!(db.digests(since_later).await.unwrap()[0].pulls, 5);
        assert_eq!(db.prune(2500).await.unwrap(), 1);
        drop(db);
        // Reopening runs no migration twice.
        let db = Sqlite::open(path).await.unwrap();
        assert_eq!(db.digests(Filter::default()).await.unwrap()[0].pulls, 5);
    }

    #[tokio::test]
    async fn the_pulls_of_many_digests_read_in_two_halves_equal_one_read() {
        let dir = tempfile::tempdir().unwrap();
        let db = crate::db::Database::Sqlite(
            Sqlite::open(dir.path().join("portcullis.db"))
                .await
                .unwrap(),
        );
        let mut rows = Vec::new();
        for i in 0..3000i64 {
            let mut r = row(i % 2, &format!("10.0.0.{}", i % 9), 1 + i % 3, 1000 + i);
            r.digest = format!("sha256:{:064x}", i % 1200);
            r.tag = ["", "v1", "v2"][(i % 3) as usize].into();
            rows.push(r);
        }
        let crate::db::Database::Sqlite(sqlite) = &db else {
            unreachable!()
        };
        add_pulls(sqlite, rows).await.unwrap();
        // 1 200 pulled digests and 100 never pulled, sorted.
        let mut digests: Vec<String> = (0..1300).map(|i| format!("sha256:{i:064x}")).collect();
        digests.sort();
        let within = crate::db::inventory::PullsWithin::default();
        let split = db.pulls_of(digests.clone(), within.clone()).await.unwrap();
        let whole = sqlite
            .pulls_of(digests, within, crate::db::Lane::First)
            .await
            .unwrap();
        assert_eq!(split.len(), 1200);
        assert_eq!(split, whole);
    }

    #[tokio::test]
    async fn one_pass_summaries_equal_the_sql_aggregates() {
        let dir = tempfile::tempdir().unwrap();
        let db = Sqlite::open(dir.path().join("portcullis.db"))
            .await
            .unwrap();
        let mut rows = Vec::new();
        for i in 0..300i64 {
            let mut r = row(i % 3, &format!("10.0.0.{}", i % 7), 1 + i % 4, 1000 + i);
            r.image = format!("docker.io/company/app{}", i % 5);
            r.digest = format!("sha256:{:064x}", i % 11);
            r.tag = ["", "v1", "v2", "latest"][(i % 4) as usize].into();
            r.verdict = ["unverified", "error", "verified"][(i % 3) as usize].into();
            r.admission = if i % 13 == 0 { "refused" } else { "served" }.into();
            r.user_name = if i % 2 == 0 { "" } else { "ci" }.into();
            r.reasons = format!("[\"reason {}\"]", i % 6);
            r.upstream = format!("u{}", i % 2);
            rows.push(r);
        }
        add_pulls(&db, rows).await.unwrap();
        for findings_only in [true, false] {
            let filter = Filter {
                since: 1050,
                findings_only,
                ..Filter::default()
            };
            let mut digests = db.digests(filter.clone()).await.unwrap();
            let mut clients = db.image_clients(filter.clone()).await.unwrap();
            // The one pass gives them sorted; the SQL aggregates in no particular order.
            digests.sort_by(|a, b| a.group().cmp(&b.group()));
            clients.sort_by(|a, b| a.group().cmp(&b.group()));
            // Split anywhere (groups and clients on both sides, or all on one), the merged
            // halves are the whole window's sums.
            for mid in [900, 1050, 1100, 1177, 1299, 1400] {
                let older = db.summaries(filter.clone(), Half::Before(mid));
                let mut sums = older.await.unwrap();
                let newer = db.summaries(filter.clone(), Half::From(mid));
                sums.merge(newer.await.unwrap());
                let (d, c) = sums.finish();
                assert!(d.len() > 20, "{} groups", d.len());
                assert_eq!(d, digests, "split at {mid}");
                assert_eq!(c, clients, "split at {mid}");
            }
        }
    }
}
