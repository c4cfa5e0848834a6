//! The content store (docs/store.md) against the in-process fake upstream, which counts
//! requests and injects faults: single-flight fills, torn and wrong transfers, the index after a
//! restart, eviction under `max_bytes`, the cross-repository rule and a corrupt stored file.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures_util::StreamExt;
use http::{Method, StatusCode};
use portcullis::upstream::body::BoxError;

use crate::common::sha256;
use crate::fake::{client, error_code, respond, write_config, FakeUpstream, Proxy, Seen};

/// A blob of `len` bytes whose content depends on `seed`.
fn blob(len: usize, seed: u8) -> Vec<u8> {
    (0..len)
        .map(|i| (i as u8).wrapping_mul(31) ^ seed ^ (i >> 12) as u8)
        .collect()
}

/// An upstream body sent in 64 KiB chunks with `pause` between them, then cut off after
/// `cut_at` bytes when given.
fn slow_body(
    bytes: Vec<u8>,
    pause: Duration,
    announced: usize,
    cut_at: Option<usize>,
) -> http::Response<portcullis::upstream::body::ResponseBody> {
    let bytes = Bytes::from(bytes);
    let end = cut_at.unwrap_or(bytes.len());
    let chunks: Vec<Result<http_body::Frame<Bytes>, BoxError>> = (0..end)
        .step_by(64 * 1024)
        .map(|i| {
            Ok(http_body::Frame::data(
                bytes.slice(i..(i + 64 * 1024).min(end)),
            ))
        })
        .chain(cut_at.map(|_| Err(BoxError::from("cut"))))
        .collect();
    let frames = futures_util::stream::iter(chunks).then(move |c| async move {
        tokio::time::sleep(pause).await;
        c
    });
    let mut r = http::Response::new(http_body_util::BodyExt::boxed(
        http_body_util::StreamBody::new(frames),
    ));
    r.headers_mut()
        .insert("content-length", announced.to_string().parse().unwrap());
    r
}

/// The file of a stored blob under a config directory (the default state directory).
fn stored(config_dir: &Path, digest: &str) -> PathBuf {
    let hex = digest.trim_start_matches("sha256:");
    config_dir.join(format!("state/store/blobs/sha256/{hex}"))
}

fn blob_gets(up: &FakeUpstream, digest: &str) -> usize {
    up.requests()
        .iter()
        .filter(|s| s.method == Method::GET && s.path.ends_with(digest))
        .count()
}

async fn get(url: &str) -> Result<(u16, Bytes), reqwest::Error> {
    let resp = client().get(url).send().await?;
    let status = resp.status().as_u16();
    Ok((status, resp.bytes().await?))
}

/// A proxy whose config (and so state directory) lives in `dir`, which outlives it.
async fn proxy_in(dir: &Path, up: &FakeUpstream, extra: &str) -> Proxy {
    let path = write_config(
        dir,
        "fake.local",
        &format!("  fake.local: {{ url: \"{}\" }}", up.url()),
        extra,
    );
    Proxy::start_file(&path, tempfile::tempdir().unwrap()).await
}

/// An upstream serving `bytes` for every blob GET (slowly), 200 to HEAD.
async fn serving(bytes: Vec<u8>, pause: Duration) -> FakeUpstream {
    FakeUpstream::start(move |s: Seen| {
        let bytes = bytes.clone();
        async move {
            if s.method == Method::HEAD {
                return respond(
                    StatusCode::OK,
                    &[("content-length", &bytes.len().to_string())],
                    "",
                );
            }
            let len = bytes.len();
            slow_body(bytes, pause, len, None)
        }
    })
    .await
}

#[tokio::test]
async fn fifty_concurrent_cold_requests_make_one_upstream_request() {
    let bytes = blob(4 << 20, 1);
    let digest = sha256(&bytes);
    let up = serving(bytes.clone(), Duration::from_millis(5)).await;
    let dir = tempfile::tempdir().unwrap();
    let proxy = proxy_in(dir.path(), &up, "").await;
    let url = format!("{}/v2/app/blobs/{digest}", proxy.url);
    let all = futures_util::future::join_all((0..50).map(|_| get(&url))).await;
    for r in all {
        let (status, body) = r.unwrap();
        assert_eq!(status, 200);
        assert_eq!(sha256(&body), digest);
    }
    assert_eq!(blob_gets(&up, &digest), 1, "one fill for 50 requests");
    let metrics = proxy.metrics().await;
    assert!(
        metrics.contains("portcullis_store_fills_total{result=\"committed\"} 1"),
        "{metrics}"
    );
    assert!(
        metrics.contains("portcullis_store_fill_waiters_total"),
        "{metrics}"
    );
    assert_eq!(std::fs::read(stored(dir.path(), &digest)).unwrap(), bytes);
}

