//! A referrers API page or referrers tag-schema index (its bundle referrers), and the `Link`
//! header that pages it (which must stay on the upstream).
#![no_main]

use libfuzzer_sys::fuzz_target;
use portcullis::signature::discovery::{bundle_referrers_in, next_page};

fuzz_target!(|data: &[u8]| {
    let _ = bundle_referrers_in(data);
    if let Ok(link) = http::HeaderValue::from_bytes(data) {
        if let Some(next) = next_page(&link) {
            assert!(next.starts_with("/v2/"), "{next}");
        }
    }
});
