"""Ad hoc DuckDB queries on staged data: a view per staged table, its rejects, each export store and,
asked for, each MySQL table beside them (`mysql_tickets`, ...), so one query can anti-join stage and target.

MySQL's tables are read through connectorx into Arrow (DuckDB's mysql extension cannot be had for
the installed DuckDB: the extension wheels on PyPI stop at 1.5, and nothing is downloaded at run
time), and only those a query names. DuckDB's own shell (the `duckdb-cli` package) gets the same
views from an init file of CREATE VIEW statements; it sees MySQL through a Parquet snapshot taken
when it opens.
"""

from __future__ import annotations

import importlib.util
import os
import re
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

import duckdb
import polars as pl

from ..core.result import Result, plain
from ..core import duck
from ..core.config import mask_uri
from ..core.errors import EtlError
from ..stage.folder import rejects_path, stage_path
from ..core.stores import STORES
from ..source.inputs import MAX_OBJECT_BYTES
from ..source.folder import ExportFolder


_lit = duck.literal


def views(stage_dir: Path, export_dir: Path | None = None) -> dict[str, str]:
    """name -> SELECT for every view: `tickets` (staged), `tickets_rejects`, `export_tickets` (raw)."""
    out = {}
    export = ExportFolder.open(export_dir) if export_dir and ExportFolder.present(export_dir) else None
    for store in STORES:
        if stage_path(stage_dir, store).is_file():
            out[store.table] = f"SELECT * FROM read_parquet({_lit(str(stage_path(stage_dir, store)))})"
        if rejects_path(stage_dir, store).is_file():
            out[f"{store.table}_rejects"] = f"SELECT * FROM read_parquet({_lit(str(rejects_path(stage_dir, store)))})"
        if export is not None:
            files = export.files(store)
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


MYSQL_PREFIX = "mysql_"  # mysql_tickets: the tickets table as MySQL holds it
FORMATS = ("table", "csv", "json", "markdown")
TABLE_ROWS = 50  # rows a terminal table shows unless --max-rows says otherwise


def mysql_names(sql: str) -> set[str]:
    """The `mysql_<table>` names a query mentions (only those are read)."""
    return {m.lower() for m in re.findall(rf"\b{MYSQL_PREFIX}\w+", sql, flags=re.I)}


def mysql_tables(target, wanted: set[str] | None = None) -> dict:
    """`mysql_<table>` -> the described columns of each store's table MySQL has (Arrow, through
    connectorx); with `wanted`, only those names."""
    import pymysql

    from ..mysql.read import read_mysql

    try:
        with target.connect() as conn, conn.cursor() as cur:
            cur.execute("SELECT table_name FROM information_schema.tables WHERE table_schema = DATABASE()")
            have = {r[0] for r in cur.fetchall()}
    except pymysql.err.Error as e:
        raise EtlError(f"reading MySQL failed: {mask_uri(str(e))[:300]}") from None
    return {f"{MYSQL_PREFIX}{s.table}": read_mysql(target, s) for s in STORES  # read_mysql says its own failure
            if s.table in have and (wanted is None or f"{MYSQL_PREFIX}{s.table}" in wanted)}


def connect(stage_dir: Path, export_dir: Path | None = None, database: str = ":memory:", *,
            mysql: dict | None = None) -> duckdb.DuckDBPyConnection:
    """A DuckDB connection with the views above (and `mysql`'s Arrow tables registered by name);
    `database` may be a file to keep them in."""
    found = views(stage_dir, export_dir)
    if not found and not mysql:
        raise EtlError("nothing to query: no staged tables and no export; run `etl transform` first", file=str(stage_dir))
    con = duck.connect(database)
    for name, select in found.items():
        con.sql(f'CREATE OR REPLACE VIEW "{name}" AS {select}')
    for name, table in (mysql or {}).items():
        con.register(name, table)
    return con


@dataclass(frozen=True)
class QueryResult(Result):
    sql: str
    frame: pl.DataFrame

    def __str__(self) -> str:
        return self.render("table")

    def asdict(self) -> dict:
        return {"sql": self.sql, "columns": self.frame.columns, "rows": plain(self.frame.to_dicts()), "ok": True}

    def render(self, fmt: str = "table", max_rows: int | None = None) -> str:
        """The rows as a terminal table, CSV (with a header), JSON (an array of objects) or a Markdown
        table; at most `max_rows` (a table shows TABLE_ROWS unless told)."""
        if fmt not in FORMATS:
            raise EtlError(f"unknown output format {fmt!r}; choose from {', '.join(FORMATS)}")
        frame = self.frame if max_rows is None else self.frame.head(max_rows)
        if fmt in ("csv", "json"):
            return _written(frame, fmt)
        rows = max_rows if max_rows is not None else TABLE_ROWS
        style = {"tbl_formatting": "MARKDOWN", "tbl_hide_column_data_types": True, "tbl_hide_dataframe_shape": True,
                 "fmt_str_lengths": 1000} if fmt == "markdown" else {"fmt_str_lengths": 60}
        with pl.Config(tbl_rows=rows, tbl_cols=-1, tbl_width_chars=200, **style):
            text = str(frame)
        if frame.height < self.frame.height or (fmt == "markdown" and self.frame.height > rows):
            text += f"\n(the first {min(rows, frame.height):,} of {self.frame.height:,} rows)"
        return text + "\n"


