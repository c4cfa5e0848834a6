//! The content store (`storage`): blobs kept by digest on the local filesystem or in an
//! S3-compatible bucket, behind one interface ([`Store`]) over the `object_store` crate.
//!
//! What this module guarantees (DESIGN.md §5, §7.7): an object is committed under its digest
//! only after its bytes hashed to it (the upload is a multipart upload — a staging file renamed,
//! or an S3 multipart upload completed — that is completed only then, and aborted otherwise);
//! concurrent cold requests for one blob make one fill ([`fill`]); each version of a stored blob
//! ([`read::Stamp`]) is hashed the first time it is served, so a corrupt object is cut off before
//! its last byte, removed, and fetched again next time; the filesystem store is bounded by `max_bytes` with least-recently-used eviction
//! in the background ([`index`]).
//!
//! It also keeps, per upstream and repository, a marker for each blob served there
//! ([`Store::is_seen`]): the registry API serves a stored blob for another repository only once
//! that repository's upstream confirmed it (docs/store.md).
//!
//! This module knows no HTTP and no policy: the caller decides what may be served.
//!
//! It keeps upstream answers too ([`answers`]): signature material, manifests and tag
//! resolutions, read back when the upstream cannot answer.
//!
//! Layout (the same on disk and in a bucket, under the prefix):
//! `blobs/<algorithm>/<hex>` the content; `seen/<upstream>/<repository>/<algorithm>-<hex>` empty
//! markers; `answers/<upstream>/<hex>` kept answers.

pub mod answers;
pub mod fill;
mod index;
pub mod maintenance;
mod read;

use std::ops::Range;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use futures_util::stream::BoxStream;
use futures_util::StreamExt;
use object_store::path::Path;
use object_store::{GetOptions, GetRange, ObjectStore, ObjectStoreExt, PutPayload};

use crate::config::storage::{S3Settings, StorageSettings};
use crate::metrics::Metrics;
use crate::oci::{Digest, Hasher};

pub use fill::{Flight, Join};

/// How long a request waits for a fill another request started before it gives up.
pub const FILL_WAIT: Duration = Duration::from_secs(15 * 60);

/// How many confirmed (upstream, repository, digest) triples and verified digests are
/// remembered in memory (the markers themselves are in the store).
const MEMORY_ENTRIES: u64 = 100_000;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("cannot open the content store at {}: {error}", path.display())]
    Open {
        path: PathBuf,
        error: std::io::Error,
    },
    #[error("cannot set up the S3 content store (bucket {bucket}): {error}")]
    S3 {
        bucket: String,
        error: object_store::Error,
    },
    #[error("content store {op} of {key} failed: {error}")]
    Object {
        op: &'static str,
        key: String,
        error: object_store::Error,
    },
    #[error("stored object {key} does not hash to its digest (now removed)")]
    Corrupt { key: String },
}

impl StoreError {
    fn object(op: &'static str, key: &Path, error: object_store::Error) -> StoreError {
        StoreError::Object {
            op,
            key: key.to_string(),
            error,
        }
    }
}

/// Which kind of store, for messages and the maintenance commands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Filesystem,
    S3,
}

/// What a store is opened for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// The proxy: fills, eviction in the background, staging files of a crash removed.
    Serve,
    /// `portcullis cache verify|gc`: the index rebuilt, corrupt or evicted objects removed.
    Maintain,
    /// Reading only (`portcullis audit --what-if`): nothing written or removed.
    Read,
}

/// What hashing a whole stored blob found.
#[derive(Debug, PartialEq, Eq)]
pub enum Checked {
    Missing,
    /// It hashed to its digest; the version read, where the store names one.
    Good(Option<read::Stamp>),
    /// It did not, and was removed.
    Corrupt,
}

/// A stored blob opened for reading.
pub struct Opened {
    /// The object's whole size.
    pub size: u64,
    /// The bytes asked for; for a whole-object read, a stream that ends in an error instead of
    /// its last chunk when the object does not hash to its digest.
    pub body: BoxStream<'static, Result<Bytes, StoreError>>,
}

