//! Harness for end-to-end tests with real third-party parts: tool checks, background daemons
//! killed by PID on drop, commands with deadlines, CNCF distribution (`docker-registry`) as an
//! upstream, containerd with its own root and socket, `skopeo` without host settings, the test
//! image (an OCI layout built by hand, pushed with skopeo), plain HTTP pushes of images and
//! referrers, and Prometheus text parsing.
//!
//! Everything binds 127.0.0.1 and lives in a caller-owned temporary directory; every wait has a
//! deadline.

use std::collections::BTreeMap;
use std::io::Read;
use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::common::fixtures::Fixtures;
use crate::common::sha256;

pub const COMMAND_TIMEOUT: Duration = Duration::from_secs(30);
pub const START_TIMEOUT: Duration = Duration::from_secs(15);

/// The upstream key of the policy tests: images are `local/<repository>` to the proxy and to
/// containerd.
pub const UPSTREAM: &str = "local";

/// The keyless identities that signed the fixtures: one the attestors accept, one outside them.
pub const OK_IDENTITY: &str =
    "https://github.com/acme/app/.github/workflows/release.yml@refs/heads/main";
pub const EVIL_IDENTITY: &str =
    "https://github.com/evil/app/.github/workflows/release.yml@refs/heads/main";

pub const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
pub const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
pub const OCI_CONFIG: &str = "application/vnd.oci.image.config.v1+json";
pub const OCI_LAYER_TAR: &str = "application/vnd.oci.image.layer.v1.tar";
pub const MANIFEST_ACCEPT: &str = "application/vnd.oci.image.manifest.v1+json, \
application/vnd.oci.image.index.v1+json, \
application/vnd.docker.distribution.manifest.v2+json, \
application/vnd.docker.distribution.manifest.list.v2+json";

// === tool checks ===

pub fn on_path(tool: &str) -> bool {
    std::env::var_os("PATH")
        .map(|paths| std::env::split_paths(&paths).any(|dir| dir.join(tool).is_file()))
        .unwrap_or(false)
}

pub fn is_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("Uid:"))
                .and_then(|v| v.split_whitespace().nth(1).map(|euid| euid == "0"))
        })
        .unwrap_or(false)
}

/// True when the test can run. Missing prerequisites fail the test, unless `PORTCULLIS_SKIP_E2E=1`.
/// Whether `dir`'s Node.js packages (`npm ci` there) hold `package`; `whose` names them in the
/// message. Missing is a failure unless `PORTCULLIS_SKIP_E2E=1`, which makes it a skip.
pub fn node_packages_ready(dir: &str, package: &str, whose: &str) -> bool {
    if Path::new(dir).join("node_modules").join(package).is_dir() {
        return true;
    }
    let what = format!("{whose} packages (npm ci in {dir})");
    if std::env::var("PORTCULLIS_SKIP_E2E").as_deref() == Ok("1") {
        eprintln!("SKIPPED (PORTCULLIS_SKIP_E2E=1): this e2e test needs {what}");
        return false;
    }
    panic!("this e2e test needs {what}");
}

pub fn prerequisites(tools: &[&str], needs_root: bool) -> bool {
    let mut missing: Vec<String> = tools
        .iter()
        .filter(|t| !on_path(t))
        .map(|t| format!("`{t}` on PATH"))
        .collect();
    if needs_root && !is_root() {
        missing.push("root (containerd, dockerd, podman)".to_owned());
    }
    if missing.is_empty() {
        return true;
    }
    let what = missing.join(", ");
    if std::env::var("PORTCULLIS_SKIP_E2E").as_deref() == Ok("1") {
        eprintln!("SKIPPED (PORTCULLIS_SKIP_E2E=1): this e2e test needs {what}");
        return false;
    }
    panic!(
        "this e2e test needs {what}. Install with `apt-get install -y --no-install-recommends \
         docker-registry skopeo containerd docker.io podman`, or set PORTCULLIS_SKIP_E2E=1 to skip it."
    );
}

// === processes ===

/// A background process, killed (by PID) and reaped on drop.
pub struct Daemon {
    pub name: &'static str,
    pub child: Child,
    pub log: PathBuf,
}

impl Daemon {
    pub fn spawn(name: &'static str, cmd: &mut Command, log: PathBuf) -> Daemon {
        let out = std::fs::File::create(&log).unwrap();
        let err = out.try_clone().unwrap();
        let child = without_proxy_env(cmd)
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .spawn()
            .unwrap_or_else(|e| panic!("spawning {name}: {e}"));
        Daemon { name, child, log }
    }

    /// Panics with the process's log if it has exited.
    pub fn assert_running(&mut self) {
        if let Some(status) = self.child.try_wait().unwrap() {
            panic!(
                "{} exited early ({status}); its log:\n{}",
                self.name,
                std::fs::read_to_string(&self.log).unwrap_or_default()
            );
        }
    }
}

