//! End-to-end tests of the verification engine with real parts: CNCF distribution
//! (`docker-registry`) holds the signed fixture images of `tests/fixtures/sigstore/` and their
//! signatures, the real `portcullis` binary verifies them against the fixtures' mock Sigstore
//! trusted root and `cosign.pub`, and real clients — containerd (`ctr`) and `skopeo` — pull
//! through it.
//!
//! distribution 2.8 has no referrers API, so bundle signatures are found through the referrers
//! tag schema (`sha256-<hex>` index, part of the fixture plan) and legacy ones through the cosign
//! tag scheme (`sha256-<hex>.sig`).
//!
//! Needs `docker-registry`, `skopeo`, `containerd` and `ctr` on PATH, and root for containerd.
//! A missing tool is a test failure, unless `PORTCULLIS_SKIP_E2E=1` is set, which turns it into
//! a skip. Every process started here is killed by PID when its guard drops; every wait has a
//! deadline.

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;

use crate::common::fixtures::{Fixtures, ISSUER};
use crate::common::{sha256, write_config, ProxyProcess};
use crate::harness::{
    any_contains, assert_pull_refused, assert_pulled, audit_list, fetch, free_port, get,
    http_client, metric_sum, metrics, mirror_hosts_dir, prerequisites, push_blob, push_manifest,
    push_plan, registry_with_plan, run, run_ok, skopeo_says, AuditLog, Containerd, Finished,
    Registry, Skopeo, EVIL_IDENTITY, MANIFEST_ACCEPT, OCI_MANIFEST, OK_IDENTITY, UPSTREAM,
};

const FIXTURES: Fixtures = Fixtures::SIGSTORE;

/// Images that verify under the `enforced` rule (one of each signature kind).
const SIGNED: [&str; 4] = [
    "key-legacy",
    "keyless-legacy",
    "keyless-bundle",
    "key-bundle",
];

// === fixtures ===

/// A proxy config with upstream `local` at `upstream_url` and three rules:
/// `enforced` (`local/enforce/**`), `audited` (`local/audit/**`), and `notlog` (`local/notlog/**`,
/// enforce, only the key attestor with `ignore_tlog: true`).
fn policy_config(dir: &Path, upstream_url: &str) -> PathBuf {
    std::fs::create_dir_all(dir).unwrap();
    let key = FIXTURES.path("cosign.pub");
    let extra = format!(
        "trusted_root: {root}\nunmatched: allow\npolicies:\n\
         \x20 - name: enforced\n    match: [\"local/enforce/**\"]\n    mode: enforce\n{both}\
         \x20 - name: audited\n    match: [\"local/audit/**\"]\n    mode: audit\n{both}\
         \x20 - name: notlog\n    match: [\"local/notlog/**\"]\n    mode: enforce\n\
         \x20   attestors:\n      - key: {{ public_key: {key}, ignore_tlog: true }}\n",
        root = FIXTURES.path("trusted_root.json").display(),
        both = FIXTURES.attestors(),
        key = key.display(),
    );
    write_config(
        dir,
        UPSTREAM,
        &format!("  {UPSTREAM}: {{ url: \"{upstream_url}\" }}"),
        &extra,
    )
}

/// A registry holding the fixture plan in each of `repos`, and a proxy in front of it.
async fn setup(tmp: &Path, repos: &[&str]) -> (Registry, ProxyProcess) {
    let registry = registry_with_plan(tmp, repos, &FIXTURES).await;
    let config = policy_config(&tmp.join("proxy"), &format!("http://{}", registry.addr));
    let proxy = ProxyProcess::start(&config);
    (registry, proxy)
}

// === HTTP ===

