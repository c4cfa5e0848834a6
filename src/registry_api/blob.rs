//! Blobs: streamed from the upstream (or the storage host it redirects to) to the client without
//! buffering, `Range` passed through. Memory stays flat whatever the blob size; a client that goes
//! away drops the upstream transfer with it.
//!
//! Blob bytes are not hashed here: blobs are content-addressed and every client verifies the
//! digest of what it pulls. What portcullis guarantees is the manifest that names them.
//!
//! One exception keeps that guarantee whole: a client can ask for a manifest's digest on the
//! blob route (containerd does, when resolving a digest fails), and an upstream can hold a
//! manifest's bytes as a blob. Under a strict rule (enforce, or `unmatched: deny`) a small JSON
//! blob is therefore read whole, and if it is a manifest (`schemaVersion`) it must hash to the
//! requested digest and pass the gate like any manifest. Small blobs are fetched whole for this
//! (a `Range` on them is ignored, which HTTP allows); large or non-JSON blobs stream as before.

use http::header::{
    ACCEPT_RANGES, CONTENT_LENGTH, CONTENT_RANGE, CONTENT_TYPE, ETAG, IF_RANGE, LAST_MODIFIED,
    RANGE,
};
use http::{HeaderMap, HeaderValue, Method, Response, StatusCode};

use super::error::{ApiError, DigestMismatch};
use super::reference::Digest;
use super::{upstream_failure, RequestCtx};
use crate::upstream::body::{self, ResponseBody};
use crate::upstream::{Kind, UpstreamRequest};

/// Response headers passed from the upstream (or storage host) to the client.
const PASSED_HEADERS: &[http::HeaderName] = &[
    CONTENT_TYPE,
    CONTENT_LENGTH,
    CONTENT_RANGE,
    ACCEPT_RANGES,
    ETAG,
    LAST_MODIFIED,
];

pub async fn handle(ctx: &RequestCtx, digest: Digest) -> Result<Response<ResponseBody>, ApiError> {
    let upstream = &ctx.upstream;
    let strict = ctx.gate.is_strict() && ctx.method == Method::GET;
    let limit = upstream.limits.max_manifest_bytes;
    let mut headers = HeaderMap::new();
    for name in [RANGE, IF_RANGE] {
        if let Some(v) = ctx.headers.get(&name) {
            headers.insert(name, v.clone());
        }
    }
    let mut resp = fetch(ctx, &digest, &headers).await?;
    if strict
        && resp.status() == StatusCode::PARTIAL_CONTENT
        && range_total(resp.headers()).is_some_and(|total| total <= limit as u64)
    {
        // A small blob could be a manifest fetched piecewise: get it whole to look at it.
        drop(resp);
        headers.clear();
        resp = fetch(ctx, &digest, &headers).await?;
    }

    let status = resp.status();
    match status {
        StatusCode::OK | StatusCode::PARTIAL_CONTENT => {}
        StatusCode::RANGE_NOT_SATISFIABLE => {
            return Err(ApiError::RangeNotSatisfiable {
                image: ctx.image.clone(),
                digest,
                content_range: resp.headers().get(CONTENT_RANGE).cloned(),
            })
        }
        _ => {
            return Err(upstream_failure(ctx, resp, || ApiError::BlobUnknown {
                image: ctx.image.clone(),
                digest: digest.clone(),
            })
            .await)
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
            upstream.record_blob_bytes(),
        )
        .await
        .map_err(|e| upstream.body_error(e))?;
        match peeked {
            body::Peeked::Json(bytes) => {
                if is_manifest(&bytes) {
                    if !digest.matches(&bytes) {
                        return Err(ApiError::DigestMismatch(Box::new(DigestMismatch {
                            upstream: upstream.key.clone(),
                            image: ctx.image.clone(),
                            expected: digest.clone(),
                            expected_from: "requested digest",
                            actual: digest.algorithm().digest(&bytes),
                        })));
                    }
                    // No media type: a blob-route manifest is checked, never used to cover
                    // children.
                    ctx.gate
                        .check(&ctx.image, &digest, Some(("", &bytes)))
                        .await?;
                }
                body::full(bytes)
            }
            body::Peeked::Stream(b) => b,
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

async fn fetch(
    ctx: &RequestCtx,
    digest: &Digest,
    headers: &HeaderMap,
) -> Result<http::Response<hyper::body::Incoming>, ApiError> {
    let upstream = &ctx.upstream;
    let resp = upstream
        .send(UpstreamRequest {
            kind: Kind::Blob,
            method: ctx.method.clone(),
            repo: Some(&ctx.image.repo),
            path_and_query: format!("/v2/{}/blobs/{}", ctx.image.repo, digest),
            headers: headers.clone(),
        })
        .await?;
    Ok(upstream.follow_redirects(resp, headers).await?)
}

/// The complete length from `Content-Range: bytes a-b/total`.
fn range_total(headers: &HeaderMap) -> Option<u64> {
    let v = headers.get(CONTENT_RANGE)?.to_str().ok()?;
    v.rsplit_once('/')?.1.trim().parse().ok()
}

/// A JSON document with a `schemaVersion` is a manifest (image, index, or Docker schema 1/2),
/// whatever the route it is asked on.
fn is_manifest(bytes: &[u8]) -> bool {
    #[derive(serde::Deserialize)]
    struct Probe {
        #[serde(rename = "schemaVersion")]
        schema_version: Option<serde_json::Value>,
    }
    serde_json::from_slice::<Probe>(bytes).is_ok_and(|p| p.schema_version.is_some())
}
