#!/usr/bin/env python3
"""Load, checks, sampling and report for benchmark-harness/soak.sh (standard library only).

    soak_load.py --proxy URL --admin URL --pid PID --shaper URL --fixtures DIR
                 --seconds N --meta META.txt --out docs/soak.md [--raw RAW.json]

1. Baseline: with the shaper passing everything, one request of each kind (manifest GET and HEAD
   by digest and by tag, layer GET and HEAD, the unsigned image's config GET) gives its decision.
2. Soak: the shaper injects faults; workers send a mixed load for N seconds. Every answer is
   classified: the baseline's decision (for a 200 GET, the body must hash to the digest), a
   fault answer (429, 502, 503, 504) or a client-side error (reset, truncated body, timeout):
   allowed; anything else is a violation. Every 10 s: VmRSS, open fds, /metrics.
3. Recovery: shaper back to pass, verdicts left to expire, the baseline requests once more: each
   must give its baseline decision again.
4. Report (markdown) to --out and stdout. Exit 1 on a violation, a recovery mismatch, or RSS / fd
   growth beyond the bounds (last-third median RSS > 1.2 x first-third median; fds > +50).
"""

import argparse
import asyncio
import hashlib
import json
import os
import random
import re
import statistics
import sys
import time
import urllib.parse
import urllib.request

ACCEPT = ("application/vnd.oci.image.manifest.v1+json, application/vnd.oci.image.index.v1+json, "
          "application/vnd.docker.distribution.manifest.v2+json, "
          "application/vnd.docker.distribution.manifest.list.v2+json")
FAULT_STATUSES = {429, 502, 503, 504}
SAMPLE_EVERY = 10.0
CLIENT_TIMEOUT = 20.0
RSS_GROWTH = 1.20
FD_GROWTH = 50

# Images per repository; their expected decisions are measured, not assumed.
IMAGES = {
    "keyed/app": ["key-legacy", "key-bundle", "key-legacy-notlog", "unsigned", "keyless-legacy",
                  "evil-bundle", "mismatch", "index"],
    "keyless/app": ["keyless-bundle", "keyless-legacy", "unsigned", "key-legacy", "evil-bundle"],
}


class ClientError(Exception):
    def __init__(self, kind):
        super().__init__(kind)
        self.kind = kind


# === a minimal keep-alive HTTP/1.1 client ===


class Conn:
    def __init__(self, host, port):
        self.host, self.port = host, port
        self.reader = self.writer = None

    def close(self):
        if self.writer is not None:
            try:
                self.writer.close()
            except OSError:
                pass
        self.reader = self.writer = None

    async def request(self, method, path):
        try:
            return await asyncio.wait_for(self._request(method, path), CLIENT_TIMEOUT)
        except ClientError:
            self.close()
            raise
        except asyncio.TimeoutError:
            self.close()
            raise ClientError("timeout") from None

    async def _request(self, method, path):
        if self.writer is None:
            try:
                self.reader, self.writer = await asyncio.open_connection(self.host, self.port)
            except OSError as e:
                raise ClientError("connect: " + type(e).__name__) from None
        req = (f"{method} {path} HTTP/1.1\r\nHost: {self.host}:{self.port}\r\n"
               f"Accept: {ACCEPT}\r\n\r\n").encode()
        try:
            self.writer.write(req)
            await self.writer.drain()
            head = await self.reader.readuntil(b"\r\n\r\n")
        except asyncio.IncompleteReadError:
            raise ClientError("closed before the response") from None
        except ConnectionResetError:
            raise ClientError("reset before the response") from None
        except OSError as e:
            raise ClientError("socket: " + type(e).__name__) from None
        lines = head[:-4].decode("latin-1").split("\r\n")
        status = int(lines[0].split(" ", 2)[1])
        headers = {}
        for line in lines[1:]:
            k, _, v = line.partition(":")
            headers[k.strip().lower()] = v.strip()
        body = b""
        try:
            if method != "HEAD" and status not in (204, 304):
                if headers.get("transfer-encoding", "").lower() == "chunked":
                    parts = []
                    while True:
                        n = int((await self.reader.readuntil(b"\r\n")).split(b";")[0], 16)
                        if n == 0:
                            while (await self.reader.readuntil(b"\r\n")) != b"\r\n":
                                pass
                            break
                        parts.append(await self.reader.readexactly(n))
                        await self.reader.readexactly(2)
                    body = b"".join(parts)
                elif "content-length" in headers:
                    body = await self.reader.readexactly(int(headers["content-length"]))
                else:
                    body = await self.reader.read()
                    self.close()
        except asyncio.IncompleteReadError:
            raise ClientError("truncated body") from None
        except ConnectionResetError:
            raise ClientError("reset mid-body") from None
        except (OSError, ValueError) as e:
            raise ClientError("body: " + type(e).__name__) from None
        if headers.get("connection", "").lower() == "close":
            self.close()
        return status, headers, body


