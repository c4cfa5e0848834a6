use super::*;
use std::io::Write;
use std::time::Duration;

use crate::policy::Mode;

fn load_str(yaml: &str) -> Result<Config, ConfigError> {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("c.yaml");
    std::fs::write(&path, yaml).unwrap();
    Config::load_with_env(
        Some(&path),
        config::Environment::with_prefix("PORTCULLIS_TEST_NONE"),
        Vec::new(),
    )
}

const MINIMAL: &str = "listen: 127.0.0.1:5000\nadmin_listen: 127.0.0.1:9095\ndefault_upstream: r.local\nupstreams:\n  r.local: { url: 'http://127.0.0.1:5001' }\n";

#[test]
fn embedded_default_is_valid() {
    let c = Config::load_with_env(
        None,
        config::Environment::with_prefix("PORTCULLIS_TEST_NONE"),
        Vec::new(),
    )
    .unwrap();
    assert_eq!(c.default_upstream, "docker.io");
    for k in [
        "docker.io",
        "ghcr.io",
        "quay.io",
        "registry.k8s.io",
        "gcr.io",
    ] {
        assert!(c.upstreams.contains_key(k), "{k}");
    }
    assert_eq!(c.limits.max_manifest_bytes, 4 * 1024 * 1024);
    assert_eq!(c.trusted_root.origin, "embedded public-good root");
    assert_eq!(c.policies.rules.len(), 1);
    assert_eq!(c.policies.rules[0].mode, Mode::Audit);
}

const FIXTURES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures");

fn with_policy(policy: &str) -> Result<Config, ConfigError> {
    load_str(&format!(
        "{MINIMAL}trusted_root: {FIXTURES}/sigstore/trusted_root.json\npolicies:\n{policy}"
    ))
}

