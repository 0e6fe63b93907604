"""`make bench`: run every benchmarks/bench_*.py, then print all their figures in one table.

Each benchmark script runs as its own subprocess (in name order, from the repository root);
`--quick` is passed on to the scripts that accept it (their source mentions `--quick`). A script
that fails is reported and the others still run; the exit status is 1 if any failed.

Then every benchmarks/results/*.json (except summary.json) is read, and the figures are printed
as one table and written to benchmarks/results/summary.json.

Results convention (what a bench script should write to benchmarks/results/<name>.json):

    {"name": str,                      # short benchmark name, e.g. "metrics"
     "figures": [{"metric": str,       # what was measured, e.g. "structureness short, 3-min song"
                  "value": float,      # the number
                  "unit": str,         # e.g. "s", "files/s", "tokens/s", "x real time", "MiB"
                  "note": str}]}       # conditions: machine, sizes, backend ("" if none)

Other keys may sit beside "figures" (details, configs) and are ignored here. A file without a
"figures" list is reported as unreadable (exit status 1): benchmarks/results/ holds benchmark
results only (fitted constants, e.g. fit_controls.py's, go to benchmarks/fits/).

    python benchmarks/run_all.py [--quick] [--only NAME ...] [--no-run]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BENCH = ROOT / "benchmarks"
RESULTS = BENCH / "results"
SUMMARY = RESULTS / "summary.json"


def read_figures(path: Path) -> tuple[str, list[dict[str, object]]]:
    """(benchmark name, figures) of one results file; ValueError if it is not in the convention."""
    data = json.loads(path.read_text())
    if not isinstance(data, dict) or not isinstance(data.get("figures"), list):
        raise ValueError("not in the results convention (no 'figures' list)")
    figures = []
    for f in data["figures"]:
        if not isinstance(f, dict) or "metric" not in f or "value" not in f:
            raise ValueError(f"a figure lacks 'metric' or 'value': {f!r}")
        figures.append({"metric": str(f["metric"]), "value": float(f["value"]),
                        "unit": str(f.get("unit", "")), "note": str(f.get("note", ""))})
    return str(data.get("name", path.stem)), figures


def run_scripts(quick: bool, only: list[str] | None) -> list[str]:
    """Run each bench_*.py in a subprocess; returns the names of those that failed."""
    failed = []
    for script in sorted(BENCH.glob("bench_*.py")):
        name = script.stem.removeprefix("bench_")
        if only and name not in only:
            continue
        cmd = [sys.executable, str(script)]
        if quick and "--quick" in script.read_text():
            cmd.append("--quick")
        print(f"== {script.name} {' '.join(cmd[2:])}", flush=True)
        t0 = time.perf_counter()
        rc = subprocess.run(cmd, cwd=ROOT).returncode
        took = time.perf_counter() - t0
        print(f"== {script.name}: {'ok' if rc == 0 else f'FAILED (exit {rc})'} in {took:.1f} s",
              flush=True)
        if rc != 0:
            failed.append(script.name)
    return failed


def format_value(v: float) -> str:
    """A compact, aligned rendering of a figure's value."""
    if v == int(v) and abs(v) < 1e9:
        return f"{int(v):d}"
    return f"{v:.4g}" if abs(v) < 1e5 else f"{v:.3e}"


def print_table(rows: list[dict[str, object]]) -> None:
    """All figures as one plain-text table: benchmark, metric, value, unit, note."""
    head = ("benchmark", "metric", "value", "unit", "note")
    cells = [(str(r["benchmark"]), str(r["metric"]), format_value(float(r["value"])),
              str(r["unit"]), str(r["note"])) for r in rows]
    widths = [max(len(h), *(len(c[i]) for c in cells)) if cells else len(h)
              for i, h in enumerate(head)]
    line = "  ".join(h.ljust(w) for h, w in zip(head, widths, strict=True)).rstrip()
    print(line)
    print("-" * len(line))
    for c in cells:
        print("  ".join([c[0].ljust(widths[0]), c[1].ljust(widths[1]), c[2].rjust(widths[2]),
                         c[3].ljust(widths[3]), c[4]]))


def main(argv: list[str] | None = None) -> int:
    """Run the benchmarks (unless --no-run), print the summary table, write summary.json."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="pass --quick to scripts that take it")
    ap.add_argument("--only", nargs="+", metavar="NAME",
                    help="run only these benchmarks (bench_NAME.py); all results are still shown")
    ap.add_argument("--no-run", action="store_true", help="only summarise existing results")
    args = ap.parse_args(argv)

    failed = [] if args.no_run else run_scripts(args.quick, args.only)
    rows, unreadable = [], []
    for path in sorted(RESULTS.glob("*.json")):
        if path == SUMMARY:
            continue
        try:
            name, figures = read_figures(path)
        except (ValueError, OSError) as exc:  # json.JSONDecodeError is a ValueError
            unreadable.append(f"{path.name}: {exc}")
            continue
        rows.extend({"benchmark": name, **f, "file": path.name} for f in figures)
    print()
    print_table(rows)
    for msg in unreadable:
        print(f"unreadable result file {msg}", file=sys.stderr)
    summary = {"name": "summary", "created": time.strftime("%Y-%m-%dT%H:%M:%S"),
               "failed": failed, "figures": rows}
    RESULTS.mkdir(parents=True, exist_ok=True)
    tmp = SUMMARY.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(summary, indent=1) + "\n")
    tmp.replace(SUMMARY)
    print(f"\nwrote {SUMMARY.relative_to(ROOT)} ({len(rows)} figures)")
    if failed:
        print("failed: " + ", ".join(failed), file=sys.stderr)
    return 1 if failed or unreadable else 0


if __name__ == "__main__":
    sys.exit(main())
