//! The trusted root kept current over TUF, end to end: a TUF repository built and signed by
//! python-tuf (`tests/fixtures/tuf/make_repo.py`, PyPI `tuf`), served on 127.0.0.1 by Python's
//! `http.server`, in front of the real `portcullis` binary, `docker-registry` holding the signed
//! fixtures, and containerd pulling.
//!
//! The repository's first trusted root is one the fixtures do not verify under (another mock
//! Sigstore instance), its rotation brings the fixtures' own: so a refused pull turning into a
//! verified one shows that the rotation reached the verifier and that no verdict of the old root
//! was reused.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::common::fixtures::Fixtures;
use crate::common::{write_config, ProxyProcess};
use crate::harness::{
    assert_pulled, free_port, get, http_client, metric_sum, metrics, mirror_hosts_dir,
    prerequisites, registry_with_plan, Containerd, Daemon, UPSTREAM,
};

const FIXTURES: Fixtures = Fixtures::SIGSTORE;

/// Whether python-tuf can be imported (PyPI `tuf`; scripts/test.sh installs it).
fn python_tuf() -> bool {
    let ok = Command::new("python3")
        .args(["-c", "import tuf.api.metadata"])
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !ok && std::env::var("PORTCULLIS_SKIP_E2E").as_deref() != Ok("1") {
        panic!("this e2e test needs python-tuf: `pip install tuf`, or set PORTCULLIS_SKIP_E2E=1");
    }
    ok
}

/// Points the served folder at one state of the repository (`v1`, `v2`, `tampered`, `expired`).
fn serve_state(repos: &Path, state: &str) {
    let link = repos.join("current");
    let tmp = repos.join("current.new");
    let _ = std::fs::remove_file(&tmp);
    std::os::unix::fs::symlink(repos.join(state), &tmp).unwrap();
    std::fs::rename(&tmp, &link).unwrap();
}

/// `python3 -m http.server` on `port`, serving `repos/current`, once it answers.
async fn mirror(repos: &Path, port: u16, log: &Path) -> Daemon {
    let mut d = Daemon::spawn(
        "tuf mirror",
        Command::new("python3")
            .args([
                "-m",
                "http.server",
                "--bind",
                "127.0.0.1",
                &port.to_string(),
            ])
            .arg("--directory")
            .arg(repos.join("current")),
        log.to_path_buf(),
    );
    let client = http_client();
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        d.assert_running();
        if let Ok(r) = client
            .get(format!("http://127.0.0.1:{port}/timestamp.json"))
            .send()
            .await
        {
            if r.status() == 200 {
                return d;
            }
        }
        assert!(Instant::now() < deadline, "the TUF mirror did not start");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn config(
    dir: &Path,
    registry: &str,
    mirror_port: u16,
    repos: &Path,
    cache: &Path,
) -> std::path::PathBuf {
    std::fs::create_dir_all(dir).unwrap();
    let extra = format!(
        "trusted_root:\n  tuf:\n    mirror: http://127.0.0.1:{mirror_port}\n    root: {root}\n    \
         refresh: 1s\n    cache_dir: {cache}\n\
         policies:\n  - name: enforced\n    match: [\"local/enforce/**\"]\n    mode: enforce\n{attestors}",
        root = repos.join("root.json").display(),
        cache = cache.display(),
        attestors = FIXTURES.attestors(),
    );
    write_config(
        dir,
        UPSTREAM,
        &format!("  {UPSTREAM}: {{ url: \"http://{registry}\" }}"),
        &extra,
    )
}

/// Waits until the proxy has counted a trusted-root refresh with `result`.
async fn refreshed(client: &reqwest::Client, proxy: &ProxyProcess, result: &str) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let text = metrics(client, proxy.admin).await;
        if metric_sum(
            &text,
            "portcullis_trust_root_refresh_total",
            &[("result", result)],
        ) > 0.0
        {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "no trusted-root refresh with result {result}:\n{text}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn trusted_root_over_tuf_rotates_refuses_tampering_and_works_offline() {
    if !prerequisites(&["docker-registry", "containerd", "ctr", "python3"], true) || !python_tuf() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let repos = tmp.path().join("tuf");
    let made = Command::new("python3")
        .arg(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/fixtures/tuf/make_repo.py"
        ))
        .arg(&repos)
        .arg(FIXTURES.path("foreign_trusted_root.json"))
        .arg(FIXTURES.path("trusted_root.json"))
        .output()
        .unwrap();
    assert!(
        made.status.success(),
        "{}",
        String::from_utf8_lossy(&made.stderr)
    );
    let registry = registry_with_plan(tmp.path(), &["enforce/app"], &FIXTURES).await;
    let port = free_port();
    let client = http_client();
    let digest = FIXTURES.digest("keyless-bundle");
    let url = |proxy: &ProxyProcess| {
        format!(
            "http://{}/v2/enforce/app/manifests/{digest}?ns={UPSTREAM}",
            proxy.api
        )
    };

    // A target whose bytes are not the ones its metadata pins: nothing to start from.
    serve_state(&repos, "tampered");
    let mut server = mirror(&repos, port, &tmp.path().join("mirror.log")).await;
    let cfg = config(
        &tmp.path().join("tampered"),
        &registry.addr,
        port,
        &repos,
        &tmp.path().join("cache-t"),
    );
    let out = Command::new(env!("CARGO_BIN_EXE_portcullis"))
        .args([
            "verify",
            &format!("{UPSTREAM}/enforce/app@{digest}"),
            "--config",
        ])
        .arg(&cfg)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(
        err.contains("trusted_root.tuf") && err.contains(&format!("127.0.0.1:{port}")),
        "{err}"
    );

    // The first root: the fixtures' signatures do not verify under it.
    serve_state(&repos, "v1");
    let cache = tmp.path().join("cache");
    let cfg = config(
        &tmp.path().join("proxy"),
        &registry.addr,
        port,
        &repos,
        &cache,
    );
    let proxy = ProxyProcess::start(&cfg);
    let got = get(&client, &url(&proxy)).await;
    assert_eq!(got.status, 403, "{}", got.text());
    assert!(got.text().contains("No log key valid"), "{}", got.text());

    // The rotation: the next refresh puts the fixtures' root in force; containerd pulls.
    serve_state(&repos, "v2");
    refreshed(&client, &proxy, "updated").await;
    let got = get(&client, &url(&proxy)).await;
    assert_eq!(got.status, 200, "after the rotation: {}", got.text());
    let containerd = Containerd::start(&tmp.path().join("containerd")).await;
    let hosts = mirror_hosts_dir(&tmp.path().join("hosts"), UPSTREAM, proxy.api);
    let image = "local/enforce/app:keyless-bundle";
    assert_pulled(&containerd.pull(&hosts, image, &[]), image, &digest);

    // Expired timestamp metadata: the refresh fails, the root in force stays.
    serve_state(&repos, "expired");
    refreshed(&client, &proxy, "failure").await;
    let got = get(&client, &url(&proxy)).await;
    assert_eq!(got.status, 200, "after a failed refresh: {}", got.text());
    drop(proxy);

    // The mirror gone: a restart starts from the verified cache.
    server.child.kill().unwrap();
    let _ = server.child.wait();
    let proxy = ProxyProcess::start(&cfg);
    assert!(
        proxy
            .startup
            .iter()
            .any(|l| l.contains("using the verified cached trusted root")),
        "{:?}",
        proxy.startup
    );
    let got = get(&client, &url(&proxy)).await;
    assert_eq!(got.status, 200, "from the cache: {}", got.text());
}
