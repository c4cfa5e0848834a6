//! End-to-end tests of attestation requirements with real parts: CNCF distribution
//! (`docker-registry`) holds the images of `tests/fixtures/sigstore/attestations/` with their
//! signatures, SLSA provenance and SPDX attestations (cosign v3 bundle referrers, legacy `.att`
//! layers, a BuildKit attestation manifest), the real `portcullis` binary verifies them against
//! that fixture set's own mock Sigstore trusted root and `cosign.pub`, containerd (`ctr`) pulls
//! through it, and `portcullis verify --json` reports what it found.
//!
//! A rule passes only when its signature requirement *and* every attestation requirement hold:
//! a correctly signed image whose provenance names the wrong repository, is signed by the wrong
//! identity, or is about another digest is refused like an unsigned one.
//!
//! Needs `docker-registry` and, for the containerd tests, `containerd`, `ctr` and root. A missing
//! tool is a test failure, unless `PORTCULLIS_SKIP_E2E=1` is set, which turns it into a skip.
//! Every process started here is killed by PID when its guard drops; every wait has a deadline.

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;

use crate::common::fixtures::{Fixtures, ISSUER};
use crate::common::{write_config, ProxyProcess};
use crate::harness::{
    any_contains, assert_pull_refused, assert_pulled, audit_list, get, http_client, metric_sum,
    metrics, mirror_hosts_dir, prerequisites, registry_with_plan, run, AuditLog, Containerd,
    Fetched, Registry, EVIL_IDENTITY, OK_IDENTITY, UPSTREAM,
};

const SLSA_V1: &str = "https://slsa.dev/provenance/v1";
const SPDX: &str = "https://spdx.dev/Document";
const FIXTURES: Fixtures = Fixtures::ATTESTATIONS;

/// The provenance condition of the `provenance-*` rules, and what the proxy says when the
/// provenance of `attested-evil-repo` fails it.
const REPO_CONDITION: &str = "predicate.buildDefinition.externalParameters.workflow.repository \
== \"https://github.com/acme/app\"";
const EVIL_REPO_REASON: &str = "provenance: condition 1 false: \
predicate.buildDefinition.externalParameters.workflow.repository == \"https://github.com/acme/app\" \
(predicate.buildDefinition.externalParameters.workflow.repository = \"https://github.com/evil/app\")";
/// How a `slsaprovenance` requirement that found provenance but none it can use begins.
const NO_VERIFIED_PROVENANCE: &str = "provenance: no verified https://slsa.dev/provenance/v0.2 \
or https://slsa.dev/provenance/v1 attestation (";
/// A condition that BuildKit's SLSA v0.2 provenance meets.
const BUILDKIT_CONDITION: &str = "predicate.buildType == \"https://mobyproject.org/buildkit@v1\"";
const MUSL: &str = "predicate.packages.exists(p, p.name == \"musl\")";
const OPENSSL: &str = "predicate.packages.exists(p, p.name == \"openssl\")";

// === fixtures ===

/// One enforce or audit rule over `local/<prefix>/**` with both attestors and `attestations`
/// (the YAML list items, indented by six spaces).
fn rule(name: &str, prefix: &str, mode: &str, attestations: &str) -> String {
    format!(
        "  - name: {name}\n    match: [\"{UPSTREAM}/{prefix}/**\"]\n    mode: {mode}\n{}\
         \x20   attestations:\n{attestations}",
        FIXTURES.attestors()
    )
}

/// An attestation requirement as a YAML list item.
fn requirement(
    name: &str,
    predicate_type: &str,
    allow_unsigned: bool,
    conditions: &[&str],
) -> String {
    let mut s = format!(
        "      - name: {name}\n        predicate_type: {predicate_type}\n        allow_unsigned: {allow_unsigned}\n"
    );
    if !conditions.is_empty() {
        s.push_str("        conditions:\n");
        for c in conditions {
            // Single-quoted YAML: the conditions hold double quotes and no single ones.
            s.push_str(&format!("          - '{c}'\n"));
        }
    }
    s
}

