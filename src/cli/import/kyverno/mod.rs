//! Kyverno `ClusterPolicy` / `Policy` objects: the `verifyImages` part of their rules read into
//! serde structs that refuse unknown fields, and translated into portcullis [`Rule`]s.
//!
//! What decides admission of a Kubernetes object rather than a pull (`match`, `exclude`,
//! `background`, webhook settings, a `Policy`'s namespace) is read and deliberately set aside:
//! portcullis decides every pull of a matching image, from any client. What changes the meaning
//! of a signature check and has no portcullis equivalent is reported as not carried over.

mod attestors;
pub mod schema;

use serde_json::Value;

use self::attestors::{attestor_set, combine, keyless, split_keys};
use self::schema::{Action, Keyless, Policy, VerifyImage};
use super::condition;
use super::glob::{self, Dialect};
use super::output::{Attestation, Attestor, Mode, Rule};
use super::DocError;

/// The rules of one Kyverno object.
pub fn translate(value: &Value, origin: &str) -> Result<Vec<Rule>, DocError> {
    super::check_kind(value, "kyverno.io", &["ClusterPolicy", "Policy"])?;
    let policy: Policy = super::yaml::typed(value).map_err(DocError::Shape)?;
    let spec = &policy.spec;
    let mut shared_notes = Vec::new();
    let mut shared_missing = Vec::new();
    if policy.kind == "Policy" {
        shared_notes.push(format!(
            "a Policy applied only in namespace {}; portcullis applies the rule to every pull",
            policy.metadata.namespace.as_deref().unwrap_or("(unset)")
        ));
    }
    if !spec.validation_failure_action_overrides.is_empty() {
        shared_missing.push(
            "validationFailureActionOverrides (per-namespace actions): portcullis has one mode per rule".to_owned(),
        );
    }
    match spec.failure_policy.as_deref() {
        None | Some("Fail") => {}
        Some("Ignore") => shared_missing.push("failurePolicy: Ignore (admit when verification cannot run): portcullis fails closed in enforce mode (503, retryable)".to_owned()),
        Some(other) => return Err(DocError::Value { field: "spec.failurePolicy".into(), reason: format!("{other:?}: expected Fail or Ignore") }),
    }
    let verify_rules = spec
        .rules
        .iter()
        .filter(|r| !r.verify_images.is_empty())
        .count();
    match spec.apply_rules.as_deref() {
        None | Some("All") => {}
        Some("One") if verify_rules <= 1 => {}
        Some("One") => shared_missing.push("applyRules: One (only the first matching rule): portcullis applies the most specific rule".to_owned()),
        Some(other) => return Err(DocError::Value { field: "spec.applyRules".into(), reason: format!("{other:?}: expected All or One") }),
    }
    shared_notes.push(
        "match/exclude select Kubernetes objects for admission; portcullis decides every pull of a matching image".to_owned(),
    );

    let mut rules = Vec::new();
    for (ri, krule) in spec.rules.iter().enumerate() {
        if krule.verify_images.is_empty() {
            let mut r = Rule::new(
                format!("{}/{}", policy.metadata.name, krule.name),
                format!(
                    "{origin}: {} {}, rule {:?}",
                    policy.kind, policy.metadata.name, krule.name
                ),
            );
            r.not_carried.push(
                "this rule has no verifyImages (validate, mutate or generate rules are not image signature checks)".to_owned(),
            );
            rules.push(r);
            continue;
        }
        for (vi, verify) in krule.verify_images.iter().enumerate() {
            let name = if krule.verify_images.len() == 1 {
                format!("{}/{}", policy.metadata.name, krule.name)
            } else {
                format!("{}/{}/{}", policy.metadata.name, krule.name, vi + 1)
            };
            let origin = format!(
                "{origin}: {} {}, rule {:?} (spec.rules[{ri}].verifyImages[{vi}])",
                policy.kind, policy.metadata.name, krule.name
            );
            let field = format!("spec.rules[{ri}].verifyImages[{vi}]");
            let mut rule = Rule::new(name, origin);
            rule.notes.extend(shared_notes.iter().cloned());
            rule.not_carried.extend(shared_missing.iter().cloned());
            for (what, v) in [
                ("preconditions", &krule.preconditions),
                ("celPreconditions", &krule.cel_preconditions),
                ("context", &krule.context),
            ] {
                if v.is_some() {
                    rule.not_carried.push(format!(
                        "the rule's {what} (conditions on the admitted object): portcullis sees only the image"
                    ));
                }
            }
            rule.mode = match verify.failure_action.or(spec.validation_failure_action) {
                Some(Action::Enforce) => Mode::Enforce,
                Some(Action::Audit) => Mode::Audit,
                None => {
                    rule.notes
                        .push("no failure action is set: Kyverno's default, Audit".to_owned());
                    Mode::Audit
                }
            };
            verify_image(verify, &field, &mut rule)?;
            rules.push(rule);
        }
    }
    Ok(rules)
}

