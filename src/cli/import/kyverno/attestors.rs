//! Kyverno attestor sets (`attestors[].entries[]`: keys, keyless, certificates, nested sets)
//! as portcullis attestors and one count, with what cannot be carried over noted on the rule.

use super::schema::{AttestorSet, CtLog, Keyless, Keys, Rekor};
use crate::cli::import::glob;
use crate::cli::import::identity::{identity, Plain};
use crate::cli::import::output::{Attestor, Rule};
use crate::cli::import::DocError;

const PUBLIC_REKOR: &str = "https://rekor.sigstore.dev";

/// Several attestor sets, each `(attestors, required)`, as one list and one count.
pub fn combine(
    sets: Vec<(Vec<Attestor>, usize)>,
    rule: &mut Rule,
) -> (Vec<Attestor>, Option<usize>) {
    let every_one_required = sets.iter().all(|(a, n)| *n >= a.len());
    let several = sets.len() > 1;
    let required: usize = sets.iter().map(|(a, n)| (*n).min(a.len())).sum();
    let attestors: Vec<Attestor> = sets.into_iter().flat_map(|(a, _)| a).collect();
    if several && !every_one_required {
        rule.not_carried.push(format!(
            "several attestor sets with their own counts: portcullis has one count per rule, here {required} of {}",
            attestors.len()
        ));
    }
    let count = (required > 1).then_some(required);
    (attestors, count)
}

pub fn attestor_set(
    set: &AttestorSet,
    field: &str,
    rule: &mut Rule,
) -> Result<(Vec<Attestor>, usize), DocError> {
    let mut out = Vec::new();
    let mut written = 0;
    for (ei, e) in set.entries.iter().enumerate() {
        let efield = format!("{field}.entries[{ei}]");
        let kinds = [
            e.keys.is_some(),
            e.keyless.is_some(),
            e.certificates.is_some(),
            e.attestor.is_some(),
        ];
        if kinds.iter().filter(|k| **k).count() != 1 {
            return Err(DocError::Value {
                field: efield,
                reason: "exactly one of keys, keyless, certificates and attestor is required"
                    .into(),
            });
        }
        if e.annotations.is_some() {
            rule.not_carried
                .push(format!("{efield}.annotations: not checked by portcullis"));
        }
        if let Some(repo) = &e.repository {
            let repo = glob::canonical_repository(repo);
            match &rule.signature_repository {
                Some(r) if *r != repo => rule.not_carried.push(format!(
                    "{efield}.repository {repo:?}: portcullis has one signature repository per rule"
                )),
                _ => rule.signature_repository = Some(repo),
            }
        }
        check_algorithm(
            e.signature_algorithm.as_deref(),
            &format!("{efield}.signatureAlgorithm"),
            rule,
        );
        if let Some(keys) = &e.keys {
            let before = out.len();
            out.extend(static_keys(keys, &format!("{efield}.keys"), rule)?);
            written += (out.len() - before).max(1);
        } else if let Some(k) = &e.keyless {
            out.extend(keyless(k, &format!("{efield}.keyless"), rule)?);
            written += 1;
        } else if e.certificates.is_some() {
            rule.not_carried.push(format!(
                "{efield}.certificates: certificate attestors are not supported (use keyless identities or a key)"
            ));
            written += 1;
        } else {
            rule.not_carried.push(format!(
                "{efield}.attestor: nested attestor sets are not translated"
            ));
            written += 1;
        }
    }
    let required = set.count.unwrap_or(written);
    if required > written {
        return Err(DocError::Value {
            field: format!("{field}.count"),
            reason: format!("count {required} is more than the {written} entries"),
        });
    }
    Ok((out, required.max(1)))
}

fn check_algorithm(alg: Option<&str>, field: &str, rule: &mut Rule) {
    if let Some(a) = alg {
        if a != "sha256" {
            rule.not_carried.push(format!(
                "{field} {a:?}: portcullis checks SHA-256 signatures"
            ));
        }
    }
}