# === request kinds ===


def load_templates(fixtures):
    with open(os.path.join(fixtures, "registry", "images.json")) as f:
        images = json.load(f)
    blobs = os.path.join(fixtures, "registry", "blobs")

    def manifest(name):
        with open(os.path.join(blobs, images[name]["digest"][7:]), "rb") as f:
            return json.load(f)

    t = []  # (cls, label, method, path, digest-the-body-must-hash-to)
    layer = None
    for repo, names in IMAGES.items():
        for name in names:
            d = images[name]["digest"]
            t.append(("manifest by digest", f"{repo} {name} GET @digest", "GET", f"/v2/{repo}/manifests/{d}", d))
            t.append(("manifest by digest", f"{repo} {name} HEAD @digest", "HEAD", f"/v2/{repo}/manifests/{d}", None))
            t.append(("manifest by tag", f"{repo} {name} GET :tag", "GET", f"/v2/{repo}/manifests/{name}", d))
            t.append(("manifest by tag", f"{repo} {name} HEAD :tag", "HEAD", f"/v2/{repo}/manifests/{name}", None))
            m = manifest(name)
            if layer is None and m.get("layers"):
                layer = m["layers"][0]["digest"]
        unsigned_config = manifest("unsigned")["config"]["digest"]
        t.append(("blob", f"{repo} layer GET", "GET", f"/v2/{repo}/blobs/{layer}", layer))
        t.append(("blob", f"{repo} layer HEAD", "HEAD", f"/v2/{repo}/blobs/{layer}", None))
        t.append(("blob", f"{repo} unsigned config GET", "GET", f"/v2/{repo}/blobs/{unsigned_config}",
                  unsigned_config))
    return t


# === sampling ===


def http_get(url, timeout=5):
    with urllib.request.urlopen(url, timeout=timeout) as r:
        return r.read()


def http_post(url, timeout=5):
    req = urllib.request.Request(url, data=b"", method="POST")
    with urllib.request.urlopen(req, timeout=timeout) as r:
        return r.read()


METRIC_LINE = re.compile(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})?\s+(\S+)")
LABEL = re.compile(r'(\w+)="((?:[^"\\]|\\.)*)"')


def parse_metrics(text):
    out = []
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        m = METRIC_LINE.match(line)
        if m:
            try:
                out.append((m.group(1), dict(LABEL.findall(m.group(2) or "")), float(m.group(3))))
            except ValueError:
                pass
    return out


def msum(samples, name, **want):
    return sum(v for n, l, v in samples if n == name and all(l.get(k) == w for k, w in want.items()))


def by_label(samples, name, label):
    out = {}
    for n, l, v in samples:
        if n == name:
            out[l.get(label, "")] = out.get(l.get(label, ""), 0) + v
    return out


def proc_sample(pid):
    rss = None
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                rss = int(line.split()[1])
    fds = len(os.listdir(f"/proc/{pid}/fd"))
    return rss, fds


# === the run ===


