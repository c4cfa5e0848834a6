//! Hermetic integration tests: the proxy in process, in front of a fake upstream on 127.0.0.1:0
//! that counts requests and injects faults.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::fake::{client, error_code, oci_error, respond, FakeUpstream, Proxy};
use bytes::Bytes;
use http::StatusCode;
use portcullis::upstream::body::{self, ResponseBody};

const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";

fn manifest_bytes() -> Bytes {
    Bytes::from_static(br#"{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a","size":2},"layers":[]}  "#)
}

/// A fake registry serving one manifest under tag `v1` and by digest, and `manifests/other`
/// with a digest that lies.
async fn manifest_upstream() -> FakeUpstream {
    FakeUpstream::start(|s| async move {
        let bytes = manifest_bytes();
        let digest = crate::common::sha256(&bytes);
        let path = s.path.as_str();
        if path == "/v2/team/app/manifests/v1" || path == format!("/v2/team/app/manifests/{digest}")
        {
            let len = bytes.len().to_string();
            let headers = [
                ("content-type", OCI_MANIFEST),
                ("docker-content-digest", digest.as_str()),
                ("content-length", len.as_str()),
            ];
            if s.method == http::Method::HEAD {
                let mut r = respond(StatusCode::OK, &headers, Bytes::new());
                r.headers_mut()
                    .insert("content-length", len.parse().unwrap());
                return r;
            }
            return respond(StatusCode::OK, &headers, bytes);
        }
        if path == "/v2/team/app/manifests/lying" {
            let wrong = crate::common::sha256(b"something else");
            return respond(
                StatusCode::OK,
                &[
                    ("content-type", OCI_MANIFEST),
                    ("docker-content-digest", wrong.as_str()),
                ],
                bytes,
            );
        }
        oci_error(StatusCode::NOT_FOUND, "MANIFEST_UNKNOWN")
    })
    .await
}

#[tokio::test]
async fn manifest_bytes_and_headers_pass_through_exactly() {
    let up = manifest_upstream().await;
    let proxy = Proxy::in_front_of(&up, "").await;
    let bytes = manifest_bytes();
    let digest = crate::common::sha256(&bytes);

    for reference in ["v1", digest.as_str()] {
        let resp = client()
            .get(format!("{}/v2/team/app/manifests/{reference}", proxy.url))
            .header("accept", OCI_MANIFEST)
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 200);
        assert_eq!(resp.headers()["content-type"], OCI_MANIFEST);
        assert_eq!(resp.headers()["docker-content-digest"], digest.as_str());
        assert_eq!(
            resp.headers()["content-length"],
            bytes.len().to_string().as_str()
        );
        assert_eq!(
            resp.headers()["docker-distribution-api-version"],
            "registry/2.0"
        );
        // Byte for byte, trailing spaces included: never re-serialised.
        assert_eq!(resp.bytes().await.unwrap(), bytes);
    }
    // The client's Accept header reached the upstream.
    let seen = up.requests();
    assert!(seen.iter().all(|s| s
        .headers
        .get("accept")
        .map(|v| v == OCI_MANIFEST)
        .unwrap_or(false)));

    let head = client()
        .head(format!("{}/v2/team/app/manifests/v1", proxy.url))
        .send()
        .await
        .unwrap();
    assert_eq!(head.status(), 200);
    assert_eq!(head.headers()["docker-content-digest"], digest.as_str());
    assert_eq!(
        head.headers()["content-length"],
        bytes.len().to_string().as_str()
    );
    assert_eq!(head.bytes().await.unwrap().len(), 0);
    assert_eq!(up.requests().last().unwrap().method, http::Method::HEAD);
}

#[tokio::test]
async fn digest_mismatches_are_refused() {
    let up = manifest_upstream().await;
    let proxy = Proxy::in_front_of(&up, "").await;

    // Docker-Content-Digest that does not match the bytes.
    let resp = client()
        .get(format!("{}/v2/team/app/manifests/lying", proxy.url))
        .send()
        .await
        .unwrap();
    let (status, code, message) = error_code(resp).await;
    assert_eq!(
        (status, code.as_str()),
        (StatusCode::BAD_GATEWAY, "MANIFEST_INVALID")
    );
    assert!(message.contains("Docker-Content-Digest"), "{message}");

    // Asking by a digest the upstream answers with other bytes for: a fake that ignores the
    // requested digest.
    let liar = FakeUpstream::start(|_| async {
        respond(
            StatusCode::OK,
            &[("content-type", OCI_MANIFEST)],
            manifest_bytes(),
        )
    })
    .await;
    let proxy = Proxy::in_front_of(&liar, "").await;
    let other = crate::common::sha256(b"x");
    let resp = client()
        .get(format!("{}/v2/team/app/manifests/{other}", proxy.url))
        .send()
        .await
        .unwrap();
    let (status, code, message) = error_code(resp).await;
    assert_eq!(
        (status, code.as_str()),
        (StatusCode::BAD_GATEWAY, "MANIFEST_INVALID")
    );
    assert!(message.contains("requested digest"), "{message}");
}

