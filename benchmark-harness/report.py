#!/usr/bin/env python3
"""Helpers for benchmark-harness/run.sh (standard library only).

    report.py ports N                        print N distinct free TCP ports on 127.0.0.1
    report.py push-plan REGISTRY REPO DIR    push tests/fixtures/sigstore/registry/plan.json into REPO
    report.py burst URL N ACCEPT OUT.json    N concurrent GETs, all sent after every connection is open
    report.py report RESULTS_DIR OUT.md      parse the raw results, write the report, print the summary

run.sh only starts processes and collects raw output (wrk text, curl timings, /proc numbers,
Prometheus pages) under RESULTS_DIR; every number in the report is parsed here.
"""

import http.client
import json
import os
import re
import socket
import statistics
import sys
import time
import urllib.parse

import inventory_report
import ledger_report
import remote_report
import store_report

# === small helpers ===


def freeports(n):
    """n distinct free ports: every socket stays bound until all are chosen."""
    socks = []
    for _ in range(n):
        s = socket.socket()
        s.bind(("127.0.0.1", 0))
        socks.append(s)
    ports = [s.getsockname()[1] for s in socks]
    for s in socks:
        s.close()
    return ports


def read(path, default=None):
    try:
        with open(path) as f:
            return f.read()
    except OSError:
        return default


def median(xs):
    return statistics.median(xs) if xs else None


# === push-plan ===


def http_request(host, method, path, body=None, headers=None, timeout=60):
    conn = http.client.HTTPConnection(host, timeout=timeout)
    try:
        conn.request(method, path, body=body, headers=headers or {})
        resp = conn.getresponse()
        data = resp.read()
        return resp.status, dict((k.lower(), v) for k, v in resp.getheaders()), data
    finally:
        conn.close()


def push_blob(registry, repo, data, digest):
    status, headers, body = http_request(registry, "POST", f"/v2/{repo}/blobs/uploads/")
    if status != 202:
        raise SystemExit(f"POST upload to {repo}: {status} {body[:200]!r}")
    loc = urllib.parse.urlsplit(headers["location"])
    query = (loc.query + "&" if loc.query else "") + "digest=" + digest
    status, _, body = http_request(
        registry, "PUT", loc.path + "?" + query, body=data,
        headers={"Content-Type": "application/octet-stream"},
    )
    if status != 201:
        raise SystemExit(f"PUT blob {digest} to {repo}: {status} {body[:200]!r}")


def push_plan(registry, repo, fixture_dir):
    with open(os.path.join(fixture_dir, "registry", "plan.json")) as f:
        plan = json.load(f)
    blob_dir = os.path.join(fixture_dir, "registry", "blobs")

    def blob(hexdigest):
        with open(os.path.join(blob_dir, hexdigest), "rb") as f:
            return f.read()

    pushed = set()
    for step in plan:
        for hexdigest in step["blobs"]:
            if hexdigest not in pushed:
                push_blob(registry, repo, blob(hexdigest), "sha256:" + hexdigest)
                pushed.add(hexdigest)
        ref = step["reference"]
        status, _, body = http_request(
            registry, "PUT", f"/v2/{repo}/manifests/{ref}", body=blob(step["manifest"]),
            headers={"Content-Type": step["media_type"]},
        )
        if status != 201:
            raise SystemExit(f"PUT manifest {repo}:{ref}: {status} {body[:200]!r}")


# === burst ===


def burst(url, n, accept, out):
    """Opens n connections, then writes one GET on each in a tight loop (so the requests leave
    within a few milliseconds of each other), then reads every response."""
    import selectors

    u = urllib.parse.urlsplit(url)
    host, port = u.hostname, u.port or 80
    path = u.path + ("?" + u.query if u.query else "")
    request = (f"GET {path} HTTP/1.1\r\nHost: {u.netloc}\r\nAccept: {accept}\r\n"
               "Connection: close\r\n\r\n").encode()
    socks = [socket.create_connection((host, port), timeout=30) for _ in range(n)]
    start = time.monotonic()
    for s in socks:
        s.sendall(request)
    sent_ms = (time.monotonic() - start) * 1000
    sel = selectors.DefaultSelector()
    bufs = {}
    for s in socks:
        s.setblocking(False)
        sel.register(s, selectors.EVENT_READ)
        bufs[s] = bytearray()
    deadline = time.monotonic() + 120
    open_socks = len(socks)
    while open_socks and time.monotonic() < deadline:
        for key, _ in sel.select(timeout=1):
            s = key.fileobj
            try:
                chunk = s.recv(65536)
            except BlockingIOError:
                continue
            except OSError:
                chunk = b""
            if chunk:
                bufs[s] += chunk
            else:  # Connection: close — the response is complete
                sel.unregister(s)
                open_socks -= 1
    wall_ms = (time.monotonic() - start) * 1000
    counts = {}
    for s in socks:
        head = bytes(bufs[s][:64]).split(b"\r\n", 1)[0].split()
        status = head[1].decode() if len(head) > 1 else "no response"
        counts[status] = counts.get(status, 0) + 1
        s.close()
    result = {"requests": n, "statuses": counts, "send_spread_ms": sent_ms, "wall_ms": wall_ms}
    with open(out, "w") as f:
        json.dump(result, f)
    print(json.dumps(result))


