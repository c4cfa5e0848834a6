#!/usr/bin/env python3
"""Writes portcullis-dashboard.json (Grafana) next to this script. Every expression uses metrics
defined in src/metrics.rs; tests/e2e/monitoring.rs evaluates them against a real Prometheus."""
import json
import os

panels = []


def ts(title, exprs, unit="short", x=0, y=0, w=12, h=8, desc=""):
    panels.append({
        "id": len(panels) + 1, "type": "timeseries", "title": title, "description": desc,
        "datasource": {"type": "prometheus", "uid": "${datasource}"},
        "gridPos": {"x": x, "y": y, "w": w, "h": h},
        "fieldConfig": {"defaults": {"unit": unit}, "overrides": []},
        "options": {"legend": {"displayMode": "table", "placement": "bottom"}},
        "targets": [{"refId": chr(65 + i), "expr": e, "legendFormat": l} for i, (e, l) in enumerate(exprs)],
    })


def stat(title, expr, unit, x, y, w=6, h=4, desc=""):
    panels.append({
        "id": len(panels) + 1, "type": "stat", "title": title, "description": desc,
        "datasource": {"type": "prometheus", "uid": "${datasource}"},
        "gridPos": {"x": x, "y": y, "w": w, "h": h},
        "fieldConfig": {"defaults": {"unit": unit}, "overrides": []},
        "targets": [{"refId": "A", "expr": expr}],
    })


J = 'job=~"$job"'
stat("Ready replicas", f'sum(portcullis_ready{{{J}}})', "short", 0, 0, desc="portcullis_ready: 1 while accepting requests")
stat("Enforce refusals (1h)", f'sum(increase(portcullis_verdicts_total{{{J},mode="enforce",result="unverified"}}[1h]))', "short", 6, 0)
stat("Audit: would refuse (1h)", f'sum(increase(portcullis_verdicts_total{{{J},mode="audit",result="unverified"}}[1h]))', "short", 12, 0, desc="What enforce would refuse: the roll-out signal")
stat("Signature lookup faults (1h)", f'sum(increase(portcullis_verdicts_total{{{J},result="error"}}[1h]))', "short", 18, 0)
ts("Client requests by route and status", [(f'sum by (route, status) (rate(portcullis_http_requests_total{{{J}}}[$__rate_interval]))', "{{route}} {{status}}")], "reqps", 0, 4)
ts("Client request latency (p50, p99) by route", [
    (f'histogram_quantile(0.5, sum by (le, route) (rate(portcullis_http_request_duration_seconds_bucket{{{J}}}[$__rate_interval])))', "p50 {{route}}"),
    (f'histogram_quantile(0.99, sum by (le, route) (rate(portcullis_http_request_duration_seconds_bucket{{{J}}}[$__rate_interval])))', "p99 {{route}}")], "s", 12, 4)
ts("Verdicts by rule, mode and result", [(f'sum by (rule, mode, result) (rate(portcullis_verdicts_total{{{J}}}[$__rate_interval]))', "{{rule}} {{mode}} {{result}}")], "reqps", 0, 12)
ts("Verdict computation time (p50, p99)", [
    (f'histogram_quantile(0.5, sum by (le) (rate(portcullis_verification_duration_seconds_bucket{{{J}}}[$__rate_interval])))', "discovery + verification p50"),
    (f'histogram_quantile(0.99, sum by (le) (rate(portcullis_verification_duration_seconds_bucket{{{J}}}[$__rate_interval])))', "discovery + verification p99"),
    (f'histogram_quantile(0.99, sum by (le) (rate(portcullis_signature_check_duration_seconds_bucket{{{J}}}[$__rate_interval])))', "signature check (CPU) p99")], "s", 12, 12)
ts("Cache hit ratio", [(f'sum by (cache) (rate(portcullis_cache_requests_total{{{J},result="hit"}}[$__rate_interval])) / sum by (cache) (rate(portcullis_cache_requests_total{{{J}}}[$__rate_interval]))', "{{cache}}")], "percentunit", 0, 20)
ts("Upstream requests by upstream, kind and status", [(f'sum by (upstream, kind, status) (rate(portcullis_upstream_requests_total{{{J}}}[$__rate_interval]))', "{{upstream}} {{kind}} {{status}}")], "reqps", 12, 20)
ts("Upstream latency (p99) by upstream and kind", [(f'histogram_quantile(0.99, sum by (le, upstream, kind) (rate(portcullis_upstream_request_duration_seconds_bucket{{{J}}}[$__rate_interval])))', "{{upstream}} {{kind}}")], "s", 0, 28)
ts("Blob bytes served by upstream", [(f'sum by (upstream) (rate(portcullis_blob_bytes_total{{{J}}}[$__rate_interval]))', "{{upstream}}")], "Bps", 12, 28)
ts("Open client connections", [(f'sum by (listener) (portcullis_connections{{{J}}})', "{{listener}}")], "short", 0, 36)
ts("Connections closed by portcullis, auth failures", [
    (f'sum by (listener, reason) (rate(portcullis_connections_closed_total{{{J}}}[$__rate_interval]))', "closed {{listener}} {{reason}}"),
    (f'sum by (reason) (rate(portcullis_auth_failures_total{{{J}}}[$__rate_interval]))', "auth {{reason}}")], "short", 12, 36)
dash = {
    "title": "portcullis", "uid": "portcullis", "schemaVersion": 39, "version": 1, "editable": True,
    "description": "portcullis, the verifying registry proxy: requests, verdicts, verification time, caches, upstreams. Every panel uses metrics from src/metrics.rs.",
    "tags": ["portcullis", "registry", "sigstore"], "time": {"from": "now-6h", "to": "now"}, "refresh": "30s",
    "templating": {"list": [
        {"name": "datasource", "type": "datasource", "query": "prometheus", "label": "Data source"},
        {"name": "job", "type": "query", "label": "Job", "datasource": {"type": "prometheus", "uid": "${datasource}"},
         "query": {"query": "label_values(portcullis_ready, job)", "refId": "job"}, "definition": "label_values(portcullis_ready, job)",
         "includeAll": True, "multi": True, "current": {"text": "All", "value": "$__all"}, "allValue": ".*", "refresh": 2}]},
    "annotations": {"list": []},
    "panels": panels,
}
out = os.path.join(os.path.dirname(os.path.abspath(__file__)), "portcullis-dashboard.json")
with open(out, "w") as f:
    json.dump(dash, f, indent=2)
    f.write("\n")
