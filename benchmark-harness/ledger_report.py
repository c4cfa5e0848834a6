"""The pull ledger's rows of the benchmark report, from what benchmark-harness/ledger.sh wrote
under RESULTS_DIR/ledger (standard library only; report.py calls load, targets and section).

A target passes only on data that shows it: every round on both sides, no failed request, the
"on" side having written records and the "off" side none, the seeded row count, and an audit
command that exited 0 with entries in its JSON.
"""

import json
import os
import re

ROUNDS_MIN = 1
BACKENDS = {"sqlite": "SQLite", "postgresql": "PostgreSQL"}
WRITTEN = "portcullis_ledger_written_records_total"
BENCH_LINE = re.compile(
    r"ledger_audit (\w+): (\d+) rows, (\d+) images, seeded in ([\d.]+) s; audit --since 7d: "
    r"best (\d+) ms, median (\d+) ms \((\d+) entries\)")


def load_warm(res, section, metric):
    """The on/off warm rounds under RESULTS_DIR/SECTION and each side's sum of METRIC."""
    import report as base  # report.py imports this module: no import cycle at load time

    d = os.path.join(res, section)
    out = {"wrk": {"on": [], "off": []}, "written": {}}
    for side in ("on", "off"):
        for i in range(100):
            text = base.read(os.path.join(d, f"wrk__{side}__{i}.txt"))
            if text is None:
                break
            out["wrk"][side].append(base.parse_wrk(text))
        page = base.read(os.path.join(d, f"{side}.metrics"))
        out["written"][side] = None if page is None else base.msum(base.parse_metrics(page), metric)
    return out


def load(res):
    import report as base

    d = os.path.join(res, "ledger")
    out = {"bench": {}, "cli": {}, "rows": None, **load_warm(res, "ledger", WRITTEN)}
    rows = (base.read(os.path.join(d, "rows.txt")) or "").strip()
    out["rows"] = int(rows) if rows.isdigit() else None
    for m in BENCH_LINE.finditer(base.read(os.path.join(d, "bench.txt")) or ""):
        out["bench"][m.group(1)] = {
            "rows": int(m.group(2)), "images": int(m.group(3)), "seeded_s": float(m.group(4)),
            "best_ms": int(m.group(5)), "median_ms": int(m.group(6)), "entries": int(m.group(7)),
        }
    for db in BACKENDS:
        times = [int(x) for x in (base.read(os.path.join(d, f"cli__{db}.txt")) or "").split() if x.isdigit()]
        try:
            report = json.loads(base.read(os.path.join(d, f"cli__{db}.json")) or "null")
        except ValueError:
            report = None
        entries = None
        if isinstance(report, dict):
            entries = sum(len(report.get(k) or []) for k in ("let_through", "refused", "faults"))
        out["cli"][db] = {"times": times, "median_ms": base.median(times), "entries": entries}
    return out


def warm_ok(r):
    """The on/off ratio, whether the data behind it is whole (every round on both sides, no
    failed request, the "on" side counted something and the "off" side nothing), and each side's
    median req/s."""
    import report as base

    on, off = r["wrk"]["on"], r["wrk"]["off"]
    runs = on + off
    whole = (len(on) >= ROUNDS_MIN and len(on) == len(off)
             and all(w and w.get("rps") and w["non2xx"] == 0 and w["sockerr"] == 0 for w in runs))
    recorded = (r["written"].get("on") or 0) > 0 and r["written"].get("off") == 0
    rps_on = base.median([w["rps"] for w in on if w and w.get("rps")])
    rps_off = base.median([w["rps"] for w in off if w and w.get("rps")])
    # Each round's "on" against the "off" run right after it: drift on the shared machine over
    # the minutes of the benchmark falls on both halves of a pair alike.
    pairs = [base.ratio(a and a.get("rps"), b and b.get("rps")) for a, b in zip(on, off)]
    x = base.median([p for p in pairs if p is not None]) if None not in pairs else None
    return x, whole and recorded, rps_on, rps_off


