"""Ad hoc DuckDB queries on staged data: a view per staged table, its rejects, and each export store."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import duckdb
import polars as pl

from . import duck
from .errors import EtlError
from .stage import rejects_path, stage_path
from .stores import STORES
from .export import MAX_OBJECT_BYTES, export_files
from .export import SUMMARY as EXPORT_SUMMARY


_lit = duck.literal


def views(stage_dir: Path, export_dir: Path | None = None) -> dict[str, str]:
    """name -> SELECT for every view: `tickets` (staged), `tickets_rejects`, `export_tickets` (raw)."""
    out = {}
    for store in STORES:
        if stage_path(stage_dir, store).is_file():
            out[store.table] = f"SELECT * FROM read_parquet({_lit(str(stage_path(stage_dir, store)))})"
        if rejects_path(stage_dir, store).is_file():
            out[f"{store.table}_rejects"] = f"SELECT * FROM read_parquet({_lit(str(rejects_path(stage_dir, store)))})"
        if export_dir and (Path(export_dir) / EXPORT_SUMMARY).is_file():
            files = export_files(export_dir, store)
            if files:
                out[f"export_{store.table}"] = _export_select(files)
    return out


def _export_select(files: list[tuple[Path, str]]) -> str:
    """The records of a store's export files: one scan per format (a store's parts may mix JSON
    arrays and NDJSON), fields matched by name across files."""
    by_format: dict[str, list[Path]] = {}
    for path, fmt in files:
        by_format.setdefault(fmt, []).append(path)
    return " UNION ALL BY NAME ".join(
        f"SELECT * FROM read_json([{', '.join(_lit(str(p)) for p in paths)}], format={_lit(fmt)}, "
        f"union_by_name=true, maximum_object_size={MAX_OBJECT_BYTES})" for fmt, paths in by_format.items())


def connect(stage_dir: Path, export_dir: Path | None = None, database: str = ":memory:") -> duckdb.DuckDBPyConnection:
    """A DuckDB connection with the views above; `database` may be a file to keep them in."""
    found = views(stage_dir, export_dir)
    if not found:
        raise EtlError("nothing to query: no staged tables and no export; run `etl transform` first", file=str(stage_dir))
    con = duck.connect(database)
    for name, select in found.items():
        con.sql(f'CREATE OR REPLACE VIEW "{name}" AS {select}')
    return con


@dataclass(frozen=True)
class QueryResult:
    sql: str
    frame: pl.DataFrame

    def __str__(self) -> str:
        with pl.Config(tbl_rows=50, tbl_cols=20, fmt_str_lengths=60, tbl_width_chars=200):
            return str(self.frame)


def run_sql(sql: str, stage_dir: Path, export_dir: Path | None = None) -> QueryResult:
    con = connect(stage_dir, export_dir)
    try:
        return QueryResult(sql, con.sql(sql).pl())
    except duckdb.Error as e:
        raise EtlError(f"query failed: {str(e).splitlines()[0]}; views: {', '.join(views(stage_dir, export_dir))}") from None
    finally:
        con.close()


def shell(stage_dir: Path, export_dir: Path | None = None, *, prompt: str = "duckdb> ") -> None:
    """A minimal interactive prompt: statements end with ';', `.views` lists the views, `.quit` leaves."""
    con = connect(stage_dir, export_dir)
    print(f"views: {', '.join(views(stage_dir, export_dir))}\nend statements with ';'  (.views, .quit)")
    buf = ""
    while True:
        try:
            line = input(prompt if not buf else "   ...> ")
        except EOFError:
            break
        if line.strip() in (".quit", ".exit"):
            break
        if line.strip() == ".views":
            print("\n".join(views(stage_dir, export_dir)))
            continue
        buf += line + "\n"
        if buf.rstrip().endswith(";"):
            try:
                with pl.Config(tbl_rows=50, tbl_cols=20, fmt_str_lengths=60, tbl_width_chars=200):
                    rel = con.sql(buf)
                    print(rel.pl() if rel is not None else "ok")
            except duckdb.Error as e:
                print(f"error: {str(e).splitlines()[0]}")
            buf = ""
    con.close()
