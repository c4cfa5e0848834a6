//! Upstream answers kept in the store so that an image can be re-verified and served with its
//! upstream unreachable, after a restart too (docs/store.md, "With the upstream down"): the
//! documents signature discovery read (referrers indexes, `.sig`/`.att` and bundle manifests,
//! signature layers) and their "none here" answers, manifests by digest with their media type,
//! and the last tag resolutions that passed the gate.
//!
//! An answer is kept under `answers/<upstream>/<sha256 of what was asked>` as one object: a JSON
//! line ([`Header`], which repeats what was asked) and then the body's bytes. This module keeps
//! and reads them back, bounded; it decides nothing about them. What reads them checks what it
//! can (a manifest or a blob against its digest) and verifies signatures as it would any others.

use std::sync::Arc;

use bytes::{Bytes, BytesMut};
use futures_util::StreamExt;
use object_store::path::Path;
use object_store::{ObjectStoreExt, PutPayload};
use serde::{Deserialize, Serialize};

use super::{Store, StoreError};
use crate::oci::{Algorithm, Digest};

/// What an upstream answered to one request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// 200, with the body.
    Found,
    /// 404: none here.
    NotFound,
    /// 405: the upstream has no such API (a registry without the referrers API).
    NotAllowed,
}

/// One kept answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Answer {
    pub outcome: Outcome,
    /// The body's media type, where it matters (a manifest).
    pub media_type: Option<String>,
    /// The `Link` header of a paginated listing.
    pub link: Option<String>,
    pub body: Bytes,
    /// When the upstream answered, in seconds since the epoch.
    pub at: i64,
}

/// The first line of a kept answer.
#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Header {
    asked: String,
    outcome: Outcome,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    media_type: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    link: Option<String>,
    at: i64,
}

/// The longest header line read back.
const HEADER_MAX: usize = 16 * 1024;

fn answer_key(upstream: &str, asked: &str) -> Path {
    let hash = Algorithm::Sha256.digest(asked.as_bytes());
    Path::from_iter(["answers", upstream, hash.hex()])
}

/// Seconds since the epoch, now.
pub fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

impl Store {
    /// Keeps what `upstream` answered to `asked` (replacing what was kept for it); nothing in
    /// a store opened for reading.
    pub async fn keep_answer(
        &self,
        upstream: &str,
        asked: &str,
        answer: &Answer,
    ) -> Result<(), StoreError> {
        if self.access == super::Access::Read {
            return Ok(());
        }
        let key = answer_key(upstream, asked);
        let header = Header {
            asked: asked.to_owned(),
            outcome: answer.outcome,
            media_type: answer.media_type.clone(),
            link: answer.link.clone(),
            at: answer.at,
        };
        // A struct of strings and integers always serializes.
        let mut object = serde_json::to_vec(&header).unwrap_or_default();
        object.push(b'\n');
        object.extend_from_slice(&answer.body);
        let size = object.len() as u64;
        self.objects
            .put(&key, PutPayload::from(object))
            .await
            .map_err(|e| StoreError::object("write", &key, e))?;
        if let Some(index) = &self.index {
            index.insert(key, size);
        }
        Ok(())
    }

    /// [`Store::keep_answer`] in the background: the request that got the answer does not wait
    /// for the store, and a fault is logged.
    pub fn keep_answer_later(self: &Arc<Self>, upstream: &str, asked: String, answer: Answer) {
        let (store, upstream) = (self.clone(), upstream.to_owned());
        tokio::spawn(async move {
            if let Err(e) = store.keep_answer(&upstream, &asked, &answer).await {
                tracing::warn!(error = %e, "cannot keep an upstream answer in the content store");
            }
        });
    }

    /// [`Store::answer`] for a caller that falls back to the upstream's own answer: a store
    /// fault is logged and taken as nothing kept.
    pub async fn kept_answer(&self, upstream: &str, asked: &str, limit: usize) -> Option<Answer> {
        self.answer(upstream, asked, limit)
            .await
            .unwrap_or_else(|e| {
                tracing::warn!(error = %e, "content store fault while reading a kept answer");
                None
            })
    }