#[test]
fn policies_are_validated_with_their_keys_named() {
    let ok = with_policy(&format!(
        "  - name: a\n    match: [\"r.local/team/**\"]\n    attestors:\n      - keyless: {{ subject_regexp: \"x.+\", issuer: \"https://i\" }}\n      - key: {{ public_key: {FIXTURES}/keys/ed25519.pub, ignore_tlog: true }}\n    count: 2\n"
    ))
    .unwrap();
    let rule = &ok.policies.rules[0];
    assert_eq!(rule.mode, Mode::Enforce, "a rule without a mode enforces");
    assert_eq!(rule.count, 2);
    assert!(ok.trusted_root.origin.ends_with("trusted_root.json"));

    let cases: &[(&str, &[&str])] = &[
        (
            "  - name: a\n    match: [\"r.local/**\"]\n    attestors:\n      - keyless: { subject_regexp: \"(\", issuer: \"i\" }\n",
            &["policies[0] (\"a\").attestors[0].keyless.subject_regexp", "bad regexp"],
        ),
        (
            "  - name: a\n    match: [\"r.local/**\"]\n    attestors:\n      - keyless: { subject: \"s\", subject_regexp: \"s\", issuer: \"i\" }\n",
            &["policies[0] (\"a\").attestors[0].keyless", "exactly one of subject"],
        ),
        (
            "  - name: a\n    match: [\"r.local/**\"]\n    attestors:\n      - key: { public_key: nope.pub }\n",
            &["policies[0] (\"a\").attestors[0].key.public_key", "nope.pub"],
        ),
        (
            "  - name: a\n    match: [\"r.local/**\"]\n    attestors:\n      - key: { public_key: \"-----BEGIN PUBLIC KEY-----\\nAAAA\\n-----END PUBLIC KEY-----\" }\n",
            &["policies[0] (\"a\").attestors[0].key.public_key", "inline PEM"],
        ),
        (
            "  - name: a\n    match: [\"r.local//x\"]\n    attestors:\n      - keyless: { subject: s, issuer: i }\n",
            &["policies[0] (\"a\").match[0]"],
        ),
        (
            "  - name: a\n    match: [\"r.local/**\"]\n    mode: enforce\n",
            &["policies[0] (\"a\")", "needs at least one attestor"],
        ),
        (
            "  - name: a\n    match: [\"r.local/**\"]\n    mode: block\n    attestors: []\n",
            &["block"],
        ),
        (
            "  - name: a\n    match: [\"r.local/**\"]\n    attestors:\n      - keyless: { subject: s, issuer: i }\n        extra: 1\n",
            &["extra"],
        ),
        (
            "  - name: a\n    match: [\"r.local/**\"]\n    signature_repository: nowhere/sigs\n    attestors:\n      - keyless: { subject: s, issuer: i }\n",
            &["policies[0] (\"a\").signature_repository", "nowhere"],
        ),
        (
            "  - name: a\n    match: [\"r.local/a\"]\n    attestors:\n      - keyless: { subject: s, issuer: i }\n  - name: a\n    match: [\"r.local/b\"]\n    attestors:\n      - keyless: { subject: s, issuer: i }\n",
            &["used twice"],
        ),
    ];
    let attestation = |a: &str| {
        format!("  - name: a\n    match: [\"r.local/**\"]\n    attestors:\n      - keyless: {{ subject: s, issuer: i }}\n    attestations:\n{a}")
    };
    let bad_cel = attestation("      - predicate_type: slsaprovenance\n        conditions: [\"predicate.a == 1\", \"predicate.b ==\"]\n");
    let bad_var = attestation(
        "      - predicate_type: spdxjson\n        conditions: [\"predicat.a == 1\"]\n",
    );
    let bad_type = attestation("      - predicate_type: slsa\n");
    let extra_cases: &[(&str, &[&str])] = &[
        (
            &bad_cel,
            &[
                "policies[0] (\"a\").attestations[0].conditions[1]",
                "does not compile",
            ],
        ),
        (
            &bad_var,
            &[
                "policies[0] (\"a\").attestations[0].conditions[0]",
                "unknown variable \"predicat\"",
            ],
        ),
        (
            &bad_type,
            &[
                "policies[0] (\"a\").attestations[0].predicate_type",
                "short name",
            ],
        ),
    ];
    for (yaml, needles) in cases.iter().chain(extra_cases) {
        let err = with_policy(yaml).unwrap_err().to_string();
        for n in *needles {
            assert!(err.contains(n), "{err:?} should mention {n:?}");
        }
    }
    // The file is read at load; what it holds is checked where the trust root is built.
    let foreign = load_str(&format!(
        "{MINIMAL}trusted_root: {FIXTURES}/keys/p256.pub\n"
    ))
    .unwrap();
    let err = crate::signature::TrustRoot::load(&foreign.trusted_root)
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("trusted_root") && err.contains("not a Sigstore trusted root"),
        "{err}"
    );
}

#[test]
fn from_yaml_is_load_without_the_environment() {
    let text = Config::from_yaml(MINIMAL, Source::Embedded).unwrap();
    let file = load_str(MINIMAL).unwrap();
    assert_eq!(text.listen, file.listen);
    assert_eq!(text.default_upstream, file.default_upstream);
    let err = Config::from_yaml(&format!("{MINIMAL}bogus: 1\n"), Source::Embedded)
        .unwrap_err()
        .to_string();
    assert!(err.contains("bogus"), "{err}");
}

#[test]
fn minimal_file_gets_defaults() {
    let c = load_str(MINIMAL).unwrap();
    assert_eq!(
        c.upstreams["r.local"].url.as_str(),
        "http://127.0.0.1:5001/"
    );
    assert_eq!(c.timeouts.connect, Duration::from_secs(5));
}

#[test]
fn unknown_key_is_named() {
    let err = load_str(&format!("{MINIMAL}bogus: 1\n"))
        .unwrap_err()
        .to_string();
    assert!(err.contains("bogus"), "{err}");
    let err = load_str(&MINIMAL.replace("url:", "urll:"))
        .unwrap_err()
        .to_string();
    assert!(err.contains("urll"), "{err}");
}

