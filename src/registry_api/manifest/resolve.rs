//! The resolve stage: the manifest a request names, with where it came from ([`Source`]). By
//! digest, from the cache or fetched once for all concurrent callers; by tag, from the cache
//! when the upstream's `HEAD` names a cached digest (or, within `tag_ttl`, without asking), else
//! fetched; while the upstream is unreachable, a tag's last verified resolution with
//! `serve_stale_tags`. A `HEAD` whose manifest is not cached is answered from the upstream's
//! headers. Nothing here gates: every answer, cached or not, passes the gate next.

use http::{HeaderValue, Method};

use super::fetch::{self, accept_headers, Head, Origin};
use super::FetchedManifest;
use crate::oci::{Reference, Tag};
use crate::registry_api::error::ApiError;
use crate::registry_api::{Proxy, RequestCtx};

/// What the resolve stage found.
pub struct Resolved {
    pub answer: Answer,
    pub source: Source,
}

/// A manifest, or what the upstream's `HEAD` said about one.
pub enum Answer {
    /// The whole manifest, its digest proven.
    Manifest(FetchedManifest),
    /// A `HEAD` answered with the upstream's digest, type and length; no bytes.
    Headers(Head),
}

/// Where a resolved manifest came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    /// From the manifest cache; the upstream was not asked (a digest, a tag within `tag_ttl`, or
    /// a tag served stale).
    Cache,
    /// From the manifest cache, after the upstream named its digest for the tag just now.
    Revalidated,
    /// From the upstream, in this request.
    Fetched(Keeping),
}

/// Whether fetched bytes are in the cache already.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Keeping {
    /// Fetched through the cache (one fetch for concurrent callers), which keeps them.
    Kept,
    /// To be kept once they passed the gate.
    AfterGate,
}

impl Source {
    /// A tag's entry is renewed when the upstream resolved it in this request.
    pub fn renews_tag(self) -> bool {
        self != Source::Cache
    }
}

/// Resolves `reference` for the request.
pub async fn resolve(
    proxy: &Proxy,
    ctx: &RequestCtx,
    reference: &Reference,
    accept_key: &str,
) -> Result<Resolved, ApiError> {
    let cache = &proxy.manifests;
    let origin = origin(ctx);
    let resolved = |answer, source| Ok(Resolved { answer, source });
    match reference {
        Reference::Digest(d) => {
            if let Some(m) = cache.get(&ctx.image, d).await {
                return resolved(Answer::Manifest(m), Source::Cache);
            }
            if ctx.method == Method::HEAD {
                return resolved(
                    Answer::Headers(head_through(ctx, reference).await?),
                    Source::Fetched(Keeping::AfterGate),
                );
            }
            let fetch = fetch::get(origin, reference, accept_headers(&ctx.headers));
            let m = cache
                .fetch_once(&ctx.image, d, fetch)
                .await
                .map_err(ApiError::shared)?;
            resolved(Answer::Manifest(m), Source::Fetched(Keeping::Kept))
        }
        Reference::Tag(tag) => resolve_tag(proxy, ctx, tag, accept_key).await,
    }
}

fn origin(ctx: &RequestCtx) -> Origin<'_> {
    Origin {
        upstream: &ctx.upstream,
        image: &ctx.image,
    }
}

async fn resolve_tag(
    proxy: &Proxy,
    ctx: &RequestCtx,
    tag: &Tag,
    accept: &str,
) -> Result<Resolved, ApiError> {
    let cache = &proxy.manifests;
    let by_tag = Reference::Tag(tag.clone());
    let fetch_by = |reference: Reference| async move {
        fetch::get(origin(ctx), &reference, accept_headers(&ctx.headers)).await
    };
    let cached = |manifest, source| {
        Ok(Resolved {
            answer: Answer::Manifest(manifest),
            source,
        })
    };
    let known = cache.tag(&ctx.image, tag, accept).await;
    if let (Some(ttl), Some(k)) = (ctx.upstream.tag_ttl, &known) {
        if k.within(ttl) {
            if let Some(manifest) = cache.get(&ctx.image, &k.digest).await {
                return cached(manifest, Source::Cache);
            }
        }
    }
    let is_head = ctx.method == Method::HEAD;
    if known.is_none() && !is_head {
        // Never resolved here, so its content is most likely not cached: one GET, not two.
        return cached(fetch_by(by_tag).await?, Source::Fetched(Keeping::AfterGate));
    }
    match fetch::head(origin(ctx), &by_tag, accept_headers(&ctx.headers)).await {
        Ok(Some(head)) => match cache.get(&ctx.image, &head.digest).await {
            Some(manifest) => cached(manifest, Source::Revalidated),
            None if is_head => Ok(Resolved {
                answer: Answer::Headers(head),
                source: Source::Fetched(Keeping::AfterGate),
            }),
            None => cached(
                fetch_by(Reference::Digest(head.digest)).await?,
                Source::Fetched(Keeping::AfterGate),
            ),
        },
        Ok(None) if is_head => {
            // An incomplete HEAD: the GET standing in for it fills the cache (every answer from
            // the cache passes the gate, so keeping it before the gate is safe).
            let m = fetch_by(by_tag).await?;
            cache.insert(&ctx.image, &m).await;
            cached(m, Source::Fetched(Keeping::Kept))
        }
        Ok(None) => cached(fetch_by(by_tag).await?, Source::Fetched(Keeping::AfterGate)),
        Err(e) if ctx.upstream.serve_stale_tags && e.is_upstream_unavailable() => {
            let stale = match &known {
                Some(k) => cache.get(&ctx.image, &k.digest).await,
                None => None,
            };
            match stale {
                Some(manifest) => {
                    tracing::warn!(
                        image = %ctx.image,
                        %tag,
                        digest = %manifest.digest,
                        error = %e,
                        "upstream unreachable: serving the tag's last verified resolution (serve_stale_tags)"
                    );
                    cached(manifest, Source::Cache)
                }
                None => Err(e),
            }
        }
        Err(e) => Err(e),
    }
}

/// A `HEAD` answered through the upstream, or by a `GET` when its `HEAD` is incomplete.
async fn head_through(ctx: &RequestCtx, reference: &Reference) -> Result<Head, ApiError> {
    let accept = accept_headers(&ctx.headers);
    match fetch::head(origin(ctx), reference, accept.clone()).await? {
        Some(head) => Ok(head),
        None => {
            let m = fetch::get(origin(ctx), reference, accept).await?;
            Ok(Head {
                length: HeaderValue::from(m.bytes.len()),
                digest: m.digest,
                media_type: m.media_type,
            })
        }
    }
}
