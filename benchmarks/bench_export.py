"""`etl export` of a 1M-ticket export in each input form: time and peak memory.

    .venv/bin/python benchmarks/bench_export.py [--tickets 1000000] [--forms folder,single,dexie]

The folder form is the sample export itself (the app's layout, JSON arrays). The
single-file dump and the dexie-export-import file are built from it once (under
benchmarks/out/): the dexie file marks a property that was `undefined` on EVERY
ticket row and writes vendors' Dates as epoch ms, both in `$types` (so every
ticket row is decoded, not passed through).
Each export runs as its own `etl export` process; peak memory is its maximum RSS.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
from pathlib import Path

import duckdb

from common import ETL, OUT, run, sample_export

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
        timed = run(f"etl export {form}", [*ETL, "export", "--from", str(source), "--out", str(out)])
        counts = json.loads((out / "export-summary.json").read_text())["counts"]
        assert counts["tickets"] == args.tickets, counts
        rows.append((form, size, timed))
        shutil.rmtree(out, ignore_errors=True)
    print(f"\n{args.tickets:,} tickets")
    print("| input form | input size (MB) | seconds | peak memory (MB) |\n|---|---|---|---|")
    for form, size, t in rows:
        print(f"| {form} | {size:,.0f} | {t.seconds:.1f} | {t.peak_mb:,.0f} |")


if __name__ == "__main__":
    sys.exit(main())
