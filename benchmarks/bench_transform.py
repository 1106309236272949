"""Export + transform of a 1M-ticket export (other stores in proportion): time and peak memory.

    .venv/bin/python benchmarks/bench_transform.py [--tickets 1000000]

Each step runs as its own process (`etl export`, `etl transform`), as `make migrate` runs them;
peak memory is that process's maximum resident set size.
"""

from __future__ import annotations

import argparse
import shutil
import sys

from common import OUT, ETL, run, sample_export


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--tickets", type=int, default=1_000_000)
    args = ap.parse_args()
    source = sample_export(args.tickets)
    export, stage = OUT / "bench-export", OUT / "bench-stage"
    shutil.rmtree(export, ignore_errors=True)
    steps = [
        run("etl export", [*ETL, "export", "--from", str(source), "--out", str(export), "--force"]),
        run("etl transform", [*ETL, "transform", "--in", str(export), "--out", str(stage)]),
    ]
    size = sum(p.stat().st_size for p in source.glob("*.json")) / 2**20
    print(f"\n{args.tickets:,} tickets, {size:,.0f} MB of JSON")
    print(f"| step | seconds | peak memory (MB) |\n|---|---|---|")
    for s in steps:
        print(f"| {s.label} | {s.seconds:.1f} | {s.peak_mb:,.0f} |")
    total = sum(s.seconds for s in steps)
    print(f"| export + transform | {total:.1f} | {max(s.peak_mb for s in steps):,.0f} |")
    print("\n" + steps[-1].output)


if __name__ == "__main__":
    sys.exit(main())
