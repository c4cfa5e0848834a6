//! End-to-end test of the console in real headless Chromium (Debian `chromium`, driven by npm
//! `playwright-core` from `tests/console/console.test.mjs`, versions pinned in its
//! package-lock.json). The ingest tests' images (built here, SBOMs by the real syft, signed at
//! test time) and an unsigned image under an enforce rule are pushed to CNCF distribution;
//! containerd pulls them through the real binary, whose admin listener listens on every
//! address with a token; then the browser, with JavaScript off, opens each page and checks what
//! it shows against what was pulled (the refused image, the audit finding, the signer, an
//! inventory hit for a package syft found), follows links, uses the filters, is refused without
//! the credentials, and saves a screenshot of each page into `docs/console/`.
//!
//! Needs what the ingest tests need, plus `chromium` and the console test's `node_modules`
//! (`npm ci` in tests/console); scripts/test.sh installs them. A missing tool is a test
//! failure, unless `PORTCULLIS_SKIP_E2E=1` is set, which turns it into a skip.

use std::net::SocketAddr;
use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::common::fixtures::ISSUER;
use crate::common::{write_config, ProxyProcess};
use crate::harness::{
    http_client, mirror_hosts_dir, prerequisites, Containerd, Registry, OK_IDENTITY, UPSTREAM,
};
use crate::ingest::{files, generator_ready, push_scenario, push_to};

const CONSOLE_TEST: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/console");
const TOKEN: &str = "console-e2e-token-0123456789";

fn console_test_ready() -> bool {
    crate::harness::node_packages_ready(CONSOLE_TEST, "playwright-core", "the console test's")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_console_in_chromium_shows_what_containerd_pulled() {
    if !prerequisites(
        &[
            "docker-registry",
            "containerd",
            "ctr",
            "syft",
            "node",
            "chromium",
        ],
        true,
    ) || !generator_ready()
        || !console_test_ready()
    {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let registry = Registry::start(&dir.join("registry"), None).await;
    let pushed = push_scenario(&registry, dir).await;
    let vault = push_to(
        &registry,
        "company/vault",
        Some("v1"),
        &files(&[("zlib", "1.3.1-r1")], None, "v"),
    )
    .await;
    let vault_digest = vault["digest"].as_str().unwrap().to_owned();
    let d = |name: &str| pushed.digests[name].clone();

    let attestor = format!(
        "      - keyless: {{ subject_regexp: \"https://github.com/acme/.+\", issuer: \"{ISSUER}\" }}\n"
    );
    let rules = format!(
        "trusted_root: {}\nadmin: {{ token_env: PORTCULLIS_CONSOLE_TOKEN }}\npolicies:\n  - name: vault\n    match: [\"{UPSTREAM}/company/vault\"]\n    mode: enforce\n    attestors:\n{attestor}  - name: shop\n    match: [\"{UPSTREAM}/company/**\"]\n    mode: audit\n    attestors:\n{attestor}",
        pushed.trusted_root.display()
    );
    std::fs::create_dir_all(dir.join("proxy")).unwrap();
    let config = write_config(
        &dir.join("proxy"),
        UPSTREAM,
        &format!("  {UPSTREAM}: {{ url: \"http://{}\" }}", registry.addr),
        &rules,
    );
    // The admin listener on every address: the token is then required.
    let text = std::fs::read_to_string(&config).unwrap();
    std::fs::write(
        &config,
        text.replace("admin_listen: 127.0.0.1:0", "admin_listen: 0.0.0.0:0"),
    )
    .unwrap();
    let proxy = ProxyProcess::start_with_env(&config, &[("PORTCULLIS_CONSOLE_TOKEN", TOKEN)]);
    let admin = SocketAddr::from(([127, 0, 0, 1], proxy.admin.port()));

    let containerd = Containerd::start(&dir.join("containerd")).await;
    let hosts = mirror_hosts_dir(&dir.join("hosts"), UPSTREAM, proxy.api);
    for tag in ["signed", "unsigned-spdx", "unsigned-cdx", "buildkit"] {
        let image = format!("{UPSTREAM}/company/shop:{tag}");
        let out = containerd.pull(&hosts, &image, &[]);
        assert!(out.status.success(), "ctr pull {image}: {}", out.text());
    }
    let refused = format!("{UPSTREAM}/company/vault:v1");
    let out = containerd.pull(&hosts, &refused, &[]);
    assert!(!out.status.success(), "{refused} is unsigned under enforce");

    // Ingest runs after each pull and the ledger writes once a second: wait for both.
    let client = http_client();
    let deadline = Instant::now() + Duration::from_secs(60);
    for name in ["signed", "unsigned-spdx", "unsigned-cdx", "buildkit-child"] {
        let url = format!("http://{admin}/api/v1/inventory/images/{}", d(name));
        loop {
            let answer: Value = client
                .get(&url)
                .bearer_auth(TOKEN)
                .send()
                .await
                .unwrap()
                .json()
                .await
                .unwrap();
            if answer["sbom_status"] == "found" && answer["pulls"]["pulls"].as_i64() > Some(0) {
                break;
            }
            assert!(Instant::now() < deadline, "{name} not ingested: {answer:#}");
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    let expect = json!({
        "shop": format!("{UPSTREAM}/company/shop"),
        "vault": format!("{UPSTREAM}/company/vault"),
        "vault_digest": vault_digest,
        "signed": d("signed"),
        "unsigned_spdx": d("unsigned-spdx"),
        "unsigned_cdx": d("unsigned-cdx"),
        "identity": OK_IDENTITY,
        "shop_pattern": format!("{UPSTREAM}/company/**"),
    });
    let shots = concat!(env!("CARGO_MANIFEST_DIR"), "/docs/console");
    let out = Command::new("node")
        .current_dir(CONSOLE_TEST)
        .arg("console.test.mjs")
        .env("CONSOLE_URL", format!("http://{admin}"))
        .env("CONSOLE_USER", "admin")
        .env("CONSOLE_TOKEN", TOKEN)
        .env("CONSOLE_EXPECT", expect.to_string())
        .env("CONSOLE_SCREENSHOTS", shots)
        .output()
        .expect("run node");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    eprintln!("{text}");
    assert!(out.status.success(), "the browser test failed:\n{text}");
    assert!(text.contains("console test: all pages checked"), "{text}");
}