class Soak:
    def __init__(self, args):
        self.args = args
        u = urllib.parse.urlsplit(args.proxy)
        self.host, self.port = u.hostname, u.port
        self.templates = load_templates(args.fixtures)
        self.baseline = {}
        self.counts = {}          # (cls, outcome) -> n; outcome: "decision" | "fault NNN" | "client: kind"
        self.status_counts = {}   # status or client-error kind -> n
        self.violations = []
        self.violation_count = 0
        self.total = 0
        self.samples = []
        self.stop_at = None

    async def single(self, tpl):
        conn = Conn(self.host, self.port)
        try:
            status, headers, body = await conn.request(tpl[2], tpl[3])
        finally:
            conn.close()
        if status == 200 and tpl[4] and "sha256:" + hashlib.sha256(body).hexdigest() != tpl[4]:
            return "200 wrong bytes"
        return status

    async def baseline_pass(self, label):
        got = {}
        for tpl in self.templates:
            try:
                got[tpl[1]] = await self.single(tpl)
            except ClientError as e:
                got[tpl[1]] = "client: " + e.kind
        return got

    def classify(self, tpl, result):
        cls, label, method, path, digest = tpl
        self.total += 1
        if isinstance(result, ClientError):
            outcome = "client: " + result.kind
            key = outcome
        else:
            status, headers, body = result
            key = str(status)
            want = self.baseline[label]
            if status == want:
                outcome = "decision"
                if status == 200 and digest and "sha256:" + hashlib.sha256(body).hexdigest() != digest:
                    outcome = "violation"
                    self.violation(label, want, "200 with bytes that do not hash to the digest")
            elif status in FAULT_STATUSES:
                outcome = f"fault {status}"
            else:
                outcome = "violation"
                self.violation(label, want, status)
        self.counts[(cls, outcome)] = self.counts.get((cls, outcome), 0) + 1
        self.status_counts[(cls, key)] = self.status_counts.get((cls, key), 0) + 1

    def violation(self, label, want, got):
        self.violation_count += 1
        if len(self.violations) < 20:
            self.violations.append((round(time.monotonic() - self.t0, 1), label, want, got))

    async def worker(self, pool):
        conn = Conn(self.host, self.port)
        while time.monotonic() < self.stop_at:
            tpl = random.choice(pool)
            try:
                result = await conn.request(tpl[2], tpl[3])
            except ClientError as e:
                result = e
                await asyncio.sleep(0.05)
            self.classify(tpl, result)
        conn.close()

    async def sampler(self):
        n = 0
        while True:
            await self.sample()
            n += 1
            next_at = self.t0 + n * SAMPLE_EVERY
            if next_at > self.stop_at + 0.5:
                return
            await asyncio.sleep(max(0.0, next_at - time.monotonic()))

    async def sample(self):
        t = time.monotonic() - self.t0
        try:
            rss, fds = proc_sample(self.args.pid)
        except OSError:
            rss = fds = None
        try:
            text = (await asyncio.to_thread(http_get, self.args.admin + "/metrics")).decode()
            m = parse_metrics(text)
            conns = msum(m, "portcullis_connections", listener="api")
            verdicts = by_label(m, "portcullis_verdicts_total", "result")
        except OSError:
            conns, verdicts = None, {}
        self.samples.append({"t": round(t), "rss_kib": rss, "fds": fds, "conns": conns,
                             "requests": self.total, "verdicts": verdicts})

    async def run(self):
        a = self.args
        http_post(a.shaper + "/_shaper/mode/pass")
        self.baseline = await self.baseline_pass("baseline")
        bad = {k: v for k, v in self.baseline.items() if v not in (200, 403, 404)}
        if bad:
            print(f"baseline is not a decision: {bad}", file=sys.stderr)
            return None
        if 200 not in self.baseline.values() or 403 not in self.baseline.values():
            print("baseline needs both 200 and 403 decisions", file=sys.stderr)
            return None
        rss0, fds0 = proc_sample(a.pid)
        http_post(a.shaper + "/_shaper/mode/fault")
        pools = {
            "warm": [t for t in self.templates if t[0] == "manifest by digest"],
            "tag": [t for t in self.templates if t[0] == "manifest by tag"],
            "blob": [t for t in self.templates if t[0] == "blob"],
        }
        workers = [("warm", a.warm_workers), ("tag", a.tag_workers), ("blob", a.blob_workers)]
        self.t0 = time.monotonic()
        self.stop_at = self.t0 + a.seconds
        tasks = [asyncio.create_task(self.sampler())]
        for kind, n in workers:
            tasks += [asyncio.create_task(self.worker(pools[kind])) for _ in range(n)]
        await asyncio.gather(*tasks)
        elapsed = time.monotonic() - self.t0
        shaper_stats = json.loads(http_post(a.shaper + "/_shaper/mode/pass"))
        # Recovery: every cached verdict (verdict_ttl 2s, failure_ttl 1s) has expired after 3 s.
        await asyncio.sleep(3.5)
        recovery = await self.baseline_pass("recovery")
        await asyncio.sleep(1.0)
        rss1, fds1 = proc_sample(a.pid)
        m_end = parse_metrics(http_get(a.admin + "/metrics").decode())
        return {"elapsed": elapsed, "shaper": shaper_stats, "recovery": recovery,
                "idle_before": (rss0, fds0), "idle_after": (rss1, fds1), "metrics_end": m_end,
                "workers": workers}


