//! A configuration file (YAML), read and validated as `Config::load` does, without the
//! environment. Files it names resolve against the fixtures directory.
#![no_main]

mod common;

use libfuzzer_sys::fuzz_target;
use portcullis::config::{Config, Source};

fuzz_target!(|data: &[u8]| {
    let Ok(yaml) = std::str::from_utf8(data) else {
        return;
    };
    let source = Source::File(format!("{}/fuzz.yaml", common::FIXTURES).into());
    let _ = Config::from_yaml(yaml, source);
});
