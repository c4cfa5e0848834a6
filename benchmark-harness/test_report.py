#!/usr/bin/env python3
"""Tests of report.py's verdicts: a target passes only on data that shows it.

A synthetic results folder, shaped as run.sh writes it, passes every target; each test then
spoils one thing a target rests on (an error status, a missing file, an unreadable RSS) and checks
that exactly that target fails. Run: python3 -m unittest benchmark-harness/test_report.py
(scripts/test.sh does).
"""

import io
import json
import os
import re
import sys
import tempfile
import unittest
from contextlib import redirect_stdout

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import report  # noqa: E402

WRK = """Running 5s test @ http://127.0.0.1:1/v2/keyed/app/manifests/x
  2 threads and {c} connections
  Latency Distribution
     50%    0.50ms
     75%    0.70ms
     90%    0.90ms
     99%    2.00ms
  {n} requests in 5.00s, 1.00MB read
{extra}Requests/sec:  {rps}
Transfer/sec:      1.00MB
"""

RPS = {"upstream": 2000, "nginx": 1500, "distribution-proxy": 1000, "portcullis": 30000,
       "portcullis-enforce": 28000}
MIB_S = {"upstream": 900, "nginx": 800, "nginx-defaults": 500, "distribution-proxy": 1200,
         "portcullis": 1300, "portcullis-enforce": 1250}


def metrics(**counts):
    """A Prometheus page with the counters the report reads."""
    lines = [
        f'portcullis_http_requests_total{{method="GET",route="manifest",status="200"}} {counts.get("requests", 0)}',
        f'portcullis_upstream_requests_total{{kind="manifest",status="200",upstream="local"}} {counts.get("manifest", 0)}',
        f'portcullis_upstream_requests_total{{kind="referrers",status="404",upstream="local"}} {counts.get("referrers", 0)}',
        f'portcullis_upstream_requests_total{{kind="signature",status="200",upstream="local"}} {counts.get("signature", 0)}',
        f'portcullis_upstream_request_duration_seconds_sum{{kind="manifest"}} {counts.get("upstream_s", 0)}',
        f'portcullis_verification_duration_seconds_sum{{result="verified"}} {counts.get("lookup_s", 0)}',
        f'portcullis_verification_duration_seconds_count{{result="{counts.get("result", "verified")}"}} {counts.get("verdicts", 0)}',
        f'portcullis_signature_check_duration_seconds_sum{{result="verified"}} {counts.get("check_s", 0)}',
    ]
    for (mode, result), n in counts.get("decisions", {}).items():
        lines.append(f'portcullis_verdicts_total{{mode="{mode}",result="{result}",rule="r"}} {n}')
    return "\n".join(lines) + "\n"


def write(path, text):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w") as f:
        f.write(text)


