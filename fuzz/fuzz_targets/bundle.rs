//! A Sigstore bundle from a referrer, checked against the fixture rule (DSSE statement or
//! message signature, keyless or key, Rekor v1 or v2 entries).
#![no_main]

mod common;

use bytes::Bytes;
use libfuzzer_sys::fuzz_target;
use portcullis::signature::{verify, Candidate, CandidateKind};

fuzz_target!(|data: &[u8]| {
    let config = common::config();
    let digest = common::digest(common::ATTESTED);
    let candidate = Candidate {
        source: "fuzz".into(),
        kind: CandidateKind::Bundle(Bytes::copy_from_slice(data)),
    };
    let _ = verify::check_all(
        common::root(),
        &config.policies.rules[0],
        &digest,
        &[candidate],
    );
});