#[tokio::test]
async fn a_cut_or_wrong_transfer_fails_the_client_and_leaves_nothing() {
    let bytes = blob(1 << 20, 2);
    let digest = sha256(&bytes);
    let wrong = blob(1 << 20, 3);
    let wrong_digest = sha256(&wrong);
    let asked = Arc::new(AtomicUsize::new(0));
    let asked2 = asked.clone();
    let b2 = bytes.clone();
    let up = FakeUpstream::start(move |s: Seen| {
        let n = asked2.fetch_add(1, Ordering::SeqCst);
        let bytes = b2.clone();
        let is_wrong = s.path.contains(&wrong_digest);
        async move {
            let len = bytes.len();
            if is_wrong {
                // Bytes that do not hash to the digest asked for.
                slow_body(bytes, Duration::ZERO, len, None)
            } else if n == 0 {
                // Cut off half-way, the announced length never reached.
                slow_body(bytes, Duration::ZERO, len, Some(len / 2))
            } else {
                slow_body(bytes, Duration::ZERO, len, None)
            }
        }
    })
    .await;
    let dir = tempfile::tempdir().unwrap();
    let proxy = proxy_in(dir.path(), &up, "").await;

    let torn = get(&format!("{}/v2/app/blobs/{digest}", proxy.url)).await;
    assert!(
        torn.is_err(),
        "a cut transfer fails the client's transfer: {torn:?}"
    );
    assert!(!stored(dir.path(), &digest).exists());

    let mismatch = get(&format!("{}/v2/app/blobs/{}", proxy.url, sha256(&wrong))).await;
    assert!(
        mismatch.is_err(),
        "a wrong transfer fails the client's transfer"
    );
    assert!(!stored(dir.path(), &sha256(&wrong)).exists());
    // Nothing else is left behind either (no staging file).
    let left: Vec<_> = std::fs::read_dir(dir.path().join("state/store/blobs/sha256"))
        .map(|d| d.flatten().map(|e| e.file_name()).collect())
        .unwrap_or_default();
    assert!(left.is_empty(), "{left:?}");

    // Asked again, the blob is fetched again, whole this time, and stored.
    let (status, body) = get(&format!("{}/v2/app/blobs/{digest}", proxy.url))
        .await
        .unwrap();
    assert_eq!((status, sha256(&body)), (200, digest.clone()));
    assert!(stored(dir.path(), &digest).exists());
    let metrics = proxy.metrics().await;
    assert!(
        metrics.contains("portcullis_store_fills_total{result=\"mismatch\"} 1"),
        "{metrics}"
    );
    assert!(
        metrics.contains("portcullis_store_fills_total{result=\"upstream_error\"} 1"),
        "{metrics}"
    );
}

#[tokio::test]
async fn after_a_restart_stored_blobs_are_served_with_the_upstream_down() {
    let bytes = blob(300_000, 4);
    let digest = sha256(&bytes);
    let up = serving(bytes.clone(), Duration::ZERO).await;
    let dir = tempfile::tempdir().unwrap();
    let first = proxy_in(dir.path(), &up, "").await;
    let (status, _) = get(&format!("{}/v2/app/blobs/{digest}", first.url))
        .await
        .unwrap();
    assert_eq!(status, 200);
    // A staging file as a `kill -9` in the middle of a fill leaves it.
    let staging = stored(dir.path(), &sha256(b"other"))
        .with_extension("")
        .to_string_lossy()
        .to_string()
        + "#7";
    std::fs::write(&staging, b"half a blob").unwrap();
    if let Some(s) = first.server {
        s.shutdown().await;
    }

    // The upstream now fails everything.
    let down =
        FakeUpstream::start(|_| async { respond(StatusCode::SERVICE_UNAVAILABLE, &[], "") }).await;
    let second = proxy_in(dir.path(), &down, "").await;
    let url = format!("{}/v2/app/blobs/{digest}", second.url);
    let (status, body) = get(&url).await.unwrap();
    assert_eq!((status, body.as_ref()), (200, bytes.as_slice()));
    let resp = client()
        .get(&url)
        .header("range", "bytes=10-19")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 206);
    assert_eq!(
        resp.headers()["content-range"],
        format!("bytes 10-19/{}", bytes.len())
    );
    assert_eq!(resp.bytes().await.unwrap(), bytes[10..20]);
    let head = client().head(&url).send().await.unwrap();
    assert_eq!(head.status(), 200);
    assert_eq!(head.headers()["content-length"], bytes.len().to_string());
    assert_eq!(head.headers()["docker-content-digest"], digest.as_str());
    assert_eq!(down.total(), 0, "served from the store alone");
    assert!(
        !Path::new(&staging).exists(),
        "staging files are removed at start-up"
    );
    let metrics = second.metrics().await;
    assert!(
        metrics.contains(&format!("portcullis_store_bytes {}", bytes.len())),
        "{metrics}"
    );
}