/// A proxy config with upstream `local` at `upstream_url` and these rules:
/// - `provenance-enforced` (`local/enforce/**`) and `provenance-audited` (`local/audit/**`):
///   SLSA provenance (v0.2 or v1) built from `github.com/acme/app`;
/// - `buildkit-unsigned` (`local/buildkit/**`): provenance built by BuildKit, BuildKit's unsigned
///   statements allowed; `buildkit-signed-only` (`local/buildkit-strict/**`): the same with
///   `allow_unsigned: false`; `buildkit-sbom-only` (`local/buildkit-sbom/**`): BuildKit's unsigned
///   SBOM allowed, but the provenance must be signed;
/// - `sbom-musl` (`local/sbom/**`): an SPDX SBOM listing musl; `sbom-openssl`
///   (`local/sbom-openssl/**`): one listing musl and openssl.
fn attestation_config(dir: &Path, upstream_url: &str) -> PathBuf {
    std::fs::create_dir_all(dir).unwrap();
    let provenance = requirement("provenance", "slsaprovenance", false, &[REPO_CONDITION]);
    let buildkit = |allow_unsigned| {
        requirement(
            "provenance",
            "slsaprovenance",
            allow_unsigned,
            &[BUILDKIT_CONDITION],
        )
    };
    let rules = [
        rule("provenance-enforced", "enforce", "enforce", &provenance),
        rule("provenance-audited", "audit", "audit", &provenance),
        rule("buildkit-unsigned", "buildkit", "enforce", &buildkit(true)),
        rule(
            "buildkit-signed-only",
            "buildkit-strict",
            "enforce",
            &buildkit(false),
        ),
        rule(
            "buildkit-sbom-only",
            "buildkit-sbom",
            "enforce",
            &format!(
                "{}{}",
                requirement("sbom", "spdxjson", true, &[]),
                buildkit(false)
            ),
        ),
        rule(
            "sbom-musl",
            "sbom",
            "enforce",
            &requirement("sbom", "spdxjson", false, &[MUSL]),
        ),
        rule(
            "sbom-openssl",
            "sbom-openssl",
            "enforce",
            &requirement("sbom", "spdxjson", false, &[MUSL, OPENSSL]),
        ),
    ];
    let extra = format!(
        "trusted_root: {}\nunmatched: allow\npolicies:\n{}",
        FIXTURES.path("trusted_root.json").display(),
        rules.concat()
    );
    write_config(
        dir,
        UPSTREAM,
        &format!("  {UPSTREAM}: {{ url: \"{upstream_url}\" }}"),
        &extra,
    )
}

/// A registry holding the fixture plan in each of `repos`, and the config of a proxy in front
/// of it.
async fn registry_with(tmp: &Path, repos: &[&str]) -> (Registry, PathBuf) {
    let registry = registry_with_plan(tmp, repos, &FIXTURES).await;
    let config = attestation_config(&tmp.join("proxy"), &format!("http://{}", registry.addr));
    (registry, config)
}

// === HTTP ===

/// `GET` of a manifest through the proxy, in the mirror form containerd uses.
async fn get_manifest(
    client: &reqwest::Client,
    proxy: &ProxyProcess,
    repo: &str,
    reference: &str,
) -> Fetched {
    let url = format!(
        "{}/v2/{repo}/manifests/{reference}?ns={UPSTREAM}",
        proxy.url()
    );
    get(client, &url).await
}

/// A `GET` of `local/<repo>:<tag>` must answer `403` with an OCI `DENIED` error whose message
/// names the image, the digest of `tag`'s fixture image and the rule, and contains every one of
/// `reasons`. Returns the message.
async fn assert_denied(
    client: &reqwest::Client,
    proxy: &ProxyProcess,
    repo: &str,
    tag: &str,
    rule: &str,
    reasons: &[&str],
) -> String {
    let got = get_manifest(client, proxy, repo, tag).await;
    let text = got.text();
    assert_eq!(got.status, 403, "GET {repo}:{tag}: {text}");
    let body: Value = serde_json::from_str(&text)
        .unwrap_or_else(|e| panic!("GET {repo}:{tag}: the error body is not JSON ({e}): {text}"));
    let error = &body["errors"][0];
    assert_eq!(error["code"], "DENIED", "GET {repo}:{tag}: {text}");
    let message = error["message"].as_str().unwrap_or_default().to_owned();
    let head = format!(
        "{UPSTREAM}/{repo}@{} refused by policy \"{rule}\" (enforce): ",
        FIXTURES.digest(tag)
    );
    assert!(
        message.starts_with(&head),
        "GET {repo}:{tag}: the message should start with {head:?}: {message}"
    );
    for reason in reasons {
        assert!(
            message.contains(reason),
            "GET {repo}:{tag}: the message should contain {reason:?}: {message}"
        );
    }
    message
}

