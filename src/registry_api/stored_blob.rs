//! Blobs through the content store (docs/store.md): a warm blob is served from the store
//! (`Content-Length`, a single `Range` as `206`, `HEAD`), with no upstream request once this
//! upstream repository is known to have it; a cold one is filled by one request (single-flight,
//! `store::fill`) and streamed to the client as it is written and hashed.
//!
//! The strict blob rule of [`super::blob`] holds here unchanged: under enforce or
//! `unmatched: deny`, a stored or filling blob that could be a JSON document is served only when
//! its digest passes the gate, and the client's `Range` is not honoured, so the decision is
//! taken on the blob's own first bytes.
//!
//! Cross-repository: content is stored once per digest, but a blob is served for an upstream
//! repository only when it was served there before (a marker in the store) or that upstream
//! answers a `HEAD` for it with 200. A store fault falls back to the upstream path.

use std::sync::Arc;

use bytes::{Bytes, BytesMut};
use futures_util::stream::BoxStream;
use futures_util::StreamExt;
use http::header::{ACCEPT_RANGES, CONTENT_LENGTH, CONTENT_RANGE, CONTENT_TYPE, IF_RANGE, RANGE};
use http::{HeaderMap, HeaderValue, Method, Response, StatusCode};
use http_body_util::{BodyExt, BodyStream, StreamBody};

use super::blob::{fetch, from_upstream, gate};
use super::error::{ApiError, DigestMismatch};
use super::{Proxy, RequestCtx};
use crate::oci::Digest;
use crate::store::{Join, Store, FILL_WAIT};
use crate::upstream::body::{self, BoxError, ResponseBody};

type Chunks = BoxStream<'static, Result<Bytes, BoxError>>;

pub async fn handle(
    proxy: &Proxy,
    ctx: &RequestCtx,
    store: &Arc<Store>,
    digest: Digest,
) -> Result<Response<ResponseBody>, ApiError> {
    let store_fault = |e: &dyn std::fmt::Display| {
        tracing::warn!(error = %e, "content store fault: serving the blob from the upstream");
    };
    let size = match store.size(&digest).await {
        Ok(s) => s,
        Err(e) => {
            store_fault(&e);
            return Box::pin(from_upstream(proxy, ctx, digest)).await;
        }
    };
    if let Some(size) = size {
        proxy
            .metrics
            .store_requests
            .with_label_values(&["hit"])
            .inc();
        Box::pin(confirm(ctx, store, &digest)).await?;
        return Box::pin(warm(proxy, ctx, store, digest, size)).await;
    }
    if ctx.method == Method::HEAD {
        return Box::pin(from_upstream(proxy, ctx, digest)).await;
    }
    proxy
        .metrics
        .store_requests
        .with_label_values(&["miss"])
        .inc();
    match store.join(&digest) {
        Join::Waiter(waiter) => match waiter.wait(FILL_WAIT).await {
            Ok(true) => match store.size(&digest).await {
                Ok(Some(size)) => {
                    Box::pin(confirm(ctx, store, &digest)).await?;
                    Box::pin(warm(proxy, ctx, store, digest, size)).await
                }
                // Evicted already, or the store failed: ask the upstream.
                Ok(None) => Box::pin(from_upstream(proxy, ctx, digest)).await,
                Err(e) => {
                    store_fault(&e);
                    Box::pin(from_upstream(proxy, ctx, digest)).await
                }
            },
            // The fill failed (or the upstream refused it): the upstream's own answer.
            Ok(false) => Box::pin(from_upstream(proxy, ctx, digest)).await,
            Err(e) => Err(ApiError::Store {
                image: ctx.image.clone(),
                reason: e.to_string(),
            }),
        },
        Join::Leader(leader) => {
            let upstream = &ctx.upstream;
            let resp = Box::pin(fetch(ctx, Method::GET, &digest, &HeaderMap::new())).await?;
            if resp.status() != StatusCode::OK {
                drop(leader);
                return Err(
                    ApiError::from_upstream_answer(upstream, &ctx.image, resp, || {
                        ApiError::BlobUnknown {
                            image: ctx.image.clone(),
                            digest: digest.clone(),
                        }
                    })
                    .await,
                );
            }
            let len = resp
                .headers()
                .get(CONTENT_LENGTH)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.parse::<u64>().ok());
            let content_type = resp.headers().get(CONTENT_TYPE).cloned();
            let idle = upstream.timeouts.read_idle;
            let incoming = body::stream(resp.into_body(), idle, |_| {});
            let fill = leader.start(
                len,
                chunks(incoming),
                idle,
                (upstream.key.clone(), ctx.image.repo.to_string()),
            );
            let fill: Chunks = fill.map(|r| r.map_err(BoxError::from)).boxed();
            // A cold blob is served whole (200) even when a range was asked: HTTP allows it,
            // and the fill needs the whole blob anyway.
            Box::pin(respond(proxy, ctx, &digest, fill, len, None, content_type)).await
        }
    }
}