# === report ===


def third_medians(samples, key):
    vals = [s[key] for s in samples if s["t"] > 0 and s[key] is not None]
    if len(vals) < 3:
        return None, None
    k = len(vals) // 3
    return statistics.median(vals[:k]), statistics.median(vals[-k:])


def fmt_int(n):
    return f"{int(n):,}"


def table(header, rows):
    out = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    out += ["| " + " | ".join(str(c) for c in r) + " |" for r in rows]
    return "\n".join(out)


def report(soak, res, meta, out_md):
    a = soak.args
    s = soak.samples
    rss_first, rss_last = third_medians(s, "rss_kib")
    fd_first, fd_last = third_medians(s, "fds")
    failures = []
    rss_ok = rss_first is not None and rss_last <= RSS_GROWTH * rss_first
    fd_ok = fd_first is not None and fd_last <= fd_first + FD_GROWTH
    if not rss_ok:
        failures.append("RSS grew beyond the bound")
    if not fd_ok:
        failures.append("open fds grew beyond the bound")
    if soak.violation_count:
        failures.append(f"{soak.violation_count} decision violations")
    mismatched = {k: (soak.baseline[k], v) for k, v in res["recovery"].items() if v != soak.baseline[k]}
    if mismatched:
        failures.append(f"{len(mismatched)} requests decided differently after the soak")

    L = []
    L.append("# Soak")
    L.append("")
    L.append("Generated by [`benchmark-harness/soak.sh`](../benchmark-harness/soak.sh); do not edit by hand, re-run the script.")
    L.append("")
    L.append(f"- **Date:** {meta.get('date')}")
    L.append(f"- **Duration:** {res['elapsed'] / 60:.1f} min of load ({a.seconds} s asked)")
    L.append(f"- **Machine:** {meta.get('nproc')} CPUs ({meta.get('cpu')}), {meta.get('mem')} RAM, Linux {meta.get('kernel')}")
    L.append(f"- **Versions:** portcullis `{meta.get('portcullis_rev')}` ({meta.get('portcullis_version')}), "
             f"distribution {meta.get('distribution')}, Python {meta.get('python')}")
    L.append(f"- **Result:** {'**PASS**' if not failures else '**FAIL**: ' + '; '.join(failures)}")
    L.append("")
    L.append("Everything runs on one machine and binds 127.0.0.1: the upstream `docker-registry` holding the")
    L.append("signed fixture images (`tests/fixtures/sigstore/registry/`, pushed as `keyed/app` and `keyless/app`),")
    L.append("the fault shaper in front of it ([`fault_shaper.py`](../benchmark-harness/fault_shaper.py)),")
    L.append("`target/release/portcullis` in front of the shaper with the enforce rules of the benchmarks")
    L.append("(`local/keyed/*` needs a signature by the fixtures' `cosign.pub`, `local/keyless/*` the fixtures'")
    L.append("keyless identity), and the load generator ([`soak_load.py`](../benchmark-harness/soak_load.py)).")
    L.append("")
    L.append(f"portcullis runs with `{meta.get('pc_cache')}` (so verdicts are recomputed all the time: the")
    L.append(f"cold path) and `{meta.get('pc_timeouts')}`.")
    L.append("")
    p = meta.get("shaper_probs", "")
    L.append(f"The shaper, per upstream request: {p}. A stall sends nothing for {meta.get('stall_seconds')} s and")
    L.append(f"closes; a drip spreads the body over {meta.get('drip_seconds')} s (a manifest then misses `exchange`; a")
    L.append("layer still arrives); a reset sends the headers and half the body, then a TCP RST. One signature")
    L.append("lookup makes several upstream requests, so many more lookups than this meet a fault.")
    L.append("")
    wk = ", ".join(f"{n} {k}" for k, n in res["workers"])
    L.append(f"Load: {wk} workers, each on one keep-alive connection, closed loop (no think time).")
    L.append("*warm* workers ask manifests by digest (GET and HEAD) of the images below; *tag* workers by tag")
    L.append("(every request goes upstream); *blob* workers the shared layer (GET and HEAD) and the unsigned")
    L.append("image's config blob, which a strict gate must never serve. A client gives up after")
    L.append(f"{CLIENT_TIMEOUT:.0f} s and reconnects after any error.")
    L.append("")

    # --- decisions ---
    L.append("## Decisions")
    L.append("")
    L.append("Before the soak, with the shaper passing everything, one request of each kind gives the")
    L.append("expected decision. During the soak each answer is either that decision (for a 200 GET the body")
    L.append("must also hash to the digest asked for), a fault answer (429, 502, 503, 504) or a client-side")
    L.append("error (reset, truncated body, timeout): these are allowed. Anything else, such as a 200 for an")
    L.append("image whose single request was 403, or a 403 for one that was 200 (a fault turned into")
    L.append("\"unsigned\"), is a violation. After the soak the shaper passes everything again, the cached verdicts")
    L.append("expire, and every single request is repeated: it must give the same decision.")
    L.append("")
    L.append(f"**Violations: {soak.violation_count}.** Decisions that differ after the soak: {len(mismatched)}.")
    L.append("")
    if soak.violations:
        L.append(table(["t (s)", "Request", "Single request", "Soak answer"],
                       [(t, f"`{lbl}`", w, g) for t, lbl, w, g in soak.violations]))
        L.append("")
    if mismatched:
        L.append(table(["Request", "Before", "After"], [(f"`{k}`", b, g) for k, (b, g) in mismatched.items()]))
        L.append("")
    rows = []
    per_image = {}
    for cls, label, method, path, digest in soak.templates:
        if cls != "blob":
            repo, name = label.split(" ")[:2]
            per_image.setdefault((repo, name), []).append(soak.baseline[label])
    for (repo, name), vals in per_image.items():
        rows.append((f"`{repo}`", f"`{name}`", " / ".join(str(v) for v in vals)))
    L.append("Single-request decisions (manifest GET and HEAD by digest, GET and HEAD by tag):")
    L.append("")
    L.append(table(["Repository", "Image", "Decision"], rows))
    L.append("")
    brow = [(f"`{label}`", soak.baseline[label]) for cls, label, *_ in soak.templates if cls == "blob"]
    L.append(table(["Blob request", "Decision"], brow))
    L.append("")

    # --- requests ---
    L.append("## Requests and errors")
    L.append("")
    classes = ["manifest by digest", "manifest by tag", "blob"]
    outcomes = sorted({o for (c, o) in soak.counts}, key=lambda o: (o != "decision", o.startswith("client"), o))
    hdr = ["Outcome"] + classes + ["All"]
    rows = []
    for o in outcomes:
        vals = [soak.counts.get((c, o), 0) for c in classes]
        rows.append([o] + [fmt_int(v) for v in vals] + [fmt_int(sum(vals))])
    tot = [sum(soak.counts.get((c, o), 0) for o in outcomes) for c in classes]
    rows.append(["**total**"] + [f"**{fmt_int(v)}**" for v in tot] + [f"**{fmt_int(sum(tot))}**"])
    L.append(f"{fmt_int(soak.total)} requests in {res['elapsed']:.0f} s ({soak.total / res['elapsed']:,.0f}/s).")
    L.append("")
    L.append(table(hdr, rows))
    L.append("")
    L.append("By status code or client-side error:")
    L.append("")
    keys = sorted({k for (c, k) in soak.status_counts}, key=lambda k: (not k.isdigit(), k))
    rows = []
    for k in keys:
        vals = [soak.status_counts.get((c, k), 0) for c in classes]
        rows.append([k] + [fmt_int(v) for v in vals] + [fmt_int(sum(vals))])
    L.append(table(["Status / error"] + classes + ["All"], rows))
    L.append("")
    sh = res["shaper"]
    L.append(f"The shaper saw {fmt_int(sh['requests'])} upstream requests from portcullis and injected: "
             + ", ".join(f"{k} {fmt_int(v)}" for k, v in sh["faults"].items())
             + f" ({sum(sh['faults'].values()) / max(1, sh['requests']):.1%} of them).")
    m = res["metrics_end"]
    ver = by_label(m, "portcullis_verdicts_total", "result")
    vcomp = msum(m, "portcullis_verification_duration_seconds_count")
    L.append(f"portcullis's metrics at the end: verdicts by result "
             + ", ".join(f"{k} {fmt_int(v)}" for k, v in sorted(ver.items()))
             + f"; {fmt_int(vcomp)} verdicts computed (cold); upstream requests by status "
             + ", ".join(f"{k} {fmt_int(v)}" for k, v in sorted(by_label(m, 'portcullis_upstream_requests_total', 'status').items()))
             + ".")
    L.append("")

    # --- resources ---
    L.append("## Memory and file descriptors")
    L.append("")
    L.append(f"Sampled every {SAMPLE_EVERY:.0f} s: `VmRSS` and `ls /proc/PID/fd | wc -l` of the portcullis process,")
    L.append("and its `portcullis_connections{listener=\"api\"}` gauge. Bounds: the last third's median RSS within")
    L.append(f"{RSS_GROWTH - 1:.0%} of the first third's, and its median fd count at most {FD_GROWTH} above.")
    L.append("")
    r0, f0 = res["idle_before"]
    r1, f1 = res["idle_after"]
    rows = [
        ["RSS (MiB), median", f"{rss_first / 1024:.1f}" if rss_first else "—",
         f"{rss_last / 1024:.1f}" if rss_last else "—",
         f"{(rss_last / rss_first - 1):+.1%}" if rss_first else "—", "**PASS**" if rss_ok else "**FAIL**"],
        ["Open fds, median", fd_first if fd_first is not None else "—", fd_last if fd_last is not None else "—",
         f"{fd_last - fd_first:+.0f}" if fd_first is not None else "—", "**PASS**" if fd_ok else "**FAIL**"],
    ]
    L.append(table(["", "First third", "Last third", "Change", "Bound"], rows))
    L.append("")
    conns_end = msum(m, "portcullis_connections", listener="api")
    L.append(f"Idle, before the soak: {r0 / 1024:.1f} MiB, {f0} fds; idle after it (load stopped, recovery "
             f"requests done): {r1 / 1024:.1f} MiB, {f1} fds, {conns_end:.0f} open client connections.")
    L.append("")
    rows = []
    prev = 0
    for smp in s:
        rate = (smp["requests"] - prev) / SAMPLE_EVERY if smp["t"] else 0
        prev = smp["requests"]
        rows.append([smp["t"], f"{smp['rss_kib'] / 1024:.1f}" if smp["rss_kib"] else "—",
                     smp["fds"] if smp["fds"] is not None else "—",
                     f"{smp['conns']:.0f}" if smp["conns"] is not None else "—",
                     fmt_int(smp["requests"]), f"{rate:,.0f}"])
    L.append(table(["t (s)", "RSS MiB", "Open fds", "Client connections", "Requests so far", "Req/s (last 10 s)"], rows))
    L.append("")
    md = "\n".join(L) + "\n"
    with open(out_md, "w") as f:
        f.write(md)
    print(md)
    return failures


