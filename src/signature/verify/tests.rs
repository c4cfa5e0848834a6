//! Verification against fixtures from an independent signer (`@sigstore/sign` with
//! `@sigstore/mock`; see tests/fixtures/sigstore/generator): every accept path and every reject
//! path of DESIGN.md §4.

use std::collections::BTreeMap;
use std::sync::Arc;

use base64::Engine as _;
use bytes::Bytes;

use super::*;
use crate::policy::attestor::PublicKey;
use crate::policy::{Matcher, Mode, Pattern, RuleSpec, Verdict};

const DIR: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/sigstore");
const ISSUER: &str = "https://token.actions.githubusercontent.com";
const OK_ID: &str = "https://github.com/acme/app/.github/workflows/release.yml@refs/heads/main";
const B64: base64::engine::GeneralPurpose = base64::engine::general_purpose::STANDARD;

fn read(path: &str) -> String {
    std::fs::read_to_string(format!("{DIR}/{path}")).unwrap()
}

fn root() -> TrustRoot {
    TrustRoot::from_json(read("trusted_root.json").as_bytes(), "fixture".into()).unwrap()
}

fn foreign_root() -> TrustRoot {
    TrustRoot::from_json(
        read("foreign_trusted_root.json").as_bytes(),
        "foreign".into(),
    )
    .unwrap()
}

