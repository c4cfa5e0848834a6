//! The commands behind `main.rs`'s command line, each returning a report or an error (printing
//! and exit codes are `main`'s, but for `import`, whose `run` writes the file it makes):
//! `check-config` ([`check_config`]), `verify` ([`verify`]), which runs the proxy's own gate for
//! one image, `audit` ([`audit`]), the ledger's report, with `--what-if` ([`what_if`]) the
//! window's digests re-decided under a proposed configuration, `verify-bundle`
//! ([`verify_bundle`]), `cache verify|gc` ([`cache`]), and `import` ([`import`]), which
//! translates Kyverno and policy-controller policies.

pub mod audit;
pub mod cache;
pub mod check_config;
pub mod import;
pub mod verify;
pub mod verify_bundle;
pub mod what_if;
