//! Manifests held in memory: their bytes by digest (content-addressed, so they never change and
//! a hit needs no upstream request; bounded by total bytes) and the last resolution of each tag
//! that passed the gate. Bytes are only ever inserted after their digest was proven.
//!
//! This module does not fetch or check a manifest (that is [`super::fetch`]) and does not decide
//! whether a cached answer may be served (every answer passes the gate).

use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::FetchedManifest;
use crate::cache::{Cached, Counted};
use crate::config::CacheSettings;
use crate::metrics::Metrics;
use crate::oci::{Digest, ImageName, Tag};

/// A manifest of one repository of one upstream, by digest.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct ContentKey {
    image: ImageName,
    digest: Digest,
}

/// A tag of one repository, as resolved for one `Accept` (registries answer a tag with the
/// manifest type the client accepts).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct TagKey {
    image: ImageName,
    tag: Tag,
    accept: Arc<str>,
}

/// The last resolution of a tag that passed the gate.
#[derive(Debug, Clone)]
pub struct TagEntry {
    pub digest: Digest,
    pub resolved: Instant,
}

/// Manifest bytes by digest and tag resolutions.
pub struct ManifestCache {
    content: Cached<ContentKey, FetchedManifest>,
    tags: Cached<TagKey, TagEntry>,
}

/// Bookkeeping bytes per cached manifest on top of its body.
const ENTRY_OVERHEAD: u32 = 256;

/// A manifest deleted upstream stops being served within a day.
const LIFETIME: Duration = Duration::from_secs(24 * 3600);

impl ManifestCache {
    pub fn new(settings: &CacheSettings, metrics: Arc<Metrics>) -> ManifestCache {
        let content = moka::future::Cache::builder()
            .max_capacity(settings.manifest_bytes)
            .weigher(|_k: &ContentKey, m: &FetchedManifest| {
                u32::try_from(m.bytes.len())
                    .unwrap_or(u32::MAX)
                    .saturating_add(ENTRY_OVERHEAD)
            })
            .time_to_live(LIFETIME)
            .build();
        let tags = moka::future::Cache::builder()
            .max_capacity(settings.max_verdicts)
            .time_to_live(LIFETIME)
            .build();
        ManifestCache {
            content: Cached::new("manifest", Counted::HitsAndMisses, content, metrics.clone()),
            tags: Cached::new("tag", Counted::HitsAndMisses, tags, metrics),
        }
    }

    pub async fn get(&self, image: &ImageName, digest: &Digest) -> Option<FetchedManifest> {
        self.content.get(&content_key(image, digest)).await
    }

    /// The manifest fetched by `fetch`, run once for concurrent callers (a burst of cold pulls
    /// of one digest sends one request upstream) and kept. Errors are not kept. For a caller that
    /// looked the digest up already.
    pub async fn fetch_once<E, F>(
        &self,
        image: &ImageName,
        digest: &Digest,
        fetch: F,
    ) -> Result<FetchedManifest, Arc<E>>
    where
        F: Future<Output = Result<FetchedManifest, E>>,
        E: Send + Sync + 'static,
    {
        self.content.fill(content_key(image, digest), fetch).await
    }

    pub async fn insert(&self, image: &ImageName, m: &FetchedManifest) {
        self.content
            .insert(content_key(image, &m.digest), m.clone())
            .await;
    }

    pub async fn tag(&self, image: &ImageName, tag: &Tag, accept: &str) -> Option<TagEntry> {
        self.tags.get(&tag_key(image, tag, accept)).await
    }

    pub async fn set_tag(&self, image: &ImageName, tag: &Tag, accept: &str, digest: &Digest) {
        let entry = TagEntry {
            digest: digest.clone(),
            resolved: Instant::now(),
        };
        self.tags.insert(tag_key(image, tag, accept), entry).await;
    }
}

fn content_key(image: &ImageName, digest: &Digest) -> ContentKey {
    ContentKey {
        image: image.clone(),
        digest: digest.clone(),
    }
}

fn tag_key(image: &ImageName, tag: &Tag, accept: &str) -> TagKey {
    TagKey {
        image: image.clone(),
        tag: tag.clone(),
        accept: accept.into(),
    }
}
