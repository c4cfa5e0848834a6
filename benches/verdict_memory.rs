//! How much memory 100 000 cached verdicts hold (issue target: < 256 MiB resident).
//!
//! Fills the proxy's own `VerdictCache` with realistic verified verdicts (a keyless signer, its
//! evidence, a signature report) under distinct digests, as a busy cluster would after pulling
//! 100 000 distinct images, and prints the process's resident set before and after, measured
//! against the same run's baseline. Run: `cargo bench --bench verdict_memory`.

use std::sync::Arc;
use std::time::Duration;

use portcullis::config::CacheSettings;
use portcullis::metrics::Metrics;
use portcullis::oci::Digest;
use portcullis::policy::{Evidence, Fingerprint, SignatureReport, Verdict};
use portcullis::signature::{VerdictCache, VerdictKey};

const VERDICTS: u64 = 100_000;

/// The resident set in KiB; the bench fails rather than report a number it could not read.
fn rss_kib() -> u64 {
    let status = match std::fs::read_to_string("/proc/self/status") {
        Ok(s) => s,
        Err(e) => {
            eprintln!("verdict_memory: cannot read /proc/self/status: {e}");
            std::process::exit(1);
        }
    };
    match status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
    {
        Some(kib) if kib > 0 => kib,
        _ => {
            eprintln!("verdict_memory: no VmRSS in /proc/self/status");
            std::process::exit(1);
        }
    }
}

fn verdict(i: u64) -> Verdict {
    let signer = format!(
        "https://github.com/company/service-{i}/.github/workflows/release.yml@refs/heads/main (issuer https://token.actions.githubusercontent.com)"
    );
    Verdict {
        verified: true,
        reasons: Vec::new(),
        evidence: vec![Evidence {
            attestor: 1,
            source: format!("bundle referrer sha256:{:064x}", i),
            signer: signer.clone(),
        }],
        identities: vec![signer.clone()],
        signatures: 1,
        attestations: Vec::new(),
        signature_reports: vec![SignatureReport {
            source: format!("bundle referrer sha256:{:064x}", i),
            verified_by: Some(format!("attestor 1: {signer}")),
            errors: Vec::new(),
        }],
    }
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let settings = CacheSettings {
        verdict_ttl: Duration::from_secs(3600),
        failure_ttl: Duration::from_secs(30),
        max_verdicts: VERDICTS,
        manifest_bytes: 32 * 1024 * 1024,
    };
    let cache = VerdictCache::new(&settings, Arc::new(Metrics::new()));
    let before = rss_kib();
    let signatures: Arc<str> = Arc::from("ghcr.io/company/service");
    for i in 0..VERDICTS {
        let digest: Digest = format!("sha256:{:064x}", i * 7919 + 1).parse().unwrap();
        let key = VerdictKey {
            digest,
            rule: Fingerprint([7; 32]),
            root: [9; 32],
            signatures: signatures.clone(),
        };
        let v = Arc::new(verdict(i));
        let _ = cache
            .get_or_compute(key, async move { Ok::<_, ()>(v) })
            .await;
    }
    let held = cache.entry_count().await;
    let after = rss_kib();
    let mib = |k: u64| k as f64 / 1024.0;
    println!(
        "verdict_memory: rss_mib={:.1} verdicts={held} baseline_mib={:.1} added_mib={:.1} bytes_per_verdict={}",
        mib(after),
        mib(before),
        mib(after.saturating_sub(before)),
        (after.saturating_sub(before) * 1024) / held.max(1)
    );
}
