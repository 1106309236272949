"""Load benchmark: `etl load` against the seed-style approach and against the raw limit, in one run.

    .venv/bin/python benchmarks/bench_load.py --tickets 1000000

Stages the sample export of N tickets (other stores in proportion; generated and
transformed once, then reused from benchmarks/out/), starts a private server in a temporary
folder (etl.mysql.server.LocalServer with the project's bulk settings and a large buffer pool,
the same server for every method) and loads the same staged rows into a fresh database
per method:

* etl load   - `etl.mysql.load.load` as `etl load` runs it: everything it does is timed (reading
               the stage, row hashes, the ledger, files, LOAD DATA, read-back checks,
               index rebuild, the final key check, upload sessions finalized).
* seed-style - chunks of 200 rows, one multi-row INSERT and one commit per chunk, into
               the fully indexed tables, rows in stage order.
* raw limit  - per table: one LOAD DATA LOCAL INFILE of all its rows, sorted by primary
               key, into the table without its secondary indexes, then one ALTER TABLE
               adding them all. Timed on the server side only; writing the files it reads
               (with the loader's own writer) is reported apart and not counted.

Audit triggers are skipped (@etl_skip_audit = 1) by every method alike.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import tempfile
import time
from pathlib import Path


from common import OUT, sample_export

from etl import LocalServer, MySQLTarget, apply_schema, load, read_stage
from etl.mysql import bulk
from etl.mysql.plan import mysql_order
from etl.stage.folder import staged_stores


def staged(tickets: int) -> Path:
    from etl import export, transform

    stage = OUT / f"stage-{tickets}"
    if not (stage / "transform-summary.json").is_file():
        source = sample_export(tickets)
        print(f"exporting and transforming {source} ...", flush=True)
        export(source, OUT / f"export-{tickets}", force=True)
        transform(OUT / f"export-{tickets}", stage)
    return stage


def fresh(base: MySQLTarget, name: str) -> MySQLTarget:
    target = MySQLTarget(base.host, base.port, base.user, base.password, name)
    with target.connect(database=False) as conn, conn.cursor() as cur:
        cur.execute(f"DROP DATABASE IF EXISTS `{name}`")
    apply_schema(target)
    return target


def drop(target: MySQLTarget) -> None:
    with target.connect(database=False) as conn, conn.cursor() as cur:
        cur.execute(f"DROP DATABASE IF EXISTS `{target.database}`")


def session(target: MySQLTarget, **kw):
    conn = target.connect(**kw)
    with conn.cursor() as cur:
        cur.execute("SET SESSION sql_mode = 'STRICT_ALL_TABLES,NO_ENGINE_SUBSTITUTION'")
        cur.execute("SET @etl_skip_audit = 1")
    return conn


def count_rows(target: MySQLTarget, stores) -> int:
    with target.connect() as conn, conn.cursor() as cur:
        total = 0
        for st in stores:
            cur.execute(f"SELECT COUNT(*) FROM `{st.table}`")
            total += cur.fetchone()[0]
        return total


def run_ours(target: MySQLTarget, stage: Path) -> tuple[float, str]:
    t0 = time.perf_counter()
    result = load(stage, target)
    return time.perf_counter() - t0, str(result)


def run_seed_style(target: MySQLTarget, frames: dict, chunk: int = 200) -> float:
    t0 = time.perf_counter()
    with session(target, autocommit=False) as conn, conn.cursor() as cur:
        for st, frame in frames.items():
            sql = bulk.insert_sql(st.table, st)
            rows = frame.select(st.column_names)
            for start in range(0, rows.height, chunk):
                cur.executemany(sql, rows.slice(start, chunk).rows())
                conn.commit()
    return time.perf_counter() - t0


def run_raw(target: MySQLTarget, frames: dict, work: Path) -> tuple[float, float]:
    """(server seconds: LOAD DATA + ADD INDEX, seconds spent writing the files)."""
    files, writing = {}, time.perf_counter()
    for st, frame in frames.items():
        files[st] = bulk.write_tsv(mysql_order(frame, st), st, work / f"{st.table}.tsv")
    writing = time.perf_counter() - writing
    with session(target) as conn, conn.cursor() as cur:
        indexes = {st: bulk.secondary_indexes(conn, st.table) for st in frames}
        for st, idx in indexes.items():
            if idx:
                cur.execute(f"ALTER TABLE `{st.table}` " + ", ".join(f"DROP INDEX `{n}`" for n in idx))
        t0 = time.perf_counter()
        for st, path in files.items():
            cur.execute(bulk.load_data_sql(st.table, st), (str(path),))
        for st, idx in indexes.items():
            if idx:
                cur.execute(f"ALTER TABLE `{st.table}` " + ", ".join(f"ADD {d}" for d in idx.values()))
        return time.perf_counter() - t0, writing


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--tickets", type=int, default=100_000)
    p.add_argument("--buffer-pool", default="4G", help="InnoDB buffer pool of the private server (default 4G)")
    p.add_argument("--skip-seed-style", action="store_true", help="leave out the (slow) seed-style run")
    p.add_argument("--repeat", type=int, default=1,
                   help="run the raw limit and etl load this many times each, alternating; medians are reported")
    args = p.parse_args()

    stage = staged(args.tickets)
    stores = staged_stores(stage)
    # Rows the server must refuse (a NULL in a NOT NULL column) are left out of the seed-style and
    # raw runs: strict INSERTs would stop on them, and LOAD DATA would store a default instead.
    # `etl load` gets the stage as it is and puts them in its rejects file.
    frames = {st: read_stage(stage, st).drop_nulls([c.name for c in st.columns if not c.nullable]) for st in stores}
    rows = sum(f.height for f in frames.values())
    print(f"stage {stage}: {rows:,} rows ({', '.join(f'{st.table} {f.height:,}' for st, f in frames.items())})")

    home = Path(tempfile.mkdtemp(prefix="etl-bench-load-"))
    server = LocalServer(home / "server", buffer_pool=args.buffer_pool)
    try:
        info = server.up()
        print(f"server: {info.version}, buffer pool {args.buffer_pool}, bulk settings of etl/mysql/server.py")
        base = MySQLTarget.parse(info.uri)
        results: dict[str, list[float]] = {"raw limit": [], "etl load": []}
        writing: list[float] = []
        for i in range(args.repeat):
            order = ("raw", "ours") if i % 2 == 0 else ("ours", "raw")  # neither always goes first
            for method in order:
                if method == "raw":
                    target = fresh(base, "bench_raw")
                    server_s, writing_s = run_raw(target, frames, home)
                    assert count_rows(target, stores) == rows
                    results["raw limit"].append(server_s)
                    writing.append(writing_s)
                    print(f"raw limit: {server_s:.1f} s (+ {writing_s:.1f} s writing its files)", flush=True)
                else:
                    target = fresh(base, "bench_ours")
                    ours_s, report = run_ours(target, stage)
                    loaded = count_rows(target, stores)
                    results["etl load"].append(ours_s)
                    print(f"etl load: {ours_s:.1f} s", flush=True)
                drop(target)

        if not args.skip_seed_style:
            target = fresh(base, "bench_seed")
            results["seed-style"] = [run_seed_style(target, frames)]
            assert count_rows(target, stores) == rows
            drop(target)
            print(f"seed-style: {results['seed-style'][0]:.1f} s", flush=True)
    finally:
        server.down()
        shutil.rmtree(home, ignore_errors=True)

    print()
    print(report)
    print()
    median = {name: statistics.median(runs) for name, runs in results.items()}
    print(f"{'method':<12}{'rows':>12}{'seconds':>10}{'rows/s':>12}   runs (s)")
    for name, seconds in median.items():
        n = loaded if name == "etl load" else rows
        print(f"{name:<12}{n:>12,}{seconds:>10.1f}{n / seconds:>12,.0f}   {', '.join(f'{r:.1f}' for r in results[name])}")
    print(f"(raw limit: writing its files took another {statistics.median(writing):.1f} s, not counted above)")
    print()
    raw, ours = median["raw limit"], median["etl load"]
    print(f"etl load / raw limit      = {raw / ours:.2f} of the raw limit's speed"
          f" ({(raw + statistics.median(writing)) / ours:.2f} counting the raw limit's file writing)")
    if "seed-style" in median:
        print(f"etl load / seed-style     = {median['seed-style'] / ours:.1f}x faster")


if __name__ == "__main__":
    main()
