//! A cosign `.sig` or `.att` layer (`{payload: base64, annotations}` or `{envelope, annotations}`,
//! the fixtures' shape) turned into a bundle and checked like any candidate.
#![no_main]

mod common;

use std::collections::BTreeMap;

use base64::Engine as _;
use bytes::Bytes;
use libfuzzer_sys::fuzz_target;
use portcullis::signature::legacy::{attestation_bundle, LegacySignature};
use portcullis::signature::{verify, Candidate, CandidateKind};

#[derive(serde::Deserialize)]
struct Layer {
    payload: Option<String>,
    envelope: Option<String>,
    #[serde(default)]
    annotations: BTreeMap<String, String>,
}

fuzz_target!(|data: &[u8]| {
    let Ok(layer) = serde_json::from_slice::<Layer>(data) else {
        return;
    };
    let config = common::config();
    let digest = common::digest(common::ATTESTED_LEGACY);
    let mut candidates = Vec::new();
    if let Some(p) = layer.payload {
        let payload = base64::engine::general_purpose::STANDARD
            .decode(p.trim())
            .unwrap_or_else(|_| p.into_bytes());
        if let Ok(sig) = LegacySignature::parse(&layer.annotations) {
            let _ = sig.to_bundle(&payload);
        }
        candidates.push(CandidateKind::Legacy {
            payload: Bytes::from(payload),
            annotations: layer.annotations.clone(),
        });
    }
    if let Some(e) = layer.envelope {
        let _ = attestation_bundle(e.as_bytes(), &layer.annotations);
        candidates.push(CandidateKind::LegacyAttestation {
            envelope: Bytes::from(e),
            annotations: layer.annotations,
        });
    }
    let candidates: Vec<Candidate> = candidates
        .into_iter()
        .map(|kind| Candidate {
            source: "fuzz".into(),
            kind,
        })
        .collect();
    let rule = &config.policies.rules[0];
    let _ = verify::check_all(common::root(), rule, &digest, &candidates);
});