# === parsing raw results ===

UNITS = {"us": 1e-3, "ms": 1.0, "s": 1000.0, "m": 60000.0}


def parse_duration_ms(text):
    m = re.fullmatch(r"([\d.]+)(us|ms|s|m)", text.strip())
    return float(m.group(1)) * UNITS[m.group(2)] if m else None


def parse_wrk(text):
    """requests/s, p50 and p99 in ms, non-2xx and socket errors from `wrk --latency` output."""
    if not text:
        return None
    r = {}
    m = re.search(r"Requests/sec:\s+([\d.]+)", text)
    r["rps"] = float(m.group(1)) if m else None
    for pct in ("50", "99"):
        m = re.search(rf"^\s+{pct}%\s+(\S+)", text, re.M)
        r["p" + pct] = parse_duration_ms(m.group(1)) if m else None
    m = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", text)
    r["non2xx"] = int(m.group(1)) if m else 0
    m = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", text)
    r["sockerr"] = sum(int(x) for x in m.groups()) if m else 0
    m = re.search(r"(\d+) requests in", text)
    r["requests"] = int(m.group(1)) if m else None
    return r


METRIC_LINE = re.compile(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})?\s+(\S+)")
LABEL = re.compile(r'(\w+)="((?:[^"\\]|\\.)*)"')


def parse_metrics(text):
    """Prometheus text → list of (name, {labels}, value)."""
    out = []
    for line in (text or "").splitlines():
        if not line or line.startswith("#"):
            continue
        m = METRIC_LINE.match(line)
        if not m:
            continue
        labels = dict(LABEL.findall(m.group(2) or ""))
        try:
            out.append((m.group(1), labels, float(m.group(3))))
        except ValueError:
            pass
    return out


def msum(samples, name, **want):
    return sum(v for n, l, v in samples if n == name and all(l.get(k) == x for k, x in want.items()))


def by_labels(samples, name, labels):
    """Sum per combination of label values, joined with '/'."""
    out = {}
    for n, l, v in samples:
        if n == name:
            k = "/".join(l.get(x, "") for x in labels)
            out[k] = out.get(k, 0) + v
    return out


def by_label(samples, name, label):
    out = {}
    for n, l, v in samples:
        if n == name:
            out[l.get(label, "")] = out.get(l.get(label, ""), 0) + v
    return out


# === report ===

TARGETS = ["upstream", "nginx", "distribution-proxy", "portcullis", "portcullis-enforce"]
BLOB_TARGETS = ["upstream", "nginx", "nginx-defaults", "distribution-proxy", "portcullis", "portcullis-enforce"]
LABELS = {
    "upstream": "upstream, direct (reference)",
    "nginx": "nginx (reverse proxy)",
    "nginx-defaults": "nginx, default proxy buffers (reference)",
    "distribution-proxy": "distribution (proxy mode)",
    "portcullis": "portcullis (no policy)",
    "portcullis-enforce": "portcullis (enforce)",
}
PORTCULLIS = ("portcullis", "portcullis-enforce")
COLD_VARIANTS = {
    "primed": "cold digest, warmed-up process",
    "first": "first request after start",
}
IMAGES = {"key-legacy": "key-legacy (key, legacy .sig)", "keyless-bundle": "keyless-bundle (keyless, v3 bundle)"}
CONNS = ["16", "64"]
MODES = ["digest", "tag"]
UPSTREAM_DURATION = "portcullis_upstream_request_duration_seconds_sum"
LOOKUP_DURATION = "portcullis_verification_duration_seconds_sum"
CHECK_DURATION = "portcullis_signature_check_duration_seconds_sum"
UPSTREAM_REQUESTS = "portcullis_upstream_requests_total"
VERDICT_COUNT = "portcullis_verification_duration_seconds_count"
VERDICTS = "portcullis_verdicts_total"


def fmt(x, nd=1, unit=""):
    if x is None:
        return "n/a"
    return f"{x:,.{nd}f}{unit}"


def ratio(a, b):
    if a is None or b is None or b == 0:
        return None
    return a / b


def fmt_ratio(r):
    return "n/a" if r is None else f"{r:.2f}×"


def verdict(ok):
    """PASS only on a True measured from data: missing or unreadable data fails."""
    if ok is None:
        return "**FAIL** (no data)"
    return "**PASS**" if ok else "**FAIL**"


