//! Manifests: fetched whole into memory (bounded), their digest computed over the raw bytes and
//! checked against the requested digest and the upstream's `Docker-Content-Digest`, then served
//! byte for byte. A manifest is never re-serialised.
//!
//! `HEAD` asks the upstream with `HEAD` too (registries such as Docker Hub do not count it as a
//! pull) and answers the same headers without a body.
//!
//! Manifests are content-addressed, so bytes once proven are kept ([`cache::ManifestCache`]) and a
//! request by digest is answered from memory, upstream reachable or not. A tag is revalidated
//! with an upstream `HEAD`; when the digest it names is cached, no `GET` is sent. With the
//! upstream's `tag_ttl`, a recent resolution is trusted without even the `HEAD`; with
//! `serve_stale_tags`, the last resolution is served while the upstream is unreachable. Every
//! answer, cached or not, passes the policy gate first.

pub mod cache;

use bytes::Bytes;
use http::header::{ACCEPT, CONTENT_LENGTH, CONTENT_TYPE};
use http::{HeaderMap, HeaderValue, Method, Response, StatusCode};

use super::error::{ApiError, DigestMismatch};
use super::{upstream_failure, RequestCtx};
use crate::oci::media::ACCEPT_ANY_MANIFEST;
use crate::oci::{Digest, Document, Reading, Reference, Tag};
use crate::upstream::body::{self, BodyError, ResponseBody};
use crate::upstream::{Kind, UpstreamError, UpstreamRequest};

const DOCKER_CONTENT_DIGEST: &str = "docker-content-digest";

/// A manifest as fetched: its raw bytes and the digest of exactly those bytes.
#[derive(Debug, Clone)]
pub struct FetchedManifest {
    pub digest: Digest,
    pub media_type: HeaderValue,
    pub bytes: Bytes,
}

pub async fn handle(
    ctx: &RequestCtx,
    reference: Reference,
) -> Result<Response<ResponseBody>, ApiError> {
    let with_body = ctx.method != Method::HEAD;
    let accept = accept_key(&ctx.headers);
    // Whether a tag was (re)resolved by the upstream in this request: then its entry is renewed.
    let mut resolved_now = true;
    // Whether the bytes came from the upstream in this request (else they are cached already).
    let mut fetched = true;
    let m = match &reference {
        // Cached or fetched once for all concurrent callers; `get_or_fetch` inserts it.
        Reference::Digest(d) if with_body => {
            fetched = false;
            ctx.manifests
                .get_or_fetch(&ctx.image, d, fetch(ctx, &reference))
                .await
                .map_err(ApiError::shared)?
        }
        Reference::Digest(d) => match ctx.manifests.get(&ctx.image, d).await {
            Some(m) => m,
            None => return head_through(ctx, &reference).await,
        },
        Reference::Tag(tag) => match resolve_tag(ctx, tag, &accept).await? {
            Resolution::Cached {
                manifest,
                revalidated,
            } => {
                resolved_now = revalidated;
                fetched = false;
                manifest
            }
            Resolution::Headers(resp, digest) => {
                let media_type = resp
                    .headers()
                    .get(CONTENT_TYPE)
                    .and_then(|v| v.to_str().ok());
                ctx.gate.check_head(&ctx.image, &digest, media_type).await?;
                return Ok(resp);
            }
            Resolution::Digest(d) => fetch(ctx, &Reference::Digest(d)).await?,
            Resolution::Unknown => fetch(ctx, &reference).await?,
        },
    };
    // The gate runs after the digest is proven and before any byte (or header) is served.
    let media_type = m.media_type.to_str().unwrap_or("");
    ctx.gate
        .check(&ctx.image, &m.digest, Some((media_type, &m.bytes)))
        .await?;
    if fetched {
        ctx.manifests.insert(&ctx.image, &m).await;
    }
    if let (Reference::Tag(tag), true) = (&reference, resolved_now) {
        ctx.manifests
            .set_tag(&ctx.image, tag, &accept, &m.digest)
            .await;
    }
    Ok(respond(&m, with_body))
}

/// How a tag request is answered.
enum Resolution {
    /// From the manifest cache: `revalidated` when the upstream confirmed the digest just now.
    Cached {
        manifest: FetchedManifest,
        revalidated: bool,
    },
    /// A `HEAD` answered with the upstream's headers (content not cached).
    Headers(Response<ResponseBody>, Digest),
    /// The upstream names this digest, not cached: fetch it by digest.
    Digest(Digest),
    /// Not resolved: fetch by tag.
    Unknown,
}