def _written(frame: pl.DataFrame, fmt: str) -> str:
    """CSV or JSON as DuckDB writes them (nested values, times and decimals included)."""
    con = duck.connect()
    folder = Path(tempfile.mkdtemp(prefix="etl-sql-"))
    try:
        con.register("result", frame)
        options = "FORMAT csv, HEADER true" if fmt == "csv" else "FORMAT json, ARRAY true"
        con.execute(f"COPY result TO {duck.literal(folder / 'out')} ({options})")
        return (folder / "out").read_text(encoding="utf-8")
    finally:
        con.close()
        shutil.rmtree(folder, ignore_errors=True)


def run_sql(sql: str, stage_dir: Path, export_dir: Path | None = None, *, mysql=None) -> QueryResult:
    """Run one query on the views; with `mysql` (a target) the `mysql_<table>` tables it names are read first."""
    tables = mysql_tables(mysql, mysql_names(sql)) if mysql is not None else None
    con = connect(stage_dir, export_dir, mysql=tables)
    try:
        return QueryResult(sql, con.sql(sql).pl())
    except duckdb.Error as e:
        names = [*views(stage_dir, export_dir), *(tables or {})]
        hint = " (MySQL's tables are mysql_<table>: pass --mysql)" if mysql is None and mysql_names(sql) else ""
        raise EtlError(f"query failed: {str(e).splitlines()[0]}; views: {', '.join(names)}{hint}") from None
    finally:
        con.close()


# ---------------------------------------------------------------- DuckDB's shell


def shell_binary() -> Path | None:
    """DuckDB's own shell: the `duckdb-cli` package's binary, else a `duckdb` on PATH."""
    spec = importlib.util.find_spec("duckdb_cli")
    if spec and spec.origin:
        exe = Path(spec.origin).parent / "duckdb"
        if exe.is_file() and os.access(exe, os.X_OK):
            return exe
    found = shutil.which("duckdb")
    return Path(found) if found else None


def write_init(stage_dir: Path, export_dir: Path | None, folder: Path, *, mysql=None) -> Path:
    """FOLDER/init.sql: the views as CREATE VIEW statements for DuckDB's shell (`duckdb -init`). With
    `mysql` (a target), each table MySQL has is first copied to FOLDER/mysql/<table>.parquet and
    `mysql_<table>` reads that snapshot."""
    import pyarrow.parquet as pq

    found = views(stage_dir, export_dir)
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    if mysql is not None:
        snap = folder / "mysql"
        snap.mkdir(exist_ok=True)
        for name, table in mysql_tables(mysql).items():
            path = snap / f"{name[len(MYSQL_PREFIX):]}.parquet"
            tmp = path.with_suffix(".tmp")
            pq.write_table(table, tmp)  # pyarrow's writer: files any DuckDB version reads
            os.replace(tmp, path)
            found[name] = f"SELECT * FROM read_parquet({_lit(str(path))})"
    if not found:
        raise EtlError("nothing to query: no staged tables and no export; run `etl transform` first", file=str(stage_dir))
    lines = ["-- Written by `etl sql --shell`: the views of etl/report/query.py, for DuckDB's shell.",
             *(f'CREATE OR REPLACE VIEW "{name}" AS {select};' for name, select in found.items())]
    init = folder / "init.sql"
    init.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return init


def open_shell(stage_dir: Path, export_dir: Path | None, runtime_dir: Path, *, mysql=None) -> None:
    """Replace this process with DuckDB's shell on the views (init file in RUNTIME_DIR/duckdb/);
    where the shell is missing, the built-in prompt."""
    exe = shell_binary()
    if exe is None:
        prompt(stage_dir, export_dir, mysql=mysql_tables(mysql) if mysql is not None else None)
        return
    init = write_init(stage_dir, export_dir, Path(runtime_dir) / "duckdb", mysql=mysql)
    os.execv(exe, [str(exe), "-init", str(init)])


def prompt(stage_dir: Path, export_dir: Path | None = None, *, mysql: dict | None = None, text: str = "duckdb> ") -> None:
    """The fallback prompt: statements end with ';', `.views` lists the views, `.quit` leaves."""
    con = connect(stage_dir, export_dir, mysql=mysql)
    names = [*views(stage_dir, export_dir), *(mysql or {})]
    print(f"views: {', '.join(names)}\nend statements with ';'  (.views, .quit)")
    buf = ""
    while True:
        try:
            line = input(text if not buf else "   ...> ")
        except EOFError:
            break
        if line.strip() in (".quit", ".exit"):
            break
        if line.strip() == ".views":
            print("\n".join(names))
            continue
        buf += line + "\n"
        if buf.rstrip().endswith(";"):
            try:
                rel = con.sql(buf)
                print(QueryResult(buf, rel.pl()) if rel is not None else "ok")
            except duckdb.Error as e:
                print(f"error: {str(e).splitlines()[0]}")
            buf = ""
    con.close()
