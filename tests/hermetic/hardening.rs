//! The classes of attack the hardening review found, each tried against the in-process proxy with
//! a hostile fake upstream or raw-socket clients: manifest bytes through the blob route in every
//! document shape, idle and half-open connections, upstreams that drip, credentials offered to a
//! token realm on another host, and host-name prefixes that are not configured.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{Response, StatusCode};
use http_body_util::BodyExt;
use portcullis::upstream::body::ResponseBody;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};

use crate::common::fixtures::Fixtures;
use crate::common::sha256;
use crate::fake::{client, error_code, metric, oci_error, respond, FakeUpstream, Proxy};

const MANIFEST_LIMIT: usize = 4096;

/// An enforce rule (nothing upstream is signed) and an audit rule, with a small manifest limit.
fn rules() -> String {
    rules_with("signature_lookup: 5s")
}

fn rules_with(timeouts: &str) -> String {
    let f = Fixtures::SIGSTORE;
    format!(
        r#"trusted_root: {root}
limits: {{ max_manifest_bytes: {MANIFEST_LIMIT} }}
timeouts: {{ {timeouts} }}
policies:
  - name: enforced
    match: ["fake.local/enforce/**"]
    mode: enforce
    attestors:
      - key: {{ public_key: {key} }}
  - name: audited
    match: ["fake.local/audit/**"]
    mode: audit
    attestors:
      - key: {{ public_key: {key} }}
"#,
        root = f.path("trusted_root.json").display(),
        key = f.path("cosign.pub").display(),
    )
}

