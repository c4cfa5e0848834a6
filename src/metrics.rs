//! Every Prometheus metric portcullis exports, defined in one place and served on the admin
//! listener.
//!
//! Labels are bounded by construction: routes, methods, status codes, configured upstream keys and
//! fixed kinds. A tag, digest, repository name or credential is never a label value. This module
//! does not decide *when* to record; the request pipeline records once per request.

use prometheus::{
    Encoder, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge, IntGaugeVec, Opts,
    Registry, TextEncoder,
};

/// Latency buckets (seconds) from a warm cache hit to a slow upstream.
const LATENCY_BUCKETS: &[f64] = &[
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
];

pub struct Metrics {
    registry: Registry,
    /// Client requests by route, method and status.
    pub http_requests: IntCounterVec,
    pub http_duration: HistogramVec,
    /// Requests sent to upstreams by upstream key, kind and status (or `error`).
    pub upstream_requests: IntCounterVec,
    pub upstream_duration: HistogramVec,
    /// Blob bytes streamed to clients, by upstream.
    pub blob_bytes: IntCounterVec,
    /// Cache lookups by cache and result (`hit` / `miss`).
    pub cache_requests: IntCounterVec,
    /// Manifest requests under a rule, by rule, mode and result (`verified`, `unverified`,
    /// `error`), and unmatched repositories (`rule="<unmatched>"`).
    pub verdicts: IntCounterVec,
    /// Time to compute a verdict (discovery + verification), by result.
    pub verification_duration: HistogramVec,
    /// The cryptographic part of a verdict alone (no network), by result.
    pub signature_check_duration: HistogramVec,
    /// Open client connections by listener.
    pub connections: IntGaugeVec,
    /// Client connections the proxy closed or refused itself, by listener and reason
    /// (`per_address_limit`, `idle`).
    pub connections_closed: IntCounterVec,
    /// Client authentication failures by reason (`bad_credentials`, `forbidden`).
    pub auth_failures: IntCounterVec,
    /// 1 while the proxy accepts requests, 0 once shutdown has begun.
    pub ready: IntGauge,
    /// Configuration reloads by result (`success`, `failure`).
    pub config_reloads: IntCounterVec,
    /// When the configuration in force was loaded (Unix seconds).
    pub config_loaded: IntGauge,
    /// Trusted-root refreshes over TUF by result (`updated`, `unchanged`, `failure`).
    pub trust_root_refreshes: IntCounterVec,
    /// When the trusted root in force was obtained (Unix seconds).
    pub trust_root_loaded: IntGauge,
    /// Ledger records written to the database.
    pub ledger_written: IntCounter,
    /// Ledger records dropped, by reason (`queue_full`, `backlog_full`, `database`).
    pub ledger_dropped: IntCounterVec,
    /// Aggregated ledger entries waiting for the next flush.
    pub ledger_pending: IntGauge,
    /// Content store lookups of blobs by result (hit, miss).
    pub store_requests: IntCounterVec,
    /// Blob fills by result (committed, mismatch, upstream_error, store_error).
    pub store_fills: IntCounterVec,
    pub store_evictions: IntCounter,
    pub store_bytes: IntGauge,
    pub store_corrupt: IntCounter,
    pub store_waiters: IntCounter,
    /// Digests the inventory's ingest looked at, by result (`found`, `none`, `unparseable`,
    /// `index`, `known`, `error`).
    pub inventory_ingests: IntCounterVec,
    /// Ingest jobs dropped because the ingest queue was full.
    pub inventory_dropped: IntCounter,
}

