//! Manifests held in memory: their bytes by digest (content-addressed, so they never change and
//! a hit needs no upstream request; bounded by total bytes) and the last resolution of each tag
//! that passed the gate. Bytes are only ever inserted after their digest was proven.
//!
//! With a content store, both are kept there too (`store::answers`) and read back on a memory
//! miss, after a restart as well: a stored manifest's bytes are checked against its digest
//! again when read. A tag's resolution is written when it changes, not on every request.
//!
//! This module does not fetch or check a manifest (that is [`super::fetch`]) and does not decide
//! whether a cached answer may be served (every answer passes the gate).

use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use http::HeaderValue;

use super::FetchedManifest;
use crate::cache::{Cached, Counted};
use crate::config::CacheSettings;
use crate::metrics::Metrics;
use crate::oci::{Digest, ImageName, Tag};
use crate::store::answers::{self, Answer, Outcome};
use crate::store::Store;

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
    pub resolved: SystemTime,
}

impl TagEntry {
    /// Whether it was resolved less than `ttl` ago (a clock set back counts as not).
    pub fn within(&self, ttl: Duration) -> bool {
        self.resolved.elapsed().is_ok_and(|age| age < ttl)
    }
}

/// Manifest bytes by digest and tag resolutions.
pub struct ManifestCache {
    content: Cached<ContentKey, FetchedManifest>,
    tags: Cached<TagKey, TagEntry>,
    /// The second tier, and the largest manifest read back from it (`limits.max_manifest_bytes`).
    store: Option<(Arc<Store>, usize)>,
}

/// Bookkeeping bytes per cached manifest on top of its body.
const ENTRY_OVERHEAD: u32 = 256;

/// A manifest deleted upstream stops being served within a day.
const LIFETIME: Duration = Duration::from_secs(24 * 3600);

impl ManifestCache {
    pub fn new(
        settings: &CacheSettings,
        metrics: Arc<Metrics>,
        store: Option<(Arc<Store>, usize)>,
    ) -> ManifestCache {
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
            store,
        }
    }

    pub async fn get(&self, image: &ImageName, digest: &Digest) -> Option<FetchedManifest> {
        let key = content_key(image, digest);
        if let Some(m) = self.content.get(&key).await {
            return Some(m);
        }
        let m = self.kept_manifest(image, digest).await?;
        self.content.insert(key, m.clone()).await;
        Some(m)
    }

    async fn kept_manifest(&self, image: &ImageName, digest: &Digest) -> Option<FetchedManifest> {
        let (store, limit) = self.store.as_ref()?;
        let asked = answers::manifest_asked(&image.repo.to_string(), digest);
        let answer = store.kept_answer(&image.registry, &asked, *limit).await?;
        if answer.outcome != Outcome::Found || !digest.matches(&answer.body) {
            tracing::warn!(%image, %digest, "kept manifest does not match its digest: ignored");
            return None;
        }
        let media_type = HeaderValue::from_str(answer.media_type.as_deref()?).ok()?;
        Some(FetchedManifest {
            digest: digest.clone(),
            media_type,
            bytes: answer.body,
        })
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
        let fetch = async {
            let m = fetch.await?;
            self.keep_manifest(image, &m);
            Ok(m)
        };
        self.content.fill(content_key(image, digest), fetch).await
    }

    pub async fn insert(&self, image: &ImageName, m: &FetchedManifest) {
        self.content
            .insert(content_key(image, &m.digest), m.clone())
            .await;
        self.keep_manifest(image, m);
    }

    fn keep_manifest(&self, image: &ImageName, m: &FetchedManifest) {
        self.keep(
            image,
            answers::manifest_asked(&image.repo.to_string(), &m.digest),
            m.media_type.to_str().ok().map(str::to_owned),
            m.bytes.clone(),
        );
    }

    pub async fn tag(&self, image: &ImageName, tag: &Tag, accept: &str) -> Option<TagEntry> {
        let key = tag_key(image, tag, accept);
        if let Some(e) = self.tags.get(&key).await {
            return Some(e);
        }
        let (store, _) = self.store.as_ref()?;
        let asked = answers::tag_asked(&image.repo.to_string(), tag.as_str(), accept);
        let answer = store.kept_answer(&image.registry, &asked, 256).await?;
        let digest: Digest = std::str::from_utf8(&answer.body).ok()?.parse().ok()?;
        let entry = TagEntry {
            digest,
            resolved: SystemTime::UNIX_EPOCH
                + Duration::from_secs(u64::try_from(answer.at).unwrap_or(0)),
        };
        self.tags.insert(key, entry.clone()).await;
        Some(entry)
    }

    pub async fn set_tag(&self, image: &ImageName, tag: &Tag, accept: &str, digest: &Digest) {
        let key = tag_key(image, tag, accept);
        // Not a lookup a request made: not counted in the cache's metric.
        let changed = self.store.is_some()
            && self
                .tags
                .peek(&key)
                .await
                .is_none_or(|before| before.digest != *digest);
        let entry = TagEntry {
            digest: digest.clone(),
            resolved: SystemTime::now(),
        };
        self.tags.insert(key, entry).await;
        if changed {
            self.keep(
                image,
                answers::tag_asked(&image.repo.to_string(), tag.as_str(), accept),
                None,
                bytes::Bytes::from(digest.to_string()),
            );
        }
    }

    fn keep(
        &self,
        image: &ImageName,
        asked: String,
        media_type: Option<String>,
        body: bytes::Bytes,
    ) {
        if let Some((store, _)) = &self.store {
            let answer = Answer {
                outcome: Outcome::Found,
                media_type,
                link: None,
                body,
                at: answers::now(),
            };
            store.keep_answer_later(&image.registry, asked, answer);
        }
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
