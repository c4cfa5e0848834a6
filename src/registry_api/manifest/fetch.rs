//! Asking the upstream for a manifest: `GET` whole into memory (bounded by
//! `limits.max_manifest_bytes`), the digest computed over the raw bytes and checked against the
//! requested digest and the upstream's `Docker-Content-Digest`; `HEAD` with its announced digest
//! checked against a requested one. Nothing here caches or gates (the pipeline does), and
//! nothing needs a client request: [`Origin`] is the upstream and the image, so `portcullis
//! verify` fetches with the same code.

use http::header::{ACCEPT, CONTENT_LENGTH, CONTENT_TYPE};
use http::{HeaderMap, HeaderValue, Method, StatusCode};

use super::FetchedManifest;
use crate::oci::media::ACCEPT_ANY_MANIFEST;
use crate::oci::{Algorithm, Digest, Document, ImageName, Reading, Reference};
use crate::registry_api::error::{ApiError, DigestMismatch};
use crate::upstream::body::BodyError;
use crate::upstream::{Kind, Upstream, UpstreamError, UpstreamRequest};

pub const DOCKER_CONTENT_DIGEST: &str = "docker-content-digest";

/// Where a manifest is fetched from: the upstream serving the image, and the image.
#[derive(Clone, Copy)]
pub struct Origin<'a> {
    pub upstream: &'a Upstream,
    pub image: &'a ImageName,
}

/// What an upstream `HEAD` said about a manifest: everything a `HEAD` answer needs.
#[derive(Debug, Clone)]
pub struct Head {
    pub digest: Digest,
    pub media_type: HeaderValue,
    pub length: HeaderValue,
}

/// The `Accept` headers to send upstream: the client's, so the upstream picks the manifest it
/// would pick for the client, or every manifest type when the client named none.
pub fn accept_headers(client: &HeaderMap) -> HeaderMap {
    let mut out = HeaderMap::new();
    for v in client.get_all(ACCEPT) {
        out.append(ACCEPT, v.clone());
    }
    if out.is_empty() {
        out.insert(ACCEPT, HeaderValue::from_static(ACCEPT_ANY_MANIFEST));
    }
    out
}

/// One media type, whatever the client accepts: for documents the proxy itself reads, such as
/// the referrers fallback index.
pub fn accept_only(media_type: &'static str) -> HeaderMap {
    let mut accept = HeaderMap::new();
    accept.insert(ACCEPT, HeaderValue::from_static(media_type));
    accept
}

fn request<'a>(
    origin: Origin<'a>,
    method: Method,
    reference: &Reference,
    accept: HeaderMap,
) -> UpstreamRequest<'a> {
    UpstreamRequest {
        kind: Kind::Manifest,
        method,
        repo: Some(&origin.image.repo),
        path_and_query: format!("/v2/{}/manifests/{}", origin.image.repo, reference),
        headers: accept,
    }
}