/// A `GET` of `local/<repo>:<tag>` must serve the fixture bytes of `tag`'s image.
async fn assert_served(client: &reqwest::Client, proxy: &ProxyProcess, repo: &str, tag: &str) {
    let got = get_manifest(client, proxy, repo, tag).await;
    assert_eq!(got.status, 200, "GET {repo}:{tag}: {}", got.text());
    assert!(
        got.body == FIXTURES.blob(&FIXTURES.digest(tag)),
        "GET {repo}:{tag}: the bytes served differ from the fixture"
    );
}

// === portcullis verify ===

/// `portcullis verify IMAGE --config CONFIG --json`: its exit code and its report.
fn verify_json(config: &Path, image: &str) -> (Option<i32>, Value) {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_portcullis"));
    cmd.args(["verify", image, "--json", "--config"])
        .arg(config);
    let out = run(&mut cmd);
    let report = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "verify --json {image} printed no JSON object ({e}):\n{}",
            out.text()
        )
    });
    (out.status.code(), report)
}

/// The attestations of a `verify --json` report with predicate type `predicate_type`.
fn attestations_of<'a>(report: &'a Value, predicate_type: &str) -> Vec<&'a Value> {
    report["attestations"]
        .as_array()
        .unwrap_or_else(|| panic!("no attestations list in the report: {report}"))
        .iter()
        .filter(|a| a["predicate_type"] == predicate_type)
        .collect()
}

/// The only attestation of `predicate_type` in a report.
fn only_attestation<'a>(report: &'a Value, predicate_type: &str) -> &'a Value {
    let found = attestations_of(report, predicate_type);
    assert_eq!(
        found.len(),
        1,
        "expected one {predicate_type} attestation: {report}"
    );
    found[0]
}

/// What `requirement` made of each condition over `attestation`.
fn conditions(attestation: &Value, requirement: &str) -> Vec<Value> {
    let reqs = attestation["requirements"].as_array().unwrap();
    let req = reqs
        .iter()
        .find(|r| r["requirement"] == requirement)
        .unwrap_or_else(|| panic!("no requirement {requirement:?} in {attestation}"));
    req["conditions"].as_array().unwrap().clone()
}

// === tests ===

/// containerd under an enforce rule that requires SLSA provenance from `github.com/acme/app`:
/// images with valid signatures and provenance pull whatever the format (bundle referrers,
/// legacy `.sig` + `.att`, key-signed bundles); images whose signature is valid but whose
/// provenance names another repository, is signed by another identity, or is about another
/// digest are refused, each with its own reason, and none of their bytes reach containerd.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn containerd_pulls_attested_images_and_is_refused_bad_provenance_under_enforce() {
    if !prerequisites(&["docker-registry", "containerd", "ctr"], true) {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let (_registry, config) = registry_with(tmp.path(), &["enforce/app"]).await;
    let proxy = ProxyProcess::start(&config);
    let containerd = Containerd::start(&tmp.path().join("containerd")).await;
    let hosts = mirror_hosts_dir(&tmp.path().join("hosts"), UPSTREAM, proxy.api);
    let client = http_client();
    let mut log = AuditLog::new(&proxy);
    let rule = "provenance-enforced";

    let pulled = [
        ("attested", OK_IDENTITY),
        ("attested-legacy", OK_IDENTITY),
        ("attested-key", "cosign.pub"),
    ];
    for (name, signer) in pulled {
        let image = format!("{UPSTREAM}/enforce/app:{name}");
        let d = FIXTURES.digest(name);
        assert_pulled(&containerd.pull(&hosts, &image, &[]), &image, &d);
        let event = log.verdict(rule, &d);
        assert_eq!(event["result"], "verified", "{image}: {event}");
        assert_eq!(event["mode"], "enforce", "{image}: {event}");
        assert!(audit_list(&event, "reasons").is_empty(), "{image}: {event}");
        assert!(
            any_contains(&audit_list(&event, "verified_by"), signer),
            "{image}: verified_by should name {signer}: {event}"
        );
    }

    let evil_signer =
        format!("signed by {EVIL_IDENTITY} (issuer {ISSUER}), which this attestor does not allow");
    let refused: [(&str, Vec<&str>); 3] = [
        ("attested-evil-repo", vec![EVIL_REPO_REASON]),
        (
            "attested-evil-signer",
            vec![NO_VERIFIED_PROVENANCE, &evil_signer],
        ),
        (
            "attested-wrong-subject",
            vec![
                NO_VERIFIED_PROVENANCE,
                "artifact mismatch: artifact hash does not match any subject in attestation",
            ],
        ),
    ];
    for (name, reasons) in &refused {
        let image = format!("{UPSTREAM}/enforce/app:{name}");
        let d = FIXTURES.digest(name);
        assert_pull_refused(&containerd.pull(&hosts, &image, &[]), &image);
        let event = log.verdict(rule, &d);
        assert_eq!(event["result"], "unverified", "{image}: {event}");
        let got = audit_list(&event, "reasons");
        assert_eq!(got.len(), 1, "{image}: one failed requirement: {event}");
        for reason in reasons {
            assert!(
                got[0].contains(reason),
                "{image}: the reason should contain {reason:?}: {event}"
            );
        }
        // The image signature itself verified: the attestation alone refused it.
        assert!(
            any_contains(&audit_list(&event, "verified_by"), OK_IDENTITY),
            "{image}: the image signature should have verified: {event}"
        );
        assert_denied(&client, &proxy, "enforce/app", name, rule, reasons).await;
    }

    let content = containerd.content_digests();
    for (name, _) in pulled {
        assert!(
            content.contains(&FIXTURES.digest(name)),
            "containerd's content store lacks {name}: {content:?}"
        );
    }
    for (name, _) in &refused {
        assert!(
            !content.contains(&FIXTURES.digest(name)),
            "the refused manifest of {name} reached containerd's content store"
        );
    }

    let text = metrics(&client, proxy.admin).await;
    let verdicts = |result: &str| {
        metric_sum(
            &text,
            "portcullis_verdicts_total",
            &[("rule", rule), ("mode", "enforce"), ("result", result)],
        )
    };
    assert!(verdicts("verified") >= 3.0, "{text}");
    assert!(verdicts("unverified") >= 3.0, "{text}");
    assert_eq!(verdicts("error"), 0.0, "{text}");
}

