//! The WAL's checkpoints, in the background: a thread with its own connection copies committed
//! pages from the write-ahead log into the database file every [`INTERVAL`] when there are any
//! (a `PASSIVE` checkpoint: it never waits for, or blocks, a reader or the writer). Left to SQLite, the
//! commit that takes the log past 1 000 pages copies them itself, so a large write (an SBOM of
//! thousands of packages dirties tens of thousands of index pages) paid for its own checkpoint
//! and the next one's. The writer keeps an automatic checkpoint at [`BACKSTOP_PAGES`] for when
//! this thread falls behind. The thread ends when the [`Checkpointer`] is dropped.

use std::path::Path;
use std::sync::mpsc::{self, RecvTimeoutError, SyncSender};
use std::time::Duration;

use rusqlite::Connection;

/// How often the log is checkpointed.
pub const INTERVAL: Duration = Duration::from_millis(500);

/// The log's size (pages) at which the writer's commit checkpoints it itself (128 MiB of
/// 4 KiB pages).
pub const BACKSTOP_PAGES: i64 = 32 * 1024;

/// Owns the checkpoint thread: dropping it stops the thread.
pub struct Checkpointer {
    _stop: SyncSender<()>,
}

impl Checkpointer {
    /// Starts checkpointing the database at `path` through `conn`.
    pub fn start(conn: Connection, path: &Path) -> std::io::Result<Checkpointer> {
        let (stop, stopped) = mpsc::sync_channel::<()>(0);
        let path = path.display().to_string();
        std::thread::Builder::new()
            .name("sqlite-checkpoint".into())
            .spawn(move || {
                let mut failing = false;
                let mut done = None;
                while let Err(RecvTimeoutError::Timeout) = stopped.recv_timeout(INTERVAL) {
                    match checkpoint(&conn, &mut done) {
                        Ok(()) if failing => {
                            failing = false;
                            tracing::info!(%path, "SQLite checkpoints succeed again");
                        }
                        Ok(()) => {}
                        Err(error) if !failing => {
                            failing = true;
                            tracing::warn!(%path, %error, "SQLite checkpoint failed; the writer's commits will checkpoint the log");
                        }
                        Err(_) => {}
                    }
                }
            })?;
        Ok(Checkpointer { _stop: stop })
    }
}

/// One `PASSIVE` checkpoint (what it could not copy yet, because a reader still uses it, waits
/// for the next one), unless nothing was committed since the last one that copied the whole
/// log: `done` is the database's `data_version` (which changes with every other connection's
/// commit) as of that checkpoint.
fn checkpoint(conn: &Connection, done: &mut Option<i64>) -> rusqlite::Result<()> {
    let version: i64 = conn.query_row("PRAGMA data_version", [], |r| r.get(0))?;
    if *done == Some(version) {
        return Ok(());
    }
    // (busy, pages in the log, pages copied): -1s when the database is not in WAL mode.
    let (busy, log, copied): (i64, i64, i64) =
        conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |r| {
            Ok((r.get(0)?, r.get(1)?, r.get(2)?))
        })?;
    *done = (busy == 0 && log == copied).then_some(version);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_thread_copies_the_log_into_the_file() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("t.db");
        let open = || {
            let c = Connection::open(&path).expect("open");
            c.pragma_update(None, "journal_mode", "WAL").expect("wal");
            c
        };
        let writer = open();
        writer
            .pragma_update(None, "wal_autocheckpoint", 0)
            .expect("no automatic checkpoint");
        let add_rows = |create: &str| {
            writer
                .execute_batch(&format!(
                    "{create}
                     WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 200)
                     INSERT INTO t SELECT randomblob(4000) FROM n"
                ))
                .expect("rows");
        };
        let size = || std::fs::metadata(&path).expect("file").len();
        let grows_from = |before: u64| {
            let deadline = std::time::Instant::now() + INTERVAL * 20;
            while size() == before {
                assert!(
                    std::time::Instant::now() < deadline,
                    "the log was not checkpointed"
                );
                std::thread::sleep(INTERVAL / 5);
            }
        };
        add_rows("CREATE TABLE t (x BLOB);");
        // Nothing else copies the log while the writer stays open.
        let file_before = size();
        let checkpointer = Checkpointer::start(open(), &path).expect("thread");
        grows_from(file_before);
        // A later commit is copied too (the thread skips only while nothing changed).
        std::thread::sleep(INTERVAL * 2);
        let file_before = size();
        add_rows("");
        grows_from(file_before);
        let count: i64 = open()
            .query_row("SELECT count(*) FROM t", [], |r| r.get(0))
            .expect("count");
        assert_eq!(count, 400);
        drop(checkpointer);
    }
}