#[tokio::test]
async fn oversized_manifests_are_refused_with_and_without_content_length() {
    let up = FakeUpstream::start(|s| async move {
        let big = vec![b' '; 5000];
        if s.path.ends_with("/chunked") {
            // A streamed body with no Content-Length.
            let chunks = futures_util::stream::iter(
                big.chunks(1000)
                    .map(|c| {
                        Ok::<_, std::io::Error>(http_body::Frame::data(Bytes::copy_from_slice(c)))
                    })
                    .collect::<Vec<_>>(),
            );
            let body = http_body_util::BodyExt::boxed(http_body_util::BodyExt::map_err(
                http_body_util::StreamBody::new(chunks),
                |e| -> body::BoxError { Box::new(e) },
            ));
            let mut r = http::Response::new(body);
            r.headers_mut()
                .insert("content-type", OCI_MANIFEST.parse().unwrap());
            return r;
        }
        respond(StatusCode::OK, &[("content-type", OCI_MANIFEST)], big)
    })
    .await;
    let proxy = Proxy::in_front_of(&up, "limits: { max_manifest_bytes: 1024 }").await;
    for tag in ["sized", "chunked"] {
        let resp = client()
            .get(format!("{}/v2/team/app/manifests/{tag}", proxy.url))
            .send()
            .await
            .unwrap();
        let (status, code, message) = error_code(resp).await;
        assert_eq!(
            (status, code.as_str()),
            (StatusCode::BAD_GATEWAY, "MANIFEST_INVALID"),
            "{tag}"
        );
        assert!(message.contains("1024-byte limit"), "{message}");
    }
}

#[tokio::test]
async fn upstream_faults_map_to_oci_errors() {
    let up = FakeUpstream::start(|s| async move {
        match s.path.rsplit('/').next().unwrap_or_default() {
            "e500" => respond(StatusCode::INTERNAL_SERVER_ERROR, &[], "boom"),
            "e503" => oci_error(StatusCode::SERVICE_UNAVAILABLE, "UNAVAILABLE"),
            "e429" => respond(StatusCode::TOO_MANY_REQUESTS, &[("retry-after", "17")], ""),
            "e403" => oci_error(StatusCode::FORBIDDEN, "DENIED"),
            "gone" if s.path.contains("/nothere/") => {
                oci_error(StatusCode::NOT_FOUND, "NAME_UNKNOWN")
            }
            _ => oci_error(StatusCode::NOT_FOUND, "MANIFEST_UNKNOWN"),
        }
    })
    .await;
    let proxy = Proxy::in_front_of(&up, "").await;
    let cases = [
        ("team/app/manifests/e500", StatusCode::BAD_GATEWAY, "UNAVAILABLE"),
        ("team/app/manifests/e503", StatusCode::BAD_GATEWAY, "UNAVAILABLE"),
        ("team/app/manifests/e429", StatusCode::TOO_MANY_REQUESTS, "TOOMANYREQUESTS"),
        ("team/app/manifests/e403", StatusCode::FORBIDDEN, "DENIED"),
        ("team/app/manifests/v9", StatusCode::NOT_FOUND, "MANIFEST_UNKNOWN"),
        ("nothere/app/manifests/gone", StatusCode::NOT_FOUND, "NAME_UNKNOWN"),
        (
            "team/app/blobs/sha256:0000000000000000000000000000000000000000000000000000000000000000",
            StatusCode::NOT_FOUND,
            "BLOB_UNKNOWN",
        ),
    ];
    for (path, want_status, want_code) in cases {
        let resp = client()
            .get(format!("{}/v2/{path}", proxy.url))
            .send()
            .await
            .unwrap();
        let retry_after = resp.headers().get("retry-after").cloned();
        let (status, code, _) = error_code(resp).await;
        assert_eq!((status, code.as_str()), (want_status, want_code), "{path}");
        if want_code == "TOOMANYREQUESTS" {
            assert_eq!(retry_after.unwrap(), "17");
        }
    }
}

