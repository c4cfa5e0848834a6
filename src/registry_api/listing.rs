//! Listings: `tags/list` (paginated with `n` / `last`) and `referrers/<digest>` (filtered by
//! `artifactType`). Upstream `Link` headers are rewritten to the client's own path so pagination
//! works in every addressing form.
//!
//! Where an upstream lacks the referrers API (it answers 404), the answer is built from the
//! referrers tag schema: the index tagged `<alg>-<hex>`, or an empty index when there is none.

use bytes::Bytes;
use http::header::{CONTENT_LENGTH, CONTENT_TYPE, LINK};
use http::{HeaderMap, HeaderValue, Method, Response, StatusCode};
use oci_spec::image::ImageIndex;

use super::error::ApiError;
use super::manifest::fetch::{self, Origin};
use super::RequestCtx;
use crate::oci::media::OCI_INDEX;
use crate::oci::{Digest, Document, Reading, Reference};
use crate::upstream::body::{self, ResponseBody};
use crate::upstream::{Kind, UpstreamRequest};

const FILTERS_APPLIED: &str = "oci-filters-applied";

pub async fn tags(ctx: &RequestCtx) -> Result<Response<ResponseBody>, ApiError> {
    let upstream = &ctx.upstream;
    let query = pass_query(ctx, &["n", "last"]);
    let resp = upstream
        .send(UpstreamRequest {
            kind: Kind::Tags,
            method: Method::GET,
            repo: Some(&ctx.image.repo),
            path_and_query: format!("/v2/{}/tags/list{query}", ctx.image.repo),
            headers: HeaderMap::new(),
        })
        .await?;
    if resp.status() != StatusCode::OK {
        return Err(not_found_as_name_unknown(ctx, resp).await);
    }
    let (parts, incoming) = resp.into_parts();
    let body = if ctx.method == Method::HEAD {
        body::empty()
    } else {
        body::stream_until(
            incoming,
            upstream.timeouts.read_idle,
            upstream.deadline_of(&parts),
        )
    };
    let mut out = Response::new(body);
    copy_header(&parts.headers, out.headers_mut(), CONTENT_TYPE);
    copy_header(&parts.headers, out.headers_mut(), CONTENT_LENGTH);
    if let Some(link) = parts.headers.get(LINK).and_then(|l| rewrite_link(ctx, l)) {
        out.headers_mut().insert(LINK, link);
    }
    Ok(out)
}

pub async fn referrers(
    ctx: &RequestCtx,
    digest: Digest,
) -> Result<Response<ResponseBody>, ApiError> {
    let upstream = &ctx.upstream;
    let artifact_type = ctx.query("artifactType").map(str::to_owned);
    let query = pass_query(ctx, &["artifactType"]);
    let resp = upstream
        .send(UpstreamRequest {
            kind: Kind::Referrers,
            method: Method::GET,
            repo: Some(&ctx.image.repo),
            path_and_query: format!("/v2/{}/referrers/{digest}{query}", ctx.image.repo),
            headers: HeaderMap::new(),
        })
        .await?;
    match resp.status() {
        StatusCode::OK => {}
        StatusCode::NOT_FOUND => return fallback(ctx, &digest, artifact_type.as_deref()).await,
        _ => return Err(not_found_as_name_unknown(ctx, resp).await),
    }
    let (parts, bytes) = upstream
        .read_body(resp, upstream.limits.max_referrers_bytes)
        .await?;
    if Document::parse(&bytes, Reading::Index).is_err() {
        return Err(ApiError::UpstreamInvalid {
            upstream: upstream.key.clone(),
            image: ctx.image.clone(),
            reason: "referrers response is not an OCI image index".to_owned(),
        });
    }
    let mut out = index_response(ctx, bytes);
    copy_header(
        &parts.headers,
        out.headers_mut(),
        http::HeaderName::from_static(FILTERS_APPLIED),
    );
    if let Some(link) = parts.headers.get(LINK).and_then(|l| rewrite_link(ctx, l)) {
        out.headers_mut().insert(LINK, link);
    }
    Ok(out)
}