/// `url` must answer `403` with an OCI `DENIED` error whose message names the image, the digest,
/// the rule and contains `reason`.
async fn assert_denied(
    client: &reqwest::Client,
    url: &str,
    image: &str,
    digest: &str,
    reason: &str,
) {
    let got = get(client, url).await;
    let text = got.text();
    assert_eq!(got.status, 403, "GET {url}: {text}");
    let body: Value = serde_json::from_str(&text)
        .unwrap_or_else(|e| panic!("GET {url}: the error body is not JSON ({e}): {text}"));
    let error = &body["errors"][0];
    assert_eq!(error["code"], "DENIED", "GET {url}: {text}");
    let message = error["message"].as_str().unwrap_or_default();
    let head = format!("{image}@{digest} refused by policy \"enforced\" (enforce): ");
    assert!(
        message.starts_with(&head) && message.contains(reason),
        "GET {url}: the message should start with {head:?} and contain {reason:?}: {message}"
    );
}

// === tests ===

/// containerd under the enforce rule: every kind of valid signature pulls (key + Rekor in a
/// legacy `.sig`, keyless `.sig`, keyless and key bundles found through the referrers tag
/// schema); unsigned, wrongly-signed and payload-mismatched images are refused before a manifest
/// byte reaches containerd; a signed index covers the platform manifest containerd picks; a tag
/// moved to an unsigned digest after signing is refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn containerd_pulls_signed_images_and_is_refused_the_rest_under_enforce() {
    if !prerequisites(&["docker-registry", "containerd", "ctr"], true) {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let (registry, proxy) = setup(tmp.path(), &["enforce/app", "enforce/moved"]).await;
    let containerd = Containerd::start(&tmp.path().join("containerd")).await;
    let hosts = mirror_hosts_dir(&tmp.path().join("hosts"), UPSTREAM, proxy.api);
    let client = http_client();
    let mut log = AuditLog::new(&proxy);
    let px = proxy.api;

    for name in SIGNED {
        let image = format!("local/enforce/app:{name}");
        let d = FIXTURES.digest(name);
        assert_pulled(&containerd.pull(&hosts, &image, &[]), &image, &d);
        let event = log.verdict("enforced", &d);
        assert_eq!(event["result"], "verified", "{image}: {event}");
        assert_eq!(event["mode"], "enforce", "{image}: {event}");
        assert_eq!(event["image"], "local/enforce/app", "{image}: {event}");
        let by = audit_list(&event, "verified_by");
        let expected_signer = if name.starts_with("key-") {
            "cosign.pub"
        } else {
            OK_IDENTITY
        };
        assert!(
            any_contains(&by, expected_signer),
            "{image}: verified_by should name {expected_signer}: {event}"
        );
    }

    let unsigned = FIXTURES.digest("unsigned");
    let refused = [
        ("unsigned", "no signatures found".to_owned()),
        (
            "evil-bundle",
            format!(
                "signed by {EVIL_IDENTITY} (issuer {ISSUER}), which this attestor does not allow"
            ),
        ),
        (
            "mismatch",
            format!(
                "payload signs {unsigned}, not {}",
                FIXTURES.digest("mismatch")
            ),
        ),
    ];
    for (name, reason) in &refused {
        let image = format!("local/enforce/app:{name}");
        let d = FIXTURES.digest(name);
        assert_pull_refused(&containerd.pull(&hosts, &image, &[]), &image);
        let event = log.verdict("enforced", &d);
        assert_eq!(event["result"], "unverified", "{image}: {event}");
        assert!(
            any_contains(&audit_list(&event, "reasons"), reason),
            "{image}: reasons should contain {reason:?}: {event}"
        );
        assert!(
            audit_list(&event, "verified_by").is_empty(),
            "{image}: {event}"
        );
        // The URL containerd asked (mirror form), with a body this time.
        let url = format!("http://{px}/v2/enforce/app/manifests/{name}?ns={UPSTREAM}");
        assert_denied(&client, &url, "local/enforce/app", &d, reason).await;
    }

    // The multi-arch index is signed at the top only; its amd64 child is served because the
    // verified index lists it, not because of a verification of its own.
    let image = "local/enforce/app:index";
    let index = FIXTURES.digest("index");
    let amd64 = FIXTURES.digest("index-amd64");
    let out = containerd.pull(&hosts, image, &["--platform", "linux/amd64"]);
    assert_pulled(&out, image, &index);
    assert_eq!(
        log.verdict("enforced", &index)["result"],
        "verified",
        "{image}"
    );
    log.settle(&client).await;
    assert!(
        log.verdicts("enforced", &amd64).is_empty(),
        "the amd64 child was verified on its own instead of being covered by its index:\n{}",
        log.dump()
    );
    let after = metrics(&client, proxy.admin).await;
    assert!(
        metric_sum(
            &after,
            "portcullis_cache_requests_total",
            &[("cache", "index_child"), ("result", "hit")]
        ) >= 1.0,
        "no request was answered from the index-child cache:\n{after}"
    );

    // What containerd holds: every signed manifest and the amd64 child; not one refused manifest.
    let content = containerd.content_digests();
    for name in SIGNED.iter().chain(&["index", "index-amd64"]) {
        let d = FIXTURES.digest(name);
        assert!(
            content.contains(&d),
            "containerd's content store lacks {name} ({d}): {content:?}"
        );
    }
    for (name, _) in &refused {
        let d = FIXTURES.digest(name);
        assert!(
            !content.contains(&d),
            "the refused manifest of {name} ({d}) reached containerd's content store"
        );
    }
    assert!(
        !content.contains(&FIXTURES.digest("index-arm64")),
        "containerd fetched the arm64 child although --platform linux/amd64 was given"
    );

    // A tag moved to an unsigned digest after it was signed and pulled: the new digest is
    // verified on its own, and refused.
    let image = "local/enforce/moved:keyless-bundle";
    assert_pulled(
        &containerd.pull(&hosts, image, &[]),
        image,
        &FIXTURES.digest("keyless-bundle"),
    );
    push_manifest(
        &client,
        &registry.addr,
        "enforce/moved",
        "keyless-bundle",
        OCI_MANIFEST,
        &FIXTURES.blob(&unsigned),
    )
    .await;
    assert_pull_refused(&containerd.pull(&hosts, image, &[]), image);
    let url = format!("http://{px}/v2/enforce/moved/manifests/keyless-bundle?ns={UPSTREAM}");
    assert_denied(
        &client,
        &url,
        "local/enforce/moved",
        &unsigned,
        "no signatures found",
    )
    .await;

    let text = metrics(&client, proxy.admin).await;
    let verdicts = |result: &str| {
        metric_sum(
            &text,
            "portcullis_verdicts_total",
            &[
                ("rule", "enforced"),
                ("mode", "enforce"),
                ("result", result),
            ],
        )
    };
    // At least one request per signed image and index (containerd sends more), and one per
    // refused pull.
    assert!(verdicts("verified") >= 6.0, "{text}");
    assert!(verdicts("unverified") >= 4.0, "{text}");
    assert_eq!(verdicts("error"), 0.0, "{text}");
}

