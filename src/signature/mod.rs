//! Signatures: finding them for a manifest digest ([`discovery`]), turning legacy cosign layers
//! into bundles ([`legacy`]), verifying them with the sigstore-rust crates ([`verify`]), and the
//! [`Engine`] that ties these to the verdict cache.
//!
//! The engine answers one question: for digest D under rule R and the configured trust root, is
//! D verified? The answer ([`Verdict`]) is cached by (D, rule fingerprint, trust-root
//! fingerprint), computed once for concurrent callers, and a lookup fault is an error, never a
//! verdict. Deciding what to do with the answer (enforce, audit) is `policy::decide` and
//! `registry_api::gate`.

pub mod discovery;
pub mod legacy;
pub mod trust_root;
pub mod tuf;
pub mod verdict_cache;
pub mod verify;

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;

use crate::config::{CacheSettings, Limits, TrustedRoot, TrustedRootSource};
use crate::metrics::Metrics;
use crate::oci::{media, Digest, Document, ImageName, Reading, RepoName};
use crate::policy::{Rule, Verdict};
use crate::upstream::{Upstream, UpstreamError};
pub use trust_root::{TrustRoot, TrustRootError};
pub use tuf::TufError;
pub use verdict_cache::{VerdictCache, VerdictKey};

/// The predicate type of a cosign v3 image signature statement.
pub const COSIGN_SIGN_PREDICATE: &str = "https://sigstore.dev/cosign/sign/v1";

// === trust root ===

impl TrustRoot {
    /// The trust root a configuration names: its file's JSON or the embedded public-good root.
    /// A TUF source must be fetched: [`TrustRoot::obtain`].
    pub fn load(settings: &TrustedRoot) -> Result<TrustRoot, TrustRootError> {
        match &settings.source {
            TrustedRootSource::Embedded => TrustRoot::public_good(),
            TrustedRootSource::File(json) => TrustRoot::from_json(json, settings.origin.clone()),
            TrustedRootSource::Tuf(_) => Err(TrustRootError::Unusable {
                origin: settings.origin.clone(),
                reason: "a TUF trusted root is fetched, not loaded".to_owned(),
            }),
        }
    }

    /// The trust root a configuration names, fetched over TUF when that is its source (from the
    /// verified cache when the mirror cannot be reached); each TUF request bounded by `timeout`.
    pub async fn obtain(settings: &TrustedRoot, timeout: Duration) -> Result<TrustRoot, TufError> {
        match &settings.source {
            TrustedRootSource::Tuf(t) => tuf::obtain(t, timeout).await.map(|(root, _)| root),
            _ => Ok(TrustRoot::load(settings)?),
        }
    }
}

// === candidates ===

/// A signature found for a digest, not yet verified.
#[derive(Debug, Clone)]
pub struct Candidate {
    /// Where it was found, for reasons and audit events.
    pub source: String,
    pub kind: CandidateKind,
}

#[derive(Debug, Clone)]
pub enum CandidateKind {
    /// A Sigstore bundle (JSON) from a referrer.
    Bundle(Bytes),
    /// A cosign simple-signing layer: its payload and its descriptor's annotations.
    Legacy {
        payload: Bytes,
        annotations: std::collections::BTreeMap<String, String>,
    },
    /// A cosign `.att` layer: a DSSE envelope and its descriptor's annotations.
    LegacyAttestation {
        envelope: Bytes,
        annotations: std::collections::BTreeMap<String, String>,
    },
    /// An unsigned in-toto statement from a BuildKit attestation manifest inside an index, about
    /// the child manifest `about`.
    Unsigned { statement: Bytes, about: Digest },
    /// A signature or attestation that could not be read (malformed manifest, oversized or
    /// corrupt layer): it fails verification with this reason, counted as what it announced.
    Unusable {
        reason: String,
        announced: Announced,
    },
}

/// What an unreadable candidate was announced as by where it was found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Announced {
    Signature,
    /// An attestation whose descriptor names its predicate type.
    Attestation(String),
    /// An attestation of a predicate type nobody named: reported, and it satisfies nothing.
    UnknownAttestation,
}

impl Announced {
    /// The predicate type of an announced attestation (empty when unknown); `None` for a
    /// signature.
    pub fn predicate_type(&self) -> Option<&str> {
        match self {
            Announced::Signature => None,
            Announced::Attestation(t) => Some(t),
            Announced::UnknownAttestation => Some(""),
        }
    }
}

// === lookup errors ===