#[test]
fn bad_url_and_default_are_named() {
    let err = load_str(&MINIMAL.replace("http://127.0.0.1:5001", "ftp://x"))
        .unwrap_err()
        .to_string();
    assert!(err.contains("upstreams.r.local.url"), "{err}");
    let err = load_str(&MINIMAL.replace("default_upstream: r.local", "default_upstream: nope"))
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("default_upstream") && err.contains("nope"),
        "{err}"
    );
    let err = load_str(&MINIMAL.replace("http://127.0.0.1:5001", "https://h/path"))
        .unwrap_err()
        .to_string();
    assert!(err.contains("base URL"), "{err}");
}

#[test]
fn missing_password_file_is_named() {
    let yaml = MINIMAL.replace(
        "{ url: 'http://127.0.0.1:5001' }",
        "{ url: 'http://127.0.0.1:5001', username: u, password_file: nope.txt }",
    );
    let err = load_str(&yaml).unwrap_err().to_string();
    assert!(err.contains("upstreams.r.local.password_file"), "{err}");
    assert!(err.contains("nope.txt"), "{err}");
}

#[test]
fn password_file_is_read_relative_and_never_printed() {
    let dir = tempfile::tempdir().unwrap();
    let mut f = std::fs::File::create(dir.path().join("pw")).unwrap();
    writeln!(f, "s3cret").unwrap();
    let path = dir.path().join("c.yaml");
    std::fs::write(
        &path,
        MINIMAL.replace(
            "{ url: 'http://127.0.0.1:5001' }",
            "{ url: 'http://127.0.0.1:5001', username: u, password_file: pw }",
        ),
    )
    .unwrap();
    let c = Config::load_with_env(
        Some(&path),
        config::Environment::with_prefix("PORTCULLIS_TEST_NONE"),
        Vec::new(),
    )
    .unwrap();
    let creds = c.upstreams["r.local"].credentials.clone().unwrap();
    assert_eq!(creds.password.expose(), "s3cret");
    assert!(!format!("{c:?}").contains("s3cret"));
}

#[test]
fn env_overrides_nested_keys() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("c.yaml");
    std::fs::write(&path, MINIMAL).unwrap();
    // The path `Config::load` takes, with these variables as the environment.
    let c = Config::load_from_vars(
        Some(&path),
        [
            ("PORTCULLIS__LISTEN", "127.0.0.1:6000"),
            ("PORTCULLIS__LIMITS__MAX_MANIFEST_BYTES", "1024"),
            ("PORTCULLIS__TIMEOUTS__CONNECT", "2s"),
            ("PORTCULLISX__LISTEN", "127.0.0.1:7000"),
            ("HOME", "/root"),
        ]
        .map(|(k, v)| (k.to_owned(), v.to_owned())),
    )
    .unwrap();
    assert_eq!(c.listen.port(), 6000);
    assert_eq!(c.limits.max_manifest_bytes, 1024);
    assert_eq!(c.timeouts.connect, Duration::from_secs(2));

    let err = Config::load_from_vars(
        Some(&path),
        [(
            "PORTCULLIS__LIMITS__MAX_MANIFEST_BYTES".to_owned(),
            "0".to_owned(),
        )],
    )
    .unwrap_err()
    .to_string();
    assert!(err.contains("key `limits.max_manifest_bytes`"), "{err}");
}

#[test]
fn missing_config_file_is_an_error() {
    let err = Config::load(Some(Path::new("/nonexistent/portcullis.yaml")))
        .unwrap_err()
        .to_string();
    assert!(err.contains("/nonexistent/portcullis.yaml"), "{err}");
}

/// Loads `yaml` from a folder that also holds `files` (name, contents).
fn load_with_files(yaml: &str, files: &[(&str, &str)]) -> Result<Config, ConfigError> {
    let dir = tempfile::tempdir().unwrap();
    for (name, text) in files {
        std::fs::write(dir.path().join(name), text).unwrap();
    }
    let path = dir.path().join("c.yaml");
    std::fs::write(&path, yaml).unwrap();
    Config::load_with_env(
        Some(&path),
        config::Environment::with_prefix("PORTCULLIS_TEST_NONE"),
        Vec::new(),
    )
}

