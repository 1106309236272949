"""Export + transform of a 1M-ticket export (other stores in proportion): time and peak memory.

    .venv/bin/python benchmarks/bench_transform.py [--tickets 1000000] [--layout whole|snippet|both] [--runs N]
                                                   [--baseline REV]

Each step runs as its own process (`etl export`, `etl transform`), as `make migrate` runs them;
peak memory is that process's maximum resident set size. Two layouts of the same records:
`whole`, one JSON array per store (tickets.json is 1.35 GB at 1M tickets: `etl export` cuts it
into parts), and `snippet`, as the browser snippet downloads them (a store over 64 MB as one
NDJSON file, which `etl export` keeps as it is). `--baseline REV` also runs the code of git
revision REV (a worktree under benchmarks/out) on the whole layout, in turn with this code.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys

from common import ETL, OUT, ROOT, run, sample_export, snippet_layout


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--tickets", type=int, default=1_000_000)
    ap.add_argument("--layout", choices=("whole", "snippet", "both"), default="both")
    ap.add_argument("--runs", type=int, default=1)
    ap.add_argument("--baseline", metavar="REV", help="also time this git revision's code on the whole layout")
    args = ap.parse_args()
    layouts = {"whole": sample_export, "snippet": snippet_layout}
    chosen = list(layouts) if args.layout == "both" else [args.layout]
    sources = {name: layouts[name](args.tickets) for name in chosen}
    cwd = {name: ROOT for name in sources}
    if args.baseline:
        rev = subprocess.run(["git", "rev-parse", "--short", args.baseline], cwd=ROOT, check=True,
                             capture_output=True, text=True).stdout.strip()
        tree = OUT / f"baseline-{rev}"
        if not tree.exists():
            subprocess.run(["git", "worktree", "add", "--detach", str(tree), rev], cwd=ROOT, check=True, capture_output=True)
        sources[f"whole, code of {rev}"], cwd[f"whole, code of {rev}"] = sample_export(args.tickets), tree
    size = sum(p.stat().st_size for p in sources[chosen[0]].glob("*json") if p.name != "export-summary.json") / 2**20
    print(f"\n{args.tickets:,} tickets, {size:,.0f} MB of JSON; load average {os.getloadavg()[0]:.1f}")
    print("| layout | run | `etl export` s | `etl transform` s | export + transform s | peak RSS (MB) |\n|---|---|---|---|---|---|")
    last = None
    for i in range(args.runs):
        for name, source in sources.items():  # alternated, so both see the same machine
            export, stage = OUT / "bench-export", OUT / "bench-stage"
            shutil.rmtree(export, ignore_errors=True)
            os.sync()  # the previous run's files are on disk: each run starts with nothing to write back
            steps = [
                run("etl export", [*ETL, "export", "--from", str(source), "--out", str(export), "--force"], cwd=cwd[name]),
                run("etl transform", [*ETL, "transform", "--in", str(export), "--out", str(stage)], cwd=cwd[name]),
            ]
            total = sum(s.seconds for s in steps)
            print(f"| {name} | {i + 1} | {steps[0].seconds:.1f} | {steps[1].seconds:.1f} | {total:.1f} | "
                  f"{max(s.peak_mb for s in steps):,.0f} |", flush=True)
            last = steps[-1]
    print(f"\nload average {os.getloadavg()[0]:.1f}\n\n{last.output}")


if __name__ == "__main__":
    sys.exit(main())