def table(header, rows):
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def delta(after, before):
    """after − before, per (name, labels)."""
    prev = {(n, tuple(sorted(l.items()))): v for n, l, v in before}
    return [(n, l, v - prev.get((n, tuple(sorted(l.items()))), 0.0)) for n, l, v in after]


def nonzero(d):
    return {k: v for k, v in d.items() if v}


def load(res):
    """Every raw result under res, parsed."""
    r = {"meta": {}}
    for line in (read(os.path.join(res, "meta.txt")) or "").splitlines():
        if "=" in line:
            k, v = line.split("=", 1)
            r["meta"][k.strip()] = v.strip()

    # warm manifests: wrk output, and portcullis's upstream traffic during each run
    r["wrk"] = {}
    for t in TARGETS:
        for mode in MODES:
            for c in CONNS:
                base = os.path.join(res, "wrk", f"{t}__{mode}__{c}.txt")
                w = parse_wrk(read(base))
                if w and t in PORTCULLIS:
                    m = delta(parse_metrics(read(base + ".metrics")), parse_metrics(read(base + ".metrics0")))
                    client = msum(m, "portcullis_http_requests_total", route="manifest")
                    w["upstream_per_request"] = ratio(msum(m, UPSTREAM_REQUESTS), client) if m else None
                r["wrk"][(t, mode, c)] = w

    # blobs, MiB/s
    r["blob"] = {}
    for t in BLOB_TARGETS:
        speeds = [float(x) / 2**20 for x in (read(os.path.join(res, "blob", f"{t}.txt")) or "").split()]
        r["blob"][t] = {"runs": speeds, "median": median(speeds)}

    # VmHWM, KiB
    def kib(name):
        v = read(os.path.join(res, "rss", name))
        return int(v) if v and v.strip().isdigit() and int(v) > 0 else None

    r["rss"] = {t: (kib(f"{t}__after_blob.txt"), kib(f"{t}__end.txt")) for t in BLOB_TARGETS}

    # cold pulls: the measured request alone (metrics after − before it)
    r["cold"] = {}
    for variant in COLD_VARIANTS:
        for proxy in PORTCULLIS:
            for img in IMAGES:
                samples = []
                for i in range(1000):
                    base = os.path.join(res, "cold", variant, f"{proxy}__{img}__{i}")
                    curl = read(base + ".curl")
                    if curl is None:
                        break
                    m = delta(parse_metrics(read(base + ".metrics")), parse_metrics(read(base + ".metrics0")))
                    code, total = (curl.split() + ["?", "nan"])[:2]
                    samples.append({
                        "code": code,
                        "client_ms": float(total) * 1000,
                        "upstream_ms": msum(m, UPSTREAM_DURATION) * 1000,
                        "lookup_ms": msum(m, LOOKUP_DURATION) * 1000,
                        "check_ms": msum(m, CHECK_DURATION) * 1000,
                        "verdicts": nonzero(by_label(m, VERDICT_COUNT, "result")),
                        # mode/result of every decision the measured request made
                        "decisions": nonzero(by_labels(m, VERDICTS, ("mode", "result"))),
                        "upstream_requests": nonzero(by_label(m, UPSTREAM_REQUESTS, "kind")),
                    })
                r["cold"][(variant, proxy, img)] = samples

    # burst
    r["burst"] = json.loads(read(os.path.join(res, "burst", "result.json")) or "null")
    r["burst_metrics"] = parse_metrics(read(os.path.join(res, "burst", "metrics.txt")))

    # the lead's verdict-memory bench
    m = re.search(r"verdict_memory: rss_mib=([\d.]+) verdicts=(\d+)",
                  read(os.path.join(res, "verdict_memory.txt")) or "")
    r["verdict_memory"] = (float(m.group(1)), int(m.group(2))) if m else None
    return r


