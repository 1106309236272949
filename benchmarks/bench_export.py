"""`etl export` of a 1M-ticket export in each input form: time and peak memory.

    .venv/bin/python benchmarks/bench_export.py [--tickets 1000000] [--forms folder,single,dexie]

The folder form is the sample export itself (the app's layout, JSON arrays). The
single-file dump and the dexie-export-import file are built from it once (under
benchmarks/out/): the dexie file marks a property that was `undefined` on EVERY
ticket row and writes vendors' Dates as epoch ms, both in `$types` (so every
ticket row is decoded, not passed through).
Each export runs as its own `etl export` process: wall time, CPU time (user + system;
less disturbed than wall time when other work shares the machine) and peak RSS.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import duckdb

from common import ETL, OUT, ROOT, sample_export

STORES = ("tickets", "incidents", "customers", "vendors", "uploadSessions")


def _append(out, path: Path) -> None:
    with open(path, "rb") as f:
        shutil.copyfileobj(f, out, 16 << 20)


def single_file(folder: Path) -> Path:
    path = OUT / f"{folder.name}.single.json"
    if not path.is_file():
        meta = json.loads((folder / "export-summary.json").read_text())
        with open(path, "wb") as out:
            out.write(json.dumps({k: meta[k] for k in ("databaseName", "databaseVersion", "exportedAt")})[:-1].encode())
            for store in STORES:
                out.write(f',"{store}":'.encode())
                _append(out, folder / f"{store}.json")
            out.write(b"}")
    return path


def _dexie_rows(folder: Path, store: str, tmp: Path) -> Path:
    """The store's rows as dexie writes them, comma-separated, one per line (DuckDB, no Python objects)."""
    rows = tmp / f"{store}.rows"
    src = folder / f"{store}.json"
    con = duckdb.connect()
    if store == "vendors":  # Dates: {"$date": ms} -> ms, marked "date"
        text = ("regexp_replace(regexp_replace(json, '\\{\"\\$date\":(-?[0-9]+)\\}', '\\1', 'g'), '^\\{', "
                "'{\"$types\":{\"createdAt\":\"date\",\"updatedAt\":\"date\"},')")
    elif store == "tickets":  # a property that held undefined: 0, marked "undef" (absent once decoded)
        text = "'{\"legacyNote\":0,\"$types\":{\"legacyNote\":\"undef\"},' || substr(json, 2)"
    else:
        text = "json"
    con.execute(f"""COPY (SELECT CASE WHEN row_number() OVER () = 1 THEN '' ELSE ',' END || {text}
                    FROM read_json_objects(?, format='array', maximum_object_size=67108864))
                    TO '{rows}' (FORMAT csv, HEADER false, QUOTE '\x01', ESCAPE '\x01', DELIMITER '\x02')""", [str(src)])
    return rows


def dexie_file(folder: Path) -> Path:
    path = OUT / f"{folder.name}.dexie.json"
    if not path.is_file():
        meta = json.loads((folder / "export-summary.json").read_text())
        tmp = OUT / "dexie-rows"
        tmp.mkdir(exist_ok=True)
        tables = [{"name": s, "schema": "id", "rowCount": meta["counts"][s]} for s in STORES]
        head = {"formatName": "dexie", "formatVersion": 1,
                "data": {"databaseName": meta["databaseName"], "databaseVersion": meta["databaseVersion"], "tables": tables}}
        with open(path, "wb") as out:
            out.write(json.dumps(head)[:-2].encode() + b',"data":[')
            for i, store in enumerate(STORES):
                out.write(("," if i else "").encode() + f'{{"tableName":"{store}","inbound":true,"rows":['.encode())
                _append(out, _dexie_rows(folder, store, tmp))
                out.write(b"]}")
            out.write(b"]}}")
        shutil.rmtree(tmp)
    return path


def timed(args: list[str]) -> tuple[float, float, float, str]:
    """(wall s, CPU s, peak RSS MB, output) of one child process (os.wait4 gives its own usage)."""
    t0 = time.perf_counter()
    proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, cwd=ROOT, text=True)
    output = proc.stdout.read()
    _, status, usage = os.wait4(proc.pid, 0)
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"{' '.join(args)} failed:\n{output}")
    return time.perf_counter() - t0, usage.ru_utime + usage.ru_stime, usage.ru_maxrss / 1024, output


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--tickets", type=int, default=1_000_000)
    ap.add_argument("--forms", default="folder,single,dexie")
    args = ap.parse_args()
    folder = sample_export(args.tickets)
    sources = {"folder": lambda: folder, "single": lambda: single_file(folder), "dexie": lambda: dexie_file(folder)}
    rows = []
    for form in args.forms.split(","):
        source = sources[form]()
        out = OUT / f"bench-export-{form}"
        shutil.rmtree(out, ignore_errors=True)
        size = sum(p.stat().st_size for p in ([source] if source.is_file() else source.glob("*.json"))) / 2**20
        wall, cpu, peak, output = timed([*ETL, "export", "--from", str(source), "--out", str(out)])
        counts = json.loads((out / "export-summary.json").read_text())["counts"]
        assert counts["tickets"] == args.tickets, counts
        library = float(output.split(" in ")[1].split(" s")[0])  # the library's own figure, without start-up
        rows.append((form, size, wall, library, cpu, peak))
        shutil.rmtree(out, ignore_errors=True)
    print(f"\n{args.tickets:,} tickets; load average at the end: {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")
    print("| input form | input (MB) | wall s (process) | wall s (export()) | CPU s | peak RSS (MB) |")
    print("|---|---|---|---|---|---|")
    for form, size, wall, library, cpu, peak in rows:
        print(f"| {form} | {size:,.0f} | {wall:.1f} | {library:.1f} | {cpu:.1f} | {peak:,.0f} |")


if __name__ == "__main__":
    sys.exit(main())
