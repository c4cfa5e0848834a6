//! End-to-end tests of the pull ledger: CNCF distribution holds the signed fixture images, the
//! real `portcullis` binary records every pull, containerd (`ctr`, mirror form) and skopeo
//! (prefix form) pull through it under an audit and an enforce rule, and `portcullis audit`
//! reports them from the database: a real PostgreSQL 15 shared by two proxy processes, and the
//! embedded SQLite default with one.
//!
//! PostgreSQL: `scripts/test.sh` starts one server for the whole run and names it in
//! `PORTCULLIS_TEST_POSTGRES_URL` (`postgres://postgres@127.0.0.1:PORT`); each test creates its
//! own database on it. Without the variable (a focused `cargo test`), the test starts a server
//! of its own (`initdb`/`pg_ctl` of the Debian package, as user `postgres`; needs root) and stops
//! it when done. A missing PostgreSQL is a test failure, unless `PORTCULLIS_SKIP_E2E=1`.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::common::fixtures::Fixtures;
use crate::common::{write_config, ProxyProcess};
use crate::harness::{
    assert_pull_refused, assert_pulled, free_port, mirror_hosts_dir, prerequisites,
    registry_with_plan, run, Containerd, Skopeo, EVIL_IDENTITY, UPSTREAM,
};

const FIXTURES: Fixtures = Fixtures::SIGSTORE;

// === PostgreSQL ===

/// A PostgreSQL server: the run's (from the environment) or one this test started.
pub(crate) struct Postgres {
    base_url: String,
    own: Option<(PathBuf, PathBuf)>,
}

fn postgres_bin() -> Option<PathBuf> {
    let mut dirs: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .ok()?
        .filter_map(|e| e.ok().map(|e| e.path().join("bin")))
        .filter(|d| d.join("initdb").is_file() && d.join("pg_ctl").is_file())
        .collect();
    dirs.sort();
    dirs.pop()
}