fn verify_image(v: &VerifyImage, field: &str, rule: &mut Rule) -> Result<(), DocError> {
    match v.kind.as_deref() {
        None | Some("Cosign") | Some("SigstoreBundle") => {}
        Some("Notary") => {
            return Err(DocError::Value {
                field: format!("{field}.type"),
                reason: "Notary signatures are not verified by portcullis (Sigstore / cosign only)"
                    .into(),
            })
        }
        Some(other) => {
            return Err(DocError::Value {
                field: format!("{field}.type"),
                reason: format!("{other:?}: expected Cosign, SigstoreBundle or Notary"),
            })
        }
    }
    let mut references: Vec<&String> = v.image_references.iter().collect();
    references.extend(v.image.iter());
    if references.is_empty() {
        return Err(DocError::Value {
            field: format!("{field}.imageReferences"),
            reason: "no image reference is given".into(),
        });
    }
    for (i, r) in references.iter().enumerate() {
        let t = glob::translate(Dialect::Kyverno, r).map_err(|error| DocError::Glob {
            field: format!("{field}.imageReferences[{i}]"),
            error: Box::new(error),
        })?;
        rule.notes.extend(t.notes);
        rule.not_carried.extend(t.inexact);
        for p in t.patterns {
            if !rule.patterns.contains(&p) {
                rule.patterns.push(p);
            }
        }
    }
    if !v.skip_image_references.is_empty() {
        rule.not_carried.push(format!(
            "skipImageReferences {:?}: portcullis cannot exempt images from one rule; add a more specific rule for them",
            v.skip_image_references
        ));
    }
    if v.required == Some(false) {
        rule.not_carried.push(
            "required: false (unverified images admitted): portcullis verifies every image the rule matches".into(),
        );
    }
    match (v.mutate_digest, v.verify_digest) {
        (Some(false), None | Some(true)) => rule.not_carried.push(
            "verifyDigest without mutateDigest (refuse references by tag): portcullis serves tags, resolving each to the digest it verifies".into(),
        ),
        (None, None) => {}
        _ => rule.notes.push(
            "mutateDigest/verifyDigest need no counterpart: portcullis resolves a tag once and serves the digest it verified".into(),
        ),
    }
    if v.cosign_oci11.is_some() {
        rule.notes
            .push("cosignOCI11: portcullis reads OCI 1.1 referrers and cosign tags both".into());
    }
    if v.image_registry_credentials.is_some() {
        rule.not_carried.push(
            "imageRegistryCredentials: give the credentials to the upstream in `upstreams` instead"
                .into(),
        );
    }
    if v.annotations.is_some() {
        rule.not_carried
            .push("annotations (signed payload annotations): not checked by portcullis".into());
    }
    if v.validate.is_some() {
        rule.not_carried
            .push("validate (deny conditions across attestations): not translated".into());
    }
    if v.roots.is_some() || v.additional_extensions.is_some() {
        rule.not_carried.push(
            "roots / additionalExtensions: set trusted_root for a private Fulcio; certificate extensions are not checked".into(),
        );
    }
    if let Some(repo) = &v.repository {
        rule.signature_repository = Some(glob::canonical_repository(repo));
    }

    // The deprecated single-attestor form, then the attestor sets.
    let mut sets: Vec<(Vec<Attestor>, usize)> = Vec::new();
    if let Some(key) = &v.key {
        let keys = split_keys(key, &format!("{field}.key"), rule)?;
        let n = keys.len().min(1);
        sets.push((keys, n));
    }
    if v.subject.is_some() || v.issuer.is_some() {
        let k = Keyless {
            rekor: None,
            ctlog: None,
            issuer: v.issuer.clone(),
            issuer_regexp: None,
            subject: v.subject.clone(),
            subject_regexp: None,
            roots: None,
            additional_extensions: None,
        };
        sets.push((keyless(&k, field, rule)?, 1));
    }
    for (si, set) in v.attestors.iter().enumerate() {
        sets.push(attestor_set(
            set,
            &format!("{field}.attestors[{si}]"),
            rule,
        )?);
    }
    let (attestors, count) = combine(sets, rule);
    rule.attestors = attestors;
    rule.count = count;

    for (ai, a) in v.attestations.iter().enumerate() {
        let afield = format!("{field}.attestations[{ai}]");
        let predicate_type = match (&a.kind, &a.predicate_type) {
            (Some(t), None) | (None, Some(t)) => t.clone(),
            (Some(t), Some(p)) if t == p => t.clone(),
            (Some(_), Some(_)) => {
                return Err(DocError::Value {
                    field: afield,
                    reason: "type and predicateType differ".into(),
                })
            }
            (None, None) => {
                return Err(DocError::Value {
                    field: format!("{afield}.type"),
                    reason: "an attestation needs a type".into(),
                })
            }
        };
        let mut sets = Vec::new();
        for (si, set) in a.attestors.iter().enumerate() {
            sets.push(attestor_set(
                set,
                &format!("{afield}.attestors[{si}]"),
                rule,
            )?);
        }
        let (signers, _) = combine(sets, rule);
        let label = a.name.clone().unwrap_or_else(|| predicate_type.clone());
        if signers.is_empty() {
            rule.not_carried.push(format!(
                "attestation {label:?} names no attestors: portcullis requires it signed by one of the rule's attestors"
            ));
        } else if rule.attestors.is_empty() {
            rule.not_carried.push(format!(
                "only attestation {label:?} was verified, not the image signature: portcullis also requires the image signed by its attestors"
            ));
            rule.attestors = signers;
        } else if signers != rule.attestors {
            rule.not_carried.push(format!(
                "attestation {label:?} has its own attestors: portcullis accepts it signed by any of the rule's attestors"
            ));
        }
        let mut conditions = Vec::new();
        for block in &a.conditions {
            for c in &block.all {
                match condition::kyverno(&c.key, &c.operator, &c.value) {
                    Ok(cel) => conditions.push(cel),
                    Err(why) => rule
                        .not_carried
                        .push(format!("attestation {label:?}: {why}")),
                }
            }
            let any: Vec<Result<String, String>> = block
                .any
                .iter()
                .map(|c| condition::kyverno(&c.key, &c.operator, &c.value))
                .collect();
            if any.iter().all(Result::is_ok) && !any.is_empty() {
                let terms: Vec<String> = any
                    .into_iter()
                    .flatten()
                    .map(|c| format!("({c})"))
                    .collect();
                conditions.push(terms.join(" || "));
            } else if let Some(Err(why)) = any.into_iter().find(Result::is_err) {
                rule.not_carried.push(format!(
                    "attestation {label:?}: an `any` block is not carried over as a whole, because {why}"
                ));
            }
        }
        rule.attestations.push(Attestation {
            name: label,
            predicate_type,
            conditions,
        });
    }
    if rule.attestors.is_empty() {
        rule.not_carried
            .push("no attestor that portcullis can check remains".into());
    }
    Ok(())
}