/// The data of a body, as a stream of chunks.
fn chunks(b: ResponseBody) -> Chunks {
    BodyStream::new(b)
        .filter_map(|frame| async move {
            match frame {
                Ok(f) => f.into_data().ok().map(Ok),
                Err(e) => Some(Err(e)),
            }
        })
        .boxed()
}

/// That this upstream repository has the blob: served there before, or confirmed by a `HEAD`.
async fn confirm(ctx: &RequestCtx, store: &Store, digest: &Digest) -> Result<(), ApiError> {
    let upstream = &ctx.upstream;
    let repo = ctx.image.repo.to_string();
    match store.is_seen(&upstream.key, &repo, digest).await {
        Ok(true) => return Ok(()),
        Ok(false) => {}
        // Not knowing is not knowing: ask the upstream.
        Err(e) => {
            tracing::warn!(error = %e, "content store fault while checking where a blob was served")
        }
    }
    let resp = Box::pin(fetch(ctx, Method::HEAD, digest, &HeaderMap::new())).await?;
    if resp.status() != StatusCode::OK {
        return Err(
            ApiError::from_upstream_answer(upstream, &ctx.image, resp, || ApiError::BlobUnknown {
                image: ctx.image.clone(),
                digest: digest.clone(),
            })
            .await,
        );
    }
    if let Err(e) = store.mark_seen(&upstream.key, &repo, digest).await {
        tracing::warn!(error = %e, "cannot record where a stored blob was served");
    }
    Ok(())
}

/// A stored blob, whole or one range of it.
async fn warm(
    proxy: &Proxy,
    ctx: &RequestCtx,
    store: &Arc<Store>,
    digest: Digest,
    size: u64,
) -> Result<Response<ResponseBody>, ApiError> {
    let strict = ctx.rule.is_strict() && ctx.method == Method::GET;
    if ctx.method == Method::HEAD {
        let mut resp = Response::new(body::empty());
        set_headers(resp.headers_mut(), &digest, size, None, None);
        return Ok(resp);
    }
    let range = if strict || ctx.headers.contains_key(IF_RANGE) {
        None
    } else {
        match ctx.headers.get(RANGE).map(|v| parse_range(v, size)) {
            None | Some(RangeAsked::Ignored) => None,
            Some(RangeAsked::Unsatisfiable) => {
                return Err(ApiError::RangeNotSatisfiable {
                    image: ctx.image.clone(),
                    digest,
                    content_range: HeaderValue::from_str(&format!("bytes */{size}")).ok(),
                })
            }
            Some(RangeAsked::Bytes(r)) => Some(r),
        }
    };
    let opened = match store.open_blob(&digest, range.clone()).await {
        Ok(Some(o)) => o,
        Ok(None) => return Box::pin(from_upstream(proxy, ctx, digest)).await,
        Err(e) => {
            tracing::warn!(error = %e, "content store fault: serving the blob from the upstream");
            return Box::pin(from_upstream(proxy, ctx, digest)).await;
        }
    };
    let body: Chunks = opened.body.map(|r| r.map_err(BoxError::from)).boxed();
    respond(proxy, ctx, &digest, body, Some(opened.size), range, None).await
}