/// containerd under the audit rule: unsigned and wrongly-signed images pull as well as signed
/// ones, and each verdict is recorded once as a structured audit event with its reasons and the
/// identities found.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn containerd_pulls_everything_under_audit_and_each_verdict_is_recorded() {
    if !prerequisites(&["docker-registry", "containerd", "ctr"], true) {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let (_registry, proxy) = setup(tmp.path(), &["audit/app"]).await;
    let containerd = Containerd::start(&tmp.path().join("containerd")).await;
    let hosts = mirror_hosts_dir(&tmp.path().join("hosts"), UPSTREAM, proxy.api);
    let client = http_client();
    let mut log = AuditLog::new(&proxy);

    let names = ["unsigned", "evil-bundle", "keyless-bundle"];
    for name in names {
        let image = format!("local/audit/app:{name}");
        assert_pulled(
            &containerd.pull(&hosts, &image, &[]),
            &image,
            &FIXTURES.digest(name),
        );
    }

    let unsigned = log.verdict("audited", &FIXTURES.digest("unsigned"));
    assert_eq!(unsigned["result"], "unverified", "{unsigned}");
    assert_eq!(unsigned["mode"], "audit", "{unsigned}");
    assert_eq!(unsigned["image"], "local/audit/app", "{unsigned}");
    assert_eq!(unsigned["signatures"], 0, "{unsigned}");
    assert_eq!(
        audit_list(&unsigned, "reasons"),
        ["no signatures found"],
        "{unsigned}"
    );
    assert!(audit_list(&unsigned, "identities").is_empty(), "{unsigned}");

    // Found and cryptographically valid, but not an allowed identity: its identity is recorded.
    let evil = log.verdict("audited", &FIXTURES.digest("evil-bundle"));
    assert_eq!(evil["result"], "unverified", "{evil}");
    assert!(
        any_contains(&audit_list(&evil, "identities"), EVIL_IDENTITY),
        "{evil}"
    );
    assert!(audit_list(&evil, "verified_by").is_empty(), "{evil}");

    let signed = log.verdict("audited", &FIXTURES.digest("keyless-bundle"));
    assert_eq!(signed["result"], "verified", "{signed}");
    assert_eq!(signed["signatures"], 1, "{signed}");
    assert!(audit_list(&signed, "reasons").is_empty(), "{signed}");
    for field in ["identities", "verified_by"] {
        assert!(
            any_contains(&audit_list(&signed, field), OK_IDENTITY),
            "{field} should name {OK_IDENTITY}: {signed}"
        );
    }

    // containerd asked for each manifest at least twice (HEAD by tag, GET by digest): one
    // verification and one audit event per digest, the rest from the verdict cache.
    log.settle(&client).await;
    for name in names {
        let events = log.verdicts("audited", &FIXTURES.digest(name));
        assert_eq!(
            events.len(),
            1,
            "{name}: expected one audit event, got:\n{}",
            log.dump()
        );
    }
    let text = metrics(&client, proxy.admin).await;
    let verdicts = |result: &str| {
        metric_sum(
            &text,
            "portcullis_verdicts_total",
            &[("rule", "audited"), ("mode", "audit"), ("result", result)],
        )
    };
    assert!(verdicts("unverified") >= 4.0, "{text}");
    assert!(verdicts("verified") >= 2.0, "{text}");
    assert_eq!(
        metric_sum(
            &text,
            "portcullis_verdicts_total",
            &[("rule", "audited"), ("mode", "enforce")]
        ),
        0.0,
        "{text}"
    );
}

