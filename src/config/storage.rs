//! The content store's settings (`storage`): where blobs, manifests and signature material are
//! kept. The raw form is read from YAML; [`StorageSettings`] is what `store` opens. Credentials
//! are read from the environment variables the configuration names, never written in it.

use std::path::PathBuf;

use serde::Deserialize;

use super::settings::Secret;

/// The default bound of the filesystem store when `storage` does not give one.
pub const DEFAULT_MAX_BYTES: u64 = 100 << 30;

/// `storage:` as written: exactly one of `filesystem` and `s3` (absent: filesystem).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawStorage {
    pub filesystem: Option<RawFilesystem>,
    pub s3: Option<RawS3>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawFilesystem {
    /// A byte count: an integer, or a number with a unit (`100GiB`, `512MiB`, `10GB`).
    pub max_bytes: Option<ByteCount>,
}

/// A byte count as written: a number, or text with a unit.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub enum ByteCount {
    Number(u64),
    Text(String),
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawS3 {
    pub endpoint: Option<String>,
    pub bucket: String,
    #[serde(default)]
    pub prefix: String,
    pub region: Option<String>,
    pub access_key_id_env: Option<String>,
    pub secret_access_key_env: Option<String>,
    #[serde(default)]
    pub path_style: bool,
}

/// The validated content store settings.
#[derive(Debug, Clone)]
pub enum StorageSettings {
    /// Content-addressed files under `root` (`state_dir/store`), at most `max_bytes` of blobs.
    Filesystem {
        root: PathBuf,
        max_bytes: u64,
    },
    S3(S3Settings),
}

#[derive(Debug, Clone)]
pub struct S3Settings {
    /// `None`: AWS's own endpoint for the region.
    pub endpoint: Option<url::Url>,
    pub bucket: String,
    /// Key prefix inside the bucket, without leading or trailing `/` (may be empty).
    pub prefix: String,
    pub region: String,
    /// `None`: the credential chain of the environment the process runs in (instance role,
    /// web identity), as AWS SDKs do.
    pub credentials: Option<S3Credentials>,
    pub path_style: bool,
}

#[derive(Debug, Clone)]
pub struct S3Credentials {
    pub access_key_id: Secret,
    pub secret_access_key: Secret,
}

/// How `check-config` and the start-up log describe the store; never a credential.
impl std::fmt::Display for StorageSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            StorageSettings::Filesystem { root, max_bytes } => {
                write!(f, "filesystem {} (max_bytes {max_bytes})", root.display())
            }
            StorageSettings::S3(s3) => {
                let endpoint = s3.endpoint.as_ref().map_or("AWS", |e| e.as_str());
                let credentials = match s3.credentials {
                    Some(_) => "credentials from the environment",
                    None => "the environment's credential chain",
                };
                write!(
                    f,
                    "s3 bucket {} prefix {:?} at {endpoint} (region {}, {}, {credentials})",
                    s3.bucket,
                    s3.prefix,
                    s3.region,
                    if s3.path_style {
                        "path-style"
                    } else {
                        "virtual-hosted"
                    },
                )
            }
        }
    }
}

/// Parses a byte count such as `100GiB`, `512 MiB`, `10GB` or `1048576`.
pub fn parse_bytes(s: &str) -> Result<u64, String> {
    let s = s.trim();
    let split = s
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(s.len());
    let (number, unit) = s.split_at(split);
    let number: f64 = number
        .parse()
        .map_err(|_| format!("{s:?} is not a byte count such as 100GiB"))?;
    let factor: u64 = match unit.trim() {
        "" | "B" => 1,
        "KB" | "kB" => 1_000,
        "KiB" => 1 << 10,
        "MB" => 1_000_000,
        "MiB" => 1 << 20,
        "GB" => 1_000_000_000,
        "GiB" => 1 << 30,
        "TB" => 1_000_000_000_000,
        "TiB" => 1 << 40,
        other => {
            return Err(format!(
                "unknown unit {other:?} in {s:?} (use B, KB, KiB, MB, MiB, GB, GiB, TB, TiB)"
            ))
        }
    };
    let bytes = number * factor as f64;
    if !bytes.is_finite() || bytes < 1.0 || bytes > u64::MAX as f64 {
        return Err(format!("{s:?} is not a positive byte count"));
    }
    Ok(bytes as u64)
}

