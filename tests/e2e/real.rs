//! End-to-end tests against real third-party parts: CNCF distribution (`docker-registry`) as the
//! upstream, `skopeo` and containerd (`ctr`) as clients, the real `portcullis` binary in between.
//!
//! Each test starts its own registry (and containerd) on 127.0.0.1 in a temporary directory, pushes
//! a small OCI image built here by hand (one tar layer, config, manifest; plus a two-platform
//! index), then pulls it through the proxy in every addressing form and proves that the proxy
//! serves exactly the bytes the registry holds.
//!
//! Needs `docker-registry`, `skopeo`, `containerd` and `ctr` on PATH (Debian packages
//! `docker-registry skopeo containerd`), and root for containerd. A missing tool is a test failure,
//! unless `PORTCULLIS_SKIP_E2E=1` is set, which turns it into a skip. Every process started here
//! is killed by PID when its guard drops; every wait has a deadline.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::common::{sha256, write_config, ProxyProcess};
use crate::harness::{
    assert_same_files, blob_digests, build_layout, direct_manifest, fetch, free_port, get,
    http_client, metric_sum, metrics, mirror_hosts_dir, prerequisites, push_layout, push_manifest,
    run, run_ok, Containerd, Daemon, Fetched, Registry, Skopeo, MANIFEST_ACCEPT, OCI_INDEX,
    OCI_MANIFEST, START_TIMEOUT,
};

/// Upstream credentials for the basic-auth test. The htpasswd line is a committed fixture so the
/// test needs no bcrypt tool at run time; it was generated with
/// `python3 -c 'import bcrypt; print(bcrypt.hashpw(b"e2e-upstream-Pw-4f9c21d7", bcrypt.gensalt(rounds=5)).decode())'`
/// (PyPI bcrypt 5.0.0). distribution accepts `$2b$` hashes.
const UPSTREAM_USER: &str = "e2e-user";
const UPSTREAM_PASSWORD: &str = "e2e-upstream-Pw-4f9c21d7";
const UPSTREAM_BCRYPT: &str = "$2b$05$nwRJ/X4WpHHz.Y4WXWvAAuXq9nU5Z5ur/ykatiaLR9eWQ2tj7mI4a";

/// Uploads a blob (POST, then PUT with `?digest=`); returns its descriptor.
async fn push_blob(
    client: &reqwest::Client,
    registry: &str,
    repo: &str,
    media_type: &str,
    bytes: &[u8],
) -> Value {
    crate::harness::push_blob(client, registry, repo, bytes).await;
    let digest = sha256(bytes);
    json!({ "mediaType": media_type, "digest": digest, "size": bytes.len() })
}

const SBOM_TYPE: &str = "application/vnd.example.sbom.v1+json";

/// Attaches an artifact to `subject` the way clients do on a registry without the referrers API
/// (distribution 2.8): the artifact manifest (with `artifactType` and `subject`) by digest, and
/// the referrers tag-schema index `sha256-<hex>` listing it. Returns the artifact's descriptor.
async fn attach_referrer(
    client: &reqwest::Client,
    registry: &str,
    repo: &str,
    subject: &Fetched,
) -> Value {
    let empty = push_blob(
        client,
        registry,
        repo,
        "application/vnd.oci.empty.v1+json",
        b"{}",
    )
    .await;
    let sbom = push_blob(
        client,
        registry,
        repo,
        SBOM_TYPE,
        br#"{"packages":["busybox"]}"#,
    )
    .await;
    let subject_digest = subject.header("docker-content-digest").to_owned();
    let artifact = serde_json::to_vec(&json!({
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "artifactType": SBOM_TYPE,
        "config": empty,
        "layers": [sbom],
        "subject": { "mediaType": subject.header("content-type"), "digest": subject_digest, "size": subject.body.len() }
    }))
    .unwrap();
    let descriptor = json!({ "mediaType": OCI_MANIFEST, "digest": sha256(&artifact), "size": artifact.len(), "artifactType": SBOM_TYPE });
    push_manifest(
        client,
        registry,
        repo,
        &sha256(&artifact),
        OCI_MANIFEST,
        &artifact,
    )
    .await;
    let index = serde_json::to_vec(
        &json!({ "schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": [descriptor] }),
    )
    .unwrap();
    let tag = subject_digest.replace(':', "-");
    push_manifest(client, registry, repo, &tag, OCI_INDEX, &index).await;
    descriptor
}

