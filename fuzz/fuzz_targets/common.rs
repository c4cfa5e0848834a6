//! What the fuzz targets share: the fixture configuration (fuzz.yaml) and its trusted root loaded
//! once, and the digests of the fixture images the seed documents are about.
#![allow(dead_code)]

use std::sync::OnceLock;

use portcullis::config::{Config, Source};
use portcullis::oci::Digest;
use portcullis::signature::TrustRoot;

pub const FIXTURES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../tests/fixtures/sigstore");

/// The `attested` image of the attestation fixtures (bundle referrers).
pub const ATTESTED: &str =
    "sha256:654d251b189b2755f4bdb5d7895a4e03c2394e5933f696eb278ed98740a65066";
/// The `attested-legacy` image (`.sig` and `.att` layers).
pub const ATTESTED_LEGACY: &str =
    "sha256:e9a17e8d07116fa5b5caa9231c457b935a90a7db370e8e066e4498ab5efe5798";

pub fn config() -> &'static Config {
    static CONFIG: OnceLock<Config> = OnceLock::new();
    CONFIG.get_or_init(|| {
        let yaml = include_str!("../fuzz.yaml").replace("FIXTURES", FIXTURES);
        Config::from_yaml(&yaml, Source::Embedded).expect("fuzz.yaml is a valid configuration")
    })
}

/// The trusted root fuzz.yaml names, parsed once.
pub fn root() -> &'static TrustRoot {
    static ROOT: OnceLock<TrustRoot> = OnceLock::new();
    ROOT.get_or_init(|| {
        TrustRoot::load(&config().trusted_root).expect("fuzz.yaml names a valid trusted root")
    })
}

pub fn digest(s: &str) -> Digest {
    s.parse().expect("a fixture digest")
}