/// Fetches a manifest and proves its digest: the bytes must hash to the requested digest (when
/// one was requested) and to the upstream's `Docker-Content-Digest` (when it sent one).
pub async fn get(
    origin: Origin<'_>,
    reference: &Reference,
    accept: HeaderMap,
) -> Result<FetchedManifest, ApiError> {
    let Origin { upstream, image } = origin;
    let resp = upstream
        .send(request(origin, Method::GET, reference, accept))
        .await?;
    if resp.status() != StatusCode::OK {
        return Err(ApiError::from_upstream_answer(upstream, image, resp, || {
            manifest_unknown(image, reference)
        })
        .await);
    }
    let limit = upstream.limits.max_manifest_bytes;
    let (parts, bytes) = upstream.read_body(resp, limit).await.map_err(|e| match e {
        UpstreamError::Body {
            error: BodyError::TooLarge { .. },
            upstream,
        } => ApiError::ManifestTooLarge {
            upstream,
            image: image.clone(),
            limit,
        },
        other => ApiError::Upstream(other),
    })?;

    let claimed = header_digest(origin, &parts.headers)?;
    let algorithm = reference
        .digest()
        .map(Digest::algorithm)
        .or(claimed.as_ref().map(Digest::algorithm))
        .unwrap_or(Algorithm::Sha256);
    let actual = algorithm.digest(&bytes);
    let mismatch = |expected: &Digest, expected_from| {
        ApiError::DigestMismatch(Box::new(DigestMismatch {
            upstream: upstream.key.clone(),
            image: image.clone(),
            expected: expected.clone(),
            expected_from,
            actual: actual.clone(),
        }))
    };
    if let Some(requested) = reference.digest() {
        if *requested != actual {
            return Err(mismatch(requested, "requested digest"));
        }
    }
    if let Some(claimed) = &claimed {
        // Hash a second time only when the upstream announced another algorithm.
        let agrees = if claimed.algorithm() == actual.algorithm() {
            *claimed == actual
        } else {
            claimed.matches(&bytes)
        };
        if !agrees {
            return Err(mismatch(claimed, "Docker-Content-Digest"));
        }
    }

    let media_type = match parts.headers.get(CONTENT_TYPE) {
        Some(ct) => ct.clone(),
        None => media_type_field(&bytes).ok_or_else(|| ApiError::UpstreamInvalid {
            upstream: upstream.key.clone(),
            image: image.clone(),
            reason: "manifest has neither a Content-Type nor a mediaType field".to_owned(),
        })?,
    };
    Ok(FetchedManifest {
        digest: actual,
        media_type,
        bytes,
    })
}

/// `HEAD`: the upstream's headers, with its digest checked against a requested one; `None` when
/// the upstream does not say the digest, type and length (then a `GET` must stand in).
pub async fn head(
    origin: Origin<'_>,
    reference: &Reference,
    accept: HeaderMap,
) -> Result<Option<Head>, ApiError> {
    let Origin { upstream, image } = origin;
    let resp = upstream
        .send(request(origin, Method::HEAD, reference, accept))
        .await?;
    if resp.status() != StatusCode::OK {
        return Err(ApiError::from_upstream_answer(upstream, image, resp, || {
            manifest_unknown(image, reference)
        })
        .await);
    }
    let headers = resp.headers().clone();
    drop(resp);
    let (Some(claimed), Some(media_type), Some(length)) = (
        header_digest(origin, &headers)?,
        headers.get(CONTENT_TYPE),
        headers.get(CONTENT_LENGTH),
    ) else {
        return Ok(None);
    };
    if let Some(requested) = reference.digest() {
        if *requested != claimed {
            return Err(ApiError::DigestMismatch(Box::new(DigestMismatch {
                upstream: upstream.key.clone(),
                image: image.clone(),
                expected: requested.clone(),
                expected_from: "requested digest",
                actual: claimed,
            })));
        }
    }
    Ok(Some(Head {
        digest: claimed,
        media_type: media_type.clone(),
        length: length.clone(),
    }))
}

/// The upstream's `Docker-Content-Digest`, parsed; a malformed one is an invalid answer.
fn header_digest(origin: Origin<'_>, headers: &HeaderMap) -> Result<Option<Digest>, ApiError> {
    let Some(v) = headers.get(DOCKER_CONTENT_DIGEST) else {
        return Ok(None);
    };
    v.to_str()
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .map(Some)
        .ok_or_else(|| ApiError::UpstreamInvalid {
            upstream: origin.upstream.key.clone(),
            image: origin.image.clone(),
            reason: "Docker-Content-Digest header is not a valid digest".to_owned(),
        })
}

fn manifest_unknown(image: &ImageName, reference: &Reference) -> ApiError {
    ApiError::ManifestUnknown {
        image: image.clone(),
        reference: reference.clone(),
    }
}

/// The `mediaType` field of a manifest, for upstreams that send no `Content-Type`. Public for the
/// fuzz targets (`fuzz/`).
pub fn media_type_field(bytes: &[u8]) -> Option<HeaderValue> {
    let media_type = Document::parse(bytes, Reading::Lenient).ok()?.media_type?;
    HeaderValue::from_str(&media_type).ok()
}