impl Metrics {
    pub fn new() -> Metrics {
        let registry = Registry::new();
        // Invariant: every name, help text and label set below is a valid literal, registered once,
        // so construction and registration cannot fail.
        let counter = |name: &str, help: &str, labels: &[&str]| {
            let c = IntCounterVec::new(Opts::new(name, help), labels).expect("valid metric");
            registry
                .register(Box::new(c.clone()))
                .expect("unique metric");
            c
        };
        let histogram = |name: &str, help: &str, labels: &[&str]| {
            let h = HistogramVec::new(
                HistogramOpts::new(name, help).buckets(LATENCY_BUCKETS.to_vec()),
                labels,
            )
            .expect("valid metric");
            registry
                .register(Box::new(h.clone()))
                .expect("unique metric");
            h
        };
        let http_requests = counter(
            "portcullis_http_requests_total",
            "Registry API requests by route, method and response status.",
            &["route", "method", "status"],
        );
        let http_duration = histogram(
            "portcullis_http_request_duration_seconds",
            "Time to response headers for registry API requests, by route.",
            &["route"],
        );
        let upstream_requests = counter(
            "portcullis_upstream_requests_total",
            "Requests sent to upstream registries by upstream, kind and status (or error).",
            &["upstream", "kind", "status"],
        );
        let upstream_duration = histogram(
            "portcullis_upstream_request_duration_seconds",
            "Time to response headers for upstream requests, by upstream and kind.",
            &["upstream", "kind"],
        );
        let blob_bytes = counter(
            "portcullis_blob_bytes_total",
            "Blob bytes streamed to clients, by upstream.",
            &["upstream"],
        );
        let cache_requests = counter(
            "portcullis_cache_requests_total",
            "Cache lookups by cache and result.",
            &["cache", "result"],
        );
        let verdicts = counter(
            "portcullis_verdicts_total",
            "Manifest requests decided under a policy rule, by rule, mode and result.",
            &["rule", "mode", "result"],
        );
        let verification_duration = histogram(
            "portcullis_verification_duration_seconds",
            "Time to compute a verdict (signature discovery and verification), by result.",
            &["result"],
        );
        let signature_check_duration = histogram(
            "portcullis_signature_check_duration_seconds",
            "Time to check the signatures and attestations found for a digest (cryptography and conditions, no network), by result.",
            &["result"],
        );
        let connections_closed = counter(
            "portcullis_connections_closed_total",
            "Client connections closed by the proxy, by listener and reason (per_address_limit: \
             the client address held its share of the connection limit; idle: no request in \
             flight for longer than the header or idle timeout).",
            &["listener", "reason"],
        );
        let auth_failures = counter(
            "portcullis_auth_failures_total",
            "Client authentication failures by reason (bad_credentials: unknown user or wrong \
             password; forbidden: the user may not pull that image).",
            &["reason"],
        );
        let connections = IntGaugeVec::new(
            Opts::new(
                "portcullis_connections",
                "Open client connections by listener.",
            ),
            &["listener"],
        )
        .expect("valid metric");
        registry
            .register(Box::new(connections.clone()))
            .expect("unique metric");
        let gauge = |name: &str, help: &str| {
            let g = IntGauge::new(name, help).expect("valid metric");
            registry
                .register(Box::new(g.clone()))
                .expect("unique metric");
            g
        };
        let ready = gauge("portcullis_ready", "1 while accepting requests.");
        let config_reloads = counter(
            "portcullis_config_reload_total",
            "Configuration reloads (SIGHUP or a changed file) by result (success; failure: the \
             new configuration did not validate and the one in force stays).",
            &["result"],
        );
        let config_loaded = gauge(
            "portcullis_config_loaded_timestamp_seconds",
            "When the configuration in force was loaded, in Unix seconds.",
        );
        let trust_root_refreshes = counter(
            "portcullis_trust_root_refresh_total",
            "Refreshes of the trusted root over TUF by result (updated: a new root is in force; \
             unchanged; failure: the mirror failed or its metadata did not verify, and the root \
             in force stays).",
            &["result"],
        );
        let trust_root_loaded = gauge(
            "portcullis_trust_root_loaded_timestamp_seconds",
            "When the trusted root in force was obtained, in Unix seconds.",
        );
        let ledger_dropped = counter(
            "portcullis_ledger_dropped_records_total",
            "Pull records the ledger could not keep, by reason (queue_full: the writer's queue \
             was full; backlog_full: too many distinct entries waiting; database: the database \
             refused or did not answer the batch).",
            &["reason"],
        );
        let ledger_written = IntCounter::new(
            "portcullis_ledger_written_records_total",
            "Pull records written to the ledger's database.",
        )
        .expect("valid metric");
        registry
            .register(Box::new(ledger_written.clone()))
            .expect("unique metric");
        let ledger_pending = gauge(
            "portcullis_ledger_pending_entries",
            "Aggregated ledger entries waiting for the next write.",
        );
        let store_requests = counter(
            "portcullis_store_requests_total",
            "Content store lookups of blobs by result (hit: served from the store; miss: fetched).",
            &["result"],
        );
        let store_fills = counter(
            "portcullis_store_fills_total",
            "Blob fills by result (committed; mismatch: the bytes did not hash to the digest or \
             the announced length; upstream_error: the transfer failed; store_error: writing failed).",
            &["result"],
        );
        let plain = |name: &str, help: &str| {
            let c = IntCounter::new(name, help).expect("valid metric");
            registry
                .register(Box::new(c.clone()))
                .expect("unique metric");
            c
        };
        let store_evictions = plain(
            "portcullis_store_evictions_total",
            "Blobs evicted from the filesystem store to keep it under max_bytes.",
        );
        let store_corrupt = plain(
            "portcullis_store_corrupt_total",
            "Stored blobs found not to hash to their digest (removed, fetched again on demand).",
        );
        let store_waiters = plain(
            "portcullis_store_fill_waiters_total",
            "Requests that waited for a fill of the same blob in progress instead of asking the upstream.",
        );
        let inventory_ingests = counter(
            "portcullis_inventory_ingests_total",
            "Pulled digests whose SBOM the inventory looked for, by result (found; none: no SBOM \
             attached; unparseable: an SBOM that could not be read; index: an index, whose \
             children are recorded each; known: recorded before, not looked for again; error: the upstream or the database failed, tried again \
             on a later pull).",
            &["result"],
        );
        let inventory_dropped = plain(
            "portcullis_inventory_dropped_total",
            "Pulled digests not queued for SBOM ingest because the queue was full (ingested on a \
             later pull or at the next start-up's backfill).",
        );
        let store_bytes = IntGauge::new(
            "portcullis_store_bytes",
            "Bytes of blobs in the filesystem store.",
        )
        .expect("valid metric");
        registry
            .register(Box::new(store_bytes.clone()))
            .expect("unique metric");
        Metrics {
            ledger_written,
            ledger_dropped,
            ledger_pending,
            store_requests,
            store_fills,
            store_evictions,
            store_bytes,
            store_corrupt,
            store_waiters,
            inventory_ingests,
            inventory_dropped,
            registry,
            http_requests,
            http_duration,
            upstream_requests,
            upstream_duration,
            blob_bytes,
            cache_requests,
            verdicts,
            verification_duration,
            signature_check_duration,
            connections,
            connections_closed,
            auth_failures,
            ready,
            config_reloads,
            config_loaded,
            trust_root_refreshes,
            trust_root_loaded,
        }
    }

