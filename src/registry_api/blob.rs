//! Blobs: streamed from the upstream (or the storage host it redirects to) to the client without
//! buffering, `Range` passed through. Memory stays flat whatever the blob size; a client that goes
//! away drops the upstream transfer with it.
//!
//! Blob bytes are not hashed here: blobs are content-addressed and every client verifies the
//! digest of what it pulls. What portcullis guarantees is the manifest that names them.
//!
//! One exception keeps that guarantee whole: a client can ask for a manifest's digest on the
//! blob route (containerd does, when resolving a digest fails), and an upstream can hold a
//! manifest's bytes as a blob. Whether some bytes are a manifest is the client's parser's opinion
//! (Go's JSON reader takes duplicated keys, odd member names, padding), so under a strict rule
//! (enforce, or `unmatched: deny`) the rule asks no parser: a blob that could be a JSON document
//! at all (its first byte that is not white space is `{`, or it is all white space as far as
//! the manifest limit) is served only when its digest passes the gate: the digest is verified,
//! or a manifest verified under the rule references it (config and layers of a verified image,
//! children of a verified index). A complete small one must also hash to its digest. Everything
//! else (gzip, zstd and tar layers) streams as before. Under a strict rule the client's `Range`
//! is not forwarded, so that the decision is taken on the blob's own first bytes, never on the
//! shape of a partial answer (several ranges, an unknown total): the whole blob is served with
//! `200`, which HTTP allows.

use http::header::{
    ACCEPT_RANGES, CONTENT_LENGTH, CONTENT_RANGE, CONTENT_TYPE, ETAG, IF_RANGE, LAST_MODIFIED,
    RANGE,
};
use http::{HeaderMap, HeaderValue, Method, Response, StatusCode};

use super::error::{ApiError, DigestMismatch};
use super::gate::Subject;
use super::record;
use super::{Proxy, RequestCtx};
use crate::oci::Digest;
use crate::upstream::body::{self, ResponseBody};
use crate::upstream::{Kind, UpstreamRequest};

/// Response headers passed from the upstream (or storage host) to the client.
pub(super) const PASSED_HEADERS: &[http::HeaderName] = &[
    CONTENT_TYPE,
    CONTENT_LENGTH,
    CONTENT_RANGE,
    ACCEPT_RANGES,
    ETAG,
    LAST_MODIFIED,
];

pub async fn handle(
    proxy: &Proxy,
    ctx: &RequestCtx,
    digest: Digest,
) -> Result<Response<ResponseBody>, ApiError> {
    match &proxy.store {
        Some(store) => Box::pin(super::stored_blob::handle(proxy, ctx, store, digest)).await,
        None => from_upstream(proxy, ctx, digest).await,
    }
}

