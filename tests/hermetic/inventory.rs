//! Hermetic tests of SBOM ingest from pulls: the proxy in process (SQLite under the test's
//! state_dir) in front of the attestation fixture registry (signed SPDX attestations as a cosign
//! v3 bundle referrer and in a legacy `.att`, a BuildKit index, an image with no SBOM) and of a
//! fake registry of unsigned SBOM referrers (good and hostile ones). What was ingested is read
//! back from the admin API, as a script would.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::StatusCode;
use serde_json::{json, Value};

use crate::common::fixtures::Fixtures;
use crate::common::sha256;
use crate::fake::{client, document, metric, oci_error, respond, FakeUpstream, Proxy};
use crate::policy::{get, registry_of};

const ATTESTATIONS: Fixtures = Fixtures::ATTESTATIONS;
const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";

/// `fake.local/audit/**` under audit with the fixture set's attestors.
fn rules() -> String {
    format!(
        "trusted_root: {}\npolicies:\n  - name: audited\n    match: [\"fake.local/audit/**\"]\n    mode: audit\n{}",
        ATTESTATIONS.path("trusted_root.json").display(),
        ATTESTATIONS.attestors()
    )
}

/// [`rules`] with ingest on (the test proxies have it off unless asked).
fn audit_policy() -> String {
    format!("inventory: {{ ingest: true }}\n{}", rules())
}

async fn admin_json(proxy: &Proxy, path: &str) -> Value {
    let resp = client()
        .get(format!("{}{path}", proxy.admin))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200, "{path}");
    resp.json().await.unwrap()
}

/// The inventory of `digest` once its ingest has recorded something (20 s at most).
async fn ingested(proxy: &Proxy, digest: &str) -> Value {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let answer = admin_json(proxy, &format!("/api/v1/inventory/images/{digest}")).await;
        if answer["sbom_status"] != "not_ingested" {
            return answer;
        }
        assert!(Instant::now() < deadline, "{digest} was not ingested");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn packages(answer: &Value) -> BTreeSet<String> {
    answer["packages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            format!(
                "{}@{}",
                p["package"].as_str().unwrap(),
                p["version"].as_str().unwrap()
            )
        })
        .collect()
}

async fn ingests(proxy: &Proxy) -> f64 {
    let text = proxy.metrics().await;
    ["found", "none", "unparseable", "index", "known", "error"]
        .iter()
        .map(|r| {
            metric(
                &text,
                &format!("portcullis_inventory_ingests_total{{result=\"{r}\"}}"),
            )
        })
        .sum()
}