def good_results(res, samples=3, burst=50):
    write(f"{res}/meta.txt", "\n".join([
        "date=2026-12-02 00:00 UTC", "nproc=2", f"cold_samples={samples}", f"burst={burst}",
        "burst_image=key-legacy", "blob_size=1024 MiB", "blob_runs=3", "wrk_duration=5s",
        "portcullis_rev=abc1234",
    ]) + "\n")
    for t in report.TARGETS:
        for mode in report.MODES:
            for c in report.CONNS:
                base = f"{res}/wrk/{t}__{mode}__{c}.txt"
                write(base, WRK.format(c=c, n=RPS[t] * 5, rps=RPS[t], extra=""))
                if t in report.PORTCULLIS:
                    write(base + ".metrics0", metrics(requests=1, manifest=1))
                    write(base + ".metrics", metrics(requests=1 + RPS[t] * 5, manifest=1))
    for t in report.BLOB_TARGETS:
        write(f"{res}/blob/{t}.txt", "\n".join(str(MIB_S[t] * 2**20) for _ in range(3)) + "\n")
        write(f"{res}/rss/{t}__after_blob.txt", "20480\n")
        write(f"{res}/rss/{t}__end.txt", "24576\n")
    for variant in report.COLD_VARIANTS:
        for proxy in report.PORTCULLIS:
            for img in report.IMAGES:
                for i in range(samples):
                    base = f"{res}/cold/{variant}/{proxy}__{img}__{i}"
                    enforce = proxy == "portcullis-enforce"
                    write(base + ".curl", "200 %.6f\n" % (0.0045 if enforce else 0.0020))
                    write(base + ".metrics0", metrics())
                    write(base + ".metrics", metrics(
                        requests=1, manifest=1, referrers=2 if enforce else 0, signature=2 if enforce else 0,
                        upstream_s=0.002, lookup_s=0.002 if enforce else 0, check_s=0.0003 if enforce else 0,
                        verdicts=1 if enforce else 0,
                        decisions={("enforce", "verified"): 1} if enforce else {("off", "unmatched"): 1}))
    write(f"{res}/burst/result.json", json.dumps(
        {"requests": burst, "statuses": {"200": burst}, "send_spread_ms": 3.0, "wall_ms": 90.0}))
    write(f"{res}/burst/metrics.txt", metrics(requests=burst, manifest=1, referrers=2, signature=2, verdicts=1))
    for t in report.store_report.COLD_TARGETS:
        write(f"{res}/blob/{t}__cold.txt", f"{760 * 2**20}\n")
    write(f"{res}/store/nginx-static.txt", "".join(f"{2000 * 2**20}\n" for _ in range(3)))
    size = 256 * 2**20
    write(f"{res}/store/burst/shape.txt", "256 50\n")
    write(f"{res}/store/burst/size.txt", f"{size}\n")
    write(f"{res}/store/burst/single.txt", f"200 {size} 0.400\n")
    write(f"{res}/store/burst/wall_ms.txt", "900\n")
    for i in range(50):
        write(f"{res}/store/burst/client_{i}.txt", f"200 {size} 0.850\n")
    store_metrics = 'portcullis_upstream_requests_total{{upstream="local",kind="blob",status="200"}} {n}\n' \
        'portcullis_store_fills_total{{result="committed"}} {n}\nportcullis_store_fill_waiters_total {w}\n'
    write(f"{res}/store/burst/before.metrics", store_metrics.format(n=3, w=0))
    write(f"{res}/store/burst/after.metrics", store_metrics.format(n=4, w=49))
    write(f"{res}/remote/rtt_ms.txt", "20\n")
    for variant in report.remote_report.VARIANTS:
        for img, (_, bound) in report.remote_report.IMAGES.items():
            for proxy in report.remote_report.PROXIES:
                enforce = proxy == "portcullis-enforce"
                for i in range(3):
                    stem = f"{res}/remote/{variant}__{proxy}__{img}__{i}"
                    write(stem + ".curl", "200 %.4f\n" % ((21 + (20 * bound + 1 if enforce else 0)) / 1000))
                    log = [{"method": "GET", "target": "/v2/x/manifests/d", "start": 0.0, "end": 0.02}]
                    if enforce:
                        # Chains beside the manifest fetch, `bound` + 1 deep.
                        log += [{"method": "GET", "target": f"/s/{k}", "start": 0.02 * k, "end": 0.02 * (k + 1)}
                                for k in range(bound + 1)]
                    write(stem + ".log.json", json.dumps(log))
    write(f"{res}/verdict_memory.txt", "verdict_memory: rss_mib=150.0 verdicts=100000 baseline_mib=5.0\n")
    for side, rps in (("on", 19000), ("off", 19500)):
        for i in range(3):
            write(f"{res}/ledger/wrk__{side}__{i}.txt", WRK.format(c=64, n=rps * 5, rps=rps, extra=""))
    write(f"{res}/ledger/on.metrics", f"{report.ledger_report.WRITTEN} 285000\n")
    write(f"{res}/ledger/off.metrics", f"{report.ledger_report.WRITTEN} 0\n")
    write(f"{res}/ledger/rows.txt", "1000000\n")
    write(f"{res}/ledger/bench.txt", "".join(
        f"ledger_audit {db}: 1000000 rows, 10000 images, seeded in 30.0 s; audit --since 7d: best 90 ms, "
        "median 95 ms (1200 entries)\n" for db in ("sqlite", "postgresql")))
    for side, rps in (("on", 19000), ("off", 19400)):
        for i in range(3):
            write(f"{res}/inventory/wrk__{side}__{i}.txt", WRK.format(c=64, n=rps * 5, rps=rps, extra=""))
    ingests = report.inventory_report.INGESTS
    write(f"{res}/inventory/on.metrics", f'{ingests}{{result="none"}} 1\n{ingests}{{result="known"}} 0\n')
    write(f"{res}/inventory/off.metrics", "portcullis_ready 1\n")
    write(f"{res}/inventory/size.txt", "10000 1000000\n")
    write(f"{res}/inventory/bench.txt", "".join(INVENTORY_LINE.format(db=db) + CONSOLE_LINE.format(db=db)
                                                for db in ("sqlite", "postgresql")))
    for db in ("sqlite", "postgresql"):
        write(f"{res}/ledger/cli__{db}.txt", "120\n125\n118\n130\n122\n")
        write(f"{res}/ledger/cli__{db}.json", json.dumps(
            {"let_through": [{"image": "a", "digest": "sha256:1"}], "refused": [], "faults": []}))