/// Sends a blob's bytes, applying the strict blob rule first where it holds.
async fn respond(
    proxy: &Proxy,
    ctx: &RequestCtx,
    digest: &Digest,
    body: Chunks,
    size: Option<u64>,
    range: Option<std::ops::Range<u64>>,
    content_type: Option<HeaderValue>,
) -> Result<Response<ResponseBody>, ApiError> {
    let strict = ctx.rule.is_strict() && ctx.method == Method::GET;
    let record = ctx.upstream.record_blob_bytes();
    let body = if strict {
        let limit = ctx.upstream.limits.max_manifest_bytes;
        match peek_json(body, limit).await {
            Err(e) => {
                return Err(ApiError::Store {
                    image: ctx.image.clone(),
                    reason: e.to_string(),
                })
            }
            Ok(Peeked::Json(bytes)) => {
                if !digest.matches(&bytes) {
                    return Err(ApiError::DigestMismatch(Box::new(DigestMismatch {
                        upstream: ctx.upstream.key.clone(),
                        image: ctx.image.clone(),
                        expected: digest.clone(),
                        expected_from: "requested digest",
                        actual: digest.algorithm().digest(&bytes),
                    })));
                }
                Box::pin(gate(proxy, ctx, digest, Some(&bytes))).await?;
                futures_util::stream::once(async move { Ok(bytes) }).boxed()
            }
            Ok(Peeked::LargeJson(b)) => {
                Box::pin(gate(proxy, ctx, digest, None)).await?;
                b
            }
            Ok(Peeked::NotJson(b)) => b,
        }
    } else {
        body
    };
    let frames = body.map(move |r| {
        r.map(|chunk| {
            record(chunk.len());
            hyper::body::Frame::data(chunk)
        })
    });
    let frames = sync_wrapper::SyncStream::new(frames);
    let mut resp = Response::new(BodyExt::boxed(StreamBody::new(frames)));
    if range.is_some() {
        *resp.status_mut() = StatusCode::PARTIAL_CONTENT;
    }
    match size {
        Some(size) => set_headers(resp.headers_mut(), digest, size, range, content_type),
        None => {
            let h = resp.headers_mut();
            h.insert(
                CONTENT_TYPE,
                content_type.unwrap_or(HeaderValue::from_static("application/octet-stream")),
            );
            if let Ok(v) = HeaderValue::from_str(&digest.to_string()) {
                h.insert("docker-content-digest", v);
            }
        }
    }
    Ok(resp)
}

fn set_headers(
    h: &mut HeaderMap,
    digest: &Digest,
    size: u64,
    range: Option<std::ops::Range<u64>>,
    content_type: Option<HeaderValue>,
) {
    h.insert(
        CONTENT_TYPE,
        content_type.unwrap_or(HeaderValue::from_static("application/octet-stream")),
    );
    h.insert(ACCEPT_RANGES, HeaderValue::from_static("bytes"));
    let length = match &range {
        Some(r) => {
            if let Ok(v) = HeaderValue::from_str(&format!("bytes {}-{}/{size}", r.start, r.end - 1))
            {
                h.insert(CONTENT_RANGE, v);
            }
            r.end - r.start
        }
        None => size,
    };
    h.insert(CONTENT_LENGTH, HeaderValue::from(length));
    if let Ok(v) = HeaderValue::from_str(&digest.to_string()) {
        h.insert("docker-content-digest", v);
        if let Ok(etag) = HeaderValue::from_str(&format!("\"{digest}\"")) {
            h.insert(http::header::ETAG, etag);
        }
    }
}

#[derive(Debug, PartialEq)]
enum RangeAsked {
    Bytes(std::ops::Range<u64>),
    /// Several ranges, another unit, or a malformed header: the whole blob is served.
    Ignored,
    Unsatisfiable,
}