def _rows_label(r):
    n = r["rows"]
    return f"{n:,}".replace(",", " ") if n else "?"


def targets(r):
    """Rows of the report's Targets table: [name, measured, result]."""
    import report as base

    x, ok, rps_on, rps_off = warm_ok(r)
    rows = [[
        "Warm manifest by digest with the ledger on ≥ 0.95× the ledger off",
        (f"{base.fmt_ratio(x)} ({base.fmt(rps_on, 0)} vs {base.fmt(rps_off, 0)} req/s, enforce, 64 conns; median of the "
         f"ratios of {len(r['wrk']['on'])} alternating rounds; records written: on {base.fmt(r['written'].get('on'), 0)}, "
         f"off {base.fmt(r['written'].get('off'), 0)})"),
        base.verdict(None if x is None or not ok else x >= 0.95),
    ]]
    for db, label in BACKENDS.items():
        cli, bench = r["cli"].get(db) or {}, r["bench"].get(db)
        ms = cli.get("median_ms")
        whole = (bench is not None and r["rows"] is not None and bench["rows"] == r["rows"]
                 and bench["images"] == 10000 and (cli.get("entries") or 0) > 0)
        measured = (f"{base.fmt(ms, 0)} ms (median of {len(cli.get('times') or [])} runs of the command; "
                    f"{cli.get('entries')} entries; in process: {bench['median_ms']} ms)"
                    if ms is not None and bench else "not measured")
        rows.append([
            f"`portcullis audit --since 7d` over {_rows_label(r)} pull records, 10 000 images < 200 ms ({label})",
            measured,
            base.verdict(None if ms is None or not whole else ms < 200),
        ])
    return rows


def section(r):
    """The report's "Pull ledger" section (markdown)."""
    import report as base

    x, _, _, _ = warm_ok(r)
    warm = [[i, base.fmt(on and on.get("rps"), 0), base.fmt(off and off.get("rps"), 0),
             base.fmt_ratio(base.ratio(on and on.get("rps"), off and off.get("rps")))]
            for i, (on, off) in enumerate(zip(r["wrk"]["on"], r["wrk"]["off"]))]
    audit = []
    for db, label in BACKENDS.items():
        b, cli = r["bench"].get(db), r["cli"].get(db) or {}
        audit.append([
            label,
            base.fmt(b and b["rows"], 0), base.fmt(b and b["seeded_s"], 1),
            f"{b['best_ms']} / {b['median_ms']}" if b else "n/a",
            " ".join(str(t) for t in cli.get("times") or []) or "n/a",
            base.fmt(cli.get("median_ms"), 0), base.fmt(cli.get("entries"), 0),
        ])
    return f"""## Pull ledger

**Recording cost.** Two portcullis processes with the enforce configuration, one with
`ledger: {{ enabled: false }}`; `wrk -t2 -c64` by digest on the warm `key-legacy` manifest,
alternating between them (only one is loaded at a time); the ratio is the median of each round's
"on" over the "off" run that follows it. Every warm hit is recorded: aggregated in
memory, written in batches by the ledger's writer off the request path. Median ratio {base.fmt_ratio(x)}.

{base.table(["Round", "Ledger on req/s", "Ledger off req/s", "On ÷ off"], warm)}

**Audit report over a large ledger.** `cargo bench --bench ledger_audit` seeds aggregated pull records
across 10 000 images and 100 clients each over the last 7 days (90 % verified, 6 % let through
unverified by an audit rule, 3 % refused, 1 % lookup faults) through the database layer the proxy
writes with, and times the report in process (best / median of 5). Then the real command,
`portcullis audit --since 7d --json`, runs 5 times on the same database, timed from process start to
exit (configuration read, database opened and migrations checked, queries, JSON written).
PostgreSQL is a server started for the run on this machine (initdb's default settings except
`shared_buffers = 1GB`).

{base.table(["Database", "Records", "Seeded in (s)", "In process best / median (ms)", "Command runs (ms)", "Command median (ms)", "Entries"], audit)}
"""
