"""What `etl export` pays for an export independent of its source (issue 13): hard links (before)
against the copy it now makes (a copy-on-write clone where the file system offers one, else
copy_file_range), and the fingerprints it records and the transform checks.

    .venv/bin/python benchmarks/bench_copy.py [--tickets 1000000] [--rounds 3]

The snippet layout of the sample (the export the tool itself produces); link, copy and
fingerprint in turn each round, `os.sync()` before each, in one process (same-run ratios).
"""

from __future__ import annotations

import argparse
import os
import shutil
import time

from common import OUT, snippet_layout

from etl.source.export import SUMMARY, fingerprint
from etl.source.forms import copy_file


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--tickets", type=int, default=1_000_000)
    ap.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args()
    src = snippet_layout(args.tickets)
    files = [p for p in sorted(src.iterdir()) if p.is_file() and p.name != SUMMARY]
    mb = sum(p.stat().st_size for p in files) / 1e6
    dst = OUT / "bench-copy"
    print(f"{len(files)} files, {mb:,.0f} MB; load average {os.getloadavg()[0]:.1f}")
    print("| round | hard link s | copy s | fingerprint s |\n|---|---|---|---|")
    for r in range(args.rounds):
        row = []
        for how in (os.link, copy_file, None):
            shutil.rmtree(dst, ignore_errors=True)
            dst.mkdir(parents=True)
            if how is None:
                for p in files:
                    copy_file(p, dst / p.name)
            os.sync()
            t0 = time.perf_counter()
            for p in files:
                how(p, dst / p.name) if how else fingerprint(dst / p.name)
            row.append(time.perf_counter() - t0)
        print(f"| {r + 1} | {row[0]:.2f} | {row[1]:.2f} | {row[2]:.3f} |")
    shutil.rmtree(dst, ignore_errors=True)
    print(f"load average at the end {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
