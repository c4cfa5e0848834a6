//! [`ApiError`]: everything that can go wrong while answering a registry request, and the one
//! place where an error becomes an HTTP response — an OCI error body
//! `{"errors":[{"code","message","detail"}]}` with the right status.
//!
//! Messages are prose for humans; they name the image, the upstream and the limit involved, and
//! never a credential.

use http::header::{CONTENT_LENGTH, CONTENT_TYPE, RETRY_AFTER};
use http::{HeaderValue, Response, StatusCode};
use serde_json::json;

use crate::auth::AuthError;
use crate::oci::{Digest, ImageName, ParseError, Reference};
use crate::signature::LookupError;
use crate::upstream::body::{self, BodyError, ResponseBody};
use crate::upstream::mapping::MappingError;
use crate::upstream::{Upstream, UpstreamError};

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error(transparent)]
    Auth(AuthError),
    #[error("{0}")]
    NameInvalid(ParseError),
    #[error("{0}")]
    TagInvalid(ParseError),
    #[error("{0}")]
    DigestInvalid(ParseError),
    #[error("registry {0:?} is not configured on this proxy")]
    UnknownRegistry(String),
    #[error("{method} on {route} is not supported: portcullis is a read-only pull-through proxy")]
    Unsupported { method: String, route: &'static str },
    #[error("no such endpoint: {0}")]
    NoRoute(String),
    #[error("manifest {reference} is not known in {image}")]
    ManifestUnknown {
        image: ImageName,
        reference: Reference,
    },
    #[error("blob {digest} is not known in {image}")]
    BlobUnknown { image: ImageName, digest: Digest },
    #[error("repository {image} is not known upstream")]
    NameUnknown { image: ImageName },
    #[error(
        "upstream {upstream} refused access to {image} ({status}); check the upstream credentials"
    )]
    UpstreamDenied {
        upstream: String,
        image: ImageName,
        status: StatusCode,
    },
    #[error("upstream {upstream} is rate limiting requests for {image}")]
    UpstreamThrottled {
        upstream: String,
        image: ImageName,
        retry_after: Option<HeaderValue>,
    },
    #[error("{0}")]
    DigestMismatch(Box<DigestMismatch>),
    #[error("manifest of {image} from upstream {upstream} exceeds the {limit}-byte limit")]
    ManifestTooLarge {
        upstream: String,
        image: ImageName,
        limit: usize,
    },
    #[error("upstream {upstream} sent an invalid answer for {image}: {reason}")]
    UpstreamInvalid {
        upstream: String,
        image: ImageName,
        reason: String,
    },
    #[error("requested range of blob {digest} in {image} is not satisfiable")]
    RangeNotSatisfiable {
        image: ImageName,
        digest: Digest,
        content_range: Option<HeaderValue>,
    },
    #[error(transparent)]
    Upstream(#[from] UpstreamError),
    #[error("{0}")]
    PolicyDenied(Box<PolicyDenied>),
    /// One error handed to every request that waited on the same upstream fetch.
    #[error("{0}")]
    Shared(std::sync::Arc<ApiError>),
    #[error("content store fault while serving a blob of {image}: {reason} (retry later)")]
    Store { image: ImageName, reason: String },
    #[error("cannot verify {image}@{digest} under policy {rule:?}: signature lookup failed: {error}; refusing until it can be verified (retry later)")]
    SignatureLookup {
        image: ImageName,
        digest: Digest,
        rule: String,
        error: std::sync::Arc<LookupError>,
    },
}

/// A manifest refused by policy: which image, which rule, why.
#[derive(Debug, thiserror::Error)]
#[error("{image}@{digest} refused by {}: {reason}", match rule { Some(r) => format!("policy {r:?} (enforce)"), None => "unmatched: deny (no policy rule matches this repository)".to_owned() })]
pub struct PolicyDenied {
    pub image: ImageName,
    pub digest: Digest,
    /// `None` for a repository no rule matches under `unmatched: deny`.
    pub rule: Option<String>,
    pub reason: String,
}

/// Upstream bytes that do not hash to the digest they were asked or announced for.
#[derive(Debug, thiserror::Error)]
#[error("upstream {upstream} sent a manifest for {image} whose digest is {actual}, not the {expected_from} {expected}")]
pub struct DigestMismatch {
    pub upstream: String,
    pub image: ImageName,
    pub expected: Digest,
    pub expected_from: &'static str,
    pub actual: Digest,
}

impl From<MappingError> for ApiError {
    fn from(e: MappingError) -> ApiError {
        match e {
            MappingError::UnknownRegistry(r) => ApiError::UnknownRegistry(r),
            MappingError::Name(p) => ApiError::NameInvalid(p),
        }
    }
}

