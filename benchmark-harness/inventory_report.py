"""The SBOM inventory's rows of the benchmark report, from what benchmark-harness/inventory.sh
wrote under RESULTS_DIR/inventory (standard library only; report.py calls load, targets and
section).

A target passes only on data that shows it: for the warm ratio, every round on both sides, no
failed request, the "on" side having ingested and the "off" side not; for the answers, a bench
line per database over the seeded size (10 000 images × 300 packages, the ledger's row count),
queries and the advisory that found entries, and an SBOM of at least 10 MB.
"""

import os
import re

import ledger_report

INGESTS = "portcullis_inventory_ingests_total"
IMAGES = 10000
PACKAGES = 3000000
SBOM_BYTES = 10 * 1024 * 1024
BENCH_LINE = re.compile(
    r"inventory (\w+): (\d+) images, (\d+) packages, (\d+) pulls, seeded in ([\d.]+) s; "
    r"query p50 ([\d.]+) ms, p99 ([\d.]+) ms \((\d+) queries, (\d+) entries on average\); "
    r"advisory \(20 ranges\) median ([\d.]+) ms, max ([\d.]+) ms \((\d+) entries\); "
    r"ingest of a (\d+)-byte SBOM \((\d+) packages\) median ([\d.]+) ms, max ([\d.]+) ms "
    r"\(read: median ([\d.]+) ms\)")
# The console's pages, timed on the same database (benches/inventory.rs prints this line after
# the one above).
CONSOLE_LINE = re.compile(r"console (\w+): (.*)")
CONSOLE_PAGE = re.compile(r"(\w+) median ([\d.]+) ms max ([\d.]+) ms \((\d+) bytes\)")
CONSOLE_PAGES = ["overview", "overview_7d", "audit", "image", "inventory_package", "inventory_advisory", "policies"]
FIELDS = ["images", "packages", "pulls", "seeded_s", "p50_ms", "p99_ms", "queries", "entries",
          "advisory_ms", "advisory_max_ms", "advisory_entries", "sbom_bytes", "sbom_packages",
          "ingest_ms", "ingest_max_ms", "read_ms"]


def load(res):
    import report as base  # report.py imports this module: no import cycle at load time

    d = os.path.join(res, "inventory")
    out = {"bench": {}, "console": {}, "pulls": None, **ledger_report.load_warm(res, "inventory", INGESTS)}
    size = (base.read(os.path.join(d, "size.txt")) or "").split()
    out["pulls"] = int(size[1]) if len(size) == 2 and size[1].isdigit() else None
    for m in BENCH_LINE.finditer(base.read(os.path.join(d, "bench.txt")) or ""):
        values = [float(v) if "." in v else int(v) for v in m.groups()[1:]]
        out["bench"][m.group(1)] = dict(zip(FIELDS, values))
    for m in CONSOLE_LINE.finditer(base.read(os.path.join(d, "bench.txt")) or ""):
        out["console"][m.group(1)] = {p.group(1): {"ms": float(p.group(2)), "max_ms": float(p.group(3)),
                                                   "bytes": int(p.group(4))}
                                      for p in CONSOLE_PAGE.finditer(m.group(2))}
    return out


def _n(x):
    """An integer with thin groups of three digits: 1 000 000."""
    return f"{x:,}".replace(",", " ")


def _whole(r, b):
    return (b is not None and b["images"] == IMAGES and b["packages"] == PACKAGES
            and r["pulls"] is not None and b["pulls"] == r["pulls"])


def targets(r):
    """Rows of the report's Targets table: [name, measured, result]."""
    import report as base

    x, ok, rps_on, rps_off = ledger_report.warm_ok(r)
    rows = [[
        "Warm manifest by digest with SBOM ingest on ≥ 0.95× ingest off",
        (f"{base.fmt_ratio(x)} ({base.fmt(rps_on, 0)} vs {base.fmt(rps_off, 0)} req/s, enforce, 64 conns; median of the "
         f"ratios of {len(r['wrk']['on'])} alternating rounds; digests ingested: on {base.fmt(r['written'].get('on'), 0)}, "
         f"off {base.fmt(r['written'].get('off'), 0)})"),
        base.verdict(None if x is None or not ok else x >= 0.95),
    ]]
    pulls = _n(r["pulls"]) if r["pulls"] else "?"
    for db, label in ledger_report.BACKENDS.items():
        b = r["bench"].get(db)
        whole = _whole(r, b)
        measured = lambda text: text if b else "not measured"  # noqa: E731
        rows += [
            [f"Inventory query by package + range, 10 000 images × 300 packages, {pulls} pull records: p99 < 50 ms ({label})",
             measured(b and f"p99 {b['p99_ms']} ms, p50 {b['p50_ms']} ms ({b['queries']} queries over 50 packages of 10 "
                      f"ecosystems, {b['entries']} entries on average)"),
             base.verdict(None if not whole or b["entries"] == 0 else b["p99_ms"] < 50)],
            [f"Inventory by an OSV advisory with 20 affected ranges < 100 ms ({label})",
             measured(b and f"median {b['advisory_ms']} ms, max {b['advisory_max_ms']} ms of 10 "
                      f"({b['advisory_entries']} entries)"),
             base.verdict(None if not whole or b["advisory_entries"] == 0 else b["advisory_ms"] < 100)],
            [f"Ingest of a 10 MB syft SBOM < 200 ms ({label})",
             measured(b and f"median {b['ingest_ms']} ms, max {b['ingest_max_ms']} ms of 5 "
                      f"({_n(b['sbom_bytes'])} bytes, {_n(b['sbom_packages'])} packages; read in {b['read_ms']} ms, "
                      "then recorded)"),
             base.verdict(None if not whole or b["sbom_bytes"] < SBOM_BYTES else b["ingest_ms"] < 200)],
        ]
    for db, label in ledger_report.BACKENDS.items():
        c = r["console"].get(db)
        complete = c is not None and all(p in c for p in CONSOLE_PAGES)
        rows.append([
            f"Console: every page < 200 ms with 10 000 images and {pulls} ledger records ({label})",
            (", ".join(f"{p} {c[p]['ms']} ms" for p in CONSOLE_PAGES if p in c) + " (median of 5, HTML rendered)")
            if c else "not measured",
            base.verdict(None if not complete or not _whole(r, r["bench"].get(db))
                         else all(c[p]["ms"] < 200 for p in CONSOLE_PAGES)),
        ])
    return rows