/// Documents a lenient (Go) reader takes as a manifest that serde would reject or miss, and
/// JSON that is no manifest at all: under enforce, none of them may leave unverified.
fn json_shapes() -> Vec<(&'static str, Vec<u8>)> {
    let manifest = br#"{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a","size":2},"layers":[]}"#.to_vec();
    let mut padded = b" \n\t\r ".to_vec();
    padded.extend_from_slice(&manifest);
    padded.extend_from_slice(b"\n\n   ");
    let mut invalid_utf8 = b"{\"\xff\xfe\":1,".to_vec();
    invalid_utf8.extend_from_slice(&manifest[1..]);
    let mut padded_past_limit = vec![b' '; MANIFEST_LIMIT + 100];
    padded_past_limit.extend_from_slice(&manifest);
    let mut large = manifest[..manifest.len() - 1].to_vec();
    large.extend_from_slice(b",\"annotations\":{\"x\":\"");
    large.extend(std::iter::repeat_n(b'a', MANIFEST_LIMIT * 2));
    large.extend_from_slice(b"\"}}");
    vec![
        ("a manifest", manifest.clone()),
        (
            "a duplicated key",
            br#"{"schemaVersion":1,"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","layers":[]}"#.to_vec(),
        ),
        ("invalid UTF-8 in a member name", invalid_utf8),
        ("padding with white space", padded),
        ("a member name in another case", br#"{"SchemaVersion":2,"Layers":[]}"#.to_vec()),
        ("an escaped member name", br#"{"\u0073chemaVersion":2,"layers":[]}"#.to_vec()),
        ("white space past the manifest limit", padded_past_limit),
        ("a manifest past the manifest limit", large),
        ("JSON that is no manifest", br#"{"architecture":"amd64","os":"linux"}"#.to_vec()),
        ("broken JSON", b"{\"schemaVersion\":2,".to_vec()),
        ("only white space", b"  \n ".to_vec()),
    ]
}

/// A hostile upstream: its manifest route knows nothing (so containerd would fall back to the
/// blob route), its blob route serves `blobs` by digest and answers any `Range` the way that got
/// through before: several ranges as `multipart/byteranges`, one range with an unknown total.
async fn blob_upstream(blobs: Vec<Vec<u8>>, ranges_seen: Arc<AtomicUsize>) -> FakeUpstream {
    let blobs: Arc<Vec<(String, Bytes)>> = Arc::new(
        blobs
            .into_iter()
            .map(|b| (sha256(&b), Bytes::from(b)))
            .collect(),
    );
    FakeUpstream::start(move |s| {
        let blobs = blobs.clone();
        let ranges_seen = ranges_seen.clone();
        async move {
            let Some((_, digest)) = s.path.split_once("/blobs/") else {
                return oci_error(StatusCode::NOT_FOUND, "MANIFEST_UNKNOWN");
            };
            let Some((_, bytes)) = blobs.iter().find(|(d, _)| d == digest) else {
                return oci_error(StatusCode::NOT_FOUND, "BLOB_UNKNOWN");
            };
            match s.headers.get("range").and_then(|r| r.to_str().ok()) {
                Some(range) if range.contains(',') => {
                    ranges_seen.fetch_add(1, Ordering::SeqCst);
                    let mut body = b"--BOUNDARY\r\nContent-Type: application/octet-stream\r\nContent-Range: bytes 0-9/*\r\n\r\n".to_vec();
                    body.extend_from_slice(bytes);
                    body.extend_from_slice(b"\r\n--BOUNDARY--\r\n");
                    respond(
                        StatusCode::PARTIAL_CONTENT,
                        &[("content-type", "multipart/byteranges; boundary=BOUNDARY")],
                        body,
                    )
                }
                Some(_) => {
                    ranges_seen.fetch_add(1, Ordering::SeqCst);
                    let range = format!("bytes 0-{}/*", bytes.len() - 1);
                    respond(
                        StatusCode::PARTIAL_CONTENT,
                        &[("content-range", &range)],
                        bytes.clone(),
                    )
                }
                None => respond(
                    StatusCode::OK,
                    &[("content-type", "application/octet-stream")],
                    bytes.clone(),
                ),
            }
        }
    })
    .await
}

async fn blob_get(
    proxy: &Proxy,
    repo: &str,
    digest: &str,
    range: Option<&str>,
) -> reqwest::Response {
    let mut req = client().get(format!("{}/v2/{repo}/blobs/{digest}", proxy.url));
    if let Some(r) = range {
        req = req.header("range", r);
    }
    req.send().await.unwrap()
}

#[tokio::test]
async fn no_document_shape_leaves_through_the_blob_route_unverified() {
    let shapes = json_shapes();
    let layer = b"\x1f\x8b\x08\x00gzip layer bytes".to_vec();
    let mut blobs: Vec<Vec<u8>> = shapes.iter().map(|(_, b)| b.clone()).collect();
    blobs.push(layer.clone());
    let ranges_seen = Arc::new(AtomicUsize::new(0));
    let up = blob_upstream(blobs, ranges_seen.clone()).await;
    let proxy = Proxy::in_front_of(&up, &rules()).await;

    for (shape, bytes) in &shapes {
        let digest = sha256(bytes);
        for range in [
            None,
            Some("bytes=0-9"),
            Some("bytes=0-9,20-29"),
            Some("bytes=-5"),
        ] {
            let resp = blob_get(&proxy, "enforce/app", &digest, range).await;
            let (status, code, message) = error_code(resp).await;
            assert_eq!(
                (status, code.as_str()),
                (StatusCode::FORBIDDEN, "DENIED"),
                "{shape} with range {range:?}: {message}"
            );
        }
        // HEAD sends no body byte: it answers as before.
        let head = client()
            .head(format!("{}/v2/enforce/app/blobs/{digest}", proxy.url))
            .send()
            .await
            .unwrap();
        assert_eq!(head.status(), 200, "{shape}");
    }
    assert_eq!(
        ranges_seen.load(Ordering::SeqCst),
        0,
        "under enforce no client Range is forwarded upstream"
    );

    // What cannot be a JSON document streams, whole, whatever Range was asked for.
    let digest = sha256(&layer);
    for range in [None, Some("bytes=0-3"), Some("bytes=0-1,4-5")] {
        let resp = blob_get(&proxy, "enforce/app", &digest, range).await;
        assert_eq!(resp.status(), 200, "{range:?}");
        assert_eq!(resp.bytes().await.unwrap(), layer);
    }
    assert_eq!(ranges_seen.load(Ordering::SeqCst), 0);

    // Audit is not gated: the Range is honoured, from the content store that the refused
    // requests above filled (refusing to serve is not refusing to store), so it never reaches
    // the upstream.
    let (_, manifest) = &shapes[0];
    let resp = blob_get(&proxy, "audit/app", &sha256(manifest), Some("bytes=0-9")).await;
    assert_eq!(resp.status(), 206);
    assert_eq!(resp.bytes().await.unwrap(), manifest[..10]);
    assert_eq!(ranges_seen.load(Ordering::SeqCst), 0);
}

#[tokio::test]
async fn an_unasked_partial_answer_is_an_invalid_upstream_answer_under_enforce() {
    let up = FakeUpstream::start(|_| async {
        respond(
            StatusCode::PARTIAL_CONTENT,
            &[("content-range", "bytes 0-9/*")],
            r#"{"schemaVersion":2}"#,
        )
    })
    .await;
    let proxy = Proxy::in_front_of(&up, &rules()).await;
    let digest = sha256(br#"{"schemaVersion":2}"#);
    let resp = blob_get(&proxy, "enforce/app", &digest, None).await;
    let (status, _, message) = error_code(resp).await;
    assert_eq!(status, StatusCode::BAD_GATEWAY, "{message}");
    assert!(message.contains("206"), "{message}");
}

// === connections ===

/// A TCP connection from `source` (any 127.0.0.0/8 address) to the proxy.
async fn connect_from(source: &str, to: std::net::SocketAddr) -> std::io::Result<TcpStream> {
    let socket = TcpSocket::new_v4()?;
    socket.bind(format!("{source}:0").parse().unwrap())?;
    socket.connect(to).await
}

/// Waits until the peer closes `stream` (read returns 0 or fails), up to `within`.
async fn closed_within(stream: &mut TcpStream, within: Duration) -> bool {
    let mut buf = [0u8; 256];
    loop {
        match tokio::time::timeout(within, stream.read(&mut buf)).await {
            Err(_) => return false,
            Ok(Ok(0)) | Ok(Err(_)) => return true,
            Ok(Ok(_)) => continue,
        }
    }
}

async fn ping(proxy: &Proxy) -> StatusCode {
    let resp = client()
        .get(format!("{}/v2/", proxy.url))
        .timeout(Duration::from_secs(5))
        .send()
        .await
        .unwrap();
    StatusCode::from_u16(resp.status().as_u16()).unwrap()
}

#[tokio::test]
async fn idle_sockets_from_one_address_cannot_lock_out_other_clients() {
    let up =
        FakeUpstream::start(|_| async { oci_error(StatusCode::NOT_FOUND, "NAME_UNKNOWN") }).await;
    // The default limits (4096 connections, 1024 per address) and a short header deadline.
    let proxy = Proxy::in_front_of(&up, "timeouts: { client_header: 2s }").await;
    let addr = proxy.server.as_ref().unwrap().api_addr;
    let mut idle = Vec::new();
    for _ in 0..5000 {
        match connect_from("127.0.0.2", addr).await {
            Ok(s) => idle.push(s),
            Err(e) => panic!("connect: {e}"),
        }
    }
    // Every socket is open and sends nothing; a normal client still gets through.
    let started = Instant::now();
    assert_eq!(ping(&proxy).await, StatusCode::OK);
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "{:?}",
        started.elapsed()
    );
    let metrics = proxy.metrics().await;
    let refused = metric(
        &metrics,
        r#"portcullis_connections_closed_total{listener="api",reason="per_address_limit"}"#,
    ) as u64;
    assert!(refused >= 5000 - 1024, "{refused} refused");

    // And the ones held are closed at the header deadline, counted from accept.
    let mut closed = 0;
    for s in idle.iter_mut() {
        if closed_within(s, Duration::from_secs(6)).await {
            closed += 1;
        }
    }
    assert_eq!(closed, 5000, "every silent socket is closed");
    // The task that closed the last one may not have counted it yet: wait for the count.
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let metrics = proxy.metrics().await;
        let idle_closed = metric(
            &metrics,
            r#"portcullis_connections_closed_total{listener="api",reason="idle"}"#,
        ) as u64;
        if idle_closed + refused == 5000 || Instant::now() > deadline {
            assert_eq!(idle_closed + refused, 5000, "{metrics}");
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn half_sent_headers_and_idle_keep_alive_connections_are_closed() {
    let up =
        FakeUpstream::start(|_| async { oci_error(StatusCode::NOT_FOUND, "NAME_UNKNOWN") }).await;
    let proxy = Proxy::in_front_of(
        &up,
        "timeouts: { client_header: 1s, client_idle: 2s }\nlimits: { max_connections: 64, max_connections_per_address: 8 }",
    )
    .await;
    let addr = proxy.server.as_ref().unwrap().api_addr;

    // Many addresses, each within its share, fill the whole limit: the header deadline frees it.
    let mut silent = Vec::new();
    for i in 0..64 {
        silent.push(
            connect_from(&format!("127.0.1.{}", i / 8 + 1), addr)
                .await
                .unwrap(),
        );
    }
    let mut slow = connect_from("127.0.2.1", addr).await.unwrap();
    // A slow client: part of a request line, then nothing (it waits in the backlog first).
    slow.write_all(b"GET /v2/ HTTP/1.1\r\nHost: x\r\n")
        .await
        .unwrap();
    for s in &mut silent {
        assert!(
            closed_within(s, Duration::from_secs(4)).await,
            "a silent socket is closed"
        );
    }
    assert!(
        closed_within(&mut slow, Duration::from_secs(4)).await,
        "half a header is closed"
    );
    assert_eq!(ping(&proxy).await, StatusCode::OK);

    // A keep-alive connection that was served stays for `client_idle`, then is closed.
    let mut kept = connect_from("127.0.3.1", addr).await.unwrap();
    kept.write_all(b"GET /v2/ HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    let mut buf = vec![0u8; 4096];
    let n = kept.read(&mut buf).await.unwrap();
    assert!(
        buf[..n].starts_with(b"HTTP/1.1 200"),
        "{:?}",
        String::from_utf8_lossy(&buf[..n])
    );
    let served = Instant::now();
    assert!(closed_within(&mut kept, Duration::from_secs(5)).await);
    assert!(
        served.elapsed() >= Duration::from_millis(1500),
        "{:?}",
        served.elapsed()
    );
}

// === upstream deadlines ===

/// A body that sends `bytes` one byte every `every`.
fn drip(bytes: &'static [u8], every: Duration) -> ResponseBody {
    let frames = futures_util::stream::unfold(0usize, move |i| async move {
        if i >= bytes.len() {
            return None;
        }
        tokio::time::sleep(every).await;
        let frame = hyper::body::Frame::data(Bytes::from_static(&bytes[i..i + 1]));
        Some((Ok::<_, portcullis::upstream::body::BoxError>(frame), i + 1))
    });
    http_body_util::StreamBody::new(frames).boxed()
}

#[tokio::test]
async fn an_upstream_that_drips_cannot_hold_a_request_past_its_deadline() {
    const DOC: &[u8] = br#"{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","manifests":[]}"#;
    let up = FakeUpstream::start(|s| async move {
        let mut r = Response::new(drip(DOC, Duration::from_millis(200)));
        let kind = if s.path.contains("/tags/list") {
            "application/json"
        } else {
            "application/vnd.oci.image.index.v1+json"
        };
        r.headers_mut()
            .insert("content-type", kind.parse().unwrap());
        r
    })
    .await;
    let proxy = Proxy::in_front_of(
        &up,
        &rules_with("exchange: 1s, read_idle: 30s, signature_lookup: 20s"),
    )
    .await;
    // Each chunk comes well within read_idle; the whole exchange does not come within 1 s.
    for (path, want) in [
        ("off/app/manifests/v1", StatusCode::GATEWAY_TIMEOUT),
        // Under enforce the signature lookup drips too: fail closed, retryable.
        (
            "enforce/app/manifests/sha256:0000000000000000000000000000000000000000000000000000000000000000",
            StatusCode::GATEWAY_TIMEOUT,
        ),
    ] {
        let started = Instant::now();
        let resp = client().get(format!("{}/v2/{path}", proxy.url)).send().await.unwrap();
        let (status, code, message) = error_code(resp).await;
        assert_eq!(status, want, "{path}: {code} {message}");
        assert!(started.elapsed() < Duration::from_secs(5), "{path}: {:?}", started.elapsed());
    }

    // A tag list is passed through as it streams: it is cut at the deadline.
    let started = Instant::now();
    let resp = client()
        .get(format!("{}/v2/off/app/tags/list", proxy.url))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert!(
        resp.bytes().await.is_err(),
        "a tag list cut at its deadline is an error"
    );
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn a_dripping_signature_lookup_fails_closed_under_enforce() {
    const MANIFEST: &[u8] = br#"{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","layers":[]}"#;
    let digest = sha256(MANIFEST);
    let up = FakeUpstream::start(move |s| {
        let digest = digest.clone();
        async move {
            if s.path.ends_with("/manifests/v1") || s.path.ends_with(&format!("/manifests/{digest}")) {
                return respond(
                    StatusCode::OK,
                    &[("content-type", "application/vnd.oci.image.manifest.v1+json")],
                    MANIFEST,
                );
            }
            // Every signature source answers 200 and then drips its document.
            let mut r = Response::new(drip(
                br#"{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","manifests":[]}"#,
                Duration::from_millis(200),
            ));
            r.headers_mut().insert(
                "content-type",
                "application/vnd.oci.image.index.v1+json".parse().unwrap(),
            );
            r
        }
    })
    .await;
    let proxy = Proxy::in_front_of(
        &up,
        &rules_with("exchange: 1s, read_idle: 30s, signature_lookup: 20s"),
    )
    .await;
    let started = Instant::now();
    let resp = client()
        .get(format!("{}/v2/enforce/app/manifests/v1", proxy.url))
        .send()
        .await
        .unwrap();
    let (status, code, message) = error_code(resp).await;
    assert_eq!(
        (status, code.as_str()),
        (StatusCode::SERVICE_UNAVAILABLE, "UNAVAILABLE"),
        "{message}"
    );
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
    // In audit the same fault is recorded as an error and the image is served.
    let resp = client()
        .get(format!("{}/v2/audit/app/manifests/v1", proxy.url))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
}

// === credentials and addressing ===

/// A token service that records the `Authorization` header of each request.
async fn token_service(seen: Arc<Mutex<Vec<Option<String>>>>) -> FakeUpstream {
    FakeUpstream::start(move |s| {
        let seen = seen.clone();
        async move {
            let auth = s
                .headers
                .get("authorization")
                .map(|v| v.to_str().unwrap().to_owned());
            let anonymous = auth.is_none();
            seen.lock().unwrap().push(auth);
            if anonymous {
                return oci_error(StatusCode::UNAUTHORIZED, "UNAUTHORIZED");
            }
            respond(
                StatusCode::OK,
                &[("content-type", "application/json")],
                r#"{"token":"tok-1"}"#,
            )
        }
    })
    .await
}

#[tokio::test]
async fn credentials_go_only_to_the_upstreams_own_or_listed_token_realms() {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let tokens = token_service(seen.clone()).await;
    // The realm names `localhost`, another host than the upstream's `127.0.0.1`.
    let realm = format!("http://localhost:{}/token", tokens.addr.port());
    let up = FakeUpstream::start(move |s| {
        let realm = realm.clone();
        async move {
            if s.headers.get("authorization").map(|a| a == "Bearer tok-1") == Some(true) {
                return oci_error(StatusCode::NOT_FOUND, "MANIFEST_UNKNOWN");
            }
            let challenge = format!(r#"Bearer realm="{realm}",service="fake""#);
            respond(
                StatusCode::UNAUTHORIZED,
                &[("www-authenticate", &challenge)],
                "",
            )
        }
    })
    .await;
    let upstream = |extra: &str| {
        format!(
            "  fake.local: {{ url: \"{}\", username: bot, password: s3cret{extra} }}",
            up.url()
        )
    };

    let proxy = Proxy::start("fake.local", &upstream(""), "").await;
    let resp = client()
        .get(format!("{}/v2/team/app/manifests/v1", proxy.url))
        .send()
        .await
        .unwrap();
    let (status, _, message) = error_code(resp).await;
    assert!(status.is_server_error(), "{status} {message}");
    assert!(
        message.contains("token_realms") && message.contains("localhost"),
        "{message}"
    );
    assert!(!message.contains("s3cret"), "{message}");
    assert_eq!(
        *seen.lock().unwrap(),
        vec![None],
        "asked anonymously, credentials withheld"
    );

    // Listed, the realm host gets them.
    seen.lock().unwrap().clear();
    let proxy = Proxy::start("fake.local", &upstream(", token_realms: [localhost]"), "").await;
    let resp = client()
        .get(format!("{}/v2/team/app/manifests/v1", proxy.url))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 404);
    let seen = seen.lock().unwrap();
    assert_eq!(seen.len(), 1);
    assert!(
        seen[0].as_deref().is_some_and(|a| a.starts_with("Basic ")),
        "{seen:?}"
    );
}

#[tokio::test]
async fn an_unconfigured_host_name_prefix_is_an_unknown_registry() {
    let up =
        FakeUpstream::start(|_| async { oci_error(StatusCode::NOT_FOUND, "MANIFEST_UNKNOWN") })
            .await;
    let proxy = Proxy::in_front_of(&up, "").await;
    for (path, host) in [
        ("evil.example/library/alpine/manifests/latest", "evil.example"),
        ("registry.other:5000/team/app/manifests/v1", "registry.other:5000"),
        ("localhost/app/blobs/sha256:0000000000000000000000000000000000000000000000000000000000000000", "localhost"),
        ("quay.io/org/app/tags/list", "quay.io"),
    ] {
        let resp = client().get(format!("{}/v2/{path}", proxy.url)).send().await.unwrap();
        let (status, code, message) = error_code(resp).await;
        assert_eq!((status, code.as_str()), (StatusCode::NOT_FOUND, "NAME_UNKNOWN"), "{path}");
        assert!(message.contains(host), "{path}: {message}");
    }
    assert_eq!(
        up.total(),
        0,
        "nothing was forwarded to the default upstream"
    );
}
