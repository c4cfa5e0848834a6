//! Client authentication (`auth.htpasswd`, `auth.access`) with real clients: skopeo, containerd
//! (`ctr`), the Docker engine and Podman pull `docker.io/company/app:v1` through the real
//! `portcullis` binary with Basic credentials, and are refused without them (401) or as a user
//! without access (403 DENIED).
//!
//! What each client needs for its credentials to reach portcullis used as a *mirror* (checked
//! here, and what the user docs say):
//! - skopeo names the proxy itself: `--creds` / `--src-creds`.
//! - containerd: `ctr image pull --user` sends them to a mirror host of `hosts.toml`, and so does
//!   a `[host."http://PROXY".header] authorization = "Basic ..."` table (what nodes configure).
//! - Docker sends a mirror the credentials stored for **Docker Hub**
//!   (`auths["https://index.docker.io/v1/"]` in `config.json`), not those stored under the
//!   mirror's own address; `docker login` without a server would check them against Docker Hub
//!   itself, so the entry is written, not logged in.
//! - Podman looks credentials up under the **mirror's** location (`auths["127.0.0.1:PORT"]` in
//!   its auth file); `podman pull --creds` applies to `docker.io` only and never reaches a mirror.
//!
//! Needs `docker-registry`, `skopeo`, `containerd`, `dockerd`, `docker` and `podman` (Debian
//! packages `docker-registry skopeo containerd docker.io podman`) and root.

use std::path::Path;

use base64::Engine as _;

use crate::common::{write_config, ProxyProcess};
use crate::harness::{
    assert_pull_refused, assert_pulled, assert_same_files, blob_digests, build_layout,
    direct_manifest, fetch, http_client, metric_sum, metrics, mirror_hosts_dir, prerequisites,
    push_layout, run, run_ok, skopeo_says, write_auth_file, Containerd, Dockerd, Fetched, Finished,
    Podman, Registry, Skopeo, MANIFEST_ACCEPT,
};

/// Has access to `docker.io/company/**`.
const USER: &str = "ci";
/// Right password, but no `auth.access` entry names it.
const GUEST: &str = "guest";
const PASSWORD: &str = "e2e-client-Pw-5b0e9a";
const IMAGE: &str = "docker.io/company/app:v1";
/// What the proxy says to a user without access (`403 DENIED`).
const DENIED_MESSAGE: &str = "requested access to the resource is denied";

fn creds(user: &str) -> String {
    format!("{user}:{PASSWORD}")
}

/// The upstream (docker-registry, open) holding the test image as `company/app:v1`, and a
/// proxy in front of it as `docker.io` that needs Basic credentials and lets only [`USER`] pull
/// `docker.io/company/**`. Returns them with the manifest as the registry serves it.
async fn setup(tmp: &Path) -> (Registry, ProxyProcess, Fetched) {
    let registry = Registry::start(&tmp.join("registry"), None).await;
    let reg = registry.addr.as_str();
    push_layout(&Skopeo::new(tmp), &build_layout(tmp), reg, None);
    let client = http_client();
    let app = direct_manifest(&client, reg, "company/app", "v1", None).await;

    let dir = tmp.join("proxy");
    std::fs::create_dir_all(&dir).unwrap();
    let hash = bcrypt::hash(PASSWORD, 4).unwrap();
    let htpasswd = dir.join("htpasswd");
    std::fs::write(&htpasswd, format!("{USER}:{hash}\n{GUEST}:{hash}\n")).unwrap();
    let config = write_config(
        &dir,
        "docker.io",
        &format!("  docker.io: {{ url: \"http://{reg}\" }}"),
        &format!(
            "auth:\n  htpasswd: {}\n  access:\n    - {{ match: [\"docker.io/company/**\"], users: [{USER}] }}\n",
            htpasswd.display()
        ),
    );
    let proxy = ProxyProcess::start(&config);

    // Every route challenges, `/v2/` included: that is where clients learn to authenticate.
    let ping = client
        .get(format!("{}/v2/", proxy.url()))
        .send()
        .await
        .unwrap();
    assert_eq!(ping.status().as_u16(), 401, "GET /v2/ without credentials");
    assert_eq!(
        ping.headers()["www-authenticate"],
        "Basic realm=\"portcullis\""
    );
    (registry, proxy, app)
}

