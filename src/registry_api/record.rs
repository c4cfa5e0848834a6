//! The record stage, once per gated request: the verdict metric ([`Outcome::record`]), the
//! ledger entry ([`crate::ledger::Record`]) and, for a manifest served, the inventory's ingest
//! offer ([`super::feed`]), all made from the gate's outcome after it has decided, so recording
//! can change no decision. Neither the ledger nor the ingest call waits (see [`crate::ledger`],
//! [`crate::inventory::ingest`]).
//!
//! What the manifest route records: every request, served or refused, by tag or by digest, in
//! every addressing form (the canonical image is the same for all three). The blob route gates
//! JSON documents under strict rules, mostly the config blobs of verified images that a manifest
//! pull already recorded; it records only what it refuses, so that a refused manifest asked for
//! as a blob is in the ledger too.

use super::gate::Outcome;
use super::Proxy;
use super::RequestCtx;
use crate::ledger::{Admission, Finding, LedgerVerdict, Reasons, Record};
use crate::oci::{Digest, Tag};
use std::sync::Arc;

use crate::policy::{Decision, Mode, Rule};

/// Which route gated the document.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Route {
    Manifest,
    Blob,
}

pub fn record(
    proxy: &Proxy,
    ctx: &RequestCtx,
    route: Route,
    tag: Option<&Tag>,
    (digest, media_type): (&Digest, Option<&str>),
    outcome: &Outcome,
) {
    outcome.record(&proxy.metrics);
    if proxy.ledger.is_none() && proxy.ingest.is_none() {
        return;
    }
    let Facts {
        rule,
        verdict,
        admission,
        finding,
        reasons,
    } = Facts::of(outcome);
    if route == Route::Blob && admission == Admission::Served {
        return;
    }
    if let (Some(ingest), Route::Manifest, Admission::Served) = (&proxy.ingest, route, admission) {
        let verified = verdict == LedgerVerdict::Verified;
        super::feed::offer(
            proxy,
            ingest,
            ctx,
            digest,
            media_type,
            rule.as_ref(),
            verified,
        );
    }
    let Some(ledger) = &proxy.ledger else {
        return;
    };
    let head = ctx.method == http::Method::HEAD;
    ledger.record(Record {
        at: crate::ledger::now_ms(),
        image: ctx.image.clone(),
        tag: tag.cloned(),
        digest: digest.clone(),
        upstream: ctx.upstream.key.clone(),
        mode: rule.as_ref().map(|r| r.mode),
        rule,
        verdict,
        admission,
        finding,
        reasons,
        client: ctx.client.clone(),
        head,
    });
}

/// What the ledger keeps of a gate's outcome; `portcullis audit --what-if` compares them.
#[derive(Debug, Clone)]
pub struct Facts {
    pub rule: Option<Arc<Rule>>,
    pub verdict: LedgerVerdict,
    pub admission: Admission,
    pub finding: Finding,
    pub reasons: Reasons,
}

impl Facts {
    pub fn of(outcome: &Outcome) -> Facts {
        let (rule, verdict, admission, finding, reasons) = match outcome {
            Outcome::Unmatched => (
                None,
                LedgerVerdict::Unmatched,
                Admission::Served,
                Finding::None,
                Reasons::None,
            ),
            Outcome::UnmatchedDenied => (
                None,
                LedgerVerdict::Unmatched,
                Admission::Refused,
                Finding::Unmatched,
                Reasons::Text(
                    "no rule matches this repository and unmatched repositories are denied".into(),
                ),
            ),
            Outcome::Off(rule) => (
                Some(rule.clone()),
                LedgerVerdict::Off,
                Admission::Served,
                Finding::None,
                Reasons::None,
            ),
            Outcome::Decided {
                rule,
                verdict,
                decision,
            } => (
                Some(rule.clone()),
                if verdict.verified {
                    LedgerVerdict::Verified
                } else {
                    LedgerVerdict::Unverified
                },
                match decision {
                    Decision::Deny { .. } => Admission::Refused,
                    Decision::Allow | Decision::Audit { .. } => Admission::Served,
                },
                Finding::of(rule, verdict),
                Reasons::Verdict(verdict.clone()),
            ),
            Outcome::Fault { rule, error } => (
                Some(rule.clone()),
                LedgerVerdict::Error,
                if rule.mode == Mode::Enforce {
                    Admission::Refused
                } else {
                    Admission::Served
                },
                Finding::Fault,
                Reasons::Text(error.to_string()),
            ),
        };
        Facts {
            rule,
            verdict,
            admission,
            finding,
            reasons,
        }
    }
}
