//! Hermetic tests of the verification gate: the proxy in process, in front of a fake registry
//! that serves the signed fixture images (tests/fixtures/sigstore) and counts requests and
//! injects faults into signature lookups.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::common::fixtures::{Fixtures, ISSUER};
use crate::fake::{client, document, error_code, oci_error, respond, FakeUpstream, Proxy};
use bytes::Bytes;
use http::StatusCode;

const FIXTURES: Fixtures = Fixtures::SIGSTORE;
const INDEX: &str = "application/vnd.oci.image.index.v1+json";

/// The fixture registry: manifests by tag and by digest, blobs by digest.
struct Store {
    manifests: HashMap<String, (String, Bytes)>,
    blobs: HashMap<String, Bytes>,
}

fn store() -> Store {
    store_of(&FIXTURES)
}

/// The fixture set `fixtures` (the main one, or the attestations).
fn store_of(fixtures: &Fixtures) -> Store {
    let mut manifests = HashMap::new();
    let mut blobs = HashMap::new();
    let blob = |hex: &str| Bytes::from(fixtures.blob(hex));
    for push in fixtures.plan() {
        let hex = push["manifest"].as_str().unwrap();
        let media_type = push["media_type"].as_str().unwrap().to_owned();
        let bytes = blob(hex);
        manifests.insert(format!("sha256:{hex}"), (media_type.clone(), bytes.clone()));
        manifests.insert(
            push["reference"].as_str().unwrap().to_owned(),
            (media_type, bytes),
        );
        for b in push["blobs"].as_array().unwrap() {
            let b = b.as_str().unwrap();
            blobs.insert(format!("sha256:{b}"), blob(b));
        }
    }
    Store { manifests, blobs }
}

fn digest_of(image: &str) -> String {
    FIXTURES.digest(image)
}

/// What the fake does to signature lookups (referrers and `sha256-…` tags).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Fault {
    None,
    Status(u16),
    Malformed,
    Slow,
    /// Answer normally, after a pause: keeps a cold lookup in flight while others pile up.
    Delay,
    /// `.sig` manifests are junk; referrers are fine.
    BrokenSig,
    /// The registry has the OCI 1.1 referrers API, paginated: page 1 lists an unrelated SBOM
    /// referrer and links to page 2, which lists the signatures. Fallback tags answer 404.
    ReferrersApi,
    /// Every request fails with 503: the upstream is down.
    Down,
    /// Manifests by digest are answered after a pause; lookups that arrive before that answer
    /// are counted in `Registry::early_lookups`.
    SlowManifest,
}

pub(crate) struct Registry {
    pub(crate) up: FakeUpstream,
    fault: Arc<Mutex<Fault>>,
    early_lookups: Arc<std::sync::atomic::AtomicUsize>,
}

/// A fake registry serving every fixture under any repository name; `/referrers/` answers 404 as
/// distribution does, so the `sha256-<hex>` fallback tag is used.
async fn registry() -> Registry {
    registry_of(&FIXTURES).await
}

