//! Sigstore policy-controller `ClusterImagePolicy` objects read into serde structs that refuse
//! unknown fields, and translated into portcullis [`Rule`]s.
//!
//! A policy's authorities are alternatives (any one admits), as portcullis attestors with
//! `count: 1` are; each identity of a keyless authority is one attestor. `mode: warn` is
//! `audit`. A `static: pass` authority admits without a check (`mode: off`); `static: fail`
//! never admits and is dropped from the alternatives (alone, the rule is written commented out).
//! Resource selection (`match`) decides admission of Kubernetes objects and is set aside on
//! purpose: portcullis decides every pull.

use serde::de::IgnoredAny;
use serde::Deserialize;
use serde_json::Value;

use super::condition;
use super::glob::{self, Dialect};
use super::identity::{identity, Plain};
use super::kyverno::schema::Metadata;
use super::output::{Attestation, Attestor, Mode, Rule};
use super::DocError;

const PUBLIC_FULCIO: &str = "https://fulcio.sigstore.dev";
const PUBLIC_REKOR: &str = "https://rekor.sigstore.dev";

/// cosign's predicate type short names (`cosign attest --type`), each the one URI it means.
const COSIGN_TYPES: &[(&str, &str)] = &[
    ("slsaprovenance", "https://slsa.dev/provenance/v0.2"),
    ("slsaprovenance02", "https://slsa.dev/provenance/v0.2"),
    ("slsaprovenance1", "https://slsa.dev/provenance/v1"),
    ("spdx", "https://spdx.dev/Document"),
    ("spdxjson", "https://spdx.dev/Document"),
    ("cyclonedx", "https://cyclonedx.org/bom"),
    ("vuln", "https://cosign.sigstore.dev/attestation/vuln/v1"),
    ("custom", "https://cosign.sigstore.dev/attestation/v1"),
    ("link", "https://in-toto.io/Link/v1"),
    ("openvex", "https://openvex.dev/ns"),
];

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ClusterImagePolicy {
    pub api_version: String,
    pub kind: String,
    pub metadata: Metadata,
    pub spec: Spec,
    /// Written by the controller; nothing to import.
    pub status: Option<IgnoredAny>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Spec {
    pub images: Vec<ImagePattern>,
    #[serde(default)]
    pub authorities: Vec<Authority>,
    pub policy: Option<Value>,
    pub mode: Option<String>,
    /// Which Kubernetes resources are checked at admission: ignored on purpose.
    #[serde(rename = "match")]
    pub match_resources: Option<IgnoredAny>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ImagePattern {
    pub glob: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Authority {
    pub name: Option<String>,
    pub key: Option<KeyRef>,
    pub keyless: Option<KeylessRef>,
    #[serde(rename = "static")]
    pub static_action: Option<StaticRef>,
    #[serde(default)]
    pub source: Vec<SourceRef>,
    pub ctlog: Option<TLog>,
    #[serde(default)]
    pub attestations: Vec<PcAttestation>,
    pub rfc3161timestamp: Option<Value>,
    pub signature_format: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct KeyRef {
    pub data: Option<String>,
    pub secret_ref: Option<Value>,
    pub kms: Option<String>,
    pub hash_algorithm: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct KeylessRef {
    pub url: Option<String>,
    #[serde(default)]
    pub identities: Vec<Identity>,
    #[serde(rename = "ca-cert")]
    pub ca_cert: Option<Value>,
    pub trust_root_ref: Option<String>,
    pub insecure_ignore_sct: Option<bool>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Identity {
    pub issuer: Option<String>,
    pub subject: Option<String>,
    #[serde(rename = "issuerRegExp")]
    pub issuer_regexp: Option<String>,
    #[serde(rename = "subjectRegExp")]
    pub subject_regexp: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StaticRef {
    pub action: String,
    pub message: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct SourceRef {
    pub oci: Option<String>,
    pub signature_pull_secrets: Option<Value>,
    pub tag_prefix: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct TLog {
    pub url: Option<String>,
    pub trust_root_ref: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct PcAttestation {
    pub name: String,
    pub predicate_type: String,
    pub policy: Option<PcPolicy>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct PcPolicy {
    #[serde(rename = "type")]
    pub kind: String,
    pub data: Option<String>,
    pub remote: Option<Value>,
    pub config_map_ref: Option<Value>,
    pub fetch_config_file: Option<bool>,
    pub include_spec: Option<bool>,
    pub include_object_meta: Option<bool>,
    pub include_type_meta: Option<bool>,
}

/// How one authority contributes.
enum Contribution {
    Attestors(Vec<Attestor>),
    Pass,
    Fail,
}

pub fn translate(value: &Value, origin: &str) -> Result<Vec<Rule>, DocError> {
    super::check_kind(value, "policy.sigstore.dev", &["ClusterImagePolicy"])?;
    let cip: ClusterImagePolicy = super::yaml::typed(value).map_err(DocError::Shape)?;
    let spec = &cip.spec;
    let mut rule = Rule::new(
        cip.metadata.name.clone(),
        format!("{origin}: ClusterImagePolicy {}", cip.metadata.name),
    );
    rule.mode = match spec.mode.as_deref() {
        None | Some("enforce") => Mode::Enforce,
        Some("warn") => Mode::Audit,
        Some(other) => {
            return Err(DocError::Value {
                field: "spec.mode".into(),
                reason: format!("{other:?}: expected enforce or warn"),
            })
        }
    };
    if spec.match_resources.is_some() {
        rule.notes.push(
            "spec.match selects Kubernetes resources for admission; portcullis decides every pull of a matching image".into(),
        );
    }
    if spec.images.is_empty() {
        return Err(DocError::Value {
            field: "spec.images".into(),
            reason: "no image glob is given".into(),
        });
    }
    for (i, image) in spec.images.iter().enumerate() {
        let t = glob::translate(Dialect::PolicyController, &image.glob).map_err(|error| {
            DocError::Glob {
                field: format!("spec.images[{i}].glob"),
                error: Box::new(error),
            }
        })?;
        rule.notes.extend(t.notes);
        rule.not_carried.extend(t.inexact);
        for p in t.patterns {
            if !rule.patterns.contains(&p) {
                rule.patterns.push(p);
            }
        }
    }
    if spec.policy.is_some() {
        rule.not_carried
            .push("spec.policy (a policy over the authorities' results): not translated".into());
    }
    if spec.authorities.is_empty() {
        return Err(DocError::Value {
            field: "spec.authorities".into(),
            reason: "no authority is given".into(),
        });
    }
    let mut pass = false;
    let mut failed = 0;
    let with_attestations = spec
        .authorities
        .iter()
        .filter(|a| !a.attestations.is_empty())
        .count();
    for (ai, a) in spec.authorities.iter().enumerate() {
        let field = format!("spec.authorities[{ai}]");
        match authority(
            a,
            &field,
            &mut rule,
            spec.authorities.len(),
            with_attestations,
        )? {
            Contribution::Attestors(list) => rule.attestors.extend(list),
            Contribution::Pass => pass = true,
            Contribution::Fail => failed += 1,
        }
    }
    if pass {
        rule.mode = Mode::Off;
        rule.attestors.clear();
        rule.attestations.clear();
        rule.notes
            .push("a static pass authority admits every matching image: mode off".into());
    } else if rule.attestors.is_empty() {
        rule.not_carried.push(if failed > 0 {
            "a static fail authority refuses every matching image: portcullis has no rule that refuses outright (unmatched: deny refuses what no rule matches)".to_owned()
        } else {
            "no authority that portcullis can check remains".to_owned()
        });
    } else if failed > 0 {
        rule.notes.push(
            "static fail authorities are dropped: an alternative that never admits changes nothing"
                .into(),
        );
    }
    Ok(vec![rule])
}

fn authority(
    a: &Authority,
    field: &str,
    rule: &mut Rule,
    authorities: usize,
    with_attestations: usize,
) -> Result<Contribution, DocError> {
    let kinds = [
        a.key.is_some(),
        a.keyless.is_some(),
        a.static_action.is_some(),
    ];
    if kinds.iter().filter(|k| **k).count() != 1 {
        return Err(DocError::Value {
            field: field.to_owned(),
            reason: "exactly one of key, keyless and static is required".into(),
        });
    }
    if let Some(s) = &a.static_action {
        return match s.action.as_str() {
            "pass" => Ok(Contribution::Pass),
            "fail" => Ok(Contribution::Fail),
            other => Err(DocError::Value {
                field: format!("{field}.static.action"),
                reason: format!("{other:?}: expected pass or fail"),
            }),
        };
    }
    match a.signature_format.as_deref() {
        None | Some("legacy") | Some("bundle") => {}
        Some(other) => {
            return Err(DocError::Value {
                field: format!("{field}.signatureFormat"),
                reason: format!("{other:?}: expected legacy or bundle"),
            })
        }
    }
    for (si, s) in a.source.iter().enumerate() {
        let sfield = format!("{field}.source[{si}]");
        if let Some(oci) = &s.oci {
            let repo = glob::canonical_repository(oci);
            match &rule.signature_repository {
                Some(r) if *r != repo => rule.not_carried.push(format!(
                    "{sfield}.oci {repo:?}: portcullis has one signature repository per rule"
                )),
                _ => rule.signature_repository = Some(repo),
            }
        }
        if s.signature_pull_secrets.is_some() {
            rule.not_carried.push(format!(
                "{sfield}.signaturePullSecrets: give the credentials to the upstream in `upstreams` instead"
            ));
        }
        if s.tag_prefix.is_some() {
            rule.not_carried.push(format!(
                "{sfield}.tagPrefix: signature tags with a prefix are not looked up"
            ));
        }
    }
    if a.rfc3161timestamp.is_some() {
        rule.not_carried.push(format!(
            "{field}.rfc3161timestamp: put the timestamp authority in a trusted_root"
        ));
    }
    // `ctlog: {}` (no URL, no trust root) turns transparency log checks off.
    let mut tlog_off = false;
    if let Some(t) = &a.ctlog {
        match (t.url.as_deref(), &t.trust_root_ref) {
            (None, None) => tlog_off = true,
            (Some(u), None) if u.trim_end_matches('/') == PUBLIC_REKOR => {}
            _ => rule.not_carried.push(format!(
                "{field}.ctlog: a private Rekor; set trusted_root to that instance's trusted root"
            )),
        }
    }
    let mut attestors = Vec::new();
    if let Some(k) = &a.key {
        if let Some(alg) = k.hash_algorithm.as_deref().filter(|h| *h != "sha256") {
            rule.not_carried.push(format!(
                "{field}.key.hashAlgorithm {alg:?}: portcullis checks SHA-256 signatures"
            ));
        }
        if let Some(kms) = &k.kms {
            rule.not_carried.push(format!(
                "{field}.key.kms {kms:?}: export the public key (`cosign public-key --key {kms}`) and add it as a key attestor"
            ));
        }
        if k.secret_ref.is_some() {
            rule.not_carried.push(format!(
                "{field}.key.secretRef: a Kubernetes Secret cannot be read here; add its public key as a key attestor"
            ));
        }
        if let Some(data) = &k.data {
            let pem = data.trim();
            if !pem.starts_with("-----BEGIN") || !pem.contains("-----END") {
                return Err(DocError::Value {
                    field: format!("{field}.key.data"),
                    reason: "not a PEM public key".into(),
                });
            }
            if tlog_off {
                rule.notes.push(format!(
                    "{field}.ctlog: {{}} turns the transparency log off: carried over as ignore_tlog: true"
                ));
            }
            attestors.push(Attestor::Key {
                pem: format!("{pem}\n"),
                ignore_tlog: tlog_off,
            });
        }
    }
    if let Some(k) = &a.keyless {
        if tlog_off {
            rule.not_carried.push(format!(
                "{field}.ctlog: {{}}: keyless signatures are always checked against the transparency log"
            ));
        }
        if let Some(url) = k
            .url
            .as_deref()
            .filter(|u| u.trim_end_matches('/') != PUBLIC_FULCIO)
        {
            rule.not_carried.push(format!(
                "{field}.keyless.url {url:?}: a private Fulcio; set trusted_root to that instance's trusted root"
            ));
        }
        if k.ca_cert.is_some() || k.trust_root_ref.is_some() {
            rule.not_carried.push(format!(
                "{field}.keyless ca-cert / trustRootRef: set trusted_root instead"
            ));
        }
        if k.insecure_ignore_sct == Some(true) {
            rule.not_carried.push(format!(
                "{field}.keyless.insecureIgnoreSCT: portcullis always checks the certificate's SCT"
            ));
        }
        if k.identities.is_empty() {
            return Err(DocError::Value {
                field: format!("{field}.keyless.identities"),
                reason: "no identity is given".into(),
            });
        }
        for (ii, id) in k.identities.iter().enumerate() {
            let ifield = format!("{field}.keyless.identities[{ii}]");
            let subject = identity(
                Plain::Exact,
                id.subject.as_deref(),
                id.subject_regexp.as_deref(),
                &format!("{ifield}.subject"),
                rule,
            )?;
            let issuer = identity(
                Plain::Exact,
                id.issuer.as_deref(),
                id.issuer_regexp.as_deref(),
                &format!("{ifield}.issuer"),
                rule,
            )?;
            attestors.push(Attestor::Keyless { subject, issuer });
        }
    }
    for (ti, t) in a.attestations.iter().enumerate() {
        let tfield = format!("{field}.attestations[{ti}]");
        let predicate_type = match COSIGN_TYPES.iter().find(|(n, _)| *n == t.predicate_type) {
            Some((_, uri)) => (*uri).to_owned(),
            None if t.predicate_type.contains("://") => t.predicate_type.clone(),
            None => {
                return Err(DocError::Value {
                    field: format!("{tfield}.predicateType"),
                    reason: format!(
                        "{:?} is neither a cosign type name nor a URI",
                        t.predicate_type
                    ),
                })
            }
        };
        let mut conditions = Vec::new();
        if let Some(p) = &t.policy {
            if p.remote.is_some() || p.config_map_ref.is_some() {
                rule.not_carried.push(format!(
                    "{tfield}.policy: a remote or ConfigMap policy is not fetched"
                ));
            }
            if p.fetch_config_file.is_some()
                || p.include_spec.is_some()
                || p.include_object_meta.is_some()
                || p.include_type_meta.is_some()
            {
                rule.not_carried.push(format!(
                    "{tfield}.policy: fetchConfigFile / include* are not translated"
                ));
            }
            match (p.kind.as_str(), &p.data) {
                ("cue", Some(data)) => match condition::cue(data) {
                    Ok(c) => conditions = c,
                    Err(why) => rule
                        .not_carried
                        .push(format!("{tfield}.policy: {why}: not translated")),
                },
                ("cue", None) => {}
                ("rego", _) => rule
                    .not_carried
                    .push(format!("{tfield}.policy: Rego policies are not translated")),
                (other, _) => {
                    return Err(DocError::Value {
                        field: format!("{tfield}.policy.type"),
                        reason: format!("{other:?}: expected cue or rego"),
                    })
                }
            }
        }
        rule.attestations.push(Attestation {
            name: t.name.clone(),
            predicate_type,
            conditions,
        });
    }
    if !a.attestations.is_empty() {
        rule.not_carried.push(format!(
            "{field} checks attestations only, not an image signature: portcullis also requires the image signed by the rule's attestors"
        ));
        if authorities > 1 && with_attestations > 0 {
            rule.not_carried.push(format!(
                "{field}'s attestations are required of every image the rule matches, whichever authority signed it"
            ));
        }
    }
    let _ = &a.name;
    Ok(Contribution::Attestors(attestors))
}
