//! Every runtime under an enforce rule: the Docker engine (`registry-mirrors`, and the proxy
//! named in the image), Podman (a `registries.conf` mirror in the prefix form, and the registry
//! `location` rewritten to the proxy) pull the signed fixture images of `tests/fixtures/sigstore/`
//! through the real `portcullis` binary and are refused the unsigned one. Each test records what
//! the client shows for the refusal, and whether it then falls back to the origin registry
//! (docs/clients.md shows these configurations). containerd and skopeo are in `policy.rs`.
//!
//! The upstream registry (CNCF distribution) is configured as `docker.io`, so that the runtimes'
//! Docker Hub names (`docker.io/enforce/app`) reach it; the real Docker Hub is unreachable here.

use std::path::{Path, PathBuf};

use crate::common::fixtures::Fixtures;
use crate::common::{write_config, ProxyProcess};
use crate::harness::{
    http_client, metric_sum, metrics, prerequisites, registry_with_plan, run, Dockerd, Finished,
    Podman, Registry,
};

const FIXTURES: Fixtures = Fixtures::SIGSTORE;
const SIGNED: &str = "keyless-bundle";
const KEY_SIGNED: &str = "key-legacy";
const UNSIGNED: &str = "unsigned";

fn config(dir: &Path, registry: &Registry) -> PathBuf {
    std::fs::create_dir_all(dir).unwrap();
    let extra = format!(
        "trusted_root: {root}\nunmatched: deny\npolicies:\n\
         \x20 - name: enforced\n    match: [\"docker.io/enforce/**\"]\n    mode: enforce\n{attestors}",
        root = FIXTURES.path("trusted_root.json").display(),
        attestors = FIXTURES.attestors(),
    );
    write_config(
        dir,
        "docker.io",
        &format!("  docker.io: {{ url: \"http://{}\" }}", registry.addr),
        &extra,
    )
}

async fn refused_manifests(proxy: &ProxyProcess) -> f64 {
    let text = metrics(&http_client(), proxy.admin).await;
    metric_sum(
        &text,
        "portcullis_verdicts_total",
        &[("rule", "enforced"), ("result", "unverified")],
    )
}

fn assert_ok(out: &Finished, what: &str) {
    assert!(out.status.success(), "{what} failed:\n{}", out.text());
}

