//! The import end to end in process: inputs written from the documented shapes of Kyverno and
//! policy-controller policies (tests/fixtures/import/) and the team's policy from issue 15,
//! each loaded back as a portcullis configuration and asked which rule decides an image.

use super::*;
use crate::config::Config;
use crate::oci::ImageName;
use crate::policy::{Attestor as PAttestor, Matcher, Mode as PMode, Selection};

fn fixture(name: &str) -> (String, String) {
    let path = format!(
        "{}/tests/fixtures/import/{name}",
        env!("CARGO_MANIFEST_DIR")
    );
    (name.to_owned(), std::fs::read_to_string(&path).unwrap())
}

fn load(imported: &Imported) -> Config {
    Config::from_yaml(&imported.yaml, Source::File("imported.yaml".into())).unwrap()
}

fn select(config: &Config, name: &str) -> Option<(String, PMode)> {
    let (registry, repo) = name.split_once('/').unwrap();
    let image = ImageName {
        registry: registry.to_owned(),
        repo: repo.parse().unwrap(),
    };
    match config.policies.select(&image) {
        Selection::Rule { rule, .. } => Some((rule.name.clone(), rule.mode)),
        Selection::Unmatched(_) => None,
    }
}

fn text(kyverno: &str) -> Vec<(String, String)> {
    vec![("in.yaml".to_owned(), kyverno.to_owned())]
}

#[test]
fn the_teams_policy_is_carried_over_whole() {
    let imported = import(Tool::Kyverno, &[fixture("team.yaml")], None).unwrap();
    assert!(
        imported.not_carried.is_empty(),
        "{:?}",
        imported.not_carried
    );
    let config = load(&imported);
    let rule = "verify-company-images/github-keyless".to_owned();
    assert_eq!(
        select(&config, "our-registry.io/company/api"),
        Some((rule.clone(), PMode::Enforce))
    );
    assert_eq!(
        select(&config, "our-registry.io/company/team/api"),
        Some((rule.clone(), PMode::Enforce))
    );
    assert_eq!(select(&config, "our-registry.io/other/api"), None);
    assert!(config.upstreams.contains_key("our-registry.io"));
    let r = &config.policies.rules[0];
    match &r.attestors[..] {
        [PAttestor::Keyless { subject, issuer }] => {
            assert!(subject.is_match(
                "https://github.com/company/api/.github/workflows/release.yml@refs/heads/main"
            ));
            assert!(!subject.is_match("https://github.com/evil/api"));
            assert!(!subject.is_match("https://evil.example/?https://github.com/company/x"));
            assert!(
                matches!(issuer, Matcher::Exact(i) if i == "https://token.actions.githubusercontent.com")
            );
        }
        other => panic!("{other:?}"),
    }
    assert!(
        imported.yaml.contains("must match the whole value"),
        "the anchoring is noted"
    );
}

#[test]
fn a_regexp_written_as_subject_is_kept_exact_and_noted() {
    let input = fixture("team.yaml").1.replace("subjectRegExp:", "subject:");
    let imported = import(Tool::Kyverno, &text(&input), None).unwrap();
    assert!(imported.not_carried.is_empty());
    assert!(
        imported
            .yaml
            .contains("subject: \"https://github.com/company/.+\""),
        "{}",
        imported.yaml
    );
    assert!(imported.yaml.contains("looks like a regular expression"));
    load(&imported);
}

#[test]
fn kyverno_documented_policies() {
    let imported = import(Tool::Kyverno, &[fixture("kyverno-docs.yaml")], None).unwrap();
    assert!(
        imported.not_carried.is_empty(),
        "{:?}",
        imported.not_carried
    );
    let config = load(&imported);
    assert_eq!(
        select(&config, "ghcr.io/kyverno/test-verify-image"),
        Some(("check-image/check-image".into(), PMode::Enforce))
    );
    assert_eq!(
        select(&config, "quay.io/nirmata/a/b"),
        Some((
            "check-image-keyless/check-image-keyless".into(),
            PMode::Audit
        ))
    );
    let keyless = &config.policies.rules[1];
    match &keyless.attestors[..] {
        [PAttestor::Keyless { subject, .. }] => {
            assert!(subject.is_match("jim@nirmata.com"));
            assert!(!subject.is_match("jim@nirmata.com.evil"));
        }
        other => panic!("{other:?}"),
    }
    let review = &config.policies.rules[2];
    assert_eq!(review.attestations.len(), 1);
    let (_, verdict) = review.attestations[0].evaluate(
        "https://example.com/CodeReview/v1",
        &serde_json::json!({"repo": {"uri": "https://git-repo.com/org/app", "branch": "main"}}),
        &serde_json::json!([]),
    );
    assert!(verdict.is_ok(), "{verdict:?}");
    let (_, verdict) = review.attestations[0].evaluate(
        "https://example.com/CodeReview/v1",
        &serde_json::json!({"repo": {"uri": "https://git-repo.com/org/app", "branch": "dev"}}),
        &serde_json::json!([]),
    );
    assert!(verdict.is_err());
}

