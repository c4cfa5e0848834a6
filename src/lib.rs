//! portcullis: a pull-through, verifying OCI registry proxy.
//!
//! Module map:
//! - [`config`]: YAML + environment → validated [`config::Config`].
//! - [`server`]: listeners, TLS, connection limits, graceful shutdown; [`admin`]: `/metrics`,
//!   `/healthz`, `/readyz`.
//! - [`registry_api`]: the read-only distribution API clients see, its routes, name/reference
//!   types and OCI error bodies.
//! - [`upstream`]: hyper clients to upstream registries, token auth, addressing.
//! - [`policy`]: rules, matching, attestors, verdicts → decisions.
//! - [`signature`]: signature discovery (referrers, tag schemes) and verification (sigstore-rust).
//! - [`cache`]: moka caches (upstream tokens, verdicts, covered index children).
//! - [`metrics`]: every Prometheus metric.
//! - [`auth`]: who may pull: htpasswd, client certificates, per-user access.
//! - [`inspect`]: the one-shot `verify` and `verify-bundle` commands.
//! - [`logging`]: the text log format's escaping field writer.
#![forbid(unsafe_code)]

pub mod admin;
pub mod auth;
pub mod cache;
pub mod cli;
pub mod config;
pub mod logging;
pub mod metrics;
pub mod oci;
pub mod policy;
pub mod registry_api;
pub mod server;
pub mod signature;
pub mod upstream;