impl Daemon {
    /// Asks the process to stop (SIGTERM) and waits up to `grace` for it; kills it (SIGKILL)
    /// after that. True when it exited on its own.
    pub fn terminate(&mut self, grace: Duration) -> bool {
        if self.child.try_wait().unwrap().is_some() {
            return true;
        }
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let deadline = Instant::now() + grace;
        while Instant::now() < deadline {
            if self.child.try_wait().unwrap().is_some() {
                return true;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
        false
    }

    /// The PIDs of the process's direct children (e.g. the containerd a dockerd started).
    pub fn children(&self) -> Vec<u32> {
        let pid = self.child.id();
        std::fs::read_to_string(format!("/proc/{pid}/task/{pid}/children"))
            .unwrap_or_default()
            .split_whitespace()
            .filter_map(|p| p.parse().ok())
            .collect()
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Unmounts every mount point at or under `dir`, deepest first (what a killed dockerd or podman
/// may leave behind), so that the temporary directory can be removed.
pub fn unmount_under(dir: &Path) {
    let mounts = std::fs::read_to_string("/proc/mounts").unwrap_or_default();
    let mut points: Vec<&str> = mounts
        .lines()
        .filter_map(|l| l.split_whitespace().nth(1))
        .filter(|m| Path::new(m).starts_with(dir))
        .collect();
    points.sort_by_key(|m| std::cmp::Reverse(m.len()));
    for m in points {
        let _ = Command::new("umount").arg(m).status();
    }
}

/// Child processes must reach 127.0.0.1 directly, whatever the environment says.
pub fn without_proxy_env(cmd: &mut Command) -> &mut Command {
    for var in [
        "http_proxy",
        "https_proxy",
        "all_proxy",
        "HTTP_PROXY",
        "HTTPS_PROXY",
        "ALL_PROXY",
    ] {
        cmd.env_remove(var);
    }
    cmd
}

pub struct Finished {
    pub status: ExitStatus,
    pub stdout: Vec<u8>,
    pub stderr: Vec<u8>,
}

impl Finished {
    /// stdout and stderr together, for assertions on what a tool told its user.
    pub fn text(&self) -> String {
        format!(
            "{}{}",
            String::from_utf8_lossy(&self.stdout),
            String::from_utf8_lossy(&self.stderr)
        )
    }
}

/// Runs a command to completion within `COMMAND_TIMEOUT`, killing it when the time is up.
pub fn run(cmd: &mut Command) -> Finished {
    let desc = format!("{cmd:?}");
    let mut child = without_proxy_env(cmd)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("spawning {desc}: {e}"));
    let drain = |mut pipe: Box<dyn Read + Send>| {
        std::thread::spawn(move || {
            let mut buf = Vec::new();
            let _ = pipe.read_to_end(&mut buf);
            buf
        })
    };
    let stdout = drain(Box::new(child.stdout.take().unwrap()));
    let stderr = drain(Box::new(child.stderr.take().unwrap()));
    let deadline = Instant::now() + COMMAND_TIMEOUT;
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("{desc} did not finish within {COMMAND_TIMEOUT:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    Finished {
        status,
        stdout: stdout.join().unwrap(),
        stderr: stderr.join().unwrap(),
    }
}

/// Runs a command that must succeed; returns its stdout.
pub fn run_ok(cmd: &mut Command) -> Vec<u8> {
    let desc = format!("{cmd:?}");
    let out = run(cmd);
    assert!(
        out.status.success(),
        "{desc} failed ({}):\nstdout: {}\nstderr: {}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

pub fn http_client() -> reqwest::Client {
    reqwest::Client::builder()
        .no_proxy()
        .timeout(Duration::from_secs(20))
        .build()
        .unwrap()
}

// === the upstream registry ===

/// `docker-registry serve` (CNCF distribution) on 127.0.0.1, storing in a temporary directory.
pub struct Registry {
    /// Held for its `Drop`, which stops the registry.
    _daemon: Daemon,
    /// `127.0.0.1:PORT`
    pub addr: String,
}

impl Registry {
    /// Starts a registry in `dir`; with `htpasswd`, every request needs basic credentials.
    pub async fn start(dir: &Path, htpasswd: Option<&Path>) -> Registry {
        std::fs::create_dir_all(dir).unwrap();
        let storage = dir.join("storage");
        let auth = htpasswd
            .map(|p| {
                format!(
                    "auth: {{htpasswd: {{realm: portcullis-e2e, path: {}}}}}\n",
                    p.display()
                )
            })
            .unwrap_or_default();
        // A port picked here may be taken before the registry binds it: try a few.
        for _ in 0..3 {
            let addr = format!("127.0.0.1:{}", free_port());
            let config = dir.join("registry.yml");
            std::fs::write(
                &config,
                format!(
                    "version: 0.1\nlog: {{level: warn, accesslog: {{disabled: true}}}}\n\
                     storage: {{filesystem: {{rootdirectory: {}}}, delete: {{enabled: true}}}}\n\
                     http: {{addr: {addr}}}\n{auth}",
                    storage.display()
                ),
            )
            .unwrap();
            let mut daemon = Daemon::spawn(
                "docker-registry",
                Command::new("docker-registry").arg("serve").arg(&config),
                dir.join("registry.log"),
            );
            let client = http_client();
            let deadline = Instant::now() + START_TIMEOUT;
            loop {
                if daemon.child.try_wait().unwrap().is_some() {
                    break; // most likely the port was taken; try another
                }
                if let Ok(resp) = client.get(format!("http://{addr}/v2/")).send().await {
                    // 401 is ready too: a registry with htpasswd challenges every request.
                    let s = resp.status().as_u16();
                    assert!(
                        s == 200 || s == 401,
                        "GET /v2/ on docker-registry answered {s}"
                    );
                    return Registry {
                        _daemon: daemon,
                        addr,
                    };
                }
                if Instant::now() > deadline {
                    daemon.assert_running();
                    panic!("docker-registry on {addr} not ready within {START_TIMEOUT:?}");
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            eprintln!(
                "docker-registry exited at start; retrying. Log:\n{}",
                std::fs::read_to_string(&daemon.log).unwrap_or_default()
            );
        }
        panic!("docker-registry failed to start three times (see the logs above)");
    }
}

/// Uploads `bytes` as a blob of `repo` (monolithic: POST, then PUT with `digest=`).
pub async fn push_blob(client: &reqwest::Client, registry: &str, repo: &str, bytes: &[u8]) {
    let digest = crate::common::sha256(bytes);
    let base = reqwest::Url::parse(&format!("http://{registry}/v2/{repo}/blobs/uploads/")).unwrap();
    let started = client.post(base.clone()).send().await.unwrap();
    assert_eq!(
        started.status().as_u16(),
        202,
        "starting an upload to {base}"
    );
    let location = started.headers()["location"].to_str().unwrap().to_owned();
    // `join` keeps an absolute Location and resolves a relative one; `append_pair` adds `?` or
    // `&` as the Location's own query requires.
    let mut url = base.join(&location).unwrap();
    url.query_pairs_mut().append_pair("digest", &digest);
    let done = client
        .put(url)
        .header("content-type", "application/octet-stream")
        .body(bytes.to_vec())
        .send()
        .await
        .unwrap();
    assert_eq!(
        done.status().as_u16(),
        201,
        "finishing the upload of {digest} to {repo}"
    );
}

/// `PUT /v2/<repo>/manifests/<reference>` with `media_type` as Content-Type.
pub async fn push_manifest(
    client: &reqwest::Client,
    registry: &str,
    repo: &str,
    reference: &str,
    media_type: &str,
    bytes: &[u8],
) {
    let url = format!("http://{registry}/v2/{repo}/manifests/{reference}");
    let resp = client
        .put(&url)
        .header("content-type", media_type)
        .body(bytes.to_vec())
        .send()
        .await
        .unwrap();
    let status = resp.status().as_u16();
    assert_eq!(
        status,
        201,
        "PUT {url}: {}",
        resp.text().await.unwrap_or_default()
    );
}

// === containerd ===

/// `containerd` as root with its own root, state and socket, no CRI plugin; `ctr` talks to it
/// in its own namespace.
pub struct Containerd {
    pub daemon: Daemon,
    pub sock: PathBuf,
    pub namespace: String,
}

impl Containerd {
    pub async fn start(dir: &Path) -> Containerd {
        Containerd::start_with(dir, None).await
    }

    /// With `cri_hosts`, the CRI plugin is left on (the image service kubelet uses), its
    /// registry hosts read from that directory (see [`mirror_hosts_dir`]), and the native
    /// snapshotter used; the socket then also serves CRI gRPC.
    pub async fn start_with(dir: &Path, cri_hosts: Option<&Path>) -> Containerd {
        std::fs::create_dir_all(dir).unwrap();
        let sock = dir.join("containerd.sock");
        let config = dir.join("config.toml");
        // A top-level key must come before the first table; the CRI tables go at the end.
        let (top, plugin) = match cri_hosts {
            None => (
                "disabled_plugins = [\"io.containerd.grpc.v1.cri\"]\n".to_owned(),
                String::new(),
            ),
            Some(hosts) => (
                String::new(),
                format!(
                    "[plugins.\"io.containerd.grpc.v1.cri\"]\n  disable_apparmor = true\n\
                     [plugins.\"io.containerd.grpc.v1.cri\".containerd]\n  snapshotter = \"native\"\n\
                     [plugins.\"io.containerd.grpc.v1.cri\".registry]\n  config_path = \"{}\"\n",
                    hosts.display()
                ),
            ),
        };
        std::fs::write(
            &config,
            format!(
                "version = 2\nroot = \"{root}/root\"\nstate = \"{root}/state\"\n\
                 {top}\
                 [grpc]\n  address = \"{sock}\"\n\
                 [debug]\n  level = \"warn\"\n\
                 [metrics]\n  address = \"\"\n\
                 [plugins.\"io.containerd.internal.v1.opt\"]\n  path = \"{root}/opt\"\n{plugin}",
                root = dir.display(),
                sock = sock.display()
            ),
        )
        .unwrap();
        let daemon = Daemon::spawn(
            "containerd",
            Command::new("containerd").arg("--config").arg(&config),
            dir.join("containerd.log"),
        );
        let mut containerd = Containerd {
            daemon,
            sock,
            namespace: "portcullis-e2e".to_owned(),
        };
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            containerd.daemon.assert_running();
            if containerd.sock.exists() && run(&mut containerd.ctr(&["version"])).status.success() {
                return containerd;
            }
            assert!(
                Instant::now() < deadline,
                "containerd not serving on {} within {START_TIMEOUT:?}; log:\n{}",
                containerd.sock.display(),
                std::fs::read_to_string(&containerd.daemon.log).unwrap_or_default()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// A `ctr` command against this containerd and namespace.
    pub fn ctr(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new("ctr");
        cmd.arg("-a")
            .arg(&self.sock)
            .args(["-n", &self.namespace])
            .args(args);
        cmd
    }

    /// `ctr image pull` of `image` through `hosts_dir` (see [`mirror_hosts_dir`]), unpacking
    /// with the native snapshotter; `extra` goes before the image name (e.g. `--platform`).
    pub fn pull(&self, hosts_dir: &Path, image: &str, extra: &[&str]) -> Finished {
        let hosts = hosts_dir.to_str().unwrap();
        let mut args = vec![
            "image",
            "pull",
            "--plain-http",
            "--snapshotter",
            "native",
            "--hosts-dir",
            hosts,
        ];
        args.extend_from_slice(extra);
        args.push(image);
        run(&mut self.ctr(&args))
    }

    /// The digests in the content store.
    pub fn content_digests(&self) -> Vec<String> {
        let out = String::from_utf8(run_ok(&mut self.ctr(&["content", "ls", "-q"]))).unwrap();
        out.lines().map(|l| l.trim().to_owned()).collect()
    }
}

/// A containerd hosts directory under `dir` that sends every pull of `host` to the proxy at
/// `proxy` (plain HTTP), which containerd then addresses in the mirror form `?ns=<host>`.
/// `server` points at the proxy too, so containerd never falls back to the real `host`.
pub fn mirror_hosts_dir(dir: &Path, host: &str, proxy: SocketAddr) -> PathBuf {
    std::fs::create_dir_all(dir.join(host)).unwrap();
    std::fs::write(
        dir.join(host).join("hosts.toml"),
        format!(
            "server = \"http://{proxy}\"\n\n[host.\"http://{proxy}\"]\n  capabilities = [\"pull\", \"resolve\"]\n"
        ),
    )
    .unwrap();
    dir.to_owned()
}

/// containerd resolves a name with `HEAD`, and a `HEAD` response has no body: the proxy's OCI
/// error message cannot reach `ctr`, which reports the status line only. What `ctr` shows is
/// checked here; the message itself is checked on a `GET` of the same URL.
pub fn assert_pull_refused(out: &Finished, image: &str) {
    let text = out.text();
    assert!(
        !out.status.success(),
        "ctr pull of {image} succeeded, but the proxy refuses it:\n{text}"
    );
    assert!(
        text.contains("403 Forbidden") && text.contains("failed to resolve reference"),
        "ctr pull of {image} failed for another reason than the proxy's 403:\n{text}"
    );
}

/// `ctr` pulled `image` and unpacked `digest`.
pub fn assert_pulled(out: &Finished, image: &str, digest: &str) {
    let text = out.text();
    assert!(out.status.success(), "ctr pull of {image} failed:\n{text}");
    assert!(
        text.contains(digest) && text.contains("unpacking"),
        "ctr pull of {image} does not report unpacking {digest}:\n{text}"
    );
}

// === the Docker engine ===

/// `dockerd` as root with its own data root, exec root, socket and pid file, no networking set
/// up, the vfs storage driver and `mirror` as its only registry mirror; `docker` talks to it with
/// its own client config directory (`DOCKER_CONFIG`).
pub struct Dockerd {
    daemon: Daemon,
    dir: PathBuf,
    pub sock: PathBuf,
    /// `DOCKER_CONFIG`: where `config.json` (with `auths`) lives.
    pub config_dir: PathBuf,
}

impl Dockerd {
    pub async fn start(dir: &Path, mirror: SocketAddr) -> Dockerd {
        let config_dir = dir.join("client");
        std::fs::create_dir_all(&config_dir).unwrap();
        let sock = dir.join("docker.sock");
        let daemon_json = dir.join("daemon.json");
        std::fs::write(
            &daemon_json,
            serde_json::to_vec(&json!({ "registry-mirrors": [format!("http://{mirror}")] }))
                .unwrap(),
        )
        .unwrap();
        let daemon = Daemon::spawn(
            "dockerd",
            Command::new("dockerd")
                .args([
                    "--iptables=false",
                    "--ip6tables=false",
                    "--bridge=none",
                    "--storage-driver=vfs",
                ])
                .arg("--data-root")
                .arg(dir.join("data"))
                .arg("--exec-root")
                .arg(dir.join("exec"))
                .arg("-H")
                .arg(format!("unix://{}", sock.display()))
                .arg("-p")
                .arg(dir.join("dockerd.pid"))
                .arg("--config-file")
                .arg(&daemon_json),
            dir.join("dockerd.log"),
        );
        let mut dockerd = Dockerd {
            daemon,
            dir: dir.to_owned(),
            sock,
            config_dir,
        };
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            dockerd.daemon.assert_running();
            if dockerd.sock.exists() && run(&mut dockerd.docker(&["version"])).status.success() {
                return dockerd;
            }
            assert!(
                Instant::now() < deadline,
                "dockerd not serving on {} within {START_TIMEOUT:?}; log:\n{}",
                dockerd.sock.display(),
                dockerd.log()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// A `docker` command against this daemon, with this client config.
    pub fn docker(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new("docker");
        cmd.env("DOCKER_HOST", format!("unix://{}", self.sock.display()))
            .env("DOCKER_CONFIG", &self.config_dir)
            .args(args);
        cmd
    }

    /// Writes the client's `config.json` with these `auths` (registry key → `user:password`).
    pub fn set_auths(&self, auths: &[(&str, &str)]) {
        write_auth_file(&self.config_dir.join("config.json"), auths);
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.daemon.log).unwrap_or_default()
    }
}

impl Drop for Dockerd {
    fn drop(&mut self) {
        // dockerd stops its own containerd and unmounts its data root when asked nicely; a
        // SIGKILL would leave both behind.
        let children = self.daemon.children();
        if !self.daemon.terminate(Duration::from_secs(15)) {
            for pid in children {
                let _ = Command::new("kill")
                    .args(["-KILL", &pid.to_string()])
                    .status();
            }
        }
        unmount_under(&self.dir);
    }
}

/// A registry auth file (`config.json` / `auth.json` format): `auths` keyed by registry, each
/// with `auth` = base64(`user:password`).
pub fn write_auth_file(path: &Path, auths: &[(&str, &str)]) {
    use base64::Engine as _;
    let auths: serde_json::Map<String, Value> = auths
        .iter()
        .map(|(key, creds)| {
            let auth = base64::engine::general_purpose::STANDARD.encode(creds);
            ((*key).to_owned(), json!({ "auth": auth }))
        })
        .collect();
    std::fs::write(
        path,
        serde_json::to_vec_pretty(&json!({ "auths": auths })).unwrap(),
    )
    .unwrap();
}

// === Podman ===

/// `podman` as root with its own storage root and run root, and a registries.conf that mirrors
/// `docker.io` to `mirror` over plain HTTP. Nothing of it keeps running between commands.
pub struct Podman {
    root: PathBuf,
    runroot: PathBuf,
    registries_conf: PathBuf,
}

impl Podman {
    pub fn new(dir: &Path, mirror: SocketAddr) -> Podman {
        Podman::with_registries_conf(
            dir,
            &format!(
                "[[registry]]\nprefix = \"docker.io\"\nlocation = \"docker.io\"\n\n\
                 [[registry.mirror]]\nlocation = \"{mirror}\"\ninsecure = true\n"
            ),
        )
    }

    /// Podman with this `registries.conf` text.
    pub fn with_registries_conf(dir: &Path, conf: &str) -> Podman {
        std::fs::create_dir_all(dir).unwrap();
        let registries_conf = dir.join("registries.conf");
        std::fs::write(&registries_conf, conf).unwrap();
        Podman {
            root: dir.join("root"),
            runroot: dir.join("runroot"),
            registries_conf,
        }
    }

    /// A `podman` command with this storage and registries.conf, reading credentials from
    /// `authfile` only.
    pub fn cmd(&self, authfile: &Path, args: &[&str]) -> Command {
        let mut cmd = Command::new("podman");
        cmd.env("CONTAINERS_REGISTRIES_CONF", &self.registries_conf)
            .env("REGISTRY_AUTH_FILE", authfile)
            .arg("--root")
            .arg(&self.root)
            .arg("--runroot")
            .arg(&self.runroot)
            .args(args);
        cmd
    }
}

impl Drop for Podman {
    fn drop(&mut self) {
        // The overlay driver mounts ROOT/overlay on itself.
        unmount_under(&self.root);
        unmount_under(&self.runroot);
    }
}

// === skopeo ===

/// `skopeo` with no host policy, auth file or proxy settings leaking in.
pub struct Skopeo {
    pub authfile: PathBuf,
}

impl Skopeo {
    pub fn new(dir: &Path) -> Skopeo {
        let authfile = dir.join("skopeo-auth.json");
        std::fs::write(&authfile, br#"{"auths":{}}"#).unwrap();
        Skopeo { authfile }
    }

    pub fn cmd(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new("skopeo");
        cmd.env("REGISTRY_AUTH_FILE", &self.authfile)
            .arg("--insecure-policy")
            .args(args);
        cmd
    }

    /// Runs skopeo, which must succeed; returns its stdout.
    pub fn run(&self, args: &[&str]) -> Vec<u8> {
        run_ok(&mut self.cmd(args))
    }

    /// `skopeo inspect --raw`: the manifest bytes exactly as served.
    pub fn raw_manifest(&self, image: &str, creds: Option<&str>) -> Vec<u8> {
        let mut args = vec!["inspect", "--raw", "--tls-verify=false"];
        if let Some(c) = creds {
            args.extend(["--creds", c]);
        }
        let image = format!("docker://{image}");
        args.push(&image);
        self.run(&args)
    }

    /// `skopeo copy --all ... dir:OUT`; returns every file of OUT.
    pub fn copy_to_dir(
        &self,
        image: &str,
        out: &Path,
        creds: Option<&str>,
    ) -> BTreeMap<String, Vec<u8>> {
        let src = format!("docker://{image}");
        let dst = format!("dir:{}", out.display());
        let mut args = vec!["copy", "--all", "--src-tls-verify=false"];
        if let Some(c) = creds {
            args.extend(["--src-creds", c]);
        }
        args.extend([src.as_str(), dst.as_str()]);
        self.run(&args);
        read_files(out)
    }
}

/// Every file of `dir` by name.
pub fn read_files(dir: &Path) -> BTreeMap<String, Vec<u8>> {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| {
            let e = e.unwrap();
            (
                e.file_name().to_string_lossy().into_owned(),
                std::fs::read(e.path()).unwrap(),
            )
        })
        .collect()
}

/// What skopeo told its user. skopeo prints errors as logrus `msg="..."` fields, with the
/// proxy's quotes escaped; unescape them so that messages compare as the proxy wrote them.
pub fn skopeo_says(out: &Finished) -> String {
    out.text().replace("\\\"", "\"")
}

// === the test image ===

/// `amd64` / `arm64` for the machine running the test: containerd only unpacks its own platform.
pub fn host_arch() -> &'static str {
    match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        other => other,
    }
}

/// An OCI image layout under construction.
struct Layout {
    dir: PathBuf,
}

impl Layout {
    fn new(dir: PathBuf) -> Layout {
        std::fs::create_dir_all(dir.join("blobs/sha256")).unwrap();
        std::fs::write(dir.join("oci-layout"), br#"{"imageLayoutVersion":"1.0.0"}"#).unwrap();
        Layout { dir }
    }

    /// Stores a blob; returns its descriptor.
    fn put(&self, media_type: &str, bytes: &[u8]) -> Value {
        let digest = sha256(bytes);
        let hex = digest.strip_prefix("sha256:").unwrap();
        std::fs::write(self.dir.join("blobs/sha256").join(hex), bytes).unwrap();
        json!({ "mediaType": media_type, "digest": digest, "size": bytes.len() })
    }

    /// Stores a JSON document as a blob; returns its descriptor.
    fn put_json(&self, media_type: &str, doc: &Value) -> Value {
        self.put(media_type, &serde_json::to_vec_pretty(doc).unwrap())
    }

    /// One platform's image: a tar layer holding `files`, its config and its manifest.
    fn image(&self, arch: &str, files: &[(&str, &[u8], u32)]) -> Value {
        let image = ImageParts::new(arch, files);
        self.put(OCI_LAYER_TAR, &image.layer);
        self.put(OCI_CONFIG, &image.config);
        self.put(OCI_MANIFEST, &image.manifest)
    }
}

/// The blobs of one platform's image whose one tar layer holds `files`.
pub struct ImageParts {
    pub layer: Vec<u8>,
    pub config: Vec<u8>,
    pub manifest: Vec<u8>,
}

impl ImageParts {
    pub fn new(arch: &str, files: &[(&str, &[u8], u32)]) -> ImageParts {
        let layer = tar_layer(files);
        let config = serde_json::to_vec_pretty(&json!({
            "created": "2024-01-01T00:00:00Z",
            "architecture": arch,
            "os": "linux",
            "config": { "Cmd": ["/bin/busybox", "cat", "/etc/portcullis-e2e.txt"] },
            "rootfs": { "type": "layers", "diff_ids": [sha256(&layer)] },
            "history": [{ "created": "2024-01-01T00:00:00Z", "created_by": "tests/e2e/real.rs" }]
        }))
        .unwrap();
        let manifest = serde_json::to_vec_pretty(&json!({
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "config": descriptor(OCI_CONFIG, &config),
            "layers": [descriptor(OCI_LAYER_TAR, &layer)]
        }))
        .unwrap();
        ImageParts {
            layer,
            config,
            manifest,
        }
    }
}

/// `{mediaType, digest, size}` of `bytes`.
pub fn descriptor(media_type: &str, bytes: &[u8]) -> Value {
    json!({ "mediaType": media_type, "digest": sha256(bytes), "size": bytes.len() })
}

/// Pushes an image for this machine's platform whose one layer holds `files` to `repo`, under
/// `reference` (a tag, or its digest when `None`); returns its manifest's descriptor.
pub async fn push_image(
    client: &reqwest::Client,
    registry: &str,
    repo: &str,
    reference: Option<&str>,
    files: &[(&str, &[u8], u32)],
) -> Value {
    let image = ImageParts::new(host_arch(), files);
    push_blob(client, registry, repo, &image.layer).await;
    push_blob(client, registry, repo, &image.config).await;
    let desc = descriptor(OCI_MANIFEST, &image.manifest);
    let digest = desc["digest"].as_str().unwrap().to_owned();
    let reference = reference.unwrap_or(&digest);
    push_manifest(
        client,
        registry,
        repo,
        reference,
        OCI_MANIFEST,
        &image.manifest,
    )
    .await;
    desc
}

/// Attaches `layer` (of `layer_type`) to `subject` as an OCI 1.1 artifact of `artifact_type`:
/// a manifest with the empty config, that one layer, `subject` and `annotations`, pushed by
/// digest. Returns its descriptor as a referrers listing shows it (with `artifactType` and
/// `annotations`), for [`push_referrers_index`].
#[allow(clippy::too_many_arguments)]
pub async fn push_referrer(
    client: &reqwest::Client,
    registry: &str,
    repo: &str,
    subject: &Value,
    artifact_type: &str,
    layer_type: &str,
    layer: &[u8],
    annotations: Value,
) -> Value {
    const EMPTY: &[u8] = b"{}";
    push_blob(client, registry, repo, EMPTY).await;
    push_blob(client, registry, repo, layer).await;
    let manifest = serde_json::to_vec(&json!({
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "artifactType": artifact_type,
        "config": descriptor("application/vnd.oci.empty.v1+json", EMPTY),
        "layers": [descriptor(layer_type, layer)],
        "subject": subject,
        "annotations": annotations,
    }))
    .unwrap();
    let mut desc = descriptor(OCI_MANIFEST, &manifest);
    let digest = desc["digest"].as_str().unwrap().to_owned();
    push_manifest(client, registry, repo, &digest, OCI_MANIFEST, &manifest).await;
    desc["artifactType"] = json!(artifact_type);
    desc["annotations"] = annotations;
    desc
}

/// Lists `referrers` of `subject` in the referrers tag schema's index `sha256-<hex>`, as
/// clients do for a registry without the referrers API (distribution 2.8).
pub async fn push_referrers_index(
    client: &reqwest::Client,
    registry: &str,
    repo: &str,
    subject: &Value,
    referrers: &[Value],
) {
    let index = serde_json::to_vec(&json!({
        "schemaVersion": 2,
        "mediaType": OCI_INDEX,
        "manifests": referrers,
    }))
    .unwrap();
    let tag = subject["digest"].as_str().unwrap().replace(':', "-");
    push_manifest(client, registry, repo, &tag, OCI_INDEX, &index).await;
}

/// An uncompressed tar with fixed owners and times; parent directories get their own entries.
fn tar_layer(files: &[(&str, &[u8], u32)]) -> Vec<u8> {
    let mut builder = tar::Builder::new(Vec::new());
    let mut dirs: Vec<&str> = files
        .iter()
        .filter_map(|(path, _, _)| path.rsplit_once('/').map(|(d, _)| d))
        .collect();
    dirs.sort_unstable();
    dirs.dedup();
    for dir in dirs {
        let mut h = tar::Header::new_ustar();
        h.set_entry_type(tar::EntryType::Directory);
        h.set_mode(0o755);
        h.set_size(0);
        h.set_mtime(1_704_067_200);
        builder
            .append_data(&mut h, format!("{dir}/"), std::io::empty())
            .unwrap();
    }
    for (path, data, mode) in files {
        let mut h = tar::Header::new_ustar();
        h.set_entry_type(tar::EntryType::Regular);
        h.set_mode(*mode);
        h.set_size(data.len() as u64);
        h.set_mtime(1_704_067_200);
        builder.append_data(&mut h, path, *data).unwrap();
    }
    builder.into_inner().unwrap()
}

/// Builds the test layout: tag `v1` = an image for the host platform (with `/bin/busybox` when
/// busybox-static is installed, so it is runnable), tag `multi` = an index of that image and an
/// image for another platform.
pub fn build_layout(dir: &Path) -> PathBuf {
    let layout = Layout::new(dir.join("layout"));
    let text: &[u8] = b"hello from the portcullis e2e test\n";
    let busybox = std::fs::read("/bin/busybox").ok();
    let mut files: Vec<(&str, &[u8], u32)> = vec![("etc/portcullis-e2e.txt", text, 0o644)];
    if let Some(b) = &busybox {
        files.push(("bin/busybox", b, 0o755));
    }
    let host = host_arch();
    let other = if host == "arm64" { "amd64" } else { "arm64" };
    let host_image = layout.image(host, &files);
    let other_image = layout.image(
        other,
        &[("etc/portcullis-e2e.txt", b"other platform\n", 0o644)],
    );

    let with = |desc: &Value, key: &str, value: Value| {
        let mut d = desc.clone();
        d[key] = value;
        d
    };
    let index = json!({
        "schemaVersion": 2,
        "mediaType": OCI_INDEX,
        "manifests": [
            with(&host_image, "platform", json!({ "architecture": host, "os": "linux" })),
            with(&other_image, "platform", json!({ "architecture": other, "os": "linux" })),
        ]
    });
    let index_desc = layout.put_json(OCI_INDEX, &index);
    let ref_name = |name: &str| json!({ "org.opencontainers.image.ref.name": name });
    let top = json!({
        "schemaVersion": 2,
        "mediaType": OCI_INDEX,
        "manifests": [
            with(&host_image, "annotations", ref_name("v1")),
            with(&index_desc, "annotations", ref_name("multi")),
        ]
    });
    std::fs::write(
        layout.dir.join("index.json"),
        serde_json::to_vec_pretty(&top).unwrap(),
    )
    .unwrap();
    layout.dir
}

/// Pushes `oci:LAYOUT:v1` to `company/app:v1` and `oci:LAYOUT:multi` (all platforms) to
/// `company/multi:v1`.
pub fn push_layout(skopeo: &Skopeo, layout: &Path, registry: &str, creds: Option<&str>) {
    for (tag, repo) in [("v1", "company/app:v1"), ("multi", "company/multi:v1")] {
        let src = format!("oci:{}:{tag}", layout.display());
        let dst = format!("docker://{registry}/{repo}");
        let mut args = vec!["copy", "--all", "--dest-tls-verify=false"];
        if let Some(c) = creds {
            args.extend(["--dest-creds", c]);
        }
        args.extend([src.as_str(), dst.as_str()]);
        skopeo.run(&args);
    }
}

/// Two `skopeo copy dir:` results must hold the same files with the same bytes.
pub fn assert_same_files(
    what: &str,
    direct: &BTreeMap<String, Vec<u8>>,
    proxied: &BTreeMap<String, Vec<u8>>,
) {
    let names = |m: &BTreeMap<String, Vec<u8>>| m.keys().cloned().collect::<Vec<_>>();
    assert_eq!(names(direct), names(proxied), "{what}: different files");
    for (name, bytes) in direct {
        assert!(
            proxied[name] == *bytes,
            "{what}: {name} differs (direct {} bytes {}, proxied {} bytes {})",
            bytes.len(),
            sha256(bytes),
            proxied[name].len(),
            sha256(&proxied[name])
        );
    }
    // Blob files are named by their digest: the names alone prove the layer and config arrived.
    assert!(
        direct.len() >= 4,
        "{what}: expected manifest, version and blobs, got {:?}",
        names(direct)
    );
}

/// A manifest fetched straight from the registry: its bytes must hash to `Docker-Content-Digest`.
pub async fn direct_manifest(
    client: &reqwest::Client,
    registry: &str,
    repo: &str,
    reference: &str,
    auth: Option<(&str, &str)>,
) -> Fetched {
    let url = format!("http://{registry}/v2/{repo}/manifests/{reference}");
    let m = fetch(client, reqwest::Method::GET, &url, auth, MANIFEST_ACCEPT).await;
    assert_eq!(m.status, 200, "{url}: {}", String::from_utf8_lossy(&m.body));
    assert_eq!(m.header("docker-content-digest"), sha256(&m.body), "{url}");
    m
}

/// The digests of every blob a manifest names (config and layers).
pub fn blob_digests(manifest: &[u8]) -> Vec<String> {
    let v: Value = serde_json::from_slice(manifest).unwrap();
    let mut out = vec![v["config"]["digest"].as_str().unwrap().to_owned()];
    for layer in v["layers"].as_array().unwrap() {
        out.push(layer["digest"].as_str().unwrap().to_owned());
    }
    out
}

// === HTTP ===

/// A response read to the end.
pub struct Fetched {
    pub status: u16,
    pub headers: reqwest::header::HeaderMap,
    pub body: Vec<u8>,
}

impl Fetched {
    pub fn header(&self, name: &str) -> &str {
        self.headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_else(|| panic!("no {name} header in {:?}", self.headers))
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

/// `method url` with `accept`, and basic credentials if given.
pub async fn fetch(
    client: &reqwest::Client,
    method: reqwest::Method,
    url: &str,
    auth: Option<(&str, &str)>,
    accept: &str,
) -> Fetched {
    let mut req = client.request(method, url).header("accept", accept);
    if let Some((user, password)) = auth {
        req = req.basic_auth(user, Some(password));
    }
    let resp = req.send().await.unwrap_or_else(|e| panic!("{url}: {e}"));
    let status = resp.status().as_u16();
    let headers = resp.headers().clone();
    let body = resp.bytes().await.unwrap().to_vec();
    Fetched {
        status,
        headers,
        body,
    }
}

/// `GET url` accepting every manifest type.
pub async fn get(client: &reqwest::Client, url: &str) -> Fetched {
    fetch(client, reqwest::Method::GET, url, None, MANIFEST_ACCEPT).await
}

// === metrics ===

pub async fn metrics(client: &reqwest::Client, admin: SocketAddr) -> String {
    let url = format!("http://{admin}/metrics");
    let resp = client
        .get(&url)
        .send()
        .await
        .unwrap_or_else(|e| panic!("{url}: {e}"));
    assert_eq!(resp.status().as_u16(), 200, "{url}");
    resp.text().await.unwrap()
}

/// The sum of the samples of metric `name` whose labels include every pair of `want`.
pub fn metric_sum(text: &str, name: &str, want: &[(&str, &str)]) -> f64 {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|line| {
            let (series, value) = line.rsplit_once(' ')?;
            let (metric, labels) = match series.split_once('{') {
                Some((m, rest)) => (m, rest.strip_suffix('}')?),
                None => (series, ""),
            };
            if metric != name {
                return None;
            }
            let labels: Vec<(&str, &str)> = labels
                .split(',')
                .filter_map(|kv| kv.split_once('='))
                .map(|(k, v)| (k, v.trim_matches('"')))
                .collect();
            if want.iter().all(|w| labels.contains(w)) {
                value.parse::<f64>().ok()
            } else {
                None
            }
        })
        .sum()
}

// === fixture plans ===

/// A registry under `tmp/registry` holding the plan of `fixtures` in each of `repos`.
pub async fn registry_with_plan(tmp: &Path, repos: &[&str], fixtures: &Fixtures) -> Registry {
    let registry = Registry::start(&tmp.join("registry"), None).await;
    let client = http_client();
    for repo in repos {
        push_plan(&client, &registry.addr, repo, fixtures).await;
    }
    registry
}

/// Pushes every image, signature and referrers index of the plan of `fixtures` into `repo`, in
/// the plan's order.
pub async fn push_plan(client: &reqwest::Client, registry: &str, repo: &str, fixtures: &Fixtures) {
    let mut pushed = std::collections::HashSet::new();
    for step in &fixtures.plan() {
        for b in step["blobs"].as_array().unwrap() {
            let hex = b.as_str().unwrap();
            // Images share their layer; one upload per repository is enough.
            if pushed.insert(hex.to_owned()) {
                push_blob(client, registry, repo, &fixtures.blob(hex)).await;
            }
        }
        push_manifest(
            client,
            registry,
            repo,
            step["reference"].as_str().unwrap(),
            step["media_type"].as_str().unwrap(),
            &fixtures.blob(step["manifest"].as_str().unwrap()),
        )
        .await;
    }
}

// === the proxy's audit events ===

/// The JSON log lines of a proxy started with `--log-format json`, kept as they are read so that
/// later checks can look back.
pub struct AuditLog<'a> {
    proxy: &'a crate::common::ProxyProcess,
    pub lines: Vec<serde_json::Value>,
    markers: usize,
}

impl<'a> AuditLog<'a> {
    /// How long an audit event may take to reach us after the response that caused it.
    pub const TIMEOUT: Duration = Duration::from_secs(10);

    pub fn new(proxy: &'a crate::common::ProxyProcess) -> AuditLog<'a> {
        AuditLog {
            proxy,
            lines: Vec::new(),
            markers: 0,
        }
    }

    /// Reads every line the proxy printed before now: sends a request the proxy refuses and logs
    /// (an unknown registry name, nothing forwarded), then reads until that line arrives. The
    /// proxy writes its log in order, so a check for an event's absence made after this one
    /// cannot pass merely because the event was still on its way.
    pub async fn settle(&mut self, client: &reqwest::Client) {
        self.markers += 1;
        let marker = format!("settle-{}.marker.invalid", self.markers);
        let url = format!("http://{}/v2/{marker}/x/manifests/latest", self.proxy.api);
        let status = client.get(&url).send().await.unwrap().status();
        assert_eq!(status, 404, "{url}");
        let deadline = Instant::now() + Self::TIMEOUT;
        let seen = |lines: &[serde_json::Value]| {
            lines.iter().any(|v| {
                v["message"] == "request refused"
                    && v["error"].as_str().is_some_and(|e| e.contains(&marker))
            })
        };
        while !seen(&self.lines) {
            let left = deadline.saturating_duration_since(Instant::now());
            assert!(
                !left.is_zero(),
                "the proxy did not log the refusal of {url}; log:\n{}",
                self.dump()
            );
            self.read(left.min(Duration::from_millis(200)));
        }
    }

    /// Reads what has arrived, waiting at most `wait` for the first new line.
    pub fn read(&mut self, wait: Duration) {
        let mut wait = wait;
        while let Ok(line) = self.proxy.logs.recv_timeout(wait) {
            if let Ok(v) = serde_json::from_str(&line) {
                self.lines.push(v);
            }
            wait = Duration::ZERO;
        }
    }

    /// The audit events (`target: portcullis::audit`, `event: verdict`) for `digest` under
    /// `rule` read so far.
    pub fn verdicts(&self, rule: &str, digest: &str) -> Vec<serde_json::Value> {
        self.lines
            .iter()
            .filter(|v| {
                v["target"] == "portcullis::audit"
                    && v["event"] == "verdict"
                    && v["rule"] == rule
                    && v["digest"] == digest
            })
            .cloned()
            .collect()
    }

    /// The first audit event for `digest` under `rule`, waiting for it up to [`Self::TIMEOUT`].
    pub fn verdict(&mut self, rule: &str, digest: &str) -> serde_json::Value {
        let deadline = Instant::now() + Self::TIMEOUT;
        loop {
            if let Some(v) = self.verdicts(rule, digest).into_iter().next() {
                return v;
            }
            let left = deadline.saturating_duration_since(Instant::now());
            assert!(
                !left.is_zero(),
                "no audit event for {digest} under rule {rule:?} within {:?}; log:\n{}",
                Self::TIMEOUT,
                self.dump()
            );
            self.read(left.min(Duration::from_millis(200)));
        }
    }

    pub fn dump(&self) -> String {
        self.lines
            .iter()
            .map(|v| v.to_string())
            .collect::<Vec<_>>()
            .join("\n")
    }
}

/// A field of an audit event that holds a JSON array as a string (`reasons`, `identities`,
/// `verified_by`).
pub fn audit_list(event: &serde_json::Value, field: &str) -> Vec<String> {
    let text = event[field]
        .as_str()
        .unwrap_or_else(|| panic!("audit event without a string {field:?}: {event}"));
    serde_json::from_str(text)
        .unwrap_or_else(|e| panic!("{field} of the audit event is not a JSON array ({e}): {event}"))
}

/// Whether any of `items` (e.g. an [`audit_list`]) contains `needle`.
pub fn any_contains(items: &[String], needle: &str) -> bool {
    items.iter().any(|i| i.contains(needle))
}
