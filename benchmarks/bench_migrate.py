"""The whole migration against the load's raw limit, in one run: `etl migrate --from` a sample export.

    .venv/bin/python benchmarks/bench_migrate.py [--tickets 1000000] [--repeat 3] [--buffer-pool 2G]
                                                 [--baseline REV]

On one private server (etl.mysql.server.LocalServer, the project's bulk settings), repeated and
alternated so neither always goes first:

* etl migrate - `etl migrate --from ... --until aggregations` (through validation) the app-layout sample export of N tickets (other stores in
                proportion, benchmarks/common.py), as its own process, with a fresh database and
                fresh EXPORT_DIR / STAGE_DIR / RUNTIME_DIR: export, transform, load, parity,
                validation and the data docs. Wall time of the process, its peak RSS, and the
                seconds of each step from its run record.
* raw limit   - the same staged rows (the stage the migration just wrote), per table one LOAD DATA
                LOCAL INFILE into the table without its secondary indexes, then adding them
                (benchmarks/bench_load.py `run_raw`, timed on the server side only).

`--baseline REV` also runs `etl migrate` with the code of git revision REV (a worktree under
benchmarks/out, as bench_transform.py does), in turn with this code: the before-and-after of
every step in the same run.
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

from bench_load import count_rows, drop, fresh, run_raw
from common import ETL, OUT, ROOT, run, sample_export

from etl import LocalServer, MySQLTarget, read_stage
from etl.stage.folder import staged_stores


def baseline_tree(rev: str) -> tuple[str, Path]:
    short = subprocess.run(["git", "rev-parse", "--short", rev], cwd=ROOT, check=True, capture_output=True,
                           text=True).stdout.strip()
    tree = OUT / f"baseline-{short}"
    if not tree.exists():
        subprocess.run(["git", "worktree", "add", "--detach", str(tree), short], cwd=ROOT, check=True,
                       capture_output=True)
    return short, tree


def migrate_once(base: MySQLTarget, source: Path, work: Path, code: Path) -> tuple[float, float, dict, Path]:
    """(seconds, peak MB, step -> seconds, stage) of one `etl migrate` with the code under `code`."""
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    target = fresh(base, "bench_migrate")  # the schema applied: migrate applies it again, as it does on a rerun
    env = {"MYSQL_URI": target.uri, "EXPORT_DIR": str(work / "export"), "STAGE_DIR": str(work / "stage"),
           "RUNTIME_DIR": str(work / "runtime")}
    # Through validation (issue 20's measure): the playbook's later steps (benchmark, cutover, monitor)
    # take the seconds they are told to. Code from before the 18 steps has no --until: all of it is that.
    playbook = subprocess.run([*ETL, "migrate", "--help"], cwd=code, capture_output=True, text=True).stdout
    until = ["--until", "aggregations"] if "--until" in playbook else []
    done = run("etl migrate", [*ETL, "migrate", "--from", str(source), *until], env=env, cwd=code)
    runs = work / "runtime" / "runs"  # RUNTIME_DIR/runs/<id>/run.json (older code: runs/<id>.json)
    record = json.loads(max([*runs.glob("*/run.json"), *runs.glob("*.json")]).read_text())
    steps = {s.get("slug") or s["name"]: s["seconds"] for s in record["steps"] if s.get("status", "ok") == "ok"}
    drop(target)
    return done.seconds, done.peak_mb, steps, work / "stage"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--tickets", type=int, default=1_000_000)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--buffer-pool", default="2G", help="InnoDB buffer pool of the private server (default 2G)")
    ap.add_argument("--baseline", metavar="REV", help="also run `etl migrate` with this git revision's code")
    args = ap.parse_args()

    source = sample_export(args.tickets)
    codes = {"etl migrate": ROOT}
    if args.baseline:
        short, tree = baseline_tree(args.baseline)
        codes[f"etl migrate, code of {short}"] = tree
    home = Path(tempfile.mkdtemp(prefix="etl-bench-migrate-"))
    server = LocalServer(home / "server", buffer_pool=args.buffer_pool)
    wall: dict[str, list[float]] = {name: [] for name in [*codes, "raw limit"]}
    peaks: dict[str, list[float]] = {name: [] for name in codes}
    steps: dict[str, list[dict]] = {name: [] for name in codes}
    try:
        info = server.up()
        base = MySQLTarget.parse(info.uri)
        print(f"server: {info.version}, buffer pool {args.buffer_pool}; {args.tickets:,} tickets from {source}",
              flush=True)
        for i in range(args.repeat):
            order = [*codes, "raw limit"]
            if i % 2:
                order.reverse()
            for name in order:
                if name == "raw limit":
                    stage = OUT / "bench-migrate" / "etl migrate" / "stage"
                    stores = staged_stores(stage)
                    # Rows the server must refuse are left out, as bench_load.py does: LOAD DATA would store a default.
                    frames = {st: read_stage(stage, st).drop_nulls([c.name for c in st.columns if not c.nullable])
                              for st in stores}
                    target = fresh(base, "bench_raw")
                    seconds, writing = run_raw(target, frames, home)
                    rows = count_rows(target, stores)
                    drop(target)
                    del frames
                    wall[name].append(seconds)
                    print(f"raw limit: {seconds:.1f} s ({rows:,} rows; + {writing:.1f} s writing its files)", flush=True)
                    continue
                seconds, peak, per_step, _ = migrate_once(base, source, OUT / "bench-migrate" / name, codes[name])
                wall[name].append(seconds)
                peaks[name].append(peak)
                steps[name].append(per_step)
                print(f"{name}: {seconds:.1f} s, peak {peak:,.0f} MB; "
                      + ", ".join(f"{k} {v:.1f}" for k, v in per_step.items()), flush=True)
    finally:
        server.down()
        shutil.rmtree(home, ignore_errors=True)

    raw = statistics.median(wall["raw limit"])
    print(f"\n{args.tickets:,} tickets, medians of {args.repeat} (runs in brackets)")
    print("| what | seconds | / raw limit | peak RSS (MB) |\n|---|---|---|---|")
    print(f"| raw limit (LOAD DATA into bare tables + ADD INDEX) | {raw:.1f} ({', '.join(f'{s:.1f}' for s in wall['raw limit'])}) "
          "| 1.00 | |")
    for name in codes:
        m = statistics.median(wall[name])
        print(f"| {name} (whole process) | {m:.1f} ({', '.join(f'{s:.1f}' for s in wall[name])}) | {m / raw:.2f} | "
              f"{max(peaks[name]):,.0f} |")
    print("\n| step (median s) | " + " | ".join(codes) + " |\n|---|" + "---|" * len(codes))
    for step in steps["etl migrate"][0]:
        print(f"| {step} | " + " | ".join(f"{statistics.median(s.get(step, 0.0) for s in steps[n]):.1f}"
                                          for n in codes) + " |")


if __name__ == "__main__":
    sys.exit(main())
