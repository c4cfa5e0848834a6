//! The command line: `check-config` on good and bad files, start-up errors that name the key and
//! the file, and TLS serving with HTTP/2 negotiated by ALPN.

use std::io::Read;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// How long a command may run: `serve` on a configuration it accepts would run forever.
const DEADLINE: Duration = Duration::from_secs(30);

fn portcullis(args: &[&str]) -> (i32, String, String) {
    portcullis_env(args, &[])
}

/// Runs the binary with `env` added to the environment; exit code, stdout, stderr. Fails the test
/// when it has not exited within [`DEADLINE`].
fn portcullis_env(args: &[&str], env: &[(&str, &str)]) -> (i32, String, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_portcullis"))
        .args(args)
        .envs(env.iter().copied())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let drain = |mut r: Box<dyn Read + Send>| {
        std::thread::spawn(move || {
            let mut s = String::new();
            let _ = r.read_to_string(&mut s);
            s
        })
    };
    let out = drain(Box::new(child.stdout.take().unwrap()));
    let err = drain(Box::new(child.stderr.take().unwrap()));
    let started = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if started.elapsed() > DEADLINE {
            let _ = child.kill();
            let _ = child.wait();
            panic!("portcullis {args:?} still running after {DEADLINE:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    (
        status.code().unwrap_or(-1),
        out.join().unwrap(),
        err.join().unwrap(),
    )
}

#[test]
fn check_config_describes_routing() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("pw"), "hunter2\n").unwrap();
    let path = crate::fake::write_config(
        dir.path(),
        "docker.io",
        "  docker.io: { url: \"https://registry-1.docker.io\" }\n  ghcr.io: { url: \"https://ghcr.io\", username: bot, password_file: pw }",
        "",
    );
    let p = path.to_str().unwrap();
    let (code, out, err) = portcullis(&["check-config", "--config", p, "ghcr.io/company/app:v1"]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("is valid"), "{out}");
    assert!(
        out.contains("image ghcr.io/company/app:v1: ghcr.io/company/app via upstream ghcr.io"),
        "{out}"
    );
    assert!(out.contains("user bot (password_file"), "{out}");
    assert!(!out.contains("hunter2"), "a password must never be printed");

    let (code, out, _) = portcullis(&["check-config", "--config", p, "alpine"]);
    assert_eq!(code, 0);
    assert!(
        out.contains("docker.io/library/alpine via upstream docker.io"),
        "{out}"
    );
}

#[test]
fn bad_configs_are_start_up_errors_naming_key_and_file() {
    let dir = tempfile::tempdir().unwrap();
    let cases = [
        ("unknown: 1", "unknown field `unknown`"),
        (
            "limits: { max_manifest_bytes: 0 }",
            "key `limits.max_manifest_bytes`: must be greater than 0",
        ),
        (
            "tls: { cert: missing.crt, key: missing.key }",
            "key `tls.cert`: cannot read",
        ),
    ];
    for (extra, key) in cases {
        let path = crate::fake::write_config(
            dir.path(),
            "r.local",
            "  r.local: { url: \"http://127.0.0.1:1\" }",
            extra,
        );
        let p = path.to_str().unwrap();
        for cmd in [
            &["check-config", "--config", p][..],
            &["serve", "--config", p][..],
        ] {
            let (code, _, err) = portcullis(cmd);
            assert_eq!(code, 2, "{cmd:?}: {err}");
            assert!(err.contains(key), "{cmd:?}: {err}");
            assert!(err.contains(p), "{cmd:?} does not name {p}: {err}");
        }
    }
    let path = crate::fake::write_config(
        dir.path(),
        "r.local",
        "  r.local: { url: \"not a url\" }",
        "",
    );
    let (code, _, err) = portcullis(&["check-config", "--config", path.to_str().unwrap()]);
    assert_eq!(code, 2);
    assert!(err.contains("upstreams.r.local.url"), "{err}");
}

