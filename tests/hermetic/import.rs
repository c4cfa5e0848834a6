//! `portcullis import`: the real binary on policy files, its exit statuses, and the file it
//! writes read back by `check-config`.

use std::path::Path;
use std::process::Command;

fn portcullis(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_portcullis"))
        .args(args)
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn fixture(name: &str) -> String {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/import")
        .join(name)
        .display()
        .to_string()
}

#[test]
fn import_writes_a_configuration_that_check_config_accepts() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("portcullis.yaml");
    let out = out.to_str().unwrap();
    let (code, stdout, err) = portcullis(&["import", "kyverno", &fixture("team.yaml"), "-o", out]);
    assert_eq!(code, 0, "{err}");
    assert!(stdout.is_empty(), "-o writes the file, not standard output");
    assert!(err.contains("imported 1 rule(s)"), "{err}");

    let (code, described, err) = portcullis(&[
        "check-config",
        "--config",
        out,
        "our-registry.io/company/team/api:1.2",
    ]);
    assert_eq!(code, 0, "{err}");
    assert!(
        described.contains("rule \"verify-company-images/github-keyless\" (enforce) applies to our-registry.io/company/team/api"),
        "{described}"
    );

    // To standard output, several files at once.
    let (code, stdout, err) = portcullis(&[
        "import",
        "kyverno",
        &fixture("team.yaml"),
        &fixture("kyverno-docs.yaml"),
    ]);
    assert_eq!(code, 0, "{err}");
    let rules = stdout
        .lines()
        .filter(|l| l.starts_with("  - name: "))
        .count();
    assert_eq!(rules, 4, "{stdout}");
}

#[test]
fn partial_imports_exit_1_unless_allowed_and_unknown_fields_exit_2() {
    let pc = fixture("policy-controller-docs.yaml");
    let (code, stdout, err) = portcullis(&["import", "policy-controller", &pc]);
    assert_eq!(code, 1, "{err}");
    assert!(stdout.contains("# NOT CARRIED OVER:"), "{stdout}");
    assert!(
        err.contains("not carried over: rule \"image-policy-attested\""),
        "{err}"
    );
    let (code, _, err) = portcullis(&["import", "policy-controller", "--allow-partial", &pc]);
    assert_eq!(code, 0, "{err}");

    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("bad.yaml");
    let text = std::fs::read_to_string(fixture("team.yaml"))
        .unwrap()
        .replace("issuer:", "isuer:");
    std::fs::write(&bad, text).unwrap();
    let (code, stdout, err) = portcullis(&["import", "kyverno", bad.to_str().unwrap()]);
    assert_eq!(code, 2);
    assert!(stdout.is_empty());
    assert!(
        err.contains("field `spec.rules[0].verifyImages[0].attestors[0].entries[0].keyless.isuer`: unknown field `isuer`"),
        "{err}"
    );
    // The wrong tool's file is named as such.
    let (code, _, err) = portcullis(&["import", "kyverno", &pc]);
    assert_eq!(code, 2);
    assert!(err.contains("apiVersion"), "{err}");
}
