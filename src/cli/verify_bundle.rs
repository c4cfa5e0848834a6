//! `portcullis verify-bundle`: one Sigstore bundle checked against an artifact with the
//! sigstore-conformance client flags, by the same verifier the proxy uses. Returns the verified
//! signer or why not; printing and exit codes are `main`'s.

use sigstore_types::{Bundle, DerPublicKey, Sha256Hash};
use sigstore_verify::{PublicKeyVerificationPolicy, VerificationPolicy};

use crate::policy::Matcher;
use crate::signature::TrustRoot;

#[derive(Debug, thiserror::Error)]
pub enum BundleError {
    /// The inputs were read, and the bundle does not verify: a negative answer, not an error.
    #[error("{0}")]
    NotVerified(String),
    #[error("{what}: {reason}")]
    Input { what: String, reason: String },
}

/// The signer constraint of `verify-bundle`.
pub enum BundleSigner {
    Key(String),
    Identity { identity: Matcher, issuer: String },
}

/// Verifies `bundle_json` over `artifact` (a file's bytes, or `sha256:<hex>`). Returns the
/// verified signer.
pub fn verify_bundle(
    root: &TrustRoot,
    bundle_json: &str,
    artifact: &str,
    signer: &BundleSigner,
) -> Result<String, BundleError> {
    let input = |what: &str, reason: String| BundleError::Input {
        what: what.to_owned(),
        reason,
    };
    let bundle = Bundle::from_json(bundle_json).map_err(|e| input("bundle", e.to_string()))?;
    let data;
    let artifact: sigstore_types::Artifact<'_> = match artifact.strip_prefix("sha256:") {
        Some(hex) => Sha256Hash::from_hex(hex)
            .map_err(|e| input("artifact digest", e.to_string()))?
            .into(),
        None => {
            data = std::fs::read(artifact).map_err(|e| input(artifact, e.to_string()))?;
            data.as_slice().into()
        }
    };
    let verifier = root.verifier();
    match signer {
        BundleSigner::Key(pem) => {
            let key = DerPublicKey::from_pem(pem).map_err(|e| input("key", e.to_string()))?;
            verifier
                .verify(artifact, &bundle, &PublicKeyVerificationPolicy::new(key))
                .map_err(|e| BundleError::NotVerified(e.to_string()))?;
            Ok("the given key".to_owned())
        }
        BundleSigner::Identity { identity, issuer } => {
            let policy = VerificationPolicy::any_identity().require_issuer(issuer.clone());
            let r = verifier
                .verify(artifact, &bundle, &policy)
                .map_err(|e| BundleError::NotVerified(e.to_string()))?;
            let id = r.identity().map(|i| i.to_string()).unwrap_or_default();
            if !identity.is_match(&id) {
                return Err(BundleError::NotVerified(format!(
                    "certificate identity {id:?} does not match {identity}"
                )));
            }
            Ok(format!("{id} (issuer {issuer})"))
        }
    }
}
