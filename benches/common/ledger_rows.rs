//! The aggregated pull records the benchmarks seed a ledger with: 10 000 images, 100 clients
//! each, spread over the last 7 days; 90 % verified, 6 % let through unverified by an audit
//! rule, 3 % refused, 1 % lookup faults. Each image has three digests ([`digest`]). Shared by
//! `benches/ledger_audit.rs` and `benches/inventory.rs`.

use portcullis::db::PullRow;

pub const IMAGES: usize = 10_000;
const CLIENTS: usize = 100;
const BATCH: usize = 10_000;

/// The name of image `image`.
pub fn image(image: usize) -> String {
    format!("docker.io/company/service-{image}")
}

/// Digest `variant` (0, 1 or 2) of image `image`.
pub fn digest(image: usize, variant: usize) -> String {
    format!("sha256:{:064x}", image * 31 + variant)
}

/// `total` rows in batches, last seen up to 7 days before `now` (ms).
pub fn rows(total: usize, now: i64) -> impl Iterator<Item = Vec<PullRow>> {
    (0..total).step_by(BATCH).map(move |start| {
        (start..(start + BATCH).min(total))
            .map(|n| {
                let image_n = n % IMAGES;
                let client = n / IMAGES % CLIENTS;
                let seen = now - ((n as i64 * 7919) % (7 * 86_400_000));
                let (rule, mode, verdict, admission, finding) = match n % 100 {
                    0..=89 => ("company", "enforce", "verified", "served", "none"),
                    90..=95 => ("team", "audit", "unverified", "served", "unsigned"),
                    96..=98 => (
                        "company",
                        "enforce",
                        "unverified",
                        "refused",
                        "unexpected_signer",
                    ),
                    _ => ("team", "audit", "error", "served", "fault"),
                };
                PullRow {
                    day: seen.div_euclid(86_400_000) * 86_400,
                    image: image(image_n),
                    digest: digest(image_n, n % 3),
                    tag: format!("v{}", n % 3),
                    upstream: "docker.io".into(),
                    rule: rule.into(),
                    mode: mode.into(),
                    verdict: verdict.into(),
                    admission: admission.into(),
                    finding: finding.into(),
                    client_addr: format!("10.0.{}.{}", client / 250, client % 250),
                    user_agent: "containerd/1.7.20".into(),
                    user_name: String::new(),
                    reasons: r#"["no signatures found"]"#.into(),
                    identities: "[]".into(),
                    pulls: 1 + (n % 5) as i64,
                    first_seen: seen,
                    last_seen: seen,
                }
            })
            .collect()
    })
}