    /// Hits and lookups of every cache since start-up (`portcullis_cache_requests_total` by
    /// cache, and the content store's blobs as `store`), for the console's overview.
    pub fn hit_rates(&self) -> Vec<HitRate> {
        let mut rates: Vec<HitRate> = Vec::new();
        let families = self.registry.gather();
        for family in &families {
            let name = family.name();
            if name != "portcullis_cache_requests_total"
                && name != "portcullis_store_requests_total"
            {
                continue;
            }
            for m in family.get_metric() {
                let label = |k: &str| {
                    m.get_label()
                        .iter()
                        .find(|l| l.name() == k)
                        .map(|l| l.value().to_owned())
                };
                let cache = label("cache").unwrap_or_else(|| "store".to_owned());
                let hit = label("result").as_deref() == Some("hit");
                let n = m.get_counter().get_value() as u64;
                let at = match rates.iter().position(|r| r.cache == cache) {
                    Some(i) => i,
                    None => {
                        rates.push(HitRate {
                            cache,
                            hits: 0,
                            lookups: 0,
                        });
                        rates.len() - 1
                    }
                };
                rates[at].lookups += n;
                if hit {
                    rates[at].hits += n;
                }
            }
        }
        rates.sort_by(|a, b| a.cache.cmp(&b.cache));
        rates
    }

    /// The Prometheus text exposition of every metric.
    pub fn encode(&self) -> Vec<u8> {
        let mut buf = Vec::new();
        // Encoding into a Vec only fails on metric families that are malformed, which the typed
        // constructors above cannot produce; an empty page is the safe answer if it ever did.
        if let Err(e) = TextEncoder::new().encode(&self.registry.gather(), &mut buf) {
            tracing::error!(error = %e, "encoding metrics failed");
            buf.clear();
        }
        buf
    }
}

/// One cache's hits over its lookups.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HitRate {
    pub cache: String,
    pub hits: u64,
    pub lookups: u64,
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encodes_recorded_values() {
        let m = Metrics::new();
        m.http_requests
            .with_label_values(&["manifest", "GET", "200"])
            .inc();
        m.upstream_requests
            .with_label_values(&["docker.io", "manifest", "200"])
            .inc_by(2);
        let text = String::from_utf8(m.encode()).unwrap();
        assert!(text.contains(
            r#"portcullis_http_requests_total{method="GET",route="manifest",status="200"} 1"#
        ));
        assert!(text.contains(
            r#"portcullis_upstream_requests_total{kind="manifest",status="200",upstream="docker.io"} 2"#
        ));
    }
}
