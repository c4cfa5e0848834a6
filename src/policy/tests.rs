use super::*;
use crate::oci::ImageName;

fn image(s: &str) -> ImageName {
    let (registry, repo) = s.split_once('/').unwrap();
    ImageName {
        registry: registry.to_owned(),
        repo: repo.parse().unwrap(),
    }
}

fn keyless() -> Attestor {
    Attestor::keyless(
        Matcher::regexp("https://github.com/company/.+").unwrap(),
        Matcher::Exact("https://token.actions.githubusercontent.com".into()),
    )
}

fn rule(name: &str, patterns: &[&str], mode: Mode) -> Rule {
    RuleSpec {
        name: name.into(),
        patterns: patterns.iter().map(|p| Pattern::new(p).unwrap()).collect(),
        mode,
        count: None,
        attestors: vec![keyless()],
        signature_repository: None,
        attestations: Vec::new(),
    }
    .build()
    .unwrap()
}

fn selected(set: &PolicySet, img: &str) -> Option<String> {
    match set.select(&image(img)) {
        Selection::Rule { rule, .. } => Some(rule.name.clone()),
        Selection::Unmatched(_) => None,
    }
}

#[test]
fn most_specific_pattern_wins_and_ties_go_to_the_first() {
    let set = build(
        vec![
            rule("broad", &["ghcr.io/**"], Mode::Audit),
            rule("company", &["ghcr.io/company/**"], Mode::Enforce),
            rule("app", &["ghcr.io/company/app"], Mode::Enforce),
            rule("tie", &["ghcr.io/company/**"], Mode::Enforce),
        ],
        Unmatched::Deny,
    )
    .unwrap();
    assert_eq!(
        selected(&set, "ghcr.io/company/app").as_deref(),
        Some("app")
    );
    assert_eq!(
        selected(&set, "ghcr.io/company/api").as_deref(),
        Some("company")
    );
    assert_eq!(
        selected(&set, "ghcr.io/company/team/api").as_deref(),
        Some("company")
    );
    assert_eq!(selected(&set, "ghcr.io/other/x").as_deref(), Some("broad"));
    assert_eq!(selected(&set, "docker.io/library/nginx"), None);
    assert!(matches!(
        set.select(&image("quay.io/x/y")),
        Selection::Unmatched(Unmatched::Deny)
    ));
    assert_eq!(set.matches(&image("ghcr.io/company/app")).len(), 4);
}

#[test]
fn fingerprint_changes_with_what_decides_the_verdict() {
    let a = rule("r", &["x/**"], Mode::Enforce);
    let b = rule("r", &["x/**", "y/**"], Mode::Enforce);
    let c = rule("r", &["x/**"], Mode::Audit);
    // Patterns select a rule; they do not change what it accepts.
    assert_eq!(a.fingerprint, b.fingerprint);
    assert_ne!(a.fingerprint, c.fingerprint);
    let mut spec = RuleSpec {
        name: "r".into(),
        patterns: vec![Pattern::new("x/**").unwrap()],
        mode: Mode::Enforce,
        count: None,
        attestors: vec![Attestor::keyless(
            Matcher::regexp("https://github.com/company/api/.+").unwrap(),
            Matcher::Exact("https://token.actions.githubusercontent.com".into()),
        )],
        signature_repository: None,
        attestations: Vec::new(),
    };
    assert_ne!(spec_fp(&spec), a.fingerprint);
    spec.attestors = vec![keyless()];
    assert_eq!(spec_fp(&spec), a.fingerprint);
    // Attestation requirements are part of what a rule accepts.
    let req = |cond: &str| attestation::Requirement {
        name: "p".into(),
        predicate_types: vec!["https://slsa.dev/provenance/v1".into()],
        conditions: vec![attestation::Condition::compile(1, cond).unwrap()],
        allow_unsigned: false,
    };
    spec.attestations = vec![req("predicate.a == 1")];
    let with_a = spec_fp(&spec);
    assert_ne!(with_a, a.fingerprint);
    spec.attestations = vec![req("predicate.a == 2")];
    assert_ne!(spec_fp(&spec), with_a);
}

fn spec_fp(s: &RuleSpec) -> Fingerprint {
    RuleSpec {
        name: s.name.clone(),
        patterns: s.patterns.clone(),
        mode: s.mode,
        count: s.count,
        attestors: s.attestors.clone(),
        signature_repository: s.signature_repository.clone(),
        attestations: s.attestations.clone(),
    }
    .build()
    .unwrap()
    .fingerprint
}

#[test]
fn rule_validation() {
    let base = || RuleSpec {
        name: "r".into(),
        patterns: vec![Pattern::new("x/**").unwrap()],
        mode: Mode::Enforce,
        count: None,
        attestors: vec![keyless()],
        signature_repository: None,
        attestations: Vec::new(),
    };
    let mut s = base();
    s.attestors.clear();
    assert_eq!(
        s.build().unwrap_err(),
        PolicyError::NoAttestors { mode: "enforce" }
    );
    let mut s = base();
    s.count = Some(2);
    assert_eq!(
        s.build().unwrap_err(),
        PolicyError::CountTooLarge {
            count: 2,
            attestors: 1
        }
    );
    let mut s = base();
    s.count = Some(0);
    assert_eq!(s.build().unwrap_err(), PolicyError::CountZero);
    let mut s = base();
    s.patterns.clear();
    assert_eq!(s.build().unwrap_err(), PolicyError::NoPatterns);
    let mut s = base();
    s.mode = Mode::Off;
    s.attestors.clear();
    assert!(s.build().is_ok());
    assert_eq!(
        build(
            vec![
                rule("a", &["x/*"], Mode::Audit),
                rule("a", &["y/*"], Mode::Audit)
            ],
            Unmatched::Allow
        )
        .unwrap_err(),
        PolicyError::DuplicateName("a".into())
    );
}