async fn resolve_tag(ctx: &RequestCtx, tag: &Tag, accept: &str) -> Result<Resolution, ApiError> {
    let known = ctx.manifests.tag(&ctx.image, tag, accept).await;
    if let (Some(ttl), Some(k)) = (ctx.upstream.tag_ttl, &known) {
        if k.resolved.elapsed() < ttl {
            if let Some(manifest) = ctx.manifests.get(&ctx.image, &k.digest).await {
                return Ok(Resolution::Cached {
                    manifest,
                    revalidated: false,
                });
            }
        }
    }
    let is_head = ctx.method == Method::HEAD;
    if known.is_none() && !is_head {
        // Never resolved here, so its content is most likely not cached: one GET, not two.
        return Ok(Resolution::Unknown);
    }
    match head_upstream(ctx, &Reference::Tag(tag.clone())).await {
        Ok(Some((resp, digest))) => match ctx.manifests.get(&ctx.image, &digest).await {
            Some(manifest) => Ok(Resolution::Cached {
                manifest,
                revalidated: true,
            }),
            None if is_head => Ok(Resolution::Headers(resp, digest)),
            None => Ok(Resolution::Digest(digest)),
        },
        Ok(None) if is_head => {
            // An incomplete HEAD: the GET standing in for it fills the cache (every answer from
            // the cache passes the gate, so inserting before the gate is safe).
            let m = fetch(ctx, &Reference::Tag(tag.clone())).await?;
            ctx.manifests.insert(&ctx.image, &m).await;
            Ok(Resolution::Cached {
                manifest: m,
                revalidated: true,
            })
        }
        Ok(None) => Ok(Resolution::Unknown),
        Err(e) if ctx.upstream.serve_stale_tags && is_outage(&e) => {
            let stale = match &known {
                Some(k) => ctx.manifests.get(&ctx.image, &k.digest).await,
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
                    Ok(Resolution::Cached {
                        manifest,
                        revalidated: false,
                    })
                }
                None => Err(e),
            }
        }
        Err(e) => Err(e),
    }
}

/// The upstream could not be asked (unreachable, timing out, failing): not an answer about the
/// tag.
fn is_outage(e: &ApiError) -> bool {
    matches!(
        e.status_and_code().0,
        StatusCode::BAD_GATEWAY | StatusCode::SERVICE_UNAVAILABLE | StatusCode::GATEWAY_TIMEOUT
    )
}

/// A `HEAD` answered through the upstream (or a `GET` when its `HEAD` is incomplete), gated.
async fn head_through(
    ctx: &RequestCtx,
    reference: &Reference,
) -> Result<Response<ResponseBody>, ApiError> {
    let (resp, digest) = match head_upstream(ctx, reference).await? {
        Some(r) => r,
        None => {
            let m = fetch(ctx, reference).await?;
            (respond(&m, false), m.digest)
        }
    };
    let media_type = resp
        .headers()
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok());
    ctx.gate.check_head(&ctx.image, &digest, media_type).await?;
    Ok(resp)
}

/// The client's `Accept`, as part of a tag's cache key.
fn accept_key(headers: &HeaderMap) -> String {
    let values: Vec<&str> = headers
        .get_all(ACCEPT)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .collect();
    values.join(",")
}

/// The answer for a fetched manifest, with or without its body.
pub fn respond(m: &FetchedManifest, with_body: bool) -> Response<ResponseBody> {
    let body = if with_body {
        body::full(m.bytes.clone())
    } else {
        body::empty()
    };
    let mut resp = Response::new(body);
    let h = resp.headers_mut();
    h.insert(CONTENT_TYPE, m.media_type.clone());
    h.insert(CONTENT_LENGTH, HeaderValue::from(m.bytes.len()));
    h.insert(DOCKER_CONTENT_DIGEST, digest_header(&m.digest));
    resp
}

fn digest_header(d: &Digest) -> HeaderValue {
    // Invariant: a Digest renders as `<alg>:<hex>`, always a valid header value.
    HeaderValue::from_str(&d.to_string()).expect("digest is a valid header value")
}

/// The `Accept` headers to send upstream: the client's, so the upstream picks the manifest it
/// would pick for the client, or every manifest type when the client named none.
fn accept_headers(client: &HeaderMap) -> HeaderMap {
    let mut out = HeaderMap::new();
    for v in client.get_all(ACCEPT) {
        out.append(ACCEPT, v.clone());
    }
    if out.is_empty() {
        out.insert(ACCEPT, HeaderValue::from_static(ACCEPT_ANY_MANIFEST));
    }
    out
}

fn request<'a>(
    ctx: &'a RequestCtx,
    method: Method,
    reference: &Reference,
    accept: HeaderMap,
) -> UpstreamRequest<'a> {
    UpstreamRequest {
        kind: Kind::Manifest,
        method,
        repo: Some(&ctx.image.repo),
        path_and_query: format!("/v2/{}/manifests/{}", ctx.image.repo, reference),
        headers: accept,
    }
}

/// Fetches a manifest as the client asked for it (its `Accept` headers) and proves its digest.
pub async fn fetch(ctx: &RequestCtx, reference: &Reference) -> Result<FetchedManifest, ApiError> {
    fetch_accepting(ctx, reference, accept_headers(&ctx.headers)).await
}