/// A fault while looking up signatures: never "unsigned", never "signed".
#[derive(Debug, thiserror::Error)]
pub enum LookupError {
    #[error("{0}")]
    Upstream(#[from] UpstreamError),
    #[error("upstream {upstream}: {what} answered {status}")]
    Status {
        upstream: String,
        what: String,
        status: http::StatusCode,
    },
    #[error("upstream {upstream}: {what} is malformed: {reason}")]
    Malformed {
        upstream: String,
        what: String,
        reason: String,
    },
    #[error("signature lookup took longer than {0:?}")]
    Timeout(Duration),
    #[error("verification task failed: {0}")]
    Internal(String),
}

// === engine ===

/// What to verify: a digest of an image, the rule that applies, and where its signatures live.
pub struct Lookup<'a> {
    pub image: &'a ImageName,
    /// The upstream serving the image itself.
    pub image_upstream: &'a Arc<Upstream>,
    pub digest: &'a Digest,
    /// The manifest's bytes, when the caller has them (not for `HEAD`).
    pub manifest: Option<&'a [u8]>,
    /// The manifest's media type, when known.
    pub media_type: Option<&'a str>,
    pub rule: &'a Arc<Rule>,
    /// The upstream holding the signatures (the image's own, or the rule's signature repository).
    pub upstream: &'a Arc<Upstream>,
    pub repo: &'a RepoName,
}

/// Verdicts: cached, or discovered and verified once for all concurrent callers.
pub struct Engine {
    pub root: Arc<TrustRoot>,
    /// Shared with the engines of later configurations (reloads): its keys hold the rule and
    /// trust-root fingerprints, so no verdict is reused under a rule or root it was not made for.
    cache: Arc<VerdictCache>,
    limits: Limits,
    lookup_timeout: Duration,
    /// Where upstream answers are kept and read back (none without a content store), and
    /// which upstreams answer the referrers API.
    memory: discovery::Memory,
    metrics: Arc<Metrics>,
}

impl Engine {
    pub fn new(
        root: Arc<TrustRoot>,
        settings: &CacheSettings,
        limits: &Limits,
        lookup_timeout: Duration,
        metrics: Arc<Metrics>,
    ) -> Engine {
        let cache = Arc::new(VerdictCache::new(settings, metrics.clone()));
        Engine::sharing(root, cache, limits, lookup_timeout, metrics)
    }

    /// An engine over an existing verdict cache (that of the configuration before a reload).
    pub fn sharing(
        root: Arc<TrustRoot>,
        cache: Arc<VerdictCache>,
        limits: &Limits,
        lookup_timeout: Duration,
        metrics: Arc<Metrics>,
    ) -> Engine {
        Engine {
            root,
            cache,
            limits: limits.clone(),
            lookup_timeout,
            memory: discovery::Memory::new(None),
            metrics,
        }
    }

    /// This engine, keeping what upstreams answer in `material`'s store and reading it back.
    pub fn with_material(mut self, material: Option<discovery::Material>) -> Engine {
        self.memory = discovery::Memory::new(material);
        self
    }

    pub fn limits(&self) -> &Limits {
        &self.limits
    }

    pub fn material(&self) -> Option<&discovery::Material> {
        self.memory.material.as_ref()
    }

    pub fn verdict_cache(&self) -> &Arc<VerdictCache> {
        &self.cache
    }

    fn key(
        &self,
        digest: &Digest,
        rule: &Rule,
        upstream: &Upstream,
        repo: &RepoName,
    ) -> VerdictKey {
        VerdictKey {
            digest: digest.clone(),
            rule: rule.fingerprint,
            root: self.root.fingerprint,
            signatures: format!("{}/{repo}", upstream.key).into(),
        }
    }

    /// The verdict for `lookup.digest`: a child of a verified index, a cached verdict, or a fresh
    /// discovery and verification (run once for concurrent callers; faults are not cached).
    pub async fn verdict(&self, lookup: &Lookup<'_>) -> Result<Arc<Verdict>, Arc<LookupError>> {
        let key = self.key(lookup.digest, lookup.rule, lookup.upstream, lookup.repo);
        if let Some(v) = self.cache.covered_child(&key).await {
            return Ok(v);
        }
        self.cache.get_or_compute(key, self.compute(lookup)).await
    }

