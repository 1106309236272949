"""Parity of the 1M-ticket migration end to end, and reladiff on the same staged and MySQL tables.

    .venv/bin/python benchmarks/bench_parity.py [--tickets 1000000] [--runs 3] [--reuse] [--no-reladiff]

1. The 1M-ticket sample export (benchmarks/common.py) is exported and transformed once
   (kept in benchmarks/out/parity-stage-N), then loaded with `etl load` into a private
   server started for the benchmark (2 GB buffer pool, as `etl db up` starts one) unless
   --reuse finds it loaded already.
2. `etl parity --table tickets` and `etl parity` (every table) run as their own processes,
   `--runs` times each: wall time of the whole process, median reported. First with the
   stage digests `etl load` keeps (STAGE/digests), as after the load; then with them
   removed before each run (each run computes them from the stage).
3. Probes behind the choice of how parity reads MySQL (in this process): the row_digest
   column in 1, 2 and 4 key ranges, and the stage side's digest; connectorx whole table in
   1, 2 and 4 key ranges (tables without row_digest); Arrow stream instead of a table; the
   per-row MD5 and the per-bucket sum computed by MySQL at query time.
4. reladiff (PyPI, run with `uv run --no-project --with`, so it never enters uv.lock)
   compares the same staged table (copied into a DuckDB file, not timed) with the same
   MySQL table on every described column.
"""

from __future__ import annotations

import argparse
import os
import shlex
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

from common import ETL, OUT, ROOT, loaded_target, run, stage_for

sys.path.insert(0, str(ROOT))

from etl import MySQLTarget, store  # noqa: E402
from etl.core.digest import DIGESTS_DIR  # noqa: E402

TICKETS = store("tickets")
UV = ROOT / ".tools" / "bin" / "uv"
RELADIFF = "reladiff[mysql,duckdb]==0.6.0"


def timed_runs(label: str, args: list[str], runs: int, before=None) -> tuple[float, list[float], str]:
    times, output = [], ""
    for i in range(runs):
        if before:
            before()
        done = run(f"{label} {i}", args, env={"RUNTIME_DIR": str(OUT / "parity-runtime")})
        times.append(done.seconds)
        output = done.output
    return statistics.median(times), times, output