def report(res, out_md):
    r = load(res)
    meta, wrk, blob, rss, cold = r["meta"], r["wrk"], r["blob"], r["rss"], r["cold"]

    def rps(t, mode, c):
        w = wrk.get((t, mode, c))
        return w and w["rps"]

    # --- warm manifests ---
    warm_header = ["Request", "Conns", "Target", "Req/s", "p50 ms", "p99 ms", "× nginx", "× distribution",
                   "Upstream req. per request", "Errors"]
    warm_rows = []
    for mode in MODES:
        for c in CONNS:
            for t in TARGETS:
                w = wrk[(t, mode, c)] or {}
                per = w.get("upstream_per_request")
                warm_rows.append([
                    f"by {mode}", c, LABELS[t], fmt(w.get("rps"), 0), fmt(w.get("p50"), 2), fmt(w.get("p99"), 2),
                    fmt_ratio(ratio(w.get("rps"), rps("nginx", mode, c))),
                    fmt_ratio(ratio(w.get("rps"), rps("distribution-proxy", mode, c))),
                    fmt(per, 3) if t in PORTCULLIS else {
                        "upstream": "—", "nginx": "1 (by design)",
                        "distribution-proxy": "0 (by design)" if mode == "digest" else "1 `HEAD` (by design)",
                    }[t],
                    ((w.get("non2xx") or 0) + (w.get("sockerr") or 0)) if w else "n/a",
                ])

    # --- blobs ---
    blob_header = ["Target", "Median MiB/s", "Runs (MiB/s)", "× nginx", "× distribution"]
    blob_rows = [[
        LABELS[t], fmt(blob[t]["median"], 0), ", ".join(fmt(x, 0) for x in blob[t]["runs"]) or "n/a",
        fmt_ratio(ratio(blob[t]["median"], blob["nginx"]["median"])),
        fmt_ratio(ratio(blob[t]["median"], blob["distribution-proxy"]["median"])),
    ] for t in BLOB_TARGETS]

    # --- RSS ---
    def mib(k):
        return None if k is None else k / 1024

    rss_header = ["Process", "VmHWM after the blob fetches (MiB)", "VmHWM at the end (MiB)"]
    rss_rows = [[LABELS[t], fmt(mib(rss[t][0]), 1), fmt(mib(rss[t][1]), 1)] for t in BLOB_TARGETS]

    # --- cold pulls ---
    def cold_med(variant, proxy, img, key):
        return median([x[key] for x in cold.get((variant, proxy, img), [])])

    cold_header = ["Image", "Samples", "No policy: client ms", "Enforce: client ms", "Verification adds ms",
                   "Enforce: lookup ms", "Enforce: crypto ms", "Enforce: upstream ms (sum)",
                   "No policy: upstream ms", "Status"]
    cold_rows, adds = {}, {}
    for variant in COLD_VARIANTS:
        rows = []
        for img, label in IMAGES.items():
            base = cold_med(variant, "portcullis", img, "client_ms")
            enf = cold_med(variant, "portcullis-enforce", img, "client_ms")
            adds[(variant, img)] = None if base is None or enf is None else enf - base
            enforced = cold.get((variant, "portcullis-enforce", img), [])
            status = " ".join(sorted({x["code"] for x in enforced})) + " " + ",".join(
                sorted({k for x in enforced for k in x["verdicts"]}))
            rows.append([
                label, len(enforced), fmt(base, 2), fmt(enf, 2), f"**{fmt(adds[(variant, img)], 2)}**",
                fmt(cold_med(variant, "portcullis-enforce", img, "lookup_ms"), 2),
                fmt(cold_med(variant, "portcullis-enforce", img, "check_ms"), 2),
                fmt(cold_med(variant, "portcullis-enforce", img, "upstream_ms"), 2),
                fmt(cold_med(variant, "portcullis", img, "upstream_ms"), 2), status,
            ])
        cold_rows[variant] = rows
    cold_detail = [[
        COLD_VARIANTS[variant], LABELS[proxy], img, ", ".join(fmt(x["client_ms"], 2) for x in samples),
        ", ".join(f"{k}={int(v)}" for k, v in sorted((samples[0]["upstream_requests"] if samples else {}).items())),
    ] for (variant, proxy, img), samples in cold.items()]

    # --- burst ---
    burst_res, bm = r["burst"], r["burst_metrics"]
    burst_kinds = by_label(bm, UPSTREAM_REQUESTS, "kind")
    n_verdicts = sum(by_label(bm, VERDICT_COUNT, "result").values()) if bm else None
    single = cold.get(("first", "portcullis-enforce", meta.get("burst_image", "key-legacy"))) or []
    single_kinds = single[0]["upstream_requests"] if single else {}
    burst_rows = [[k, fmt(single_kinds.get(k, 0), 0), fmt(burst_kinds.get(k, 0), 0)]
                  for k in sorted(set(burst_kinds) | set(single_kinds))]
    one_discovery = None
    if bm and single_kinds:
        one_discovery = n_verdicts == 1 and all(
            burst_kinds.get(k, 0) == single_kinds.get(k, 0) for k in ("referrers", "signature"))
    burst_statuses = burst_res and burst_res.get("statuses")
    if not burst_res or burst_statuses != {"200": burst_res.get("requests")}:
        one_discovery = None if not burst_res else False

    # --- targets ---
    def worst(mode, base):
        rs = [ratio(rps(t, mode, c), rps(base, mode, c)) for t in PORTCULLIS for c in CONNS]
        return None if not rs or any(x is None for x in rs) else min(rs)

    def wrk_errors(mode, base):
        """Runs behind a warm target that had any non-2xx answer or socket error (or no result)."""
        bad = []
        for t in PORTCULLIS + (base,):
            for c in CONNS:
                w = wrk.get((t, mode, c))
                if not w or not w.get("requests") or w.get("rps") is None:
                    bad.append(f"{t} c={c}: no result")
                elif w.get("non2xx") or w.get("sockerr"):
                    bad.append(f"{t} c={c}: {w.get('non2xx')} non-2xx, {w.get('sockerr')} socket errors")
        return bad

    def warm_target(mode, base, limit):
        bad = wrk_errors(mode, base)
        text = ratios_text(mode, base) + ("; " + "; ".join(bad) if bad else "")
        if bad:
            return text, "**FAIL** (errors)"
        return text, at_least(worst(mode, base), limit)

    def cold_faults(img):
        """Why the cold samples of img cannot back a latency target: every no-policy sample must
        answer 200, and every enforce sample 200 with exactly one decision, enforce/verified."""
        bad = []
        want = int(meta.get("cold_samples", "0") or 0)
        for variant in COLD_VARIANTS:
            for proxy in PORTCULLIS:
                samples = cold.get((variant, proxy, img)) or []
                if not samples or len(samples) < want:
                    bad.append(f"{variant} {proxy}: {len(samples)} of {want} samples")
                for x in samples:
                    if x["code"] != "200":
                        bad.append(f"{variant} {proxy}: status {x['code']}")
                    elif proxy == "portcullis-enforce" and x["decisions"] != {"enforce/verified": 1}:
                        bad.append(f"{variant} {proxy}: decisions {x['decisions'] or 'none'}")
        return sorted(set(bad))

    def cold_target(img, limit):
        bad = cold_faults(img)
        text = adds_text(img) + ("; " + "; ".join(bad) if bad else "")
        if bad:
            return text, "**FAIL** (not a verified 200)"
        return text, below(adds.get(("primed", img)), limit)

    def ratios_text(mode, base):
        return "; ".join(
            ("no policy " if t == "portcullis" else "enforce ")
            + " / ".join(fmt_ratio(ratio(rps(t, mode, c), rps(base, mode, c))) for c in CONNS)
            for t in PORTCULLIS) + " (16 / 64 conns)"

    def at_least(x, limit):
        return verdict(None if x is None else x >= limit)

    blob_ratios = [ratio(blob[t]["median"], blob["nginx"]["median"]) for t in PORTCULLIS]
    blob_ratios_default = [ratio(blob[t]["median"], blob["nginx-defaults"]["median"]) for t in PORTCULLIS]
    rss_after = [rss[t][0] for t in PORTCULLIS]

    def adds_text(img):
        return (f"{fmt(adds.get(('primed', img)), 2, ' ms')} (cold digest, warmed-up process); "
                f"{fmt(adds.get(('first', img)), 2, ' ms')} as the first request after start")

    def below(x, limit):
        return verdict(None if x is None else x < limit)

    vm = r["verdict_memory"]
    burst_n = meta.get("burst", "?")
    targets = [
        ["Warm manifest by digest ≥ 1.5× nginx req/s", *warm_target("digest", "nginx", 1.5)],
        ["Warm manifest by tag ≥ 1.0× distribution proxy req/s", *warm_target("tag", "distribution-proxy", 1.0)],
        ["Blob throughput ≥ 0.9× nginx",
         f"no policy {fmt_ratio(blob_ratios[0])}; enforce {fmt_ratio(blob_ratios[1])} (against nginx with its default "
         f"proxy buffers: {fmt_ratio(blob_ratios_default[0])}; {fmt_ratio(blob_ratios_default[1])})",
         at_least(None if None in blob_ratios else min(blob_ratios), 0.9)],
        ["Verification adds < 5 ms to a cold pull (keyed)", *cold_target("key-legacy", 5)],
        ["Verification adds < 10 ms to a cold pull (keyless)", *cold_target("keyless-bundle", 10)],
        [f"Exactly 1 upstream discovery for {burst_n} concurrent cold pulls",
         (f"{int(n_verdicts)} verdict computed; referrers {fmt(burst_kinds.get('referrers', 0), 0)}, "
          f"signature {fmt(burst_kinds.get('signature', 0), 0)} upstream requests (one cold pull: "
          f"{fmt(single_kinds.get('referrers', 0), 0)}, {fmt(single_kinds.get('signature', 0), 0)}); "
          f"client statuses {json.dumps(burst_statuses)}") if n_verdicts is not None else "n/a",
         verdict(one_discovery)],
        [f"portcullis RSS < 64 MiB while streaming {meta.get('blob_size', '?')}",
         f"no policy {fmt(mib(rss_after[0]), 1, ' MiB')}; enforce {fmt(mib(rss_after[1]), 1, ' MiB')}",
         below(None if None in rss_after else mib(max(rss_after)), 64)],
        ["RSS < 256 MiB holding 100 000 cached verdicts",
         f"{vm[0]:.1f} MiB for {vm[1]:,} verdicts (`cargo bench --bench verdict_memory`)" if vm
         else "not measured (no `verdict_memory` bench output)",
         verdict(vm[0] > 0 and vm[0] < 256 and vm[1] >= 100000) if vm else verdict(None)],
    ]
    remote = remote_report.load(res)
    targets += remote_report.targets(remote)
    store = store_report.load(res)
    targets += store_report.targets(store, blob)
    ledger = ledger_report.load(res)
    targets += ledger_report.targets(ledger)
    inventory = inventory_report.load(res)
    targets += inventory_report.targets(inventory)
    summary = table(["Target", "Measured", "Result"], targets)

    # --- what bounds each number, from this run's data ---
    def per(t, mode):
        xs = [wrk[(t, mode, c)].get("upstream_per_request") for c in CONNS if wrk.get((t, mode, c))]
        xs = [x for x in xs if x is not None]
        return max(xs) if xs else None

    def rng(t, mode):
        xs = [rps(t, mode, c) for c in CONNS]
        return " / ".join(fmt(x, 0) for x in xs)

    def served(x):
        if x is None:
            return "unknown"
        if x < 0.01:
            return f"{x:.3f} upstream requests per client request: served from memory"
        return f"{x:.2f} upstream requests per client request"

    notes = []
    notes.append(
        f"- **Upstream.** docker-registry answering directly does {rng('upstream', 'digest')} req/s by digest and "
        f"{rng('upstream', 'tag')} by tag (16 / 64 conns), sharing the 2 cores with `wrk`. It reads link files and "
        "the manifest from its filesystem storage on every request.")
    notes.append(
        f"- **nginx** turns each request into one upstream request over its keepalive pool: "
        f"{rng('nginx', 'digest')} req/s by digest, i.e. "
        f"{' / '.join(fmt_ratio(ratio(rps('nginx', 'digest', c), rps('upstream', 'digest', c))) for c in CONNS)} "
        "of the upstream alone: nginx is bounded by the upstream, and by the CPU it takes from it on the "
        "shared cores.")
    notes.append(
        f"- **distribution-proxy** serves a digest from its own storage without asking the upstream "
        f"({rng('distribution-proxy', 'digest')} req/s: bounded by its own filesystem-backed manifest path), and "
        f"for a tag first sends the upstream a `HEAD` ({rng('distribution-proxy', 'tag')} req/s: bounded by that "
        "extra round trip plus its own path).")
    def pc_note(mode):
        x = per("portcullis", mode)
        speed = f"{rng('portcullis', mode)} req/s (enforce {rng('portcullis-enforce', mode)})"
        if x is None:
            return f"{speed}; upstream traffic unknown."
        if x < 0.01:
            return (f"{speed}, served from memory ({x:.3f} upstream requests per client request): bounded by "
                    "portcullis's own CPU on the 2 cores it shares with `wrk`, which caps every target alike.")
        return (f"{speed} with {x:.2f} upstream requests per client request: bounded by the upstream, like nginx "
                f"(upstream alone: {rng('upstream', mode)} req/s).")

    notes.append(f"- **portcullis by digest:** {pc_note('digest')}")
    notes.append(f"- **portcullis by tag:** {pc_note('tag')} A tag is revalidated upstream on every request "
                 "unless its upstream entry sets `tag_ttl`; the benchmark leaves it unset.")
    notes.append(
        f"- **Blobs.** The upstream alone streams {fmt(blob['upstream']['median'], 0)} MiB/s to curl. nginx "
        f"({fmt(blob['nginx']['median'], 0)}) and portcullis ({fmt(blob['portcullis']['median'], 0)}, enforce "
        f"{fmt(blob['portcullis-enforce']['median'], 0)}) stream from it on every fetch: one more copy through "
        "loopback on the same 2 cores, so they are bounded by the upstream and by their own per-chunk CPU cost. "
        f"With its default buffers (8 × one page) nginx manages {fmt(blob['nginx-defaults']['median'], 0)} MiB/s: "
        "its many small reads and writes are the limit there, not the upstream. distribution-proxy serves its "
        "own local copy after the priming fetch, one hop less. Single runs vary by tens of percent on this "
        "shared machine: compare the medians.")
    for img, label in IMAGES.items():
        samples = cold.get(("primed", "portcullis-enforce", img)) or []
        if not samples:
            continue
        kinds = samples[0]["upstream_requests"]
        extra = {k: int(v) for k, v in sorted(kinds.items()) if k != "manifest"}
        lookup = cold_med("primed", "portcullis-enforce", img, "lookup_ms")
        check = cold_med("primed", "portcullis-enforce", img, "check_ms")
        network = None if lookup is None or check is None else lookup - check
        notes.append(
            f"- **Cold pull, {img}:** verification adds {fmt(adds.get(('primed', img)), 2)} ms. The cryptography "
            f"and conditions take {fmt(check, 2)} ms of it; the rest of the {fmt(lookup, 2)} ms lookup "
            f"(≈ {fmt(network, 2)} ms) is the {sum(extra.values())} discovery requests to the upstream "
            f"({', '.join(f'{k} {v}' for k, v in extra.items())}). distribution 2.8 answers the referrers API "
            "with 404, so the tag-schema fallback follows. The number is bounded by upstream round trips, "
            "not by verification; here each is a loopback request to a local registry, while against a remote "
            "registry each costs a network round trip.")
    notes.append(
        "- **RSS.** VmHWM is a high-water mark since the process started; \"at the end\" includes the "
        "64-connection `wrk` runs. portcullis streams blobs through without holding them.")

    machine = (f"{meta.get('nproc', '?')} CPUs ({meta.get('cpu', '?')}), {meta.get('mem', '?')} RAM, "
               f"Linux {meta.get('kernel', '?')}")
    versions = (f"portcullis `{meta.get('portcullis_rev', '?')}` ({meta.get('portcullis_version', '?')}), "
                f"nginx {meta.get('nginx', '?')}, distribution {meta.get('distribution', '?')}, "
                f"wrk {meta.get('wrk', '?')}, curl {meta.get('curl', '?')}, Python {meta.get('python', '?')}")
    burst_line = (f"Verdicts computed: {fmt(n_verdicts, 0)}. Client statuses: {json.dumps(burst_statuses)}; the "
                  f"{burst_n} requests were written within {fmt(burst_res and burst_res.get('send_spread_ms'), 1)} ms "
                  f"and all answered within {fmt(burst_res and burst_res.get('wall_ms'), 0)} ms.")

    md = f"""# Benchmarks

Generated by [`benchmark-harness/run.sh`](../benchmark-harness/run.sh); do not edit by hand, re-run the script.

- **Date:** {meta.get('date', '?')}
- **Commit measured:** `{meta.get('portcullis_rev', '?')}` (regenerate this file whenever a change to `src/` touches a measured path)
- **Machine:** {machine}
- **Versions:** {versions}
- **Run time:** {meta.get('runtime', '?')} (release build excluded)

Everything runs on one machine and binds 127.0.0.1: the upstream (`docker-registry`, filesystem
storage), the proxies in front of it, and the load generators. Absolute numbers on a shared
2-core machine drift from run to run; the targets use ratios against baselines measured in the
same run.

| Target | What it is |
|---|---|
| upstream | The upstream `docker-registry` itself, asked directly: a reference for what the proxies are bounded by, not a proxy. |
| nginx | nginx {meta.get('nginx', '?')} as a plain reverse proxy: `proxy_pass` to an upstream block with a keepalive pool (HTTP/1.1, `Connection ""`), `worker_processes auto`, no access log, no cache. Response buffers sized for blobs and kept in memory: `proxy_buffer_size 256k; proxy_buffers 16 256k; proxy_busy_buffers_size 512k; proxy_max_temp_file_size 0`. It verifies nothing and caches nothing. |
| nginx-defaults | The same nginx with nginx's default response buffering (8 one-page buffers, spooling to a temp file). Measured for blobs only, as a reference: the buffers make no difference to small manifests. |
| distribution-proxy | `docker-registry` in proxy mode (`proxy.remoteurl`) with the in-memory blob descriptor cache: the pull-through cache that verifies nothing. It keeps manifests and blobs on its disk and asks the upstream on every tag request. |
| portcullis | `target/release/portcullis`, `policies: []`, `unmatched: allow`. |
| portcullis-enforce | The same binary with enforce rules under the fixtures' trusted root: `local/keyed/*` needs a signature by the fixtures' `cosign.pub` with its Rekor entry, and `local/keyless/*` the fixtures' keyless identity. |

The images are the signed fixtures of `tests/fixtures/sigstore/registry/`, pushed into the
upstream as `keyed/app` and `keyless/app`. The warm runs use `keyed/app`, image `key-legacy`
(`{meta.get('warm_digest', '?')}`, tag `key-legacy`), which portcullis-enforce serves verified.

## Targets

{summary}

## Warm manifest GET

`wrk -t2 -c16|64 -d{meta.get('wrk_duration', '?')} --latency` with an OCI and Docker manifest
`Accept` header, after one priming request. Each target was first checked to answer 200 with the
right `Docker-Content-Digest`. "Upstream req. per request" is, for portcullis, what its own
metrics counted during that run (upstream requests ÷ client manifest requests). "Errors" are
non-2xx responses plus socket errors.

{table(warm_header, warm_rows)}

## Blob streaming

A {meta.get('blob_size', '?')} random blob in the upstream, fetched with `curl -o /dev/null` once
to prime, then {meta.get('blob_runs', '?')} times per target, round-robin across targets. MiB/s, median.

{table(blob_header, blob_rows)}

## Peak memory

`VmHWM` (peak resident set) from `/proc/PID/status`, right after the blob fetches (before any
`wrk` load) and at the end of the warm runs. For nginx, the largest worker; otherwise the one
process. Each portcullis process had streamed the blob {int(meta.get('blob_runs', 3)) + 1} times.

{table(rss_header, rss_rows)}

## Cold verified pull

A single `GET` of the manifest by digest on a freshly started process, so every cache is empty:
{meta.get('cold_samples', '?')} samples per cell, medians shown. Each sample uses a new process, with SBOM ingest off
(`inventory: {{ ingest: false }}`) so that the upstream requests counted are the pull's own.
There are two variants:

- **Cold digest, warmed-up process** (the targets use this one). The process first pulls another
  signed image under the same rule (`key-bundle` before `key-legacy`, `keyless-legacy` before
  `keyless-bundle`), so its upstream connection is open and the verifier has run once. Then the
  measured digest is pulled. This is what a new image costs on a running proxy.
- **First request after start.** The measured GET is the process's first request, so it also
  pays for opening the upstream connection and for any one-time initialisation.

The no-policy process makes the same requests. The columns are:

- **Client ms**: curl's `time_total`.
- **Verification adds**: enforce client ms − no-policy client ms, for the same manifest.
- **Lookup**: `portcullis_verification_duration_seconds_sum`, the whole verdict, which is
  discovery over the network plus the checks.
- **Crypto**: `portcullis_signature_check_duration_seconds_sum`, signature verification and
  conditions, with no network.
- **Upstream**: `portcullis_upstream_request_duration_seconds_sum`, the time to response headers
  summed over every upstream request, including the manifest itself. Overlapping requests are each
  counted, so the sum can exceed the wall time.

The metric columns count the measured request alone: metrics are scraped before and after it.

### Cold digest, warmed-up process

{table(cold_header, cold_rows["primed"])}

### First request after start

{table(cold_header, cold_rows["first"])}

Each sample, with the upstream requests of the measured request by kind:

{table(["Variant", "Proxy", "Image", "Client ms per sample", "Upstream requests (first sample)"], cold_detail)}

## {burst_n} concurrent cold pulls of one signed digest

A fresh portcullis-enforce process (SBOM ingest off, as for the cold pulls). {burst_n} connections are opened first, then each sends
`GET /v2/keyed/app/manifests/<key-legacy digest>` in one burst. The table compares upstream
requests by kind (`portcullis_upstream_requests_total`) with those of a single cold pull.

{table(["Kind", "One cold pull", f"{burst_n} concurrent"], burst_rows)}

{burst_line}

{remote_report.section(remote)}
{store_report.section(store, blob)}
{ledger_report.section(ledger)}
{inventory_report.section(inventory)}
## What bounds each number

{chr(10).join(notes)}

## Soak

A separate, longer run: [`benchmark-harness/soak.sh`](../benchmark-harness/soak.sh) (10 minutes by
default) puts a fault shaper (503, 429, stalls, slow bodies, connection resets) between
portcullis-enforce and the upstream, sends mixed warm, cold and faulting load, checks that no
answer contradicts the image's single-request decision, and tracks RSS and open file descriptors
over time. Its report is [`docs/soak.md`](soak.md).
"""
    with open(out_md, "w") as f:
        f.write(md)

    print()
    print("== portcullis benchmarks ==")
    print(f"{meta.get('date', '?')}: {machine}")
    print(versions)
    print()
    print(summary)
    print()
    print(table(warm_header, warm_rows))
    print()
    print(table(blob_header, blob_rows))
    print()
    print(table(rss_header, rss_rows))
    for variant, title in COLD_VARIANTS.items():
        print()
        print(f"Cold pull, {title}:")
        print(table(cold_header, cold_rows[variant]))
    print()
    print(table(["Kind", "One cold pull", f"{burst_n} concurrent"], burst_rows))
    print(burst_line)
    print()
    print(f"written: {out_md}")


def main(argv):
    if len(argv) < 2:
        raise SystemExit(__doc__)
    cmd = argv[1]
    if cmd == "ports":
        print(" ".join(str(p) for p in freeports(int(argv[2]) if len(argv) > 2 else 1)))
    elif cmd == "push-plan":
        push_plan(argv[2], argv[3], argv[4])
    elif cmd == "burst":
        burst(argv[2], int(argv[3]), argv[4], argv[5])
    elif cmd == "report":
        report(argv[2], argv[3])
    else:
        raise SystemExit(__doc__)


if __name__ == "__main__":
    main(sys.argv)
