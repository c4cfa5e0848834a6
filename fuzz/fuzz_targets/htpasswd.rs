//! htpasswd files: every line shape, read as the `auth.htpasswd` file is at start-up.
#![no_main]

use libfuzzer_sys::fuzz_target;
use portcullis::auth::Htpasswd;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        if let Ok(file) = Htpasswd::parse(text) {
            assert!(file.users().count() > 0);
        }
    }
});
