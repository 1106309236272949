"""`etl validate` on the 1M-ticket migration: every Great Expectations suite against MySQL.

    .venv/bin/python benchmarks/bench_validate.py [--tickets 1000000] [--runs 3] [--reuse] [--stage DIR]
                                                  [--baseline REV] [--gx-engine] [--per-suite]

1. The 1M-ticket sample export (benchmarks/common.py) is exported and transformed once
   (kept in benchmarks/out/validate-stage-N), then loaded with `etl load` into a private
   server started for the benchmark (2 GB buffer pool, as `etl db up` starts one), unless
   --reuse finds it loaded already.
2. `etl validate` runs as its own process, `--runs` times: wall time of the whole process
   (Python start, Great Expectations import, the source side, every suite, the data docs),
   median reported, with the split the command prints (source side / Great Expectations).
   With `--baseline REV`, the `etl validate` of git revision REV (a worktree under benchmarks/out,
   its own committed Great Expectations context) runs in turn with this code, against the same
   database and stage: the ratio of the medians is the speed-up measured in one run.
   With `--gx-engine`, the same process with Great Expectations' own checkpoint computing every
   expectation against MySQL (`validate(engine="gx")`, how validation computed before issue 20;
   a baseline revision that old cannot read today's stage), in turn, the same way.
3. With --per-suite, each suite alone run by Great Expectations' checkpoint (engine "gx", in this
   process, no data docs): which suites its time goes to.
"""

from __future__ import annotations

import argparse
import os
import re
import statistics
import subprocess
import sys
import time
from pathlib import Path

from common import ETL, OUT, ROOT, loaded_target, stage_for

sys.path.insert(0, str(ROOT))

from etl import MySQLTarget  # noqa: E402


# `etl validate` as the CLI runs it (etl.playbook.validate_target), with Great Expectations' own
# checkpoint computing every expectation against MySQL: how validation computed before issue 20.
GX_ENGINE = ("import sys; from etl import load_settings; from etl.check.suites import gx_root; "
             "from etl.mysql.db import MySQLTarget; from etl.report.datadocs import validate; "
             "print(validate(MySQLTarget.parse(sys.argv[1]), sys.argv[2], root=gx_root(load_settings().root), engine='gx'))")


def validate_process(target: MySQLTarget, stage: Path, code: Path = ROOT, engine: str = "sql") -> tuple[float, int, str]:
    """One `etl validate` process with the code under `code`: (seconds, exit status, output).
    Exit 1 (failed expectations) is an outcome, not an error. `engine="gx"`: the same, computed by
    Great Expectations' own checkpoint."""
    t0 = time.perf_counter()
    command = ([*ETL, "validate", "--mysql", target.uri, "--stage", str(stage)] if engine == "sql"
               else [sys.executable, "-c", GX_ENGINE, target.uri, str(stage)])
    done = subprocess.run(command, cwd=code, capture_output=True, text=True, env={**os.environ})
    seconds = time.perf_counter() - t0
    if done.returncode not in (0, 1):
        raise SystemExit(f"etl validate failed to run (exit {done.returncode}):\n{done.stdout}{done.stderr}")
    return seconds, done.returncode, done.stdout