#[test]
fn policy_controller_documented_policies() {
    let imported = import(
        Tool::PolicyController,
        &[fixture("policy-controller-docs.yaml")],
        None,
    )
    .unwrap();
    // The attested policy checks attestations only; portcullis also wants a signature.
    assert_eq!(imported.not_carried.len(), 1, "{:?}", imported.not_carried);
    assert!(imported.not_carried[0].contains("attestations only"));
    let config = load(&imported);
    assert_eq!(
        select(&config, "gcr.io/projectsigstore/cosign/x"),
        Some(("image-policy-keyless".into(), PMode::Enforce))
    );
    assert_eq!(
        config.policies.rules[0].attestors.len(),
        2,
        "one attestor per identity"
    );
    assert_eq!(
        config.policies.rules[0].count, 1,
        "authorities and identities are alternatives"
    );
    assert_eq!(
        select(&config, "registry.local/team/app"),
        Some(("image-policy-key".into(), PMode::Audit))
    );
    assert_eq!(
        select(&config, "registry.local/team/app/sub"),
        None,
        "policy-controller's * is one segment"
    );
    let attested = &config.policies.rules[2];
    let req = &attested.attestations[0];
    let ok = req.evaluate(
        "https://cosign.sigstore.dev/attestation/v1",
        &serde_json::json!({"Data": "foobar e2e test"}),
        &serde_json::json!([]),
    );
    assert!(ok.1.is_ok(), "{:?}", ok.1);
    let bad = req.evaluate(
        "https://cosign.sigstore.dev/attestation/v1",
        &serde_json::json!({"Data": "other"}),
        &serde_json::json!([]),
    );
    assert!(bad.1.is_err());
}

#[test]
fn unknown_fields_are_errors_naming_the_field() {
    let input = fixture("team.yaml")
        .1
        .replace("imageReferences:", "imageReferencez:");
    let e = import(Tool::Kyverno, &text(&input), None)
        .unwrap_err()
        .to_string();
    assert!(e.contains("spec.rules[0].verifyImages[0]"), "{e}");
    assert!(e.contains("imageReferencez"), "{e}");
    assert!(e.starts_with("in.yaml: document 1"), "{e}");

    let input = fixture("policy-controller-docs.yaml")
        .1
        .replace("identities:", "identity:");
    let e = import(Tool::PolicyController, &text(&input), None)
        .unwrap_err()
        .to_string();
    assert!(e.contains("spec.authorities[0].keyless"), "{e}");
    assert!(e.contains("identity"), "{e}");

    let e = import(Tool::PolicyController, &[fixture("team.yaml")], None)
        .unwrap_err()
        .to_string();
    assert!(e.contains("apiVersion"), "{e}");
}

#[test]
fn what_cannot_be_carried_over_is_a_comment_and_a_partial_result() {
    let input = r#"
apiVersion: kyverno.io/v1
kind: ClusterPolicy
metadata: {name: mixed}
spec:
  validationFailureAction: Enforce
  rules:
    - name: r
      match: {any: [{resources: {kinds: [Pod]}}]}
      verifyImages:
        - imageReferences: ["ghcr.io/company/app:v1*"]
          required: false
          attestors:
            - entries:
                - keys: {kms: "awskms:///arn:aws:kms:us-east-1:1:key/x"}
                - keyless: {subject: "a@b.c", issuer: "https://issuer.example"}
          attestations:
            - type: https://example.com/CodeReview/v1
              attestors:
                - entries:
                    - keyless: {subject: "a@b.c", issuer: "https://issuer.example"}
              conditions:
                - all:
                    - key: "{{ reviewers }}"
                      operator: AnyIn
                      value: ["ana@example.com"]
"#;
    let imported = import(Tool::Kyverno, &text(input), None).unwrap();
    let all = imported.not_carried.join("\n");
    for what in ["v1*", "required: false", "kms", "AnyIn"] {
        assert!(all.contains(what), "{what} in {all}");
    }
    assert!(imported.yaml.contains("# NOT CARRIED OVER: "));
    let config = load(&imported);
    assert_eq!(
        config.policies.rules[0].attestors.len(),
        1,
        "the keyless entry is kept"
    );
    assert_eq!(
        config.policies.rules[0].count, 1,
        "count clamped to what remains"
    );
}