/// Fetches a manifest of one media type, whatever the client accepts: for documents the proxy
/// itself reads, such as the referrers fallback index.
pub async fn fetch_as(
    ctx: &RequestCtx,
    reference: &Reference,
    media_type: &'static str,
) -> Result<FetchedManifest, ApiError> {
    let mut accept = HeaderMap::new();
    accept.insert(ACCEPT, HeaderValue::from_static(media_type));
    fetch_accepting(ctx, reference, accept).await
}

/// Fetches a manifest and proves its digest: the bytes must hash to the requested digest (when
/// one was requested) and to the upstream's `Docker-Content-Digest` (when it sent one).
async fn fetch_accepting(
    ctx: &RequestCtx,
    reference: &Reference,
    accept: HeaderMap,
) -> Result<FetchedManifest, ApiError> {
    let upstream = &ctx.upstream;
    let resp = upstream
        .send(request(ctx, Method::GET, reference, accept))
        .await?;
    if resp.status() != StatusCode::OK {
        return Err(upstream_failure(ctx, resp, || manifest_unknown(ctx, reference)).await);
    }
    let limit = upstream.limits.max_manifest_bytes;
    let (parts, bytes) = upstream.read_body(resp, limit).await.map_err(|e| match e {
        UpstreamError::Body {
            error: BodyError::TooLarge { .. },
            upstream,
        } => ApiError::ManifestTooLarge {
            upstream,
            image: ctx.image.clone(),
            limit,
        },
        other => ApiError::Upstream(other),
    })?;

    let claimed = header_digest(ctx, &parts.headers)?;
    let algorithm = reference
        .digest()
        .map(Digest::algorithm)
        .or(claimed.as_ref().map(Digest::algorithm))
        .unwrap_or(crate::oci::Algorithm::Sha256);
    let actual = algorithm.digest(&bytes);
    let mismatch = |expected: &Digest, expected_from| {
        ApiError::DigestMismatch(Box::new(DigestMismatch {
            upstream: upstream.key.clone(),
            image: ctx.image.clone(),
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
            image: ctx.image.clone(),
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
async fn head_upstream(
    ctx: &RequestCtx,
    reference: &Reference,
) -> Result<Option<(Response<ResponseBody>, Digest)>, ApiError> {
    let upstream = &ctx.upstream;
    let resp = upstream
        .send(request(
            ctx,
            Method::HEAD,
            reference,
            accept_headers(&ctx.headers),
        ))
        .await?;
    if resp.status() != StatusCode::OK {
        return Err(upstream_failure(ctx, resp, || manifest_unknown(ctx, reference)).await);
    }
    let headers = resp.headers().clone();
    drop(resp);
    let (Some(claimed), Some(content_type), Some(length)) = (
        header_digest(ctx, &headers)?,
        headers.get(CONTENT_TYPE),
        headers.get(CONTENT_LENGTH),
    ) else {
        return Ok(None);
    };
    if let Some(requested) = reference.digest() {
        if *requested != claimed {
            return Err(ApiError::DigestMismatch(Box::new(DigestMismatch {
                upstream: upstream.key.clone(),
                image: ctx.image.clone(),
                expected: requested.clone(),
                expected_from: "requested digest",
                actual: claimed,
            })));
        }
    }
    let mut out = Response::new(body::empty());
    let h = out.headers_mut();
    h.insert(CONTENT_TYPE, content_type.clone());
    h.insert(CONTENT_LENGTH, length.clone());
    h.insert(DOCKER_CONTENT_DIGEST, digest_header(&claimed));
    Ok(Some((out, claimed)))
}

/// The upstream's `Docker-Content-Digest`, parsed; a malformed one is an invalid answer.
fn header_digest(ctx: &RequestCtx, headers: &HeaderMap) -> Result<Option<Digest>, ApiError> {
    let Some(v) = headers.get(DOCKER_CONTENT_DIGEST) else {
        return Ok(None);
    };
    v.to_str()
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .map(Some)
        .ok_or_else(|| ApiError::UpstreamInvalid {
            upstream: ctx.upstream.key.clone(),
            image: ctx.image.clone(),
            reason: "Docker-Content-Digest header is not a valid digest".to_owned(),
        })
}

fn manifest_unknown(ctx: &RequestCtx, reference: &Reference) -> ApiError {
    ApiError::ManifestUnknown {
        image: ctx.image.clone(),
        reference: reference.clone(),
    }
}

/// The `mediaType` field of a manifest, for upstreams that send no `Content-Type`. Public for the
/// fuzz targets (`fuzz/`).
pub fn media_type_field(bytes: &[u8]) -> Option<HeaderValue> {
    let media_type = Document::parse(bytes, Reading::Lenient).ok()?.media_type?;
    HeaderValue::from_str(&media_type).ok()
}