fn digest_of(image: &str) -> Digest {
    let v: serde_json::Value = serde_json::from_str(&read("expect.json")).unwrap();
    v["images"][image]["digest"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap()
}

fn bundle(image: &str) -> Candidate {
    bundle_json(read(&format!("bundles/{image}.sigstore.json")))
}

fn bundle_json(json: String) -> Candidate {
    Candidate {
        source: "bundle referrer".into(),
        kind: CandidateKind::Bundle(Bytes::from(json)),
    }
}

fn legacy(image: &str) -> (Bytes, BTreeMap<String, String>) {
    let v: serde_json::Value =
        serde_json::from_str(&read(&format!("legacy/{image}.json"))).unwrap();
    let payload = B64.decode(v["payload"].as_str().unwrap()).unwrap();
    let annotations = v["annotations"]
        .as_object()
        .unwrap()
        .iter()
        .map(|(k, v)| (k.clone(), v.as_str().unwrap().to_owned()))
        .collect();
    (Bytes::from(payload), annotations)
}

fn legacy_candidate(image: &str) -> Candidate {
    let (payload, annotations) = legacy(image);
    Candidate {
        source: "sig layer".into(),
        kind: CandidateKind::Legacy {
            payload,
            annotations,
        },
    }
}

fn keyless(subject: &str, issuer: &str) -> Attestor {
    Attestor::keyless(
        Matcher::Exact(subject.into()),
        Matcher::Exact(issuer.into()),
    )
}

fn key(file: &str, ignore_tlog: bool) -> Attestor {
    Attestor::Key {
        key: PublicKey::from_pem(&read(file), file.into()).unwrap(),
        insecure_ignore_tlog: ignore_tlog,
    }
}

fn rule(attestors: Vec<Attestor>) -> Arc<crate::policy::Rule> {
    Arc::new(
        RuleSpec {
            name: "t".into(),
            patterns: vec![Pattern::new("**").unwrap()],
            mode: Mode::Enforce,
            count: None,
            attestors,
            signature_repository: None,
            attestations: Vec::new(),
        }
        .build()
        .unwrap(),
    )
}

fn verdict_with(root: &TrustRoot, attestors: Vec<Attestor>, image: &str, c: Candidate) -> Verdict {
    verdict_for(root, attestors, &digest_of(image), vec![c])
}

fn verdict_for(
    root: &TrustRoot,
    attestors: Vec<Attestor>,
    digest: &Digest,
    candidates: Vec<Candidate>,
) -> Verdict {
    let r = rule(attestors);
    let c = check_all(root, &r, digest, &candidates);
    r.evaluate(c.signatures, c.checks, c.identities)
}

fn verdict(attestors: Vec<Attestor>, image: &str, c: Candidate) -> Verdict {
    verdict_with(&root(), attestors, image, c)
}

fn assert_rejected(v: &Verdict, needle: &str) {
    assert!(!v.verified, "expected a rejection, got {v:?}");
    let all = v.reasons.join(" / ");
    assert!(
        all.to_lowercase().contains(&needle.to_lowercase()),
        "reasons {all:?} do not mention {needle:?}"
    );
}

// === accepted ===

#[test]
fn keyless_bundle_verifies_for_its_identity() {
    let v = verdict(
        vec![keyless(OK_ID, ISSUER)],
        "keyless-bundle",
        bundle("keyless-bundle"),
    );
    assert!(v.verified, "{v:?}");
    assert_eq!(v.evidence[0].signer, format!("{OK_ID} (issuer {ISSUER})"));
    assert_eq!(v.identities, vec![format!("{OK_ID} (issuer {ISSUER})")]);
}

#[test]
fn keyless_regexp_identity_matches_the_verified_identity() {
    let a = Attestor::keyless(
        Matcher::regexp("https://github.com/acme/.+").unwrap(),
        Matcher::regexp(r"https://token\.actions\.githubusercontent\.com").unwrap(),
    );
    assert!(verdict(vec![a], "keyless-bundle", bundle("keyless-bundle")).verified);
}

#[test]
fn keyless_legacy_sig_verifies_via_v01_bundle() {
    let v = verdict(
        vec![keyless(OK_ID, ISSUER)],
        "keyless-legacy",
        legacy_candidate("keyless-legacy"),
    );
    assert!(v.verified, "{v:?}");
}

#[test]
fn key_legacy_sig_with_rekor_entry_verifies() {
    let v = verdict(
        vec![key("cosign.pub", false)],
        "key-legacy",
        legacy_candidate("key-legacy"),
    );
    assert!(v.verified, "{v:?}");
}

#[test]
fn key_bundle_verifies() {
    let v = verdict(
        vec![key("cosign.pub", false)],
        "key-bundle",
        bundle("key-bundle"),
    );
    assert!(v.verified, "{v:?}");
}

#[test]
fn key_sig_without_log_entry_needs_ignore_tlog() {
    let v = verdict(
        vec![key("cosign.pub", false)],
        "key-legacy-notlog",
        legacy_candidate("key-legacy-notlog"),
    );
    assert_rejected(&v, "no transparency log entry");
    let v = verdict(
        vec![key("cosign.pub", true)],
        "key-legacy-notlog",
        legacy_candidate("key-legacy-notlog"),
    );
    assert!(v.verified, "{v:?}");
    // ignore_tlog still checks the key.
    let v = verdict(
        vec![key("other.pub", true)],
        "key-legacy-notlog",
        legacy_candidate("key-legacy-notlog"),
    );
    assert_rejected(&v, "not signed by");
}

#[test]
fn index_bundle_verifies_for_the_index_only() {
    assert!(verdict(vec![keyless(OK_ID, ISSUER)], "index", bundle("index")).verified);
    let v = verdict(vec![keyless(OK_ID, ISSUER)], "index-amd64", bundle("index"));
    assert_rejected(&v, "artifact mismatch");
}

// === rejected ===

#[test]
fn wrong_key_is_rejected() {
    let v = verdict(
        vec![key("other.pub", false)],
        "key-bundle",
        bundle("key-bundle"),
    );
    assert_rejected(&v, "with key other.pub");
    let v = verdict(
        vec![key("other.pub", false)],
        "key-legacy",
        legacy_candidate("key-legacy"),
    );
    assert_rejected(&v, "with key other.pub");
}

#[test]
fn wrong_identity_is_rejected_and_reported() {
    let v = verdict(
        vec![keyless(OK_ID, ISSUER)],
        "evil-bundle",
        bundle("evil-bundle"),
    );
    assert_rejected(&v, "which this attestor does not allow");
    assert_rejected(&v, "no signature from an allowed identity");
    // The signer that did verify is still reported, for the audit event.
    assert!(
        v.identities[0].starts_with("https://github.com/evil/app/"),
        "{v:?}"
    );
    let re = Attestor::keyless(
        Matcher::regexp("https://github.com/acme/.+").unwrap(),
        Matcher::Exact(ISSUER.into()),
    );
    let v = verdict(vec![re], "evil-bundle", bundle("evil-bundle"));
    assert_rejected(&v, "which this attestor does not allow");
}

#[test]
fn wrong_issuer_is_rejected() {
    let v = verdict(
        vec![keyless(OK_ID, "https://accounts.google.com")],
        "keyless-bundle",
        bundle("keyless-bundle"),
    );
    assert_rejected(&v, "does not allow");
    let v = verdict(
        vec![keyless(OK_ID, "https://accounts.google.com")],
        "keyless-legacy",
        legacy_candidate("keyless-legacy"),
    );
    assert_rejected(&v, "does not allow");
}

#[test]
fn foreign_trust_root_is_rejected() {
    let r = foreign_root();
    for (image, c) in [
        ("keyless-bundle", bundle("keyless-bundle")),
        ("keyless-legacy", legacy_candidate("keyless-legacy")),
    ] {
        let v = verdict_with(&r, vec![keyless(OK_ID, ISSUER)], image, c);
        assert_rejected(&v, "no log key valid at integrated time");
        assert!(v.identities.is_empty());
    }
    let v = verdict_with(
        &r,
        vec![key("cosign.pub", false)],
        "key-bundle",
        bundle("key-bundle"),
    );
    assert_rejected(&v, "no matching rekor key found for checkpoint signature");
    // The public-good root does not trust the mock either.
    let v = verdict_with(
        &TrustRoot::public_good().unwrap(),
        vec![keyless(OK_ID, ISSUER)],
        "keyless-bundle",
        bundle("keyless-bundle"),
    );
    assert_rejected(&v, "no log key valid at integrated time");
}

#[test]
fn signature_for_another_digest_is_rejected() {
    let v = verdict(
        vec![keyless(OK_ID, ISSUER)],
        "unsigned",
        bundle("keyless-bundle"),
    );
    assert_rejected(&v, "artifact mismatch");
    let v = verdict(
        vec![key("cosign.pub", false)],
        "unsigned",
        bundle("key-bundle"),
    );
    assert_rejected(&v, "artifact mismatch");
    // A legacy signature of image A attached to image B.
    let v = verdict(
        vec![keyless(OK_ID, ISSUER)],
        "unsigned",
        legacy_candidate("keyless-legacy"),
    );
    assert_rejected(&v, "payload signs");
}

#[test]
fn payload_naming_another_digest_is_rejected() {
    let v = verdict(
        vec![keyless(OK_ID, ISSUER)],
        "mismatch",
        legacy_candidate("mismatch"),
    );
    assert_rejected(&v, &format!("payload signs {}", digest_of("unsigned")));
}

fn tamper_b64(s: &str) -> String {
    let mut b = B64.decode(s).unwrap();
    let n = b.len();
    b[n - 3] ^= 1;
    B64.encode(b)
}

#[test]
fn tampered_set_is_rejected() {
    // The positive twin: the bundle parsed and re-serialised as the tampering below does it, but
    // unmodified, still verifies; so the rejections below come from the flipped bytes.
    let j: serde_json::Value =
        serde_json::from_str(&read("bundles/keyless-bundle.sigstore.json")).unwrap();
    let v = verdict(
        vec![keyless(OK_ID, ISSUER)],
        "keyless-bundle",
        bundle_json(j.to_string()),
    );
    assert!(v.verified, "re-serialised, unmodified: {v:?}");

    // Bundle: flip a byte of the SET.
    let mut j = j;
    let e = &mut j["verificationMaterial"]["tlogEntries"][0];
    let set = e["inclusionPromise"]["signedEntryTimestamp"]
        .as_str()
        .unwrap()
        .to_owned();
    e["inclusionPromise"]["signedEntryTimestamp"] = tamper_b64(&set).into();
    let v = verdict(
        vec![keyless(OK_ID, ISSUER)],
        "keyless-bundle",
        bundle_json(j.to_string()),
    );
    assert_rejected(&v, "invalid inclusion promise: SET verification failed");

    // Legacy: the SET of the dev.sigstore.cosign/bundle annotation, and the integrated time it
    // covers.
    for field in [
        "none (positive twin)",
        "SignedEntryTimestamp",
        "integratedTime",
    ] {
        let (payload, mut annotations) = legacy("keyless-legacy");
        let mut rb: serde_json::Value =
            serde_json::from_str(&annotations[crate::signature::legacy::REKOR_BUNDLE]).unwrap();
        if field.starts_with("none") {
            // re-serialised only
        } else if field == "SignedEntryTimestamp" {
            let set = rb["SignedEntryTimestamp"].as_str().unwrap().to_owned();
            rb["SignedEntryTimestamp"] = tamper_b64(&set).into();
        } else {
            let t = rb["Payload"]["integratedTime"].as_i64().unwrap();
            rb["Payload"]["integratedTime"] = (t + 1).into();
        }
        annotations.insert(
            crate::signature::legacy::REKOR_BUNDLE.into(),
            rb.to_string(),
        );
        let c = Candidate {
            source: "sig".into(),
            kind: CandidateKind::Legacy {
                payload,
                annotations,
            },
        };
        let v = verdict(vec![keyless(OK_ID, ISSUER)], "keyless-legacy", c);
        if field.starts_with("none") {
            assert!(v.verified, "re-serialised, unmodified: {v:?}");
        } else {
            assert_rejected(&v, "invalid inclusion promise: SET verification failed");
        }
    }
}

#[test]
fn tampered_signature_is_rejected() {
    let (payload, mut annotations) = legacy("key-legacy");
    let sig = annotations[crate::signature::legacy::SIGNATURE].clone();
    annotations.insert(crate::signature::legacy::SIGNATURE.into(), tamper_b64(&sig));
    let c = Candidate {
        source: "sig".into(),
        kind: CandidateKind::Legacy {
            payload,
            annotations,
        },
    };
    let v = verdict(vec![key("cosign.pub", false)], "key-legacy", c);
    assert_rejected(&v, "with key cosign.pub: invalid signature");
}

#[test]
fn signatures_without_a_log_entry_are_rejected() {
    // The fixture certificates were valid for 10 minutes at signing time. Without the log entry
    // there is no trusted signing time, so the certificate cannot be shown valid: the verifier
    // refuses such a keyless bundle before it looks at the certificate's validity.
    let mut j: serde_json::Value =
        serde_json::from_str(&read("bundles/keyless-bundle.sigstore.json")).unwrap();
    j["verificationMaterial"]["tlogEntries"] = serde_json::json!([]);
    let v = verdict(
        vec![keyless(OK_ID, ISSUER)],
        "keyless-bundle",
        bundle_json(j.to_string()),
    );
    assert_rejected(&v, "bundle must have an inclusion proof");

    let (payload, mut annotations) = legacy("keyless-legacy");
    annotations.remove(crate::signature::legacy::REKOR_BUNDLE);
    let c = Candidate {
        source: "sig".into(),
        kind: CandidateKind::Legacy {
            payload,
            annotations,
        },
    };
    let v = verdict(vec![keyless(OK_ID, ISSUER)], "keyless-legacy", c);
    assert_rejected(&v, "bundles must have an inclusion promise");
}

#[test]
fn malformed_bundles_are_rejected_not_faults() {
    for json in [
        "not json".to_owned(),
        "{}".to_owned(),
        r#"{"mediaType":"application/vnd.dev.sigstore.bundle.v0.3+json"}"#.to_owned(),
    ] {
        let v = verdict(
            vec![keyless(OK_ID, ISSUER)],
            "keyless-bundle",
            bundle_json(json),
        );
        assert_rejected(&v, "malformed bundle");
    }
    let c = Candidate {
        source: "sig".into(),
        kind: CandidateKind::Legacy {
            payload: Bytes::from_static(b"{}"),
            annotations: BTreeMap::new(),
        },
    };
    let v = verdict(vec![keyless(OK_ID, ISSUER)], "keyless-legacy", c);
    assert_rejected(&v, "malformed cosign signature");
}

#[test]
fn attestations_do_not_count_as_signatures() {
    // Same bundle with its statement's predicateType changed: an attestation, which a rule's
    // signature requirement does not count (it is not even a signature candidate).
    let mut j: serde_json::Value =
        serde_json::from_str(&read("bundles/keyless-bundle.sigstore.json")).unwrap();
    let p = j["dsseEnvelope"]["payload"].as_str().unwrap();
    let mut st: serde_json::Value = serde_json::from_slice(&B64.decode(p).unwrap()).unwrap();
    st["predicateType"] = "https://slsa.dev/provenance/v1".into();
    j["dsseEnvelope"]["payload"] = B64.encode(st.to_string()).into();
    let v = verdict(
        vec![keyless(OK_ID, ISSUER)],
        "keyless-bundle",
        bundle_json(j.to_string()),
    );
    assert_rejected(&v, "no signatures found");
    assert_eq!(v.signatures, 0);
}

#[test]
fn key_and_keyless_attestors_do_not_cross() {
    let v = verdict(
        vec![key("cosign.pub", false)],
        "keyless-bundle",
        bundle("keyless-bundle"),
    );
    assert_rejected(&v, "not a key");
    let v = verdict(
        vec![keyless(OK_ID, ISSUER)],
        "key-bundle",
        bundle("key-bundle"),
    );
    assert_rejected(&v, "not a Fulcio certificate");
}

#[test]
fn count_needs_distinct_attestors_over_several_signatures() {
    let d = digest_of("keyless-bundle");
    // Two attestors, both satisfied by the one keyless signature: count 2 holds.
    let r = Arc::new(
        RuleSpec {
            name: "two".into(),
            patterns: vec![Pattern::new("**").unwrap()],
            mode: Mode::Enforce,
            count: Some(2),
            attestors: vec![
                keyless(OK_ID, ISSUER),
                Attestor::keyless(
                    Matcher::regexp("https://github.com/acme/.+").unwrap(),
                    Matcher::Exact(ISSUER.into()),
                ),
            ],
            signature_repository: None,
            attestations: Vec::new(),
        }
        .build()
        .unwrap(),
    );
    let cands = vec![bundle("keyless-bundle")];
    let c = check_all(&root(), &r, &d, &cands);
    assert!(r.evaluate(1, c.checks, c.identities).verified);
    // Key + keyless with count 2 on an image that only has the keyless signature: not verified.
    let r2 = Arc::new(
        RuleSpec {
            name: "both".into(),
            patterns: vec![Pattern::new("**").unwrap()],
            mode: Mode::Enforce,
            count: Some(2),
            attestors: vec![keyless(OK_ID, ISSUER), key("cosign.pub", false)],
            signature_repository: None,
            attestations: Vec::new(),
        }
        .build()
        .unwrap(),
    );
    let c = check_all(&root(), &r2, &d, &cands);
    let v = r2.evaluate(1, c.checks, c.identities);
    assert_rejected(&v, "1 of 2");
}

// === Rekor v2 + RFC 3161 timestamps (tests/fixtures/sigstore/rekor-v2) ===

fn rekor_v2_root() -> TrustRoot {
    TrustRoot::from_json(
        read("rekor-v2/trusted_root.json").as_bytes(),
        "rekor-v2".into(),
    )
    .unwrap()
}

fn tsa_bundle(edit: impl Fn(&mut serde_json::Value)) -> Candidate {
    let mut j: serde_json::Value =
        serde_json::from_str(&read("rekor-v2/keyless-tsa.sigstore.json")).unwrap();
    edit(&mut j);
    bundle_json(j.to_string())
}

#[test]
fn rekor_v2_entry_with_tsa_timestamp_verifies() {
    let v = verdict_with(
        &rekor_v2_root(),
        vec![keyless(OK_ID, ISSUER)],
        "keyless-bundle",
        tsa_bundle(|_| {}),
    );
    assert!(v.verified, "{v:?}");
}

#[test]
fn rekor_v2_bundle_needs_its_timestamp_and_its_roots() {
    let root = rekor_v2_root();
    let tampered = tsa_bundle(|j| {
        let ts = &mut j["verificationMaterial"]["timestampVerificationData"]["rfc3161Timestamps"]
            [0]["signedTimestamp"];
        let t = ts.as_str().unwrap().to_owned();
        *ts = tamper_b64(&t).into();
    });
    let removed = tsa_bundle(|j| {
        j["verificationMaterial"]["timestampVerificationData"] = serde_json::json!({});
    });
    for (what, c) in [("tampered timestamp", tampered), ("no timestamp", removed)] {
        let v = verdict_with(&root, vec![keyless(OK_ID, ISSUER)], "keyless-bundle", c);
        let needle = if what == "no timestamp" {
            "requires rfc3161 timestamp but none could be verified"
        } else {
            "invalid rfc 3161 timestamp: tsa timestamp verification failed"
        };
        assert_rejected(&v, needle);
    }
    // The other mock instance has no TSA and another log key.
    let v = verdict(
        vec![keyless(OK_ID, ISSUER)],
        "keyless-bundle",
        tsa_bundle(|_| {}),
    );
    assert_rejected(&v, "no timestamp authorities configured in trusted root");
}
