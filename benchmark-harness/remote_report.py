"""The remote-registry rows of the benchmark report, from what benchmark-harness/remote.sh wrote
under RESULTS_DIR/remote (standard library only; report.py calls load, targets and section).

Per variant (`tags`: no referrers API; `api`: the referrers API) and image kind, the cold pull by
digest without policy and with the enforce rules: curl's time, and from the delaying forwarder's
log the upstream requests it made and their round-trip depth (the longest chain of requests each
sent only after the one before it was answered), and what one request took there (the delay plus
the registry's answer: the round trip as a client of that registry sees it). A target passes only
when every sample answered 200 with a log, the depth that verification adds is within the bound,
and so is its time (the bound in observed round trips, plus the 5 ms the loopback target allows for
everything else).
"""

import json
import os

VARIANTS = {"tags": "referrers tag schema (no API)", "api": "referrers API"}
IMAGES = {"key-legacy": ("legacy `.sig`", 1), "keyless-bundle": ("bundle referrer", 2)}
PROXIES = ("portcullis", "portcullis-enforce")
LOCAL_MS = 5.0


def depth(log):
    """The longest chain of requests in `log` where each arrived after the previous was answered."""
    reqs = sorted((e for e in log if "start" in e), key=lambda e: e["start"])
    d = []
    for i, r in enumerate(reqs):
        before = [d[j] for j in range(i) if reqs[j].get("end", float("inf")) <= r["start"]]
        d.append(1 + max(before, default=0))
    return max(d, default=0)


def load(res):
    import report as base  # report.py imports this module: no import cycle at load time

    d = os.path.join(res, "remote")
    rtt = (base.read(os.path.join(d, "rtt_ms.txt")) or "").strip()
    out = {"rtt_ms": float(rtt) if rtt else None, "runs": {}}
    for variant in VARIANTS:
        for img in IMAGES:
            for proxy in PROXIES:
                samples = []
                for i in range(100):
                    stem = os.path.join(d, f"{variant}__{proxy}__{img}__{i}")
                    curl = base.read(stem + ".curl")
                    if curl is None:
                        break
                    parts = curl.split()
                    try:
                        log = json.loads(base.read(stem + ".log.json") or "null")
                    except ValueError:
                        log = None
                    ok = len(parts) == 2 and parts[0] == "200" and isinstance(log, list)
                    samples.append({
                        "ok": ok,
                        "ms": float(parts[1]) * 1000 if ok else None,
                        "depth": depth(log) if ok else None,
                        "requests": len(log) if ok else None,
                        # What one upstream request of this pull took at the shaper: its delay
                        # plus the registry's own answer.
                        "trip_ms": base.median([(e["end"] - e["start"]) * 1000 for e in log
                                                if "end" in e and "start" in e]) if ok else None,
                    })
                out["runs"][(variant, img, proxy)] = samples
    return out


def _summary(r, variant, img):
    """(unverified ms, verified ms, added ms, depth none, depth enforce, requests none, enforce,
    whole, one round trip as observed in ms)."""
    import report as base

    none, enf = r["runs"].get((variant, img, PROXIES[0]), []), r["runs"].get((variant, img, PROXIES[1]), [])
    whole = bool(none) and bool(enf) and len(none) == len(enf) and all(s["ok"] for s in none + enf)
    med = lambda xs, k: base.median([s[k] for s in xs if s[k] is not None])
    u, v = med(none, "ms"), med(enf, "ms")
    added = None if u is None or v is None else v - u
    trip = med(none + enf, "trip_ms")
    return (u, v, added, med(none, "depth"), med(enf, "depth"), med(none, "requests"), med(enf, "requests"),
            whole, trip)


def targets(r):
    import report as base

    rtt = r["rtt_ms"]
    rows = []
    for img, (label, bound) in IMAGES.items():
        parts, oks = [], []
        for variant in VARIANTS:
            u, v, added, dn, de, _, _, whole, trip = _summary(r, variant, img)
            ok = (whole and trip and added is not None and dn is not None and de is not None
                  and de - dn <= bound and added <= bound * trip + LOCAL_MS)
            oks.append(ok if whole else None)
            parts.append(f"{variant}: +{base.fmt(added, 1)} ms = {base.fmt_ratio(base.ratio(added, trip))} of a "
                         f"{base.fmt(trip, 1)} ms round trip, depth {base.fmt(dn, 0)} → {base.fmt(de, 0)}")
        rtt_label = f"{base.fmt(rtt, 0)} ms" if rtt else "?"
        rows.append([
            f"Registry {rtt_label} away: verification adds ≤ {bound} RTT to a cold pull ({label})",
            "; ".join(parts),
            base.verdict(None if None in oks else all(oks)),
        ])
    return rows


def section(r):
    import report as base

    rtt = r["rtt_ms"]
    rows = []
    for variant, vlabel in VARIANTS.items():
        for img, (label, bound) in IMAGES.items():
            u, v, added, dn, de, qn, qe, whole, trip = _summary(r, variant, img)
            rows.append([vlabel, f"{img} ({label})", base.fmt(u, 1), base.fmt(v, 1), base.fmt(added, 1),
                         base.fmt(trip, 1), base.fmt_ratio(base.ratio(added, trip)),
                         f"{base.fmt(dn, 0)} / {base.fmt(de, 0)}",
                         f"{base.fmt(qn, 0)} / {base.fmt(qe, 0)}", "yes" if whole else "no"])
    return f"""## Cold pulls from a remote registry

The fault shaper ([`fault_shaper.py`](../benchmark-harness/fault_shaper.py)) with
`--delay-ms {base.fmt(rtt, 0)}` between portcullis and the upstream: every upstream request costs one
round trip. "tag schema" is docker-registry as it is (no referrers API: bundles are found through
the `<alg>-<hex>` index); "referrers API" is the shaper answering `/v2/<repo>/referrers/<digest>` as an
OCI 1.1 registry does. Each sample is a new process (SBOM ingest off, as on loopback) that first pulls another image of the same
repository (connection open, the upstream's referrers support learnt), then the measured digest;
medians. Depth is the longest chain of upstream requests each sent after the previous was answered,
from the shaper's log; requests are all the upstream requests of the measured pull. "Round trip" is
what one upstream request took at the shaper (median): its {base.fmt(rtt, 0)} ms delay plus the
registry's own answer, the round trip a client of that registry pays. The targets hold when the depth
grows by at most the bound and the time by at most that many round trips plus {LOCAL_MS:.0f} ms.

{base.table(["Variant", "Image", "Unverified (ms)", "Verified (ms)", "Added (ms)", "Round trip (ms)", "Added (round trips)", "Depth none / enforce", "Upstream requests none / enforce", "All samples 200"], rows)}
"""
