//! The commands behind `main.rs`'s command line, each returning a report or an error (printing
//! and exit codes are `main`'s, but for `import`, whose `run` writes the file it makes):
//! `check-config` ([`check_config`]), `verify` ([`verify`]), which runs the proxy's own gate for
//! one image, `verify-bundle` ([`verify_bundle`]), and `import` ([`import`]), which translates
//! Kyverno and policy-controller policies.

pub mod check_config;
pub mod import;
pub mod verify;
pub mod verify_bundle;
