//! The manifest request, as explicit stages after route, upstream and rule: resolve
//! ([`resolve`]: cache, revalidated or fetched, digest proven by [`fetch`]) → gate (called once;
//! its outcome recorded in the verdict metric, the request metrics are `Proxy::handle`'s) →
//! keep (the cache, [`cache`]) → respond (the exact bytes); the record stage ([`super::record`]:
//! metric and ledger) runs once the gate has decided, before a refusal returns. Manifests are fetched whole into memory (bounded),
//! their digest computed over the raw bytes, and served byte for byte: a manifest is never
//! re-serialised, and the bytes served are the bytes the gate saw.
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
pub mod fetch;
pub mod resolve;

use bytes::Bytes;
use http::header::{ACCEPT, CONTENT_LENGTH, CONTENT_TYPE};
use http::{HeaderMap, HeaderValue, Method, Response};

use super::error::ApiError;
use super::gate::Subject;
use super::record;
use super::{Proxy, RequestCtx};
use crate::oci::{Digest, Reference};
use crate::upstream::body::{self, ResponseBody};
use fetch::DOCKER_CONTENT_DIGEST;
use resolve::{Answer, Keeping, Resolved, Source};

/// A manifest as fetched: its raw bytes and the digest of exactly those bytes.
#[derive(Debug, Clone)]
pub struct FetchedManifest {
    pub digest: Digest,
    pub media_type: HeaderValue,
    pub bytes: Bytes,
}

pub async fn handle(
    proxy: &Proxy,
    ctx: &RequestCtx,
    reference: Reference,
) -> Result<Response<ResponseBody>, ApiError> {
    let accept = accept_key(&ctx.headers);
    let resolve = Box::pin(resolve::resolve(proxy, ctx, &reference, &accept));
    let (resolved, early) = match &reference {
        // The digest is known before any upstream answer: its signatures are looked up while
        // the manifest is fetched, where the verdict does not need the manifest's bytes.
        Reference::Digest(d) => {
            let early = Box::pin(
                proxy
                    .gate
                    .early_verdict(&ctx.rule, &ctx.image, &ctx.upstream, d),
            );
            let (resolved, early) = tokio::join!(resolve, early);
            (resolved?, early)
        }
        Reference::Tag(_) => (resolve.await?, None),
    };
    // The gate runs after the digest is proven and before any byte (or header) is served.
    let (digest, subject) = subject(ctx, &resolved);
    let outcome = proxy.gate.evaluate_with(&ctx.rule, &subject, early).await;
    let tag = match &reference {
        Reference::Tag(t) => Some(t),
        Reference::Digest(_) => None,
    };
    let media_type = subject.media_type;
    record::record(
        proxy,
        ctx,
        record::Route::Manifest,
        tag,
        (digest, media_type),
        &outcome,
    );
    outcome.admit(&ctx.image, digest)?;
    keep(proxy, ctx, &reference, &accept, &resolved).await;
    Ok(respond(&resolved.answer, ctx.method != Method::HEAD))
}

/// What the gate is asked about a resolved manifest.
fn subject<'a>(ctx: &'a RequestCtx, resolved: &'a Resolved) -> (&'a Digest, Subject<'a>) {
    let (digest, media_type, manifest) = match &resolved.answer {
        Answer::Manifest(m) => (
            &m.digest,
            Some(m.media_type.to_str().unwrap_or("")),
            Some(&m.bytes[..]),
        ),
        Answer::Headers(h) => (&h.digest, h.media_type.to_str().ok(), None),
    };
    let subject = Subject {
        image: &ctx.image,
        image_upstream: &ctx.upstream,
        digest,
        media_type,
        manifest,
    };
    (digest, subject)
}

/// Keeps what passed the gate: fetched bytes not in the cache yet, and a tag's resolution when
/// the upstream resolved it in this request.
async fn keep(
    proxy: &Proxy,
    ctx: &RequestCtx,
    reference: &Reference,
    accept: &str,
    resolved: &Resolved,
) {
    let digest = match &resolved.answer {
        Answer::Manifest(m) => {
            if resolved.source == Source::Fetched(Keeping::AfterGate) {
                proxy.manifests.insert(&ctx.image, m).await;
            }
            &m.digest
        }
        // A `HEAD` (containerd resolves with one) renews the tag too: `serve_stale_tags` can
        // then answer it from the manifest a later GET by digest kept.
        Answer::Headers(h) => &h.digest,
    };
    if let (Reference::Tag(tag), true) = (reference, resolved.source.renews_tag()) {
        proxy
            .manifests
            .set_tag(&ctx.image, tag, accept, digest)
            .await;
    }
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

/// The answer, with or without the manifest's body.
fn respond(answer: &Answer, with_body: bool) -> Response<ResponseBody> {
    let (digest, media_type, length, bytes) = match answer {
        Answer::Manifest(m) => (
            &m.digest,
            &m.media_type,
            HeaderValue::from(m.bytes.len()),
            Some(&m.bytes),
        ),
        Answer::Headers(h) => (&h.digest, &h.media_type, h.length.clone(), None),
    };
    let body = match bytes {
        Some(b) if with_body => body::full(b.clone()),
        _ => body::empty(),
    };
    let mut resp = Response::new(body);
    let h = resp.headers_mut();
    h.insert(CONTENT_TYPE, media_type.clone());
    h.insert(CONTENT_LENGTH, length);
    h.insert(DOCKER_CONTENT_DIGEST, digest_header(digest));
    resp
}

fn digest_header(d: &Digest) -> HeaderValue {
    // Invariant: a Digest renders as `<alg>:<hex>`, always a valid header value.
    HeaderValue::from_str(&d.to_string()).expect("digest is a valid header value")
}
