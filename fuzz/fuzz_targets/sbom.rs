//! An SBOM document as an upstream serves it (SPDX 2.2/2.3 JSON, SPDX 3.0 JSON-LD, CycloneDX
//! JSON, or anything else): read into packages or rejected with a reason, never a panic. Seeds:
//! syft's SPDX 2.2, 2.3 and CycloneDX 1.6 output, the attestation fixtures' SPDX document and an
//! SPDX 3.0 graph.
#![no_main]

use libfuzzer_sys::fuzz_target;
use portcullis::inventory::sbom;

fuzz_target!(|data: &[u8]| {
    match sbom::parse(data) {
        Ok(s) => assert!(s.packages.len() <= sbom::MAX_PACKAGES),
        Err(e) => assert!(!e.to_string().is_empty()),
    }
});