def section(r):
    """The report's "SBOM inventory" section (markdown)."""
    import report as base

    x, _, _, _ = ledger_report.warm_ok(r)
    warm = [[i, base.fmt(on and on.get("rps"), 0), base.fmt(off and off.get("rps"), 0),
             base.fmt_ratio(base.ratio(on and on.get("rps"), off and off.get("rps")))]
            for i, (on, off) in enumerate(zip(r["wrk"]["on"], r["wrk"]["off"]))]
    answers = []
    for db, label in ledger_report.BACKENDS.items():
        b = r["bench"].get(db)
        if b is None:
            answers.append([label] + ["n/a"] * 6)
            continue
        answers.append([label, base.fmt(b["seeded_s"], 1), f"{b['p50_ms']} / {b['p99_ms']}",
                        f"{b['advisory_ms']} / {b['advisory_max_ms']}", f"{b['ingest_ms']} / {b['ingest_max_ms']}",
                        base.fmt(b["entries"], 0), base.fmt(b["advisory_entries"], 0)])
    return f"""## SBOM inventory

**Ingest cost on the request path.** Two portcullis processes with the enforce configuration, one
with `inventory: {{ ingest: false }}`; `wrk -t2 -c64` by digest on the warm `key-legacy` manifest,
alternating between them; the ratio is the median of each round's "on" over the "off" run that
follows it. On the "on" side the primed digest was ingested (off the request path) and every warm
request offers its digest to the ingest, which finds it in its bounded map of digests already
offered. Median ratio {base.fmt_ratio(x)}.

{base.table(["Round", "Ingest on req/s", "Ingest off req/s", "On ÷ off"], warm)}

**Answers over a large inventory.** `cargo bench --bench inventory` records 10 000 images' SBOMs of
300 packages each (3 000 000 image-package rows: CycloneDX documents read by the inventory's own
reader, from 3 000 packages across npm, Maven, PyPI, Go, cargo, RubyGems, NuGet, Alpine, Debian and
RPM, with distro and upstream qualifiers, each in about 1 000 images at a spread of versions) and
the ledger's pull records for their digests, through the database layer the proxy writes with.
Then, in process with the JSON rendered: 200 queries by purl and range (`<3.10.0` in each
ecosystem's spelling), each answer joined with the ledger (tags, pulls, clients); an advisory
naming 20 packages with a `fixed` range each (10 runs); and the ingest of a syft-shaped SPDX 2.3
document of 10 MB (packages with cpe and purl references, files, relationships): read, then recorded
under a new digest (5 runs). PostgreSQL is a server started for the run on this machine, with
initdb's default settings except `shared_buffers = 1GB` (the default, 128 MB, is sized to start on
any machine, not to hold a 2 GB database).

{base.table(["Database", "Seeded in (s)", "Query p50 / p99 (ms)", "Advisory median / max (ms)", "10 MB ingest median / max (ms)", "Entries per query", "Advisory entries"], answers)}

**Console pages.** On the same database, with a stored verdict for each of the 30 000 digests,
each page of the console ([console.md](console.md)) fetched 5 times through the admin listener's
handler, in process, HTML rendered: the overview over 24 h and 7 d (from the ledger's hourly
sums), the audit report over 7 days (each section lists 200 digests), one image, an inventory
search by package and range and one by the advisory above (500 hits listed), the policies with an
explanation. Median / max in ms, and the page's size.

{base.table(["Database"] + CONSOLE_PAGES, console_rows(r))}
"""


def console_rows(r):
    import report as base

    rows = []
    for db, label in ledger_report.BACKENDS.items():
        c = r["console"].get(db) or {}
        rows.append([label] + [f"{c[p]['ms']} / {c[p]['max_ms']} ({_n(c[p]['bytes'])} B)" if p in c else "n/a"
                               for p in CONSOLE_PAGES])
    return rows