#[tokio::test]
async fn the_filesystem_store_evicts_least_recently_used_under_max_bytes() {
    let blobs: Vec<Vec<u8>> = (0..4).map(|i| blob(1 << 20, 10 + i)).collect();
    let by_path: Vec<(String, Vec<u8>)> = blobs.iter().map(|b| (sha256(b), b.clone())).collect();
    let table = by_path.clone();
    let up = FakeUpstream::start(move |s: Seen| {
        let found = table
            .iter()
            .find(|(d, _)| s.path.ends_with(d))
            .map(|(_, b)| b.clone());
        async move {
            let b = found.unwrap_or_default();
            let len = b.len();
            slow_body(b, Duration::ZERO, len, None)
        }
    })
    .await;
    let dir = tempfile::tempdir().unwrap();
    let proxy = proxy_in(
        dir.path(),
        &up,
        "storage: { filesystem: { max_bytes: 3.5MiB } }",
    )
    .await;
    for (i, (digest, _)) in by_path.iter().enumerate() {
        let (status, _) = get(&format!("{}/v2/app/blobs/{digest}", proxy.url))
            .await
            .unwrap();
        assert_eq!(status, 200);
        if i == 1 {
            // The first blob is used again: the second is now the least recently used.
            get(&format!("{}/v2/app/blobs/{}", proxy.url, by_path[0].0))
                .await
                .unwrap();
        }
    }
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while stored(dir.path(), &by_path[1].0).exists() && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(
        !stored(dir.path(), &by_path[1].0).exists(),
        "least recently used evicted"
    );
    for i in [0, 2, 3] {
        assert!(stored(dir.path(), &by_path[i].0).exists(), "blob {i} kept");
    }
    let metrics = proxy.metrics().await;
    assert!(
        metrics.contains("portcullis_store_evictions_total 1"),
        "{metrics}"
    );
    assert!(
        metrics.contains(&format!("portcullis_store_bytes {}", 3 << 20)),
        "{metrics}"
    );
}

#[tokio::test]
async fn a_stored_blob_is_served_for_another_repository_only_once_its_upstream_confirms_it() {
    let bytes = blob(100_000, 5);
    let digest = sha256(&bytes);
    let b2 = bytes.clone();
    let up = FakeUpstream::start(move |s: Seen| {
        let bytes = b2.clone();
        async move {
            if s.path.starts_with("/v2/private/") {
                let len = bytes.len();
                return if s.method == Method::HEAD {
                    respond(StatusCode::OK, &[("content-length", &len.to_string())], "")
                } else {
                    slow_body(bytes, Duration::ZERO, len, None)
                };
            }
            if s.path.starts_with("/v2/public/") && s.method == Method::HEAD {
                return respond(StatusCode::OK, &[], "");
            }
            crate::fake::oci_error(StatusCode::NOT_FOUND, "BLOB_UNKNOWN")
        }
    })
    .await;
    let dir = tempfile::tempdir().unwrap();
    let proxy = proxy_in(dir.path(), &up, "").await;
    let (status, _) = get(&format!("{}/v2/private/app/blobs/{digest}", proxy.url))
        .await
        .unwrap();
    assert_eq!(status, 200);
    assert!(stored(dir.path(), &digest).exists());

    // Another repository whose upstream does not have it: not served from the store.
    for method in [Method::GET, Method::HEAD] {
        let resp = client()
            .request(
                method.clone(),
                format!("{}/v2/other/app/blobs/{digest}", proxy.url),
            )
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 404, "{method}");
        if method == Method::GET {
            let (_, code, _) = error_code(resp).await;
            assert_eq!(code, "BLOB_UNKNOWN");
        }
    }
    // One whose upstream confirms it with a HEAD: served from the store, no GET upstream.
    let (status, body) = get(&format!("{}/v2/public/app/blobs/{digest}", proxy.url))
        .await
        .unwrap();
    assert_eq!((status, body.as_ref()), (200, bytes.as_slice()));
    let public: Vec<_> = up
        .requests()
        .into_iter()
        .filter(|s| s.path.starts_with("/v2/public/"))
        .collect();
    assert_eq!(public.len(), 1);
    assert_eq!(public[0].method, Method::HEAD);
    // Confirmed once, remembered: no second HEAD.
    get(&format!("{}/v2/public/app/blobs/{digest}", proxy.url))
        .await
        .unwrap();
    assert_eq!(up.count("/v2/public/"), 1);
    assert_eq!(blob_gets(&up, &digest), 1);
}

