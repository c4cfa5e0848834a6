//! The end-to-end test binary: the real `portcullis` binary between real third-party parts, CNCF
//! distribution (`docker-registry`) as the upstream and `skopeo`, containerd (`ctr`), the Docker
//! engine and Podman as clients (Debian packages `docker-registry skopeo containerd docker.io
//! podman`; containerd, dockerd and podman need root), a kubelet-style CRI client (PyPI
//! `container-runtime-interface-api`), and for the deploy tests `kubectl`, `promtool` and
//! `prometheus` (scripts/test.sh installs them).
//!
//! A missing tool is a test failure, unless `PORTCULLIS_SKIP_E2E=1` is set, which turns it into
//! a skip. Every process started here is killed by PID when its guard drops; every wait has a
//! deadline. `cargo test --test e2e` runs them.

#[path = "../common/mod.rs"]
mod common;
mod harness;

mod attestations;
mod auth;
mod console;
mod deploy;
mod digest_sums;
mod ingest;
mod inventory;
mod ledger;
mod policy;
mod real;
mod runtimes;
mod store;
mod trust;
