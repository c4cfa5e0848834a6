//! Blob streaming keeps the proxy's memory flat: a 256 MiB blob goes through the real
//! `portcullis` binary, cold and then warm from the content store, while its peak RSS (VmHWM)
//! stays under 64 MiB.

use crate::common::ProxyProcess;
use crate::fake::FakeUpstream;
use bytes::Bytes;
use futures_util::StreamExt;
use sha2::Digest as _;

const BLOB_BYTES: usize = 256 * 1024 * 1024;
const CHUNK: usize = 64 * 1024;
const RSS_LIMIT_KIB: u64 = 64 * 1024;

/// Distinct chunk patterns, a prime number of them, cycled: a reordered or dropped chunk changes
/// the digest.
const PATTERNS: usize = 61;

fn patterns() -> Vec<Bytes> {
    (0..PATTERNS)
        .map(|i| {
            let v: Vec<u8> = (0..CHUNK).map(|j| ((i * 31) ^ (j * 7)) as u8).collect();
            Bytes::from(v)
        })
        .collect()
}

/// Peak resident set size (VmHWM) of the proxy process, in KiB.
fn peak_rss_kib(proxy: &ProxyProcess) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{}/status", proxy.child.id())).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmHWM in /proc/<pid>/status")
}

#[tokio::test]
async fn large_blob_streams_with_flat_memory() {
    let chunks = BLOB_BYTES / CHUNK;
    let patterns = patterns();
    let mut expected = sha2::Sha256::new();
    for i in 0..chunks {
        expected.update(&patterns[i % PATTERNS]);
    }
    let expected = format!("sha256:{}", hex::encode(expected.finalize()));

    let up = FakeUpstream::start(move |_| {
        let patterns = patterns.clone();
        async move {
            let frames = futures_util::stream::iter(0..chunks).map(move |i| {
                Ok::<_, portcullis::upstream::body::BoxError>(http_body::Frame::data(
                    patterns[i % PATTERNS].clone(),
                ))
            });
            let mut r = http::Response::new(http_body_util::BodyExt::boxed(
                http_body_util::StreamBody::new(frames),
            ));
            r.headers_mut()
                .insert("content-length", BLOB_BYTES.to_string().parse().unwrap());
            r
        }
    })
    .await;
    let dir = tempfile::tempdir().unwrap();
    let config = crate::fake::write_config(
        dir.path(),
        "fake.local",
        &format!("  fake.local: {{ url: \"{}\" }}", up.url()),
        "",
    );
    let proxy = ProxyProcess::start(&config);
    let baseline_kib = peak_rss_kib(&proxy);

    // Cold (streamed while it is written to the content store and hashed), then warm (read
    // from the store, hashed again as it is served).
    for pass in ["cold", "warm"] {
        let resp = crate::fake::client()
            .get(format!("{}/v2/team/app/blobs/{expected}", proxy.url()))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 200);
        assert_eq!(
            resp.headers()["content-length"],
            BLOB_BYTES.to_string().as_str()
        );
        let started = std::time::Instant::now();
        let mut got = sha2::Sha256::new();
        let mut n = 0usize;
        let mut stream = resp.bytes_stream();
        while let Some(b) = stream.next().await {
            let b = b.unwrap();
            n += b.len();
            got.update(&b);
        }
        let secs = started.elapsed().as_secs_f64();
        assert_eq!(n, BLOB_BYTES, "{pass}");
        assert_eq!(
            format!("sha256:{}", hex::encode(got.finalize())),
            expected,
            "{pass}"
        );

        let peak_kib = peak_rss_kib(&proxy);
        println!(
            "{pass}: streamed {} MiB in {secs:.2}s ({:.0} MiB/s); proxy peak RSS {} KiB (at start {} KiB)",
            BLOB_BYTES >> 20,
            (BLOB_BYTES >> 20) as f64 / secs,
            peak_kib,
            baseline_kib
        );
        assert!(
            peak_kib < RSS_LIMIT_KIB,
            "proxy peak RSS {peak_kib} KiB exceeds {RSS_LIMIT_KIB} KiB while streaming ({pass})"
        );
    }
    assert_eq!(up.total(), 1, "the warm pass asked no upstream");
}