INVENTORY_LINE = (
    "inventory {db}: 10000 images, 3000000 packages, 1000000 pulls, seeded in 90.0 s; query p50 8.1 ms, "
    "p99 21.5 ms (200 queries, 480 entries on average); advisory (20 ranges) median 40.2 ms, max 48.0 ms "
    "(9000 entries); ingest of a 10485900-byte SBOM (8100 packages) median 120.5 ms, max 140.0 ms (read: median 40.0 ms)\n")

CONSOLE_LINE = (
    "console {db}: overview median 1.2 ms max 2.0 ms (48000 bytes); overview_7d median 1.0 ms max 1.5 ms "
    "(33000 bytes); audit median 150.0 ms max 170.0 ms (900000 bytes); image median 3.0 ms max 4.0 ms "
    "(51000 bytes); inventory_package median 40.0 ms max 50.0 ms (28000 bytes); inventory_advisory median "
    "90.0 ms max 95.0 ms (480000 bytes); policies median 0.1 ms max 0.2 ms (5600 bytes)\n")


def targets(res):
    """Target name → (measured, result) from the report written for res."""
    out_md = os.path.join(res, "out.md")
    with redirect_stdout(io.StringIO()):
        report.report(res, out_md)
    with open(out_md) as f:
        md = f.read()
    section = md.split("## Targets", 1)[1].split("\n## ", 1)[0]
    rows = {}
    for line in section.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) == 3 and cells[0] not in ("Target", "---"):
            rows[cells[0]] = (cells[1], cells[2])
    return rows