#[tokio::test]
async fn slow_upstream_headers_time_out_without_hanging() {
    let up = FakeUpstream::start(|_| async {
        tokio::time::sleep(Duration::from_secs(30)).await;
        respond(StatusCode::OK, &[], "late")
    })
    .await;
    let proxy = Proxy::in_front_of(&up, "timeouts: { response_header: 300ms }").await;
    let started = Instant::now();
    let resp = client()
        .get(format!("{}/v2/team/app/manifests/v1", proxy.url))
        .send()
        .await
        .unwrap();
    let (status, code, message) = error_code(resp).await;
    assert_eq!(
        (status, code.as_str()),
        (StatusCode::GATEWAY_TIMEOUT, "UNAVAILABLE")
    );
    assert!(message.contains("300ms"), "{message}");
    assert!(started.elapsed() < Duration::from_secs(5));
}

#[tokio::test]
async fn unreachable_upstream_is_a_bad_gateway() {
    // A port nothing listens on: bind, take the port, drop the listener.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let proxy = Proxy::start(
        "dead.local",
        &format!("  dead.local: {{ url: \"http://127.0.0.1:{port}\" }}"),
        "",
    )
    .await;
    let resp = client()
        .get(format!("{}/v2/team/app/manifests/v1", proxy.url))
        .send()
        .await
        .unwrap();
    let (status, code, message) = error_code(resp).await;
    assert_eq!(
        (status, code.as_str()),
        (StatusCode::BAD_GATEWAY, "UNAVAILABLE")
    );
    assert!(message.contains("dead.local"), "{message}");
}

/// A blob body that sends `first` bytes of a `declared`-byte blob and then fails.
fn broken_blob(declared: usize, first: usize) -> http::Response<ResponseBody> {
    let frames = futures_util::stream::unfold(0u8, move |n| async move {
        match n {
            0 => Some((Ok(http_body::Frame::data(Bytes::from(vec![7u8; first]))), 1)),
            1 => {
                // Let the headers and the first chunk leave before the "reset".
                tokio::time::sleep(Duration::from_millis(200)).await;
                Some((
                    Err::<http_body::Frame<Bytes>, body::BoxError>(
                        "connection reset by fake".into(),
                    ),
                    2,
                ))
            }
            _ => None,
        }
    });
    let mut r = http::Response::new(http_body_util::BodyExt::boxed(
        http_body_util::StreamBody::new(frames),
    ));
    r.headers_mut()
        .insert("content-length", declared.to_string().parse().unwrap());
    r
}

#[tokio::test]
async fn blob_reset_midway_fails_the_client_transfer() {
    let up = FakeUpstream::start(|_| async { broken_blob(1 << 20, 64 * 1024) }).await;
    let proxy = Proxy::in_front_of(&up, "").await;
    let digest = crate::common::sha256(b"whatever");
    let resp = client()
        .get(format!("{}/v2/team/app/blobs/{digest}", proxy.url))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let started = Instant::now();
    let body = resp.bytes().await;
    assert!(body.is_err(), "a truncated blob must not look complete");
    assert!(started.elapsed() < Duration::from_secs(5));
}

#[tokio::test]
async fn blob_that_stalls_is_cut_after_the_idle_timeout() {
    let up = FakeUpstream::start(|_| async {
        let frames = futures_util::stream::unfold(0u8, |n| async move {
            if n == 0 {
                Some((
                    Ok::<_, body::BoxError>(http_body::Frame::data(Bytes::from_static(b"abc"))),
                    1,
                ))
            } else {
                tokio::time::sleep(Duration::from_secs(60)).await;
                None
            }
        });
        let mut r = http::Response::new(http_body_util::BodyExt::boxed(
            http_body_util::StreamBody::new(frames),
        ));
        r.headers_mut()
            .insert("content-length", "100".parse().unwrap());
        r
    })
    .await;
    let proxy = Proxy::in_front_of(&up, "timeouts: { read_idle: 300ms }").await;
    let digest = crate::common::sha256(b"x");
    let started = Instant::now();
    let resp = client()
        .get(format!("{}/v2/team/app/blobs/{digest}", proxy.url))
        .send()
        .await
        .unwrap();
    assert!(resp.bytes().await.is_err());
    assert!(started.elapsed() < Duration::from_secs(5));
}