/// skopeo through the prefix form (`<proxy>/local/enforce/app`): the refusal reaches the user
/// with its reason; verified manifests arrive byte for byte as signed; `HEAD` is gated too; an
/// index child fetched on its own is verified on its own, and covered once its signed index has
/// been fetched; `skopeo copy` of a signed image and of the whole signed index works.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn skopeo_is_refused_unsigned_images_and_gets_the_signed_bytes() {
    if !prerequisites(&["docker-registry", "skopeo"], false) {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let (_registry, proxy) = setup(tmp.path(), &["enforce/app"]).await;
    let skopeo = Skopeo::new(tmp.path());
    let client = http_client();
    let px = proxy.api;
    let inspect = |reference: &str| {
        run(&mut skopeo.cmd(&[
            "inspect",
            "--raw",
            "--tls-verify=false",
            &format!("docker://{px}/local/enforce/app{reference}"),
        ]))
    };

    let unsigned = FIXTURES.digest("unsigned");
    let out = inspect(":unsigned");
    let text = skopeo_says(&out);
    assert!(
        !out.status.success(),
        "skopeo inspect of an unsigned image succeeded under enforce:\n{text}"
    );
    let expected =
        format!("local/enforce/app@{unsigned} refused by policy \"enforced\" (enforce): no signatures found");
    assert!(
        text.contains(&expected),
        "skopeo should show {expected:?}:\n{text}"
    );
    assert!(
        !text.contains("schemaVersion"),
        "manifest bytes leaked:\n{text}"
    );

    for name in ["keyless-bundle", "key-legacy"] {
        let d = FIXTURES.digest(name);
        for reference in [format!(":{name}"), format!("@{d}")] {
            let out = inspect(&reference);
            assert!(
                out.status.success(),
                "skopeo inspect {reference}: {}",
                out.text()
            );
            assert_eq!(sha256(&out.stdout), d, "skopeo inspect {reference}");
            assert!(
                out.stdout == FIXTURES.blob(&d),
                "skopeo inspect {reference}: bytes differ from the fixture"
            );
        }
    }

    // HEAD is gated like GET: no digest for an unsigned image, the digest for a signed one.
    let url = |reference: &str| format!("http://{px}/v2/local/enforce/app/manifests/{reference}");
    let head = fetch(
        &client,
        reqwest::Method::HEAD,
        &url("unsigned"),
        None,
        MANIFEST_ACCEPT,
    )
    .await;
    assert_eq!(head.status, 403, "HEAD unsigned");
    assert!(
        head.headers.get("docker-content-digest").is_none(),
        "HEAD of a refused manifest announces its digest: {:?}",
        head.headers
    );
    let head = fetch(
        &client,
        reqwest::Method::HEAD,
        &url("keyless-legacy"),
        None,
        MANIFEST_ACCEPT,
    )
    .await;
    assert_eq!(head.status, 200, "HEAD keyless-legacy");
    assert_eq!(
        head.header("docker-content-digest"),
        FIXTURES.digest("keyless-legacy")
    );

    // An index child by digest, with no verified parent yet: verified on its own, and unsigned.
    let arm64 = FIXTURES.digest("index-arm64");
    assert_denied(
        &client,
        &url(&arm64),
        "local/enforce/app",
        &arm64,
        "no signatures found",
    )
    .await;

    // The whole signed index: skopeo fetches it by tag, then each child by digest.
    let out_dir = tmp.path().join("index-copy");
    run_ok(&mut skopeo.cmd(&[
        "copy",
        "--all",
        "--src-tls-verify=false",
        &format!("docker://{px}/local/enforce/app:index"),
        &format!("dir:{}", out_dir.display()),
    ]));
    let index = FIXTURES.digest("index");
    assert!(
        std::fs::read(out_dir.join("manifest.json")).unwrap() == FIXTURES.blob(&index),
        "skopeo copy --all: the index differs from the fixture"
    );
    for child in ["index-amd64", "index-arm64"] {
        let d = FIXTURES.digest(child);
        let file = out_dir.join(format!(
            "{}.manifest.json",
            d.strip_prefix("sha256:").unwrap()
        ));
        let bytes = std::fs::read(&file)
            .unwrap_or_else(|e| panic!("skopeo copy --all wrote no {}: {e}", file.display()));
        assert_eq!(sha256(&bytes), d, "{child}");
    }
    // Now covered by the verified index (a cached "unverified" for it notwithstanding).
    let got = get(&client, &url(&arm64)).await;
    assert_eq!(got.status, 200, "{}", got.text());
    assert!(got.body == FIXTURES.blob(&arm64));

    // A single signed image, copied with its config and layer.
    let out_dir = tmp.path().join("image-copy");
    run_ok(&mut skopeo.cmd(&[
        "copy",
        "--src-tls-verify=false",
        &format!("docker://{px}/local/enforce/app:keyless-bundle"),
        &format!("dir:{}", out_dir.display()),
    ]));
    let manifest = std::fs::read(out_dir.join("manifest.json")).unwrap();
    assert_eq!(sha256(&manifest), FIXTURES.digest("keyless-bundle"));
    let m: Value = serde_json::from_slice(&manifest).unwrap();
    let mut blobs = vec![m["config"]["digest"].as_str().unwrap().to_owned()];
    blobs.extend(
        m["layers"]
            .as_array()
            .unwrap()
            .iter()
            .map(|l| l["digest"].as_str().unwrap().to_owned()),
    );
    for d in blobs {
        let bytes = std::fs::read(out_dir.join(d.strip_prefix("sha256:").unwrap()))
            .unwrap_or_else(|e| panic!("skopeo copy wrote no blob {d}: {e}"));
        assert_eq!(sha256(&bytes), d);
    }
}

