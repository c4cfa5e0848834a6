//! Configuration reload while serving: each request decided under one configuration while
//! reloads swap between two under load, a configuration that does not validate refused with the
//! one in force kept, a rule moved from audit to enforce refusing on the next request, a TLS
//! certificate rotated on the listener, and `watch_config` noticing a changed file.

use std::sync::Arc;
use std::time::{Duration, Instant};

use http::StatusCode;

use crate::common::fixtures::Fixtures;
use crate::common::sha256;
use crate::fake::{client, error_code, metric, oci_error, respond, FakeUpstream, Proxy};

const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
const ACCEPT: &str = "application/vnd.oci.image.manifest.v1+json";

/// A distinct, unsigned image manifest per upstream.
fn manifest(which: &str) -> Vec<u8> {
    format!(
        r#"{{"schemaVersion":2,"mediaType":"{OCI_MANIFEST}","config":{{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"sha256:{}","size":2}},"layers":[],"annotations":{{"upstream":"{which}"}}}}"#,
        "0".repeat(64)
    )
    .into_bytes()
}

/// An upstream that serves `manifest(which)` for any manifest of `team/app` by tag `v1` or by
/// its digest, and nothing else (no signatures).
async fn upstream(which: &'static str) -> FakeUpstream {
    let body = manifest(which);
    let digest = sha256(&body);
    FakeUpstream::start(move |seen| {
        let body = body.clone();
        let digest = digest.clone();
        async move {
            let wanted = [
                "/v2/team/app/manifests/v1".to_owned(),
                format!("/v2/team/app/manifests/{digest}"),
            ];
            if wanted.contains(&seen.path) {
                respond(
                    StatusCode::OK,
                    &[
                        ("content-type", OCI_MANIFEST),
                        ("docker-content-digest", digest.as_str()),
                    ],
                    body,
                )
            } else {
                oci_error(StatusCode::NOT_FOUND, "MANIFEST_UNKNOWN")
            }
        }
    })
    .await
}

/// A configuration with `fake.local` at `url` and one rule over it in `mode`.
fn config_text(url: &str, mode: &str, extra: &str) -> String {
    let f = Fixtures::SIGSTORE;
    format!(
        "listen: 127.0.0.1:0\nadmin_listen: 127.0.0.1:0\ndefault_upstream: fake.local\n\
         upstreams:\n  fake.local: {{ url: \"{url}\" }}\n\
         trusted_root: {root}\n\
         cache: {{ verdict_ttl: 1h, failure_ttl: 1h }}\n\
         policies:\n  - name: team\n    match: [\"fake.local/team/**\"]\n    mode: {mode}\n    \
         attestors:\n      - key: {{ public_key: {key} }}\n{extra}",
        root = f.path("trusted_root.json").display(),
        key = f.path("cosign.pub").display(),
    )
}

async fn pull(c: &reqwest::Client, proxy_url: &str) -> (StatusCode, Vec<u8>) {
    let resp = c
        .get(format!("{proxy_url}/v2/team/app/manifests/v1"))
        .header("accept", ACCEPT)
        .send()
        .await
        .unwrap();
    let status = StatusCode::from_u16(resp.status().as_u16()).unwrap();
    (status, resp.bytes().await.unwrap().to_vec())
}