/// The same requirement under audit: provenance from the wrong repository is served, and its
/// audit event records the failed condition with the value found; a good image's event says
/// verified.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn containerd_pulls_bad_provenance_under_audit_and_the_event_says_why() {
    if !prerequisites(&["docker-registry", "containerd", "ctr"], true) {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let (_registry, config) = registry_with(tmp.path(), &["audit/app"]).await;
    let proxy = ProxyProcess::start(&config);
    let containerd = Containerd::start(&tmp.path().join("containerd")).await;
    let hosts = mirror_hosts_dir(&tmp.path().join("hosts"), UPSTREAM, proxy.api);
    let mut log = AuditLog::new(&proxy);
    let rule = "provenance-audited";

    for name in ["attested-evil-repo", "attested"] {
        let image = format!("{UPSTREAM}/audit/app:{name}");
        assert_pulled(
            &containerd.pull(&hosts, &image, &[]),
            &image,
            &FIXTURES.digest(name),
        );
    }

    let evil = log.verdict(rule, &FIXTURES.digest("attested-evil-repo"));
    assert_eq!(evil["result"], "unverified", "{evil}");
    assert_eq!(evil["mode"], "audit", "{evil}");
    assert_eq!(evil["image"], "local/audit/app", "{evil}");
    assert_eq!(audit_list(&evil, "reasons"), [EVIL_REPO_REASON], "{evil}");

    let good = log.verdict(rule, &FIXTURES.digest("attested"));
    assert_eq!(good["result"], "verified", "{good}");
    assert_eq!(good["mode"], "audit", "{good}");
    assert!(audit_list(&good, "reasons").is_empty(), "{good}");
    assert!(
        any_contains(&audit_list(&good, "verified_by"), OK_IDENTITY),
        "{good}"
    );
}