class ReportVerdicts(unittest.TestCase):
    def setUp(self):
        self.tmp = tempfile.TemporaryDirectory()
        self.res = self.tmp.name
        good_results(self.res)

    def tearDown(self):
        self.tmp.cleanup()

    def failing(self):
        return sorted(name for name, (_, result) in targets(self.res).items() if "PASS" not in result)

    def test_good_data_passes_every_target(self):
        rows = targets(self.res)
        self.assertEqual(len(rows), 25, rows)
        self.assertEqual(self.failing(), [], rows)

    def test_labels_name_the_parameters_used(self):
        with open(f"{self.res}/meta.txt") as f:
            meta = f.read()
        write(f"{self.res}/meta.txt", meta.replace("1024 MiB", "256 MiB"))
        self.assertIn("portcullis RSS < 64 MiB while streaming 256 MiB", targets(self.res))

    def test_a_refused_cold_pull_fails_the_latency_target(self):
        base = f"{self.res}/cold/primed/portcullis-enforce__key-legacy__1"
        write(base + ".curl", "403 0.001000\n")  # fast, and wrong
        self.assertEqual(self.failing(), ["Verification adds < 5 ms to a cold pull (keyed)"])

    def test_an_unmatched_or_audited_cold_pull_fails_the_latency_target(self):
        base = f"{self.res}/cold/first/portcullis-enforce__keyless-bundle__0"
        write(base + ".metrics", metrics(requests=1, manifest=1, verdicts=0,
                                         decisions={("off", "unmatched"): 1}))
        self.assertEqual(self.failing(), ["Verification adds < 10 ms to a cold pull (keyless)"])
        write(base + ".metrics", metrics(requests=1, manifest=1, verdicts=1,
                                         decisions={("audit", "verified"): 1}))
        self.assertEqual(self.failing(), ["Verification adds < 10 ms to a cold pull (keyless)"])

    def test_missing_cold_samples_fail(self):
        os.remove(f"{self.res}/cold/primed/portcullis__key-legacy__2.curl")
        self.assertEqual(self.failing(), ["Verification adds < 5 ms to a cold pull (keyed)"])

    def test_errors_on_portcullis_or_on_the_baseline_fail_warm_targets(self):
        write(f"{self.res}/wrk/nginx__digest__64.txt",
              WRK.format(c=64, n=7500, rps=1500, extra="  Non-2xx or 3xx responses: 12\n"))
        self.assertEqual(self.failing(), ["Warm manifest by digest ≥ 1.5× nginx req/s"])
        good_results(self.res)
        write(f"{self.res}/wrk/portcullis-enforce__tag__16.txt",
              WRK.format(c=16, n=140000, rps=28000,
                         extra="  Socket errors: connect 0, read 3, write 0, timeout 0\n"))
        self.assertEqual(self.failing(), ["Warm manifest by tag ≥ 1.0× distribution proxy req/s"])

    def test_a_missing_wrk_result_fails(self):
        os.remove(f"{self.res}/wrk/distribution-proxy__tag__16.txt")
        self.assertEqual(self.failing(), ["Warm manifest by tag ≥ 1.0× distribution proxy req/s"])

    def test_unreadable_rss_fails(self):
        write(f"{self.res}/rss/portcullis-enforce__after_blob.txt", "0\n")
        self.assertEqual(self.failing(), ["portcullis RSS < 64 MiB while streaming 1024 MiB"])

    def test_verdict_memory_without_data_or_with_zero_rss_fails(self):
        write(f"{self.res}/verdict_memory.txt", "verdict_memory: rss_mib=0.0 verdicts=100000\n")
        self.assertEqual(self.failing(), ["RSS < 256 MiB holding 100 000 cached verdicts"])
        os.remove(f"{self.res}/verdict_memory.txt")
        self.assertEqual(self.failing(), ["RSS < 256 MiB holding 100 000 cached verdicts"])

    def test_missing_or_failed_burst_fails(self):
        name = "Exactly 1 upstream discovery for 50 concurrent cold pulls"
        write(f"{self.res}/burst/result.json", json.dumps(
            {"requests": 50, "statuses": {"200": 49, "503": 1}, "send_spread_ms": 3.0, "wall_ms": 90.0}))
        self.assertEqual(self.failing(), [name])
        os.remove(f"{self.res}/burst/result.json")
        self.assertEqual(self.failing(), [name])
        good_results(self.res)
        os.remove(f"{self.res}/burst/metrics.txt")
        self.assertEqual(self.failing(), [name])

    def test_a_missing_blob_result_fails(self):
        os.remove(f"{self.res}/blob/nginx.txt")
        # The cold-blob target is a ratio to nginx's warm median too.
        self.assertEqual(self.failing(), ["Blob throughput ≥ 0.9× nginx", self.COLD])


    LEDGER_WARM = "Warm manifest by digest with the ledger on ≥ 0.95× the ledger off"
    AUDIT_SQLITE = "`portcullis audit --since 7d` over 1 000 000 pull records, 10 000 images < 200 ms (SQLite)"
    AUDIT_PG = "`portcullis audit --since 7d` over 1 000 000 pull records, 10 000 images < 200 ms (PostgreSQL)"

    def test_ledger_warm_fails_when_slower_or_when_the_ledger_did_not_record(self):
        write(f"{self.res}/ledger/wrk__on__1.txt", WRK.format(c=64, n=50000, rps=10000, extra=""))
        write(f"{self.res}/ledger/wrk__on__2.txt", WRK.format(c=64, n=50000, rps=10000, extra=""))
        self.assertEqual(self.failing(), [self.LEDGER_WARM])
        good_results(self.res)
        write(f"{self.res}/ledger/on.metrics", f"{report.ledger_report.WRITTEN} 0\n")
        self.assertEqual(self.failing(), [self.LEDGER_WARM])
        good_results(self.res)
        write(f"{self.res}/ledger/off.metrics", f"{report.ledger_report.WRITTEN} 12\n")
        self.assertEqual(self.failing(), [self.LEDGER_WARM])

    def test_ledger_warm_fails_on_errors_or_a_missing_round(self):
        write(f"{self.res}/ledger/wrk__off__0.txt",
              WRK.format(c=64, n=50000, rps=19500, extra="  Non-2xx or 3xx responses: 3\n"))
        self.assertEqual(self.failing(), [self.LEDGER_WARM])
        good_results(self.res)
        os.remove(f"{self.res}/ledger/wrk__off__2.txt")
        self.assertEqual(self.failing(), [self.LEDGER_WARM])

    def test_audit_fails_when_slow_unmeasured_or_empty(self):
        write(f"{self.res}/ledger/cli__postgresql.txt", "250\n260\n240\n")
        self.assertEqual(self.failing(), [self.AUDIT_PG])
        good_results(self.res)
        os.remove(f"{self.res}/ledger/cli__sqlite.txt")
        self.assertEqual(self.failing(), [self.AUDIT_SQLITE])
        good_results(self.res)
        write(f"{self.res}/ledger/cli__sqlite.json", json.dumps({"let_through": [], "refused": [], "faults": []}))
        self.assertEqual(self.failing(), [self.AUDIT_SQLITE])
        good_results(self.res)
        write(f"{self.res}/ledger/bench.txt", "ledger_audit sqlite: 1000 rows, 10000 images, seeded in 1.0 s; "
              "audit --since 7d: best 9 ms, median 9 ms (12 entries)\n")
        self.assertEqual(self.failing(), [self.AUDIT_PG, self.AUDIT_SQLITE])

    INVENTORY_WARM = "Warm manifest by digest with SBOM ingest on ≥ 0.95× ingest off"
    QUERY_PG = ("Inventory query by package + range, 10 000 images × 300 packages, 1 000 000 pull records: "
                "p99 < 50 ms (PostgreSQL)")
    ADVISORY_SQLITE = "Inventory by an OSV advisory with 20 affected ranges < 100 ms (SQLite)"
    INGEST_SQLITE = "Ingest of a 10 MB syft SBOM < 200 ms (SQLite)"

    def test_inventory_warm_fails_when_slower_or_when_nothing_was_ingested(self):
        write(f"{self.res}/inventory/wrk__on__0.txt", WRK.format(c=64, n=50000, rps=10000, extra=""))
        write(f"{self.res}/inventory/wrk__on__1.txt", WRK.format(c=64, n=50000, rps=10000, extra=""))
        self.assertEqual(self.failing(), [self.INVENTORY_WARM])
        good_results(self.res)
        write(f"{self.res}/inventory/on.metrics", "portcullis_ready 1\n")
        self.assertEqual(self.failing(), [self.INVENTORY_WARM])
        good_results(self.res)
        ingests = report.inventory_report.INGESTS
        write(f"{self.res}/inventory/off.metrics", f'{ingests}{{result="found"}} 2\n')
        self.assertEqual(self.failing(), [self.INVENTORY_WARM])

    def test_inventory_answers_fail_when_slow_empty_small_or_unmeasured(self):
        line = CONSOLE_LINE.format(db="sqlite") + CONSOLE_LINE.format(db="postgresql") + INVENTORY_LINE.format(db="postgresql")
        write(f"{self.res}/inventory/bench.txt",
              INVENTORY_LINE.format(db="sqlite") + line.replace("p99 21.5 ms", "p99 61.5 ms"))
        self.assertEqual(self.failing(), [self.QUERY_PG])
        good_results(self.res)
        write(f"{self.res}/inventory/bench.txt", line + INVENTORY_LINE.format(db="sqlite").replace(
            "(9000 entries)", "(0 entries)").replace("median 120.5 ms", "median 250.0 ms"))
        self.assertEqual(self.failing(), [self.INGEST_SQLITE, self.ADVISORY_SQLITE])
        good_results(self.res)
        write(f"{self.res}/inventory/bench.txt", line + INVENTORY_LINE.format(db="sqlite").replace(
            "10485900-byte", "1048590-byte"))
        self.assertEqual(self.failing(), [self.INGEST_SQLITE])
        good_results(self.res)
        write(f"{self.res}/inventory/bench.txt", line.replace("10000 images", "1000 images"))
        failing = self.failing()
        self.assertEqual(len(failing), 8, failing)

    def test_console_fails_when_a_page_is_slow_missing_or_unmeasured(self):
        sqlite = "Console: every page < 200 ms with 10 000 images and 1 000 000 ledger records (SQLite)"
        pg = sqlite.replace("(SQLite)", "(PostgreSQL)")
        write(f"{self.res}/inventory/bench.txt", INVENTORY_LINE.format(db="sqlite") + INVENTORY_LINE.format(db="postgresql")
              + CONSOLE_LINE.format(db="sqlite").replace("audit median 150.0", "audit median 250.0")
              + CONSOLE_LINE.format(db="postgresql").replace("; policies median 0.1 ms max 0.2 ms (5600 bytes)", ""))
        self.assertEqual(self.failing(), sorted([sqlite, pg]))
        good_results(self.res)
        write(f"{self.res}/inventory/bench.txt", INVENTORY_LINE.format(db="sqlite") + INVENTORY_LINE.format(db="postgresql")
              + CONSOLE_LINE.format(db="sqlite"))
        self.assertEqual(self.failing(), [pg])

    WARM = "Warm blob from the filesystem store ≥ 1.0× distribution's proxy mode"
    COLD = "Cold blob through the store ≥ 0.9× nginx's reverse proxy"
    BURST = "50 concurrent cold pulls of one 256 MiB blob: 1 upstream request"

    def test_good_store_data_passes_and_names_the_burst(self):
        rows = targets(self.res)
        self.assertEqual(rows[self.BURST][1], "**PASS**")
        self.assertIn("1 upstream blob request(s)", rows[self.BURST][0])
        self.assertIn("49 waiter(s)", rows[self.BURST][0])

    def test_a_second_upstream_request_or_a_short_client_fails_the_burst(self):
        write(f"{self.res}/store/burst/after.metrics",
              'portcullis_upstream_requests_total{upstream="local",kind="blob",status="200"} 5\n')
        self.assertEqual(self.failing(), [self.BURST])
        good_results(self.res)
        write(f"{self.res}/store/burst/client_7.txt", f"200 {1000} 0.2\n")
        self.assertEqual(self.failing(), [self.BURST])
        good_results(self.res)
        os.remove(f"{self.res}/store/burst/after.metrics")
        self.assertEqual(self.failing(), [self.BURST])

    def test_slow_warm_or_cold_blobs_fail(self):
        write(f"{self.res}/blob/portcullis.txt", "".join(f"{1000 * 2**20}\n" for _ in range(3)))
        self.assertEqual(self.failing(), [self.WARM])
        good_results(self.res)
        write(f"{self.res}/blob/portcullis-enforce__cold.txt", f"{600 * 2**20}\n")
        self.assertEqual(self.failing(), [self.COLD])
        os.remove(f"{self.res}/blob/portcullis-enforce__cold.txt")
        self.assertEqual(self.failing(), [self.COLD])


    REMOTE_LEGACY = "Registry 20 ms away: verification adds ≤ 1 RTT to a cold pull (legacy `.sig`)"
    REMOTE_BUNDLE = "Registry 20 ms away: verification adds ≤ 2 RTT to a cold pull (bundle referrer)"

    def test_remote_depth_is_the_longest_chain_of_answered_requests(self):
        d = report.remote_report.depth
        self.assertEqual(d([]), 0)
        self.assertEqual(d([{"start": 0, "end": 1}, {"start": 0.5, "end": 1.5}]), 1)
        self.assertEqual(d([{"start": 0, "end": 1}, {"start": 1, "end": 2}, {"start": 0.2, "end": 3},
                            {"start": 2.1, "end": 3}]), 3)

    def test_remote_targets_fail_on_a_deeper_chain_a_slower_pull_or_a_missing_sample(self):
        self.assertIn("of a 20.0 ms round trip, depth 1 → 2", targets(self.res)[self.REMOTE_LEGACY][0])
        stem = f"{self.res}/remote/api__portcullis-enforce__key-legacy"
        deep = [{"start": 0.02 * k, "end": 0.02 * (k + 1)} for k in range(3)]
        for i in range(3):
            write(f"{stem}__{i}.log.json", json.dumps(deep))
        self.assertEqual(self.failing(), [self.REMOTE_LEGACY])
        good_results(self.res)
        for i in range(3):
            write(f"{self.res}/remote/tags__portcullis-enforce__keyless-bundle__{i}.curl", "200 0.0900\n")
        self.assertEqual(self.failing(), [self.REMOTE_BUNDLE])
        good_results(self.res)
        write(f"{self.res}/remote/tags__portcullis__key-legacy__1.curl", "502 0.02\n")
        self.assertEqual(self.failing(), [self.REMOTE_LEGACY])


if __name__ == "__main__":
    unittest.main()