pub(crate) async fn registry_of(fixtures: &Fixtures) -> Registry {
    use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
    let store = Arc::new(store_of(fixtures));
    let fault = Arc::new(Mutex::new(Fault::None));
    let early_lookups = Arc::new(AtomicUsize::new(0));
    let manifest_answered = Arc::new(AtomicBool::new(false));
    let (f, early, answered) = (fault.clone(), early_lookups.clone(), manifest_answered);
    let up = FakeUpstream::start(move |s| {
        let store = store.clone();
        let fault = *f.lock().unwrap();
        let (early, answered) = (early.clone(), answered.clone());
        async move {
            let path = s.path.as_str();
            let lookup = path.contains("/referrers/") || path.contains("/manifests/sha256-");
            if fault == Fault::SlowManifest {
                if lookup && !answered.load(Ordering::SeqCst) {
                    early.fetch_add(1, Ordering::SeqCst);
                }
                if path.contains("/manifests/sha256:") {
                    tokio::time::sleep(Duration::from_millis(300)).await;
                    answered.store(true, Ordering::SeqCst);
                }
            }
            if fault == Fault::Down {
                return oci_error(StatusCode::SERVICE_UNAVAILABLE, "UNAVAILABLE");
            }
            if fault == Fault::BrokenSig && path.ends_with(".sig") {
                return respond(
                    StatusCode::OK,
                    &[("content-type", "application/vnd.oci.image.manifest.v1+json")],
                    "{\"layers\": 7}",
                );
            }
            if lookup {
                match fault {
                    Fault::None
                    | Fault::BrokenSig
                    | Fault::ReferrersApi
                    | Fault::Down
                    | Fault::SlowManifest => {}
                    Fault::Status(code) => {
                        return oci_error(StatusCode::from_u16(code).unwrap(), "UNAVAILABLE")
                    }
                    Fault::Malformed => {
                        return respond(StatusCode::OK, &[("content-type", INDEX)], "{not json")
                    }
                    Fault::Slow => tokio::time::sleep(Duration::from_secs(5)).await,
                    Fault::Delay => tokio::time::sleep(Duration::from_millis(300)).await,
                }
            }
            if fault == Fault::ReferrersApi {
                if let Some((repo, digest)) = path.split_once("/referrers/") {
                    let page2 = s.query.as_deref() == Some("page=2");
                    if !page2 {
                        let sbom = format!(
                            r#"{{"schemaVersion":2,"mediaType":"{INDEX}","manifests":[{{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"sha256:{}","size":10,"artifactType":"application/spdx+json"}}]}}"#,
                            "e".repeat(64)
                        );
                        let link = format!("<{repo}/referrers/{digest}?page=2>; rel=\"next\"");
                        return respond(
                            StatusCode::OK,
                            &[("content-type", INDEX), ("link", &link)],
                            sbom,
                        );
                    }
                    let tag = digest.replace(':', "-");
                    let listed = store
                        .manifests
                        .get(&tag)
                        .map(|(_, b)| b.clone())
                        .unwrap_or_else(|| {
                            Bytes::from(format!(
                                r#"{{"schemaVersion":2,"mediaType":"{INDEX}","manifests":[]}}"#
                            ))
                        });
                    return respond(StatusCode::OK, &[("content-type", INDEX)], listed);
                }
                if path.contains("/manifests/sha256-") && !path.ends_with(".sig") {
                    return oci_error(StatusCode::NOT_FOUND, "MANIFEST_UNKNOWN");
                }
            }
            if path.contains("/referrers/") {
                return respond(
                    StatusCode::NOT_FOUND,
                    &[("content-type", "text/plain")],
                    "404 page not found\n",
                );
            }
            if let Some((_, reference)) = path.split_once("/manifests/") {
                let Some((media_type, bytes)) = store.manifests.get(reference) else {
                    return oci_error(StatusCode::NOT_FOUND, "MANIFEST_UNKNOWN");
                };
                return document(&s.method, media_type, bytes);
            }
            if let Some((_, digest)) = path.split_once("/blobs/") {
                // A hostile (or merely permissive) upstream also hands out manifests as blobs.
                let found = store
                    .blobs
                    .get(digest)
                    .or_else(|| store.manifests.get(digest).map(|(_, b)| b));
                if let Some(b) = found {
                    if s.headers.contains_key("range") && b.len() > 10 {
                        let range = format!("bytes 0-9/{}", b.len());
                        return respond(
                            StatusCode::PARTIAL_CONTENT,
                            &[("content-range", &range)],
                            b.slice(0..10),
                        );
                    }
                    return respond(StatusCode::OK, &[], b.clone());
                }
            }
            oci_error(StatusCode::NOT_FOUND, "BLOB_UNKNOWN")
        }
    })
    .await;
    Registry {
        up,
        fault,
        early_lookups,
    }
}

/// Policies over the fake registry `fake.local`: `enforce/**` and `audit/**` with one keyless
/// and one key attestor, `off/**` off, and `extra` appended.
fn policy_yaml(unmatched: &str, extra_rules: &str) -> String {
    let attestors = FIXTURES.attestors();
    let attestors = attestors.trim_end();
    let trusted_root = FIXTURES.path("trusted_root.json");
    let trusted_root = trusted_root.display();
    format!(
        r#"trusted_root: {trusted_root}
timeouts: {{ signature_lookup: 2s }}
cache: {{ verdict_ttl: 1h, failure_ttl: 30s }}
unmatched: {unmatched}
policies:
  - name: enforced
    match: ["fake.local/enforce/**"]
    mode: enforce
{attestors}
  - name: audited
    match: ["fake.local/audit/**"]
    mode: audit
{attestors}
  - name: relaxed
    match: ["fake.local/off/*"]
    mode: off
{extra_rules}"#
    )
}

pub(crate) async fn get(proxy: &Proxy, path: &str) -> reqwest::Response {
    client()
        .get(format!("{}/v2/{path}", proxy.url))
        .header(
            "accept",
            format!("{INDEX}, application/vnd.oci.image.manifest.v1+json"),
        )
        .send()
        .await
        .unwrap()
}