#[tokio::test]
async fn blob_redirects_are_followed_without_credentials_and_ranges_pass() {
    let storage = FakeUpstream::start(|s| async move {
        let data = b"0123456789abcdef";
        match s.headers.get("range").and_then(|r| r.to_str().ok()) {
            Some("bytes=4-7") => respond(
                StatusCode::PARTIAL_CONTENT,
                &[
                    ("content-range", "bytes 4-7/16"),
                    ("content-type", "application/octet-stream"),
                ],
                &data[4..8],
            ),
            _ => respond(
                StatusCode::OK,
                &[("content-type", "application/octet-stream")],
                &data[..],
            ),
        }
    })
    .await;
    let storage_url = storage.url();
    let registry = FakeUpstream::start(move |s| {
        let storage_url = storage_url.clone();
        async move {
            if s.path == "/token" {
                return respond(
                    StatusCode::OK,
                    &[("content-type", "application/json")],
                    r#"{"token":"tok-123","expires_in":300}"#,
                );
            }
            if s.headers
                .get("authorization")
                .map(|a| a == "Bearer tok-123")
                != Some(true)
            {
                return respond(StatusCode::UNAUTHORIZED, &[], "");
            }
            respond(
                StatusCode::TEMPORARY_REDIRECT,
                &[("location", &format!("{storage_url}/store/blob?sig=abc"))],
                "",
            )
        }
    })
    .await;
    let proxy = Proxy::in_front_of(&registry, "").await;
    let digest = crate::common::sha256(b"0123456789abcdef");

    let resp = client()
        .get(format!("{}/v2/team/app/blobs/{digest}", proxy.url))
        .send()
        .await
        .unwrap();
    // A 401 without a challenge: nothing to authenticate with, so the client is denied.
    let (status, code, _) = error_code(resp).await;
    assert_eq!((status, code.as_str()), (StatusCode::FORBIDDEN, "DENIED"));
    assert_eq!(storage.total(), 0);

    // Now with a bearer challenge naming the registry's own token endpoint.
    let storage_url = storage.url();
    let registry = FakeUpstream::start(move |s| {
        let storage_url = storage_url.clone();
        async move {
            let own = format!("http://{}", s.headers["host"].to_str().unwrap());
            if s.path == "/token" {
                return respond(
                    StatusCode::OK,
                    &[("content-type", "application/json")],
                    r#"{"token":"tok-123","expires_in":300}"#,
                );
            }
            if s.headers
                .get("authorization")
                .map(|a| a == "Bearer tok-123")
                != Some(true)
            {
                return respond(
                    StatusCode::UNAUTHORIZED,
                    &[(
                        "www-authenticate",
                        &format!(r#"Bearer realm="{own}/token",service="fake""#),
                    )],
                    "",
                );
            }
            respond(
                StatusCode::TEMPORARY_REDIRECT,
                &[("location", &format!("{storage_url}/store/blob?sig=abc"))],
                "",
            )
        }
    })
    .await;
    let proxy = Proxy::in_front_of(&registry, "").await;
    let resp = client()
        .get(format!("{}/v2/team/app/blobs/{digest}", proxy.url))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["docker-content-digest"], digest.as_str());
    assert_eq!(resp.bytes().await.unwrap(), &b"0123456789abcdef"[..]);

    let resp = client()
        .get(format!("{}/v2/team/app/blobs/{digest}", proxy.url))
        .header("range", "bytes=4-7")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 206);
    assert_eq!(resp.headers()["content-range"], "bytes 4-7/16");
    assert_eq!(resp.bytes().await.unwrap(), &b"4567"[..]);

    // HEAD through a redirect: headers, no body.
    let resp = client()
        .head(format!("{}/v2/team/app/blobs/{digest}", proxy.url))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["content-length"], "16");

    // The storage host never saw the registry token.
    for s in storage.requests() {
        assert!(s.headers.get("authorization").is_none(), "{s:?}");
        assert_eq!(s.query.as_deref(), Some("sig=abc"));
    }
    // One token fetch served all three requests.
    assert_eq!(registry.count("/token"), 1);
}

#[tokio::test]
async fn redirect_to_a_non_http_scheme_is_refused() {
    let up = FakeUpstream::start(|_| async {
        respond(StatusCode::FOUND, &[("location", "file:///etc/passwd")], "")
    })
    .await;
    let proxy = Proxy::in_front_of(&up, "").await;
    let resp = client()
        .get(format!(
            "{}/v2/team/app/blobs/{}",
            proxy.url,
            crate::common::sha256(b"x")
        ))
        .send()
        .await
        .unwrap();
    let (status, code, message) = error_code(resp).await;
    assert_eq!(
        (status, code.as_str()),
        (StatusCode::BAD_GATEWAY, "UNAVAILABLE")
    );
    assert!(message.contains("redirect"), "{message}");
}