#[tokio::test]
async fn a_corrupt_stored_file_is_cut_off_removed_and_fetched_again() {
    let bytes = blob(2 << 20, 6);
    let digest = sha256(&bytes);
    let up = serving(bytes.clone(), Duration::ZERO).await;
    let dir = tempfile::tempdir().unwrap();
    let proxy = proxy_in(dir.path(), &up, "").await;
    let url = format!("{}/v2/app/blobs/{digest}", proxy.url);
    get(&url).await.unwrap();
    // Served warm once: this version of the file hashed to its digest and is not hashed again
    // until it changes. A byte flipped with the modification time put back still changes it.
    let (status, body) = get(&url).await.unwrap();
    assert_eq!((status, sha256(&body)), (200, digest.clone()));
    let file = stored(dir.path(), &digest);
    let modified = std::fs::metadata(&file).unwrap().modified().unwrap();
    let mut on_disk = std::fs::read(&file).unwrap();
    on_disk[1 << 20] ^= 0x40;
    std::fs::write(&file, &on_disk).unwrap();
    std::fs::File::options()
        .write(true)
        .open(&file)
        .unwrap()
        .set_modified(modified)
        .unwrap();
    assert_eq!(
        std::fs::metadata(&file).unwrap().modified().unwrap(),
        modified
    );

    let served = get(&url).await;
    assert!(
        served.is_err(),
        "the corrupt blob's transfer is cut: {served:?}"
    );
    assert!(!file.exists(), "removed");
    let (status, body) = get(&url).await.unwrap();
    assert_eq!((status, sha256(&body)), (200, digest.clone()));
    assert_eq!(blob_gets(&up, &digest), 2, "fetched again");
    assert_eq!(std::fs::read(&file).unwrap(), bytes);
    let metrics = proxy.metrics().await;
    assert!(
        metrics.contains("portcullis_store_corrupt_total 1"),
        "{metrics}"
    );
}

#[tokio::test]
async fn cache_verify_finds_and_removes_a_corrupt_blob_and_gc_evicts_to_the_bound() {
    let blobs: Vec<Vec<u8>> = (0..2).map(|i| blob(1 << 20, 20 + i)).collect();
    let table: Vec<(String, Vec<u8>)> = blobs.iter().map(|b| (sha256(b), b.clone())).collect();
    let t2 = table.clone();
    let up = FakeUpstream::start(move |s: Seen| {
        let b = t2
            .iter()
            .find(|(d, _)| s.path.ends_with(d))
            .map(|(_, b)| b.clone())
            .unwrap_or_default();
        async move {
            let len = b.len();
            slow_body(b, Duration::ZERO, len, None)
        }
    })
    .await;
    let dir = tempfile::tempdir().unwrap();
    let proxy = proxy_in(dir.path(), &up, "").await;
    for (d, _) in &table {
        get(&format!("{}/v2/app/blobs/{d}", proxy.url))
            .await
            .unwrap();
    }
    let file = stored(dir.path(), &table[0].0);
    let mut on_disk = std::fs::read(&file).unwrap();
    on_disk[5] ^= 1;
    std::fs::write(&file, &on_disk).unwrap();

    let config = proxy.config.clone();
    let run = |args: &[&str]| {
        std::process::Command::new(env!("CARGO_BIN_EXE_portcullis"))
            .args(args)
            .arg("--config")
            .arg(&config)
            .output()
            .unwrap()
    };
    let out = run(&["cache", "verify"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{text}");
    assert!(
        text.contains(&format!("corrupt (removed): {}", table[0].0)),
        "{text}"
    );
    assert!(text.contains("checked 2 blobs"), "{text}");
    assert!(!file.exists());
    let out = run(&["cache", "verify"]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );

    // A lower bound in the file: gc evicts down to it.
    let yaml = std::fs::read_to_string(&config).unwrap()
        + "storage: { filesystem: { max_bytes: 1000 } }\n";
    std::fs::write(&config, yaml).unwrap();
    let out = run(&["cache", "gc"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{text}");
    assert!(text.contains("0 blobs (0 bytes) stored"), "{text}");
    assert!(!stored(dir.path(), &table[1].0).exists());
}
