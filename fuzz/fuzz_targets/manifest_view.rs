//! A manifest or index from an upstream, as the proxy reads it: the one parsed view
//! (`oci::Document`) under every reading, the `mediaType` field, the digests it references
//! (covered by its verdict), and an index's platform and attestation children.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = portcullis::registry_api::manifest::fetch::media_type_field(data);
    let referenced = portcullis::signature::referenced(data, 64);
    assert!(referenced.len() <= 64);
    use portcullis::oci::{Document, Reading};
    for reading in [
        Reading::Lenient,
        Reading::References,
        Reading::Index,
        Reading::Manifest,
    ] {
        if let Ok(doc) = Document::parse(data, reading) {
            assert!(doc.referenced(64).len() <= 64);
            let _ = doc.platform_children().count() + doc.attestation_children().count();
        }
    }
});