/// A key signature without a Rekor entry (`cosign --tlog-upload=false`) is refused by a key
/// attestor that requires the transparency log (the default), and accepted by one with
/// `ignore_tlog: true` — which still accepts logged key signatures and nothing keyless.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn key_signatures_without_a_log_entry_need_ignore_tlog() {
    if !prerequisites(&["docker-registry", "skopeo"], false) {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let (_registry, proxy) = setup(tmp.path(), &["enforce/app", "notlog/app"]).await;
    let skopeo = Skopeo::new(tmp.path());
    let client = http_client();
    let mut log = AuditLog::new(&proxy);
    let px = proxy.api;
    let inspect = |repo: &str, tag: &str| {
        run(&mut skopeo.cmd(&[
            "inspect",
            "--raw",
            "--tls-verify=false",
            &format!("docker://{px}/local/{repo}:{tag}"),
        ]))
    };
    let notlog = FIXTURES.digest("key-legacy-notlog");

    // Weakening a check is said loudly at start-up, naming the rule (DESIGN.md §2, §9).
    let warning = proxy
        .startup
        .iter()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .find(|v| {
            v["level"] == "WARN"
                && v["message"]
                    .as_str()
                    .is_some_and(|m| m.contains("ignore_tlog"))
        });
    let warning = warning.unwrap_or_else(|| {
        panic!(
            "no start-up warning about ignore_tlog:\n{}",
            proxy.startup.join("\n")
        )
    });
    assert_eq!(warning["rule"], "notlog", "{warning}");

    let out = inspect("enforce/app", "key-legacy-notlog");
    let reason =
        "key signature has no transparency log entry (the attestor does not set ignore_tlog)";
    assert!(
        !out.status.success() && skopeo_says(&out).contains(reason),
        "without ignore_tlog, skopeo should be refused with {reason:?}:\n{}",
        skopeo_says(&out)
    );
    assert_denied(
        &client,
        &format!("http://{px}/v2/local/enforce/app/manifests/key-legacy-notlog"),
        "local/enforce/app",
        &notlog,
        reason,
    )
    .await;

    let out = inspect("notlog/app", "key-legacy-notlog");
    assert!(
        out.status.success(),
        "with ignore_tlog, skopeo should get the image:\n{}",
        out.text()
    );
    assert_eq!(sha256(&out.stdout), notlog);
    let event = log.verdict("notlog", &notlog);
    assert_eq!(event["result"], "verified", "{event}");
    assert!(
        any_contains(
            &audit_list(&event, "verified_by"),
            "no transparency log entry"
        ),
        "verified_by should say that the signature was never logged: {event}"
    );

    let out = inspect("notlog/app", "key-legacy");
    assert!(
        out.status.success(),
        "ignore_tlog must still accept a logged key signature:\n{}",
        out.text()
    );
    assert_eq!(sha256(&out.stdout), FIXTURES.digest("key-legacy"));

    let out = inspect("notlog/app", "keyless-bundle");
    let says = skopeo_says(&out);
    assert!(
        !out.status.success()
            && says.contains("refused by policy \"notlog\" (enforce)")
            && says.contains("signed with a Fulcio certificate, not a key"),
        "a key-only rule must refuse a keyless signature:\n{says}"
    );
}