#[tokio::test]
async fn enforce_serves_signed_images_byte_for_byte_and_refuses_unsigned() {
    let reg = registry().await;
    let proxy = Proxy::in_front_of(&reg.up, &policy_yaml("allow", "")).await;
    for image in [
        "keyless-bundle",
        "keyless-legacy",
        "key-legacy",
        "key-bundle",
    ] {
        let resp = get(&proxy, &format!("enforce/app/manifests/{image}")).await;
        assert_eq!(resp.status(), 200, "{image}");
        let digest = resp.headers()["docker-content-digest"]
            .to_str()
            .unwrap()
            .to_owned();
        let body = resp.bytes().await.unwrap();
        assert_eq!(crate::common::sha256(&body), digest_of(image), "{image}");
        assert_eq!(digest, digest_of(image));
    }
    for (image, reason) in [
        ("unsigned", "no signatures found"),
        ("evil-bundle", "no signature from an allowed identity"),
        ("mismatch", "payload signs"),
        ("key-legacy-notlog", "no transparency log entry"),
    ] {
        let resp = get(&proxy, &format!("enforce/app/manifests/{image}")).await;
        let (status, code, message) = error_code(resp).await;
        assert_eq!(
            (status, code.as_str()),
            (StatusCode::FORBIDDEN, "DENIED"),
            "{image}"
        );
        assert!(
            message.contains(r#"refused by policy "enforced" (enforce)"#),
            "{message}"
        );
        assert!(message.contains(reason), "{image}: {message}");
        assert!(message.contains(&digest_of(image)), "{message}");
    }
    // HEAD is gated too: a tag resolution must not hand out the digest of a refused image.
    let head = client()
        .head(format!("{}/v2/enforce/app/manifests/unsigned", proxy.url))
        .send()
        .await
        .unwrap();
    assert_eq!(head.status(), 403);
    let head = client()
        .head(format!(
            "{}/v2/enforce/app/manifests/keyless-bundle",
            proxy.url
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(head.status(), 200);
    assert_eq!(
        head.headers()["docker-content-digest"],
        digest_of("keyless-bundle").as_str()
    );
}

#[tokio::test]
async fn audit_serves_everything_and_off_looks_for_nothing() {
    let reg = registry().await;
    let proxy = Proxy::in_front_of(&reg.up, &policy_yaml("allow", "")).await;
    for image in ["unsigned", "evil-bundle", "keyless-bundle"] {
        let resp = get(&proxy, &format!("audit/app/manifests/{image}")).await;
        assert_eq!(resp.status(), 200, "{image}");
    }
    let m = proxy.metrics().await;
    assert!(
        m.contains(
            r#"portcullis_verdicts_total{mode="audit",result="unverified",rule="audited"} 2"#
        ),
        "{m}"
    );
    assert!(
        m.contains(r#"portcullis_verdicts_total{mode="audit",result="verified",rule="audited"} 1"#),
        "{m}"
    );
    assert!(!m.contains("sha256:"), "metrics must not carry digests");

    let before = reg.up.total();
    let resp = get(&proxy, "off/app/manifests/unsigned").await;
    assert_eq!(resp.status(), 200);
    // One manifest request, no signature lookup.
    assert_eq!(reg.up.total() - before, 1);
    let resp = get(&proxy, "elsewhere/app/manifests/unsigned").await;
    assert_eq!(resp.status(), 200, "unmatched: allow serves");
}

#[tokio::test]
async fn unmatched_deny_refuses_repositories_without_a_rule() {
    let reg = registry().await;
    let proxy = Proxy::in_front_of(&reg.up, &policy_yaml("deny", "")).await;
    let (status, code, message) =
        error_code(get(&proxy, "elsewhere/app/manifests/keyless-bundle").await).await;
    assert_eq!((status, code.as_str()), (StatusCode::FORBIDDEN, "DENIED"));
    assert!(message.contains("unmatched: deny"), "{message}");
    assert_eq!(
        get(&proxy, "enforce/app/manifests/keyless-bundle")
            .await
            .status(),
        200
    );
}

#[tokio::test]
async fn concurrent_cold_pulls_run_one_discovery_and_warm_verdicts_cost_nothing() {
    let reg = registry().await;
    let proxy = Arc::new(Proxy::in_front_of(&reg.up, &policy_yaml("allow", "")).await);
    let digest = digest_of("keyless-bundle");
    *reg.fault.lock().unwrap() = Fault::Delay;
    let mut tasks = Vec::new();
    for _ in 0..250 {
        let proxy = proxy.clone();
        let digest = digest.clone();
        tasks.push(tokio::spawn(async move {
            get(&proxy, &format!("enforce/app/manifests/{digest}"))
                .await
                .status()
        }));
    }
    for t in tasks {
        assert_eq!(t.await.unwrap(), 200);
    }
    // One manifest fetch for all of them (single flight, then the content cache)...
    assert_eq!(reg.up.count(&format!("/manifests/{digest}")), 1);
    // ...and exactly one discovery: one referrers request, one fallback-tag request, one `.sig`
    // lookup.
    assert_eq!(reg.up.count("/referrers/"), 1);
    assert_eq!(
        reg.up.count(&format!("/manifests/sha256-{}", &digest[7..])),
        2
    );
    let m = proxy.metrics().await;
    assert!(
        m.contains(r#"portcullis_verification_duration_seconds_count{result="verified"} 1"#),
        "{m}"
    );

    // Warm: the manifest fetch itself and nothing else.
    let before = reg.up.total();
    assert_eq!(
        get(&proxy, "enforce/app/manifests/keyless-bundle")
            .await
            .status(),
        200
    );
    assert_eq!(reg.up.total() - before, 1);
    assert!(proxy
        .metrics()
        .await
        .contains(r#"portcullis_cache_requests_total{cache="verdict",result="hit"}"#));
}

#[tokio::test]
async fn lookup_faults_fail_closed_in_enforce_are_served_in_audit_and_never_cached() {
    let reg = registry().await;
    let proxy = Proxy::in_front_of(&reg.up, &policy_yaml("allow", "")).await;
    for fault in [
        Fault::Status(503),
        Fault::Status(429),
        Fault::Status(401),
        Fault::Malformed,
        Fault::Slow,
    ] {
        *reg.fault.lock().unwrap() = fault;
        let resp = get(&proxy, "enforce/app/manifests/keyless-bundle").await;
        assert_eq!(
            resp.headers()
                .get("retry-after")
                .map(|v| v.to_str().unwrap()),
            Some("5")
        );
        let (status, code, message) = error_code(resp).await;
        assert_eq!(
            (status, code.as_str()),
            (StatusCode::SERVICE_UNAVAILABLE, "UNAVAILABLE"),
            "{fault:?}"
        );
        assert!(
            message.contains("signature lookup failed"),
            "{fault:?}: {message}"
        );
        // A fault is not "unsigned" either: an unsigned image gets the same 503, not a 403.
        let (status, _, _) = error_code(get(&proxy, "enforce/app/manifests/unsigned").await).await;
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{fault:?}");
        // Audit serves through a fault and records it as an error.
        assert_eq!(
            get(&proxy, "audit/app/manifests/unsigned").await.status(),
            200
        );
    }
    let m = proxy.metrics().await;
    assert!(
        m.contains(r#"portcullis_verdicts_total{mode="audit",result="error",rule="audited"} 5"#),
        "{m}"
    );
    // Faults are not cached: once the registry recovers, the same digests verify or are refused.
    *reg.fault.lock().unwrap() = Fault::None;
    assert_eq!(
        get(&proxy, "enforce/app/manifests/keyless-bundle")
            .await
            .status(),
        200
    );
    assert_eq!(
        get(&proxy, "enforce/app/manifests/unsigned").await.status(),
        403
    );
}

#[tokio::test]
async fn a_verified_index_covers_its_children_and_an_orphan_child_is_verified_alone() {
    let reg = registry().await;
    let proxy = Proxy::in_front_of(&reg.up, &policy_yaml("allow", "")).await;
    let child = digest_of("index-amd64");
    // Asked first, by digest, with no verified parent: the child has no signature of its own.
    let (status, _, message) =
        error_code(get(&proxy, &format!("enforce/app/manifests/{child}")).await).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{message}");
    // The signed index is verified, and then covers both children.
    let resp = get(&proxy, "enforce/app/manifests/index").await;
    assert_eq!(resp.status(), 200);
    assert_eq!(
        resp.headers()["docker-content-digest"],
        digest_of("index").as_str()
    );
    let lookups = reg.up.count("/referrers/");
    for c in ["index-amd64", "index-arm64"] {
        let resp = get(&proxy, &format!("enforce/app/manifests/{}", digest_of(c))).await;
        assert_eq!(resp.status(), 200, "{c}");
        assert_eq!(
            crate::common::sha256(&resp.bytes().await.unwrap()),
            digest_of(c)
        );
    }
    assert_eq!(
        reg.up.count("/referrers/"),
        lookups,
        "covered children need no lookup"
    );
}

#[tokio::test]
async fn signatures_can_live_in_a_signature_repository() {
    let reg = registry().await;
    let key = FIXTURES.path("cosign.pub");
    let rule = format!(
        r#"  - name: sigrepo
    match: ["fake.local/mirrored/*"]
    signature_repository: fake.local/signatures/app
    attestors:
      - key: {{ public_key: {} }}"#,
        key.display()
    );
    let proxy = Proxy::in_front_of(&reg.up, &policy_yaml("allow", &rule)).await;
    assert_eq!(
        get(&proxy, "mirrored/app/manifests/key-bundle")
            .await
            .status(),
        200
    );
    let seen = reg.up.requests();
    assert!(seen
        .iter()
        .any(|s| s.path.starts_with("/v2/signatures/app/referrers/")));
    assert!(!seen
        .iter()
        .any(|s| s.path.starts_with("/v2/mirrored/app/referrers/")));
    // Default mode is enforce.
    assert_eq!(
        get(&proxy, "mirrored/app/manifests/unsigned")
            .await
            .status(),
        403
    );
}

#[tokio::test]
async fn a_tag_is_resolved_once_per_request() {
    let reg = registry().await;
    let proxy = Proxy::in_front_of(&reg.up, &policy_yaml("allow", "")).await;
    assert_eq!(
        get(&proxy, "enforce/app/manifests/keyless-legacy")
            .await
            .status(),
        200
    );
    // One GET of the tag; the verdict is about the digest of those bytes.
    let tag_gets = reg
        .up
        .requests()
        .iter()
        .filter(|s| s.path == "/v2/enforce/app/manifests/keyless-legacy")
        .count();
    assert_eq!(tag_gets, 1);
}

#[tokio::test]
async fn a_broken_signature_is_a_rejected_candidate_not_a_fault() {
    let reg = registry().await;
    let proxy = Proxy::in_front_of(&reg.up, &policy_yaml("allow", "")).await;
    *reg.fault.lock().unwrap() = Fault::BrokenSig;
    // The good bundle referrer still verifies next to a junk `.sig` manifest.
    assert_eq!(
        get(&proxy, "enforce/app/manifests/keyless-bundle")
            .await
            .status(),
        200
    );
    let (status, code, message) =
        error_code(get(&proxy, "enforce/app/manifests/unsigned").await).await;
    assert_eq!((status, code.as_str()), (StatusCode::FORBIDDEN, "DENIED"));
    assert!(message.contains("manifest is malformed"), "{message}");
}

#[tokio::test]
async fn the_referrers_api_is_followed_across_pages() {
    let reg = registry().await;
    let proxy = Proxy::in_front_of(&reg.up, &policy_yaml("allow", "")).await;
    *reg.fault.lock().unwrap() = Fault::ReferrersApi;
    assert_eq!(
        get(&proxy, "enforce/app/manifests/keyless-bundle")
            .await
            .status(),
        200
    );
    let seen = reg.up.requests();
    let pages: Vec<_> = seen
        .iter()
        .filter(|s| s.path.contains("/referrers/"))
        .map(|s| s.query.clone())
        .collect();
    assert_eq!(pages, vec![None, Some("page=2".to_owned())]);
    // The SBOM referrer on page 1 is not fetched: only bundle referrers are signatures.
    assert_eq!(reg.up.count(&"e".repeat(64)), 0);
    // Without signatures on either page, the image is unsigned.
    assert_eq!(
        get(&proxy, "enforce/app/manifests/unsigned").await.status(),
        403
    );
}

#[tokio::test]
async fn manifest_bytes_do_not_leave_through_the_blob_route_unverified() {
    let reg = registry().await;
    let proxy = Proxy::in_front_of(&reg.up, &policy_yaml("allow", "")).await;
    let unsigned = digest_of("unsigned");
    let signed = digest_of("keyless-bundle");
    let blob = |repo: &str, d: &str| format!("{repo}/blobs/{d}");
    let (status, code, message) =
        error_code(get(&proxy, &blob("enforce/app", &unsigned)).await).await;
    assert_eq!(
        (status, code.as_str()),
        (StatusCode::FORBIDDEN, "DENIED"),
        "{message}"
    );
    // Nor piecewise: a Range on a small blob is answered whole, after the check.
    let ranged = client()
        .get(format!(
            "{}/v2/{}",
            proxy.url,
            blob("enforce/app", &unsigned)
        ))
        .header("range", "bytes=0-9")
        .send()
        .await
        .unwrap();
    assert_eq!(ranged.status(), 403);
    let ranged = client()
        .get(format!("{}/v2/{}", proxy.url, blob("enforce/app", &signed)))
        .header("range", "bytes=0-9")
        .send()
        .await
        .unwrap();
    assert_eq!(ranged.status(), 200);
    assert_eq!(
        crate::common::sha256(&ranged.bytes().await.unwrap()),
        signed
    );
    // A verified manifest may be read as a blob; audit and unmatched repositories are not gated.
    for path in [
        blob("enforce/app", &signed),
        blob("audit/app", &unsigned),
        blob("elsewhere/app", &unsigned),
    ] {
        let resp = get(&proxy, &path).await;
        assert_eq!(resp.status(), 200, "{path}");
        assert_eq!(
            crate::common::sha256(&resp.bytes().await.unwrap()),
            path.rsplit('/').next().unwrap()
        );
    }
    // A layer (a tar: it cannot be a JSON document) streams whatever manifest names it. An image
    // config is JSON: it could be a manifest to a lenient parser, so it is served only as part
    // of a verified image, never for an unverified one.
    let refs = |d: &str| {
        let manifest: serde_json::Value = serde_json::from_slice(&store().manifests[d].1).unwrap();
        (
            manifest["config"]["digest"].as_str().unwrap().to_owned(),
            manifest["layers"][0]["digest"].as_str().unwrap().to_owned(),
        )
    };
    let (config, layer) = refs(&unsigned);
    let resp = get(&proxy, &blob("enforce/app", &layer)).await;
    assert_eq!(resp.status(), 200);
    assert_eq!(crate::common::sha256(&resp.bytes().await.unwrap()), layer);
    let (status, code, message) =
        error_code(get(&proxy, &blob("enforce/app", &config)).await).await;
    assert_eq!(
        (status, code.as_str()),
        (StatusCode::FORBIDDEN, "DENIED"),
        "{message}"
    );

    let (config, _) = refs(&signed);
    assert_eq!(
        get(&proxy, &format!("enforce/app/manifests/{signed}"))
            .await
            .status(),
        200
    );
    let resp = get(&proxy, &blob("enforce/app", &config)).await;
    assert_eq!(resp.status(), 200, "the config of a verified image");
    assert_eq!(crate::common::sha256(&resp.bytes().await.unwrap()), config);
    // Covered for the repository whose manifest was verified, not for another one.
    assert_eq!(
        get(&proxy, &blob("enforce/other", &config)).await.status(),
        403
    );
}

const ATTESTATIONS: Fixtures = Fixtures::ATTESTATIONS;

fn attestation_policy(allow_unsigned: bool, condition: &str) -> String {
    format!(
        r#"trusted_root: {}
policies:
  - name: provenance
    match: ["fake.local/enforce/**"]
    attestors:
      - keyless: {{ subject_regexp: "https://github.com/acme/.+", issuer: "{ISSUER}" }}
    attestations:
      - name: provenance
        predicate_type: slsaprovenance
        allow_unsigned: {allow_unsigned}
        conditions: ['{condition}']
  - name: signatures-only
    match: ["fake.local/plain/**"]
    attestors:
      - keyless: {{ subject_regexp: "https://github.com/acme/.+", issuer: "{ISSUER}" }}
"#,
        ATTESTATIONS.path("trusted_root.json").display()
    )
}

#[tokio::test]
async fn attestations_are_looked_up_only_for_rules_that_require_them() {
    let reg = registry_of(&ATTESTATIONS).await;
    let repo_is_acme = r#"predicate.buildDefinition.externalParameters.workflow.repository == "https://github.com/acme/app""#;
    let proxy = Proxy::in_front_of(&reg.up, &attestation_policy(false, repo_is_acme)).await;
    // Provenance in a legacy `.att`: found through the tag scheme, verified, its condition met.
    assert_eq!(
        get(&proxy, "enforce/app/manifests/attested-legacy")
            .await
            .status(),
        200
    );
    assert_eq!(reg.up.count(".att"), 1);
    let (status, _, message) =
        error_code(get(&proxy, "enforce/app/manifests/attested-evil-repo").await).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert!(
        message.contains(r#"(predicate.buildDefinition.externalParameters.workflow.repository = "https://github.com/evil/app")"#),
        "{message}"
    );
    // A rule without attestation requirements never asks for `.att`.
    let before = reg.up.count(".att");
    assert_eq!(
        get(&proxy, "plain/app/manifests/attested-evil-repo")
            .await
            .status(),
        200
    );
    assert_eq!(reg.up.count(".att"), before);
}

#[tokio::test]
async fn buildkit_attestations_are_read_from_the_index_even_for_head() {
    let reg = registry_of(&ATTESTATIONS).await;
    let buildkit = r#"predicate.buildType == "https://mobyproject.org/buildkit@v1""#;
    let proxy = Proxy::in_front_of(&reg.up, &attestation_policy(true, buildkit)).await;
    let index = ATTESTATIONS.digest("buildkit");
    // HEAD first, as containerd resolves: the engine fetches the index itself to read them.
    let head = client()
        .head(format!("{}/v2/enforce/app/manifests/buildkit", proxy.url))
        .header("accept", INDEX)
        .send()
        .await
        .unwrap();
    assert_eq!(head.status(), 200);
    assert_eq!(head.headers()["docker-content-digest"], index.as_str());
    let attestation_manifest = ATTESTATIONS.digest("buildkit-attestations");
    assert_eq!(reg.up.count(&attestation_manifest), 1);
    // Then the index and its platform manifest, both allowed.
    assert_eq!(
        get(&proxy, "enforce/app/manifests/buildkit").await.status(),
        200
    );
    let child = ATTESTATIONS.digest("buildkit-amd64");
    assert_eq!(
        get(&proxy, &format!("enforce/app/manifests/{child}"))
            .await
            .status(),
        200
    );

    // Without allow_unsigned the same attestations do not count.
    let reg = registry_of(&ATTESTATIONS).await;
    let proxy = Proxy::in_front_of(&reg.up, &attestation_policy(false, buildkit)).await;
    let (status, _, message) =
        error_code(get(&proxy, "enforce/app/manifests/buildkit").await).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert!(message.contains("provenance: no"), "{message}");
}

// === manifest cache ===

fn gets(reg: &Registry, path: &str) -> usize {
    reg.up
        .requests()
        .iter()
        .filter(|s| s.method == http::Method::GET && s.path == path)
        .count()
}

fn heads(reg: &Registry, path: &str) -> usize {
    reg.up
        .requests()
        .iter()
        .filter(|s| s.method == http::Method::HEAD && s.path == path)
        .count()
}

#[tokio::test]
async fn manifests_by_digest_are_served_from_memory_even_when_the_upstream_is_down() {
    let reg = registry().await;
    let proxy = Proxy::in_front_of(&reg.up, &policy_yaml("allow", "")).await;
    let d = digest_of("keyless-bundle");
    let path = format!("enforce/app/manifests/{d}");
    assert_eq!(get(&proxy, &path).await.status(), 200);
    let before = reg.up.total();
    *reg.fault.lock().unwrap() = Fault::Down;
    for _ in 0..3 {
        let resp = get(&proxy, &path).await;
        assert_eq!(resp.status(), 200);
        assert_eq!(resp.headers()["docker-content-digest"], d.as_str());
        assert_eq!(crate::common::sha256(&resp.bytes().await.unwrap()), d);
        let head = client()
            .head(format!("{}/v2/{path}", proxy.url))
            .send()
            .await
            .unwrap();
        assert_eq!(head.status(), 200);
    }
    assert_eq!(
        reg.up.total(),
        before,
        "no upstream request for a cached digest"
    );
    // Refused manifests are not served from memory either: the gate runs on every answer.
    let unsigned = format!("enforce/app/manifests/{}", digest_of("unsigned"));
    *reg.fault.lock().unwrap() = Fault::None;
    assert_eq!(get(&proxy, &unsigned).await.status(), 403);
    assert_eq!(get(&proxy, &unsigned).await.status(), 403);
}

#[tokio::test]
async fn a_known_tag_is_revalidated_with_head_and_not_fetched_again() {
    let reg = registry().await;
    let proxy = Proxy::in_front_of(&reg.up, &policy_yaml("allow", "")).await;
    let tag_path = "/v2/audit/app/manifests/keyless-bundle";
    let d = digest_of("keyless-bundle");
    for _ in 0..3 {
        let resp = get(&proxy, "audit/app/manifests/keyless-bundle").await;
        assert_eq!(resp.status(), 200);
        assert_eq!(crate::common::sha256(&resp.bytes().await.unwrap()), d);
    }
    // The first request GETs the tag; the next ones only ask with HEAD (not a pull on Docker Hub).
    assert_eq!(gets(&reg, tag_path), 1);
    assert_eq!(heads(&reg, tag_path), 2);
    assert_eq!(gets(&reg, &format!("/v2/audit/app/manifests/{d}")), 0);
    // A digest already cached is not fetched when a tag moves onto it.
    let head = client()
        .head(format!("{}{tag_path}", proxy.url))
        .send()
        .await
        .unwrap();
    assert_eq!(head.status(), 200);
    assert_eq!(head.headers()["docker-content-digest"], d.as_str());
    let m = proxy.metrics().await;
    assert!(
        m.contains(r#"portcullis_cache_requests_total{cache="manifest",result="hit"}"#),
        "{m}"
    );
}

#[tokio::test]
async fn tag_ttl_skips_the_head_and_serve_stale_tags_rides_out_an_outage() {
    let reg = registry().await;
    let dir = tempfile::tempdir().unwrap();
    let path = crate::fake::write_config(
        dir.path(),
        "fake.local",
        &format!(
            "  fake.local: {{ url: \"{}\", tag_ttl: 1h, serve_stale_tags: true }}\n  strict.local: {{ url: \"{}\" }}",
            reg.up.url(),
            reg.up.url()
        ),
        &policy_yaml("allow", ""),
    );
    let proxy = Proxy::start_file(&path, dir).await;
    let d = digest_of("key-legacy");
    assert_eq!(
        get(&proxy, "audit/app/manifests/key-legacy").await.status(),
        200
    );
    let before = reg.up.total();
    let resp = get(&proxy, "audit/app/manifests/key-legacy").await;
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["docker-content-digest"], d.as_str());
    assert_eq!(reg.up.total(), before, "within tag_ttl, not even a HEAD");

    // Outage: the stale resolution is served where serve_stale_tags is set...
    *reg.fault.lock().unwrap() = Fault::Down;
    let resp = get(&proxy, "audit/app/manifests/key-legacy").await;
    assert_eq!(resp.status(), 200);
    // ...and refused where it is not (the other upstream key, same registry).
    assert_eq!(
        get(&proxy, "strict.local/audit/app/manifests/key-legacy")
            .await
            .status(),
        502
    );
}

#[tokio::test]
async fn after_a_restart_with_the_upstream_down_kept_material_is_verified_again_and_served() {
    let reg = registry().await;
    let dir = tempfile::tempdir().unwrap();
    let path = crate::fake::write_config(
        dir.path(),
        "fake.local",
        &format!(
            "  fake.local: {{ url: \"{}\", serve_stale_tags: true }}",
            reg.up.url()
        ),
        &policy_yaml("allow", ""),
    );
    // The state directory lives beside the configuration, in `dir`, across both processes.
    let first = Proxy::start_file(&path, tempfile::tempdir().unwrap()).await;
    let signed = ["keyless-bundle", "key-legacy"];
    for image in signed {
        let resp = get(&first, &format!("enforce/app/manifests/{image}")).await;
        assert_eq!(resp.status(), 200, "{image}");
    }
    let by_digest = format!("enforce/app/manifests/{}", digest_of("key-bundle"));
    assert_eq!(get(&first, &by_digest).await.status(), 200);
    assert_eq!(
        get(&first, "enforce/app/manifests/unsigned").await.status(),
        403
    );
    // The material is kept in the background: wait for the last of it.
    tokio::time::sleep(Duration::from_millis(500)).await;
    if let Some(s) = first.server {
        s.shutdown().await;
    }

    *reg.fault.lock().unwrap() = Fault::Down;
    let second = Proxy::start_file(&path, tempfile::tempdir().unwrap()).await;
    for image in signed {
        let resp = get(&second, &format!("enforce/app/manifests/{image}")).await;
        assert_eq!(resp.status(), 200, "{image} by its last tag resolution");
        let body = resp.bytes().await.unwrap();
        assert_eq!(crate::common::sha256(&body), digest_of(image), "{image}");
    }
    let resp = get(&second, &by_digest).await;
    assert_eq!(resp.status(), 200);
    assert_eq!(
        crate::common::sha256(&resp.bytes().await.unwrap()),
        digest_of("key-bundle")
    );
    // Verified again in this process, from the kept signatures: nothing was served unverified.
    let m = second.metrics().await;
    assert!(
        m.contains(
            r#"portcullis_verdicts_total{mode="enforce",result="verified",rule="enforced"} 3"#
        ),
        "{m}"
    );
    // What was refused was never kept as served, and what was never pulled is not invented.
    for image in ["unsigned", "keyless-legacy"] {
        let status = get(&second, &format!("enforce/app/manifests/{image}"))
            .await
            .status();
        assert_ne!(status, 200, "{image}");
    }
    let unsigned_digest = format!("enforce/app/manifests/{}", digest_of("unsigned"));
    assert_ne!(get(&second, &unsigned_digest).await.status(), 200);
}

#[tokio::test]
async fn a_pull_by_digest_looks_up_signatures_while_the_manifest_is_fetched() {
    let reg = registry().await;
    *reg.fault.lock().unwrap() = Fault::SlowManifest;
    let proxy = Proxy::in_front_of(&reg.up, &policy_yaml("allow", "")).await;
    let d = digest_of("key-legacy");
    let resp = get(&proxy, &format!("enforce/app/manifests/{d}")).await;
    assert_eq!(resp.status(), 200);
    assert_eq!(crate::common::sha256(&resp.bytes().await.unwrap()), d);
    let early = reg.early_lookups.load(std::sync::atomic::Ordering::SeqCst);
    assert!(
        early >= 2,
        "the .sig and referrers lookups start before the manifest is answered: {early}"
    );
    // One verdict, counted once; and nothing is served that the gate did not pass.
    let m = proxy.metrics().await;
    assert!(
        m.contains(r#"portcullis_cache_requests_total{cache="verdict",result="miss"} 1"#),
        "{m}"
    );
    let unsigned = digest_of("unsigned");
    let resp = get(&proxy, &format!("enforce/app/manifests/{unsigned}")).await;
    assert_eq!(resp.status(), 403);
}

#[tokio::test]
async fn an_upstream_without_the_referrers_api_is_not_asked_again_for_each_digest() {
    let reg = registry().await;
    let proxy = Proxy::in_front_of(&reg.up, &policy_yaml("allow", "")).await;
    for image in ["key-legacy", "keyless-bundle", "key-bundle"] {
        let resp = get(
            &proxy,
            &format!("enforce/app/manifests/{}", digest_of(image)),
        )
        .await;
        assert_eq!(resp.status(), 200, "{image}");
    }
    // The first lookup learnt the API answers 404; the bundles were found through the tag schema.
    assert_eq!(reg.up.count("/referrers/"), 1);
    assert_eq!(
        reg.up.count("/manifests/sha256-"),
        3 + 3,
        "fallback tags and .sig tags"
    );
}
