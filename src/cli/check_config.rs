//! `portcullis check-config`: the validated configuration in words (never a secret) and, for an
//! image name, which upstream and repository it maps to and which rule applies, and why.
//! Printing only: loading and validating is `config`'s, selection `policy`'s.

use std::fmt::Write as _;

use crate::config::{Config, ConfigError};
use crate::policy::Attestor;
use crate::upstream::explain::{explain, unmatched_name};

/// What `check-config` prints: the validated configuration in words (never a secret) and, for
/// an image name, which upstream and repository it maps to.
pub fn describe(config: &Config, image: Option<&str>) -> Result<String, ConfigError> {
    let mut out = String::new();
    // Writing to a String cannot fail.
    let _ = writeln!(out, "configuration {} is valid", config.source);
    let _ = writeln!(
        out,
        "listen: {}{}",
        config.listen,
        if config.tls.is_some() { " (TLS)" } else { "" }
    );
    let admin = match (&config.admin.token, config.admin.open.as_slice()) {
        (None, _) => " (no token: loopback only)".to_owned(),
        (Some(_), []) => " (token required)".to_owned(),
        (Some(_), open) => {
            let open: Vec<&str> = open.iter().map(|e| e.path()).collect();
            format!(" (token required, except {})", open.join(", "))
        }
    };
    let _ = writeln!(out, "admin_listen: {}{admin}", config.admin_listen);
    let clients = match &config.auth {
        None => "anyone who can connect".to_owned(),
        Some(a) => {
            let mut ways = Vec::new();
            if let Some(h) = &a.htpasswd {
                ways.push(format!("htpasswd ({} users)", h.users().count()));
            }
            if a.client_certificates {
                ways.push("client certificates".to_owned());
            }
            let access = match a.access.len() {
                0 => "every user pulls everything".to_owned(),
                n => format!("{n} access entries, unmatched images refused"),
            };
            format!("{}; {access}", ways.join(" or "))
        }
    };
    let _ = writeln!(out, "who may pull: {clients}");
    let retention = config.ledger.retention.as_secs();
    let kept = if retention.is_multiple_of(86_400) {
        format!("{}d", retention / 86_400)
    } else {
        humantime::format_duration(config.ledger.retention).to_string()
    };
    let _ = writeln!(
        out,
        "ledger: {}, records kept {kept}",
        config.database.describe()
    );
    let _ = writeln!(out, "default_upstream: {}", config.default_upstream);
    let _ = writeln!(out, "upstreams:");
    for (key, up) in &config.upstreams {
        let auth = match &up.credentials {
            None => "anonymous".to_owned(),
            Some(c) => format!("user {} ({})", c.username, c.origin),
        };
        let ca = if up.ca_certs.is_empty() {
            String::new()
        } else {
            format!(", {} extra CA certificate(s)", up.ca_certs.len())
        };
        let tags = match (up.tag_ttl, up.serve_stale_tags) {
            (None, false) => String::new(),
            (ttl, stale) => {
                let mut parts = Vec::new();
                if let Some(t) = ttl {
                    parts.push(format!("tags trusted for {t:?}"));
                }
                if stale {
                    parts.push("stale tags served while unreachable".to_owned());
                }
                format!(", {}", parts.join(", "))
            }
        };
        let _ = writeln!(out, "  {key}: {} [{auth}{ca}{tags}]", up.url);
    }
    let _ = writeln!(out, "trusted_root: {}", config.trusted_root.origin);
    let _ = writeln!(
        out,
        "cache: verdict_ttl {:?}, failure_ttl {:?}, max_verdicts {}, manifest_bytes {}",
        config.cache.verdict_ttl,
        config.cache.failure_ttl,
        config.cache.max_verdicts,
        config.cache.manifest_bytes
    );
    let _ = writeln!(out, "storage: {}", config.storage);
    let _ = writeln!(
        out,
        "unmatched: {}",
        unmatched_name(config.policies.unmatched)
    );
    let _ = writeln!(out, "policies:");
    for rule in &config.policies.rules {
        let patterns: Vec<&str> = rule.patterns.iter().map(|p| p.as_str()).collect();
        let _ = writeln!(
            out,
            "  {}: {} [{}], {} of {} attestor(s){}",
            rule.name,
            rule.mode.as_str(),
            patterns.join(", "),
            rule.count.min(rule.attestors.len()),
            rule.attestors.len(),
            rule.signature_repository
                .as_ref()
                .map(|r| format!(", signatures in {r}"))
                .unwrap_or_default()
        );
        for a in &rule.attestations {
            let _ = writeln!(
                out,
                "    attestation {}: {}{}",
                a.name,
                a.predicate_types.join(" or "),
                if a.allow_unsigned {
                    ", unsigned BuildKit attestations accepted"
                } else {
                    ""
                }
            );
            for (i, c) in a.conditions.iter().enumerate() {
                let _ = writeln!(out, "      condition {}: {}", i + 1, c.source);
            }
        }
        for (i, a) in rule.attestors.iter().enumerate() {
            let _ = writeln!(out, "    attestor {}: {a}", i + 1);
            if let Attestor::Key {
                insecure_ignore_tlog: true,
                ..
            } = a
            {
                let _ = writeln!(
                    out,
                    "      WARNING: ignore_tlog accepts key signatures that were never logged in Rekor"
                );
            }
        }
    }
    if let Some(image) = image {
        let _ = write!(out, "{}", explain(config, image)?);
    }
    Ok(out)
}