def probes(target: MySQLTarget, stage: Path) -> list[tuple[str, float]]:
    """How long each way of getting the MySQL side takes (the choice in etl/check/parity.py rests on these)."""
    import connectorx as cx
    import duckdb
    import polars as pl

    from etl.check.parity_read import MySQLSide, range_queries, split_points
    from etl.core.rowhash import hash_expression

    keys = pl.read_parquet(stage / "tickets.parquet", columns=["id"])["id"]
    out = []
    pid = int((OUT / "parity-mysql" / "mysqld.pid").read_text())

    def server_cpu() -> float:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def clock(label, fn):
        t0, c0, s0 = time.perf_counter(), time.process_time(), server_cpu()
        fn()
        out.append((label, time.perf_counter() - t0, time.process_time() - c0, server_cpu() - s0))
        print(f"  probe: {label}: {out[-1][1]:.2f} s", flush=True)

    def side(parts: int, digest: bool) -> MySQLSide:
        s = MySQLSide(target, TICKETS, split_points(keys, parts), TICKETS.default_buckets)
        assert s.digest, "the benchmark database has no row_digest column"
        s.digest = digest  # False: read every column, as for a table without row_digest
        return s

    for parts in (1, 2, 4):
        clock(f"row_digest column: keys + bucket columns + digest, {parts} key range(s), to Arrow",
              lambda: side(parts, True).read())
    con = duckdb.connect()
    con.execute("SET enable_progress_bar = false")
    con.execute(f"CREATE VIEW staged AS SELECT * FROM read_parquet('{stage / 'tickets.parquet'}')")
    for label, fn in (("etl.core.digest (MD5 of the row's text)", side(2, True).stage_hash_sql()),
                      ("etl.core.rowhash (DuckDB hash())", side(2, False).stage_hash_sql())):
        clock(f"stage side: sum of the rows' {label} in DuckDB",
              lambda: con.execute(f"SELECT sum(h::HUGEINT) FROM (SELECT {fn} AS h FROM staged)").fetchall())
    con.close()
    for parts in (1, 2, 4):
        clock(f"connectorx, whole table, {parts} key range(s), to Arrow",
              lambda: side(parts, False).read())
    two = range_queries(TICKETS, split_points(keys, 2))
    clock("connectorx, 2 key ranges, text protocol", lambda: cx.read_sql(target.uri, two, return_type="arrow", protocol="text"))
    # What each kind of column costs to read (2 key ranges, only those columns).
    kinds: dict[str, list[str]] = {}
    for c in TICKETS.columns:
        kinds.setdefault(c.kind, []).append(f"`{c.name}`")
    for kind, exprs in kinds.items():
        queries = [q.replace(", ".join(f"`{c.name}`" for c in TICKETS.columns), ", ".join(exprs), 1) for q in two]
        clock(f"connectorx, 2 key ranges, only the {len(exprs)} {kind} column(s)",
              lambda: cx.read_sql(target.uri, queries, return_type="arrow"))
    con = duckdb.connect()
    con.execute("SET enable_progress_bar = false")

    def stream_hash():
        queries = range_queries(TICKETS, split_points(keys, 2))
        con.register("s", cx.read_sql(target.uri, queries, return_type="arrow_stream"))
        con.execute(f"SELECT sum(h::HUGEINT) FROM (SELECT {hash_expression(TICKETS)} AS h FROM s)").fetchall()

    def table_hash():
        con.register("t", side(2, False).read())
        con.execute(f"SELECT sum(h::HUGEINT) FROM (SELECT {hash_expression(TICKETS)} AS h FROM t)").fetchall()

    clock("connectorx 2 ranges to Arrow, then DuckDB row hash", table_hash)
    clock("connectorx 2 ranges as an Arrow stream hashed by DuckDB while it arrives", stream_hash)
    cols = [f"`{c.name}`" for c in TICKETS.columns]
    nulls = "CONCAT(" + ", ".join(f"ISNULL(`{c.name}`)" for c in TICKETS.columns if c.nullable) + ")"
    md5 = f"MD5(CONCAT_WS(0x1f, {', '.join(cols)}, {nulls}))"
    points = split_points(keys, 2)
    lo = f"CONVERT(X'{points[0].encode().hex()}' USING utf8mb4) COLLATE utf8mb4_bin"
    per_row = [f"SELECT id, open_time, cabang, status, category, {md5} AS h FROM tickets WHERE id {op} {lo}" for op in ("<", ">=")]
    clock("pushed down: per-row MD5 in MySQL (2 key ranges), keys + buckets + hash to Arrow",
          lambda: cx.read_sql(target.uri, per_row, return_type="arrow"))
    grouped = (f"SELECT DATE(open_time) d, cabang, status, category, COUNT(*) n, "
               f"SUM(CAST(CONV(LEFT({md5}, 16), 16, 10) AS UNSIGNED)) x FROM tickets GROUP BY 1, 2, 3, 4")
    with target.connect() as conn, conn.cursor() as cur:
        clock("pushed down: per-bucket count + MD5 sum in MySQL (1 query)", lambda: (cur.execute(grouped), cur.fetchall()))
    return out