/// The content store. Cheap to share (`Arc`).
pub struct Store {
    objects: Arc<dyn ObjectStore>,
    backend: Backend,
    access: Access,
    /// The filesystem store's size accounting and eviction (none for S3: the bucket's
    /// lifecycle rule evicts there).
    index: Option<Arc<index::Index>>,
    flights: Mutex<std::collections::HashMap<Digest, Arc<Flight>>>,
    seen: moka::future::Cache<String, ()>,
    /// Blobs whose whole hashed to their digest, with the version that did ([`read::Stamp`]).
    verified: moka::future::Cache<Digest, read::Stamp>,
    metrics: Arc<Metrics>,
}

// === impl Store ===

impl Store {
    /// Opens the store the settings name for serving: the filesystem store's index is rebuilt
    /// from what is on disk (left-over staging files of interrupted fills are removed) and its
    /// eviction starts in the background.
    pub async fn open(
        settings: &StorageSettings,
        metrics: Arc<Metrics>,
    ) -> Result<Arc<Store>, StoreError> {
        Store::open_for(settings, metrics, Access::Serve).await
    }

    /// Opens the store for `access`: a command beside a running proxy neither removes its
    /// staging files nor evicts behind its back.
    pub async fn open_for(
        settings: &StorageSettings,
        metrics: Arc<Metrics>,
        access: Access,
    ) -> Result<Arc<Store>, StoreError> {
        let (objects, backend): (Arc<dyn ObjectStore>, Backend) = match settings {
            StorageSettings::Filesystem { root, .. } => {
                let open_err = |error| StoreError::Open {
                    path: root.clone(),
                    error,
                };
                std::fs::create_dir_all(root.join("blobs")).map_err(open_err)?;
                let fs = object_store::local::LocalFileSystem::new_with_prefix(root)
                    .map_err(|e| open_err(std::io::Error::other(e.to_string())))?;
                (Arc::new(fs), Backend::Filesystem)
            }
            StorageSettings::S3(s3) => (s3_store(s3)?, Backend::S3),
        };
        let index = match (settings, access) {
            (StorageSettings::Filesystem { root, max_bytes }, Access::Serve | Access::Maintain) => {
                if access == Access::Serve {
                    index::remove_staging_files(root);
                }
                let index =
                    index::Index::rebuild(objects.clone(), *max_bytes, metrics.clone()).await?;
                if access == Access::Serve {
                    index.clone().spawn_evictor();
                }
                Some(index)
            }
            _ => None,
        };
        Ok(Arc::new(Store {
            objects,
            backend,
            access,
            index,
            flights: Mutex::default(),
            seen: moka::future::Cache::new(MEMORY_ENTRIES),
            verified: moka::future::Cache::new(MEMORY_ENTRIES),
            metrics,
        }))
    }

    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// The size of a stored blob, `None` when it is not stored.
    pub async fn size(&self, digest: &Digest) -> Result<Option<u64>, StoreError> {
        if let Some(index) = &self.index {
            // The index is what is on disk (rebuilt at start-up, updated on each commit and
            // removal); a miss there needs no file system call.
            return Ok(index.size(&blob_key(digest)));
        }
        let key = blob_key(digest);
        match self.objects.head(&key).await {
            Ok(meta) => Ok(Some(meta.size)),
            Err(object_store::Error::NotFound { .. }) => Ok(None),
            Err(e) => Err(StoreError::object("head", &key, e)),
        }
    }

    /// Opens a stored blob: the whole of it, hashed as it is read (a mismatch cuts the stream
    /// before its last chunk and removes the object) unless this very version of it hashed to
    /// its digest before; or a range of it, once this version of the whole was checked.
    /// `None`: not stored (or, for a range, replaced while it was checked).
    pub async fn open_blob(
        self: &Arc<Self>,
        digest: &Digest,
        range: Option<Range<u64>>,
    ) -> Result<Option<Opened>, StoreError> {
        let key = blob_key(digest);
        if let Some(index) = &self.index {
            index.touch(&key);
        }
        let whole = range.is_none();
        let Some(reading) = self.get(&key, range).await? else {
            return Ok(None);
        };
        let known = match &reading.stamp {
            Some(stamp) => self.verified.get(digest).await.as_ref() == Some(stamp),
            None => false,
        };
        let size = reading.size;
        if whole && !known {
            let body = self.clone().checked(digest.clone(), key, reading);
            return Ok(Some(Opened { size, body }));
        }
        if !known {
            // Hashing a range alone proves nothing: the whole first, then the range if the
            // object was not replaced in between.
            match self.verify(digest).await? {
                // (Without a version named, a range is served after hashing the whole each time.)
                Checked::Good(stamp) if stamp == reading.stamp => {}
                Checked::Good(_) | Checked::Missing => return Ok(None),
                Checked::Corrupt => {
                    return Err(StoreError::Corrupt {
                        key: key.to_string(),
                    })
                }
            }
        }
        let body = reading
            .body
            .map(move |r| r.map_err(|e| StoreError::object("read", &key, e)))
            .boxed();
        Ok(Some(Opened { size, body }))
    }

