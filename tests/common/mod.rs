//! What both test binaries use: the real `portcullis` binary as a child process, config files,
//! and digests. Helpers that only one binary needs live in that binary (`hermetic/fake.rs`,
//! `e2e/harness.rs`), so that everything here is used by both.

/// The signed fixture sets.
pub mod fixtures;

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

/// A `portcullis serve` child process; killed on drop.
pub struct ProxyProcess {
    pub child: Child,
    pub api: SocketAddr,
    pub admin: SocketAddr,
    /// Log lines (JSON) printed after start-up.
    pub logs: mpsc::Receiver<String>,
    /// The lines printed during start-up, up to and including the "portcullis listening" line
    /// (e.g. the warnings about insecure settings).
    pub startup: Vec<String>,
}

impl ProxyProcess {
    /// Starts the binary with `config_path`, waiting until it logs its listening addresses.
    // The child is either returned inside a ProxyProcess (whose Drop kills and waits) or killed
    // and waited for before the panic.
    #[allow(clippy::zombie_processes)]
    pub fn start(config_path: &Path) -> ProxyProcess {
        Self::start_with_env(config_path, &[])
    }

    /// [`ProxyProcess::start`] with extra environment variables (credentials the configuration
    /// names by variable).
    #[allow(clippy::zombie_processes)]
    pub fn start_with_env(config_path: &Path, env: &[(&str, &str)]) -> ProxyProcess {
        let mut child = Command::new(env!("CARGO_BIN_EXE_portcullis"))
            .args(["--log-format", "json", "serve", "--config"])
            .arg(config_path)
            // Refused requests are logged at debug: `AuditLog::settle` in the end-to-end tests
            // uses one as a marker that every earlier line has been read.
            .env("PORTCULLIS_LOG", "info,portcullis::registry_api=debug")
            .envs(env.iter().copied())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn portcullis");
        let stderr = child.stderr.take().expect("stderr piped");
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let deadline = std::time::Instant::now() + Duration::from_secs(20);
        let mut startup = Vec::new();
        loop {
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            let line = match rx.recv_timeout(left) {
                Ok(l) => l,
                Err(_) => {
                    let _ = child.kill();
                    let _ = child.wait();
                    panic!("portcullis did not report its listening addresses");
                }
            };
            startup.push(line.clone());
            let Ok(v) = serde_json::from_str::<serde_json::Value>(&line) else {
                eprintln!("portcullis: {line}");
                continue;
            };
            if v["message"] == "portcullis listening" {
                let api = v["api_addr"].as_str().unwrap().parse().unwrap();
                let admin = v["admin_addr"].as_str().unwrap().parse().unwrap();
                return ProxyProcess {
                    child,
                    api,
                    admin,
                    logs: rx,
                    startup,
                };
            }
        }
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.api)
    }
}

impl Drop for ProxyProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        // A failing test shows what the proxy printed; the lines the test itself took from
        // `logs` are not repeated. The reader thread ends at the killed child's end of output.
        if std::thread::panicking() {
            let mut rest = Vec::new();
            while let Ok(line) = self.logs.recv_timeout(Duration::from_secs(1)) {
                rest.push(line);
            }
            eprintln!(
                "portcullis (api {}, admin {}) printed at start-up:\n{}\nthen, unread by the test:\n{}",
                self.api,
                self.admin,
                self.startup.join("\n"),
                rest.join("\n")
            );
        }
    }
}

/// A config file for the proxy, listening on ephemeral ports, with `upstreams_yaml` (the
/// indented body of the `upstreams:` map) and `default` upstream. What it keeps (the content
/// store) goes to `dir/state`, so that tests never share state.
pub fn write_config(
    dir: &Path,
    default: &str,
    upstreams_yaml: &str,
    extra: &str,
) -> std::path::PathBuf {
    let path = dir.join("portcullis.yaml");
    // What the proxy keeps (the ledger's SQLite file) stays in the test's directory.
    let state = if extra.contains("state_dir:") {
        ""
    } else {
        "state_dir: state\n"
    };
    let text = format!(
        "listen: 127.0.0.1:0\nadmin_listen: 127.0.0.1:0\ndefault_upstream: {default}\nupstreams:\n{upstreams_yaml}\n{state}{extra}\n"
    );
    std::fs::write(&path, text).unwrap();
    path
}

/// sha256 of bytes as `sha256:<hex>`.
pub fn sha256(bytes: &[u8]) -> String {
    use sha2::Digest;
    format!("sha256:{}", hex::encode(sha2::Sha256::digest(bytes)))
}