def per_suite(target: MySQLTarget, stage: Path) -> list[tuple[str, float]]:
    from etl import gx_root
    from etl.check.expected import source_frames, source_parameters
    from etl.check.suites import connection_env, open_context, suite_names

    params = source_parameters(source_frames(stage))
    ctx = open_context(gx_root(ROOT))
    out = []
    with connection_env(target):
        for name in suite_names():
            vd = ctx.validation_definitions.get(name)
            t0 = time.perf_counter()
            vd.run(expectation_parameters=params, result_format={"result_format": "SUMMARY"})
            out.append((name, time.perf_counter() - t0))
            print(f"  suite {name}: {out[-1][1]:.2f} s", flush=True)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--tickets", type=int, default=1_000_000)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--reuse", action="store_true", help="keep a loaded benchmark database")
    ap.add_argument("--stage", type=Path, help="an existing stage to validate against (default: made from the sample)")
    ap.add_argument("--baseline", metavar="REV", help="also time `etl validate` of this git revision, in turn")
    ap.add_argument("--per-suite", action="store_true", help="time each suite alone in Great Expectations")
    ap.add_argument("--gx-engine", action="store_true",
                    help="also time this code with Great Expectations' own checkpoint computing (the code before issue 20), in turn")
    args = ap.parse_args()

    stage = args.stage.resolve() if args.stage else stage_for("validate", args.tickets)
    target, load_s = loaded_target("validate", stage, args.tickets, args.reuse)
    with target.connect() as conn, conn.cursor() as cur:
        counts = {}
        for table in ("tickets", "incidents", "customers", "upload_sessions"):
            cur.execute(f"SELECT COUNT(*) FROM {table}")
            counts[table] = cur.fetchone()[0]
    print(f"loaded: {counts}" + (f" (etl load {load_s:.1f} s)" if load_s else " (reused)"), flush=True)

    codes = {"etl validate": (ROOT, "sql")}
    if args.baseline:
        from bench_migrate import baseline_tree

        short, tree = baseline_tree(args.baseline)
        codes[f"etl validate, code of {short}"] = (tree, "sql")
    if args.gx_engine:
        codes["etl validate, Great Expectations' engine"] = (ROOT, "gx")
    runs: dict[str, list] = {name: [] for name in codes}
    for i in range(args.runs):
        for name in (list(codes) if i % 2 == 0 else list(codes)[::-1]):  # neither always goes first
            runs[name].append(validate_process(target, stage, *codes[name]))
            seconds, code, out = runs[name][-1]
            print(f"  {name}: {seconds:.1f} s, exit {code}, {out.splitlines()[0][-80:]}", flush=True)
    outputs = {name: [o for _, _, o in r] for name, r in runs.items()}
    for name, outs in outputs.items():  # kept for a diff
        for i, o in enumerate(outs):
            (OUT / f"validate-output-{name.replace(' ', '_').replace(',', '')}-{i + 1}.txt").write_text(o)
    # The summary below its first line (times), without the context's housekeeping line.
    verdicts = {name: {"\n".join(line for line in o.split("\ndata docs:")[0].splitlines()[1:]
                                 if not line.startswith("updated in the Great Expectations context")) for o in outs}
                for name, outs in outputs.items()}
    medians = {name: statistics.median(s for s, _, _ in r) for name, r in runs.items()}
    last = outputs["etl validate"][-1]
    split = re.search(r"in ([\d.]+) s \(source ([\d.]+) s, Great Expectations ([\d.]+) s\)", last)
    suites = per_suite(target, stage) if args.per_suite else []

    print(f"\n{args.tickets:,} tickets; MySQL rows: " + ", ".join(f"{t} {n:,}" for t, n in counts.items()))
    print("| step | seconds |\n|---|---|")
    for name, r in runs.items():
        print(f"| `{name}` (whole process, median of {args.runs}: {', '.join(f'{s:.1f}' for s, _, _ in r)}) "
              f"| {medians[name]:.1f} |")
    if split:
        total, source, gx = map(float, split.groups())
        print(f"| of the last run: inside `validate()` | {total:.1f} |")
        print(f"| - source side (stage: value sets, expected view rows, rules in DuckDB) | {source:.1f} |")
        print(f"| - expectations (figures in MySQL, results, context, data docs) | {gx:.1f} |")
    for name in list(codes)[1:]:
        same = verdicts[name] == verdicts["etl validate"]
        print(f"\n{name} / etl validate = {medians[name] / medians['etl validate']:.1f}x "
              f"(the summaries below the first line {'are the same' if same else 'DIFFER'})")
    if suites:
        print("\n| suite alone in Great Expectations (no data docs) | seconds |\n|---|---|")
        for name, s in sorted(suites, key=lambda x: -x[1]):
            print(f"| {name} | {s:.2f} |")
        print(f"| all suites | {sum(s for _, s in suites):.1f} |")
    print("\n" + last)


if __name__ == "__main__":
    sys.exit(main())