/// The five packages of the fixtures' SPDX documents.
fn fixture_packages() -> BTreeSet<String> {
    [
        "pkg:apk/alpine/alpine-baselayout@3.6.5-r0",
        "pkg:apk/alpine/busybox@1.36.1-r29",
        "pkg:apk/alpine/libcrypto3@3.3.2-r0",
        "pkg:apk/alpine/musl@1.2.5-r0",
        "pkg:golang/golang.org/x/net@v0.33.0",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect()
}

#[tokio::test]
async fn signed_and_buildkit_sboms_of_pulled_digests_are_ingested_with_their_provenance() {
    let reg = registry_of(&ATTESTATIONS).await;
    let proxy = Proxy::in_front_of(&reg.up, &audit_policy()).await;
    let child = ATTESTATIONS.digest("buildkit-amd64");
    for path in [
        "audit/app/manifests/attested".to_owned(),
        "audit/app/manifests/attested-legacy".to_owned(),
        "audit/app/manifests/attested-evil-signer".to_owned(),
        "audit/app/manifests/buildkit".to_owned(),
        format!("audit/app/manifests/{child}"),
    ] {
        assert_eq!(get(&proxy, &path).await.status(), 200, "{path}");
    }

    // A cosign v3 bundle referrer with an SPDX predicate, signed by the ok identity.
    let ok_identity = "https://github.com/acme/app/.github/workflows/release.yml@refs/heads/main";
    for image in ["attested", "attested-legacy"] {
        let answer = ingested(&proxy, &ATTESTATIONS.digest(image)).await;
        assert_eq!(answer["sbom_status"], "found", "{image}: {answer:#}");
        assert_eq!(answer["sbom_provenance"], "signed", "{image}");
        assert!(
            answer["sbom_signer"]
                .as_str()
                .unwrap()
                .contains(ok_identity),
            "{image}: {answer:#}"
        );
        assert_eq!(answer["sbom_format"], "spdx-2");
        assert_eq!(answer["image"], "fake.local/audit/app");
        assert_eq!(packages(&answer), fixture_packages(), "{image}");
    }
    // Signed provenance only: recorded as having no SBOM.
    let evil = ingested(&proxy, &ATTESTATIONS.digest("attested-evil-signer")).await;
    assert_eq!(evil["sbom_status"], "none", "{evil:#}");
    assert!(evil["packages"].as_array().unwrap().is_empty());
    // The index is recorded as one; its amd64 child has BuildKit's SBOM, trusted because the
    // index verified (its signature is the ok identity's).
    let index = ingested(&proxy, &ATTESTATIONS.digest("buildkit")).await;
    assert_eq!(index["sbom_status"], "index", "{index:#}");
    let amd64 = ingested(&proxy, &child).await;
    assert_eq!(amd64["sbom_status"], "found", "{amd64:#}");
    assert_eq!(amd64["sbom_provenance"], "buildkit", "{amd64:#}");
    assert_eq!(packages(&amd64), fixture_packages());

    // A query by package names those three digests, each with its provenance; the image with
    // no SBOM is counted as not seen.
    let answer = admin_json(
        &proxy,
        "/api/v1/inventory/query?purl=pkg:apk/alpine/musl&range=%3C1.2.5-r1",
    )
    .await;
    let hits: BTreeSet<(String, String)> = answer["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            assert_eq!(e["version"], "1.2.5-r0", "{e:#}");
            assert_eq!(e["image"], "fake.local/audit/app", "{e:#}");
            (
                e["digest"].as_str().unwrap().to_owned(),
                e["sbom_provenance"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    let expected: BTreeSet<(String, String)> = [
        (ATTESTATIONS.digest("attested"), "signed"),
        (ATTESTATIONS.digest("attested-legacy"), "signed"),
        (child.clone(), "buildkit"),
    ]
    .into_iter()
    .map(|(d, p)| (d, p.to_owned()))
    .collect();
    assert_eq!(hits, expected, "{answer:#}");
    assert_eq!(answer["unseen"]["no_sbom"], 1, "{answer:#}");
    // Scoped by rule, upstream and image glob (once the ledger has written the pulls): the same
    // three, or nothing.
    let server = proxy.server.as_ref().unwrap();
    assert!(server.ledger.flush(Duration::from_secs(20)).await);
    for (scope, expected) in [
        ("rule=audited", 3),
        ("rule=enforced", 0),
        ("upstream=fake.local", 3),
        ("upstream=docker.io", 0),
        ("image=fake.local/audit/**", 3),
        ("image=fake.local/other/**", 0),
        ("since=1h&rule=audited", 3),
    ] {
        let path = format!("/api/v1/inventory/query?purl=pkg:apk/alpine/musl&{scope}");
        let answer = admin_json(&proxy, &path).await;
        let n = answer["entries"].as_array().unwrap().len();
        assert_eq!(n, expected, "{scope}: {answer:#}");
    }
    // Outside the range: nothing.
    let none = admin_json(
        &proxy,
        "/api/v1/inventory/query?purl=pkg:apk/alpine/musl&range=%3C1.2.5-r0",
    )
    .await;
    assert!(none["entries"].as_array().unwrap().is_empty(), "{none:#}");

    // Warm pulls are not looked at again: no ingest and no new upstream request.
    let (before, requests) = (ingests(&proxy).await, reg.up.total());
    assert!(before >= 5.0, "{before}");
    for _ in 0..3 {
        assert_eq!(
            get(&proxy, "audit/app/manifests/attested").await.status(),
            200
        );
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(ingests(&proxy).await, before);
    assert_eq!(reg.up.total(), requests + 3, "only the tag's revalidation");
}

/// The upstream requests of `paths` pulled through a proxy with `config`, once what they
/// started is done (ingest included, when on).
async fn requests_of(config: &str, paths: &[String], digests: &[String]) -> Vec<String> {
    let reg = registry_of(&ATTESTATIONS).await;
    let proxy = Proxy::in_front_of(&reg.up, config).await;
    for path in paths {
        assert_eq!(get(&proxy, path).await.status(), 200, "{path}");
    }
    if config.contains("ingest: true") {
        for d in digests {
            ingested(&proxy, d).await;
        }
    }
    let mut seen: Vec<String> = reg
        .up
        .requests()
        .iter()
        .map(|s| format!("{} {}", s.method, s.path))
        .collect();
    seen.sort();
    seen
}

#[tokio::test]
async fn ingest_asks_the_upstream_only_for_what_the_pull_did_not_fetch() {
    let paths: Vec<String> = ["attested", "attested-legacy", "attested-evil-signer"]
        .iter()
        .map(|t| format!("audit/app/manifests/{t}"))
        .collect();
    let digests: Vec<String> = ["attested", "attested-legacy", "attested-evil-signer"]
        .iter()
        .map(|t| ATTESTATIONS.digest(t))
        .collect();
    let mut without = requests_of(
        &format!("inventory: {{ ingest: false }}\n{}", rules()),
        &paths,
        &digests,
    )
    .await;
    let with = requests_of(&audit_policy(), &paths, &digests).await;
    let mut added = Vec::new();
    for r in with {
        match without.iter().position(|w| *w == r) {
            Some(i) => {
                without.remove(i);
            }
            None => added.push(r),
        }
    }
    assert!(without.is_empty(), "ingest made the pulls skip {without:?}");
    // The rule asks for no attestation, so the pulls never looked for legacy `.att` tags nor
    // read attestation bundles: ingest asks for each `.att` once and reads the bundle layers.
    // The referrers listings and the signature bundles the pulls read are not asked again.
    let atts: Vec<String> = digests
        .iter()
        .map(|d| format!("GET /v2/audit/app/manifests/{}.att", d.replace(':', "-")))
        .collect();
    for r in &added {
        assert!(
            atts.contains(r) || r.starts_with("GET /v2/audit/app/blobs/sha256:"),
            "{r} in {added:#?}"
        );
    }
    assert_eq!(
        added.iter().filter(|r| r.ends_with(".att")).count(),
        digests.len(),
        "{added:#?}"
    );
    assert!(added.len() <= 2 * digests.len(), "{added:#?}");
}

#[tokio::test]
async fn an_sbom_whose_signature_no_attestor_accepts_is_recorded_as_unverified() {
    let reg = registry_of(&ATTESTATIONS).await;
    // A rule whose only attestor is a key nothing in the set signs with.
    let other = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/sigstore/other.pub"
    );
    let policy = format!(
        "inventory: {{ ingest: true }}\ntrusted_root: {}\npolicies:\n  - name: strangers\n    match: [\"fake.local/audit/**\"]\n    mode: audit\n    attestors: [{{ key: {{ public_key: {other} }} }}]\n",
        ATTESTATIONS.path("trusted_root.json").display(),
    );
    let proxy = Proxy::in_front_of(&reg.up, &policy).await;
    assert_eq!(
        get(&proxy, "audit/app/manifests/attested").await.status(),
        200
    );
    let answer = ingested(&proxy, &ATTESTATIONS.digest("attested")).await;
    assert_eq!(answer["sbom_status"], "found", "{answer:#}");
    assert_eq!(answer["sbom_provenance"], "unverified", "{answer:#}");
    assert_eq!(packages(&answer), fixture_packages());
}

#[tokio::test]
async fn digests_served_before_ingest_was_on_are_backfilled_at_start_up() {
    let reg = registry_of(&ATTESTATIONS).await;
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    let state_dir = format!("state_dir: {}\n", state.display());
    let upstreams = format!("  fake.local: {{ url: \"{}\" }}", reg.up.url());
    let start = |extra: String| {
        let upstreams = upstreams.clone();
        async move {
            let conf = tempfile::tempdir().unwrap();
            let path = crate::fake::write_config(conf.path(), "fake.local", &upstreams, &extra);
            Proxy::start_file(&path, conf).await
        }
    };
    let off = start(format!(
        "{state_dir}inventory: {{ ingest: false }}\n{}",
        rules()
    ))
    .await;
    for tag in ["attested", "attested-evil-signer"] {
        let path = format!("audit/app/manifests/{tag}");
        assert_eq!(get(&off, &path).await.status(), 200);
    }
    let metrics = off.metrics().await;
    assert_eq!(ingests(&off).await, 0.0, "{metrics}");
    off.server.unwrap().shutdown().await;

    let on = start(format!("{state_dir}{}", audit_policy())).await;
    let signed = ingested(&on, &ATTESTATIONS.digest("attested")).await;
    assert_eq!(
        (
            signed["sbom_status"].as_str(),
            signed["sbom_provenance"].as_str()
        ),
        (Some("found"), Some("signed")),
        "{signed:#}"
    );
    assert_eq!(signed["pulls"]["pulls"], 1, "{signed:#}");
    assert_eq!(signed["pulls"]["tags"], json!(["attested"]), "{signed:#}");
    let none = ingested(&on, &ATTESTATIONS.digest("attested-evil-signer")).await;
    assert_eq!(none["sbom_status"], "none");
}

// === unsigned SBOM referrers ===

/// One image of the referrer registry: an image manifest of its own (a config naming `name`),
/// with one referrer of `artifact_type` whose layer is `layer` (its descriptor claiming
/// `declared` bytes when given).
struct Attachment {
    name: &'static str,
    artifact_type: &'static str,
    layer: Bytes,
    declared: Option<u64>,
}

fn descriptor(media_type: &str, bytes: &[u8]) -> Value {
    json!({"mediaType": media_type, "digest": sha256(bytes), "size": bytes.len()})
}

/// A registry serving `attachments` under every repository, with distribution's tag schema for
/// referrers (`sha256-<hex>` indexes; the API answers 404). Returns it and each image's digest.
async fn referrer_registry(attachments: Vec<Attachment>) -> (FakeUpstream, Vec<String>) {
    let mut files: Vec<(String, &'static str, Bytes)> = Vec::new();
    let mut digests = Vec::new();
    for a in attachments {
        let config = Bytes::from(format!("{{\"name\":\"{}\"}}", a.name));
        let image = Bytes::from(
            json!({
                "schemaVersion": 2, "mediaType": OCI_MANIFEST,
                "config": descriptor("application/vnd.oci.image.config.v1+json", &config),
                "layers": []
            })
            .to_string(),
        );
        let image_digest = sha256(&image);
        let mut layer = descriptor("application/json", &a.layer);
        if let Some(size) = a.declared {
            layer["size"] = json!(size);
        }
        let referrer = Bytes::from(
            json!({
                "schemaVersion": 2, "mediaType": OCI_MANIFEST, "artifactType": a.artifact_type,
                "config": {"mediaType": "application/vnd.oci.empty.v1+json",
                    "digest": "sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a", "size": 2},
                "layers": [layer],
                "subject": descriptor(OCI_MANIFEST, &image),
            })
            .to_string(),
        );
        let mut listed = descriptor(OCI_MANIFEST, &referrer);
        listed["artifactType"] = json!(a.artifact_type);
        let index = Bytes::from(
            json!({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": [listed]}).to_string(),
        );
        files.push((format!("manifests/{}", a.name), OCI_MANIFEST, image.clone()));
        files.push((format!("manifests/{image_digest}"), OCI_MANIFEST, image));
        files.push((
            format!("manifests/{}", sha256(&referrer)),
            OCI_MANIFEST,
            referrer,
        ));
        let tag = image_digest.replace(':', "-");
        files.push((format!("manifests/{tag}"), OCI_INDEX, index));
        files.push((
            format!("blobs/{}", sha256(&a.layer)),
            "application/json",
            a.layer,
        ));
        digests.push(image_digest);
    }
    let files = std::sync::Arc::new(files);
    let up = FakeUpstream::start(move |s| {
        let files = files.clone();
        async move {
            let found = files
                .iter()
                .find(|(p, _, _)| s.path.ends_with(&format!("/{p}")));
            match found {
                Some((_, media_type, bytes)) => document(&s.method, media_type, bytes),
                None if s.path.contains("/referrers/") => {
                    respond(StatusCode::NOT_FOUND, &[], "404 page not found\n")
                }
                None => oci_error(StatusCode::NOT_FOUND, "MANIFEST_UNKNOWN"),
            }
        }
    })
    .await;
    (up, digests)
}

#[tokio::test]
async fn unsigned_sbom_referrers_are_ingested_and_hostile_ones_rejected_with_a_reason() {
    let cyclonedx = json!({
        "bomFormat": "CycloneDX", "specVersion": "1.6",
        "metadata": {"component": {"type": "application", "name": "shop", "version": "1.0.0",
            "purl": "pkg:npm/shop@1.0.0"}},
        "components": [{"type": "library", "name": "lodash", "version": "4.17.20",
            "purl": "pkg:npm/lodash@4.17.20",
            "components": [{"type": "library", "name": "minimist", "version": "1.2.5",
                "purl": "pkg:npm/minimist@1.2.5"}]}]
    });
    let spdx = json!({
        "spdxVersion": "SPDX-2.3", "SPDXID": "SPDXRef-DOCUMENT",
        "packages": [{"name": "log4j-core", "SPDXID": "SPDXRef-1", "versionInfo": "2.14.1",
            "externalRefs": [{"referenceCategory": "PACKAGE_MANAGER", "referenceType": "purl",
                "referenceLocator": "pkg:maven/org.apache.logging.log4j/log4j-core@2.14.1"}]}]
    });
    // Components nested 100 000 levels deep.
    let nested = Bytes::from(format!(
        r#"{{"bomFormat":"CycloneDX","specVersion":"1.6","components":[{}{}]}}"#,
        r#"{"name":"n","components":["#.repeat(100_000),
        "]}".repeat(100_000)
    ));
    let attachments = vec![
        Attachment {
            name: "cyclonedx",
            artifact_type: "application/vnd.cyclonedx+json; version=1.6",
            layer: Bytes::from(cyclonedx.to_string()),
            declared: None,
        },
        Attachment {
            name: "harbor",
            artifact_type: "application/vnd.goharbor.harbor.sbom.v1",
            layer: Bytes::from(spdx.to_string()),
            declared: None,
        },
        Attachment {
            name: "nested",
            artifact_type: "application/spdx+json",
            layer: nested,
            declared: None,
        },
        Attachment {
            name: "wrong-types",
            artifact_type: "application/spdx+json",
            layer: Bytes::from(r#"{"spdxVersion":"SPDX-2.3","packages":7}"#),
            declared: None,
        },
        Attachment {
            name: "huge",
            artifact_type: "application/spdx+json",
            layer: Bytes::from_static(b"{}"),
            declared: Some(200 * 1024 * 1024),
        },
    ];
    let (up, digests) = referrer_registry(attachments).await;
    // No rule: served unmatched, looked at all the same.
    let proxy = Proxy::in_front_of(&up, "inventory: { ingest: true }").await;
    let names = ["cyclonedx", "harbor", "nested", "wrong-types", "huge"];
    for name in names {
        let path = format!("shop/app/manifests/{name}");
        assert_eq!(get(&proxy, &path).await.status(), 200, "{path}");
    }
    let answers: Vec<Value> = {
        let mut out = Vec::new();
        for d in &digests {
            out.push(ingested(&proxy, d).await);
        }
        out
    };
    let cdx = &answers[0];
    assert_eq!(
        (cdx["sbom_status"].as_str(), cdx["sbom_provenance"].as_str()),
        (Some("found"), Some("unsigned")),
        "{cdx:#}"
    );
    assert_eq!(cdx["sbom_format"], "cyclonedx");
    assert!(cdx["sbom_signer"]
        .as_str()
        .unwrap()
        .contains("application/vnd.cyclonedx+json"));
    assert_eq!(
        packages(cdx),
        [
            "pkg:npm/lodash@4.17.20",
            "pkg:npm/minimist@1.2.5",
            "pkg:npm/shop@1.0.0"
        ]
        .iter()
        .map(|s| s.to_string())
        .collect()
    );
    let harbor = &answers[1];
    assert_eq!(harbor["sbom_status"], "found", "{harbor:#}");
    assert_eq!(
        packages(harbor),
        BTreeSet::from(["pkg:maven/org.apache.logging.log4j/log4j-core@2.14.1".to_owned()])
    );
    for (answer, reason) in [
        (&answers[2], "recursion limit"),
        (&answers[3], "invalid type"),
        (&answers[4], "exceeds limits.max_signature_bytes"),
    ] {
        assert_eq!(answer["sbom_status"], "unparseable", "{answer:#}");
        assert_eq!(answer["sbom_provenance"], "unsigned");
        let error = answer["sbom_error"].as_str().unwrap();
        assert!(error.contains(reason), "{error}");
    }
    // The huge one was refused on its descriptor: its layer was never asked for.
    assert_eq!(up.count(&sha256(b"{}")), 0);
    // Serving went on throughout, and a query says what it could not see.
    assert_eq!(get(&proxy, "shop/app/manifests/nested").await.status(), 200);
    let answer = admin_json(&proxy, "/api/v1/inventory/query?name=lodash").await;
    assert_eq!(answer["entries"].as_array().unwrap().len(), 1, "{answer:#}");
    assert_eq!(answer["entries"][0]["digest"], digests[0].as_str());
    assert_eq!(answer["unseen"]["unparseable_sbom"], 3, "{answer:#}");
}