impl ApiError {
    /// A parse error of a reference: a tag or a digest error.
    pub fn from_reference(e: ParseError) -> ApiError {
        match e {
            ParseError::Tag(_) => ApiError::TagInvalid(e),
            ParseError::Name(_) | ParseError::NameTooLong => ApiError::NameInvalid(e),
            ParseError::Digest(_) | ParseError::Algorithm(_) => ApiError::DigestInvalid(e),
        }
    }

    /// An error shared by the callers of one single-flight fetch, unwrapped when it is the
    /// only holder.
    pub fn shared(e: std::sync::Arc<ApiError>) -> ApiError {
        std::sync::Arc::try_unwrap(e).unwrap_or_else(ApiError::Shared)
    }

    /// The mapping of an upstream answer that is not a success, given what a 404 means for the
    /// route that asked.
    pub async fn from_upstream_answer(
        upstream: &Upstream,
        image: &ImageName,
        resp: http::Response<hyper::body::Incoming>,
        not_found: impl FnOnce() -> ApiError,
    ) -> ApiError {
        match resp.status() {
            status @ (StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN) => {
                ApiError::UpstreamDenied {
                    upstream: upstream.key.clone(),
                    image: image.clone(),
                    status,
                }
            }
            StatusCode::TOO_MANY_REQUESTS => ApiError::UpstreamThrottled {
                upstream: upstream.key.clone(),
                image: image.clone(),
                retry_after: resp.headers().get(RETRY_AFTER).cloned(),
            },
            StatusCode::NOT_FOUND => match upstream.status_error(resp).await {
                UpstreamError::Status { code: Some(c), .. } if c == "NAME_UNKNOWN" => {
                    ApiError::NameUnknown {
                        image: image.clone(),
                    }
                }
                _ => not_found(),
            },
            _ => ApiError::Upstream(upstream.status_error(resp).await),
        }
    }

    /// The upstream could not be asked, or did not answer usefully (unreachable, timing out,
    /// failing, sending what does not check out): not an answer about what was asked.
    pub fn is_upstream_unavailable(&self) -> bool {
        match self {
            ApiError::Shared(inner) => inner.is_upstream_unavailable(),
            ApiError::Upstream(e) => e.is_unavailable(),
            ApiError::DigestMismatch(_)
            | ApiError::ManifestTooLarge { .. }
            | ApiError::UpstreamInvalid { .. }
            | ApiError::SignatureLookup { .. } => true,
            _ => false,
        }
    }

    /// The HTTP status and OCI error code.
    pub fn status_and_code(&self) -> (StatusCode, &'static str) {
        use ApiError::*;
        match self {
            Shared(inner) => inner.status_and_code(),
            Auth(AuthError::Missing { .. } | AuthError::Rejected { .. }) => {
                (StatusCode::UNAUTHORIZED, "UNAUTHORIZED")
            }
            Auth(AuthError::Forbidden) => (StatusCode::FORBIDDEN, "DENIED"),
            NameInvalid(_) => (StatusCode::BAD_REQUEST, "NAME_INVALID"),
            TagInvalid(_) => (StatusCode::BAD_REQUEST, "TAG_INVALID"),
            DigestInvalid(_) => (StatusCode::BAD_REQUEST, "DIGEST_INVALID"),
            UnknownRegistry(_) | NameUnknown { .. } => (StatusCode::NOT_FOUND, "NAME_UNKNOWN"),
            Unsupported { .. } => (StatusCode::METHOD_NOT_ALLOWED, "UNSUPPORTED"),
            NoRoute(_) => (StatusCode::NOT_FOUND, "UNSUPPORTED"),
            ManifestUnknown { .. } => (StatusCode::NOT_FOUND, "MANIFEST_UNKNOWN"),
            BlobUnknown { .. } => (StatusCode::NOT_FOUND, "BLOB_UNKNOWN"),
            UpstreamDenied { .. } => (StatusCode::FORBIDDEN, "DENIED"),
            UpstreamThrottled { .. } => (StatusCode::TOO_MANY_REQUESTS, "TOOMANYREQUESTS"),
            DigestMismatch(_) | ManifestTooLarge { .. } => {
                (StatusCode::BAD_GATEWAY, "MANIFEST_INVALID")
            }
            UpstreamInvalid { .. } => (StatusCode::BAD_GATEWAY, "UNAVAILABLE"),
            RangeNotSatisfiable { .. } => (StatusCode::RANGE_NOT_SATISFIABLE, "BLOB_UNKNOWN"),
            Upstream(UpstreamError::TokenDenied { .. }) => (StatusCode::FORBIDDEN, "DENIED"),
            Upstream(e) if e.is_timeout() => (StatusCode::GATEWAY_TIMEOUT, "UNAVAILABLE"),
            Upstream(UpstreamError::Body {
                error: BodyError::TooLarge { .. },
                ..
            }) => (StatusCode::BAD_GATEWAY, "SIZE_INVALID"),
            Upstream(_) => (StatusCode::BAD_GATEWAY, "UNAVAILABLE"),
            PolicyDenied(_) => (StatusCode::FORBIDDEN, "DENIED"),
            SignatureLookup { .. } | Store { .. } => {
                (StatusCode::SERVICE_UNAVAILABLE, "UNAVAILABLE")
            }
        }
    }

