//! The Kyverno objects as written: `ClusterPolicy` / `Policy` and the `verifyImages` part of
//! their rules, as serde structs that refuse unknown fields. Settings that only decide admission
//! of Kubernetes objects are read as [`IgnoredAny`], so they are known but unused.

use std::collections::BTreeMap;

use serde::de::IgnoredAny;
use serde::Deserialize;
use serde_json::Value;

/// Kubernetes object metadata: only the name is used. The other keys (namespace, labels,
/// annotations, managed fields…) are ignored on purpose, so this struct accepts any.
#[derive(Debug, Deserialize)]
pub struct Metadata {
    pub name: String,
    pub namespace: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Policy {
    pub api_version: String,
    pub kind: String,
    pub metadata: Metadata,
    pub spec: Spec,
    /// Written by the controller; nothing to import.
    pub status: Option<IgnoredAny>,
}

#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq)]
pub enum Action {
    #[serde(alias = "audit")]
    Audit,
    #[serde(alias = "enforce")]
    Enforce,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Spec {
    pub rules: Vec<KRule>,
    pub validation_failure_action: Option<Action>,
    #[serde(default)]
    pub validation_failure_action_overrides: Vec<Value>,
    pub failure_policy: Option<String>,
    pub apply_rules: Option<String>,
    // Admission-only settings: read, ignored on purpose.
    pub background: Option<IgnoredAny>,
    pub admission: Option<IgnoredAny>,
    pub webhook_timeout_seconds: Option<IgnoredAny>,
    pub webhook_configuration: Option<IgnoredAny>,
    pub emit_warning: Option<IgnoredAny>,
    pub use_server_side_apply: Option<IgnoredAny>,
    pub schema_validation: Option<IgnoredAny>,
    pub mutate_existing_on_policy_update: Option<IgnoredAny>,
    pub generate_existing: Option<IgnoredAny>,
    pub generate_existing_on_policy_update: Option<IgnoredAny>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct KRule {
    pub name: String,
    /// Which Kubernetes objects are admitted through this rule: ignored on purpose.
    #[serde(rename = "match")]
    pub match_resources: Option<IgnoredAny>,
    pub exclude: Option<IgnoredAny>,
    pub skip_background_requests: Option<IgnoredAny>,
    pub report_properties: Option<IgnoredAny>,
    pub preconditions: Option<Value>,
    pub cel_preconditions: Option<Value>,
    pub context: Option<Value>,
    #[serde(default)]
    pub verify_images: Vec<VerifyImage>,
    pub validate: Option<IgnoredAny>,
    pub mutate: Option<IgnoredAny>,
    pub generate: Option<IgnoredAny>,
    /// Where images sit in custom resources: portcullis sees every pull, wherever it is named.
    pub image_extractors: Option<IgnoredAny>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct VerifyImage {
    pub failure_action: Option<Action>,
    #[serde(rename = "type")]
    pub kind: Option<String>,
    pub image: Option<String>,
    #[serde(default)]
    pub image_references: Vec<String>,
    #[serde(default)]
    pub skip_image_references: Vec<String>,
    pub key: Option<String>,
    pub roots: Option<String>,
    pub subject: Option<String>,
    pub issuer: Option<String>,
    pub additional_extensions: Option<BTreeMap<String, String>>,
    #[serde(default)]
    pub attestors: Vec<AttestorSet>,
    #[serde(default)]
    pub attestations: Vec<KAttestation>,
    pub annotations: Option<BTreeMap<String, String>>,
    pub repository: Option<String>,
    #[serde(rename = "cosignOCI11")]
    pub cosign_oci11: Option<bool>,
    pub mutate_digest: Option<bool>,
    pub verify_digest: Option<bool>,
    pub validate: Option<Value>,
    pub required: Option<bool>,
    pub image_registry_credentials: Option<Value>,
    pub use_cache: Option<IgnoredAny>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AttestorSet {
    pub count: Option<usize>,
    #[serde(default)]
    pub entries: Vec<Entry>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Entry {
    pub keys: Option<Keys>,
    pub certificates: Option<Value>,
    pub keyless: Option<Keyless>,
    pub attestor: Option<Value>,
    pub annotations: Option<BTreeMap<String, String>>,
    pub repository: Option<String>,
    pub signature_algorithm: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Keys {
    pub public_keys: Option<String>,
    pub signature_algorithm: Option<String>,
    pub kms: Option<String>,
    pub secret: Option<Value>,
    pub rekor: Option<Rekor>,
    pub ctlog: Option<CtLog>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Keyless {
    pub rekor: Option<Rekor>,
    pub ctlog: Option<CtLog>,
    pub issuer: Option<String>,
    #[serde(rename = "issuerRegExp")]
    pub issuer_regexp: Option<String>,
    pub subject: Option<String>,
    #[serde(rename = "subjectRegExp")]
    pub subject_regexp: Option<String>,
    pub roots: Option<String>,
    pub additional_extensions: Option<BTreeMap<String, String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Rekor {
    pub url: Option<String>,
    pub pubkey: Option<String>,
    pub ignore_tlog: Option<bool>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CtLog {
    #[serde(rename = "ignoreSCT")]
    pub ignore_sct: Option<bool>,
    pub pubkey: Option<String>,
    #[serde(rename = "tsaCertChain")]
    pub tsa_cert_chain: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct KAttestation {
    pub name: Option<String>,
    pub predicate_type: Option<String>,
    #[serde(rename = "type")]
    pub kind: Option<String>,
    #[serde(default)]
    pub attestors: Vec<AttestorSet>,
    #[serde(default)]
    pub conditions: Vec<AnyAll>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AnyAll {
    #[serde(default)]
    pub any: Vec<Cond>,
    #[serde(default)]
    pub all: Vec<Cond>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Cond {
    pub key: Value,
    pub operator: String,
    #[serde(default)]
    pub value: Value,
    pub message: Option<String>,
}