fn err_text(r: Result<Config, ConfigError>) -> String {
    r.unwrap_err().to_string()
}

#[test]
fn auth_and_admin_keys_are_validated() {
    let hash = bcrypt::hash("pw", 4).unwrap();
    let htpasswd = format!("ci:{hash}\nnodes:{hash}\n");
    let ok = load_with_files(
        &format!("{MINIMAL}auth:\n  htpasswd: users\n  access:\n    - {{ match: [\"r.local/team/**\"], users: [ci] }}\n"),
        &[("users", &htpasswd)],
    )
    .unwrap();
    let auth = ok.auth.unwrap();
    assert_eq!(auth.htpasswd.unwrap().users().count(), 2);
    assert_eq!(auth.access.len(), 1);
    assert_eq!(auth.realm, "portcullis");

    // (config, files beside it, what the error must name)
    type Case<'a> = (String, &'a [(&'a str, &'a str)], &'a [&'a str]);
    let cases: &[Case] = &[
        (
            format!("{MINIMAL}auth: {{ htpasswd: users }}\n"),
            &[("users", "ci:$apr1$x$y\n")],
            &["auth.htpasswd", "line 1", "not bcrypt"],
        ),
        (format!("{MINIMAL}auth: {{ htpasswd: nope }}\n"), &[], &["auth.htpasswd", "nope"]),
        (format!("{MINIMAL}auth: {{}}\n"), &[], &["`auth`", "needs htpasswd, client_ca"]),
        (
            format!("{MINIMAL}auth: {{ client_ca: ca.pem }}\n"),
            &[],
            &["auth.client_ca", "need the TLS listener"],
        ),
        (
            format!("{MINIMAL}auth:\n  htpasswd: users\n  access: [{{ match: [\"r.local/**\"], users: [ghost] }}]\n"),
            &[("users", &htpasswd)],
            &["auth.access[0].users", "ghost"],
        ),
        (
            MINIMAL.replace("admin_listen: 127.0.0.1:9095", "admin_listen: 0.0.0.0:9095"),
            &[],
            &["admin.token_file", "not a loopback address"],
        ),
        (
            format!("{MINIMAL}admin: {{ token_file: t }}\n"),
            &[("t", "short\n")],
            &["admin.token_file", "shorter than 16"],
        ),
        (
            format!("{MINIMAL}admin: {{ open: [everything] }}\n"),
            &[],
            &["everything"],
        ),
        (
            format!("{MINIMAL}limits: {{ max_connections: 10, max_connections_per_address: 11 }}\n"),
            &[],
            &["limits.max_connections_per_address", "more than limits.max_connections"],
        ),
        (
            MINIMAL.replace("{ url: 'http://127.0.0.1:5001' }", "{ url: 'http://127.0.0.1:5001', token_realms: ['https://sso/x'] }"),
            &[],
            &["upstreams.r.local.token_realms[0]", "no scheme"],
        ),
        (format!("{MINIMAL}timeouts: {{ exchange: 0s }}\n"), &[], &["timeouts.exchange"]),
    ];
    for (yaml, files, wanted) in cases {
        let text = err_text(load_with_files(yaml, files));
        for w in *wanted {
            assert!(text.contains(w), "{w:?} not in {text:?}");
        }
        assert!(!text.contains(&hash), "a hash in {text:?}");
    }

    let admin = load_with_files(
        &format!(
            "{}admin: {{ token_file: t, open: [healthz, readyz] }}\n",
            MINIMAL.replace("admin_listen: 127.0.0.1:9095", "admin_listen: 0.0.0.0:9095")
        ),
        &[("t", "0123456789abcdef0123\n")],
    )
    .unwrap()
    .admin;
    assert_eq!(admin.token.unwrap().expose(), "0123456789abcdef0123");
    assert_eq!(admin.open, [AdminEndpoint::Healthz, AdminEndpoint::Readyz]);
    let realms = load_with_files(
        &MINIMAL.replace(
            "{ url: 'http://127.0.0.1:5001' }",
            "{ url: 'http://127.0.0.1:5001', token_realms: [SSO.corp, 'tokens.corp:8443'] }",
        ),
        &[],
    )
    .unwrap();
    assert_eq!(
        realms.upstreams["r.local"].token_realms,
        ["sso.corp", "tokens.corp:8443"]
    );
}

