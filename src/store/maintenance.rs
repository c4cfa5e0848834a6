//! `portcullis cache verify|gc`: checks every stored blob against its digest (removing those
//! that do not match), and evicts the filesystem store down to its bound.

use super::{Backend, Store, StoreError};

/// What `cache verify` found.
#[derive(Debug, Default)]
pub struct VerifyReport {
    pub checked: u64,
    pub bytes: u64,
    /// The digests that did not match (now removed).
    pub corrupt: Vec<String>,
}

/// What `cache gc` did.
#[derive(Debug, Default)]
pub struct GcReport {
    pub blobs: u64,
    pub bytes: u64,
    pub evicted: u64,
}

impl Store {
    pub async fn verify_all(&self) -> Result<VerifyReport, StoreError> {
        let mut report = VerifyReport::default();
        for (digest, size) in self.list_blobs().await? {
            match self.verify(&digest).await? {
                super::Checked::Good(_) => {}
                super::Checked::Corrupt => report.corrupt.push(digest.to_string()),
                super::Checked::Missing => continue,
            }
            report.checked += 1;
            report.bytes += size;
        }
        Ok(report)
    }

    /// Evicts the filesystem store to 90 % of `max_bytes` now. For S3 the bucket's lifecycle
    /// rule evicts (docs/store.md); this only counts what is stored.
    pub async fn gc(&self) -> Result<GcReport, StoreError> {
        let mut report = GcReport::default();
        if let (Backend::Filesystem, Some(index)) = (self.backend, &self.index) {
            report.evicted = index.evict().await;
        }
        for (_, size) in self.list_blobs().await? {
            report.blobs += 1;
            report.bytes += size;
        }
        Ok(report)
    }
}