/// Configuration A: upstream A, the rule in audit (its unsigned image is served). B: upstream B,
/// the rule in enforce (its unsigned image is refused). A request decided by a mix of the two
/// would serve B's bytes, or refuse A's digest: neither may happen while reloads swap A and B
/// under 200 concurrent pulls, and no request may fail otherwise.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn reloads_under_load_decide_every_request_under_one_configuration() {
    let (a, b) = (upstream("a").await, upstream("b").await);
    let text_a = config_text(&a.url(), "audit", "");
    let text_b = config_text(&b.url(), "enforce", "");
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("portcullis.yaml");
    std::fs::write(&path, &text_a).unwrap();
    let proxy = Arc::new(Proxy::start_file(&path, dir).await);
    let (bytes_a, digest_b) = (manifest("a"), sha256(&manifest("b")));

    let flips = {
        let proxy = proxy.clone();
        let path = path.clone();
        tokio::spawn(async move {
            for i in 0..10 {
                tokio::time::sleep(Duration::from_millis(30)).await;
                let text = if i % 2 == 0 { &text_b } else { &text_a };
                std::fs::write(&path, text).unwrap();
                proxy.server.as_ref().unwrap().reload().await.unwrap();
            }
        })
    };
    let mut pulls = Vec::new();
    for _ in 0..200 {
        let url = proxy.url.clone();
        pulls.push(tokio::spawn(async move {
            let c = client();
            let mut seen = Vec::new();
            for _ in 0..5 {
                seen.push(pull(&c, &url).await);
            }
            seen
        }));
    }
    flips.await.unwrap();
    let (mut served, mut refused) = (0, 0);
    for p in pulls {
        for (status, body) in p.await.unwrap() {
            match status {
                StatusCode::OK => {
                    assert_eq!(
                        body, bytes_a,
                        "served bytes that configuration A does not serve"
                    );
                    served += 1;
                }
                StatusCode::FORBIDDEN => {
                    let text = String::from_utf8_lossy(&body);
                    assert!(
                        text.contains(&digest_b) && text.contains("(enforce)"),
                        "a refusal that configuration B does not make: {text}"
                    );
                    refused += 1;
                }
                other => panic!(
                    "a pull failed during reloads: {other} {}",
                    String::from_utf8_lossy(&body)
                ),
            }
        }
    }
    assert!(
        served > 0 && refused > 0,
        "both configurations decided pulls: {served} served, {refused} refused"
    );
    let m = proxy.metrics().await;
    assert_eq!(
        metric(&m, r#"portcullis_config_reload_total{result="success"}"#),
        10.0,
        "{m}"
    );
}

/// A configuration that does not validate is refused: the error names the key and the file,
/// the failure is counted, and the configuration in force keeps serving.
#[tokio::test]
async fn a_bad_reload_keeps_the_configuration_in_force() {
    let a = upstream("a").await;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("portcullis.yaml");
    std::fs::write(&path, config_text(&a.url(), "audit", "")).unwrap();
    let proxy = Proxy::start_file(&path, dir).await;
    let c = client();
    assert_eq!(pull(&c, &proxy.url).await.0, StatusCode::OK);

    assert_eq!(proxy.config, path);
    std::fs::write(
        &proxy.config,
        config_text(&a.url(), "enforce", "limits: { max_manifest_bytes: 0 }\n"),
    )
    .unwrap();
    let err = proxy
        .server
        .as_ref()
        .unwrap()
        .reload()
        .await
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("key `limits.max_manifest_bytes`")
            && err.contains(&path.display().to_string()),
        "{err}"
    );
    let m = proxy.metrics().await;
    assert_eq!(
        metric(&m, r#"portcullis_config_reload_total{result="failure"}"#),
        1.0,
        "{m}"
    );
    // Still audit: the enforce of the refused file did not take effect.
    let (status, body) = pull(&c, &proxy.url).await;
    assert_eq!(status, StatusCode::OK, "{}", String::from_utf8_lossy(&body));
}

/// The verdict of an unsigned image is cached (failure_ttl 1h); moving its rule from audit to
/// enforce refuses it on the very next request: the cached verdict says "unverified", and the
/// decision is made under the rule in force.
#[tokio::test]
async fn a_rule_moved_to_enforce_refuses_on_the_next_request() {
    let a = upstream("a").await;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("portcullis.yaml");
    std::fs::write(&path, config_text(&a.url(), "audit", "")).unwrap();
    let proxy = Proxy::start_file(&path, dir).await;
    let c = client();
    for _ in 0..2 {
        assert_eq!(pull(&c, &proxy.url).await.0, StatusCode::OK);
    }
    std::fs::write(&path, config_text(&a.url(), "enforce", "")).unwrap();
    proxy.server.as_ref().unwrap().reload().await.unwrap();
    let resp = c
        .get(format!("{}/v2/team/app/manifests/v1", proxy.url))
        .header("accept", ACCEPT)
        .send()
        .await
        .unwrap();
    let (status, code, message) = error_code(resp).await;
    assert_eq!(
        (status, code.as_str()),
        (StatusCode::FORBIDDEN, "DENIED"),
        "{message}"
    );
    assert!(
        message.contains("refused by policy \"team\" (enforce): no signatures found"),
        "{message}"
    );
}

