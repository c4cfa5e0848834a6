"""The content store's rows of the benchmark report, from what benchmark-harness/store.sh and the
blob loop of run.sh wrote (standard library only; report.py calls load, targets and section).

A target passes only on data that shows it: every fetch whole, every burst client answered 200
with the whole blob, and the burst's upstream requests read from portcullis's own metrics.
"""

import os

UPSTREAM_REQUESTS = "portcullis_upstream_requests_total"
FILLS = "portcullis_store_fills_total"
WAITERS = "portcullis_store_fill_waiters_total"
COLD_TARGETS = ("nginx", "distribution-proxy", "portcullis", "portcullis-enforce")
# store.sh's defaults, for the label when the burst left no data.
BURST_CLIENTS, BURST_MIB = 50, 256


def _speeds(base, path):
    return [float(x) / 2**20 for x in (base.read(path) or "").split()]


def load(res):
    import report as base  # report.py imports this module: no import cycle at load time

    out = {"cold": {}, "static": None, "burst": None}
    for t in COLD_TARGETS:
        runs = _speeds(base, os.path.join(res, "blob", f"{t}__cold.txt"))
        out["cold"][t] = runs[0] if runs else None
    static = _speeds(base, os.path.join(res, "store", "nginx-static.txt"))
    out["static"] = {"runs": static, "median": base.median(static)}
    d = os.path.join(res, "store", "burst")
    shape = (base.read(os.path.join(d, "shape.txt")) or "").split()
    if len(shape) == 2:
        size = int((base.read(os.path.join(d, "size.txt")) or "0").strip() or 0)
        clients = []
        for i in range(int(shape[1])):
            parts = (base.read(os.path.join(d, f"client_{i}.txt")) or "").split()
            clients.append(parts if len(parts) == 3 else None)
        single = (base.read(os.path.join(d, "single.txt")) or "").split()
        before = base.parse_metrics(base.read(os.path.join(d, "before.metrics")))
        after = base.parse_metrics(base.read(os.path.join(d, "after.metrics")))
        delta = lambda name, **l: base.msum(after, name, **l) - base.msum(before, name, **l)
        wall = (base.read(os.path.join(d, "wall_ms.txt")) or "").strip()
        out["burst"] = {
            "mib": int(shape[0]), "clients": int(shape[1]), "size": size,
            "whole": sum(1 for c in clients if c and c[0] == "200" and int(c[1]) == size),
            "single_s": float(single[2]) if len(single) == 3 and single[0] == "200" and int(single[1]) == size else None,
            "wall_s": int(wall) / 1000 if wall.isdigit() else None,
            "upstream_blob": delta(UPSTREAM_REQUESTS, kind="blob") if before and after else None,
            "fills": delta(FILLS, result="committed") if before and after else None,
            "waiters": delta(WAITERS) if before and after else None,
        }
    return out


def targets(r, blob):
    """Rows of the report's Targets table: [name, measured, result]. `blob` is report.py's blob
    section (warm medians per target, MiB/s)."""
    import report as base

    warm = blob.get("portcullis", {}).get("median")
    dist = blob.get("distribution-proxy", {}).get("median")
    nginx = blob.get("nginx", {}).get("median")
    static = r["static"]["median"]
    x = base.ratio(warm, dist)
    rows = [[
        "Warm blob from the filesystem store ≥ 1.0× distribution's proxy mode",
        (f"{base.fmt_ratio(x)} ({base.fmt(warm, 0)} vs {base.fmt(dist, 0)} MiB/s); "
         f"nginx sending the same store file statically: {base.fmt(static, 0)} MiB/s, portcullis "
         f"{base.fmt_ratio(base.ratio(warm, static))} of it"),
        base.verdict(None if x is None else x >= 1.0),
    ]]
    colds = [r["cold"].get(t) for t in ("portcullis", "portcullis-enforce")]
    worst = None if None in colds else min(colds)
    y = base.ratio(worst, nginx)
    rows.append([
        "Cold blob through the store ≥ 0.9× nginx's reverse proxy",
        (f"{base.fmt_ratio(y)} (no policy {base.fmt(colds[0], 0)}, enforce {base.fmt(colds[1], 0)} MiB/s, "
         f"one cold fetch each, vs nginx's median {base.fmt(nginx, 0)} MiB/s)"),
        base.verdict(None if y is None else y >= 0.9),
    ])
    b = r["burst"]
    if b is None:
        rows.append([f"{BURST_CLIENTS} concurrent cold pulls of one {BURST_MIB} MiB blob: 1 upstream request",
                     "not measured", base.verdict(None)])
    else:
        ok = b["whole"] == b["clients"] and b["upstream_blob"] is not None
        rows.append([
            f"{b['clients']} concurrent cold pulls of one {b['mib']} MiB blob: 1 upstream request",
            (f"{base.fmt(b['upstream_blob'], 0)} upstream blob request(s), {base.fmt(b['fills'], 0)} fill(s), "
             f"{base.fmt(b['waiters'], 0)} waiter(s); {b['whole']}/{b['clients']} clients got the whole blob; "
             f"all in {base.fmt(b['wall_s'], 2)} s vs {base.fmt(b['single_s'], 2)} s for one cold pull "
             f"({base.fmt_ratio(base.ratio(b['wall_s'], b['single_s']))})"),
            base.verdict(None if not ok else b["upstream_blob"] == 1),
        ])
    return rows


def section(r, blob):
    """The report's "Content store" section (markdown)."""
    import report as base

    rows = [[t, base.fmt(r["cold"].get(t), 0), base.fmt(blob.get(t, {}).get("median"), 0)] for t in COLD_TARGETS]
    rows.append(["nginx, static file from portcullis's store", "—", base.fmt(r["static"]["median"], 0)])
    b = r["burst"]
    burst = "not measured" if b is None else (
        f"{b['clients']} clients fetched one fresh {b['mib']} MiB blob through portcullis (no policy) at once: "
        f"{base.fmt(b['upstream_blob'], 0)} upstream blob request(s) (portcullis's "
        f"`portcullis_upstream_requests_total{{kind=\"blob\"}}` before and after), "
        f"{base.fmt(b['fills'], 0)} committed fill(s), {base.fmt(b['waiters'], 0)} request(s) waited on it; "
        f"{b['whole']} of {b['clients']} got every byte. All of them took {base.fmt(b['wall_s'], 2)} s; one cold pull "
        f"of another fresh blob of that size took {base.fmt(b['single_s'], 2)} s.")
    return f"""## Content store

The 1 GiB blob of "Blob streaming": its first fetch through each target (cold: portcullis and
distribution fill their stores then; nginx and the upstream keep nothing) and the median of the
next ones (warm: from the store). "nginx, static file" is nginx sending portcullis's own stored
file (`sendfile`), the limit of this machine for that file over HTTP. A warm blob from portcullis's
store is hashed the first time each version of its file is served, not on every fetch
([store.md](store.md)).

{base.table(["Target", "Cold MiB/s (one fetch)", "Warm MiB/s (median)"], rows)}

**Single flight.** {burst}
"""