/// The referrers tag schema: the index tagged `<alg>-<hex>` lists the referrers; filtering by
/// `artifactType` is done here.
async fn fallback(
    ctx: &RequestCtx,
    digest: &Digest,
    artifact_type: Option<&str>,
) -> Result<Response<ResponseBody>, ApiError> {
    let tag = Reference::Tag(digest.fallback_tag());
    // Asked as an OCI index whatever the client accepts: distribution answers 404 to a request
    // for an index whose Accept does not name it, which would hide every referrer.
    let origin = Origin {
        upstream: &ctx.upstream,
        image: &ctx.image,
    };
    let index = match fetch::get(origin, &tag, fetch::accept_only(OCI_INDEX)).await {
        Ok(m) => Some(m),
        Err(ApiError::ManifestUnknown { .. }) => None,
        Err(e) => return Err(e),
    };
    let Some(index) = index else {
        let mut out = index_response(ctx, empty_index());
        if artifact_type.is_some() {
            out.headers_mut()
                .insert(FILTERS_APPLIED, HeaderValue::from_static("artifactType"));
        }
        return Ok(out);
    };
    let mut parsed: ImageIndex =
        serde_json::from_slice(&index.bytes).map_err(|e| ApiError::UpstreamInvalid {
            upstream: ctx.upstream.key.clone(),
            image: ctx.image.clone(),
            reason: format!("referrers fallback tag {} is not an image index: {e}", tag),
        })?;
    let Some(wanted) = artifact_type else {
        return Ok(index_response(ctx, index.bytes));
    };
    let kept: Vec<_> = parsed
        .manifests()
        .iter()
        .filter(|d| d.artifact_type().as_ref().map(|t| t.to_string()).as_deref() == Some(wanted))
        .cloned()
        .collect();
    parsed.set_manifests(kept);
    let bytes = serde_json::to_vec(&parsed).map_err(|e| ApiError::UpstreamInvalid {
        upstream: ctx.upstream.key.clone(),
        image: ctx.image.clone(),
        reason: format!("re-encoding filtered referrers: {e}"),
    })?;
    let mut out = index_response(ctx, Bytes::from(bytes));
    out.headers_mut()
        .insert(FILTERS_APPLIED, HeaderValue::from_static("artifactType"));
    Ok(out)
}

/// An upstream failure of a listing; a 404 means the repository is not known.
async fn not_found_as_name_unknown(
    ctx: &RequestCtx,
    resp: http::Response<hyper::body::Incoming>,
) -> ApiError {
    ApiError::from_upstream_answer(&ctx.upstream, &ctx.image, resp, || ApiError::NameUnknown {
        image: ctx.image.clone(),
    })
    .await
}

fn empty_index() -> Bytes {
    Bytes::from_static(
        br#"{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","manifests":[]}"#,
    )
}

fn index_response(ctx: &RequestCtx, bytes: Bytes) -> Response<ResponseBody> {
    let len = bytes.len();
    let body = if ctx.method == Method::HEAD {
        body::empty()
    } else {
        body::full(bytes)
    };
    let mut out = Response::new(body);
    out.headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static(OCI_INDEX));
    out.headers_mut()
        .insert(CONTENT_LENGTH, HeaderValue::from(len));
    out
}

fn copy_header(from: &HeaderMap, to: &mut HeaderMap, name: http::HeaderName) {
    if let Some(v) = from.get(&name) {
        to.insert(name, v.clone());
    }
}

/// `?k=v&...` with the client's values for `keys` (re-encoded), or "".
fn pass_query(ctx: &RequestCtx, keys: &[&str]) -> String {
    let mut ser = url::form_urlencoded::Serializer::new(String::new());
    let mut any = false;
    for (k, v) in &ctx.query {
        if keys.contains(&k.as_str()) {
            ser.append_pair(k, v);
            any = true;
        }
    }
    if any {
        format!("?{}", ser.finish())
    } else {
        String::new()
    }
}

/// Rewrites an upstream `Link: <url?query>; rel="next"` to the client's path with the same query
/// (plus the client's `ns`), so the next page comes through the proxy too.
fn rewrite_link(ctx: &RequestCtx, link: &HeaderValue) -> Option<HeaderValue> {
    let text = link.to_str().ok()?;
    let start = text.find('<')?;
    let end = text[start..].find('>')? + start;
    let target = &text[start + 1..end];
    let rest = &text[end + 1..];
    let base = url::Url::parse("http://upstream.invalid/").ok()?;
    let url = base.join(target).ok()?;
    let mut ser = url::form_urlencoded::Serializer::new(String::new());
    for (k, v) in url.query_pairs() {
        if k != "ns" {
            ser.append_pair(&k, &v);
        }
    }
    if let Some(ns) = &ctx.ns {
        ser.append_pair("ns", ns);
    }
    let query = ser.finish();
    HeaderValue::from_str(&format!("<{}?{}>{}", ctx.path, query, rest)).ok()
}
