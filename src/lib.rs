//! portcullis: a pull-through, verifying OCI registry proxy.
//!
//! Module map, from the ground floor up (a module imports only from the floors below it; see
//! DESIGN.md §8):
//! - [`oci`]: the OCI vocabulary: parsed names and digests, media and artifact types, one parsed
//!   view of a manifest or index. Imports nothing from the crate.
//! - [`config`]: YAML + environment → raw serde structs → validated settings ([`config::Config`]).
//! - [`metrics`]: every Prometheus metric; [`cache`]: the one moka cache helper (hit/miss metric,
//!   one fill for concurrent callers) the owners' caches are built on; [`logging`]: the text log
//!   format's escaping field writer.
//! - [`policy`]: rules and selection; verdicts, decisions and reports.
//! - [`auth`]: who may pull: htpasswd, client certificates, per-user access.
//! - [`upstream`]: hyper clients to upstream registries, addressing, token auth and its token
//!   cache.
//! - [`signature`]: discovery by source (referrers + tag schema, cosign tags, BuildKit), legacy →
//!   bundle, verification (sigstore-rust), the trust root, the verdict engine and its cache.
//! - [`registry_api`]: the pull pipeline as stages (route → upstream → rule → resolve → gate →
//!   respond → record), the manifest cache, OCI error bodies in one place.
//! - [`server`]: listeners, TLS, connection limits, graceful shutdown; [`admin`]: `/metrics`,
//!   `/healthz`, `/readyz`.
//! - [`cli`]: what the commands compute: `check-config`, `verify` (the proxy's own gate) and
//!   `verify-bundle`; `main.rs` parses the command line and prints.
#![forbid(unsafe_code)]

pub mod admin;
pub mod auth;
pub mod cache;
pub mod cli;
pub mod config;
pub mod db;
pub mod inventory;
pub mod ledger;
pub mod logging;
pub mod metrics;
pub mod oci;
pub mod policy;
pub mod registry_api;
pub mod server;
pub mod signature;
pub mod store;
pub mod upstream;
