//! `portcullis verify IMAGE`: the proxy's own stages for one image (upstream, rule, the tag
//! resolved once, the manifest fetched and its digest proven) and then exactly the gate the proxy
//! calls ([`Gate::evaluate`](crate::registry_api::gate::Gate::evaluate)), its outcome reported.
//! There is no second copy of rule selection or of the decision here. Returns a report or an
//! error; printing and exit codes are `main`'s.

use std::sync::Arc;

use http::HeaderMap;

use crate::config::Config;
use crate::metrics::Metrics;
use crate::oci::{split_image_ref, Reference, Tag};
use crate::policy::{DecisionKind, Selection, Verdict};
use crate::registry_api::error::ApiError;
use crate::registry_api::gate::{Outcome, Subject};
use crate::registry_api::manifest::fetch::{self, accept_headers, Origin};
use crate::registry_api::Proxy;
use crate::signature::{LookupError, TrustRoot, TufError};
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
    TrustRoot(#[from] TufError),
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
    pub decision: DecisionKind,
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
        self.decision != DecisionKind::Deny
    }
}

/// Runs the proxy's own stages for `image` (`[registry/]repo[:tag|@digest]`, routed like a
/// prefix- or plain-form request): upstream, rule, the manifest fetched once and its digest
/// proven, then the gate the proxy runs, and reports its outcome.
pub async fn verify_image(config: &Config, image: &str) -> Result<Report, InspectError> {
    let bad = |reason: String| InspectError::Image {
        image: image.to_owned(),
        reason,
    };
    let root = Arc::new(TrustRoot::obtain(&config.trusted_root, config.timeouts.connect).await?);
    // Asks the upstreams, as a first pull would: no content store.
    let proxy = Proxy::from_config(config, root, Arc::new(Metrics::new()), None)?;
    let (name, reference) = split_image_ref(image);
    let reference: Reference = match reference {
        Some(r) => r.parse().map_err(|e| bad(format!("{e}")))?,
        None => Reference::Tag("latest".parse::<Tag>().map_err(|e| bad(format!("{e}")))?),
    };
    let (upstream, canonical) = proxy
        .upstreams
        .resolve(name, None)
        .map_err(|e| bad(e.to_string()))?;
    let rule = proxy.rule(&upstream, &canonical);
    // The tag is resolved once: the digest verified is the digest of these bytes.
    let origin = Origin {
        upstream: &upstream,
        image: &canonical,
    };
    let m = fetch::get(origin, &reference, accept_headers(&HeaderMap::new()))
        .await
        .map_err(|e| InspectError::Fetch(Box::new(e)))?;
    let subject = Subject {
        image: &canonical,
        image_upstream: &upstream,
        digest: &m.digest,
        media_type: m.media_type.to_str().ok(),
        manifest: Some(&m.bytes),
    };
    let outcome = proxy.gate.evaluate(&rule, &subject).await;

    let mut report = Report {
        image: canonical.to_string(),
        reference: reference.to_string(),
        digest: m.digest.to_string(),
        media_type: m.media_type.to_str().unwrap_or("").to_owned(),
        rule: None,
        mode: None,
        pattern: None,
        verified: None,
        decision: DecisionKind::Allow,
        reasons: Vec::new(),
        identities: Vec::new(),
        verified_by: Vec::new(),
        signatures: 0,
        signature_checks: Vec::new(),
        attestations: Vec::new(),
    };
    if let Selection::Rule { rule, pattern } = &rule.selection {
        report.rule = Some(rule.name.clone());
        report.mode = Some(rule.mode.as_str());
        report.pattern = Some(pattern.clone());
    }
    match outcome {
        Outcome::Unmatched => report
            .reasons
            .push("no rule matches this repository; unmatched is allow".to_owned()),
        Outcome::UnmatchedDenied => {
            report.decision = DecisionKind::Deny;
            report
                .reasons
                .push("no rule matches this repository and unmatched is deny".to_owned());
        }
        Outcome::Off(_) => report.reasons.push("the rule's mode is off".to_owned()),
        Outcome::Fault { error, .. } => return Err(InspectError::Lookup(error)),
        Outcome::Decided {
            verdict, decision, ..
        } => {
            let v: &Verdict = &verdict;
            report.verified = Some(v.verified);
            report.decision = decision.kind();
            report.reasons = v.reasons.clone();
            report.identities = v.identities.clone();
            report.verified_by = v.evidence.clone();
            report.signatures = v.signatures;
            report.signature_checks = v.signature_reports.clone();
            report.attestations = v.attestations.clone();
        }
    }
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
                a.predicate_type
                    .as_deref()
                    .unwrap_or("unreadable statement"),
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
            DecisionKind::Audit => "audit (served by the proxy; enforce would refuse it)",
            DecisionKind::Deny => "deny (the proxy refuses it)",
            DecisionKind::Allow => "allow",
        };
        writeln!(f, "decision:   {decision}")
    }
}
