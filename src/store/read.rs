//! Reading a stored object: a file in large positional reads on the blocking pool, one read
//! ahead of the client (object_store's own file stream reads 8 KiB per blocking task, too little
//! to keep up with a network client), or the store's own stream (S3); and the [`Stamp`] naming
//! the version of the object read, so that a whole that hashed to its digest is not hashed again
//! on every request until it changes (docs/store.md, "Corrupt objects").

use std::ops::Range;
use std::sync::Arc;

use bytes::Bytes;
use futures_util::stream::BoxStream;
use futures_util::StreamExt;
use object_store::{GetResult, GetResultPayload};

/// Bytes per read from a stored file.
const FILE_CHUNK: u64 = 512 * 1024;

/// Reads from a file started ahead of the one being sent (each holds one chunk in memory).
const FILE_READ_AHEAD: usize = 2;

/// One version of a stored object. Equal stamps mean the bytes were not rewritten in between.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Stamp {
    /// A file: its device, inode and size, and its modification and status-change times in
    /// nanoseconds. Every write or replacement through the file system moves the change time,
    /// which no unprivileged program can set back.
    File {
        dev: u64,
        ino: u64,
        size: u64,
        mtime: i128,
        ctime: i128,
    },
    /// An object in a bucket: its ETag (a new upload gets a new one), version and size.
    Object {
        e_tag: String,
        version: Option<String>,
        size: u64,
    },
}

/// A read in progress: the object's size and version, and the bytes asked for.
pub struct Reading {
    pub size: u64,
    /// `None` when the store names no version (a bucket without ETags): always hashed then.
    pub stamp: Option<Stamp>,
    pub body: BoxStream<'static, object_store::Result<Bytes>>,
}

fn io_err(e: std::io::Error) -> object_store::Error {
    object_store::Error::Generic {
        store: "LocalFileSystem",
        source: Box::new(e),
    }
}

/// The version and the bytes of a `get`.
pub fn reading(result: GetResult) -> Reading {
    let size = result.meta.size;
    let range = result.range.clone();
    match result.payload {
        GetResultPayload::Stream(body) => Reading {
            size,
            stamp: result.meta.e_tag.clone().map(|e_tag| Stamp::Object {
                e_tag,
                version: result.meta.version.clone(),
                size,
            }),
            body,
        },
        GetResultPayload::File(file, _) => {
            use std::os::unix::fs::MetadataExt;
            let nanos = |s: i64, ns: i64| i128::from(s) * 1_000_000_000 + i128::from(ns);
            // fstat of the open file: the version of exactly the bytes about to be read.
            let stamp = file.metadata().ok().map(|m| Stamp::File {
                dev: m.dev(),
                ino: m.ino(),
                size: m.size(),
                mtime: nanos(m.mtime(), m.mtime_nsec()),
                ctime: nanos(m.ctime(), m.ctime_nsec()),
            });
            Reading {
                size,
                stamp,
                body: file_chunks(file, range),
            }
        }
    }
}

/// `range` of a file, in [`FILE_CHUNK`] positional reads on the blocking pool. No thread is held
/// while the client is slow: each read is its own short task.
fn file_chunks(
    file: std::fs::File,
    range: Range<u64>,
) -> BoxStream<'static, object_store::Result<Bytes>> {
    let file = Arc::new(file);
    let end = range.end;
    futures_util::stream::iter((range.start..end).step_by(FILE_CHUNK as usize))
        .map(move |offset| {
            let file = file.clone();
            let len = (end - offset).min(FILE_CHUNK);
            // Started now, as `buffered` takes it: the read runs ahead of the send.
            let read = tokio::task::spawn_blocking(move || {
                use std::os::unix::fs::FileExt;
                let mut buf = vec![0u8; len as usize];
                file.read_exact_at(&mut buf, offset)
                    .map(|()| Bytes::from(buf))
            });
            async move {
                match read.await {
                    Ok(r) => r.map_err(io_err),
                    Err(e) => Err(io_err(std::io::Error::other(e))),
                }
            }
        })
        .buffered(FILE_READ_AHEAD)
        // Nothing after a failed read.
        .scan(false, |failed, r| {
            let next = (!*failed).then_some(r);
            *failed = next.as_ref().is_some_and(Result::is_err);
            std::future::ready(next)
        })
        .boxed()
}
