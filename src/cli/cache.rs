//! `portcullis cache verify|gc [--config FILE]`: the content store's maintenance, on the store
//! the configuration names (the same one a running proxy uses; both are safe to run beside it).

use std::fmt;
use std::sync::Arc;

use crate::config::Config;
use crate::metrics::Metrics;
use crate::store::maintenance::{GcReport, VerifyReport};
use crate::store::{Access, Backend, Store, StoreError};

pub enum CacheReport {
    Verify(VerifyReport),
    Gc(Backend, GcReport),
}

impl CacheReport {
    /// False when `verify` found corrupt objects (exit status 1).
    pub fn clean(&self) -> bool {
        match self {
            CacheReport::Verify(r) => r.corrupt.is_empty(),
            CacheReport::Gc(..) => true,
        }
    }
}

impl fmt::Display for CacheReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CacheReport::Verify(r) => {
                writeln!(f, "checked {} blobs ({} bytes)", r.checked, r.bytes)?;
                for d in &r.corrupt {
                    writeln!(f, "corrupt (removed): {d}")?;
                }
                if r.corrupt.is_empty() {
                    writeln!(f, "every stored blob hashes to its digest")?;
                }
                Ok(())
            }
            CacheReport::Gc(backend, r) => {
                writeln!(
                    f,
                    "evicted {} blobs; {} blobs ({} bytes) stored",
                    r.evicted, r.blobs, r.bytes
                )?;
                if *backend == Backend::S3 {
                    writeln!(
                        f,
                        "S3: eviction is the bucket's lifecycle rule (see docs/store.md)"
                    )?;
                }
                Ok(())
            }
        }
    }
}

pub async fn verify(config: &Config) -> Result<CacheReport, StoreError> {
    let store =
        Store::open_for(&config.storage, Arc::new(Metrics::new()), Access::Maintain).await?;
    Ok(CacheReport::Verify(store.verify_all().await?))
}

pub async fn gc(config: &Config) -> Result<CacheReport, StoreError> {
    let store =
        Store::open_for(&config.storage, Arc::new(Metrics::new()), Access::Maintain).await?;
    let report = store.gc().await?;
    Ok(CacheReport::Gc(store.backend(), report))
}
