//! The audit report ("what would enforce have blocked this week?") and the pulls of one image,
//! read from the ledger's database: what audit rules let through unverified, what was refused,
//! and the signature lookup faults, each entry one digest of one image under one rule. The text
//! form ([`AuditReport`]'s `Display`) groups them by rule and image and reads as a to-do list;
//! the JSON form is the same entries, each naming `image` and `digest`.

use std::collections::BTreeMap;
use std::fmt;
use std::time::Duration;

use serde::Serialize;

use super::{Admission, Finding, LedgerVerdict};
use crate::db::{Database, DbError, DigestSummary, Filter};
use crate::policy::Pattern;

/// What a report covers.
#[derive(Debug, Clone)]
pub struct Query {
    pub since: Duration,
    pub rule: Option<String>,
    /// Images matching this pattern (`*` one path segment, `**` any depth), as in `match`.
    pub image: Option<Pattern>,
}

/// One digest of one image under one rule, over the window.
#[derive(Debug, Clone, Serialize)]
pub struct Entry {
    pub image: String,
    pub digest: String,
    /// `None`: no rule matched.
    pub rule: Option<String>,
    pub mode: Option<String>,
    pub verdict: LedgerVerdict,
    pub admission: Admission,
    pub finding: Finding,
    pub tags: Vec<String>,
    pub reasons: Vec<String>,
    /// Signers whose signatures verified cryptographically (allowed or not).
    pub identities: Vec<String>,
    pub pulls: i64,
    /// Distinct clients (address and user) of this digest.
    pub clients: i64,
    /// Distinct clients of the image under this rule and outcome, all its digests together.
    pub image_clients: i64,
    pub first_seen: String,
    pub last_seen: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct AuditReport {
    pub since: String,
    pub until: String,
    /// Served unverified by audit rules: what enforce would refuse.
    pub let_through: Vec<Entry>,
    /// Refused: by enforce rules, or unmatched under `unmatched: deny`.
    pub refused: Vec<Entry>,
    /// Signature lookups that failed (served under audit, refused with 503 under enforce).
    pub faults: Vec<Entry>,
}

#[derive(Debug, thiserror::Error)]
pub enum ReportError {
    #[error("reading the ledger: {0}")]
    Db(#[from] DbError),
    #[error("the ledger holds a row this version cannot read: {0}")]
    Row(String),
}

/// The audit report over the window.
pub async fn audit(db: &Database, q: &Query) -> Result<AuditReport, ReportError> {
    let now = super::now_ms();
    let since = now - q.since.as_millis() as i64;
    let filter = Filter {
        since,
        rule: q.rule.clone(),
        image: None,
        findings_only: true,
    };
    let (digests, clients) = db.summaries(&filter).await?;
    let clients: BTreeMap<(String, String, String, String), i64> = clients
        .into_iter()
        .map(|c| ((c.image, c.rule, c.verdict, c.admission), c.clients))
        .collect();
    let mut report = AuditReport {
        since: timestamp(since),
        until: timestamp(now),
        let_through: Vec::new(),
        refused: Vec::new(),
        faults: Vec::new(),
    };
    for d in digests {
        if q.image.as_ref().is_some_and(|p| !p.is_match(&d.image)) {
            continue;
        }
        let key = (
            d.image.clone(),
            d.rule.clone(),
            d.verdict.clone(),
            d.admission.clone(),
        );
        let image_clients = clients.get(&key).copied().unwrap_or(d.clients);
        let e = entry(d, image_clients)?;
        match (e.verdict, e.admission) {
            (LedgerVerdict::Error, _) => report.faults.push(e),
            (_, Admission::Refused) => report.refused.push(e),
            (_, Admission::Served) => report.let_through.push(e),
        }
    }
    for list in [
        &mut report.let_through,
        &mut report.refused,
        &mut report.faults,
    ] {
        list.sort_by(|a, b| {
            (&a.rule, &a.image, &b.last_seen).cmp(&(&b.rule, &b.image, &a.last_seen))
        });
    }
    Ok(report)
}

/// The pulls of one image: its digests with their verdicts, and its clients.
#[derive(Debug, Clone, Serialize)]
pub struct ImagePulls {
    pub image: String,
    pub since: String,
    pub digests: Vec<Entry>,
    pub clients: Vec<ClientEntry>,
}

#[derive(Debug, Clone, Serialize)]
pub struct ClientEntry {
    pub address: String,
    pub user_agent: String,
    pub user: Option<String>,
    pub pulls: i64,
    pub first_seen: String,
    pub last_seen: String,
}

/// How many clients the image view lists.
const MAX_CLIENTS: i64 = 200;

pub async fn image(db: &Database, image: &str, since: Duration) -> Result<ImagePulls, ReportError> {
    let now = super::now_ms();
    let since = now - since.as_millis() as i64;
    let filter = Filter {
        since,
        rule: None,
        image: Some(image.to_owned()),
        findings_only: false,
    };
    let mut digests = Vec::new();
    for d in db.digests(&filter).await? {
        let clients = d.clients;
        digests.push(entry(d, clients)?);
    }
    digests.sort_by(|a, b| b.last_seen.cmp(&a.last_seen));
    let clients = db
        .clients_of(image, since, MAX_CLIENTS)
        .await?
        .into_iter()
        .map(|c| ClientEntry {
            address: c.client_addr,
            user_agent: c.user_agent,
            user: Some(c.user_name).filter(|u| !u.is_empty()),
            pulls: c.pulls,
            first_seen: timestamp(c.first_seen),
            last_seen: timestamp(c.last_seen),
        })
        .collect();
    Ok(ImagePulls {
        image: image.to_owned(),
        since: timestamp(since),
        digests,
        clients,
    })
}

fn entry(d: DigestSummary, image_clients: i64) -> Result<Entry, ReportError> {
    let bad = |what: &str, v: &str| ReportError::Row(format!("{what} {v:?}"));
    let list = |s: &str| serde_json::from_str::<Vec<String>>(s).unwrap_or_default();
    Ok(Entry {
        verdict: LedgerVerdict::parse(&d.verdict).ok_or_else(|| bad("verdict", &d.verdict))?,
        admission: Admission::parse(&d.admission).ok_or_else(|| bad("admission", &d.admission))?,
        finding: Finding::parse(&d.finding).ok_or_else(|| bad("finding", &d.finding))?,
        rule: Some(d.rule).filter(|r| !r.is_empty()),
        mode: Some(d.mode).filter(|m| !m.is_empty()),
        tags: d.tags,
        reasons: list(&d.reasons),
        identities: list(&d.identities),
        pulls: d.pulls,
        clients: d.clients,
        image_clients,
        first_seen: timestamp(d.first_seen),
        last_seen: timestamp(d.last_seen),
        image: d.image,
        digest: d.digest,
    })
}

/// RFC 3339, UTC, to the second.
pub fn timestamp(ms: i64) -> String {
    jiff::Timestamp::from_millisecond(ms)
        .map(|t| t.round(jiff::Unit::Second).unwrap_or(t).to_string())
        .unwrap_or_else(|_| ms.to_string())
}

// === impl Display ===

impl fmt::Display for AuditReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "Audit of {} to {}", self.since, self.until)?;
        section(
            f,
            "Let through unverified by audit rules (enforce would refuse these)",
            &self.let_through,
        )?;
        section(f, "Refused", &self.refused)?;
        section(
            f,
            "Signature lookup faults (neither signed nor unsigned: check the upstream)",
            &self.faults,
        )?;
        if self.let_through.is_empty() && self.refused.is_empty() && self.faults.is_empty() {
            writeln!(
                f,
                "\nNothing to do: every pull in the window was verified (or not checked)."
            )?;
        }
        Ok(())
    }
}