    async fn get(
        &self,
        key: &Path,
        range: Option<Range<u64>>,
    ) -> Result<Option<read::Reading>, StoreError> {
        let options = GetOptions {
            range: range.map(GetRange::Bounded),
            ..GetOptions::default()
        };
        match self.objects.get_opts(key, options).await {
            Ok(r) => Ok(Some(read::reading(r))),
            Err(object_store::Error::NotFound { .. }) => {
                // Gone behind the index's back (removed by hand, or by another process).
                if let Some(index) = &self.index {
                    index.forget(key);
                }
                Ok(None)
            }
            Err(e) => Err(StoreError::object("read", key, e)),
        }
    }

    /// The stream of a whole stored object, hashed on the way: the last chunk is held back
    /// until the digest is known, so a corrupt object never reaches a client whole.
    fn checked(
        self: Arc<Self>,
        digest: Digest,
        key: Path,
        reading: read::Reading,
    ) -> BoxStream<'static, Result<Bytes, StoreError>> {
        let read::Reading {
            stamp, body: inner, ..
        } = reading;
        struct State {
            inner: BoxStream<'static, object_store::Result<Bytes>>,
            hasher: Option<Hasher>,
            held: Option<Bytes>,
        }
        let state = State {
            inner,
            hasher: Some(Hasher::new(digest.algorithm())),
            held: None,
        };
        futures_util::stream::unfold(Some(state), move |state| {
            let store = self.clone();
            let digest = digest.clone();
            let key = key.clone();
            let stamp = stamp.clone();
            async move {
                let mut st = state?;
                loop {
                    match st.inner.next().await {
                        Some(Ok(chunk)) => {
                            if let Some(h) = st.hasher.as_mut() {
                                h.update(&chunk);
                            }
                            if let Some(prev) = st.held.replace(chunk) {
                                return Some((Ok(prev), Some(st)));
                            }
                        }
                        Some(Err(e)) => {
                            return Some((Err(StoreError::object("read", &key, e)), None));
                        }
                        None => {
                            let actual = st.hasher.take()?.finish();
                            if actual != digest {
                                store.corrupt(&digest).await;
                                return Some((
                                    Err(StoreError::Corrupt {
                                        key: key.to_string(),
                                    }),
                                    None,
                                ));
                            }
                            if let Some(stamp) = stamp {
                                store.verified.insert(digest.clone(), stamp).await;
                            }
                            // The inner stream ended: it is not polled again.
                            let last = st.held.take()?;
                            return Some((Ok(last), None));
                        }
                    }
                }
            }
        })
        .boxed()
    }

    /// Hashes a whole stored blob (a corrupt one is removed).
    pub async fn verify(&self, digest: &Digest) -> Result<Checked, StoreError> {
        let key = blob_key(digest);
        let Some(reading) = self.get(&key, None).await? else {
            return Ok(Checked::Missing);
        };
        let mut stream = reading.body;
        let mut hasher = Hasher::new(digest.algorithm());
        while let Some(chunk) = stream.next().await {
            hasher.update(&chunk.map_err(|e| StoreError::object("read", &key, e))?);
        }
        if hasher.finish() == *digest {
            if let Some(stamp) = &reading.stamp {
                self.verified.insert(digest.clone(), stamp.clone()).await;
            }
            Ok(Checked::Good(reading.stamp))
        } else {
            self.corrupt(digest).await;
            Ok(Checked::Corrupt)
        }
    }

    /// Removes an object found not to hash to its digest, so that the next request fetches it
    /// again.
    async fn corrupt(&self, digest: &Digest) {
        let key = blob_key(digest);
        tracing::error!(key = %key, "stored blob does not hash to its digest: removed");
        self.metrics.store_corrupt.inc();
        self.verified.invalidate(digest).await;
        if let Err(e) = self.objects.delete(&key).await {
            tracing::warn!(key = %key, error = %e, "cannot remove a corrupt stored blob");
        }
        if let Some(index) = &self.index {
            index.forget(&key);
        }
    }

    /// Whether this blob was served for (or confirmed by) this upstream repository before.
    pub async fn is_seen(
        &self,
        upstream: &str,
        repo: &str,
        digest: &Digest,
    ) -> Result<bool, StoreError> {
        let key = seen_key(upstream, repo, digest);
        if self.seen.contains_key(key.as_ref()) {
            return Ok(true);
        }
        match self.objects.head(&key).await {
            Ok(_) => {
                self.seen.insert(key.to_string(), ()).await;
                Ok(true)
            }
            Err(object_store::Error::NotFound { .. }) => Ok(false),
            Err(e) => Err(StoreError::object("head", &key, e)),
        }
    }

    /// Records that this upstream repository has this blob.
    pub async fn mark_seen(
        &self,
        upstream: &str,
        repo: &str,
        digest: &Digest,
    ) -> Result<(), StoreError> {
        let key = seen_key(upstream, repo, digest);
        if self.seen.contains_key(key.as_ref()) {
            return Ok(());
        }
        self.objects
            .put(&key, PutPayload::new())
            .await
            .map_err(|e| StoreError::object("write", &key, e))?;
        self.seen.insert(key.to_string(), ()).await;
        Ok(())
    }

    /// Every stored blob's digest and size (for `portcullis cache verify|gc`).
    pub async fn list_blobs(&self) -> Result<Vec<(Digest, u64)>, StoreError> {
        let prefix = Path::from("blobs");
        let mut out = Vec::new();
        let mut listing = self.objects.list(Some(&prefix));
        while let Some(meta) = listing.next().await {
            let meta = meta.map_err(|e| StoreError::object("list", &prefix, e))?;
            if let Some(d) = digest_of_key(&meta.location) {
                out.push((d, meta.size));
            }
        }
        Ok(out)
    }
}