def main(argv):
    ap = argparse.ArgumentParser()
    ap.add_argument("--proxy", required=True)
    ap.add_argument("--admin", required=True)
    ap.add_argument("--pid", type=int, required=True)
    ap.add_argument("--shaper", required=True)
    ap.add_argument("--fixtures", required=True)
    ap.add_argument("--seconds", type=int, default=600)
    ap.add_argument("--meta", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--raw")
    ap.add_argument("--warm-workers", type=int, default=4)
    ap.add_argument("--tag-workers", type=int, default=2)
    ap.add_argument("--blob-workers", type=int, default=2)
    args = ap.parse_args(argv)
    meta = {}
    with open(args.meta) as f:
        for line in f:
            k, _, v = line.rstrip("\n").partition("=")
            meta[k] = v
    soak = Soak(args)
    res = asyncio.run(soak.run())
    if res is None:
        return 2
    if args.raw:
        with open(args.raw, "w") as f:
            json.dump({"baseline": soak.baseline, "recovery": res["recovery"], "samples": soak.samples,
                       "counts": {f"{c} | {o}": n for (c, o), n in soak.counts.items()},
                       "violations": soak.violations, "shaper": res["shaper"]}, f, indent=1)
    failures = report(soak, res, meta, args.out)
    for f_ in failures:
        print("FAIL: " + f_, file=sys.stderr)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