/// The blob streamed from the upstream, nothing stored.
pub(super) async fn from_upstream(
    proxy: &Proxy,
    ctx: &RequestCtx,
    digest: Digest,
) -> Result<Response<ResponseBody>, ApiError> {
    let upstream = &ctx.upstream;
    let strict = ctx.rule.is_strict() && ctx.method == Method::GET;
    let limit = upstream.limits.max_manifest_bytes;
    let mut headers = HeaderMap::new();
    if !strict {
        for name in [RANGE, IF_RANGE] {
            if let Some(v) = ctx.headers.get(&name) {
                headers.insert(name, v.clone());
            }
        }
    }
    let resp = fetch(ctx, ctx.method.clone(), &digest, &headers).await?;

    let status = resp.status();
    match status {
        StatusCode::PARTIAL_CONTENT if strict => {
            return Err(ApiError::UpstreamInvalid {
                upstream: upstream.key.clone(),
                image: ctx.image.clone(),
                reason: "answered 206 Partial Content to a request without a Range".to_owned(),
            })
        }
        StatusCode::OK | StatusCode::PARTIAL_CONTENT => {}
        StatusCode::RANGE_NOT_SATISFIABLE => {
            return Err(ApiError::RangeNotSatisfiable {
                image: ctx.image.clone(),
                digest,
                content_range: resp.headers().get(CONTENT_RANGE).cloned(),
            })
        }
        _ => {
            return Err(
                ApiError::from_upstream_answer(upstream, &ctx.image, resp, || {
                    ApiError::BlobUnknown {
                        image: ctx.image.clone(),
                        digest: digest.clone(),
                    }
                })
                .await,
            )
        }
    }

    let (parts, incoming) = resp.into_parts();
    let body = if ctx.method == Method::HEAD {
        // Dropping the body of a GET that stood in for a HEAD closes that connection.
        drop(incoming);
        body::empty()
    } else if strict && status == StatusCode::OK {
        let peeked = body::peek_json(
            incoming,
            limit,
            upstream.timeouts.read_idle,
            upstream.deadline_of(&parts),
            upstream.record_blob_bytes(),
        )
        .await
        .map_err(|e| upstream.body_error(e))?;
        match peeked {
            body::Peeked::Json(bytes) => {
                if !digest.matches(&bytes) {
                    return Err(ApiError::DigestMismatch(Box::new(DigestMismatch {
                        upstream: upstream.key.clone(),
                        image: ctx.image.clone(),
                        expected: digest.clone(),
                        expected_from: "requested digest",
                        actual: digest.algorithm().digest(&bytes),
                    })));
                }
                // No media type: a blob-route document is checked, never used to cover others.
                gate(proxy, ctx, &digest, Some(&bytes)).await?;
                body::full(bytes)
            }
            body::Peeked::LargeJson(b) => {
                // Too large to hold, so it cannot be hashed first: only a digest that passes
                // the gate (the client checks the digest of what it gets).
                gate(proxy, ctx, &digest, None).await?;
                b
            }
            body::Peeked::NotJson(b) => b,
        }
    } else {
        body::stream(
            incoming,
            upstream.timeouts.read_idle,
            upstream.record_blob_bytes(),
        )
    };
    let mut out = Response::new(body);
    *out.status_mut() = status;
    let h = out.headers_mut();
    for name in PASSED_HEADERS {
        if let Some(v) = parts.headers.get(name) {
            h.insert(name.clone(), v.clone());
        }
    }
    if !h.contains_key(CONTENT_TYPE) {
        h.insert(
            CONTENT_TYPE,
            HeaderValue::from_static("application/octet-stream"),
        );
    }
    if let Ok(v) = HeaderValue::from_str(&digest.to_string()) {
        h.insert("docker-content-digest", v);
    }
    Ok(out)
}

/// A blob that could be a document passes the gate as one, with no media type: it is checked,
/// and never used to cover others.
pub(super) async fn gate(
    proxy: &Proxy,
    ctx: &RequestCtx,
    digest: &Digest,
    bytes: Option<&[u8]>,
) -> Result<(), ApiError> {
    let subject = Subject {
        image: &ctx.image,
        image_upstream: &ctx.upstream,
        digest,
        media_type: bytes.map(|_| ""),
        manifest: bytes,
    };
    let outcome = proxy.gate.evaluate(&ctx.rule, &subject).await;
    record::record(
        proxy,
        ctx,
        record::Route::Blob,
        None,
        (digest, None),
        &outcome,
    );
    outcome.admit(&ctx.image, digest)
}

pub(super) async fn fetch(
    ctx: &RequestCtx,
    method: Method,
    digest: &Digest,
    headers: &HeaderMap,
) -> Result<http::Response<hyper::body::Incoming>, ApiError> {
    let upstream = &ctx.upstream;
    let resp = upstream
        .send(UpstreamRequest {
            kind: Kind::Blob,
            method,
            repo: Some(&ctx.image.repo),
            path_and_query: format!("/v2/{}/blobs/{}", ctx.image.repo, digest),
            headers: headers.clone(),
        })
        .await?;
    Ok(upstream.follow_redirects(resp, headers).await?)
}
