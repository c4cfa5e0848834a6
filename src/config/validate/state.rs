//! Validation of what is kept across restarts besides `state_dir` itself: the ledger's database
//! (`database`: `sqlite`, or `{ url, password_env }` for PostgreSQL) and the ledger
//! (`ledger.retention`) and the inventory's ingest (`inventory`).

use std::path::Path;

use url::Url;

use super::Validator;
use crate::config::raw;
use crate::config::settings::{DatabaseSettings, InventorySettings, LedgerSettings, Secret};
use crate::config::ConfigError;

/// The SQLite file's name under `state_dir`.
pub const SQLITE_FILE: &str = "portcullis.db";

impl Validator {
    pub(super) fn database(
        &self,
        raw: Option<&serde_json::Value>,
        state_dir: &Path,
    ) -> Result<DatabaseSettings, ConfigError> {
        use serde_json::Value;
        let sqlite = || DatabaseSettings::Sqlite {
            path: state_dir.join(SQLITE_FILE),
        };
        let map = match raw {
            None => return Ok(sqlite()),
            Some(Value::String(s)) if s == "sqlite" => return Ok(sqlite()),
            Some(Value::String(s)) => {
                return Err(self.invalid(
                    "database",
                    format!("{s:?} is not a database: write `sqlite`, or `{{ url: postgres://..., password_env: VAR }}`"),
                ))
            }
            Some(Value::Object(map)) => map,
            Some(_) => {
                return Err(self.invalid(
                    "database",
                    "write `sqlite`, or `{ url: postgres://..., password_env: VAR }`",
                ))
            }
        };
        if let Some(k) = map
            .keys()
            .find(|k| !matches!(k.as_str(), "url" | "password_env"))
        {
            return Err(self.invalid(
                format!("database.{k}"),
                "unknown key (database takes url and password_env)",
            ));
        }
        let url = match map.get("url") {
            Some(Value::String(u)) => u.clone(),
            Some(_) => return Err(self.invalid("database.url", "must be a string")),
            None => {
                return Err(self.invalid(
                    "database.url",
                    "is required: a postgres:// URL (or write `database: sqlite`)",
                ))
            }
        };
        // The URL as written may hold a password: it is not repeated in the error.
        let parsed = Url::parse(&url)
            .map_err(|e| self.invalid("database.url", format!("not a URL: {e}")))?;
        if !matches!(parsed.scheme(), "postgres" | "postgresql") {
            return Err(self.invalid(
                "database.url",
                "scheme must be postgres:// (or postgresql://)",
            ));
        }
        // libpq also takes the password as a query parameter (`?password=`).
        let query_password = parsed
            .query_pairs()
            .any(|(k, _)| k.eq_ignore_ascii_case("password"));
        if parsed.password().is_some() || query_password {
            // The URL is printed by check-config and logged at start-up; a password must not be.
            return Err(self.invalid(
                "database.url",
                "must not carry a password; name its environment variable with password_env",
            ));
        }
        if let Err(e) = url.parse::<tokio_postgres::Config>() {
            return Err(self.invalid("database.url", format!("{e}")));
        }
        let (password, password_env) = match map.get("password_env") {
            None => (None, None),
            Some(Value::String(var)) => {
                let value = std::env::var(var).map_err(|_| {
                    self.invalid(
                        "database.password_env",
                        format!("environment variable {var} is not set"),
                    )
                })?;
                (Some(Secret(value)), Some(var.clone()))
            }
            Some(_) => {
                return Err(self.invalid(
                    "database.password_env",
                    "must be the name of an environment variable",
                ))
            }
        };
        Ok(DatabaseSettings::Postgres {
            url,
            password,
            password_env,
        })
    }

    pub(super) fn ledger(&self, raw: &raw::RawLedger) -> Result<LedgerSettings, ConfigError> {
        let mut settings = LedgerSettings::default();
        if let Some(r) = raw.retention {
            if r < std::time::Duration::from_secs(3600) {
                return Err(self.invalid(
                    "ledger.retention",
                    "must be at least 1h (pulls are counted per day)",
                ));
            }
            settings.retention = r;
        }
        if let Some(enabled) = raw.enabled {
            settings.enabled = enabled;
        }
        Ok(settings)
    }

    pub(super) fn inventory(
        &self,
        raw: &raw::RawInventory,
    ) -> Result<InventorySettings, ConfigError> {
        let mut settings = InventorySettings::default();
        if let Some(r) = raw.recheck {
            if r < std::time::Duration::from_secs(60) {
                return Err(self.invalid("inventory.recheck", "must be at least 1m"));
            }
            settings.recheck = r;
        }
        if let Some(ingest) = raw.ingest {
            settings.ingest = ingest;
        }
        Ok(settings)
    }
}