fn static_keys(k: &Keys, field: &str, rule: &mut Rule) -> Result<Vec<Attestor>, DocError> {
    check_algorithm(
        k.signature_algorithm.as_deref(),
        &format!("{field}.signatureAlgorithm"),
        rule,
    );
    let mut ignore_tlog = false;
    if let Some(r) = &k.rekor {
        if r.ignore_tlog == Some(true) {
            ignore_tlog = true;
            rule.notes.push(format!(
                "{field}.rekor.ignoreTlog: carried over as ignore_tlog: true (key signatures without a Rekor entry are accepted)"
            ));
        }
        rekor_elsewhere(r, field, rule);
    }
    if let Some(c) = &k.ctlog {
        ctlog(c, field, rule);
    }
    if let Some(kms) = &k.kms {
        rule.not_carried.push(format!(
            "{field}.kms {kms:?}: export the public key (`cosign public-key --key {kms}`) and add it as a key attestor"
        ));
    }
    if k.secret.is_some() {
        rule.not_carried.push(format!(
            "{field}.secret: a Kubernetes Secret's key cannot be read here; add its cosign.pub as a key attestor"
        ));
    }
    let mut out = Vec::new();
    if let Some(pem) = &k.public_keys {
        for key in split_keys(pem, &format!("{field}.publicKeys"), rule)? {
            out.push(match key {
                Attestor::Key { pem, .. } => Attestor::Key { pem, ignore_tlog },
                other => other,
            });
        }
    }
    Ok(out)
}

/// The PEM blocks of a `publicKeys` value; a Secret reference or a variable is not carried over.
pub fn split_keys(text: &str, field: &str, rule: &mut Rule) -> Result<Vec<Attestor>, DocError> {
    let t = text.trim();
    if t.starts_with("k8s://") || t.contains("{{") || !t.starts_with("-----BEGIN") {
        rule.not_carried.push(format!(
            "{field} {t:?} is not PEM text (a Secret reference, KMS URI or variable); add the public key as a key attestor"
        ));
        return Ok(Vec::new());
    }
    let mut out = Vec::new();
    let mut block = String::new();
    for line in t.lines().map(str::trim).filter(|l| !l.is_empty()) {
        block.push_str(line);
        block.push('\n');
        if line.starts_with("-----END") {
            out.push(Attestor::Key {
                pem: std::mem::take(&mut block),
                ignore_tlog: false,
            });
        }
    }
    if !block.is_empty() {
        return Err(DocError::Value {
            field: field.to_owned(),
            reason: "a PEM block has no END line".into(),
        });
    }
    Ok(out)
}

fn rekor_elsewhere(r: &Rekor, field: &str, rule: &mut Rule) {
    if let Some(url) = r
        .url
        .as_deref()
        .filter(|u| !u.is_empty() && u.trim_end_matches('/') != PUBLIC_REKOR)
    {
        rule.not_carried.push(format!(
            "{field}.rekor.url {url:?}: set trusted_root to that Sigstore instance's trusted root"
        ));
    }
    if r.pubkey.is_some() {
        rule.not_carried.push(format!(
            "{field}.rekor.pubkey: put the log's key in a trusted_root"
        ));
    }
}

fn ctlog(c: &CtLog, field: &str, rule: &mut Rule) {
    if c.ignore_sct == Some(true) {
        rule.not_carried.push(format!(
            "{field}.ctlog.ignoreSCT: portcullis always checks the certificate's SCT"
        ));
    }
    if c.pubkey.is_some() || c.tsa_cert_chain.is_some() {
        rule.not_carried.push(format!(
            "{field}.ctlog pubkey / tsaCertChain: put them in a trusted_root"
        ));
    }
}

pub fn keyless(k: &Keyless, field: &str, rule: &mut Rule) -> Result<Vec<Attestor>, DocError> {
    if let Some(r) = &k.rekor {
        if r.ignore_tlog == Some(true) {
            rule.not_carried.push(format!(
                "{field}.rekor.ignoreTlog: keyless signatures are always checked against the transparency log"
            ));
        }
        rekor_elsewhere(r, field, rule);
    }
    if let Some(c) = &k.ctlog {
        ctlog(c, field, rule);
    }
    if k.roots.is_some() {
        rule.not_carried.push(format!(
            "{field}.roots: set trusted_root for a private Fulcio"
        ));
    }
    if let Some(ext) = &k.additional_extensions {
        rule.not_carried.push(format!(
            "{field}.additionalExtensions {:?}: certificate extensions are not checked by portcullis",
            ext.keys().collect::<Vec<_>>()
        ));
    }
    let subject = identity(
        Plain::Wildcard,
        k.subject.as_deref(),
        k.subject_regexp.as_deref(),
        &format!("{field}.subject"),
        rule,
    )?;
    let issuer = identity(
        Plain::Wildcard,
        k.issuer.as_deref(),
        k.issuer_regexp.as_deref(),
        &format!("{field}.issuer"),
        rule,
    )?;
    Ok(vec![Attestor::Keyless { subject, issuer }])
}