/// A BuildKit image index (`docker buildx build --provenance`) carries unsigned in-toto
/// statements about its platform manifests. A rule with `allow_unsigned: true` accepts them
/// inside the signed index: containerd pulls the index and its amd64 manifest, covered by the
/// index's verdict. Without `allow_unsigned` the same index is refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn buildkit_unsigned_provenance_counts_only_with_allow_unsigned() {
    if !prerequisites(&["docker-registry", "containerd", "ctr"], true) {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let (_registry, config) = registry_with(
        tmp.path(),
        &["buildkit/app", "buildkit-strict/app", "buildkit-sbom/app"],
    )
    .await;
    let proxy = ProxyProcess::start(&config);
    let containerd = Containerd::start(&tmp.path().join("containerd")).await;
    let hosts = mirror_hosts_dir(&tmp.path().join("hosts"), UPSTREAM, proxy.api);
    let client = http_client();
    let mut log = AuditLog::new(&proxy);
    let index = FIXTURES.digest("buildkit");
    let amd64 = FIXTURES.digest("buildkit-amd64");
    let platform = ["--platform", "linux/amd64"];

    let image = format!("{UPSTREAM}/buildkit/app:buildkit");
    assert_pulled(&containerd.pull(&hosts, &image, &platform), &image, &index);
    let event = log.verdict("buildkit-unsigned", &index);
    assert_eq!(event["result"], "verified", "{event}");
    log.settle(&client).await;
    assert!(
        log.verdicts("buildkit-unsigned", &amd64).is_empty(),
        "the amd64 manifest was verified on its own instead of being covered by its index:\n{}",
        log.dump()
    );
    let content = containerd.content_digests();
    for d in [&index, &amd64] {
        assert!(
            content.contains(d),
            "containerd's content store lacks {d}: {content:?}"
        );
    }

    // What the index's verdict rested on: BuildKit's provenance about the amd64 manifest.
    let (code, report) = verify_json(&config, &image);
    assert_eq!(code, Some(0), "{report}");
    let provenance = only_attestation(&report, "https://slsa.dev/provenance/v0.2");
    assert_eq!(provenance["verified_by"], "unsigned (BuildKit)", "{report}");
    assert_eq!(provenance["about"], amd64.as_str(), "{report}");
    let c = conditions(provenance, "provenance");
    assert_eq!(c.len(), 1, "{report}");
    assert_eq!(c[0]["result"], "true", "{report}");

    // allow_unsigned off: the same index is refused, and the refusal says why: BuildKit's
    // statements are there, but unsigned.
    let image = format!("{UPSTREAM}/buildkit-strict/app:buildkit");
    assert_pull_refused(&containerd.pull(&hosts, &image, &platform), &image);
    assert_denied(
        &client,
        &proxy,
        "buildkit-strict/app",
        "buildkit",
        "buildkit-signed-only",
        &[
            NO_VERIFIED_PROVENANCE,
            "unsigned (BuildKit), and allow_unsigned is off",
        ],
    )
    .await;

    // Unsigned SBOMs allowed but provenance not: the provenance is read, and refused as unsigned.
    let image = format!("{UPSTREAM}/buildkit-sbom/app:buildkit");
    assert_pull_refused(&containerd.pull(&hosts, &image, &platform), &image);
    let message = assert_denied(
        &client,
        &proxy,
        "buildkit-sbom/app",
        "buildkit",
        "buildkit-sbom-only",
        &[
            NO_VERIFIED_PROVENANCE,
            "unsigned (BuildKit), and allow_unsigned is off",
        ],
    )
    .await;
    assert!(
        !message.contains("sbom:"),
        "the unsigned SBOM is allowed by this rule: {message}"
    );
    let content = containerd.content_digests();
    assert!(
        !content.contains(&FIXTURES.digest("buildkit-attestations")),
        "containerd fetched the attestation manifest although --platform linux/amd64 was given"
    );
}