/// An image's digests, in the order the entries came.
pub type Images<'a> = Vec<(String, Vec<&'a Entry>)>;

/// Entries grouped by rule (`rule NAME (MODE)`, or `no rule (unmatched)`), then by image, in
/// the order they came (the report's: by rule and image).
pub fn grouped(entries: &[Entry]) -> Vec<(String, Images<'_>)> {
    let mut rules: Vec<(String, Images)> = Vec::new();
    for e in entries {
        let rule = match (&e.rule, &e.mode) {
            (Some(r), Some(m)) => format!("rule {r} ({m})"),
            (Some(r), None) => format!("rule {r}"),
            _ => "no rule (unmatched)".to_owned(),
        };
        if rules.last().is_none_or(|(r, _)| *r != rule) {
            rules.push((rule, Vec::new()));
        }
        if let Some((_, images)) = rules.last_mut() {
            if images.last().is_none_or(|(i, _)| *i != e.image) {
                images.push((e.image.clone(), Vec::new()));
            }
            if let Some((_, digests)) = images.last_mut() {
                digests.push(e);
            }
        }
    }
    rules
}

/// What a rule's images have: "3 images are unsigned, 1 image is signed by an unexpected
/// identity" (each image counted by the finding of its latest digest).
pub fn findings_summary(images: &Images<'_>) -> String {
    let mut by_finding: BTreeMap<Finding, usize> = BTreeMap::new();
    for (_, digests) in images {
        if let Some(first) = digests.first() {
            *by_finding.entry(first.finding).or_default() += 1;
        }
    }
    by_finding
        .iter()
        .map(|(finding, n)| {
            let verb = if *n == 1 { "is" } else { "are" };
            let noun = if *n == 1 { "image" } else { "images" };
            format!("{n} {noun} {verb} {}", finding.phrase())
        })
        .collect::<Vec<_>>()
        .join(", ")
}