/// The certificate on the TLS listener is replaced by a reload: new connections see the new one.
#[tokio::test]
async fn a_reload_rotates_the_tls_certificate() {
    let dir = tempfile::tempdir().unwrap();
    let make = || rcgen::generate_simple_self_signed(vec!["localhost".to_owned()]).unwrap();
    let (old, new) = (make(), make());
    let write = |c: &rcgen::CertifiedKey| {
        std::fs::write(dir.path().join("tls.crt"), c.cert.pem()).unwrap();
        std::fs::write(dir.path().join("tls.key"), c.key_pair.serialize_pem()).unwrap();
    };
    write(&old);
    let path = crate::fake::write_config(
        dir.path(),
        "r.local",
        "  r.local: { url: \"http://127.0.0.1:1\" }",
        "tls: { cert: tls.crt, key: tls.key }",
    );
    let proxy = Proxy::start_file(&path, tempfile::tempdir().unwrap()).await;
    let port = proxy.url.rsplit(':').next().unwrap().to_owned();
    // A new client (so a new connection) that trusts only `cert`.
    let answers = |cert: &rcgen::CertifiedKey| {
        let client = reqwest::Client::builder()
            .tls_built_in_root_certs(false)
            .add_root_certificate(
                reqwest::Certificate::from_pem(cert.cert.pem().as_bytes()).unwrap(),
            )
            .resolve("localhost", format!("127.0.0.1:{port}").parse().unwrap())
            .no_proxy()
            .build()
            .unwrap();
        let url = format!("https://localhost:{port}/v2/");
        async move {
            client
                .get(url)
                .send()
                .await
                .is_ok_and(|r| r.status() == 200)
        }
    };
    assert!(answers(&old).await && !answers(&new).await);
    write(&new);
    proxy.server.as_ref().unwrap().reload().await.unwrap();
    assert!(answers(&new).await, "the new certificate is served");
    assert!(
        !answers(&old).await,
        "the old certificate is no longer served"
    );
}

/// With `watch_config: true` a changed file is reloaded without a signal.
#[tokio::test]
async fn watch_config_reloads_a_changed_file() {
    let a = upstream("a").await;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("portcullis.yaml");
    std::fs::write(
        &path,
        config_text(&a.url(), "audit", "watch_config: true\n"),
    )
    .unwrap();
    let proxy = Proxy::start_file(&path, dir).await;
    let c = client();
    assert_eq!(pull(&c, &proxy.url).await.0, StatusCode::OK);
    std::fs::write(
        &path,
        config_text(&a.url(), "enforce", "watch_config: true\n"),
    )
    .unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    while pull(&c, &proxy.url).await.0 != StatusCode::FORBIDDEN {
        assert!(
            Instant::now() < deadline,
            "the changed file was not reloaded"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let m = proxy.metrics().await;
    assert_eq!(
        metric(&m, r#"portcullis_config_reload_total{result="success"}"#),
        1.0,
        "{m}"
    );
}

/// `SIGHUP` to the real binary reloads: a refused configuration is logged with its key and
/// file and changes nothing, a good one is put in force.
#[tokio::test]
async fn sighup_reloads_the_running_binary() {
    let a = upstream("a").await;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("portcullis.yaml");
    std::fs::write(&path, config_text(&a.url(), "audit", "")).unwrap();
    let proxy = crate::common::ProxyProcess::start(&path);
    let url = proxy.url();
    let c = client();
    assert_eq!(pull(&c, &url).await.0, StatusCode::OK);
    let hup = || {
        let ok = std::process::Command::new("kill")
            .args(["-HUP", &proxy.child.id().to_string()])
            .status()
            .unwrap()
            .success();
        assert!(ok, "kill -HUP");
    };
    let wait_for = |needle: &str| {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let line = proxy
                .logs
                .recv_timeout(left)
                .unwrap_or_else(|_| panic!("no log line with {needle:?}"));
            if line.contains(needle) {
                return line;
            }
        }
    };
    std::fs::write(
        &path,
        config_text(&a.url(), "enforce", "limits: { max_manifest_bytes: 0 }\n"),
    )
    .unwrap();
    hup();
    let line = wait_for("configuration reload refused");
    assert!(
        line.contains("limits.max_manifest_bytes") && line.contains(&path.display().to_string()),
        "{line}"
    );
    assert_eq!(
        pull(&c, &url).await.0,
        StatusCode::OK,
        "the refused file changed nothing"
    );
    std::fs::write(&path, config_text(&a.url(), "enforce", "")).unwrap();
    hup();
    wait_for("configuration reloaded");
    assert_eq!(pull(&c, &url).await.0, StatusCode::FORBIDDEN);
}
