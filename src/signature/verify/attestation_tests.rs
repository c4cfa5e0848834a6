//! Attestation requirements against fixtures from an independent signer
//! (tests/fixtures/sigstore/attestations, made by generator/generate-attestations.js): cosign v3
//! bundle referrers, legacy `.att` layers (Rekor `intoto` 0.0.2 and `dsse` 0.0.1 entries), and
//! BuildKit's unsigned attestation manifests.

use std::collections::BTreeMap;
use std::sync::Arc;

use bytes::Bytes;

use super::*;
use crate::policy::attestation::{predicate_type_uris, Condition, Requirement};
use crate::policy::attestor::PublicKey;
use crate::policy::{Matcher, Mode, Pattern, Rule, RuleSpec, Verdict};

const DIR: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/tests/fixtures/sigstore/attestations"
);
const ISSUER: &str = "https://token.actions.githubusercontent.com";
const OK_ID: &str = "https://github.com/acme/app/.github/workflows/release.yml@refs/heads/main";
const REPO_IS_ACME: &str = r#"predicate.buildDefinition.externalParameters.workflow.repository == "https://github.com/acme/app""#;

fn read(path: &str) -> String {
    std::fs::read_to_string(format!("{DIR}/{path}")).unwrap()
}

fn root() -> TrustRoot {
    TrustRoot::from_json(read("trusted_root.json").as_bytes(), "attestations".into()).unwrap()
}