/// The digests listed in a referrers answer.
fn referrer_digests(index: &[u8]) -> Vec<String> {
    let v: Value = serde_json::from_slice(index).unwrap_or_else(|e| {
        panic!(
            "referrers answer is not JSON ({e}): {}",
            String::from_utf8_lossy(index)
        )
    });
    assert_eq!(v["mediaType"], OCI_INDEX);
    v["manifests"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["digest"].as_str().unwrap().to_owned())
        .collect()
}

fn upstream_requests(text: &str, upstream: &str, kind: &str) -> f64 {
    metric_sum(
        text,
        "portcullis_upstream_requests_total",
        &[("upstream", upstream), ("kind", kind)],
    )
}

/// `portcullis serve` at debug level with every line it prints, from the very first, kept in a
/// file: the credential checks must see the start-up lines too, which `ProxyProcess::start`
/// consumes while it waits for the listening addresses.
struct LoggedProxy {
    daemon: Daemon,
    api: SocketAddr,
    admin: SocketAddr,
}

impl LoggedProxy {
    async fn start(config: &Path, log: PathBuf) -> LoggedProxy {
        let mut daemon = Daemon::spawn(
            "portcullis",
            Command::new(env!("CARGO_BIN_EXE_portcullis"))
                .args(["--log-format", "json", "serve", "--config"])
                .arg(config)
                .env("PORTCULLIS_LOG", "debug"),
            log,
        );
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            daemon.assert_running();
            let text = std::fs::read_to_string(&daemon.log).unwrap_or_default();
            let listening = text
                .lines()
                .filter_map(|l| serde_json::from_str::<Value>(l).ok())
                .find(|v| v["message"] == "portcullis listening");
            if let Some(v) = listening {
                let addr = |key: &str| v[key].as_str().unwrap().parse().unwrap();
                return LoggedProxy {
                    api: addr("api_addr"),
                    admin: addr("admin_addr"),
                    daemon,
                };
            }
            assert!(
                Instant::now() < deadline,
                "portcullis did not report its listening addresses; its log:\n{text}"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Stops the proxy (SIGTERM, then SIGKILL after a bounded wait); returns everything it printed.
    fn stop(mut self) -> String {
        assert!(
            self.daemon.terminate(Duration::from_secs(10)),
            "portcullis did not exit after SIGTERM"
        );
        std::fs::read_to_string(&self.daemon.log).unwrap()
    }
}

// === tests ===

/// skopeo and plain HTTP through the proxy, in all three addressing forms, byte-identical to a
/// direct pull from docker-registry.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn skopeo_and_http_pull_through_the_proxy_in_every_addressing_form() {
    if !prerequisites(&["docker-registry", "skopeo"], false) {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let registry = Registry::start(&tmp.path().join("registry"), None).await;
    let reg = registry.addr.as_str();
    let skopeo = Skopeo::new(tmp.path());
    push_layout(&skopeo, &build_layout(tmp.path()), reg, None);

    // Two keys for the same registry, so the metrics show which key each form selected.
    let proxy_dir = tmp.path().join("proxy");
    std::fs::create_dir_all(&proxy_dir).unwrap();
    let upstreams = format!(
        "  registry.local: {{ url: \"http://{reg}\" }}\n  other.local: {{ url: \"http://{reg}\" }}"
    );
    let proxy = ProxyProcess::start(&write_config(&proxy_dir, "registry.local", &upstreams, ""));
    let px = proxy.api.to_string();
    let client = http_client();

    // Ground truth, straight from the registry.
    let app = direct_manifest(&client, reg, "company/app", "v1", None).await;
    let multi = direct_manifest(&client, reg, "company/multi", "v1", None).await;
    assert_eq!(app.header("content-type"), OCI_MANIFEST);
    assert_eq!(multi.header("content-type"), OCI_INDEX);
    let children: Value = serde_json::from_slice(&multi.body).unwrap();
    assert_eq!(children["manifests"].as_array().unwrap().len(), 2);

    // Plain form (→ default_upstream) and prefix form (→ the key in the first segment).
    for (form, prefix, key, unused) in [
        ("plain", "", "registry.local", "other.local"),
        ("prefix", "other.local/", "other.local", "registry.local"),
    ] {
        let before = metrics(&client, proxy.admin).await;
        for (repo, direct) in [("company/app", &app), ("company/multi", &multi)] {
            let raw = skopeo.raw_manifest(&format!("{px}/{prefix}{repo}:v1"), None);
            assert!(
                raw == direct.body,
                "{form} form: skopeo inspect --raw of {repo} differs from the registry's manifest"
            );
            let by_digest = format!(
                "{px}/{prefix}{repo}@{}",
                direct.header("docker-content-digest")
            );
            assert!(
                skopeo.raw_manifest(&by_digest, None) == direct.body,
                "{form} form: {repo} by digest"
            );

            let out = tmp
                .path()
                .join(format!("{form}-{}", repo.replace('/', "-")));
            let proxied = skopeo.copy_to_dir(&format!("{px}/{prefix}{repo}:v1"), &out, None);
            let direct_dir = tmp
                .path()
                .join(format!("direct-{form}-{}", repo.replace('/', "-")));
            let straight = skopeo.copy_to_dir(&format!("{reg}/{repo}:v1"), &direct_dir, None);
            assert_same_files(
                &format!("{form} form, skopeo copy of {repo}"),
                &straight,
                &proxied,
            );
        }
        let after = metrics(&client, proxy.admin).await;
        for kind in ["manifest", "blob"] {
            assert!(
                upstream_requests(&after, key, kind) > upstream_requests(&before, key, kind),
                "{form} form: no {kind} request to upstream {key}:\n{after}"
            );
            assert_eq!(
                upstream_requests(&after, unused, kind),
                upstream_requests(&before, unused, kind),
                "{form} form: unexpected {kind} request to upstream {unused}"
            );
        }
    }

    // Mirror form (?ns=), as containerd sends it: GET and HEAD, by tag and by digest, and blobs.
    let before = metrics(&client, proxy.admin).await;
    for (repo, direct) in [("company/app", &app), ("company/multi", &multi)] {
        let digest = direct.header("docker-content-digest");
        for reference in ["v1", digest] {
            let url = format!("http://{px}/v2/{repo}/manifests/{reference}?ns=other.local");
            let got = get(&client, &url).await;
            assert_eq!(
                got.status,
                200,
                "{url}: {}",
                String::from_utf8_lossy(&got.body)
            );
            assert!(
                got.body == direct.body,
                "{url}: manifest bytes differ from the registry's"
            );
            assert_eq!(
                got.header("docker-content-digest"),
                sha256(&got.body),
                "{url}"
            );
            assert_eq!(
                got.header("content-type"),
                direct.header("content-type"),
                "{url}"
            );

            let head = fetch(&client, reqwest::Method::HEAD, &url, None, MANIFEST_ACCEPT).await;
            assert_eq!(head.status, 200, "HEAD {url}");
            assert_eq!(head.header("docker-content-digest"), digest, "HEAD {url}");
            assert_eq!(
                head.header("content-length"),
                direct.body.len().to_string(),
                "HEAD {url}"
            );
            assert_eq!(
                head.header("content-type"),
                direct.header("content-type"),
                "HEAD {url}"
            );
            assert!(head.body.is_empty(), "HEAD {url} has a body");
        }
    }
    let mut blobs = blob_digests(&app.body);
    for child in children["manifests"].as_array().unwrap() {
        let d = child["digest"].as_str().unwrap();
        let m = direct_manifest(&client, reg, "company/multi", d, None).await;
        blobs.extend(blob_digests(&m.body));
    }
    blobs.sort();
    blobs.dedup();
    assert!(
        blobs.len() >= 4,
        "expected distinct configs and layers: {blobs:?}"
    );
    for digest in &blobs {
        let repo = "company/multi";
        let direct = get(&client, &format!("http://{reg}/v2/{repo}/blobs/{digest}")).await;
        assert_eq!(direct.status, 200);
        let url = format!("http://{px}/v2/{repo}/blobs/{digest}?ns=other.local");
        let got = get(&client, &url).await;
        assert_eq!(
            got.status,
            200,
            "{url}: {}",
            String::from_utf8_lossy(&got.body)
        );
        assert!(
            got.body == direct.body,
            "{url}: blob bytes differ from the registry's"
        );
        assert_eq!(sha256(&got.body), *digest, "{url}");
        assert_eq!(got.header("docker-content-digest"), digest, "{url}");
    }
    let after = metrics(&client, proxy.admin).await;
    // The prefix form above already pulled these blobs for other.local/company/multi: the
    // content store serves them now, each either from the store or asked of other.local.
    let hits = |m: &str| metric_sum(m, "portcullis_store_requests_total", &[("result", "hit")]);
    assert!(
        hits(&after) - hits(&before) + upstream_requests(&after, "other.local", "blob")
            - upstream_requests(&before, "other.local", "blob")
            >= blobs.len() as f64,
        "mirror form: blobs neither from the store nor from other.local:\n{after}"
    );
    for kind in ["manifest", "blob"] {
        assert!(
            kind == "blob"
                || upstream_requests(&after, "other.local", kind)
                    > upstream_requests(&before, "other.local", kind)
        );
        assert_eq!(
            upstream_requests(&after, "registry.local", kind),
            upstream_requests(&before, "registry.local", kind),
            "mirror form: ns=other.local must not reach the default upstream"
        );
    }
    // A ranged blob read is passed through.
    let layer = blob_digests(&app.body).pop().unwrap();
    let whole = get(
        &client,
        &format!("http://{reg}/v2/company/app/blobs/{layer}"),
    )
    .await;
    let url = format!("http://{px}/v2/company/app/blobs/{layer}?ns=other.local");
    let ranged = client
        .get(&url)
        .header("range", "bytes=10-99")
        .send()
        .await
        .unwrap();
    assert_eq!(ranged.status().as_u16(), 206, "{url}");
    let content_range = ranged.headers()["content-range"]
        .to_str()
        .unwrap()
        .to_owned();
    assert_eq!(
        content_range,
        format!("bytes 10-99/{}", whole.body.len()),
        "{url}"
    );
    assert!(
        ranged.bytes().await.unwrap() == whole.body[10..100],
        "{url}: ranged bytes differ"
    );

    // tags/list in every form, as the registry has it.
    let tags = get(&client, &format!("http://{reg}/v2/company/app/tags/list")).await;
    for path in [
        "company/app/tags/list",
        "other.local/company/app/tags/list",
        "company/app/tags/list?ns=other.local",
    ] {
        let url = format!("http://{px}/v2/{path}");
        let got = get(&client, &url).await;
        assert_eq!(got.status, 200, "{url}");
        assert!(
            got.body == tags.body,
            "{url}: {}",
            String::from_utf8_lossy(&got.body)
        );
    }

    // Referrers: distribution 2.8 has no referrers API (404, text/plain), so the proxy answers
    // from the referrers tag schema, in every form, with the artifactType filter applied.
    let subject = app.header("docker-content-digest");
    let direct = get(
        &client,
        &format!("http://{reg}/v2/company/app/referrers/{subject}"),
    )
    .await;
    assert_eq!(
        direct.status, 404,
        "the registry grew a referrers API: this check no longer tests the fallback"
    );
    let sbom = attach_referrer(&client, reg, "company/app", &app).await;
    let sbom_digest = sbom["digest"].as_str().unwrap().to_owned();
    for path in [
        format!("company/app/referrers/{subject}"),
        format!("other.local/company/app/referrers/{subject}"),
        format!("company/app/referrers/{subject}?ns=other.local"),
    ] {
        let url = format!("http://{px}/v2/{path}");
        let got = fetch(&client, reqwest::Method::GET, &url, None, OCI_INDEX).await;
        assert_eq!(
            got.status,
            200,
            "{url}: {}",
            String::from_utf8_lossy(&got.body)
        );
        assert_eq!(got.header("content-type"), OCI_INDEX, "{url}");
        assert_eq!(referrer_digests(&got.body), [sbom_digest.as_str()], "{url}");
    }
    // Query values form-encoded, as Go clients send them (a literal `+` would read as a space).
    let filtered = |artifact_type: &str| {
        reqwest::Url::parse_with_params(
            &format!("http://{px}/v2/company/app/referrers/{subject}"),
            [("ns", "other.local"), ("artifactType", artifact_type)],
        )
        .unwrap()
        .to_string()
    };
    let url = filtered(SBOM_TYPE);
    let got = fetch(&client, reqwest::Method::GET, &url, None, OCI_INDEX).await;
    assert_eq!(referrer_digests(&got.body), [sbom_digest.as_str()], "{url}");
    assert_eq!(got.header("oci-filters-applied"), "artifactType", "{url}");
    let url = filtered("application/vnd.example.other");
    let got = fetch(&client, reqwest::Method::GET, &url, None, OCI_INDEX).await;
    assert!(referrer_digests(&got.body).is_empty(), "{url}");
    assert_eq!(got.header("oci-filters-applied"), "artifactType", "{url}");
    // A digest with no referrers: an empty index, not an error.
    let child = children["manifests"][1]["digest"].as_str().unwrap();
    let url = format!("http://{px}/v2/company/multi/referrers/{child}?ns=other.local");
    let got = fetch(&client, reqwest::Method::GET, &url, None, OCI_INDEX).await;
    assert_eq!(got.status, 200, "{url}");
    assert!(referrer_digests(&got.body).is_empty(), "{url}");

    // An unconfigured ns is refused, never forwarded.
    let url = format!("http://{px}/v2/company/app/manifests/v1?ns=evil.example");
    let refused = get(&client, &url).await;
    assert_eq!(refused.status, 404, "{url}");
    let body: Value = serde_json::from_slice(&refused.body).unwrap();
    assert_eq!(body["errors"][0]["code"], "NAME_UNKNOWN", "{url}");

    drop(proxy);
    drop(registry);
}

/// containerd (`ctr image pull --hosts-dir`) pulls through the proxy in the mirror form.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn containerd_pulls_through_the_proxy() {
    if !prerequisites(&["docker-registry", "skopeo", "containerd", "ctr"], true) {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let registry = Registry::start(&tmp.path().join("registry"), None).await;
    let reg = registry.addr.as_str();
    push_layout(
        &Skopeo::new(tmp.path()),
        &build_layout(tmp.path()),
        reg,
        None,
    );
    let client = http_client();
    let app = direct_manifest(&client, reg, "company/app", "v1", None).await;
    let multi = direct_manifest(&client, reg, "company/multi", "v1", None).await;

    let proxy_dir = tmp.path().join("proxy");
    std::fs::create_dir_all(&proxy_dir).unwrap();
    // The default upstream leads nowhere (nothing listens there): only containerd's ?ns= can
    // reach registry.local.
    let upstreams = format!(
        "  registry.local: {{ url: \"http://{reg}\" }}\n  nowhere.local: {{ url: \"http://127.0.0.1:{}\" }}",
        free_port()
    );
    let proxy = ProxyProcess::start(&write_config(&proxy_dir, "nowhere.local", &upstreams, ""));

    // containerd with its own root, state and socket; no CRI. Every pull of registry.local goes
    // to the proxy, which containerd addresses with ?ns=.
    let containerd = Containerd::start(&tmp.path().join("containerd")).await;
    let ctr = |args: &[&str]| containerd.ctr(args);
    let hosts = mirror_hosts_dir(&tmp.path().join("hosts"), "registry.local", proxy.api);

    let before = metrics(&client, proxy.admin).await;
    for (image, direct) in [
        ("registry.local/company/app:v1", &app),
        ("registry.local/company/multi:v1", &multi),
    ] {
        let out = containerd.pull(&hosts, image, &[]);
        assert!(
            out.status.success(),
            "ctr pull of {image} failed:\n{}",
            out.text()
        );
        let out = out.text();
        let digest = direct.header("docker-content-digest");
        assert!(
            out.contains(digest),
            "ctr pull of {image} does not report {digest}:\n{out}"
        );
        assert!(
            out.contains("unpacking"),
            "ctr pull of {image} did not unpack:\n{out}"
        );
    }
    let after = metrics(&client, proxy.admin).await;

    let requests = |text: &str, route: &str| {
        metric_sum(
            text,
            "portcullis_http_requests_total",
            &[("route", route), ("status", "200")],
        )
    };
    // Per image: HEAD by tag, GET by digest; the config and layer of the first image. (The
    // index's host-platform child is that same image, already in the content store.)
    assert!(
        requests(&after, "manifest") - requests(&before, "manifest") >= 4.0,
        "too few manifest requests:\n{after}"
    );
    assert!(
        requests(&after, "blob") - requests(&before, "blob") >= 2.0,
        "too few blob requests:\n{after}"
    );
    assert!(
        metric_sum(
            &after,
            "portcullis_http_requests_total",
            &[("route", "manifest"), ("method", "HEAD")]
        ) > 0.0,
        "containerd resolves with HEAD:\n{after}"
    );
    for kind in ["manifest", "blob"] {
        assert!(
            upstream_requests(&after, "registry.local", kind)
                > upstream_requests(&before, "registry.local", kind),
            "no {kind} request to upstream registry.local:\n{after}"
        );
    }
    assert_eq!(
        metric_sum(
            &after,
            "portcullis_upstream_requests_total",
            &[("upstream", "nowhere.local")]
        ),
        0.0,
        "containerd's requests reached the default upstream: ?ns= was not honoured:\n{after}"
    );

    // The image store has both images under the digests the registry reports, and the content
    // store every blob of the host-platform image.
    let listing = String::from_utf8(run_ok(&mut ctr(&["image", "ls"]))).unwrap();
    for (image, direct) in [
        ("registry.local/company/app:v1", &app),
        ("registry.local/company/multi:v1", &multi),
    ] {
        let digest = direct.header("docker-content-digest");
        assert!(
            listing
                .lines()
                .any(|l| l.split_whitespace().next() == Some(image) && l.contains(digest)),
            "ctr image ls does not show {image} at {digest}:\n{listing}"
        );
    }
    let content = String::from_utf8(run_ok(&mut ctr(&["content", "ls"]))).unwrap();
    for digest in blob_digests(&app.body) {
        assert!(
            content.contains(&digest),
            "ctr content ls lacks {digest}:\n{content}"
        );
    }

    drop(containerd);
    drop(proxy);
    drop(registry);
}

/// An upstream behind htpasswd basic auth: the proxy's configured credentials work, a proxy
/// without (or with wrong) credentials answers 403 DENIED, and the password never shows in logs,
/// error bodies or metrics.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn basic_auth_upstream_credentials_are_used_and_never_leak() {
    if !prerequisites(&["docker-registry", "skopeo"], false) {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let htpasswd = tmp.path().join("htpasswd");
    std::fs::write(&htpasswd, format!("{UPSTREAM_USER}:{UPSTREAM_BCRYPT}\n")).unwrap();
    let registry = Registry::start(&tmp.path().join("registry"), Some(&htpasswd)).await;
    let reg = registry.addr.as_str();
    let creds = format!("{UPSTREAM_USER}:{UPSTREAM_PASSWORD}");
    let skopeo = Skopeo::new(tmp.path());
    push_layout(&skopeo, &build_layout(tmp.path()), reg, Some(&creds));

    let client = http_client();
    let anonymous = get(
        &client,
        &format!("http://{reg}/v2/company/app/manifests/v1"),
    )
    .await;
    assert_eq!(
        anonymous.status, 401,
        "the registry must require credentials"
    );
    let auth = Some((UPSTREAM_USER, UPSTREAM_PASSWORD));
    let app = direct_manifest(&client, reg, "company/app", "v1", auth).await;

    // Three proxies: right credentials (from a file, trailing newline and all), none, wrong ones.
    let configure = |name: &str, upstream_extra: &str| {
        let dir = tmp.path().join(name);
        std::fs::create_dir_all(&dir).unwrap();
        let upstreams = format!("  registry.local: {{ url: \"http://{reg}\"{upstream_extra} }}");
        write_config(&dir, "registry.local", &upstreams, "")
    };
    let password_file = tmp.path().join("upstream-password");
    std::fs::write(&password_file, format!("{UPSTREAM_PASSWORD}\n")).unwrap();
    let wrong_file = tmp.path().join("wrong-password");
    let wrong_password = "e2e-WRONG-pw-0b7d35aa";
    std::fs::write(&wrong_file, wrong_password).unwrap();
    let with_creds_config = configure(
        "proxy-creds",
        &format!(
            ", username: {UPSTREAM_USER}, password_file: {}",
            password_file.display()
        ),
    );
    let without_config = configure("proxy-anon", "");
    let wrong_config = configure(
        "proxy-wrong",
        &format!(
            ", username: {UPSTREAM_USER}, password_file: {}",
            wrong_file.display()
        ),
    );
    let with_creds =
        LoggedProxy::start(&with_creds_config, tmp.path().join("proxy-creds.log")).await;
    let without = LoggedProxy::start(&without_config, tmp.path().join("proxy-anon.log")).await;
    let wrong = LoggedProxy::start(&wrong_config, tmp.path().join("proxy-wrong.log")).await;

    // With credentials: skopeo (no client credentials) pulls the same bytes as a direct pull.
    let px = with_creds.api.to_string();
    let raw = skopeo.raw_manifest(&format!("{px}/company/app:v1"), None);
    assert!(
        raw == app.body,
        "manifest through the authenticated proxy differs"
    );
    let raw = skopeo.raw_manifest(&format!("{px}/registry.local/company/app:v1"), None);
    assert!(
        raw == app.body,
        "manifest through the authenticated proxy (prefix form) differs"
    );
    for repo in ["company/app", "company/multi"] {
        let name = repo.replace('/', "-");
        let proxied = skopeo.copy_to_dir(
            &format!("{px}/{repo}:v1"),
            &tmp.path().join(format!("auth-proxied-{name}")),
            None,
        );
        let straight = skopeo.copy_to_dir(
            &format!("{reg}/{repo}:v1"),
            &tmp.path().join(format!("auth-direct-{name}")),
            Some(&creds),
        );
        assert_same_files(
            &format!("authenticated upstream, {repo}"),
            &straight,
            &proxied,
        );
    }
    let url = format!("http://{px}/v2/company/app/manifests/v1?ns=registry.local");
    let got = get(&client, &url).await;
    assert_eq!(
        got.status,
        200,
        "{url}: {}",
        String::from_utf8_lossy(&got.body)
    );
    assert!(got.body == app.body, "{url}");

    // Without or with wrong credentials: 403 DENIED, for manifests and blobs alike.
    let layer = blob_digests(&app.body).pop().unwrap();
    for (which, proxy) in [("no credentials", &without), ("wrong credentials", &wrong)] {
        for path in [
            "company/app/manifests/v1".to_owned(),
            format!("company/app/blobs/{layer}"),
        ] {
            let url = format!("http://{}/v2/{path}", proxy.api);
            let denied = get(&client, &url).await;
            let text = String::from_utf8_lossy(&denied.body).into_owned();
            assert_eq!(denied.status, 403, "{which}: {url}: {text}");
            let body: Value = serde_json::from_str(&text)
                .unwrap_or_else(|e| panic!("{which}: {url}: error body is not JSON ({e}): {text}"));
            assert_eq!(
                body["errors"][0]["code"], "DENIED",
                "{which}: {url}: {text}"
            );
            assert!(
                !text.contains(UPSTREAM_PASSWORD) && !text.contains(wrong_password),
                "{which}: {text}"
            );
        }
        // skopeo sees the refusal too.
        let out = run(&mut skopeo.cmd(&[
            "inspect",
            "--raw",
            "--tls-verify=false",
            &format!("docker://{}/company/app:v1", proxy.api),
        ]));
        assert!(
            !out.status.success(),
            "{which}: skopeo inspect through the proxy succeeded"
        );
    }

    // The secrets appear nowhere: not in metrics, not in any log line, not even base64-encoded.
    use base64::Engine as _;
    let b64 = |user: &str, pw: &str| {
        base64::engine::general_purpose::STANDARD.encode(format!("{user}:{pw}"))
    };
    let secrets = [
        UPSTREAM_PASSWORD.to_owned(),
        wrong_password.to_owned(),
        b64(UPSTREAM_USER, UPSTREAM_PASSWORD),
        b64(UPSTREAM_USER, wrong_password),
    ];
    let check = run_ok(
        Command::new(env!("CARGO_BIN_EXE_portcullis"))
            .args(["check-config", "--config"])
            .arg(&with_creds_config)
            .arg("registry.local/company/app"),
    );
    let check = String::from_utf8_lossy(&check);
    for s in &secrets {
        assert!(
            !check.contains(s.as_str()),
            "check-config prints a credential:\n{check}"
        );
    }
    for (which, proxy) in [
        ("with credentials", with_creds),
        ("no credentials", without),
        ("wrong credentials", wrong),
    ] {
        let text = metrics(&client, proxy.admin).await;
        assert!(
            metric_sum(
                &text,
                "portcullis_upstream_requests_total",
                &[("upstream", "registry.local")]
            ) > 0.0,
            "{which}: no upstream requests recorded:\n{text}"
        );
        for s in &secrets {
            assert!(
                !text.contains(s.as_str()),
                "{which}: /metrics contains a credential"
            );
        }
        let logs = proxy.stop();
        // The debug lines of the upstream exchanges are there (so the check below reads the
        // lines a leak would be in), with the credentials they carried named by scheme only.
        let exchanges: Vec<Value> = logs
            .lines()
            .filter_map(|l| serde_json::from_str::<Value>(l).ok())
            .filter(|v| v["message"] == "upstream exchange" && v["upstream"] == "registry.local")
            .collect();
        let sent = |status: &str, credentials: &str| {
            exchanges
                .iter()
                .any(|v| v["status"] == status && v["credentials"] == credentials)
        };
        let expected = match which {
            "with credentials" => sent("200", "basic"),
            "no credentials" => sent("401", "none"),
            _ => sent("401", "basic"),
        };
        assert!(
            expected,
            "{which}: no debug line of the expected upstream exchange:\n{logs}"
        );
        for line in logs.lines() {
            for s in &secrets {
                assert!(
                    !line.contains(s.as_str()),
                    "{which}: a log line contains a credential: {line}"
                );
            }
        }
    }

    drop(registry);
}

/// The referrers answer must not depend on the client's `Accept` header: distribution answers an
/// index with `404 MANIFEST_UNKNOWN` ("OCI index found, but accept header does not support OCI
/// indexes") unless `Accept` names the OCI index type, so the tag-schema fallback must ask for the
/// `sha256-<hex>` index as an index whatever the client sent.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn referrers_fallback_does_not_depend_on_the_clients_accept_header() {
    if !prerequisites(&["docker-registry", "skopeo"], false) {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let registry = Registry::start(&tmp.path().join("registry"), None).await;
    let reg = registry.addr.as_str();
    push_layout(
        &Skopeo::new(tmp.path()),
        &build_layout(tmp.path()),
        reg,
        None,
    );
    let client = http_client();
    let app = direct_manifest(&client, reg, "company/app", "v1", None).await;
    let sbom = attach_referrer(&client, reg, "company/app", &app).await;

    let proxy_dir = tmp.path().join("proxy");
    std::fs::create_dir_all(&proxy_dir).unwrap();
    let upstreams = format!("  registry.local: {{ url: \"http://{reg}\" }}");
    let proxy = ProxyProcess::start(&write_config(&proxy_dir, "registry.local", &upstreams, ""));
    let subject = app.header("docker-content-digest");
    let url = format!(
        "{}/v2/company/app/referrers/{subject}?ns=registry.local",
        proxy.url()
    );
    for accept in [OCI_INDEX, "*/*", "application/json"] {
        let got = fetch(&client, reqwest::Method::GET, &url, None, accept).await;
        assert_eq!(got.status, 200, "Accept: {accept}: {url}");
        assert_eq!(
            referrer_digests(&got.body),
            [sbom["digest"].as_str().unwrap().to_owned()],
            "Accept: {accept}: {url} hides the referrer: {}",
            String::from_utf8_lossy(&got.body)
        );
    }
}
