//! The hermetic test binary: nothing outside this repository runs. The proxy runs in process (or,
//! where memory is measured, as the real binary) in front of an in-process fake upstream on
//! 127.0.0.1:0 that counts requests and injects faults; the CLI tests run the real binary on
//! config files. `cargo test --test hermetic` runs them on any machine.

#[path = "../common/mod.rs"]
mod common;
mod fake;

mod auth;
mod cli;
mod console;
mod hardening;
mod import;
mod inventory;
mod ledger;
mod policy;
mod proxy;
mod reload;
mod store;
mod streaming;