/// `portcullis verify IMAGE --config F [--json]`: the proxy's discovery, verification and policy
/// for one image, for a pipeline step. Exit 0 allowed, 1 denied, 2 error.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn verify_command_reports_and_exits_by_decision() {
    if !prerequisites(&["docker-registry"], false) {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let registry = Registry::start(&tmp.path().join("registry"), None).await;
    let client = http_client();
    for repo in ["enforce/app", "audit/app"] {
        push_plan(&client, &registry.addr, repo, &FIXTURES).await;
    }
    let config = policy_config(
        &tmp.path().join("proxy"),
        &format!("http://{}", registry.addr),
    );
    let verify = |config: &Path, image: &str, json: bool| {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_portcullis"));
        cmd.args(["verify", image, "--config"]).arg(config);
        if json {
            cmd.arg("--json");
        }
        let out = run(&mut cmd);
        let code = out.status.code();
        (code, out)
    };
    let report = |out: &Finished| -> Value {
        serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
            panic!(
                "verify --json printed no JSON object ({e}):\n{}",
                out.text()
            )
        })
    };

    let signed = FIXTURES.digest("keyless-bundle");
    let (code, out) = verify(&config, "local/enforce/app:keyless-bundle", false);
    assert_eq!(code, Some(0), "signed image:\n{}", out.text());
    let (code, out) = verify(&config, "local/enforce/app:keyless-bundle", true);
    assert_eq!(code, Some(0), "signed image, --json:\n{}", out.text());
    let r = report(&out);
    assert_eq!(r["verified"], true, "{r}");
    assert_eq!(r["decision"], "allow", "{r}");
    assert_eq!(r["rule"], "enforced", "{r}");
    assert_eq!(r["digest"], signed, "{r}");
    assert!(r["reasons"].is_array(), "{r}");
    assert!(
        r["identities"].as_array().is_some_and(|ids| ids
            .iter()
            .any(|i| i.as_str().is_some_and(|s| s.contains(OK_IDENTITY)))),
        "identities should name {OK_IDENTITY}: {r}"
    );

    let unsigned = FIXTURES.digest("unsigned");
    let (code, out) = verify(&config, "local/enforce/app:unsigned", false);
    assert_eq!(code, Some(1), "unsigned image:\n{}", out.text());
    assert!(
        out.text().contains("no signatures found"),
        "the reason should be printed:\n{}",
        out.text()
    );
    let (code, out) = verify(&config, &format!("local/enforce/app@{unsigned}"), true);
    assert_eq!(
        code,
        Some(1),
        "unsigned image by digest, --json:\n{}",
        out.text()
    );
    let r = report(&out);
    assert_eq!(r["verified"], false, "{r}");
    assert_eq!(r["decision"], "deny", "{r}");
    assert_eq!(r["rule"], "enforced", "{r}");
    assert_eq!(r["digest"], unsigned, "{r}");
    assert!(
        r["reasons"]
            .as_array()
            .is_some_and(|rs| rs.iter().any(|x| x == "no signatures found")),
        "{r}"
    );

    // Audit mode never blocks a pipeline either.
    let (code, out) = verify(&config, "local/audit/app:unsigned", true);
    assert_eq!(code, Some(0), "unsigned image under audit:\n{}", out.text());
    let r = report(&out);
    assert_eq!(r["verified"], false, "{r}");
    assert_eq!(r["decision"], "audit", "{r}");

    // An upstream nothing listens on: an error, neither "allowed" nor "denied".
    let dead = policy_config(
        &tmp.path().join("dead"),
        &format!("http://127.0.0.1:{}", free_port()),
    );
    let (code, out) = verify(&dead, "local/enforce/app:keyless-bundle", true);
    assert_eq!(code, Some(2), "unreachable upstream:\n{}", out.text());
}

