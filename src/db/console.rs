//! The console's rows (schema migration 5) and their calls on [`Database`]: the pulls summed per
//! hour, rule, mode, verdict and admission ([`HourRow`], kept by [`Database::add_pulls`] in the
//! transaction that adds the pulls), and the latest full verdict of each digest under each rule
//! ([`VerdictRow`], written by the ledger's writer). Plain strings and integers, as the rest of
//! this layer; what they mean is `ledger`'s and `admin::console`'s.

use std::collections::BTreeMap;

use super::{Database, DbError, PullRow};

/// The pulls of one UTC hour under one (rule, mode, verdict, admission).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HourRow {
    /// Unix seconds of the hour's start.
    pub hour: i64,
    pub rule: String,
    pub mode: String,
    pub verdict: String,
    pub admission: String,
    pub pulls: i64,
}

/// The latest verdict of one digest under one rule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerdictRow {
    pub digest: String,
    pub rule: String,
    /// The image it was first decided for.
    pub image: String,
    pub verified: bool,
    /// Unix milliseconds: when a verdict was first recorded for it, and the latest.
    pub first_decided: i64,
    pub decided_at: i64,
    /// The verdict as JSON.
    pub detail: String,
}

/// The hours a batch of ledger rows adds to: each row's pulls in the hour it was last seen.
pub(super) fn hours_of(rows: &[PullRow]) -> Vec<HourRow> {
    let mut sums: BTreeMap<(i64, &str, &str, &str, &str), i64> = BTreeMap::new();
    for r in rows {
        let hour = r.last_seen.div_euclid(3_600_000) * 3600;
        *sums
            .entry((hour, &r.rule, &r.mode, &r.verdict, &r.admission))
            .or_default() += r.pulls;
    }
    sums.into_iter()
        .map(|((hour, rule, mode, verdict, admission), pulls)| HourRow {
            hour,
            rule: rule.to_owned(),
            mode: mode.to_owned(),
            verdict: verdict.to_owned(),
            admission: admission.to_owned(),
            pulls,
        })
        .collect()
}

pub(super) const UPSERT_HOUR: &str = "INSERT INTO pull_hours (hour, rule, mode, verdict, admission, pulls)
    VALUES ($1, $2, $3, $4, $5, $6)
    ON CONFLICT (hour, rule, mode, verdict, admission) DO UPDATE SET pulls = pull_hours.pulls + excluded.pulls";

pub(super) const UPSERT_VERDICT: &str = "INSERT INTO verdicts
        (digest, rule, image, verified, first_decided, decided_at, detail)
    VALUES ($1, $2, $3, $4, $5, $6, $7)
    ON CONFLICT (digest, rule) DO UPDATE SET verified = excluded.verified,
        decided_at = excluded.decided_at, detail = excluded.detail";

pub(super) const SELECT_VERDICT: &str =
    "SELECT digest, rule, image, verified, first_decided, decided_at, detail FROM verdicts";

impl Database {
    /// The pulls per hour from `since_hour` (unix seconds) on.
    pub async fn pull_hours(&self, since_hour: i64) -> Result<Vec<HourRow>, DbError> {
        match self {
            Database::Sqlite(db) => db.pull_hours(since_hour).await,
            Database::Postgres(db) => db.pull_hours(since_hour).await,
        }
    }

    /// Stores verdicts in one transaction, each replacing the one stored for its (digest, rule)
    /// but for when that was first decided.
    pub async fn put_verdicts(&self, rows: Vec<VerdictRow>) -> Result<(), DbError> {
        if rows.is_empty() {
            return Ok(());
        }
        match self {
            Database::Sqlite(db) => db.put_verdicts(rows).await,
            Database::Postgres(db) => db.put_verdicts(rows).await,
        }
    }

    /// The stored verdicts of `digests`, under every rule.
    pub async fn verdicts_of(&self, digests: Vec<String>) -> Result<Vec<VerdictRow>, DbError> {
        if digests.is_empty() {
            return Ok(Vec::new());
        }
        let sql = format!(
            "{SELECT_VERDICT} WHERE digest IN ({})",
            placeholders(digests.len())
        );
        match self {
            Database::Sqlite(db) => db.verdicts(sql, digests).await,
            Database::Postgres(db) => db.verdicts(&sql, &digests).await,
        }
    }

    /// The verdicts first decided at or after `since` (unix milliseconds), newest first, at most
    /// `limit`.
    pub async fn new_verdicts(&self, since: i64, limit: i64) -> Result<Vec<VerdictRow>, DbError> {
        match self {
            Database::Sqlite(db) => db.new_verdicts(since, limit).await,
            Database::Postgres(db) => db.new_verdicts(since, limit).await,
        }
    }
}

/// `$1, $2, ..., $n` (SQLite reads `$n` as a numbered parameter too).
fn placeholders(n: usize) -> String {
    (1..=n)
        .map(|i| format!("${i}"))
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(rule: &str, verdict: &str, last_seen: i64, pulls: i64) -> PullRow {
        PullRow {
            day: 0,
            image: "docker.io/library/alpine".into(),
            digest: "sha256:00".into(),
            tag: String::new(),
            upstream: "docker.io".into(),
            rule: rule.into(),
            mode: "audit".into(),
            verdict: verdict.into(),
            admission: "served".into(),
            finding: "none".into(),
            client_addr: "10.0.0.1".into(),
            user_agent: String::new(),
            user_name: String::new(),
            reasons: "[]".into(),
            identities: "[]".into(),
            pulls,
            first_seen: last_seen,
            last_seen,
        }
    }

    #[test]
    fn a_batch_sums_into_the_hours_its_rows_were_last_seen() {
        let h = 3_600_000;
        let rows = [
            row("a", "verified", 5 * h + 1, 2),
            row("a", "verified", 5 * h + 9, 3),
            row("a", "verified", 6 * h, 1),
            row("b", "unverified", 5 * h, 4),
        ];
        let hours = hours_of(&rows);
        let got: Vec<(i64, &str, &str, i64)> = hours
            .iter()
            .map(|r| (r.hour, r.rule.as_str(), r.verdict.as_str(), r.pulls))
            .collect();
        assert_eq!(
            got,
            [
                (5 * 3600, "a", "verified", 5),
                (5 * 3600, "b", "unverified", 4),
                (6 * 3600, "a", "verified", 1)
            ]
        );
    }
}