#[cfg(test)]
mod tests {
    use super::{parse_bytes, StorageSettings};
    use crate::config::{Config, Source};

    const MINIMAL: &str = "listen: 127.0.0.1:5000\nadmin_listen: 127.0.0.1:9095\ndefault_upstream: r.local\nupstreams:\n  r.local: { url: 'http://127.0.0.1:5001' }\n";

    fn load(extra: &str) -> Result<Config, String> {
        let dir = std::path::Path::new("/etc/portcullis");
        Config::from_yaml(
            &format!("{MINIMAL}{extra}\n"),
            Source::File(dir.join("c.yaml")),
        )
        .map_err(|e| e.to_string())
    }

    #[test]
    fn the_filesystem_store_is_the_default_under_the_state_directory() {
        let c = load("").unwrap();
        match c.storage {
            StorageSettings::Filesystem { root, max_bytes } => {
                assert_eq!(root, c.state_dir.join("store"));
                assert_eq!(max_bytes, 100 << 30);
            }
            other => panic!("{other:?}"),
        }
        match load("state_dir: state").unwrap().storage {
            StorageSettings::Filesystem { root, .. } => {
                assert_eq!(root, std::path::Path::new("/etc/portcullis/state/store"));
            }
            other => panic!("{other:?}"),
        }
        match load("storage: { filesystem: { max_bytes: 512MiB } }")
            .unwrap()
            .storage
        {
            StorageSettings::Filesystem { max_bytes, .. } => assert_eq!(max_bytes, 512 << 20),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn storage_errors_name_the_key_and_the_file() {
        for (yaml, key) in [
            ("storage: { filesystem: {}, s3: { bucket: b } }", "`storage`"),
            ("storage: { filesystem: { max_bytes: 12 parsecs } }", "`storage.filesystem.max_bytes`"),
            ("storage: { filesystem: { max_bytes: 0 } }", "`storage.filesystem.max_bytes`"),
            ("storage: { s3: { bucket: '' } }", "`storage.s3.bucket`"),
            ("storage: { s3: { bucket: b, endpoint: 'ftp://x' } }", "`storage.s3.endpoint`"),
            (
                "storage: { s3: { bucket: b, endpoint: 'http://k:s@minio:9000' } }",
                "`storage.s3.endpoint`",
            ),
            (
                "storage: { s3: { bucket: b, access_key_id_env: PORTCULLIS_TEST_UNSET_VAR_1, secret_access_key_env: PORTCULLIS_TEST_UNSET_VAR_2 } }",
                "`storage.s3.access_key_id_env`",
            ),
        ] {
            let e = load(yaml).unwrap_err();
            assert!(e.contains(key), "{yaml}: {e}");
            assert!(e.contains("/etc/portcullis/c.yaml"), "{yaml}: {e}");
        }
        let e = load("storage: { filesystem: { max_byte: 1 } }").unwrap_err();
        assert!(e.contains("max_byte"), "{e}");
    }

    #[test]
    fn s3_settings() {
        let c = load(
            "storage: { s3: { endpoint: 'http://127.0.0.1:9000', bucket: oci, prefix: /p/q/, path_style: true } }",
        )
        .unwrap();
        let shown = c.storage.to_string();
        assert!(
            shown.starts_with("s3 bucket oci prefix \"p/q\" at http://127.0.0.1:9000/"),
            "{shown}"
        );
        assert!(shown.contains("path-style"), "{shown}");
        match c.storage {
            StorageSettings::S3(s3) => {
                assert_eq!(s3.bucket, "oci");
                assert_eq!(s3.prefix, "p/q");
                assert_eq!(s3.region, "us-east-1");
                assert!(s3.path_style);
                assert_eq!(s3.endpoint.unwrap().as_str(), "http://127.0.0.1:9000/");
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn byte_counts() {
        assert_eq!(parse_bytes("100GiB"), Ok(100 << 30));
        assert_eq!(parse_bytes("512 MiB"), Ok(512 << 20));
        assert_eq!(parse_bytes("10GB"), Ok(10_000_000_000));
        assert_eq!(parse_bytes("1048576"), Ok(1 << 20));
        assert_eq!(parse_bytes("1.5KiB"), Ok(1536));
        assert!(parse_bytes("0").is_err());
        assert!(parse_bytes("ten").is_err());
        assert!(parse_bytes("5 parsecs").is_err());
    }
}
