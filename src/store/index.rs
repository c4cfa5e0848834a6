//! The filesystem store's index: the size and last use of every stored blob and kept answer,
//! rebuilt from the files at start-up (nothing lives only in memory), and the background eviction
//! that keeps them under `max_bytes`, least recently used first, down to 90 % of the bound.
//!
//! Last use is kept in memory; after a restart it starts from each file's modification time.

use std::collections::HashMap;
use std::path::Path as FsPath;
use std::sync::{Arc, Mutex};

use futures_util::StreamExt;
use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt};
use tokio::sync::Notify;

use super::StoreError;
use crate::metrics::Metrics;

struct Entry {
    size: u64,
    last_use: u64,
}

#[derive(Default)]
struct Inner {
    entries: HashMap<Path, Entry>,
    total: u64,
    clock: u64,
}

pub(super) struct Index {
    objects: Arc<dyn ObjectStore>,
    max_bytes: u64,
    inner: Mutex<Inner>,
    over: Arc<Notify>,
    metrics: Arc<Metrics>,
}

impl Index {
    /// Lists the stored blobs and answers (oldest modification first, so they are the first evicted).
    pub(super) async fn rebuild(
        objects: Arc<dyn ObjectStore>,
        max_bytes: u64,
        metrics: Arc<Metrics>,
    ) -> Result<Arc<Index>, StoreError> {
        let mut found = Vec::new();
        for prefix in [Path::from("blobs"), Path::from("answers")] {
            let mut listing = objects.list(Some(&prefix));
            while let Some(meta) = listing.next().await {
                let meta = meta.map_err(|e| StoreError::object("list", &prefix, e))?;
                found.push(meta);
            }
        }
        found.sort_by_key(|m| m.last_modified);
        let mut inner = Inner::default();
        for meta in found {
            inner.clock += 1;
            inner.total += meta.size;
            inner.entries.insert(
                meta.location,
                Entry {
                    size: meta.size,
                    last_use: inner.clock,
                },
            );
        }
        tracing::info!(
            blobs = inner.entries.len(),
            bytes = inner.total,
            max_bytes,
            "content store index rebuilt"
        );
        metrics.store_bytes.set(inner.total as i64);
        let index = Arc::new(Index {
            objects,
            max_bytes,
            inner: Mutex::new(inner),
            over: Arc::new(Notify::new()),
            metrics,
        });
        index.check_bound();
        Ok(index)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        match self.inner.lock() {
            Ok(g) => g,
            // The map is updated in single statements; a panic elsewhere leaves it consistent.
            Err(poisoned) => poisoned.into_inner(),
        }
    }

    pub(super) fn size(&self, key: &Path) -> Option<u64> {
        self.lock().entries.get(key).map(|e| e.size)
    }

    pub(super) fn touch(&self, key: &Path) {
        let mut inner = self.lock();
        inner.clock += 1;
        let now = inner.clock;
        if let Some(e) = inner.entries.get_mut(key) {
            e.last_use = now;
        }
    }

    pub(super) fn insert(&self, key: Path, size: u64) {
        {
            let mut inner = self.lock();
            inner.clock += 1;
            let last_use = inner.clock;
            if let Some(old) = inner.entries.insert(key, Entry { size, last_use }) {
                inner.total -= old.size;
            }
            inner.total += size;
            self.metrics.store_bytes.set(inner.total as i64);
        }
        self.check_bound();
    }

    pub(super) fn forget(&self, key: &Path) {
        let mut inner = self.lock();
        if let Some(old) = inner.entries.remove(key) {
            inner.total -= old.size;
            self.metrics.store_bytes.set(inner.total as i64);
        }
    }

    fn check_bound(&self) {
        if self.lock().total > self.max_bytes {
            self.over.notify_one();
        }
    }

    pub(super) fn spawn_evictor(self: Arc<Self>) {
        // The task holds only a weak reference: it ends with the store.
        let weak = Arc::downgrade(&self);
        drop(self);
        tokio::spawn(async move {
            loop {
                let Some(index) = weak.upgrade() else { return };
                let over = index.over.clone();
                let notified = over.notified();
                tokio::pin!(notified);
                // Registered before the check, so a notification in between is not lost.
                notified.as_mut().enable();
                if index.lock().total <= index.max_bytes {
                    drop(index);
                    let _ =
                        tokio::time::timeout(std::time::Duration::from_secs(60), notified).await;
                    continue;
                }
                index.evict().await;
            }
        });
    }

    /// Removes least recently used blobs until the total is at most 90 % of the bound.
    pub(super) async fn evict(&self) -> u64 {
        let target = self.max_bytes / 10 * 9;
        let victims: Vec<(Path, u64)> = {
            let inner = self.lock();
            let mut all: Vec<_> = inner.entries.iter().collect();
            all.sort_by_key(|(_, e)| e.last_use);
            let mut total = inner.total;
            let mut out = Vec::new();
            for (k, e) in all {
                if total <= target {
                    break;
                }
                total -= e.size;
                out.push((k.clone(), e.size));
            }
            out
        };
        let mut removed = 0;
        for (key, _) in victims {
            match self.objects.delete(&key).await {
                Ok(()) | Err(object_store::Error::NotFound { .. }) => {
                    self.forget(&key);
                    self.metrics.store_evictions.inc();
                    removed += 1;
                }
                Err(e) => {
                    tracing::warn!(key = %key, error = %e, "cannot evict a stored blob");
                    // Try again later rather than spin on a failing delete.
                    tokio::time::sleep(std::time::Duration::from_secs(1)).await;
                    break;
                }
            }
        }
        removed
    }
}

/// Removes the staging files of writes that never completed (a crash, `kill -9`): their names
/// end in `#<number>`, never a digest or an answer's hash, so they were never read.
pub(super) fn remove_staging_files(root: &FsPath) {
    // `blobs/<algorithm>/` and `answers/<upstream>/`.
    let dirs = ["blobs", "answers"]
        .into_iter()
        .filter_map(|top| std::fs::read_dir(root.join(top)).ok())
        .flat_map(|entries| entries.flatten());
    for dir in dirs {
        let Ok(files) = std::fs::read_dir(dir.path()) else {
            continue;
        };
        for f in files.flatten() {
            if f.file_name().to_string_lossy().contains('#') {
                if let Err(e) = std::fs::remove_file(f.path()) {
                    tracing::warn!(path = %f.path().display(), error = %e, "cannot remove a staging file");
                }
            }
        }
    }
}
