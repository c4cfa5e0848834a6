//! The image page (`/ui/images/{name}`): one image by its canonical name, over a window
//! (`since`, default 30 days): each digest it was pulled as, with its tags and verdicts; each
//! digest's latest stored verdict in full (every signature found and the attestor that verified
//! it, every attestation with each requirement's conditions and their values); its SBOM
//! packages with where the SBOM came from; and its pulls by client.

use std::collections::BTreeMap;
use std::time::Duration;

use maud::{html, Markup};
use serde::Deserialize;

use super::layout::{self, count, digest, since_select, when, when_text, Nav, Outcome};
use super::{ConsoleError, Params};
use crate::config::Config;
use crate::db::Database;
use crate::inventory::query::image::{self as inventory_image, ImageAnswer};
use crate::ledger::report;

const DEFAULT_SINCE: &str = "30d";
/// The digests whose SBOM packages are shown (the most recently pulled first).
const SBOM_DIGESTS: usize = 20;

/// A verdict as the ledger's writer stored it ([`crate::policy::Verdict`] serialized); fields
/// a later version adds are ignored, fields missing read as empty.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct StoredVerdict {
    verified: bool,
    reasons: Vec<String>,
    evidence: Vec<StoredEvidence>,
    identities: Vec<String>,
    signature_reports: Vec<StoredSignature>,
    attestations: Vec<StoredAttestation>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct StoredEvidence {
    attestor: usize,
    source: String,
    signer: String,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct StoredSignature {
    source: String,
    verified_by: Option<String>,
    errors: Vec<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct StoredAttestation {
    source: String,
    predicate_type: Option<String>,
    verified_by: Option<String>,
    error: Option<String>,
    about: String,
    requirements: Vec<StoredRequirement>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct StoredRequirement {
    requirement: String,
    satisfied: bool,
    conditions: Vec<StoredCondition>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct StoredCondition {
    condition: String,
    result: String,
    detail: Option<String>,
}

pub async fn page(
    db: &Database,
    config: &Config,
    name: &str,
    params: &Params,
) -> Result<Markup, ConsoleError> {
    let name = percent_encoding::percent_decode_str(name)
        .decode_utf8()
        .map_err(|_| ConsoleError::BadParam {
            param: "name",
            reason: "the image name is not UTF-8".to_owned(),
        })?
        .into_owned();
    let since_text = params.get("since").unwrap_or(DEFAULT_SINCE);
    let since = params.since()?.unwrap_or(Duration::from_secs(30 * 86_400));
    let pulls = report::image(db, &name, since).await?;
    // Digests, most recently pulled first.
    let mut order: Vec<(&str, &str)> = pulls
        .digests
        .iter()
        .map(|e| (e.last_seen.as_str(), e.digest.as_str()))
        .collect();
    order.sort_by(|a, b| b.cmp(a));
    let mut digests: Vec<String> = Vec::new();
    for (_, d) in order {
        if !digests.iter().any(|x| x == d) {
            digests.push(d.to_owned());
        }
    }
    let stored = db.verdicts_of(digests.clone()).await?;
    let mut verdicts: BTreeMap<&str, Vec<(&str, i64, StoredVerdict)>> = BTreeMap::new();
    for v in &stored {
        let parsed = serde_json::from_str::<StoredVerdict>(&v.detail).unwrap_or_default();
        verdicts.entry(v.digest.as_str()).or_default().push((
            v.rule.as_str(),
            v.decided_at,
            parsed,
        ));
    }
    let mut sboms: Vec<ImageAnswer> = Vec::new();
    for d in digests.iter().take(SBOM_DIGESTS) {
        sboms.push(inventory_image::image(db, &name, d).await?);
    }
    let attestor_of = |rule: &str, i: usize| -> String {
        config
            .policies
            .rules
            .iter()
            .find(|r| r.name == rule)
            .and_then(|r| r.attestors.get(i.wrapping_sub(1)))
            .map(|a| format!("attestor {i} of rule {rule}: {a}"))
            .unwrap_or_else(|| format!("attestor {i} of rule {rule}"))
    };

    let body = html! {
        h1 #image-name { (name) }
        p.sub { "Pulled as " (digests.len()) " digest(s) since " (when_text(&pulls.since)) ". "
            a href={"/ui/policies?image=" (urlencode(&name))} { "Which rule applies, and why" } }
        form.filters method="get" {
            (since_select(since_text, &["24h", "7d", "30d", "90d"]))
            button type="submit" { "Show" }
        }
        @if pulls.digests.is_empty() {
            p.empty { "No pulls of this image in the window." }
        }
        section.card #digests {
            h2 { "Digests and verdicts" }
            table {
                thead { tr { th { "Digest" } th { "Tags" } th { "Rule" } th { "Outcome" } th { "Why" } th { "Signers" } th.num { "Pulls" } th.num { "Clients" } th { "Last seen" } } }
                tbody {
                    @for e in &pulls.digests {
                        tr data-digest=(e.digest) {
                            td { a href={"#" (e.digest)} { (digest(&e.digest)) } }
                            td { (e.tags.join(", ")) }
                            td { (e.rule.as_deref().unwrap_or("—")) @if let Some(m) = &e.mode { " (" (m) ")" } }
                            td { (Outcome::of(e.verdict, e.admission).badge()) }
                            td { ul.reasons { @for r in &e.reasons { li { (r) } } } }
                            td { @for id in &e.identities { div.mono { (id) } } }
                            td.num { (count(e.pulls)) }
                            td.num { (count(e.clients)) }
                            td { (when_text(&e.last_seen)) }
                        }
                    }
                }
            }
        }
        @for d in &digests {
            section.card.digest id=(d) {
                h2 { "Digest " code { (d) } }
                @match verdicts.get(d.as_str()) {
                    None => p.empty { "No verdict is stored for this digest (its rule's mode is off, no rule matched, or the lookup failed)." },
                    Some(list) => {
                        @for (rule, decided_at, v) in list {
                            h3 { "Under rule " (rule) ": "
                                @if v.verified { (Outcome::Verified.badge()) } @else { span.badge.b-let_through { "unverified" } }
                                span.sub { " decided " (when(*decided_at)) } }
                            @if !v.reasons.is_empty() { ul.reasons { @for r in &v.reasons { li { (r) } } } }
                            h4 { "Signatures" }
                            @if v.signature_reports.is_empty() { p.empty { "No signature found." } }
                            @else {
                                table.signatures {
                                    thead { tr { th { "Source" } th { "Verified by" } th { "Signer" } th { "Errors" } } }
                                    tbody {
                                        @for s in &v.signature_reports {
                                            @let ev = v.evidence.iter().find(|e| e.source == s.source);
                                            tr {
                                                td.mono { (s.source) }
                                                td { @match (&s.verified_by, ev) {
                                                    (_, Some(e)) => (attestor_of(rule, e.attestor)),
                                                    (Some(by), None) => (by),
                                                    (None, None) => span.cond-bad { "no attestor" },
                                                } }
                                                td.mono { @if let Some(e) = ev { (e.signer) } }
                                                td { ul.reasons { @for err in &s.errors { li { (err) } } } }
                                            }
                                        }
                                    }
                                }
                            }
                            @if !v.identities.is_empty() {
                                p { "Signers whose signatures verified: " @for (i, id) in v.identities.iter().enumerate() { @if i > 0 { ", " } code { (id) } } }
                            }
                            h4 { "Attestations" }
                            @if v.attestations.is_empty() { p.empty { "No attestation found." } }
                            @else {
                                table.attestations {
                                    thead { tr { th { "Source" } th { "Predicate type" } th { "Signed by" } th { "About" } th { "Requirements and conditions" } } }
                                    tbody {
                                        @for a in &v.attestations {
                                            tr {
                                                td.mono { (a.source) }
                                                td.mono { (a.predicate_type.as_deref().unwrap_or("unreadable")) }
                                                td { @match &a.verified_by { Some(by) => span.mono { (by) }, None => span.cond-bad { "not verified" } }
                                                     @if let Some(e) = &a.error { div.cond-bad { (e) } } }
                                                td { (digest(&a.about)) }
                                                td {
                                                    @for r in &a.requirements {
                                                        div { strong { (r.requirement) } ": "
                                                            @if r.satisfied { span.cond-ok { "satisfied" } } @else { span.cond-bad { "not satisfied" } } }
                                                        ul.reasons { @for c in &r.conditions {
                                                            li { code { (c.condition) } " → "
                                                                span class=(if c.result == "true" { "cond-ok" } else { "cond-bad" }) { (c.result) }
                                                                @if let Some(dv) = &c.detail { " (value: " code { (dv) } ")" } }
                                                        } }
                                                    }
                                                }
                                            }
                                        }
                                    }
                                }
                            }
                        }
                    }
                }
                @if let Some(s) = sboms.iter().find(|s| &s.digest == d) {
                    (sbom(s))
                }
            }
        }
        section.card #clients {
            h2 { "Pulls by client" }
            @if pulls.clients.is_empty() { p.empty { "No clients in the window." } }
            @else {
                table {
                    thead { tr { th { "Address" } th { "User agent" } th { "User" } th.num { "Pulls" } th { "First seen" } th { "Last seen" } } }
                    tbody {
                        @for c in &pulls.clients {
                            tr.client {
                                td.mono { (c.address) }
                                td { (c.user_agent) }
                                td { (c.user.as_deref().unwrap_or("—")) }
                                td.num { (count(c.pulls)) }
                                td { (when_text(&c.first_seen)) }
                                td { (when_text(&c.last_seen)) }
                            }
                        }
                    }
                }
            }
        }
    };
    Ok(layout::page(&name, Nav::None, body))
}

/// A digest's SBOM: where it came from, and its packages (in a `<details>`, open when short).
fn sbom(s: &ImageAnswer) -> Markup {
    let origin = match s.sbom_provenance.as_str() {
        "signed" => format!("a signed attestation, signer {}", s.sbom_signer),
        "buildkit" => "BuildKit's attestation in a verified index".to_owned(),
        "unsigned" => format!("an unsigned referrer ({})", s.sbom_signer),
        "unverified" => format!(
            "a signed attestation no attestor accepted ({})",
            s.sbom_signer
        ),
        "" => String::new(),
        other => other.to_owned(),
    };
    html! {
        h4 { "SBOM" }
        @match s.sbom_status.as_str() {
            "found" => {
                p.sbom-origin { (s.sbom_format) " from " (origin) ": " (s.packages.len()) " package(s)." }
                details open[s.packages.len() <= 50] {
                    summary { "Packages" }
                    table.packages {
                        thead { tr { th { "Package" } th { "Version" } th { "Ecosystem" } th { "purl" } } }
                        tbody {
                            @for p in &s.packages {
                                tr { td { (p.package) } td { (p.version) } td { (p.ecosystem) } td.mono { (p.purl) } }
                            }
                        }
                    }
                }
            },
            "none" => p.empty { "No SBOM is attached to this digest." },
            "index" => p.empty { "An image index: each child has its own SBOM." },
            "unparseable" => p.cond-bad { "The SBOM could not be read: " (s.sbom_error) },
            _ => p.empty { "Not ingested yet." },
        }
    }
}

fn urlencode(s: &str) -> String {
    url::form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::{Evidence, SignatureReport, Verdict};

    #[test]
    fn a_stored_verdict_reads_back() {
        let v = Verdict {
            verified: true,
            reasons: vec!["why".into()],
            evidence: vec![Evidence {
                attestor: 1,
                source: "referrer sha256:aa".into(),
                signer: "https://github.com/acme/x issuer https://token".into(),
            }],
            identities: vec!["id".into()],
            signatures: 1,
            attestations: Vec::new(),
            signature_reports: vec![SignatureReport {
                source: "referrer sha256:aa".into(),
                verified_by: Some("attestor 1".into()),
                errors: Vec::new(),
            }],
        };
        let back: StoredVerdict =
            serde_json::from_str(&serde_json::to_string(&v).unwrap()).unwrap();
        assert!(back.verified);
        assert_eq!(back.evidence[0].attestor, 1);
        assert_eq!(back.evidence[0].signer, v.evidence[0].signer);
        assert_eq!(
            back.signature_reports[0].verified_by.as_deref(),
            Some("attestor 1")
        );
        assert_eq!(back.identities, ["id"]);
    }
}