#[test]
fn an_attestation_only_rule_takes_its_signers_and_says_so() {
    // Kyverno verifies either signatures or attestations in one verifyImages entry.
    let key = std::fs::read_to_string(format!(
        "{}/tests/fixtures/keys/p256.pub",
        env!("CARGO_MANIFEST_DIR")
    ))
    .unwrap();
    let key: String = key
        .lines()
        .map(|l| format!("                          {l}\n"))
        .collect();
    let input = format!(
        r#"
apiVersion: kyverno.io/v1
kind: ClusterPolicy
metadata: {{name: attest-only}}
spec:
  validationFailureAction: Enforce
  rules:
    - name: attest
      match: {{any: [{{resources: {{kinds: [Pod]}}}}]}}
      verifyImages:
        - imageReferences: ["registry.io/org/app*"]
          attestations:
            - predicateType: https://example.com/CodeReview/v1
              attestors:
                - entries:
                    - keys:
                        publicKeys: |-
{key}              conditions:
                - any:
                    - key: "{{{{ repo.branch }}}}"
                      operator: Equals
                      value: main
                    - key: "{{{{ repo.branch }}}}"
                      operator: Equals
                      value: release
"#
    );
    let imported = import(Tool::Kyverno, &text(&input), None).unwrap();
    assert_eq!(imported.not_carried.len(), 1, "{:?}", imported.not_carried);
    assert!(imported.not_carried[0].contains("also requires the image signed"));
    let config = load(&imported);
    let rule = &config.policies.rules[0];
    assert!(matches!(&rule.attestors[..], [PAttestor::Key { .. }]));
    let req = &rule.attestations[0];
    for (branch, ok) in [("main", true), ("release", true), ("dev", false)] {
        let (_, verdict) = req.evaluate(
            "https://example.com/CodeReview/v1",
            &serde_json::json!({"repo": {"branch": branch}}),
            &serde_json::json!([]),
        );
        assert_eq!(verdict.is_ok(), ok, "{branch}: {verdict:?}");
    }
}

#[test]
fn static_authorities_and_overlapping_policies() {
    let input = r#"
apiVersion: policy.sigstore.dev/v1beta1
kind: ClusterImagePolicy
metadata: {name: trusted}
spec:
  images: [{glob: "ghcr.io/company/base"}, {glob: "ghcr.io/company/**"}]
  authorities: [{static: {action: pass}}]
---
apiVersion: policy.sigstore.dev/v1beta1
kind: ClusterImagePolicy
metadata: {name: never}
spec:
  images: [{glob: "ghcr.io/blocked/*"}]
  authorities: [{static: {action: fail, message: "no"}}]
---
apiVersion: policy.sigstore.dev/v1beta1
kind: ClusterImagePolicy
metadata: {name: app}
spec:
  images: [{glob: "ghcr.io/company/app"}]
  authorities:
    - keyless:
        identities: [{issuer: "https://issuer.example", subjectRegExp: ".*@company.example"}]
"#;
    let imported = import(Tool::PolicyController, &text(input), None).unwrap();
    let all = imported.not_carried.join("\n");
    assert!(all.contains("static fail"), "{all}");
    assert!(all.contains("required both"), "overlap reported: {all}");
    assert!(
        all.contains("ended in a literal") || all.contains("literal name"),
        "{all}"
    );
    let config = load(&imported);
    assert_eq!(
        select(&config, "ghcr.io/company/lib"),
        Some(("trusted".into(), PMode::Off))
    );
    assert_eq!(
        select(&config, "ghcr.io/company/app"),
        Some(("app".into(), PMode::Enforce))
    );
    assert_eq!(
        select(&config, "ghcr.io/blocked/x"),
        None,
        "the static fail rule is commented out"
    );
    assert!(
        imported.yaml.contains("  # - name: \"never\""),
        "{}",
        imported.yaml
    );
}

#[test]
fn empty_and_non_yaml_inputs_are_errors() {
    assert!(matches!(
        import(Tool::Kyverno, &text("# nothing\n"), None),
        Err(ImportError::Empty { .. })
    ));
    assert!(matches!(
        import(Tool::Kyverno, &text("a: [1,"), None),
        Err(ImportError::Yaml { .. })
    ));
}