/// DESIGN.md §7.1: in enforce, no byte of a manifest leaves the proxy unless its digest is
/// verified. containerd resolves a digest reference through `/blobs/<digest>` when
/// `/manifests/<digest>` fails, so a refused manifest whose bytes the upstream also serves as a
/// blob must not get through that route.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refused_manifest_bytes_do_not_leave_through_the_blob_route() {
    if !prerequisites(&["docker-registry", "containerd", "ctr"], true) {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let (registry, proxy) = setup(tmp.path(), &["enforce/app"]).await;
    let client = http_client();
    let unsigned = FIXTURES.digest("unsigned");
    // Anyone who can push the unsigned image can push its bytes as a blob as well.
    push_blob(
        &client,
        &registry.addr,
        "enforce/app",
        &FIXTURES.blob(&unsigned),
    )
    .await;

    let url = format!(
        "{}/v2/enforce/app/blobs/{unsigned}?ns={UPSTREAM}",
        proxy.url()
    );
    // The refusal itself: the gate's 403 DENIED with the rule and the reason, as for the manifest.
    assert_denied(
        &client,
        &url,
        "local/enforce/app",
        &unsigned,
        "no signatures found",
    )
    .await;

    let containerd = Containerd::start(&tmp.path().join("containerd")).await;
    let hosts = mirror_hosts_dir(&tmp.path().join("hosts"), UPSTREAM, proxy.api);
    let image = format!("local/enforce/app@{unsigned}");
    // containerd resolves the digest with a HEAD on the blob route (answered: HEAD sends no
    // byte), then fetches it there, and is refused with the gate's message.
    let out = containerd.pull(&hosts, &image, &[]);
    let text = out.text();
    assert!(!out.status.success(), "{image} was pulled:\n{text}");
    let refusal = format!(
        "/v2/enforce/app/blobs/{unsigned}?ns={UPSTREAM}: 403 Forbidden - Server message: denied: \
         local/enforce/app@{unsigned} refused by policy \"enforced\" (enforce): no signatures found"
    );
    assert!(
        text.contains(&refusal),
        "{image} failed for another reason than the blob route's refusal:\n{text}"
    );
    assert!(
        !containerd.content_digests().contains(&unsigned),
        "the refused manifest {unsigned} reached containerd's content store"
    );
}