def reladiff(target: MySQLTarget, stage: Path, timeout: int) -> tuple[float | None, str]:
    import duckdb

    db = OUT / "parity-stage.duckdb"
    db.unlink(missing_ok=True)
    con = duckdb.connect(str(db))
    # reladiff 0.6.0 fails on DuckDB TIMESTAMP_MS columns: hand it microsecond timestamps.
    times = ", ".join(f'"{c.name}"::TIMESTAMP AS "{c.name}"' for c in TICKETS.columns if c.kind == "datetime")
    con.execute(f"CREATE TABLE tickets AS SELECT * REPLACE ({times}) FROM read_parquet('{stage / 'tickets.parquet'}')")
    con.close()
    cols = [a for c in TICKETS.column_names if c != "id" for a in ("-c", c)]
    # --skip-sort-results: reladiff 0.6.0 crashes sorting rows whose timestamps are NULL.
    args = [str(UV), "run", "--quiet", "--no-project", "--with", RELADIFF, "--", "reladiff",
            f"duckdb://{db}", "tickets", target.uri, "tickets", "-k", "id", *cols, "-s", "--skip-sort-results"]
    subprocess.run([str(UV), "run", "--quiet", "--no-project", "--with", RELADIFF, "--", "reladiff", "--version"],
                   check=True, capture_output=True, cwd=ROOT)  # install into uv's cache first, untimed
    print("  $ " + shlex.join(args[:9] + ["..."]), flush=True)
    t0 = time.perf_counter()
    try:
        done = subprocess.run(args, capture_output=True, text=True, timeout=timeout, cwd="/tmp")
    except subprocess.TimeoutExpired:
        return None, f"did not finish in {timeout} s"
    seconds = time.perf_counter() - t0
    stats = "\n".join(line for line in (done.stdout + done.stderr).splitlines() if "WARNING" not in line)
    return seconds, stats


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--tickets", type=int, default=1_000_000)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--reuse", action="store_true", help="keep the loaded benchmark database when it holds the tickets")
    ap.add_argument("--no-reladiff", action="store_true")
    ap.add_argument("--no-probes", action="store_true")
    ap.add_argument("--reladiff-timeout", type=int, default=900)
    args = ap.parse_args()
    load_before = os.getloadavg()
    stage = stage_for("parity", args.tickets)
    target, load_seconds = loaded_target("parity", stage, args.tickets, args.reuse)
    env_args = ["--src", str(stage), "--dst-mysql", target.uri]
    print(f"stage {stage}, MySQL {target}" + (f", loaded in {load_seconds:.1f} s" if load_seconds else " (reused)"), flush=True)

    tickets_median, tickets_runs, tickets_out = timed_runs("etl parity tickets", [*ETL, "parity", *env_args, "--table", "tickets", "--fail-on-mismatch"], args.runs)
    all_median, all_runs, all_out = timed_runs("etl parity all", [*ETL, "parity", *env_args], args.runs)
    # The same with no digests kept: the first parity of a stage that `etl load` has not seen.
    forget = lambda: shutil.rmtree(stage / DIGESTS_DIR, ignore_errors=True)  # noqa: E731
    cold_median, cold_runs, _ = timed_runs("etl parity tickets cold", [*ETL, "parity", *env_args, "--table", "tickets"], args.runs, forget)
    cold_all_median, cold_all_runs, _ = timed_runs("etl parity all cold", [*ETL, "parity", *env_args], args.runs, forget)
    probe_rows = [] if args.no_probes else probes(target, stage)
    rd_seconds, rd_stats = (None, "not run") if args.no_reladiff else reladiff(target, stage, args.reladiff_timeout)
    load_after = os.getloadavg()

    print(f"\n{args.tickets:,} tickets; load average {load_before[0]:.1f} before, {load_after[0]:.1f} after "
          f"({os.cpu_count()} cores)\n")
    print("| what | seconds (median) | runs |\n|---|---|---|")
    print(f"| `etl parity --table tickets` (process, end to end) | {tickets_median:.1f} | {', '.join(f'{t:.1f}' for t in tickets_runs)} |")
    print(f"| `etl parity` every table (process, end to end) | {all_median:.1f} | {', '.join(f'{t:.1f}' for t in all_runs)} |")
    print(f"| `etl parity --table tickets`, stage digests not kept | {cold_median:.1f} | {', '.join(f'{t:.1f}' for t in cold_runs)} |")
    print(f"| `etl parity` every table, stage digests not kept | {cold_all_median:.1f} | {', '.join(f'{t:.1f}' for t in cold_all_runs)} |")
    if rd_seconds is not None:
        print(f"| reladiff 0.6.0, tickets, every described column | {rd_seconds:.1f} | 1 |")
        print(f"\nratio reladiff / etl parity (tickets): {rd_seconds / tickets_median:.1f}x")
    else:
        print(f"| reladiff 0.6.0, tickets, every described column | {rd_stats} | 1 |")
    if probe_rows:
        print("\n| how the MySQL side is read (tickets) | seconds | client CPU s | server CPU s |\n|---|---|---|---|")
        for label, seconds, client, server in probe_rows:
            print(f"| {label} | {seconds:.1f} | {client:.1f} | {server:.1f} |")
    print("\netl parity --table tickets said:\n" + tickets_out)
    print("etl parity said:\n" + all_out)
    print("reladiff said:\n" + rd_stats)


if __name__ == "__main__":
    sys.exit(main())