/// `PORTCULLIS__A__B` variables in the process environment override `a.b` (the path `serve` and
/// `check-config` take), and an override that makes the file invalid is named in the error.
#[test]
fn environment_overrides_apply_to_the_real_commands() {
    let dir = tempfile::tempdir().unwrap();
    let path = crate::fake::write_config(
        dir.path(),
        "r.local",
        "  r.local: { url: \"http://127.0.0.1:1\" }",
        "",
    );
    let p = path.to_str().unwrap();
    let (code, out, err) = portcullis_env(
        &["check-config", "--config", p],
        &[("PORTCULLIS__LISTEN", "127.0.0.1:6123")],
    );
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("listen: 127.0.0.1:6123"), "{out}");
    for cmd in [
        &["check-config", "--config", p][..],
        &["serve", "--config", p][..],
    ] {
        let (code, _, err) =
            portcullis_env(cmd, &[("PORTCULLIS__LIMITS__MAX_MANIFEST_BYTES", "0")]);
        assert_eq!(code, 2, "{cmd:?}: {err}");
        assert!(
            err.contains("key `limits.max_manifest_bytes`: must be greater than 0")
                && err.contains(p),
            "{cmd:?}: {err}"
        );
    }
    let (code, _, err) = portcullis_env(
        &["check-config", "--config", p],
        &[("PORTCULLIS__LISTEN", "not an address")],
    );
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("key `listen`"), "{err}");
}

#[test]
fn tls_key_must_match_certificate() {
    let dir = tempfile::tempdir().unwrap();
    let a = rcgen::generate_simple_self_signed(vec!["a".to_owned()]).unwrap();
    let b = rcgen::generate_simple_self_signed(vec!["b".to_owned()]).unwrap();
    std::fs::write(dir.path().join("tls.crt"), a.cert.pem()).unwrap();
    std::fs::write(dir.path().join("tls.key"), b.key_pair.serialize_pem()).unwrap();
    let path = crate::fake::write_config(
        dir.path(),
        "r.local",
        "  r.local: { url: \"http://127.0.0.1:1\" }",
        "tls: { cert: tls.crt, key: tls.key }",
    );
    let (code, _, err) = portcullis(&["check-config", "--config", path.to_str().unwrap()]);
    assert_eq!(code, 2, "{err}");
    assert!(
        err.contains("key `tls`") && err.contains("tls.key"),
        "{err}"
    );
}

#[tokio::test]
async fn serves_tls_with_http2_via_alpn() {
    let dir = tempfile::tempdir().unwrap();
    let cert = rcgen::generate_simple_self_signed(vec!["localhost".to_owned()]).unwrap();
    std::fs::write(dir.path().join("tls.crt"), cert.cert.pem()).unwrap();
    std::fs::write(dir.path().join("tls.key"), cert.key_pair.serialize_pem()).unwrap();
    let path = crate::fake::write_config(
        dir.path(),
        "r.local",
        "  r.local: { url: \"http://127.0.0.1:1\" }",
        "tls: { cert: tls.crt, key: tls.key }",
    );
    let proxy = crate::fake::Proxy::start_file(&path, dir).await;
    let port = proxy.url.rsplit(':').next().unwrap().to_owned();
    let client = reqwest::Client::builder()
        .add_root_certificate(reqwest::Certificate::from_pem(cert.cert.pem().as_bytes()).unwrap())
        .resolve("localhost", format!("127.0.0.1:{port}").parse().unwrap())
        .no_proxy()
        .build()
        .unwrap();
    let resp = client
        .get(format!("https://localhost:{port}/v2/"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.version(), reqwest::Version::HTTP_2);

    let http1 = reqwest::Client::builder()
        .add_root_certificate(reqwest::Certificate::from_pem(cert.cert.pem().as_bytes()).unwrap())
        .resolve("localhost", format!("127.0.0.1:{port}").parse().unwrap())
        .http1_only()
        .no_proxy()
        .build()
        .unwrap();
    let resp = http1
        .get(format!("https://localhost:{port}/v2/"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.version(), reqwest::Version::HTTP_11);
}
