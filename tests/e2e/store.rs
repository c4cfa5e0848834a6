//! The content store with real parts: skopeo and containerd pull an image twice through the
//! real binary, the second time with docker-registry stopped, and get the same bytes; two portcullis processes
//! share one bucket of a real S3-compatible server (moto, PyPI `moto[server]`), and the second
//! serves a blob the first filled without asking any upstream.
//!
//! The S3 server: `PORTCULLIS_TEST_S3_ENDPOINT` (scripts/test.sh starts one moto server for
//! the whole run and sets it); when unset, this test starts its own `moto_server`, which must
//! then be on PATH (a missing one fails the test unless `PORTCULLIS_SKIP_E2E=1`).

use std::process::Command;
use std::time::{Duration, Instant};

use crate::common::{sha256, write_config, ProxyProcess};
use crate::harness::{
    build_layout, free_port, http_client, metric_sum, metrics, mirror_hosts_dir, prerequisites,
    push_blob, push_layout, Containerd, Daemon, Registry, Skopeo, START_TIMEOUT,
};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn skopeo_pulls_the_same_bytes_again_with_the_upstream_stopped() {
    if !prerequisites(&["docker-registry", "skopeo"], false) {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let registry = Registry::start(&tmp.path().join("registry"), None).await;
    let reg = registry.addr.clone();
    let skopeo = Skopeo::new(tmp.path());
    push_layout(&skopeo, &build_layout(tmp.path()), &reg, None);
    let direct = skopeo.copy_to_dir(
        &format!("{reg}/company/app:v1"),
        &tmp.path().join("direct"),
        None,
    );

    let proxy_dir = tmp.path().join("proxy");
    std::fs::create_dir_all(&proxy_dir).unwrap();
    let upstreams =
        format!("  registry.local: {{ url: \"http://{reg}\", serve_stale_tags: true }}");
    let proxy = ProxyProcess::start(&write_config(&proxy_dir, "registry.local", &upstreams, ""));
    let px = proxy.api.to_string();
    let first = skopeo.copy_to_dir(
        &format!("{px}/company/app:v1"),
        &tmp.path().join("first"),
        None,
    );
    assert!(
        first == direct,
        "the first pull through the proxy equals a direct pull"
    );

    drop(registry);
    let client = http_client();
    let before = metrics(&client, proxy.admin).await;
    let second = skopeo.copy_to_dir(
        &format!("{px}/company/app:v1"),
        &tmp.path().join("second"),
        None,
    );
    assert!(
        second == direct,
        "the second pull, upstream stopped, equals a direct pull"
    );
    let after = metrics(&client, proxy.admin).await;
    let blob_fetches =
        |m: &str| metric_sum(m, "portcullis_upstream_requests_total", &[("kind", "blob")]);
    assert_eq!(
        blob_fetches(&after),
        blob_fetches(&before),
        "no blob was asked of the (stopped) upstream"
    );
    assert!(
        metric_sum(
            &after,
            "portcullis_store_requests_total",
            &[("result", "hit")]
        ) >= 2.0,
        "the layer and the config came from the store"
    );
}

/// A moto S3 server for this test when the suite did not start one.
struct S3 {
    endpoint: String,
    _daemon: Option<Daemon>,
}

async fn s3_server(dir: &std::path::Path) -> Option<S3> {
    if let Ok(endpoint) = std::env::var("PORTCULLIS_TEST_S3_ENDPOINT") {
        return Some(S3 {
            endpoint,
            _daemon: None,
        });
    }
    if !prerequisites(&["moto_server"], false) {
        return None;
    }
    let port = free_port();
    let daemon = Daemon::spawn(
        "moto_server",
        Command::new("moto_server").args(["-H", "127.0.0.1", "-p", &port.to_string()]),
        dir.join("moto.log"),
    );
    let endpoint = format!("http://127.0.0.1:{port}");
    let deadline = Instant::now() + START_TIMEOUT * 4;
    while http_client().get(&endpoint).send().await.is_err() {
        assert!(
            Instant::now() < deadline,
            "moto_server not ready at {endpoint}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    Some(S3 {
        endpoint,
        _daemon: Some(daemon),
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_processes_share_one_bucket_and_the_second_asks_no_upstream() {
    if !prerequisites(&["docker-registry"], false) {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let Some(s3) = s3_server(tmp.path()).await else {
        return;
    };
    let client = http_client();
    let bucket = format!("portcullis-test-{}", free_port());
    let made = client
        .put(format!("{}/{bucket}", s3.endpoint))
        .send()
        .await
        .unwrap();
    assert!(
        made.status().is_success(),
        "creating bucket {bucket}: {}",
        made.status()
    );

    let registry = Registry::start(&tmp.path().join("registry"), None).await;
    let reg = registry.addr.clone();
    // 12 MiB: more than one multipart part.
    let bytes: Vec<u8> = (0..12 << 20)
        .map(|i: usize| (i % 251) as u8 ^ (i >> 16) as u8)
        .collect();
    let digest = sha256(&bytes);
    push_blob(&client, &reg, "company/app", &bytes).await;

    let storage = format!(
        "storage:\n  s3: {{ endpoint: \"{}\", bucket: {bucket}, prefix: shared/, region: us-east-1, \
         access_key_id_env: TEST_S3_KEY, secret_access_key_env: TEST_S3_SECRET, path_style: true }}\n",
        s3.endpoint
    );
    let env = [
        ("TEST_S3_KEY", "testing"),
        ("TEST_S3_SECRET", "testing-secret"),
    ];
    let start = |name: &str| {
        let dir = tmp.path().join(name);
        std::fs::create_dir_all(&dir).unwrap();
        let upstreams = format!("  registry.local: {{ url: \"http://{reg}\" }}");
        ProxyProcess::start_with_env(
            &write_config(&dir, "registry.local", &upstreams, &storage),
            &env,
        )
    };
    let first = start("first");
    let second = start("second");

    let url = |p: &ProxyProcess| format!("{}/v2/company/app/blobs/{digest}", p.url());
    let got = client.get(url(&first)).send().await.unwrap();
    assert_eq!(got.status().as_u16(), 200);
    assert_eq!(sha256(&got.bytes().await.unwrap()), digest);

    let got = client.get(url(&second)).send().await.unwrap();
    assert_eq!(got.status().as_u16(), 200);
    assert!(
        got.bytes().await.unwrap() == bytes,
        "the second process serves the same bytes"
    );
    let m = metrics(&client, second.admin).await;
    assert_eq!(
        metric_sum(&m, "portcullis_upstream_requests_total", &[]),
        0.0,
        "the second process asked no upstream (not even a HEAD):\n{m}"
    );
    assert_eq!(
        metric_sum(&m, "portcullis_store_requests_total", &[("result", "hit")]),
        1.0
    );
    // A range of it, from the bucket.
    let part = client
        .get(url(&second))
        .header("range", "bytes=8388600-8388615")
        .send()
        .await
        .unwrap();
    assert_eq!(part.status().as_u16(), 206);
    assert!(part.bytes().await.unwrap() == bytes[8388600..8388616]);
}

/// containerd pulls through the proxy, then a second containerd (empty content store) pulls the
/// same image after docker-registry was stopped: the same content, blobs from the store.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn containerd_pulls_again_with_the_upstream_stopped() {
    if !prerequisites(&["docker-registry", "skopeo", "containerd", "ctr"], true) {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let registry = Registry::start(&tmp.path().join("registry"), None).await;
    let reg = registry.addr.clone();
    push_layout(
        &Skopeo::new(tmp.path()),
        &build_layout(tmp.path()),
        &reg,
        None,
    );
    let proxy_dir = tmp.path().join("proxy");
    std::fs::create_dir_all(&proxy_dir).unwrap();
    let upstreams =
        format!("  registry.local: {{ url: \"http://{reg}\", serve_stale_tags: true }}");
    let proxy = ProxyProcess::start(&write_config(&proxy_dir, "registry.local", &upstreams, ""));
    let hosts = mirror_hosts_dir(&tmp.path().join("hosts"), "registry.local", proxy.api);
    let image = "registry.local/company/app:v1";

    let first = Containerd::start(&tmp.path().join("containerd-1")).await;
    let out = first.pull(&hosts, image, &[]);
    assert!(out.status.success(), "first pull:\n{}", out.text());
    let pulled = first.content_digests();
    drop(first);

    drop(registry);
    let client = http_client();
    let before = metrics(&client, proxy.admin).await;
    let second = Containerd::start(&tmp.path().join("containerd-2")).await;
    let out = second.pull(&hosts, image, &[]);
    assert!(
        out.status.success(),
        "second pull, upstream stopped:\n{}",
        out.text()
    );
    assert_eq!(second.content_digests(), pulled, "the same content");
    let after = metrics(&client, proxy.admin).await;
    let hits = |m: &str| metric_sum(m, "portcullis_store_requests_total", &[("result", "hit")]);
    assert!(
        hits(&after) - hits(&before) >= 2.0,
        "config and layer from the store:\n{after}"
    );
}