/// `portcullis verify --json` reports each attestation with its signer and each condition with
/// its result and the value it looked at: all true for `attested` (exit 0); false, with the evil
/// repository shown, for `attested-evil-repo` (exit 1); and for `attested-wrong-subject` the
/// verification error, with no signer and no condition evaluated.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn verify_json_reports_attestations_and_condition_values() {
    if !prerequisites(&["docker-registry"], false) {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let (_registry, config) = registry_with(tmp.path(), &["enforce/app"]).await;
    let acme = format!("{OK_IDENTITY} (issuer {ISSUER})");

    let (code, r) = verify_json(&config, "local/enforce/app:attested");
    assert_eq!(code, Some(0), "{r}");
    assert_eq!(r["verified"], true, "{r}");
    assert_eq!(r["decision"], "allow", "{r}");
    assert_eq!(r["rule"], "provenance-enforced", "{r}");
    assert_eq!(r["digest"], FIXTURES.digest("attested"), "{r}");
    assert_eq!(r["reasons"], serde_json::json!([]), "{r}");
    let checks = r["signature_checks"].as_array().unwrap();
    assert_eq!(checks.len(), 1, "{r}");
    assert!(
        checks[0]["verified_by"]
            .as_str()
            .is_some_and(|s| s.contains(&acme)),
        "{r}"
    );
    for predicate_type in [SLSA_V1, SPDX] {
        let a = only_attestation(&r, predicate_type);
        assert_eq!(a["verified_by"], acme.as_str(), "{predicate_type}: {r}");
        assert_eq!(a["error"], Value::Null, "{predicate_type}: {r}");
        assert_eq!(
            a["about"],
            FIXTURES.digest("attested"),
            "{predicate_type}: {r}"
        );
    }
    let provenance = only_attestation(&r, SLSA_V1);
    let c = conditions(provenance, "provenance");
    assert_eq!(c.len(), 1, "{r}");
    assert_eq!(c[0]["condition"], REPO_CONDITION, "{r}");
    assert_eq!(c[0]["result"], "true", "{r}");
    assert_eq!(
        c[0]["detail"],
        "predicate.buildDefinition.externalParameters.workflow.repository = \"https://github.com/acme/app\"",
        "{r}"
    );
    assert_eq!(provenance["requirements"][0]["satisfied"], true, "{r}");
    // The rule requires no SBOM: the SPDX attestation is reported, not evaluated.
    assert_eq!(
        only_attestation(&r, SPDX)["requirements"],
        serde_json::json!([]),
        "{r}"
    );

    let (code, r) = verify_json(&config, "local/enforce/app:attested-evil-repo");
    assert_eq!(code, Some(1), "{r}");
    assert_eq!(r["verified"], false, "{r}");
    assert_eq!(r["decision"], "deny", "{r}");
    assert_eq!(r["reasons"], serde_json::json!([EVIL_REPO_REASON]), "{r}");
    let provenance = only_attestation(&r, SLSA_V1);
    assert_eq!(provenance["verified_by"], acme.as_str(), "{r}");
    assert_eq!(provenance["requirements"][0]["satisfied"], false, "{r}");
    let c = conditions(provenance, "provenance");
    assert_eq!(c[0]["result"], "false", "{r}");
    assert_eq!(
        c[0]["detail"],
        "predicate.buildDefinition.externalParameters.workflow.repository = \"https://github.com/evil/app\"",
        "{r}"
    );

    let (code, r) = verify_json(&config, "local/enforce/app:attested-wrong-subject");
    assert_eq!(code, Some(1), "{r}");
    let provenance = only_attestation(&r, SLSA_V1);
    assert_eq!(provenance["verified_by"], Value::Null, "{r}");
    assert!(
        provenance["error"]
            .as_str()
            .is_some_and(|e| e.contains("artifact hash does not match any subject")),
        "{r}"
    );
    assert_eq!(provenance["requirements"], serde_json::json!([]), "{r}");
}

/// An SPDX requirement with conditions over the SBOM's packages: `attested` (bundle) and
/// `attested-legacy` (`.att` layer) list musl and are served; a condition no package meets
/// refuses `attested`, naming the condition (the one before it held); `attested-key` has no
/// SBOM at all.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn spdx_conditions_over_packages() {
    if !prerequisites(&["docker-registry"], false) {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let (_registry, config) = registry_with(tmp.path(), &["sbom/app", "sbom-openssl/app"]).await;
    let proxy = ProxyProcess::start(&config);
    let client = http_client();

    for name in ["attested", "attested-legacy"] {
        assert_served(&client, &proxy, "sbom/app", name).await;
    }
    assert_denied(
        &client,
        &proxy,
        "sbom/app",
        "attested-key",
        "sbom-musl",
        &["sbom: no https://spdx.dev/Document attestation found"],
    )
    .await;
    assert_denied(
        &client,
        &proxy,
        "sbom-openssl/app",
        "attested",
        "sbom-openssl",
        &[&format!(
            "sbom: condition 2 false: {OPENSSL} (predicate.packages = list of 5)"
        )],
    )
    .await;

    let (code, r) = verify_json(&config, "local/sbom/app:attested");
    assert_eq!(code, Some(0), "{r}");
    let c = conditions(only_attestation(&r, SPDX), "sbom");
    assert_eq!(c.len(), 1, "{r}");
    assert_eq!(c[0]["condition"], MUSL, "{r}");
    assert_eq!(c[0]["result"], "true", "{r}");

    let (code, r) = verify_json(&config, "local/sbom-openssl/app:attested");
    assert_eq!(code, Some(1), "{r}");
    let conds = conditions(only_attestation(&r, SPDX), "sbom");
    let results: Vec<(&str, &str)> = conds
        .iter()
        .map(|c| {
            (
                c["condition"].as_str().unwrap_or_default(),
                c["result"].as_str().unwrap_or_default(),
            )
        })
        .collect();
    assert_eq!(results, [(MUSL, "true"), (OPENSSL, "false")], "{r}");
}
