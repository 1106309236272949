"""Where the measuring commands leave their reports, and the newest of each.

`etl bench` writes RUNTIME_DIR/bench/<time>/report.json (and report.html), `etl monitor` appends its
samples to RUNTIME_DIR/monitor/<time>.jsonl. The cutover's guards judge the newest of each; the
evidence report and `etl status` show them. Kept here, below every wing that reads them.
"""

from __future__ import annotations

from pathlib import Path

BENCH_DIR, BENCH_REPORTS = "bench", "*/report.json"
MONITOR_DIR, MONITOR_REPORTS = "monitor", "*.jsonl"


def latest(folder: Path, pattern: str) -> Path | None:
    """The most recently written file matching `pattern` in `folder` (None: none)."""
    found = sorted(Path(folder).glob(pattern), key=lambda p: p.stat().st_mtime)
    return found[-1] if found else None


def latest_bench(runtime_dir: Path) -> Path | None:
    return latest(Path(runtime_dir) / BENCH_DIR, BENCH_REPORTS)


def latest_monitor(runtime_dir: Path) -> Path | None:
    return latest(Path(runtime_dir) / MONITOR_DIR, MONITOR_REPORTS)