/// One `bytes=` range of a blob of `size` bytes.
fn parse_range(v: &HeaderValue, size: u64) -> RangeAsked {
    let Some(spec) = v
        .to_str()
        .ok()
        .and_then(|s| s.trim().strip_prefix("bytes="))
    else {
        return RangeAsked::Ignored;
    };
    if spec.contains(',') {
        return RangeAsked::Ignored;
    }
    let Some((a, b)) = spec.trim().split_once('-') else {
        return RangeAsked::Ignored;
    };
    let (a, b) = (a.trim(), b.trim());
    let range = match (a.is_empty(), b.is_empty()) {
        (true, true) => return RangeAsked::Ignored,
        (true, false) => match b.parse::<u64>() {
            Ok(0) => return RangeAsked::Unsatisfiable,
            Ok(n) => size.saturating_sub(n)..size,
            Err(_) => return RangeAsked::Ignored,
        },
        (false, _) => {
            let Ok(start) = a.parse::<u64>() else {
                return RangeAsked::Ignored;
            };
            let end = match b.is_empty() {
                true => size,
                false => match b.parse::<u64>() {
                    Ok(e) if e >= start => e.saturating_add(1).min(size),
                    _ => return RangeAsked::Ignored,
                },
            };
            if start >= size {
                return RangeAsked::Unsatisfiable;
            }
            start..end
        }
    };
    if range.is_empty() {
        RangeAsked::Unsatisfiable
    } else {
        RangeAsked::Bytes(range)
    }
}

enum Peeked {
    Json(Bytes),
    LargeJson(Chunks),
    NotJson(Chunks),
}

/// [`body::peek_json`] over a stream of chunks: holds at most `limit` bytes (plus one chunk),
/// and only while the blob could still be a JSON document.
async fn peek_json(mut chunks: Chunks, limit: usize) -> Result<Peeked, BoxError> {
    let mut buf = BytesMut::new();
    let first = |buf: &BytesMut| buf.iter().find(|b| !b.is_ascii_whitespace()).copied();
    let complete = loop {
        match chunks.next().await {
            None => break true,
            Some(Err(e)) => return Err(e),
            Some(Ok(data)) => {
                buf.extend_from_slice(&data);
                if first(&buf).is_some_and(|b| b != b'{') || buf.len() > limit {
                    break false;
                }
            }
        }
    };
    let could_be_json = matches!(first(&buf), None | Some(b'{'));
    if complete && could_be_json {
        return Ok(Peeked::Json(buf.freeze()));
    }
    let prefix = buf.freeze();
    // A stream that ended must not be polled again.
    let rest = if complete {
        futures_util::stream::empty().boxed()
    } else {
        chunks
    };
    let body = futures_util::stream::once(async move { Ok(prefix) })
        .chain(rest)
        .boxed();
    Ok(match could_be_json {
        true => Peeked::LargeJson(body),
        false => Peeked::NotJson(body),
    })
}

#[cfg(test)]
mod tests {
    use super::{parse_range, RangeAsked};
    use http::HeaderValue;

    fn r(s: &str) -> RangeAsked {
        parse_range(&HeaderValue::from_str(s).unwrap(), 100)
    }

    #[test]
    fn ranges() {
        assert_eq!(r("bytes=0-9"), RangeAsked::Bytes(0..10));
        assert_eq!(r("bytes=90-"), RangeAsked::Bytes(90..100));
        assert_eq!(r("bytes=-10"), RangeAsked::Bytes(90..100));
        assert_eq!(r("bytes=50-500"), RangeAsked::Bytes(50..100));
        assert_eq!(r("bytes=100-"), RangeAsked::Unsatisfiable);
        assert_eq!(r("bytes=0-1,5-6"), RangeAsked::Ignored);
        assert_eq!(r("items=0-1"), RangeAsked::Ignored);
        assert_eq!(r("bytes=9-3"), RangeAsked::Ignored);
    }
}