fn section(f: &mut fmt::Formatter<'_>, title: &str, entries: &[Entry]) -> fmt::Result {
    if entries.is_empty() {
        return Ok(());
    }
    let rules = grouped(entries);
    let images: usize = rules.iter().map(|(_, i)| i.len()).sum();
    writeln!(f, "\n{title}: {images} image(s)")?;
    for (rule, images) in &rules {
        writeln!(f, "  {rule}: {}", findings_summary(images))?;
        for (image, digests) in images {
            let first = digests[0];
            let pulls: i64 = digests.iter().map(|d| d.pulls).sum();
            writeln!(
                f,
                "    [ ] {image}: {}; {pulls} pull(s) from {} client(s)",
                first.finding.phrase(),
                first.image_clients
            )?;
            for d in digests {
                let tags = if d.tags.is_empty() {
                    String::new()
                } else {
                    format!(" ({})", d.tags.join(", "))
                };
                writeln!(
                    f,
                    "        {}{tags}: {} pull(s), {} client(s), first {}, last {}",
                    d.digest, d.pulls, d.clients, d.first_seen, d.last_seen
                )?;
                for r in &d.reasons {
                    writeln!(f, "          reason: {r}")?;
                }
                if d.finding == Finding::UnexpectedSigner {
                    for id in &d.identities {
                        writeln!(f, "          signed by: {id}")?;
                    }
                }
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::db::PullRow;

    fn row(image: &str, rule: &str, mode: &str, verdict: &str, admission: &str) -> PullRow {
        PullRow {
            day: 0,
            image: image.into(),
            digest: format!("sha256:{}", "b".repeat(64)),
            tag: "v1".into(),
            upstream: "docker.io".into(),
            rule: rule.into(),
            mode: mode.into(),
            verdict: verdict.into(),
            admission: admission.into(),
            finding: if verdict == "verified" {
                "none"
            } else {
                "unsigned"
            }
            .into(),
            client_addr: "10.0.0.1".into(),
            user_agent: "skopeo".into(),
            user_name: String::new(),
            reasons: r#"["no signatures found"]"#.into(),
            identities: "[]".into(),
            pulls: 2,
            first_seen: super::super::now_ms(),
            last_seen: super::super::now_ms(),
        }
    }

    #[tokio::test]
    async fn groups_let_through_refused_and_faults() {
        let dir = tempfile::tempdir().unwrap();
        let db = Database::Sqlite(
            crate::db::sqlite::Sqlite::open(dir.path().join("p.db"))
                .await
                .unwrap(),
        );
        db.add_pulls(vec![
            row(
                "docker.io/company/app",
                "company",
                "audit",
                "unverified",
                "served",
            ),
            row(
                "docker.io/company/ok",
                "company",
                "audit",
                "verified",
                "served",
            ),
            row(
                "docker.io/prod/api",
                "prod",
                "enforce",
                "unverified",
                "refused",
            ),
            row("docker.io/prod/db", "prod", "enforce", "error", "refused"),
        ])
        .await
        .unwrap();
        let q = Query {
            since: Duration::from_secs(7 * 86400),
            rule: None,
            image: None,
        };
        let r = audit(&db, &q).await.unwrap();
        assert_eq!(r.let_through.len(), 1);
        assert_eq!(r.let_through[0].image, "docker.io/company/app");
        assert_eq!(r.refused.len(), 1);
        assert_eq!(r.faults.len(), 1);
        let text = r.to_string();
        assert!(
            text.contains("rule company (audit): 1 image is unsigned"),
            "{text}"
        );
        assert!(text.contains("[ ] docker.io/company/app: unsigned; 2 pull(s) from 1 client(s)"));
        let q = Query {
            image: Some(Pattern::new("docker.io/prod/*").unwrap()),
            ..q
        };
        let r = audit(&db, &q).await.unwrap();
        assert!(r.let_through.is_empty());
        assert_eq!(r.refused.len() + r.faults.len(), 2);
        let json = serde_json::to_value(&r).unwrap();
        assert_eq!(json["refused"][0]["image"], "docker.io/prod/api");
        assert!(json["refused"][0]["digest"].is_string());
    }
}
