//! Validation of `storage`: which content store, its bound, and for S3 the bucket, endpoint and
//! the environment variables holding the credentials (read now, so a missing one is a start-up
//! error naming the key).

use std::path::Path;

use super::Validator;
use crate::config::settings::Secret;
use crate::config::storage::{
    parse_bytes, ByteCount, RawStorage, S3Credentials, S3Settings, StorageSettings,
    DEFAULT_MAX_BYTES,
};
use crate::config::ConfigError;

impl Validator {
    pub(super) fn storage(
        &self,
        raw: Option<&RawStorage>,
        state_dir: &Path,
    ) -> Result<StorageSettings, ConfigError> {
        let default = RawStorage::default();
        let raw = raw.unwrap_or(&default);
        match (&raw.filesystem, &raw.s3) {
            (Some(_), Some(_)) => {
                Err(self.invalid("storage", "give one of `filesystem` and `s3`, not both"))
            }
            (_, Some(s3)) => {
                if s3.bucket.is_empty() {
                    return Err(self.invalid("storage.s3.bucket", "must not be empty"));
                }
                let endpoint = s3
                    .endpoint
                    .as_deref()
                    .map(|e| {
                        let url = url::Url::parse(e).map_err(|err| {
                            self.invalid(
                                "storage.s3.endpoint",
                                format!("{e:?} is not a URL: {err}"),
                            )
                        })?;
                        if !matches!(url.scheme(), "http" | "https") || url.host_str().is_none() {
                            return Err(self.invalid(
                                "storage.s3.endpoint",
                                "must be an http(s) URL with a host",
                            ));
                        }
                        if !url.username().is_empty() || url.password().is_some() {
                            return Err(self.invalid(
                                "storage.s3.endpoint",
                                "must not carry credentials; use access_key_id_env",
                            ));
                        }
                        Ok(url)
                    })
                    .transpose()?;
                let id = self.s3_env(
                    "access_key_id_env",
                    s3.access_key_id_env.as_deref(),
                    "AWS_ACCESS_KEY_ID",
                )?;
                let secret = self.s3_env(
                    "secret_access_key_env",
                    s3.secret_access_key_env.as_deref(),
                    "AWS_SECRET_ACCESS_KEY",
                )?;
                let credentials = match (id, secret) {
                    (Some(access_key_id), Some(secret_access_key)) => Some(S3Credentials {
                        access_key_id,
                        secret_access_key,
                    }),
                    (None, None) => None,
                    _ => {
                        return Err(self.invalid(
                            "storage.s3",
                            "only one of the access key id and the secret access key is set in the environment",
                        ))
                    }
                };
                Ok(StorageSettings::S3(S3Settings {
                    endpoint,
                    bucket: s3.bucket.clone(),
                    prefix: s3.prefix.trim_matches('/').to_owned(),
                    region: s3.region.clone().unwrap_or_else(|| "us-east-1".to_owned()),
                    credentials,
                    path_style: s3.path_style,
                }))
            }
            (fs, None) => {
                let max_bytes = match fs.as_ref().and_then(|f| f.max_bytes.as_ref()) {
                    None => DEFAULT_MAX_BYTES,
                    Some(ByteCount::Number(0)) => {
                        return Err(
                            self.invalid("storage.filesystem.max_bytes", "must be greater than 0")
                        )
                    }
                    Some(ByteCount::Number(n)) => *n,
                    Some(ByteCount::Text(s)) => parse_bytes(s)
                        .map_err(|e| self.invalid("storage.filesystem.max_bytes", e))?,
                };
                Ok(StorageSettings::Filesystem {
                    root: state_dir.join("store"),
                    max_bytes,
                })
            }
        }
    }

    /// The value of the environment variable a `storage.s3.*_env` key names (or, when the key
    /// is absent, of the conventional variable if it is set).
    fn s3_env(
        &self,
        key: &str,
        named: Option<&str>,
        conventional: &str,
    ) -> Result<Option<Secret>, ConfigError> {
        let key = format!("storage.s3.{key}");
        match named {
            Some(var) => match std::env::var(var) {
                Ok(v) if !v.is_empty() => Ok(Some(Secret(v))),
                _ => Err(self.invalid(key, format!("environment variable {var} is not set"))),
            },
            None => Ok(std::env::var(conventional)
                .ok()
                .filter(|v| !v.is_empty())
                .map(Secret)),
        }
    }
}