    /// Discovery + verification for one digest, with the audit event and the latency metric.
    async fn compute(&self, l: &Lookup<'_>) -> Result<Arc<Verdict>, LookupError> {
        let started = Instant::now();
        let work = async {
            let rule = l.rule;
            // BuildKit attestations live inside an index: read them whenever attestations are
            // required (so a refusal can say they are unsigned), fetching the index for a HEAD.
            let announced_index = l.media_type.is_some_and(media::is_index);
            let index = if rule.attestations.is_empty() {
                None
            } else {
                match l.manifest {
                    Some(b) => Some(Bytes::copy_from_slice(b)),
                    None if announced_index => {
                        discovery::manifest_by_digest(
                            l.image_upstream,
                            &l.image.repo,
                            l.digest,
                            &self.limits,
                            &self.memory,
                        )
                        .await?
                    }
                    None => None,
                }
                .and_then(|b| Document::parse(&b, Reading::Index).ok())
                .filter(|index| index.platform_children().next().is_some())
            };
            let wants = discovery::Wants {
                attestations: !rule.attestations.is_empty(),
                buildkit: index.as_ref().map(|index| discovery::BuildkitIndex {
                    upstream: l.image_upstream,
                    repo: &l.image.repo,
                    index,
                }),
            };
            let candidates = discovery::discover(
                l.upstream,
                l.repo,
                l.digest,
                &self.limits,
                &self.memory,
                wants,
            )
            .await?;
            let children: Vec<Digest> = index
                .iter()
                .flat_map(Document::platform_children)
                .map(|d| d.digest.clone())
                .collect();
            // Signature checks are CPU work (milliseconds each, up to max_signatures of them):
            // off the async workers.
            let (root, rule, digest) = (self.root.clone(), l.rule.clone(), l.digest.clone());
            let histogram = self.metrics.signature_check_duration.clone();
            tokio::task::spawn_blocking(move || {
                let started = Instant::now();
                let c = verify::check_all(&root, &rule, &digest, &candidates);
                let mut v = rule.evaluate(c.signatures, c.checks, c.identities);
                v.signature_reports = c.signature_reports;
                let v = rule.evaluate_attestations(v, &digest, &c.attestations, &children);
                histogram
                    .with_label_values(&[v.result().as_str()])
                    .observe(started.elapsed().as_secs_f64());
                Arc::new(v)
            })
            .await
            .map_err(|e| LookupError::Internal(e.to_string()))
        };
        let result = tokio::time::timeout(self.lookup_timeout, work)
            .await
            .unwrap_or(Err(LookupError::Timeout(self.lookup_timeout)));
        let elapsed = started.elapsed();
        self.metrics
            .verification_duration
            .with_label_values(&[match &result {
                Ok(v) => v.result().as_str(),
                Err(_) => "error",
            }])
            .observe(elapsed.as_secs_f64());
        audit_event(l, &result, elapsed);
        result
    }

    /// Remembers what a verified manifest references (an index's child manifests, an image's
    /// config and layers) as covered by it, under the same rule and for the same repository.
    /// The digests pin those bytes, so they are as trusted as the manifest itself.
    pub async fn cover_children(&self, manifest: &[u8], parent: &Lookup<'_>) {
        let (rule, upstream, repo) = (parent.rule, parent.upstream, parent.repo);
        let parent = parent.digest;
        let children = referenced(manifest, self.limits.max_index_children);
        if children.is_empty() {
            return;
        }
        let verdict = Arc::new(Verdict {
            verified: true,
            reasons: vec![format!("covered by verified manifest {parent}")],
            evidence: Vec::new(),
            identities: Vec::new(),
            signatures: 0,
            attestations: Vec::new(),
            signature_reports: Vec::new(),
        });
        for child in children {
            // Warm pulls pass here on every request: insert only what is not covered yet.
            self.cache
                .cover_child(self.key(&child, rule, upstream, repo), &verdict)
                .await;
        }
    }
}

/// The digests a manifest references (at most `max`): an index's `manifests`, an image's
/// `config` and `layers`, an artifact's `blobs`; empty for a document whose descriptor lists do
/// not parse. Read as leniently as those lists allow: what a verified manifest names is pinned by
/// it, whatever else the document holds. Public for the fuzz targets (`fuzz/`).
pub fn referenced(bytes: &[u8], max: usize) -> Vec<Digest> {
    Document::parse(bytes, Reading::References)
        .map(|d| d.referenced(max))
        .unwrap_or_default()
}

/// One structured event per computed verdict (target `portcullis::audit`).
fn audit_event(l: &Lookup<'_>, result: &Result<Arc<Verdict>, LookupError>, elapsed: Duration) {
    let json = |v: &[String]| serde_json::to_string(v).unwrap_or_default();
    let ms = elapsed.as_secs_f64() * 1000.0;
    match result {
        Ok(v) => {
            let signers: Vec<String> = v.evidence.iter().map(|e| e.signer.clone()).collect();
            tracing::info!(
                target: "portcullis::audit",
                event = "verdict",
                image = %l.image,
                digest = %l.digest,
                rule = %l.rule.name,
                mode = l.rule.mode.as_str(),
                result = v.result().as_str(),
                reasons = %json(&v.reasons),
                identities = %json(&v.identities),
                verified_by = %json(&signers),
                signatures = v.signatures,
                duration_ms = ms,
                "verdict"
            );
        }
        Err(e) => tracing::warn!(
            target: "portcullis::audit",
            event = "verdict",
            image = %l.image,
            digest = %l.digest,
            rule = %l.rule.name,
            mode = l.rule.mode.as_str(),
            result = "error",
            error = %e,
            duration_ms = ms,
            "signature lookup failed"
        ),
    }
}