fn ev(attestor: usize) -> AttestorCheck {
    Ok(Evidence {
        attestor,
        source: "s".into(),
        signer: "x".into(),
    })
}

#[test]
fn count_is_across_attestors() {
    let mut r = rule("r", &["x/**"], Mode::Enforce);
    r.attestors.push(keyless());
    r.count = 2;
    // Both attestors satisfied (each by some signature).
    let v = r.evaluate(
        2,
        vec![vec![ev(1), Err("x".into())], vec![Err("y".into()), ev(2)]],
        vec![],
    );
    assert!(v.verified, "{v:?}");
    // One attestor satisfied twice does not make two.
    let v = r.evaluate(
        2,
        vec![vec![ev(1), ev(1)], vec![Err("wrong identity".into())]],
        vec![],
    );
    assert!(!v.verified);
    assert!(v.reasons[0].contains("1 of 2"), "{v:?}");
    assert!(v.reasons[1].contains("wrong identity"), "{v:?}");
    let v = r.evaluate(0, vec![vec![], vec![]], vec![]);
    assert_eq!(v.reasons, vec!["no signatures found".to_owned()]);
}

#[test]
fn decisions_follow_the_mode() {
    let r = rule("r", &["x/**"], Mode::Enforce);
    let no = r.evaluate(0, vec![vec![]], vec![]);
    let yes = r.evaluate(1, vec![vec![ev(1)]], vec![]);
    assert_eq!(decide(Mode::Enforce, &yes), Decision::Allow);
    assert!(
        matches!(decide(Mode::Enforce, &no), Decision::Deny { reason } if reason == "no signatures found")
    );
    assert!(matches!(decide(Mode::Audit, &no), Decision::Audit { .. }));
    assert_eq!(decide(Mode::Off, &no), Decision::Allow);
}

/// What each kind of signing lets a requirement use: a verified signature about the digest, or
/// (with `allow_unsigned`) a BuildKit statement about a platform child that names it; never a
/// rejected signature nor a statement with a problem.
#[test]
fn attestation_signing_decides_what_a_requirement_may_use() {
    let rule = RuleSpec {
        name: "r".into(),
        patterns: vec![Pattern::new("x/**").unwrap()],
        mode: Mode::Enforce,
        count: None,
        attestors: vec![keyless()],
        signature_repository: None,
        attestations: vec![attestation::Requirement {
            name: "prov".into(),
            predicate_types: vec!["https://slsa.dev/provenance/v1".into()],
            conditions: vec![attestation::Condition::compile(1, "predicate.ok == true").unwrap()],
            allow_unsigned: true,
        }],
    }
    .build()
    .unwrap();
    let index: crate::oci::Digest = format!("sha256:{}", "1".repeat(64)).parse().unwrap();
    let child: crate::oci::Digest = format!("sha256:{}", "2".repeat(64)).parse().unwrap();
    let found = |signing: Signing, about: &crate::oci::Digest| FoundAttestation {
        source: "att".into(),
        predicate_type: Some("https://slsa.dev/provenance/v1".into()),
        signing,
        about: about.clone(),
        predicate: serde_json::json!({ "ok": true }),
        subject: serde_json::Value::Null,
    };
    let signed = || Verdict {
        verified: true,
        reasons: Vec::new(),
        evidence: Vec::new(),
        identities: Vec::new(),
        signatures: 1,
        attestations: Vec::new(),
        signature_reports: Vec::new(),
    };
    let decide = |f: FoundAttestation, children: &[crate::oci::Digest]| {
        rule.evaluate_attestations(signed(), &index, &[f], children)
    };
    let verified = Signing::Verified {
        signer: "ci".into(),
    };
    assert!(decide(found(verified.clone(), &index), &[]).verified);
    let v = decide(found(verified, &child), &[]);
    assert!(!v.verified, "a signed statement about another digest");
    assert!(v.reasons[0].contains("not about"), "{:?}", v.reasons);

    let v = decide(
        found(
            Signing::Rejected {
                reason: "att: wrong identity".into(),
            },
            &index,
        ),
        &[],
    );
    assert!(!v.verified);
    assert!(
        v.reasons[0].contains("att: wrong identity"),
        "{:?}",
        v.reasons
    );

    let unsigned = Signing::Unsigned { problem: None };
    assert!(
        decide(
            found(unsigned.clone(), &child),
            std::slice::from_ref(&child)
        )
        .verified
    );
    let v = decide(found(unsigned, &child), &[]);
    assert!(!v.verified, "a BuildKit statement about no platform child");
    let v = decide(
        found(
            Signing::Unsigned {
                problem: Some("statement subject does not name the child".into()),
            },
            &child,
        ),
        std::slice::from_ref(&child),
    );
    assert!(
        !v.verified,
        "a BuildKit statement with a problem counts for nothing"
    );
    assert!(
        v.reasons[0].contains("does not name the child"),
        "{:?}",
        v.reasons
    );
}
