//! The committed signed fixture sets (`tests/fixtures/sigstore/` and its `attestations/`
//! subset; see their README for the generator): image digests, manifest and blob bytes, the push
//! plan, and the attestors that verify them. Serving or pushing them is each binary's business.

use std::path::{Path, PathBuf};

pub const ISSUER: &str = "https://token.actions.githubusercontent.com";

/// One fixture set: `registry/images.json` (image → digest), `registry/plan.json` (the push
/// order), `registry/blobs/<hex>`, `cosign.pub` and `trusted_root.json`.
pub struct Fixtures {
    dir: &'static str,
}

impl Fixtures {
    /// `tests/fixtures/sigstore`: images signed every way, and unsigned ones.
    pub const SIGSTORE: Fixtures = Fixtures {
        dir: concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/sigstore"),
    };

    /// `tests/fixtures/sigstore/attestations`: images with provenance and SBOM attestations.
    pub const ATTESTATIONS: Fixtures = Fixtures {
        dir: concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/fixtures/sigstore/attestations"
        ),
    };

    /// A file of the set, e.g. `cosign.pub` or `trusted_root.json`.
    pub fn path(&self, name: &str) -> PathBuf {
        Path::new(self.dir).join(name)
    }

    fn read(&self, name: &str) -> Vec<u8> {
        let path = self.path(name);
        std::fs::read(&path).unwrap_or_else(|e| panic!("reading {}: {e}", path.display()))
    }

    /// The digest of image `name` (`registry/images.json`).
    pub fn digest(&self, name: &str) -> String {
        let images: serde_json::Value =
            serde_json::from_slice(&self.read("registry/images.json")).unwrap();
        images[name]["digest"]
            .as_str()
            .unwrap_or_else(|| panic!("no image {name:?} in {}", self.dir))
            .to_owned()
    }

    /// The committed bytes of a manifest or blob, by digest (`sha256:<hex>`) or bare hex.
    pub fn blob(&self, digest: &str) -> Vec<u8> {
        let hex = digest.strip_prefix("sha256:").unwrap_or(digest);
        self.read(&format!("registry/blobs/{hex}"))
    }

    /// `registry/plan.json`: every image, signature and referrers index as
    /// `{reference, media_type, manifest, blobs: [hex]}`, blobs before manifests, subjects
    /// before referrers, children before the index.
    pub fn plan(&self) -> Vec<serde_json::Value> {
        serde_json::from_slice(&self.read("registry/plan.json")).unwrap()
    }

    /// An `attestors:` block (indented for a rule) accepting either the ok keyless identity (a
    /// regexp over `github.com/acme/`, which the proxy anchors to the whole identity; the evil
    /// identity is outside it) or the set's key. `ignore_tlog` is left out: the default must
    /// require a transparency log entry.
    pub fn attestors(&self) -> String {
        format!(
            "    attestors:\n\
             \x20     - keyless: {{ subject_regexp: \"https://github.com/acme/.+\", issuer: \"{ISSUER}\" }}\n\
             \x20     - key: {{ public_key: {} }}\n",
            self.path("cosign.pub").display()
        )
    }
}
