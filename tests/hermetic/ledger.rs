//! Hermetic tests of the pull ledger: the proxy in process (SQLite under the test's state_dir)
//! in front of a fake registry that serves one unsigned manifest under every repository, and
//! answers signature lookups of `team/flaky` with 503. Reports are read back from the admin
//! API and from `portcullis audit`.

use std::time::Duration;

use bytes::Bytes;
use http::StatusCode;

use crate::fake::{client, metric, oci_error, respond, FakeUpstream, Proxy};

const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";

pub(crate) fn manifest() -> Bytes {
    Bytes::from_static(br#"{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a","size":2},"layers":[]}"#)
}

pub(crate) async fn upstream() -> FakeUpstream {
    FakeUpstream::start(|s| async move {
        let bytes = manifest();
        let digest = crate::common::sha256(&bytes);
        let path = s.path.as_str();
        let lookup = path.contains("/referrers/") || path.contains("/manifests/sha256-");
        if lookup && path.starts_with("/v2/team/flaky/") {
            return oci_error(StatusCode::SERVICE_UNAVAILABLE, "UNAVAILABLE");
        }
        let manifest =
            path.ends_with("/manifests/v1") || path.ends_with(&format!("/manifests/{digest}"));
        let blob = path.ends_with(&format!("/blobs/{digest}"));
        if (manifest && !lookup) || blob {
            let len = bytes.len().to_string();
            let media_type = if blob {
                "application/octet-stream"
            } else {
                OCI_MANIFEST
            };
            let headers = [
                ("content-type", media_type),
                ("docker-content-digest", digest.as_str()),
                ("content-length", len.as_str()),
            ];
            let body = if s.method == http::Method::HEAD {
                Bytes::new()
            } else {
                bytes
            };
            let mut r = respond(StatusCode::OK, &headers, body);
            r.headers_mut()
                .insert("content-length", len.parse().unwrap());
            return r;
        }
        oci_error(StatusCode::NOT_FOUND, "MANIFEST_UNKNOWN")
    })
    .await
}

/// `team/*` under audit, `prod/*` under enforce, both with one key attestor nothing signs.
pub(crate) fn rules() -> String {
    let key = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/keys/p256.pub");
    format!(
        "policies:
  - name: team
    match: [\"fake.local/team/*\"]
    mode: audit
    attestors: [{{ key: {{ public_key: {key} }} }}]
  - name: prod
    match: [\"fake.local/prod/*\"]
    mode: enforce
    attestors: [{{ key: {{ public_key: {key} }} }}]
"
    )
}

pub(crate) async fn flush(proxy: &Proxy) {
    let server = proxy.server.as_ref().unwrap();
    assert!(
        server.ledger.flush(Duration::from_secs(20)).await,
        "ledger flush"
    );
}

async fn audit_json(proxy: &Proxy) -> serde_json::Value {
    let resp = client()
        .get(format!("{}/api/v1/audit?since=7d", proxy.admin))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    resp.json().await.unwrap()
}

fn entry<'a>(list: &'a serde_json::Value, image: &str) -> &'a serde_json::Value {
    list.as_array()
        .unwrap()
        .iter()
        .find(|e| e["image"] == image)
        .unwrap_or_else(|| panic!("{image} not in {list:#}"))
}

pub(crate) async fn status(req: reqwest::RequestBuilder) -> u16 {
    req.header("accept", OCI_MANIFEST)
        .header("user-agent", "ledger-test/1")
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

#[tokio::test]
async fn every_route_and_addressing_form_records_and_head_plus_get_counts_once() {
    let up = upstream().await;
    let proxy = Proxy::in_front_of(&up, &rules()).await;
    let digest = crate::common::sha256(&manifest());
    let c = client();
    let base = &proxy.url;

    // team/app (audit): plain, prefix and ns forms, by tag and by digest; containerd's HEAD by
    // tag followed by the GET by digest counts once.
    for url in [
        format!("{base}/v2/team/app/manifests/v1"),
        format!("{base}/v2/fake.local/team/app/manifests/v1"),
        format!("{base}/v2/team/app/manifests/v1?ns=fake.local"),
        format!("{base}/v2/team/app/manifests/{digest}"),
    ] {
        assert_eq!(status(c.get(&url)).await, 200, "{url}");
    }
    assert_eq!(
        status(c.head(format!("{base}/v2/team/app/manifests/v1?ns=fake.local"))).await,
        200
    );
    assert_eq!(
        status(c.get(format!(
            "{base}/v2/team/app/manifests/{digest}?ns=fake.local"
        )))
        .await,
        200
    );

    // prod/api (enforce): a refused HEAD is the client's only request, so it counts; so do a
    // refused GET and the manifest asked for on the blob route.
    assert_eq!(
        status(c.head(format!("{base}/v2/prod/api/manifests/v1?ns=fake.local"))).await,
        403
    );
    assert_eq!(
        status(c.get(format!("{base}/v2/fake.local/prod/api/manifests/{digest}"))).await,
        403
    );
    assert_eq!(
        status(c.get(format!("{base}/v2/prod/api/blobs/{digest}"))).await,
        403
    );

    // team/flaky (audit): the signature lookup fails; served, recorded as a fault.
    assert_eq!(
        status(c.get(format!("{base}/v2/team/flaky/manifests/v1"))).await,
        200
    );

    flush(&proxy).await;
    let report = audit_json(&proxy).await;
    let app = entry(&report["let_through"], "fake.local/team/app");
    assert_eq!(app["digest"], digest.as_str());
    assert_eq!(app["rule"], "team");
    assert_eq!(app["mode"], "audit");
    assert_eq!(app["verdict"], "unverified");
    assert_eq!(app["finding"], "unsigned");
    assert_eq!(app["tags"], serde_json::json!(["v1"]));
    assert_eq!(app["pulls"], 5, "{app:#}");
    assert_eq!(app["clients"], 1);
    assert_eq!(
        report["let_through"].as_array().unwrap().len(),
        1,
        "{report:#}"
    );

    let api = entry(&report["refused"], "fake.local/prod/api");
    assert_eq!(api["rule"], "prod");
    assert_eq!(api["admission"], "refused");
    assert_eq!(api["pulls"], 3, "{api:#}");
    assert_eq!(api["tags"], serde_json::json!(["v1"]));

    let flaky = entry(&report["faults"], "fake.local/team/flaky");
    assert_eq!(flaky["verdict"], "error");
    assert_eq!(flaky["admission"], "served");
    assert_eq!(flaky["pulls"], 1);

    // The image view: its digest and its client (address and user agent).
    let view: serde_json::Value = client()
        .get(format!("{}/api/v1/images/fake.local/team/app", proxy.admin))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(view["digests"][0]["digest"], digest.as_str());
    assert_eq!(view["clients"][0]["address"], "127.0.0.1");
    assert_eq!(view["clients"][0]["user_agent"], "ledger-test/1");
    assert_eq!(view["clients"][0]["pulls"], 5);
}

#[tokio::test]
async fn ten_thousand_warm_hits_aggregate_into_one_entry() {
    let up = upstream().await;
    let proxy = Proxy::in_front_of(&up, &rules()).await;
    let digest = crate::common::sha256(&manifest());
    let url = format!("{}/v2/team/warm/manifests/{digest}", proxy.url);
    let c = client();
    let tasks: Vec<_> = (0..8)
        .map(|_| {
            let (c, url) = (c.clone(), url.clone());
            tokio::spawn(async move {
                for _ in 0..1250 {
                    assert_eq!(status(c.get(&url)).await, 200);
                }
            })
        })
        .collect();
    for t in tasks {
        t.await.unwrap();
    }
    flush(&proxy).await;
    let report = audit_json(&proxy).await;
    let warm = entry(&report["let_through"], "fake.local/team/warm");
    assert_eq!(warm["pulls"], 10_000);
    let metrics = proxy.metrics().await;
    assert_eq!(
        metric(&metrics, "portcullis_ledger_written_records_total"),
        10_000.0
    );
    assert_eq!(
        metric(&metrics, "portcullis_ledger_dropped_records_total"),
        0.0
    );
    // The manifest was fetched once; the rest were warm hits.
    assert_eq!(up.count(&format!("/manifests/{digest}")), 1);
}

#[tokio::test]
async fn ledger_enabled_false_serves_the_same_and_records_nothing() {
    let up = upstream().await;
    let config = format!("{}ledger: {{ enabled: false }}\n", rules());
    let proxy = Proxy::in_front_of(&up, &config).await;
    let digest = crate::common::sha256(&manifest());
    let c = client();
    let served = format!("{}/v2/team/quiet/manifests/{digest}", proxy.url);
    let refused = format!("{}/v2/prod/quiet/manifests/{digest}", proxy.url);
    for _ in 0..3 {
        assert_eq!(status(c.get(&served)).await, 200);
        assert_eq!(status(c.get(&refused)).await, 403);
    }
    flush(&proxy).await;
    let report = audit_json(&proxy).await;
    for list in ["let_through", "refused", "faults"] {
        assert_eq!(report[list], serde_json::json!([]), "{list}: {report:#}");
    }
    let metrics = proxy.metrics().await;
    assert_eq!(
        metric(&metrics, "portcullis_ledger_written_records_total"),
        0.0
    );
}

#[tokio::test]
async fn a_database_that_goes_away_drops_records_and_recording_resumes() {
    let up = upstream().await;
    let dir = tempfile::tempdir().unwrap();
    let path = crate::fake::write_config(
        dir.path(),
        "fake.local",
        &format!("  fake.local: {{ url: \"{}\" }}", up.url()),
        &rules(),
    );
    let db_path = dir.path().join("state/portcullis.db");
    let proxy = Proxy::start_file(&path, dir).await;
    let url = format!("{}/v2/team/app/manifests/v1", proxy.url);
    let c = client();
    assert_eq!(status(c.get(&url)).await, 200);
    flush(&proxy).await;

    // Another connection holds the write lock: every batch now fails after the busy timeout.
    let blocker = rusqlite::Connection::open(&db_path).unwrap();
    blocker.execute_batch("BEGIN EXCLUSIVE").unwrap();
    let started = std::time::Instant::now();
    for _ in 0..20 {
        assert_eq!(status(c.get(&url)).await, 200);
    }
    // Pulls are not slowed by the database: 20 warm pulls take far less than one busy timeout.
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "{:?}",
        started.elapsed()
    );
    flush(&proxy).await;
    let metrics = proxy.metrics().await;
    let dropped = metric(
        &metrics,
        "portcullis_ledger_dropped_records_total{reason=\"database\"}",
    );
    assert!(dropped >= 20.0, "dropped {dropped}\n{metrics}");

    blocker.execute_batch("COMMIT").unwrap();
    drop(blocker);
    for _ in 0..3 {
        assert_eq!(status(c.get(&url)).await, 200);
    }
    flush(&proxy).await;
    let report = audit_json(&proxy).await;
    let app = entry(&report["let_through"], "fake.local/team/app");
    // The first pull and the three after the database came back; the twenty in between lost.
    assert_eq!(app["pulls"], 4, "{app:#}");
}

/// Runs the real binary's `audit` with `args`; its standard output.
async fn audit_command(args: Vec<String>) -> String {
    tokio::task::spawn_blocking(move || {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_portcullis"))
            .arg("audit")
            .args(&args)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "portcullis audit {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    })
    .await
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn audit_command_reports_and_what_if_lists_what_a_new_config_changes() {
    let up = upstream().await;
    let dir = tempfile::tempdir().unwrap();
    let upstreams = format!("  fake.local: {{ url: \"{}\" }}", up.url());
    let path = crate::fake::write_config(dir.path(), "fake.local", &upstreams, &rules());
    let proposed_dir = dir.path().join("proposed");
    std::fs::create_dir_all(&proposed_dir).unwrap();
    // The proposal swaps the modes: team enforced, prod audited.
    let swapped = rules()
        .replace("mode: audit", "mode: MODE_A")
        .replace("mode: enforce", "mode: audit")
        .replace("mode: MODE_A", "mode: enforce");
    let proposed = crate::fake::write_config(
        &proposed_dir,
        "fake.local",
        &upstreams,
        &format!(
            "state_dir: {}\n{swapped}",
            dir.path().join("state").display()
        ),
    );
    let config = path.display().to_string();
    let proxy = Proxy::start_file(&path, dir).await;
    let digest = crate::common::sha256(&manifest());
    let c = client();
    assert_eq!(
        status(c.get(format!("{}/v2/team/app/manifests/v1", proxy.url))).await,
        200
    );
    assert_eq!(
        status(c.get(format!("{}/v2/prod/api/manifests/v1", proxy.url))).await,
        403
    );
    flush(&proxy).await;

    let text = audit_command(vec!["--config".into(), config.clone()]).await;
    assert!(
        text.contains("rule team (audit): 1 image is unsigned"),
        "{text}"
    );
    assert!(
        text.contains("[ ] fake.local/team/app: unsigned; 1 pull(s) from 1 client(s)"),
        "{text}"
    );
    assert!(
        text.contains(&format!("{digest} (v1): 1 pull(s)")),
        "{text}"
    );
    assert!(text.contains("reason: no signatures found"), "{text}");
    assert!(
        text.contains("rule prod (enforce): 1 image is unsigned"),
        "{text}"
    );

    let json = audit_command(vec![
        "--config".into(),
        config.clone(),
        "--rule".into(),
        "prod".into(),
        "--json".into(),
    ])
    .await;
    let v: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert_eq!(v["let_through"].as_array().unwrap().len(), 0, "{v:#}");
    assert_eq!(v["refused"][0]["image"], "fake.local/prod/api");
    assert_eq!(v["refused"][0]["digest"], digest.as_str());

    let json = audit_command(vec![
        "--config".into(),
        config,
        "--what-if".into(),
        proposed.display().to_string(),
        "--json".into(),
    ])
    .await;
    let v: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert_eq!(v["digests"], 2, "{v:#}");
    assert_eq!(v["now_refused"][0]["image"], "fake.local/team/app", "{v:#}");
    assert_eq!(v["now_refused"][0]["after"]["rule"], "team");
    assert_eq!(v["now_refused"][0]["after"]["mode"], "enforce");
    assert_eq!(v["now_refused"][0]["reasons"][0], "no signatures found");
    assert_eq!(v["now_served"][0]["image"], "fake.local/prod/api", "{v:#}");
    assert_eq!(v["now_served"][0]["before"]["admission"], "refused");
    assert!(v["failed"].as_array().unwrap().is_empty(), "{v:#}");
}
