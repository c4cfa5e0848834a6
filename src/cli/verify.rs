//! The one-shot commands: `portcullis verify IMAGE` runs the proxy's own pipeline (route, rule,
//! tag resolved once, manifest fetched and digest-checked, discovery, verification, decision) for
//! one image and reports it; `portcullis verify-bundle` checks one Sigstore bundle against an
//! artifact with the sigstore-conformance client flags.
//!
//! Both return a report or an error; printing and exit codes are `main`'s.

use std::sync::Arc;

use http::{HeaderMap, Method};

use crate::config::Config;
use crate::metrics::Metrics;
use crate::oci::{split_image_ref, Reference, Tag};
use crate::policy::{decide, Decision, Selection, Unmatched, Verdict};
use crate::registry_api::error::ApiError;
use crate::registry_api::{manifest, Proxy, RequestCtx};
use crate::signature::{Lookup, LookupError, TrustRoot, TrustRootError};
use crate::upstream::UpstreamError;

#[derive(Debug, thiserror::Error)]
pub enum InspectError {
    #[error("image {image:?}: {reason}")]
    Image { image: String, reason: String },
    #[error(transparent)]
    Upstream(#[from] UpstreamError),
    #[error("{0}")]
    Fetch(Box<ApiError>),
    #[error("signature lookup failed: {0}")]
    Lookup(Arc<LookupError>),
    #[error(transparent)]
    TrustRoot(#[from] TrustRootError),
}

/// What `portcullis verify` found.
#[derive(Debug, serde::Serialize)]
pub struct Report {
    pub image: String,
    pub reference: String,
    pub digest: String,
    pub media_type: String,
    /// The rule that applies, or `None` when no rule matches.
    pub rule: Option<String>,
    pub mode: Option<&'static str>,
    pub pattern: Option<String>,
    /// `None` when no verification ran (no rule, or mode off).
    pub verified: Option<bool>,
    /// `allow`, `deny`, or `audit` (served, but enforce would refuse it).
    pub decision: &'static str,
    pub reasons: Vec<String>,
    pub identities: Vec<String>,
    pub verified_by: Vec<crate::policy::Evidence>,
    pub signatures: usize,
    /// Every signature found: which attestor verified it, or why none did.
    pub signature_checks: Vec<crate::policy::SignatureReport>,
    /// Every attestation found: its signer, and each requirement's conditions with their values.
    pub attestations: Vec<crate::policy::AttestationReport>,
}

impl Report {
    /// The exit status of `verify`: 0 allowed (or audited), 1 denied.
    pub fn allowed(&self) -> bool {
        self.decision != "deny"
    }
}

/// Runs the proxy pipeline for `image` (`[registry/]repo[:tag|@digest]`, routed like a prefix-
/// or plain-form request).
pub async fn verify_image(config: &Config, image: &str) -> Result<Report, InspectError> {
    let bad = |reason: String| InspectError::Image {
        image: image.to_owned(),
        reason,
    };
    let root = Arc::new(TrustRoot::load(&config.trusted_root)?);
    let proxy = Proxy::from_config(config, root, Arc::new(Metrics::new()))?;
    let (name, reference) = split_image_ref(image);
    let reference: Reference = match reference {
        Some(r) => r.parse().map_err(|e| bad(format!("{e}")))?,
        None => Reference::Tag("latest".parse::<Tag>().map_err(|e| bad(format!("{e}")))?),
    };
    let (upstream, canonical) = proxy
        .upstreams
        .resolve(name, None)
        .map_err(|e| bad(e.to_string()))?;
    let ctx = RequestCtx {
        manifests: proxy.manifests.clone(),
        method: Method::GET,
        gate: proxy.gate(&upstream, &canonical),
        upstream,
        image: canonical.clone(),
        headers: HeaderMap::new(),
        path: String::new(),
        ns: None,
        query: Vec::new(),
    };
    // The tag is resolved once: the digest verified is the digest of these bytes.
    let m = manifest::fetch(&ctx, &reference)
        .await
        .map_err(|e| InspectError::Fetch(Box::new(e)))?;
    let mut report = Report {
        image: canonical.to_string(),
        reference: reference.to_string(),
        digest: m.digest.to_string(),
        media_type: m.media_type.to_str().unwrap_or("").to_owned(),
        rule: None,
        mode: None,
        pattern: None,
        verified: None,
        decision: "allow",
        reasons: Vec::new(),
        identities: Vec::new(),
        verified_by: Vec::new(),
        signatures: 0,
        signature_checks: Vec::new(),
        attestations: Vec::new(),
    };
    let (rule, pattern) = match &ctx.gate.selection {
        Selection::Unmatched(u) => {
            if *u == Unmatched::Deny {
                report.decision = "deny";
                report
                    .reasons
                    .push("no rule matches this repository and unmatched is deny".to_owned());
            } else {
                report
                    .reasons
                    .push("no rule matches this repository; unmatched is allow".to_owned());
            }
            return Ok(report);
        }
        Selection::Rule { rule, pattern } => (rule, pattern),
    };
    report.rule = Some(rule.name.clone());
    report.mode = Some(rule.mode.as_str());
    report.pattern = Some(pattern.clone());
    if rule.mode == crate::policy::Mode::Off {
        report.reasons.push("the rule's mode is off".to_owned());
        return Ok(report);
    }
    let (sig_upstream, sig_repo) = &ctx.gate.signatures;
    let outcome = ctx
        .gate
        .engine
        .verdict(&Lookup {
            image: &canonical,
            image_upstream: &ctx.upstream,
            manifest: Some(&m.bytes),
            media_type: m.media_type.to_str().ok(),
            digest: &m.digest,
            rule,
            upstream: sig_upstream,
            repo: sig_repo,
        })
        .await
        .map_err(InspectError::Lookup)?;
    let v: &Verdict = &outcome;
    report.verified = Some(v.verified);
    report.decision = match decide(rule.mode, v) {
        Decision::Allow => "allow",
        Decision::Deny { .. } => "deny",
        Decision::Audit { .. } => "audit",
    };
    report.reasons = v.reasons.clone();
    report.identities = v.identities.clone();
    report.verified_by = v.evidence.clone();
    report.signatures = v.signatures;
    report.signature_checks = v.signature_reports.clone();
    report.attestations = v.attestations.clone();
    Ok(report)
}

impl std::fmt::Display for Report {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let sep = if self.reference.contains(':') {
            '@'
        } else {
            ':'
        };
        writeln!(f, "image:      {}{sep}{}", self.image, self.reference)?;
        writeln!(f, "digest:     {}", self.digest)?;
        match (&self.rule, self.mode, &self.pattern) {
            (Some(r), Some(m), Some(p)) => writeln!(f, "rule:       {r} ({m}, pattern {p})")?,
            _ => writeln!(f, "rule:       none")?,
        }
        let verified = match self.verified {
            Some(true) => "verified",
            Some(false) => "NOT verified",
            None => "not checked",
        };
        writeln!(f, "result:     {verified}")?;
        let allowed = self
            .signature_checks
            .iter()
            .filter(|s| s.verified_by.is_some())
            .count();
        writeln!(
            f,
            "signatures: {} found, {allowed} verified by an allowed attestor",
            self.signatures
        )?;
        for e in &self.verified_by {
            writeln!(
                f,
                "  attestor {} verified {} ({})",
                e.attestor, e.signer, e.source
            )?;
        }
        for id in &self.identities {
            writeln!(f, "  signer seen: {id}")?;
        }
        for s in &self.signature_checks {
            match &s.verified_by {
                Some(by) => writeln!(f, "  signature {}: verified by {by}", s.source)?,
                None => writeln!(f, "  signature {}: not verified", s.source)?,
            }
        }
        if !self.attestations.is_empty() {
            writeln!(f, "attestations: {} found", self.attestations.len())?;
        }
        for a in &self.attestations {
            writeln!(
                f,
                "  {} ({}): {}",
                a.predicate_type,
                a.source,
                a.verified_by.as_deref().unwrap_or("signature not verified")
            )?;
            if let Some(e) = &a.error {
                writeln!(f, "    error: {e}")?;
            }
            for r in &a.requirements {
                writeln!(
                    f,
                    "    requirement {}: {}",
                    r.requirement,
                    if r.satisfied {
                        "satisfied"
                    } else {
                        "NOT satisfied"
                    }
                )?;
                for c in &r.conditions {
                    writeln!(
                        f,
                        "      [{}] {}{}",
                        c.result,
                        c.condition,
                        c.detail
                            .as_ref()
                            .map(|d| format!("  ({d})"))
                            .unwrap_or_default()
                    )?;
                }
            }
        }
        for r in &self.reasons {
            writeln!(f, "  reason: {r}")?;
        }
        let decision = match self.decision {
            "audit" => "audit (served by the proxy; enforce would refuse it)",
            "deny" => "deny (the proxy refuses it)",
            _ => "allow",
        };
        writeln!(f, "decision:   {decision}")
    }
}