/// A registry behind a token server that wants basic credentials `bot:pw-s3cret`.
async fn bearer_registry(token_fetches: Arc<AtomicUsize>) -> FakeUpstream {
    FakeUpstream::start(move |s| {
        let token_fetches = token_fetches.clone();
        async move {
            let own = format!("http://{}", s.headers["host"].to_str().unwrap());
            if s.path == "/auth/token" {
                token_fetches.fetch_add(1, Ordering::SeqCst);
                // base64("bot:pw-s3cret")
                if s.headers.get("authorization").map(|a| a == "Basic Ym90OnB3LXMzY3JldA==") != Some(true) {
                    return respond(StatusCode::UNAUTHORIZED, &[], "");
                }
                let q = s.query.unwrap_or_default();
                assert!(q.contains("service=fake-registry"), "{q}");
                assert!(q.contains("scope=repository%3Ateam%2Fapp%3Apull"), "{q}");
                return respond(StatusCode::OK, &[], r#"{"access_token":"tok-xyz","expires_in":600}"#);
            }
            if s.headers.get("authorization").map(|a| a == "Bearer tok-xyz") != Some(true) {
                return respond(
                    StatusCode::UNAUTHORIZED,
                    &[(
                        "www-authenticate",
                        &format!(r#"Bearer realm="{own}/auth/token",service="fake-registry",scope="repository:team/app:pull""#),
                    )],
                    r#"{"errors":[{"code":"UNAUTHORIZED"}]}"#,
                );
            }
            let bytes = manifest_bytes();
            respond(StatusCode::OK, &[("content-type", OCI_MANIFEST)], bytes)
        }
    })
    .await
}

#[tokio::test]
async fn bearer_token_flow_with_basic_credentials_is_cached() {
    let fetches = Arc::new(AtomicUsize::new(0));
    let up = bearer_registry(fetches.clone()).await;
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("pw"), "pw-s3cret\n").unwrap();
    let path = crate::fake::write_config(
        dir.path(),
        "fake.local",
        &format!(
            "  fake.local: {{ url: \"{}\", username: bot, password_file: pw }}",
            up.url()
        ),
        "",
    );
    let proxy = Proxy::start_file(&path, dir).await;

    let mut tasks = Vec::new();
    for _ in 0..20 {
        let url = format!("{}/v2/team/app/manifests/v1", proxy.url);
        tasks.push(tokio::spawn(async move {
            client().get(url).send().await.unwrap().status()
        }));
    }
    for t in tasks {
        assert_eq!(t.await.unwrap(), 200);
    }
    for _ in 0..5 {
        let resp = client()
            .get(format!("{}/v2/team/app/manifests/v1", proxy.url))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 200);
    }
    // Concurrent first requests share one token fetch; later ones reuse the cached token.
    assert_eq!(fetches.load(Ordering::SeqCst), 1);

    let metrics = proxy.metrics().await;
    assert!(!metrics.contains("pw-s3cret") && !metrics.contains("tok-xyz"));
    assert!(metrics.contains(r#"portcullis_upstream_requests_total{kind="token",status="200",upstream="fake.local"} 1"#), "{metrics}");
}

#[tokio::test]
async fn wrong_credentials_are_denied_without_leaking_them() {
    let fetches = Arc::new(AtomicUsize::new(0));
    let up = bearer_registry(fetches).await;
    let proxy = Proxy::start(
        "fake.local",
        &format!(
            "  fake.local: {{ url: \"{}\", username: bot, password: wrong-pass }}",
            up.url()
        ),
        "",
    )
    .await;
    let resp = client()
        .get(format!("{}/v2/team/app/manifests/v1", proxy.url))
        .send()
        .await
        .unwrap();
    let (status, code, message) = error_code(resp).await;
    assert_eq!((status, code.as_str()), (StatusCode::FORBIDDEN, "DENIED"));
    assert!(
        message.contains("token service refused the configured credentials (401"),
        "{message}"
    );
    assert!(!message.contains("wrong-pass"));
}

#[tokio::test]
async fn invalid_requests_never_reach_the_upstream() {
    let up = manifest_upstream().await;
    let proxy = Proxy::in_front_of(&up, "").await;
    let c = client();
    let cases: Vec<(reqwest::RequestBuilder, StatusCode, &str)> = vec![
        (
            c.get(format!("{}/v2/Team/App/manifests/v1", proxy.url)),
            StatusCode::BAD_REQUEST,
            "NAME_INVALID",
        ),
        (
            c.get(format!("{}/v2/team/app/manifests/-bad", proxy.url)),
            StatusCode::BAD_REQUEST,
            "TAG_INVALID",
        ),
        (
            c.get(format!("{}/v2/team/app/manifests/sha256:abc", proxy.url)),
            StatusCode::BAD_REQUEST,
            "DIGEST_INVALID",
        ),
        (
            c.get(format!("{}/v2/team/app/blobs/md5:abc", proxy.url)),
            StatusCode::BAD_REQUEST,
            "DIGEST_INVALID",
        ),
        (
            c.get(format!("{}/v2/team/app/referrers/latest", proxy.url)),
            StatusCode::BAD_REQUEST,
            "DIGEST_INVALID",
        ),
        (
            c.put(format!("{}/v2/team/app/manifests/v1", proxy.url))
                .body("{}"),
            StatusCode::METHOD_NOT_ALLOWED,
            "UNSUPPORTED",
        ),
        (
            c.delete(format!("{}/v2/team/app/manifests/v1", proxy.url)),
            StatusCode::METHOD_NOT_ALLOWED,
            "UNSUPPORTED",
        ),
        (
            c.post(format!("{}/v2/team/app/blobs/uploads/", proxy.url)),
            StatusCode::METHOD_NOT_ALLOWED,
            "UNSUPPORTED",
        ),
        (
            c.get(format!("{}/v2/team/app/blobs/uploads/123", proxy.url)),
            StatusCode::METHOD_NOT_ALLOWED,
            "UNSUPPORTED",
        ),
        (
            c.get(format!(
                "{}/v2/team/app/manifests/v1?ns=evil.example",
                proxy.url
            )),
            StatusCode::NOT_FOUND,
            "NAME_UNKNOWN",
        ),
        (
            c.get(format!("{}/v1/search", proxy.url)),
            StatusCode::NOT_FOUND,
            "UNSUPPORTED",
        ),
    ];
    for (req, want_status, want_code) in cases {
        let resp = req.send().await.unwrap();
        let url = resp.url().to_string();
        let (status, code, _) = error_code(resp).await;
        assert_eq!((status, code.as_str()), (want_status, want_code), "{url}");
    }
    assert_eq!(up.total(), 0, "no invalid request may reach the upstream");

    let ping = c.get(format!("{}/v2/", proxy.url)).send().await.unwrap();
    assert_eq!(ping.status(), 200);
    assert_eq!(up.total(), 0);
}

#[tokio::test]
async fn addressing_forms_select_the_upstream() {
    let hub = FakeUpstream::start(|s| async move {
        respond(
            StatusCode::OK,
            &[("content-type", OCI_MANIFEST), ("x-who", "hub")],
            s.path,
        )
    })
    .await;
    let ghcr = FakeUpstream::start(|s| async move {
        respond(
            StatusCode::OK,
            &[("content-type", OCI_MANIFEST), ("x-who", "ghcr")],
            s.path,
        )
    })
    .await;
    let proxy = Proxy::start(
        "docker.io",
        &format!(
            "  docker.io: {{ url: \"{}\" }}\n  ghcr.io: {{ url: \"{}\" }}",
            hub.url(),
            ghcr.url()
        ),
        "",
    )
    .await;
    let cases = [
        ("/v2/alpine/manifests/3", "/v2/library/alpine/manifests/3"),
        (
            "/v2/alpine/manifests/3?ns=docker.io",
            "/v2/library/alpine/manifests/3",
        ),
        (
            "/v2/company/app/manifests/v1?ns=ghcr.io",
            "/v2/company/app/manifests/v1",
        ),
        (
            "/v2/ghcr.io/company/app/manifests/v1",
            "/v2/company/app/manifests/v1",
        ),
        (
            "/v2/docker.io/company/app/manifests/v1",
            "/v2/company/app/manifests/v1",
        ),
        (
            "/v2/company/app/manifests/v1",
            "/v2/company/app/manifests/v1",
        ),
    ];
    for (path, upstream_path) in cases {
        let body = client()
            .get(format!("{}{path}", proxy.url))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        assert_eq!(body, upstream_path, "{path}");
    }
    // Each image is asked for twice. The second time its tag is known, so it is revalidated
    // with a HEAD; these fakes name no digest in it, so a GET follows.
    assert_eq!(ghcr.total(), 3);
    assert_eq!(hub.total(), 6);
}

#[tokio::test]
async fn referrers_pass_through_and_fall_back_to_the_tag_schema() {
    let subject = crate::common::sha256(b"subject");
    let fallback_tag = subject.replace(':', "-");
    let index = format!(
        r#"{{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","manifests":[{{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"{a}","size":10,"artifactType":"application/vnd.dev.sigstore.bundle.v0.3+json"}},{{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"{b}","size":11,"artifactType":"application/spdx+json"}}]}}"#,
        a = crate::common::sha256(b"a"),
        b = crate::common::sha256(b"b")
    );
    // Upstream without the referrers API (text/plain 404, like distribution 2.8).
    let index2 = index.clone();
    let tag2 = fallback_tag.clone();
    let old = FakeUpstream::start(move |s| {
        let index = index2.clone();
        let tag = tag2.clone();
        async move {
            if s.path.contains("/referrers/") {
                return respond(
                    StatusCode::NOT_FOUND,
                    &[("content-type", "text/plain")],
                    "404 page not found",
                );
            }
            // Like distribution: an index is only served to a client that accepts one.
            let accepts_index = s
                .headers
                .get("accept")
                .and_then(|a| a.to_str().ok())
                .is_some_and(|a| a.contains("application/vnd.oci.image.index.v1+json"));
            if s.path == format!("/v2/team/app/manifests/{tag}") && accepts_index {
                return respond(
                    StatusCode::OK,
                    &[("content-type", "application/vnd.oci.image.index.v1+json")],
                    index,
                );
            }
            if s.path.starts_with("/v2/team/") {
                return oci_error(StatusCode::NOT_FOUND, "MANIFEST_UNKNOWN");
            }
            oci_error(StatusCode::NOT_FOUND, "NAME_UNKNOWN")
        }
    })
    .await;
    let proxy = Proxy::in_front_of(&old, "").await;
    let resp = client()
        .get(format!("{}/v2/team/app/referrers/{subject}", proxy.url))
        .header("accept", "*/*")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(
        resp.headers()["content-type"],
        "application/vnd.oci.image.index.v1+json"
    );
    assert_eq!(resp.text().await.unwrap(), index);

    let resp = client()
        .get(format!(
            "{}/v2/team/app/referrers/{subject}?artifactType=application/spdx%2Bjson",
            proxy.url
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.headers()["oci-filters-applied"], "artifactType");
    let v: serde_json::Value = resp.json().await.unwrap();
    assert_eq!(v["manifests"].as_array().unwrap().len(), 1);
    assert_eq!(v["manifests"][0]["artifactType"], "application/spdx+json");

    // No fallback tag: an empty index.
    let none = crate::common::sha256(b"none");
    let v: serde_json::Value = client()
        .get(format!("{}/v2/team/app/referrers/{none}", proxy.url))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(v["manifests"].as_array().unwrap().len(), 0);
    // Unknown repository: NAME_UNKNOWN.
    let resp = client()
        .get(format!("{}/v2/other/app/referrers/{none}", proxy.url))
        .send()
        .await
        .unwrap();
    let (status, code, _) = error_code(resp).await;
    assert_eq!(
        (status, code.as_str()),
        (StatusCode::NOT_FOUND, "NAME_UNKNOWN")
    );

    // Upstream with the API: passed through, filter header and Link rewritten.
    let index3 = index.clone();
    let new = FakeUpstream::start(move |s| {
        let index = index3.clone();
        async move {
            assert_eq!(
                s.query.as_deref(),
                Some("artifactType=application%2Fspdx%2Bjson")
            );
            respond(
                StatusCode::OK,
                &[
                    ("content-type", "application/vnd.oci.image.index.v1+json"),
                    ("oci-filters-applied", "artifactType"),
                    (
                        "link",
                        "</v2/team/app/referrers/x?n=1&last=abc>; rel=\"next\"",
                    ),
                ],
                index,
            )
        }
    })
    .await;
    let proxy = Proxy::start(
        "other",
        &format!(
            "  other: {{ url: \"http://127.0.0.1:1\" }}\n  new.local: {{ url: \"{}\" }}",
            new.url()
        ),
        "",
    )
    .await;
    let resp = client()
        .get(format!(
            "{}/v2/new.local/team/app/referrers/{subject}?artifactType=application/spdx%2Bjson",
            proxy.url
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["oci-filters-applied"], "artifactType");
    assert_eq!(
        resp.headers()["link"],
        format!("</v2/new.local/team/app/referrers/{subject}?n=1&last=abc>; rel=\"next\"").as_str()
    );
    assert_eq!(resp.text().await.unwrap(), index);
}

#[tokio::test]
async fn tags_list_pages_through_the_proxy() {
    let up = FakeUpstream::start(|s| async move {
        assert_eq!(s.path, "/v2/library/alpine/tags/list");
        let q = s.query.unwrap_or_default();
        if q.contains("last=b") {
            return respond(
                StatusCode::OK,
                &[("content-type", "application/json")],
                r#"{"name":"library/alpine","tags":["c"]}"#,
            );
        }
        assert_eq!(q, "n=2");
        respond(
            StatusCode::OK,
            &[
                ("content-type", "application/json"),
                (
                    "link",
                    "</v2/library/alpine/tags/list?last=b&n=2>; rel=\"next\"",
                ),
            ],
            r#"{"name":"library/alpine","tags":["a","b"]}"#,
        )
    })
    .await;
    let proxy = Proxy::start(
        "docker.io",
        &format!("  docker.io: {{ url: \"{}\" }}", up.url()),
        "",
    )
    .await;
    let resp = client()
        .get(format!(
            "{}/v2/alpine/tags/list?n=2&ns=docker.io",
            proxy.url
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let link = resp.headers()["link"].to_str().unwrap().to_owned();
    assert_eq!(
        link,
        "</v2/alpine/tags/list?last=b&n=2&ns=docker.io>; rel=\"next\""
    );
    let v: serde_json::Value = resp.json().await.unwrap();
    assert_eq!(v["tags"], serde_json::json!(["a", "b"]));
    let next = &link[1..link.find('>').unwrap()];
    let v: serde_json::Value = client()
        .get(format!("{}{next}", proxy.url))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(v["tags"], serde_json::json!(["c"]));
}

#[tokio::test]
async fn metrics_have_bounded_labels() {
    let up = manifest_upstream().await;
    let proxy = Proxy::in_front_of(&up, "").await;
    for tag in ["v1", "nope"] {
        client()
            .get(format!("{}/v2/team/app/manifests/{tag}", proxy.url))
            .send()
            .await
            .unwrap();
    }
    let m = proxy.metrics().await;
    assert!(
        m.contains(
            r#"portcullis_http_requests_total{method="GET",route="manifest",status="200"} 1"#
        ),
        "{m}"
    );
    assert!(
        m.contains(
            r#"portcullis_http_requests_total{method="GET",route="manifest",status="404"} 1"#
        ),
        "{m}"
    );
    assert!(m.contains(r#"portcullis_upstream_requests_total{kind="manifest",status="200",upstream="fake.local"} 1"#), "{m}");
    assert!(m.contains("portcullis_http_request_duration_seconds_bucket"));
    assert!(
        !m.contains("team/app") && !m.contains("sha256:"),
        "labels must not carry names or digests"
    );
    for endpoint in ["healthz", "readyz"] {
        assert_eq!(
            reqwest::get(format!("{}/{endpoint}", proxy.admin))
                .await
                .unwrap()
                .status(),
            200
        );
    }
    // The admin endpoints are not on the registry listener.
    assert_eq!(
        client()
            .get(format!("{}/metrics", proxy.url))
            .send()
            .await
            .unwrap()
            .status(),
        404
    );
}

#[tokio::test]
async fn shutdown_drains_in_flight_requests_and_stops_accepting() {
    // The upstream holds its answer until the test has seen the proxy draining: the request is
    // in flight for as long as the checks below take, whatever the machine's speed.
    let (arrived_tx, mut arrived) = tokio::sync::mpsc::unbounded_channel::<()>();
    let release = Arc::new(tokio::sync::Notify::new());
    let release_up = release.clone();
    let up = FakeUpstream::start(move |_| {
        let arrived_tx = arrived_tx.clone();
        let release = release_up.clone();
        async move {
            let _ = arrived_tx.send(());
            release.notified().await;
            respond(
                StatusCode::OK,
                &[("content-type", OCI_MANIFEST)],
                manifest_bytes(),
            )
        }
    })
    .await;
    let mut proxy = Proxy::in_front_of(&up, "").await;
    let url = format!("{}/v2/team/app/manifests/v1", proxy.url);
    let in_flight = tokio::spawn(async move {
        client()
            .get(url)
            .send()
            .await
            .unwrap()
            .bytes()
            .await
            .unwrap()
    });
    tokio::time::timeout(Duration::from_secs(10), arrived.recv())
        .await
        .expect("the request reached the upstream");
    let server = proxy.server.take().unwrap();
    let draining = tokio::spawn(server.shutdown());
    // While draining, probes get an answer: not ready.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let ready = reqwest::get(format!("{}/readyz", proxy.admin))
            .await
            .unwrap()
            .status();
        if ready == 503 {
            break;
        }
        assert_eq!(ready, 200, "readyz before draining shows");
        assert!(Instant::now() < deadline, "readyz never answered 503");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(
        !draining.is_finished(),
        "shutdown waits for the request in flight"
    );
    let started = Instant::now();
    release.notify_one();
    tokio::time::timeout(Duration::from_secs(5), draining)
        .await
        .expect("shutdown finishes once the request in flight is answered")
        .unwrap();
    assert!(started.elapsed() < Duration::from_secs(5));
    assert_eq!(
        in_flight.await.unwrap(),
        manifest_bytes(),
        "in-flight request completed"
    );
    assert!(
        client()
            .get(format!("{}/v2/", proxy.url))
            .send()
            .await
            .is_err(),
        "no longer accepting"
    );
}