/// `blobs/<algorithm>/<hex>`.
pub fn blob_key(digest: &Digest) -> Path {
    Path::from_iter(["blobs", digest.algorithm().as_str(), digest.hex()])
}

fn digest_of_key(key: &Path) -> Option<Digest> {
    let parts: Vec<_> = key.parts().collect();
    match parts.as_slice() {
        [b, alg, hex] if b.as_ref() == "blobs" => {
            format!("{}:{}", alg.as_ref(), hex.as_ref()).parse().ok()
        }
        _ => None,
    }
}

fn seen_key(upstream: &str, repo: &str, digest: &Digest) -> Path {
    let marker = format!("{}-{}", digest.algorithm().as_str(), digest.hex());
    Path::from_iter(
        std::iter::once("seen")
            .chain(std::iter::once(upstream))
            .chain(repo.split('/'))
            .chain(std::iter::once(marker.as_str())),
    )
}

fn s3_store(s3: &S3Settings) -> Result<Arc<dyn ObjectStore>, StoreError> {
    let mut builder = object_store::aws::AmazonS3Builder::new()
        .with_bucket_name(&s3.bucket)
        .with_region(&s3.region)
        .with_virtual_hosted_style_request(!s3.path_style);
    if let Some(endpoint) = &s3.endpoint {
        let e = endpoint.as_str().trim_end_matches('/');
        builder = builder
            .with_endpoint(e)
            .with_allow_http(endpoint.scheme() == "http");
    }
    if let Some(c) = &s3.credentials {
        builder = builder
            .with_access_key_id(c.access_key_id.expose())
            .with_secret_access_key(c.secret_access_key.expose());
    }
    let s3_err = |error| StoreError::S3 {
        bucket: s3.bucket.clone(),
        error,
    };
    let store = builder.build().map_err(s3_err)?;
    Ok(if s3.prefix.is_empty() {
        Arc::new(store)
    } else {
        Arc::new(object_store::prefix::PrefixStore::new(
            store,
            Path::from(s3.prefix.as_str()),
        ))
    })
}
