//! Blobs: streamed from the upstream (or the storage host it redirects to) to the client without
//! buffering, `Range` passed through. Memory stays flat whatever the blob size; a client that goes
//! away drops the upstream transfer with it.
//!
//! Blob bytes are not hashed here: blobs are content-addressed and every client verifies the
//! digest of what it pulls. What portcullis guarantees is the manifest that names them.

use http::header::{
    ACCEPT_RANGES, CONTENT_LENGTH, CONTENT_RANGE, CONTENT_TYPE, ETAG, IF_RANGE, LAST_MODIFIED,
    RANGE,
};
use http::{HeaderMap, HeaderValue, Method, Response, StatusCode};

use super::error::ApiError;
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
    let mut headers = HeaderMap::new();
    for name in [RANGE, IF_RANGE] {
        if let Some(v) = ctx.headers.get(&name) {
            headers.insert(name, v.clone());
        }
    }
    let resp = upstream
        .send(UpstreamRequest {
            kind: Kind::Blob,
            method: ctx.method.clone(),
            repo: Some(&ctx.image.repo),
            path_and_query: format!("/v2/{}/blobs/{}", ctx.image.repo, digest),
            headers: headers.clone(),
        })
        .await?;
    let resp = upstream.follow_redirects(resp, &headers).await?;

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