/// `portcullis_http_requests_total` for `route` and `status`, as the proxy counts them now.
async fn served(proxy: &ProxyProcess, route: &str, status: &str) -> f64 {
    let text = metrics(&http_client(), proxy.admin).await;
    metric_sum(
        &text,
        "portcullis_http_requests_total",
        &[("route", route), ("status", status)],
    )
}

fn assert_failed(out: &Finished, what: &str, needles: &[&str]) {
    let text = out.text().replace("\\\"", "\"");
    assert!(!out.status.success(), "{what} succeeded:\n{text}");
    for n in needles {
        assert!(
            text.contains(n),
            "{what} failed, but without {n:?} in what it printed:\n{text}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn skopeo_pulls_with_credentials_and_is_refused_without_them_or_without_access() {
    if !prerequisites(&["docker-registry", "skopeo"], false) {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let (registry, proxy, app) = setup(tmp.path()).await;
    let skopeo = Skopeo::new(tmp.path());
    let through = format!("{}/company/app:v1", proxy.api);

    let raw = skopeo.raw_manifest(&through, Some(&creds(USER)));
    assert!(raw == app.body, "skopeo inspect --raw --creds: other bytes");
    let proxied = skopeo.copy_to_dir(&through, &tmp.path().join("proxied"), Some(&creds(USER)));
    let direct = skopeo.copy_to_dir(
        &format!("{}/company/app:v1", registry.addr),
        &tmp.path().join("direct"),
        None,
    );
    assert_same_files("skopeo copy --src-creds", &direct, &proxied);

    let inspect = |creds: Option<&str>| {
        let image = format!("docker://{through}");
        let mut args = vec!["inspect", "--raw", "--tls-verify=false"];
        if let Some(c) = creds {
            args.extend(["--creds", c]);
        }
        args.push(&image);
        run(&mut skopeo.cmd(&args))
    };
    // Without credentials, skopeo answers the challenge with an empty user and password, which
    // the proxy takes as no credentials at all.
    let out = inspect(None);
    assert_failed(
        &out,
        "skopeo inspect without credentials",
        &["unauthorized"],
    );
    let out = inspect(Some(&format!("{USER}:wrong-{PASSWORD}")));
    assert_failed(
        &out,
        "skopeo inspect with a wrong password",
        &["unknown user or wrong password"],
    );
    // The proxy's body is `DENIED` with the standard message, which skopeo (containers/image)
    // shortens to the code's name: "denied".
    let url = format!("{}/v2/company/app/manifests/v1", proxy.url());
    let refused = fetch(
        &http_client(),
        reqwest::Method::GET,
        &url,
        Some((GUEST, PASSWORD)),
        MANIFEST_ACCEPT,
    )
    .await;
    assert_eq!(refused.status, 403, "{url} as {GUEST}");
    let body: serde_json::Value = serde_json::from_slice(&refused.body).unwrap();
    assert_eq!(body["errors"][0]["code"], "DENIED", "{}", refused.text());
    assert_eq!(body["errors"][0]["message"], DENIED_MESSAGE);
    let out = inspect(Some(&creds(GUEST)));
    assert!(!out.status.success(), "skopeo inspect as {GUEST} succeeded");
    let says = skopeo_says(&out);
    assert!(
        says.contains("company/app: denied"),
        "skopeo inspect as {GUEST} failed, but not as DENIED:\n{says}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn containerd_pulls_with_user_or_a_hosts_toml_header() {
    if !prerequisites(&["docker-registry", "skopeo", "containerd", "ctr"], true) {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let (_registry, proxy, app) = setup(tmp.path()).await;
    let digest = app.header("docker-content-digest").to_owned();
    let containerd = Containerd::start(&tmp.path().join("containerd")).await;
    let hosts = mirror_hosts_dir(&tmp.path().join("hosts"), "docker.io", proxy.api);
    // Removes the image and, by a synchronous garbage collection, its blobs (a plain `content rm`
    // leaves them on disk, and the next pull would not fetch them again).
    let forget = || {
        run_ok(&mut containerd.ctr(&["image", "rm", "--sync", IMAGE]));
        let left = containerd.content_digests();
        assert!(
            left.is_empty(),
            "content left after image rm --sync: {left:?}"
        );
    };

    let out = containerd.pull(&hosts, IMAGE, &[]);
    assert_failed(
        &out,
        "ctr pull without credentials",
        &["401 Unauthorized", "failed to resolve reference"],
    );
    let out = containerd.pull(&hosts, IMAGE, &["--user", &creds(GUEST)]);
    assert_pull_refused(&out, IMAGE);

    let blobs_before = served(&proxy, "blob", "200").await;
    let out = containerd.pull(&hosts, IMAGE, &["--user", &creds(USER)]);
    assert_pulled(&out, IMAGE, &digest);
    let content = containerd.content_digests();
    for d in blob_digests(&app.body) {
        assert!(
            content.contains(&d),
            "ctr --user: {d} not in the content store"
        );
    }
    assert!(
        served(&proxy, "blob", "200").await >= blobs_before + 2.0,
        "ctr --user: config and layer did not come through the proxy"
    );

    // The same credentials as a header of the mirror host in hosts.toml, no `--user`.
    forget();
    let header_hosts = tmp.path().join("hosts-header");
    mirror_hosts_dir(&header_hosts, "docker.io", proxy.api);
    let toml = header_hosts.join("docker.io/hosts.toml");
    let basic = base64::engine::general_purpose::STANDARD.encode(creds(USER));
    let mut text = std::fs::read_to_string(&toml).unwrap();
    text.push_str(&format!(
        "  [host.\"http://{}\".header]\n    authorization = \"Basic {basic}\"\n",
        proxy.api
    ));
    std::fs::write(&toml, text).unwrap();
    let manifests_before = served(&proxy, "manifest", "200").await;
    let blobs_before = served(&proxy, "blob", "200").await;
    let out = containerd.pull(&header_hosts, IMAGE, &[]);
    assert_pulled(&out, IMAGE, &digest);
    assert!(
        served(&proxy, "manifest", "200").await >= manifests_before + 2.0,
        "hosts.toml header: containerd did not resolve (HEAD) and fetch the manifest"
    );
    assert!(
        served(&proxy, "blob", "200").await >= blobs_before + 2.0,
        "hosts.toml header: config and layer did not come through the proxy"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn docker_sends_its_docker_hub_credentials_to_the_mirror() {
    if !prerequisites(&["docker-registry", "skopeo", "dockerd", "docker"], true) {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let (_registry, proxy, app) = setup(tmp.path()).await;
    let digest = app.header("docker-content-digest").to_owned();
    let config_digest = blob_digests(&app.body)[0].clone();
    let dockerd = Dockerd::start(&tmp.path().join("docker"), proxy.api).await;
    let mirror_key = format!("http://{}", proxy.api);
    let pull = || run(&mut dockerd.docker(&["pull", "company/app:v1"]));
    // Docker falls back to Docker Hub when the mirror refuses, and Docker Hub cannot be reached
    // from here: every refusal ends in a failed pull.
    let hub = "registry-1.docker.io";

    // No credentials: Docker tries the mirror (whose /v2/ challenges it), then falls back.
    let pings = served(&proxy, "ping", "401").await;
    assert_failed(&pull(), "docker pull without credentials", &[hub]);
    assert!(
        served(&proxy, "ping", "401").await > pings,
        "docker pull did not try the mirror; dockerd's log:\n{}",
        dockerd.log()
    );

    // Credentials stored under the mirror's own address are not used for it.
    dockerd.set_auths(&[(&mirror_key, &creds(USER))]);
    assert_failed(
        &pull(),
        "docker pull with credentials keyed by the mirror's address",
        &[hub],
    );

    // A user without access: the proxy's 403, then the fallback.
    dockerd.set_auths(&[("https://index.docker.io/v1/", &creds(GUEST))]);
    let refused = served(&proxy, "manifest", "403").await;
    assert_failed(&pull(), &format!("docker pull as {GUEST}"), &[hub]);
    assert!(
        served(&proxy, "manifest", "403").await > refused,
        "docker pull as {GUEST}: the proxy refused nothing"
    );

    // Docker Hub's entry: sent to the mirror, and the pull goes through the proxy.
    dockerd.set_auths(&[("https://index.docker.io/v1/", &creds(USER))]);
    let manifests = served(&proxy, "manifest", "200").await;
    let blobs = served(&proxy, "blob", "200").await;
    let out = pull();
    assert!(
        out.status.success(),
        "docker pull with Docker Hub credentials failed:\n{}\ndockerd's log:\n{}",
        out.text(),
        dockerd.log()
    );
    assert!(served(&proxy, "manifest", "200").await > manifests);
    assert!(served(&proxy, "blob", "200").await >= blobs + 2.0);
    // Docker's image ID is the config's digest; its repo digest is the manifest's.
    let inspect = run(&mut dockerd.docker(&[
        "image",
        "inspect",
        "--format",
        "{{.Id}} {{json .RepoDigests}}",
        "company/app:v1",
    ]));
    let text = inspect.text();
    assert!(inspect.status.success(), "docker image inspect: {text}");
    assert!(
        text.starts_with(&config_digest) && text.contains(&format!("company/app@{digest}")),
        "docker image inspect: expected {config_digest} and company/app@{digest}, got {text}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn podman_uses_credentials_stored_under_the_mirrors_location() {
    if !prerequisites(&["docker-registry", "skopeo", "podman"], true) {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let (_registry, proxy, app) = setup(tmp.path()).await;
    let digest = app.header("docker-content-digest").to_owned();
    let podman = Podman::new(&tmp.path().join("podman"), proxy.api);
    let mirror = proxy.api.to_string();
    let authfile = |name: &str, auths: &[(&str, &str)]| {
        let path = tmp.path().join(name);
        write_auth_file(&path, auths);
        path
    };
    let none = authfile("none.json", &[]);
    let hub = authfile("hub.json", &[("docker.io", &creds(USER))]);
    let guest = authfile("guest.json", &[(&mirror, &creds(GUEST))]);
    let good = authfile("mirror.json", &[(&mirror, &creds(USER))]);
    let pull = |authfile: &Path, extra: &[&str]| {
        let mut args = vec!["pull"];
        args.extend_from_slice(extra);
        args.push(IMAGE);
        run(&mut podman.cmd(authfile, &args))
    };
    let refused = ["Mirrors also failed", mirror.as_str()];

    assert_failed(
        &pull(&none, &[]),
        "podman pull without credentials",
        &refused,
    );
    // `--creds` and an auth file entry for docker.io are for docker.io, not for its mirror.
    assert_failed(
        &pull(&none, &["--creds", &creds(USER)]),
        "podman pull --creds",
        &refused,
    );
    assert_failed(
        &pull(&hub, &[]),
        "podman pull with credentials for docker.io",
        &refused,
    );
    let out = pull(&guest, &[]);
    assert_failed(&out, &format!("podman pull as {GUEST}"), &refused);
    assert!(
        out.text().contains("company/app: denied"),
        "podman pull as {GUEST}: not refused as DENIED:\n{}",
        out.text()
    );

    let blobs = served(&proxy, "blob", "200").await;
    let out = pull(&good, &[]);
    assert!(
        out.status.success(),
        "podman pull with the mirror's credentials failed:\n{}",
        out.text()
    );
    assert!(served(&proxy, "blob", "200").await >= blobs + 2.0);
    let inspect = run(&mut podman.cmd(
        &none,
        &["image", "inspect", "--format", "{{.Digest}}", IMAGE],
    ));
    assert!(
        inspect.status.success() && inspect.text().trim() == digest,
        "podman image inspect: expected {digest}, got {}",
        inspect.text()
    );
}