/// The content store under enforce, across a restart: containerd pulls signed images, portcullis
/// is killed and started again on the same state directory, docker-registry is stopped, and a
/// second containerd (empty content store) pulls them again. The new process has no verdict in
/// memory: it verifies again from the manifests, tags and signature material it kept, and serves
/// the same content; an image it refused, and one never pulled, are not served.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn containerd_pulls_signed_images_again_after_a_restart_with_the_upstream_stopped() {
    if !prerequisites(&["docker-registry", "containerd", "ctr"], true) {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let registry = registry_with_plan(tmp.path(), &["enforce/app"], &FIXTURES).await;
    let url = format!("http://{}", registry.addr);
    let config = policy_config(&tmp.path().join("proxy"), &url);
    let text = std::fs::read_to_string(&config).unwrap().replace(
        &format!("{{ url: \"{url}\" }}"),
        &format!("{{ url: \"{url}\", serve_stale_tags: true }}"),
    );
    assert!(text.contains("serve_stale_tags: true"), "{text}");
    std::fs::write(&config, text).unwrap();
    let images = ["key-legacy", "keyless-bundle"];

    let proxy = ProxyProcess::start(&config);
    let hosts = mirror_hosts_dir(&tmp.path().join("hosts-1"), UPSTREAM, proxy.api);
    let first = Containerd::start(&tmp.path().join("containerd-1")).await;
    for name in images {
        let out = first.pull(&hosts, &format!("local/enforce/app:{name}"), &[]);
        assert!(
            out.status.success(),
            "first pull of {name}:\n{}",
            out.text()
        );
    }
    let unsigned = first.pull(&hosts, "local/enforce/app:unsigned", &[]);
    assert!(!unsigned.status.success(), "unsigned pulled under enforce");
    let mut pulled = first.content_digests();
    pulled.sort();
    drop(first);
    // What the proxy keeps is written in the background: let the last of it land, then kill -9.
    std::thread::sleep(std::time::Duration::from_secs(1));
    drop(proxy);
    drop(registry);

    let proxy = ProxyProcess::start(&config);
    let hosts = mirror_hosts_dir(&tmp.path().join("hosts-2"), UPSTREAM, proxy.api);
    let second = Containerd::start(&tmp.path().join("containerd-2")).await;
    for name in images {
        let out = second.pull(&hosts, &format!("local/enforce/app:{name}"), &[]);
        assert!(
            out.status.success(),
            "second pull of {name}, restarted, upstream stopped:\n{}",
            out.text()
        );
    }
    let mut again = second.content_digests();
    again.sort();
    assert_eq!(again, pulled, "the same content");
    for name in ["unsigned", "keyless-legacy"] {
        let out = second.pull(&hosts, &format!("local/enforce/app:{name}"), &[]);
        assert!(!out.status.success(), "{name} pulled with nothing verified");
    }
    let m = metrics(&http_client(), proxy.admin).await;
    assert!(
        metric_sum(
            &m,
            "portcullis_verdicts_total",
            &[("rule", "enforced"), ("result", "verified")]
        ) >= 2.0,
        "verified again in the new process:\n{m}"
    );
}
