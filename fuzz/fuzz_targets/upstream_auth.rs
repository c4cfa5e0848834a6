//! What an upstream says about authentication: a `WWW-Authenticate` challenge and a token
//! response body.
#![no_main]

use libfuzzer_sys::fuzz_target;
use portcullis::upstream::auth::{parse_challenge, TokenResponse};

fuzz_target!(|data: &[u8]| {
    if let Ok(h) = http::HeaderValue::from_bytes(data) {
        let _ = parse_challenge(Some(&h), true);
        let _ = parse_challenge(Some(&h), false);
    }
    if let Ok(t) = serde_json::from_slice::<TokenResponse>(data) {
        let _ = t.into_token();
    }
});