#[test]
fn state_dir_resolves_against_the_config_file_and_must_be_a_directory() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("c.yaml");
    std::fs::write(&path, format!("{MINIMAL}state_dir: state\n")).unwrap();
    let c = Config::load_with_env(
        Some(&path),
        config::Environment::with_prefix("PORTCULLIS_TEST_NONE"),
        Vec::new(),
    )
    .unwrap();
    assert_eq!(c.state_dir, dir.path().join("state"));

    std::fs::write(dir.path().join("afile"), b"x").unwrap();
    std::fs::write(&path, format!("{MINIMAL}state_dir: afile\n")).unwrap();
    let err = Config::load_with_env(
        Some(&path),
        config::Environment::with_prefix("PORTCULLIS_TEST_NONE"),
        Vec::new(),
    )
    .unwrap_err()
    .to_string();
    assert!(
        err.contains("key `state_dir`") && err.contains("is not a directory"),
        "{err}"
    );
}

#[test]
fn database_and_ledger_keys_are_validated() {
    let c = load_str(MINIMAL).unwrap();
    match &c.database {
        DatabaseSettings::Sqlite { path } => assert!(path.ends_with("portcullis.db"), "{path:?}"),
        other => panic!("{other:?}"),
    }
    assert_eq!(c.ledger.retention, Duration::from_secs(90 * 86400));
    assert!(c.ledger.enabled);
    let c = load_str(&format!("{MINIMAL}ledger: {{ enabled: false }}\n")).unwrap();
    assert!(!c.ledger.enabled);
    let c = load_str(&format!(
        "{MINIMAL}database: sqlite\nledger: {{ retention: 7d }}\n"
    ))
    .unwrap();
    assert!(matches!(c.database, DatabaseSettings::Sqlite { .. }));
    assert_eq!(c.ledger.retention, Duration::from_secs(7 * 86400));

    std::env::set_var("PORTCULLIS_TEST_PGPASSWORD", "s3cret-pg");
    let c = load_str(&format!(
        "{MINIMAL}database: {{ url: 'postgres://portcullis@db.local/portcullis', password_env: PORTCULLIS_TEST_PGPASSWORD }}\n"
    ))
    .unwrap();
    let described = c.database.describe();
    assert!(
        described.contains("postgres://portcullis@db.local/portcullis"),
        "{described}"
    );
    assert!(!format!("{described} {:?}", c.database).contains("s3cret-pg"));

    for (extra, key) in [
        ("database: mysql\n", "key `database`"),
        (
            "database: { url: 'postgres://db/p', bogus: 1 }\n",
            "key `database.bogus`",
        ),
        ("database: { password_env: X }\n", "key `database.url`"),
        ("database: { url: 'http://db/p' }\n", "key `database.url`"),
        (
            "database: { url: 'postgres://u:pw@db/p' }\n",
            "key `database.url`",
        ),
        (
            "database: { url: 'postgres://u@db/p?password=pw@x' }\n",
            "must not carry a password",
        ),
        (
            "database: { url: 'postgres://u:pw@[bad/p' }\n",
            "key `database.url`: not a URL",
        ),
        (
            "database: { url: 'postgres://db/p', password_env: PORTCULLIS_TEST_UNSET_VAR }\n",
            "key `database.password_env`",
        ),
        ("ledger: { retention: 1m }\n", "key `ledger.retention`"),
        ("ledger: { keep: 1d }\n", "ledger"),
        ("ledger: { enabled: maybe }\n", "ledger"),
    ] {
        let err = load_str(&format!("{MINIMAL}{extra}"))
            .unwrap_err()
            .to_string();
        assert!(err.contains(key), "{extra}: {err}");
        assert!(!err.contains("pw@"), "{err}");
    }
}