    /// Extra structured context for the error body's `detail`.
    fn detail(&self) -> serde_json::Value {
        use ApiError::*;
        match self {
            Shared(inner) => inner.detail(),
            ManifestUnknown { image, reference } => {
                json!({ "image": image.to_string(), "reference": reference.to_string() })
            }
            BlobUnknown { image, digest } => {
                json!({ "image": image.to_string(), "digest": digest.to_string() })
            }
            NameUnknown { image } => json!({ "image": image.to_string() }),
            UpstreamDenied {
                upstream, status, ..
            } => {
                json!({ "upstream": upstream, "upstream_status": status.as_u16() })
            }
            UpstreamThrottled { upstream, .. } => json!({ "upstream": upstream }),
            DigestMismatch(m) => {
                json!({ "expected": m.expected.to_string(), "actual": m.actual.to_string() })
            }
            Upstream(UpstreamError::Status { status, code, .. }) => {
                json!({ "upstream_status": status.as_u16(), "upstream_code": code })
            }
            PolicyDenied(d) => json!({
                "image": d.image.to_string(),
                "digest": d.digest.to_string(),
                "rule": d.rule,
                "reason": d.reason,
            }),
            SignatureLookup {
                image,
                digest,
                rule,
                ..
            } => json!({ "image": image.to_string(), "digest": digest.to_string(), "rule": rule }),
            _ => serde_json::Value::Null,
        }
    }

    /// The response the client gets. This is the only place an error becomes a response.
    pub fn into_response(self) -> Response<ResponseBody> {
        let (status, code) = self.status_and_code();
        let body = json!({
            "errors": [{ "code": code, "message": self.to_string(), "detail": self.detail() }]
        });
        let bytes = serde_json::to_vec(&body).unwrap_or_default();
        let mut resp = Response::new(body::full(bytes.clone()));
        *resp.status_mut() = status;
        let headers = resp.headers_mut();
        headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
        headers.insert(CONTENT_LENGTH, HeaderValue::from(bytes.len()));
        let original = match &self {
            ApiError::Shared(inner) => inner.as_ref(),
            other => other,
        };
        match original {
            ApiError::UpstreamThrottled {
                retry_after: Some(v),
                ..
            } => {
                headers.insert(RETRY_AFTER, v.clone());
            }
            ApiError::RangeNotSatisfiable {
                content_range: Some(v),
                ..
            } => {
                headers.insert(http::header::CONTENT_RANGE, v.clone());
            }
            ApiError::SignatureLookup { .. } => {
                headers.insert(RETRY_AFTER, HeaderValue::from_static("5"));
            }
            ApiError::Auth(AuthError::Missing { realm } | AuthError::Rejected { realm }) => {
                let challenge = format!("Basic realm=\"{}\"", realm.replace(['"', '\\'], ""));
                if let Ok(v) = HeaderValue::from_str(&challenge) {
                    headers.insert(http::header::WWW_AUTHENTICATE, v);
                }
            }
            _ => {}
        }
        resp
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::BodyExt;

    #[tokio::test]
    async fn error_body_is_oci_shaped() {
        let e = ApiError::Unsupported {
            method: "PUT".into(),
            route: "manifest",
        };
        let resp = e.into_response();
        assert_eq!(resp.status(), StatusCode::METHOD_NOT_ALLOWED);
        let bytes = resp.into_body().collect().await.unwrap().to_bytes();
        let v: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
        assert_eq!(v["errors"][0]["code"], "UNSUPPORTED");
        assert!(v["errors"][0]["message"]
            .as_str()
            .unwrap()
            .contains("read-only"));
    }

    #[test]
    fn reference_errors_map_to_their_codes() {
        let tag = "-x".parse::<Reference>().unwrap_err();
        assert_eq!(
            ApiError::from_reference(tag).status_and_code().1,
            "TAG_INVALID"
        );
        let dig = "sha256:xyz".parse::<Reference>().unwrap_err();
        assert_eq!(
            ApiError::from_reference(dig).status_and_code().1,
            "DIGEST_INVALID"
        );
    }
}