impl Postgres {
    pub(crate) fn get() -> Option<Postgres> {
        if let Ok(url) = std::env::var("PORTCULLIS_TEST_POSTGRES_URL") {
            return Some(Postgres {
                base_url: url,
                own: None,
            });
        }
        let bin = postgres_bin();
        if bin.is_none() || !crate::harness::is_root() {
            let what = "PostgreSQL (initdb and pg_ctl under /usr/lib/postgresql, run as root) or \
                        PORTCULLIS_TEST_POSTGRES_URL";
            if std::env::var("PORTCULLIS_SKIP_E2E").as_deref() == Ok("1") {
                eprintln!("SKIPPED (PORTCULLIS_SKIP_E2E=1): this e2e test needs {what}");
                return None;
            }
            panic!("this e2e test needs {what}; apt-get install -y postgresql");
        }
        let bin = bin.unwrap();
        // One directory per server: tests that run at once each start their own.
        static SERVERS: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let n = SERVERS.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        let dir = std::env::temp_dir().join(format!("portcullis-pg-{}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        assert!(
            run(Command::new("chown").args(["postgres:postgres"]).arg(&dir))
                .status
                .success()
        );
        let as_postgres = |tool: &str| {
            let mut c = Command::new("runuser");
            c.args(["-u", "postgres", "--"]).arg(bin.join(tool));
            c
        };
        let data = dir.join("data");
        let out = run(as_postgres("initdb")
            .args(["-A", "trust", "-U", "postgres", "-D"])
            .arg(&data));
        assert!(out.status.success(), "initdb: {}", out.text());
        let port = free_port();
        let out = run(as_postgres("pg_ctl")
            .arg("-D")
            .arg(&data)
            .arg("-o")
            .arg(format!(
                "-p {port} -k {} -c listen_addresses=127.0.0.1",
                dir.display()
            ))
            .arg("-l")
            .arg(dir.join("postgres.log"))
            .args(["-w", "start"]));
        assert!(out.status.success(), "pg_ctl start: {}", out.text());
        Some(Postgres {
            base_url: format!("postgres://postgres@127.0.0.1:{port}"),
            own: Some((bin, dir)),
        })
    }

    /// A new, empty database on the server; its URL.
    pub(crate) async fn database(&self, name: &str) -> String {
        let (client, conn) = tokio_postgres::connect(
            &format!("{}/postgres", self.base_url),
            tokio_postgres::NoTls,
        )
        .await
        .unwrap();
        tokio::spawn(conn);
        let db = format!("{name}_{}", std::process::id());
        client
            .batch_execute(&format!("DROP DATABASE IF EXISTS {db}"))
            .await
            .unwrap();
        client
            .batch_execute(&format!("CREATE DATABASE {db}"))
            .await
            .unwrap();
        format!("{}/{db}", self.base_url)
    }

    /// A new database brought to schema `version` the way that version's program did (each
    /// migration's PostgreSQL statements, then those of both backends): its URL and a
    /// connection to it, for migration tests to write rows of that schema.
    pub(crate) async fn database_at(
        &self,
        name: &str,
        version: usize,
    ) -> (String, tokio_postgres::Client) {
        use portcullis::db::schema;
        let url = self.database(name).await;
        let (client, conn) = tokio_postgres::connect(&url, tokio_postgres::NoTls)
            .await
            .unwrap();
        tokio::spawn(conn);
        client.batch_execute(schema::VERSION_TABLE).await.unwrap();
        for (i, m) in schema::MIGRATIONS[..version].iter().enumerate() {
            for s in m.postgres.iter().chain(m.both) {
                client.batch_execute(s).await.unwrap();
            }
            client
                .execute(
                    "INSERT INTO portcullis_schema (version, applied_at) VALUES ($1, 0)",
                    &[&(i as i64 + 1)],
                )
                .await
                .unwrap();
        }
        (url, client)
    }
}

impl Drop for Postgres {
    fn drop(&mut self) {
        if let Some((bin, dir)) = &self.own {
            let _ = Command::new("runuser")
                .args(["-u", "postgres", "--"])
                .arg(bin.join("pg_ctl"))
                .arg("-D")
                .arg(dir.join("data"))
                .args(["-m", "immediate", "-w", "stop"])
                .output();
            let _ = std::fs::remove_dir_all(dir);
        }
    }
}

// === the scenario ===

/// The policy config of proxy `name` under `tmp`: `audited` (`local/audit/**`, audit) and
/// `enforced` (`local/enforce/**`, enforce), both with the fixtures' attestors; `database` as
/// given (empty: the SQLite default under the proxy's state_dir).
fn config(tmp: &Path, name: &str, upstream: &str, database: &str) -> PathBuf {
    let dir = tmp.join(name);
    std::fs::create_dir_all(&dir).unwrap();
    let extra = format!(
        "trusted_root: {root}\n{database}policies:\n\
         \x20 - name: enforced\n    match: [\"local/enforce/**\"]\n    mode: enforce\n{both}\
         \x20 - name: audited\n    match: [\"local/audit/**\"]\n    mode: audit\n{both}",
        root = FIXTURES.path("trusted_root.json").display(),
        both = FIXTURES.attestors(),
    );
    write_config(
        &dir,
        UPSTREAM,
        &format!("  {UPSTREAM}: {{ url: \"http://{upstream}\" }}"),
        &extra,
    )
}

/// Stops a proxy with SIGTERM (it writes what its ledger holds before it exits).
fn stop(mut proxy: ProxyProcess) {
    let pid = proxy.child.id().to_string();
    assert!(Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .unwrap()
        .success());
    let deadline = Instant::now() + Duration::from_secs(30);
    while proxy.child.try_wait().unwrap().is_none() {
        assert!(
            Instant::now() < deadline,
            "portcullis did not stop on SIGTERM"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn audit(config: &Path, args: &[&str]) -> String {
    let out = run(Command::new(env!("CARGO_BIN_EXE_portcullis"))
        .arg("audit")
        .arg("--config")
        .arg(config)
        .args(args));
    assert!(out.status.success(), "portcullis audit: {}", out.text());
    String::from_utf8(out.stdout).unwrap()
}

fn find<'a>(list: &'a Value, image: &str, digest: &str) -> &'a Value {
    list.as_array()
        .unwrap()
        .iter()
        .find(|e| e["image"] == image && e["digest"] == digest)
        .unwrap_or_else(|| panic!("{image}@{digest} not in {list:#}"))
}

/// containerd pulls through proxy `a`, skopeo through proxy `b` (the same one for SQLite); then
/// `portcullis audit` must show every pull, grouped by rule and image.
async fn pulls_are_reported(tmp: &Path, database: &str, two_proxies: bool) {
    let registry = registry_with_plan(tmp, &["audit/app", "enforce/app"], &FIXTURES).await;
    let config_a = config(tmp, "proxy-a", &registry.addr, database);
    let a = ProxyProcess::start(&config_a);
    let b = if two_proxies {
        Some(ProxyProcess::start(&config(
            tmp,
            "proxy-b",
            &registry.addr,
            database,
        )))
    } else {
        None
    };
    let b_addr = b.as_ref().map_or(a.api, |b| b.api);

    let containerd = Containerd::start(&tmp.join("containerd")).await;
    let hosts = mirror_hosts_dir(&tmp.join("hosts"), UPSTREAM, a.api);
    let unsigned = FIXTURES.digest("unsigned");
    let evil = FIXTURES.digest("evil-bundle");
    let signed = FIXTURES.digest("keyless-bundle");
    let image = "local/audit/app:unsigned";
    assert_pulled(&containerd.pull(&hosts, image, &[]), image, &unsigned);
    let image = "local/enforce/app:keyless-bundle";
    assert_pulled(&containerd.pull(&hosts, image, &[]), image, &signed);
    let image = "local/enforce/app:unsigned";
    assert_pull_refused(&containerd.pull(&hosts, image, &[]), image);

    let skopeo = Skopeo::new(tmp);
    let inspect = |image: &str| {
        run(&mut skopeo.cmd(&[
            "inspect",
            "--raw",
            "--tls-verify=false",
            &format!("docker://{b_addr}/{UPSTREAM}/{image}"),
        ]))
    };
    assert!(inspect("audit/app:unsigned").status.success());
    assert!(inspect("audit/app:evil-bundle").status.success());
    let refused = inspect("enforce/app:evil-bundle");
    assert!(!refused.status.success(), "{}", refused.text());

    // The admin API's view of the image, once what the proxies hold is written.
    tokio::time::sleep(Duration::from_millis(2500)).await;
    let view: Value = crate::harness::http_client()
        .get(format!("http://{}/api/v1/images/local/audit/app", a.admin))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let agents: Vec<&str> = view["clients"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|c| c["user_agent"].as_str())
        .collect();
    assert!(
        agents.iter().any(|a| a.starts_with("containerd/"))
            && agents.iter().any(|a| a.starts_with("skopeo/")),
        "{view:#}"
    );
    stop(a);
    if let Some(b) = b {
        stop(b);
    }

    let report: Value = serde_json::from_str(&audit(&config_a, &["--json"])).unwrap();
    let app = "local/audit/app";
    let e = find(&report["let_through"], app, &unsigned);
    assert_eq!(e["rule"], "audited", "{e:#}");
    assert_eq!(e["finding"], "unsigned", "{e:#}");
    // containerd's HEAD by tag + GET by digest is one pull; skopeo's GET by tag another.
    assert_eq!(e["pulls"], 2, "{e:#}");
    assert_eq!(e["tags"], serde_json::json!(["unsigned"]), "{e:#}");
    let e = find(&report["let_through"], app, &evil);
    assert_eq!(e["finding"], "unexpected_signer", "{e:#}");
    assert!(
        e["identities"]
            .as_array()
            .unwrap()
            .iter()
            .any(|i| i.as_str().unwrap_or("").contains(EVIL_IDENTITY)),
        "{e:#}"
    );
    assert_eq!(e["pulls"], 1, "{e:#}");
    assert_eq!(
        report["let_through"].as_array().unwrap().len(),
        2,
        "{report:#}"
    );

    let e = find(&report["refused"], "local/enforce/app", &unsigned);
    assert_eq!(e["rule"], "enforced", "{e:#}");
    assert_eq!(e["pulls"], 1, "{e:#}");
    let e = find(&report["refused"], "local/enforce/app", &evil);
    assert!(e["pulls"].as_i64().unwrap() >= 1, "{e:#}");
    assert_eq!(report["refused"].as_array().unwrap().len(), 2, "{report:#}");
    assert!(
        report["faults"].as_array().unwrap().is_empty(),
        "{report:#}"
    );

    let text = audit(&config_a, &[]);
    assert!(text.contains("rule audited (audit): "), "{text}");
    assert!(text.contains("[ ] local/audit/app: "), "{text}");
    assert!(
        text.contains(&format!("{unsigned} (unsigned): 2 pull(s)")),
        "{text}"
    );
    assert!(text.contains("signed by: "), "{text}");
    assert!(text.contains("rule enforced (enforce): "), "{text}");
    assert!(
        !text.contains(&signed),
        "a verified pull is no finding: {text}"
    );
    let only = audit(
        &config_a,
        &["--rule", "enforced", "--image", "local/enforce/*"],
    );
    assert!(!only.contains("rule audited"), "{only}");
    assert!(only.contains("[ ] local/enforce/app: "), "{only}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_proxies_on_one_postgresql_and_audit_shows_all_their_pulls() {
    if !prerequisites(&["docker-registry", "containerd", "ctr", "skopeo"], true) {
        return;
    }
    let Some(pg) = Postgres::get() else {
        return;
    };
    let url = pg.database("ledger_two_proxies").await;
    let tmp = tempfile::tempdir().unwrap();
    pulls_are_reported(
        tmp.path(),
        &format!("database: {{ url: \"{url}\" }}\n"),
        true,
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_sqlite_default_records_and_audit_shows_the_pulls() {
    if !prerequisites(&["docker-registry", "containerd", "ctr", "skopeo"], true) {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    pulls_are_reported(tmp.path(), "", false).await;
    assert!(tmp.path().join("proxy-a/state/portcullis.db").is_file());
}