    /// What `upstream` last answered to `asked`, if kept; `None` too for a kept object that is
    /// not an answer to it or whose body exceeds `limit` bytes (it is logged).
    pub async fn answer(
        &self,
        upstream: &str,
        asked: &str,
        limit: usize,
    ) -> Result<Option<Answer>, StoreError> {
        let key = answer_key(upstream, asked);
        if let Some(index) = &self.index {
            if index.size(&key).is_none() {
                return Ok(None);
            }
            index.touch(&key);
        }
        let Some(reading) = self.get(&key, None).await? else {
            return Ok(None);
        };
        let bound = limit.saturating_add(HEADER_MAX);
        if reading.size > bound as u64 {
            tracing::warn!(%key, size = reading.size, limit, "kept answer exceeds its bound: ignored");
            return Ok(None);
        }
        let mut object = BytesMut::new();
        let mut body = reading.body;
        while let Some(chunk) = body.next().await {
            object.extend_from_slice(&chunk.map_err(|e| StoreError::object("read", &key, e))?);
            if object.len() > bound {
                tracing::warn!(%key, limit, "kept answer exceeds its bound: ignored");
                return Ok(None);
            }
        }
        let mut object = object.freeze();
        let Some(newline) = object.iter().position(|&b| b == b'\n') else {
            tracing::warn!(%key, "kept answer has no header line: ignored");
            return Ok(None);
        };
        let header: Header = match serde_json::from_slice(&object[..newline]) {
            Ok(h) => h,
            Err(e) => {
                tracing::warn!(%key, error = %e, "kept answer's header is unreadable: ignored");
                return Ok(None);
            }
        };
        if header.asked != asked {
            tracing::warn!(%key, "kept answer is for another request: ignored");
            return Ok(None);
        }
        let body = object.split_off(newline + 1);
        if body.len() > limit {
            tracing::warn!(%key, limit, "kept answer exceeds its bound: ignored");
            return Ok(None);
        }
        Ok(Some(Answer {
            outcome: header.outcome,
            media_type: header.media_type,
            link: header.link,
            body,
            at: header.at,
        }))
    }
}

/// What a manifest by digest is kept as: `manifest <repository>@<digest>`.
pub fn manifest_asked(repo: &str, digest: &Digest) -> String {
    format!("manifest {repo}@{digest}")
}

/// What a tag's last resolution (that passed the gate) is kept as, per `Accept`.
pub fn tag_asked(repo: &str, tag: &str, accept: &str) -> String {
    format!("tag {repo}:{tag} accept={accept}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::storage::StorageSettings;

    #[tokio::test]
    async fn answers_are_kept_and_read_back_bounded() {
        let dir = tempfile::tempdir().unwrap();
        let settings = StorageSettings::Filesystem {
            root: dir.path().to_path_buf(),
            max_bytes: 1 << 30,
        };
        let store = Store::open(&settings, Arc::new(crate::metrics::Metrics::new()))
            .await
            .unwrap();
        let answer = Answer {
            outcome: Outcome::Found,
            media_type: Some("application/vnd.oci.image.index.v1+json".into()),
            link: Some("</v2/a/referrers/x?last=1>; rel=\"next\"".into()),
            body: Bytes::from_static(b"{\"line\":\n\"two\"}"),
            at: 1_700_000_000,
        };
        let asked = "GET /v2/a/referrers/sha256:00 accept=x";
        store.keep_answer("r.local", asked, &answer).await.unwrap();
        assert_eq!(
            store.answer("r.local", asked, 1024).await.unwrap(),
            Some(answer.clone())
        );
        assert_eq!(store.answer("other", asked, 1024).await.unwrap(), None);
        assert_eq!(
            store.answer("r.local", "GET /else", 1024).await.unwrap(),
            None
        );
        // A body over the bound is not read back.
        assert_eq!(store.answer("r.local", asked, 10).await.unwrap(), None);
        let large = Answer {
            body: Bytes::from(vec![b'x'; 64 * 1024]),
            ..answer.clone()
        };
        store.keep_answer("r.local", "large", &large).await.unwrap();
        assert_eq!(store.answer("r.local", "large", 1024).await.unwrap(), None);
        assert_eq!(
            store.answer("r.local", "large", 64 * 1024).await.unwrap(),
            Some(large)
        );
        let none = Answer {
            outcome: Outcome::NotFound,
            media_type: None,
            link: None,
            body: Bytes::new(),
            at: 1,
        };
        store.keep_answer("r.local", asked, &none).await.unwrap();
        assert_eq!(
            store.answer("r.local", asked, 1024).await.unwrap(),
            Some(none)
        );
    }
}