fn digest_of(image: &str) -> Digest {
    let v: serde_json::Value = serde_json::from_str(&read("expect.json")).unwrap();
    v["images"][image]["digest"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap()
}

fn bundle(name: &str) -> Candidate {
    Candidate {
        source: format!("referrer {name}"),
        kind: CandidateKind::Bundle(Bytes::from(read(&format!("bundles/{name}.sigstore.json")))),
    }
}

fn annotations(v: &serde_json::Value) -> BTreeMap<String, String> {
    v.as_object()
        .unwrap()
        .iter()
        .map(|(k, v)| (k.clone(), v.as_str().unwrap().to_owned()))
        .collect()
}

/// The `.sig` and both `.att` layers of `attested-legacy`.
fn legacy_candidates() -> Vec<Candidate> {
    use base64::Engine as _;
    let sig: serde_json::Value =
        serde_json::from_str(&read("legacy/attested-legacy-sig.json")).unwrap();
    let mut out = vec![Candidate {
        source: "sig".into(),
        kind: CandidateKind::Legacy {
            payload: Bytes::from(
                base64::engine::general_purpose::STANDARD
                    .decode(sig["payload"].as_str().unwrap())
                    .unwrap(),
            ),
            annotations: annotations(&sig["annotations"]),
        },
    }];
    let att: serde_json::Value =
        serde_json::from_str(&read("legacy/attested-legacy-att.json")).unwrap();
    for (i, layer) in att["layers"].as_array().unwrap().iter().enumerate() {
        out.push(Candidate {
            source: format!("att layer {}", i + 1),
            kind: CandidateKind::LegacyAttestation {
                envelope: Bytes::from(layer["envelope"].as_str().unwrap().to_owned()),
                annotations: annotations(&layer["annotations"]),
            },
        });
    }
    out
}

fn keyless() -> Attestor {
    Attestor::keyless(Matcher::Exact(OK_ID.into()), Matcher::Exact(ISSUER.into()))
}

fn key() -> Attestor {
    Attestor::Key {
        key: PublicKey::from_pem(&read("cosign.pub"), "cosign.pub".into()).unwrap(),
        insecure_ignore_tlog: false,
    }
}

fn requirement(
    name: &str,
    predicate_type: &str,
    conditions: &[&str],
    allow_unsigned: bool,
) -> Requirement {
    Requirement {
        name: name.into(),
        predicate_types: predicate_type_uris(predicate_type).unwrap(),
        conditions: conditions
            .iter()
            .enumerate()
            .map(|(i, c)| Condition::compile(i + 1, c).unwrap())
            .collect(),
        allow_unsigned,
    }
}

fn rule(attestors: Vec<Attestor>, attestations: Vec<Requirement>) -> Arc<Rule> {
    Arc::new(
        RuleSpec {
            name: "t".into(),
            patterns: vec![Pattern::new("**").unwrap()],
            mode: Mode::Enforce,
            count: None,
            attestors,
            signature_repository: None,
            attestations,
        }
        .build()
        .unwrap(),
    )
}

fn verdict_with_children(
    r: &Rule,
    digest: &Digest,
    candidates: &[Candidate],
    children: &[Digest],
) -> Verdict {
    let c = check_all(&root(), r, digest, candidates);
    let v = r.evaluate(c.signatures, c.checks, c.identities);
    r.evaluate_attestations(v, digest, &c.attestations, children)
}

fn verdict(r: &Rule, image: &str, candidates: &[Candidate]) -> Verdict {
    verdict_with_children(r, &digest_of(image), candidates, &[])
}

fn provenance() -> Requirement {
    requirement("provenance", "slsaprovenance", &[REPO_IS_ACME], false)
}

fn reasons(v: &Verdict) -> String {
    v.reasons.join(" / ")
}

#[test]
fn signed_image_with_required_provenance_and_sbom_passes() {
    let sbom = requirement(
        "sbom",
        "spdxjson",
        &[
            r#"predicate.packages.exists(p, p.name == "musl")"#,
            "predicate.spdxVersion.startsWith(\"SPDX-2\")",
        ],
        false,
    );
    let r = rule(vec![keyless()], vec![provenance(), sbom]);
    let cands = [
        bundle("attested-sign"),
        bundle("attested-provenance"),
        bundle("attested-spdx"),
    ];
    let v = verdict(&r, "attested", &cands);
    assert!(v.verified, "{v:?}");
    assert_eq!(v.signatures, 1, "attestations are not signatures");
    assert_eq!(v.attestations.len(), 2);
    for a in &v.attestations {
        assert_eq!(
            a.verified_by.as_deref(),
            Some(format!("{OK_ID} (issuer {ISSUER})").as_str())
        );
        assert!(a.requirements.iter().all(|r| r.satisfied), "{a:?}");
    }
    // Each condition's value is reported.
    let prov = v
        .attestations
        .iter()
        .find(|a| {
            a.predicate_type
                .as_deref()
                .is_some_and(|t| t.contains("slsa"))
        })
        .unwrap();
    assert_eq!(prov.requirements[0].conditions[0].result, "true");
    assert!(prov.requirements[0].conditions[0]
        .detail
        .as_deref()
        .unwrap()
        .contains(r#"= "https://github.com/acme/app""#));
}

#[test]
fn signature_alone_is_not_enough_when_provenance_is_required() {
    let r = rule(vec![keyless()], vec![provenance()]);
    let v = verdict(&r, "attested", &[bundle("attested-sign")]);
    assert!(!v.verified);
    assert!(reasons(&v).contains("provenance: no https://slsa.dev/provenance/v0.2 or https://slsa.dev/provenance/v1 attestation found"), "{}", reasons(&v));
    // And provenance without the signature is not enough either.
    let v = verdict(&r, "attested", &[bundle("attested-provenance")]);
    assert!(!v.verified);
    assert!(
        reasons(&v).contains("no signatures found"),
        "{}",
        reasons(&v)
    );
}

#[test]
fn legacy_att_layers_verify_with_intoto_and_dsse_entries() {
    let sbom = requirement("sbom", "https://spdx.dev/Document", &[], false);
    let r = rule(vec![keyless()], vec![provenance(), sbom]);
    let v = verdict(&r, "attested-legacy", &legacy_candidates());
    assert!(v.verified, "{v:?}");
    assert_eq!(v.attestations.len(), 2);
    // Against another image, the same layers name the wrong subject.
    let v = verdict(&r, "attested", &legacy_candidates());
    assert!(!v.verified);
    assert!(reasons(&v).contains("no verified"), "{}", reasons(&v));
}

#[test]
fn provenance_naming_another_repository_fails_its_condition() {
    let r = rule(vec![keyless()], vec![provenance()]);
    let v = verdict(
        &r,
        "attested-evil-repo",
        &[
            bundle("attested-evil-repo-sign"),
            bundle("attested-evil-repo-provenance"),
        ],
    );
    assert!(!v.verified);
    assert!(
        reasons(&v).contains(r#"provenance: condition 1 false: predicate.buildDefinition.externalParameters.workflow.repository == "https://github.com/acme/app" (predicate.buildDefinition.externalParameters.workflow.repository = "https://github.com/evil/app")"#),
        "{}",
        reasons(&v)
    );
    assert_eq!(
        v.attestations[0].requirements[0].conditions[0].result,
        "false"
    );
}

#[test]
fn provenance_signed_by_a_non_allowed_identity_does_not_count() {
    let r = rule(vec![keyless()], vec![provenance()]);
    let v = verdict(
        &r,
        "attested-evil-signer",
        &[
            bundle("attested-evil-signer-sign"),
            bundle("attested-evil-signer-provenance"),
        ],
    );
    assert!(!v.verified);
    assert!(
        reasons(&v).contains("which this attestor does not allow"),
        "{}",
        reasons(&v)
    );
    assert_eq!(v.attestations[0].verified_by, None);
}

#[test]
fn key_signed_attestations_need_a_key_attestor() {
    let cands = [
        bundle("attested-key-sign"),
        bundle("attested-key-provenance"),
    ];
    let v = verdict(
        &rule(vec![keyless(), key()], vec![provenance()]),
        "attested-key",
        &cands,
    );
    assert!(v.verified, "{v:?}");
    let v = verdict(
        &rule(vec![keyless()], vec![provenance()]),
        "attested-key",
        &cands,
    );
    assert!(!v.verified);
    assert!(
        reasons(&v).contains(
            "no verified https://slsa.dev/provenance/v0.2 or https://slsa.dev/provenance/v1 \
             attestation (referrer attested-key-provenance: signed with a key, not a Fulcio certificate)"
        ),
        "{}",
        reasons(&v)
    );
}

#[test]
fn attestation_about_another_digest_is_rejected() {
    let r = rule(vec![keyless()], vec![provenance()]);
    let v = verdict(
        &r,
        "attested-wrong-subject",
        &[
            bundle("attested-wrong-subject-sign"),
            bundle("attested-wrong-subject-provenance"),
        ],
    );
    assert!(!v.verified);
    assert!(reasons(&v).contains("artifact"), "{}", reasons(&v));
}

#[test]
fn predicate_of_the_wrong_type_does_not_satisfy() {
    let r = rule(
        vec![keyless()],
        vec![requirement("sbom", "cyclonedx", &[], false)],
    );
    let v = verdict(
        &r,
        "attested",
        &[bundle("attested-sign"), bundle("attested-spdx")],
    );
    assert!(!v.verified);
    assert!(
        reasons(&v).contains("sbom: no https://cyclonedx.org/bom attestation found"),
        "{}",
        reasons(&v)
    );
    // v0.2-only requirement: the v1 provenance is of another type.
    let r = rule(
        vec![keyless()],
        vec![requirement("p", "slsaprovenance02", &[], false)],
    );
    assert!(
        !verdict(
            &r,
            "attested",
            &[bundle("attested-sign"), bundle("attested-provenance")]
        )
        .verified
    );
}

#[test]
fn an_erroring_condition_fails_with_the_error() {
    let r = rule(
        vec![keyless()],
        vec![requirement(
            "provenance",
            "slsaprovenance1",
            &["predicate.runDetails.nothing == 1"],
            false,
        )],
    );
    let v = verdict(
        &r,
        "attested",
        &[bundle("attested-sign"), bundle("attested-provenance")],
    );
    assert!(!v.verified);
    assert!(
        reasons(&v).contains("provenance: condition 1 failed"),
        "{}",
        reasons(&v)
    );
    assert_eq!(
        v.attestations[0].requirements[0].conditions[0].result,
        "error"
    );
}

/// The BuildKit index's unsigned statements, read from the fixture registry's blobs.
fn buildkit_candidates() -> (Vec<Candidate>, Vec<Digest>) {
    let plan: serde_json::Value = serde_json::from_str(&read("registry/plan.json")).unwrap();
    let blob = |hex: &str| std::fs::read(format!("{DIR}/registry/blobs/{hex}")).unwrap();
    let index_push = plan
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["image"] == "buildkit" && p["kind"] == "index")
        .unwrap();
    let index = blob(index_push["manifest"].as_str().unwrap());
    let children: Vec<Digest> = crate::oci::Document::parse(&index, crate::oci::Reading::Index)
        .map(|doc| doc.platform_children().map(|d| d.digest.clone()).collect())
        .unwrap_or_default();
    let parsed: serde_json::Value = serde_json::from_slice(&index).unwrap();
    let mut out = Vec::new();
    for m in parsed["manifests"].as_array().unwrap() {
        if m["annotations"]["vnd.docker.reference.type"] != "attestation-manifest" {
            continue;
        }
        let about: Digest = m["annotations"]["vnd.docker.reference.digest"]
            .as_str()
            .unwrap()
            .parse()
            .unwrap();
        let manifest: serde_json::Value =
            serde_json::from_slice(&blob(&m["digest"].as_str().unwrap()[7..])).unwrap();
        for layer in manifest["layers"].as_array().unwrap() {
            out.push(Candidate {
                source: "buildkit".into(),
                kind: CandidateKind::Unsigned {
                    statement: Bytes::from(blob(&layer["digest"].as_str().unwrap()[7..])),
                    about: about.clone(),
                },
            });
        }
    }
    (out, children)
}

#[test]
fn buildkit_attestations_count_only_when_allowed_and_are_reported_unsigned() {
    let (mut cands, children) = buildkit_candidates();
    assert_eq!(
        children.len(),
        1,
        "one platform manifest, attestation manifest excluded"
    );
    cands.push(bundle("buildkit-sign"));
    let index = digest_of("buildkit");
    let buildkit_provenance = |allow| {
        requirement(
            "provenance",
            "slsaprovenance",
            &[r#"predicate.buildType == "https://mobyproject.org/buildkit@v1""#],
            allow,
        )
    };
    let r = rule(vec![keyless()], vec![buildkit_provenance(true)]);
    let v = verdict_with_children(&r, &index, &cands, &children);
    assert!(v.verified, "{v:?}");
    assert!(v
        .attestations
        .iter()
        .any(|a| a.verified_by.as_deref() == Some("unsigned (BuildKit)")
            && a.about == children[0].to_string()));

    let r = rule(vec![keyless()], vec![buildkit_provenance(false)]);
    let v = verdict_with_children(&r, &index, &cands, &children);
    assert!(!v.verified);
    assert!(
        reasons(&v).contains("allow_unsigned is off"),
        "{}",
        reasons(&v)
    );

    // A condition that BuildKit's provenance does not meet.
    let r = rule(
        vec![keyless()],
        vec![requirement(
            "provenance",
            "slsaprovenance",
            &[REPO_IS_ACME],
            true,
        )],
    );
    assert!(!verdict_with_children(&r, &index, &cands, &children).verified);
}