fn assert_refused(out: &Finished, what: &str, needles: &[&str]) -> String {
    let text = out.text();
    assert!(!out.status.success(), "{what} succeeded:\n{text}");
    for n in needles {
        assert!(
            text.contains(n),
            "{what}: expected {n:?} in what the client shows:\n{text}"
        );
    }
    eprintln!("{what}: the client shows:\n{text}");
    text
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn docker_pulls_signed_images_and_is_refused_unsigned_under_enforce() {
    if !prerequisites(&["docker-registry", "dockerd", "docker"], true) {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let registry = registry_with_plan(tmp.path(), &["enforce/app"], &FIXTURES).await;
    let proxy = ProxyProcess::start(&config(&tmp.path().join("proxy"), &registry));
    let dockerd = Dockerd::start(&tmp.path().join("docker"), proxy.api).await;
    let pull = |image: &str| run(&mut dockerd.docker(&["pull", image]));

    // registry-mirrors: Docker Hub names go to the mirror in the plain form.
    for name in [SIGNED, KEY_SIGNED] {
        let image = format!("enforce/app:{name}");
        assert_ok(&pull(&image), &format!("docker pull {image}"));
        let inspect = run(&mut dockerd.docker(&[
            "image",
            "inspect",
            "--format",
            "{{json .RepoDigests}}",
            &image,
        ]));
        let digest = FIXTURES.digest(name);
        assert!(
            inspect.text().contains(&digest),
            "{image}: {}",
            inspect.text()
        );
    }
    // Refused by the mirror, Docker falls back to Docker Hub itself (unreachable here, so the
    // pull fails with Docker Hub's error, not the proxy's).
    let before = refused_manifests(&proxy).await;
    assert_refused(
        &pull(&format!("enforce/app:{UNSIGNED}")),
        "docker pull (mirror) of the unsigned image",
        &["registry-1.docker.io"],
    );
    assert!(
        refused_manifests(&proxy).await > before,
        "the proxy refused nothing"
    );

    // The proxy named in the image (prefix form): no fallback, and the refusal is the proxy's.
    let image = format!("{}/docker.io/enforce/app:{UNSIGNED}", proxy.api);
    let text = assert_refused(
        &pull(&image),
        "docker pull (prefix form) of the unsigned image",
        &[],
    );
    assert!(!text.contains("registry-1.docker.io"), "fell back: {text}");
    assert!(
        text.contains("denied: docker.io/enforce/app@")
            && text.contains("refused by policy \"enforced\" (enforce): no signatures found"),
        "{text}"
    );
    let image = format!("{}/docker.io/enforce/app:{SIGNED}", proxy.api);
    assert_ok(&pull(&image), &format!("docker pull {image}"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn podman_pulls_signed_images_and_is_refused_unsigned_under_enforce() {
    if !prerequisites(&["docker-registry", "podman"], true) {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let registry = registry_with_plan(tmp.path(), &["enforce/app"], &FIXTURES).await;
    let proxy = ProxyProcess::start(&config(&tmp.path().join("proxy"), &registry));
    let authfile = tmp.path().join("auth.json");
    std::fs::write(&authfile, br#"{"auths":{}}"#).unwrap();
    let px = proxy.api;

    // A mirror in the prefix form: Docker Hub names go to PROXY/docker.io/...
    let mirror = Podman::with_registries_conf(
        &tmp.path().join("podman-mirror"),
        &format!(
            "[[registry]]\nprefix = \"docker.io\"\nlocation = \"docker.io\"\n\n\
             [[registry.mirror]]\nlocation = \"{px}/docker.io\"\ninsecure = true\n"
        ),
    );
    for name in [SIGNED, KEY_SIGNED] {
        let image = format!("docker.io/enforce/app:{name}");
        assert_ok(
            &run(&mut mirror.cmd(&authfile, &["pull", &image])),
            &format!("podman pull {image}"),
        );
        let inspect = run(&mut mirror.cmd(
            &authfile,
            &["image", "inspect", "--format", "{{.Digest}}", &image],
        ));
        assert_eq!(inspect.text().trim(), FIXTURES.digest(name), "{image}");
    }
    let image = format!("docker.io/enforce/app:{UNSIGNED}");
    // The proxy's message in full, then the fall back to docker.io itself.
    let text = assert_refused(
        &run(&mut mirror.cmd(&authfile, &["pull", &image])),
        "podman pull (mirror) of the unsigned image",
        &[
            "refused by policy \"enforced\" (enforce): no signatures found",
            "Mirrors also failed",
        ],
    );
    assert!(
        text.contains("pinging container registry registry-1.docker.io"),
        "{text}"
    );

    // The registry's location rewritten to the proxy: no fallback to docker.io.
    let only = Podman::with_registries_conf(
        &tmp.path().join("podman-only"),
        &format!("[[registry]]\nprefix = \"docker.io\"\nlocation = \"{px}/docker.io\"\ninsecure = true\n"),
    );
    let text = assert_refused(
        &run(&mut only.cmd(&authfile, &["pull", &image])),
        "podman pull (location) of the unsigned image",
        &["refused by policy \"enforced\" (enforce): no signatures found"],
    );
    assert!(!text.contains("Mirrors also failed"), "fell back: {text}");
    let image = format!("docker.io/enforce/app:{SIGNED}");
    assert_ok(
        &run(&mut only.cmd(&authfile, &["pull", &image])),
        &format!("podman pull {image}"),
    );
}

/// The Python that runs `cri_pull.py`: `PORTCULLIS_CRI_PYTHON`, else `python3`; it must import
/// `cri_api` (PyPI `container-runtime-interface-api`, installed by scripts/test.sh).
fn cri_python() -> Option<String> {
    let python = std::env::var("PORTCULLIS_CRI_PYTHON").unwrap_or_else(|_| "python3".to_owned());
    let ok = run(std::process::Command::new(&python).args(["-c", "import cri_api"]))
        .status
        .success();
    if ok {
        return Some(python);
    }
    let what = format!("{python} with the PyPI package container-runtime-interface-api");
    if std::env::var("PORTCULLIS_SKIP_E2E").as_deref() == Ok("1") {
        eprintln!("SKIPPED (PORTCULLIS_SKIP_E2E=1): this e2e test needs {what}");
        return None;
    }
    panic!(
        "this e2e test needs {what} (scripts/test.sh installs it), or set PORTCULLIS_SKIP_E2E=1"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubelet_style_cri_pulls_through_containerd_under_enforce() {
    if !prerequisites(&["docker-registry", "containerd"], true) {
        return;
    }
    let Some(python) = cri_python() else { return };
    let tmp = tempfile::tempdir().unwrap();
    let registry = registry_with_plan(tmp.path(), &["enforce/app"], &FIXTURES).await;
    let proxy = ProxyProcess::start(&config(&tmp.path().join("proxy"), &registry));
    let hosts = crate::harness::mirror_hosts_dir(&tmp.path().join("hosts"), "docker.io", proxy.api);
    let containerd =
        crate::harness::Containerd::start_with(&tmp.path().join("containerd"), Some(&hosts)).await;
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/e2e/cri_pull.py");
    let pull = |image: &str| {
        let out = run(std::process::Command::new(&python)
            .arg(&script)
            .arg(&containerd.sock)
            .arg(image));
        let line = String::from_utf8_lossy(&out.stdout).into_owned();
        let v: serde_json::Value = serde_json::from_str(line.trim())
            .unwrap_or_else(|e| panic!("cri_pull.py {image}: {e}: {}", out.text()));
        (out.status.success(), v)
    };

    for name in [SIGNED, KEY_SIGNED] {
        let image = format!("docker.io/enforce/app:{name}");
        let (ok, v) = pull(&image);
        assert!(ok, "CRI PullImage {image}: {v}");
        let digest = FIXTURES.digest(name);
        assert!(
            v["repo_digests"].to_string().contains(&digest),
            "CRI ImageStatus {image}: expected {digest}: {v}"
        );
    }
    let before = refused_manifests(&proxy).await;
    let image = format!("docker.io/enforce/app:{UNSIGNED}");
    let (ok, v) = pull(&image);
    assert!(!ok, "CRI PullImage {image} succeeded: {v}");
    let details = v["details"].as_str().unwrap_or_default();
    // containerd resolves with HEAD, whose 403 has no body: kubelet's event shows the status,
    // from the mirror; containerd does not go on to Docker Hub after it.
    let from_mirror = format!(
        "pulling from host {} failed with status code [manifests {UNSIGNED}]: 403 Forbidden",
        proxy.api
    );
    assert!(details.contains(&from_mirror), "CRI PullImage {image}: {v}");
    assert!(
        !details.contains("registry-1.docker.io"),
        "CRI PullImage {image}: {v}"
    );
    eprintln!("CRI PullImage of the unsigned image: {details}");
    assert!(
        refused_manifests(&proxy).await > before,
        "the proxy refused nothing"
    );
    drop(containerd);
}
