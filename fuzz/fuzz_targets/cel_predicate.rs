//! An unsigned (BuildKit) in-toto statement of any shape, through the checks and every CEL
//! condition of the fixture rule (`Rule::evaluate_attestations` → `Requirement::evaluate`).
#![no_main]

mod common;

use bytes::Bytes;
use libfuzzer_sys::fuzz_target;
use portcullis::signature::{verify, Candidate, CandidateKind};

fuzz_target!(|data: &[u8]| {
    let config = common::config();
    let rule = &config.policies.rules[0];
    let digest = common::digest(common::ATTESTED);
    let candidate = Candidate {
        source: "fuzz".into(),
        kind: CandidateKind::Unsigned {
            statement: Bytes::copy_from_slice(data),
            about: digest.clone(),
        },
    };
    let c = verify::check_all(common::root(), rule, &digest, &[candidate]);
    let v = rule.evaluate(c.signatures, c.checks, c.identities);
    let _ = rule.evaluate_attestations(v, &digest, &c.attestations, &[digest.clone()]);
});
