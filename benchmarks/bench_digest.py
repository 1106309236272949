"""What the STORED `row_digest` column costs a bulk load: the raw-limit path with and without it.

    .venv/bin/python benchmarks/bench_digest.py [--tickets 1000000] [--buffer-pool 4G] [--repeat 2]

The staged tickets (the same stage as bench_load) go into a fresh database of a private
server, once as the schema defines the table and once with `row_digest` dropped first, in
turn (with, without, without, with, ...): secondary indexes dropped, one LOAD DATA LOCAL
INFILE of the rows sorted by primary key, then ADD INDEX. LOAD DATA and ADD INDEX are timed
apart. Then, on the table with the column, what MariaDB spends evaluating the expression
and its parts in a full-scan SELECT (single-threaded), to show where the cost is.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import tempfile
import time
from pathlib import Path

from bench_load import drop, fresh, session, staged

from etl import LocalServer, MySQLTarget, read_stage, store
from etl.mysql import bulk
from etl.core.digest import _mysql_element, mysql_expression
from etl.mysql.plan import mysql_order

TICKETS = store("tickets")


def load_once(target: MySQLTarget, frame, work: Path, with_digest: bool) -> tuple[float, float]:
    path = bulk.write_tsv(mysql_order(frame, TICKETS), TICKETS, work / "tickets.tsv")
    with session(target) as conn, conn.cursor() as cur:
        if not with_digest:
            cur.execute("ALTER TABLE tickets DROP COLUMN row_digest")
        indexes = bulk.secondary_indexes(conn, "tickets")
        cur.execute("ALTER TABLE tickets " + ", ".join(f"DROP INDEX `{n}`" for n in indexes))
        t0 = time.perf_counter()
        cur.execute(bulk.load_data_sql("tickets", TICKETS), (str(path),))
        t1 = time.perf_counter()
        cur.execute("ALTER TABLE tickets " + ", ".join(f"ADD {d}" for d in indexes.values()))
        return t1 - t0, time.perf_counter() - t1


def expression_parts(target: MySQLTarget) -> None:
    cols = TICKETS.columns
    text = "CONCAT_WS(',', " + ", ".join(_mysql_element(c) for c in cols) + ")"
    raw = "CONCAT_WS(',', " + ", ".join(f"`{c.name}`" for c in cols) + ")"
    parts = {
        "a full scan (count only)": "1",
        "the digest (as the column defines it)": mysql_expression(TICKETS),
        "MD5 of the row's text": f"MD5({text})",
        "the row's text": text,
        "CONCAT_WS of the raw columns (no prefixes, no NULL markers)": raw,
    }
    print("\nwhat MariaDB spends on the expression, full-scan SELECT of the 1M tickets (single-threaded):")
    with target.connect() as conn, conn.cursor() as cur:
        for label, expr in parts.items():
            t0 = time.perf_counter()
            cur.execute(f"SELECT SUM(LENGTH({expr})) FROM tickets")
            cur.fetchall()
            print(f"  {label}: {time.perf_counter() - t0:.2f} s", flush=True)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--tickets", type=int, default=1_000_000)
    p.add_argument("--buffer-pool", default="4G")
    p.add_argument("--repeat", type=int, default=2)
    args = p.parse_args()
    frame = read_stage(staged(args.tickets), TICKETS)
    home = Path(tempfile.mkdtemp(prefix="etl-bench-digest-"))
    server = LocalServer(home / "server", buffer_pool=args.buffer_pool)
    times: dict[bool, list[tuple[float, float]]] = {True: [], False: []}
    try:
        base = MySQLTarget.parse(server.up().uri)
        for i in range(args.repeat):
            for with_digest in ((True, False) if i % 2 == 0 else (False, True)):
                target = fresh(base, "bench_digest")
                times[with_digest].append(load_once(target, frame, home, with_digest))
                print(f"{'with' if with_digest else 'without'} row_digest: LOAD DATA {times[with_digest][-1][0]:.1f} s, "
                      f"ADD INDEX {times[with_digest][-1][1]:.1f} s", flush=True)
                if with_digest and i == args.repeat - 1:
                    expression_parts(target)
                drop(target)
    finally:
        server.down()
        shutil.rmtree(home, ignore_errors=True)
    print(f"\n{len(frame):,} tickets, buffer pool {args.buffer_pool}; medians:")
    for with_digest in (True, False):
        runs = times[with_digest]
        print(f"  {'with' if with_digest else 'without'} row_digest: LOAD DATA {statistics.median(r[0] for r in runs):.1f} s, "
              f"ADD INDEX {statistics.median(r[1] for r in runs):.1f} s")


if __name__ == "__main__":
    main()
