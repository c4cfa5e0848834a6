//! A manifest or index from an upstream, as the proxy reads it: the `mediaType` field, the
//! digests it references (covered by its verdict), and an index's platform children.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = portcullis::registry_api::manifest::media_type_field(data);
    let referenced = portcullis::signature::referenced(data, 64);
    assert!(referenced.len() <= 64);
    let _ = portcullis::signature::discovery::platform_children(data);
});
