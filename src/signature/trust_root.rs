//! The Sigstore trust material (Fulcio CAs, Rekor and CT log keys, TSAs) and the verifier built
//! from it once, with the fingerprint that is part of every verdict cache key. A leaf: it parses
//! the trusted root JSON it is given and never fetches one over the network; which file (or the
//! embedded public-good root) is the configuration's.

use sha2::{Digest as _, Sha256};

#[derive(Debug, thiserror::Error)]
pub enum TrustRootError {
    #[error("trusted_root {origin}: not a Sigstore trusted root: {reason}")]
    Parse { origin: String, reason: String },
    #[error("trusted_root {origin}: unusable trusted root: {reason}")]
    Unusable { origin: String, reason: String },
}

/// The Sigstore trust material (Fulcio CAs, Rekor and CT log keys, TSAs) and a verifier built
/// from it once. Never fetched over the network.
pub struct TrustRoot {
    verifier: sigstore_verify::Verifier,
    /// sha256 of the trusted root JSON: part of every verdict cache key.
    pub fingerprint: [u8; 32],
    /// A file path, or `embedded public-good`.
    pub origin: String,
}

impl std::fmt::Debug for TrustRoot {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TrustRoot")
            .field("origin", &self.origin)
            .finish_non_exhaustive()
    }
}

impl TrustRoot {
    /// The public-good Sigstore root embedded in `sigstore-trust-root`.
    pub fn public_good() -> Result<TrustRoot, TrustRootError> {
        let json = sigstore_trust_root::SigstoreInstance::PublicGood.embedded_trusted_root_json();
        TrustRoot::from_json(json.as_bytes(), "embedded public-good root".to_owned())
    }

    pub fn from_json(json: &[u8], origin: String) -> Result<TrustRoot, TrustRootError> {
        let text = std::str::from_utf8(json).map_err(|_| TrustRootError::Parse {
            origin: origin.clone(),
            reason: "not UTF-8".to_owned(),
        })?;
        let root = sigstore_trust_root::TrustedRoot::from_json(text).map_err(|e| {
            TrustRootError::Parse {
                origin: origin.clone(),
                reason: e.to_string(),
            }
        })?;
        let verifier =
            sigstore_verify::Verifier::new(&root).map_err(|e| TrustRootError::Unusable {
                origin: origin.clone(),
                reason: e.to_string(),
            })?;
        Ok(TrustRoot {
            verifier,
            fingerprint: Sha256::digest(json).into(),
            origin,
        })
    }

    pub fn verifier(&self) -> &sigstore_verify::Verifier {
        &self.verifier
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn public_good_root_loads_and_foreign_json_is_refused() {
        let r = TrustRoot::public_good().unwrap();
        assert_eq!(r.origin, "embedded public-good root");
        assert!(matches!(
            TrustRoot::from_json(b"{}", "x.json".into()),
            Err(TrustRootError::Parse { .. } | TrustRootError::Unusable { .. })
        ));
    }
}
