"""Parity: prove MySQL holds exactly what the stage holds, bucket by bucket, and name every row that differs.

For each table DuckDB computes per bucket the row count and the sum of the row digests of both
sides (order-independent). MySQL keeps each row's digest in the generated column `row_digest`
(`etl.digest`), computed from what it stores on every write; DuckDB computes the same digest from
the stage, so only keys, bucket columns and digests are read from MySQL, through connectorx in
parallel primary-key ranges (see `MySQLSide`). The stage's digests are kept beside it
(`etl.digest.stage_digests`, named for the staged file's stat data): `etl load` computes them
while the server works, and parity computes them itself when none are kept for the file as it
is. A table without the column (a database made by an older schema) is read in full instead and
both sides are hashed by `etl.rowhash`, the load's normalizer. BENCHMARKS.md measures both. Buckets are the store's `default_buckets`
(tickets: day, cabang, status, category) unless others are asked for; the names asked for
are looked up in the description and only the description's column names reach SQL.

Normalization is the row hash's (decimals at their column scale, times at the column's
millisecond precision, booleans as the TINYINT MySQL stores, text compared byte for byte):
NULL and '' differ, a trailing space differs although MySQL's PAD SPACE collations call the
two equal, and so do text values a case-insensitive collation calls equal.

For every bucket that differs, the drill-down pairs the rows of both sides by primary key
(also rows that moved to another bucket): rows missing in MySQL, rows only in MySQL, and
changed rows with the changed columns and both values. `parity()` only compares: it returns
the summary (the result's str) with the buckets and rows behind it (`ParityResult.details`),
and `etl.parity_report` writes report.json and report.html from them.
"""

from __future__ import annotations

import shutil
import tempfile
import time
from dataclasses import dataclass, field
from io import StringIO
from pathlib import Path
from typing import Callable, Sequence

import duckdb
import polars as pl

from ..core import duck
from ..core.digest import DIGEST
from ..core.errors import ParityError
from ..core.result import Result
from ..core.stores import STORES, UPLOAD_SESSIONS, Store
from ..stage.folder import SUMMARY, StageFolder, read_stage, stage_path
from ..stage.sessions import expected_sessions
from .buckets import check_buckets, table_buckets
from .parity_read import DEFAULT_PARTS, PART_MIN_ROWS, MySQLSide, split_points
from .parity_table import MAX_ROWS, TableParity, TableReport, compare_table


# ---------------------------------------------------------------- the stage


def _stage_from(src: Path | StageFolder) -> tuple[Path, Path | None]:
    """(stage folder, temp folder to remove): a stage is used as is, an export is transformed first."""
    if isinstance(src, StageFolder):
        return src, None
    src = Path(src)
    if (src / SUMMARY).is_file():
        return StageFolder.open(src), None
    if (src / "export-summary.json").is_file():
        from ..stage.transform import transform

        tmp = Path(tempfile.mkdtemp(prefix="etl-parity-"))
        transform(src, tmp / "stage")
        return StageFolder.open(tmp / "stage"), tmp
    raise ParityError("not a stage folder (no transform-summary.json) nor an export folder (no export-summary.json)",
                      file=str(src))


# ---------------------------------------------------------------- the run


@dataclass(frozen=True)
class ParityResult(Result):
    source: str
    target: str  # masked
    tables: tuple[TableParity, ...]
    seconds: float
    skipped: tuple[str, ...] = field(default=())  # described tables the stage does not hold
    report_dir: str = ""  # where etl.report.parity.write_report put report.html and report.json

    @property
    def ok(self) -> bool:
        return all(t.ok for t in self.tables)

    @property
    def mismatched(self) -> tuple[str, ...]:
        return tuple(t.table for t in self.tables if not t.ok)

    @property
    def details(self) -> tuple[TableReport, ...]:
        """The buckets and differing rows behind each table's summary, for the reports. Not a field:
        run records (asdict) keep the summary only."""
        return self.__dict__.get("_details", ())

    def with_details(self, details) -> ParityResult:
        object.__setattr__(self, "_details", tuple(details))
        return self

    def __str__(self) -> str:
        return summary_text(self)

    def _repr_html_(self) -> str:
        from ..core.htmlrepr import Link, html_table

        verdict = "parity: MySQL matches the stage" if self.ok else f"parity: MISMATCH in {', '.join(self.mismatched)}"
        rows = [(t.table, " x ".join(t.buckets) or "whole table", t.bucket_count, t.mismatched_buckets, t.stage_rows,
                 t.mysql_rows, t.missing_in_mysql, t.only_in_mysql, t.changed, "yes" if t.ok else "NO")
                for t in self.tables]
        report = Path(self.report_dir) / "report.html" if self.report_dir else None
        title = f"{verdict} ({self.seconds:.1f} s)"
        html = html_table(title, ("table", "buckets", "buckets compared", "differing", "stage rows", "MySQL rows",
                                  "missing in MySQL", "only in MySQL", "changed", "ok"), rows,
                          [f"not staged, not compared: {', '.join(self.skipped)}"] if self.skipped else [])
        if report and report.is_file():
            html += html_table("", ("report",), [(Link(str(report), report.resolve().as_uri()),)])
        return html

    def raise_for_mismatch(self) -> None:
        if not self.ok:
            what = "; ".join(
                f"{t.table}: {t.mismatched_buckets} buckets, {t.missing_in_mysql} rows missing in MySQL, "
                f"{t.only_in_mysql} only in MySQL, {t.changed} changed" + (f" (first: {t.examples[0]})" if t.examples else "")
                for t in self.tables if not t.ok)
            report = {"file": f"{self.report_dir}/report.html"} if self.report_dir else {}
            raise ParityError(f"MySQL differs from the stage: {what}", **report)


def parity(src: Path | StageFolder, target, *, buckets: Sequence[str] | None = None, tables: Sequence[str] | None = None,
           parts: int = DEFAULT_PARTS, max_rows: int = MAX_ROWS, note: Callable[[str], None] | None = None) -> ParityResult:
    """Compare a stage (or an export, transformed first) with MySQL. Writes nothing: the result
    carries the buckets and rows behind it (`details`) for `etl.report.parity.write_report`."""
    t0 = time.perf_counter()
    stage, tmp = _stage_from(src)
    stage_dir = stage.dir
    try:
        stores = stage.check()  # a table the summary lists must be there, whole
        if tables:
            from ..core.stores import store as lookup

            try:
                wanted = {lookup(t).name for t in tables}
            except KeyError as e:
                raise ParityError(str(e.args[0])) from None
            stores = tuple(s for s in stores if s.name in wanted)
        asked = check_buckets(stores, buckets)
        reports = []
        for s in stores:
            reports.append(_compare(target, s, stage_dir, table_buckets(s, asked), parts, max_rows))
            if note is not None:
                note(f"parity: {s.table} compared ({len(reports)} of {len(stores)} tables)")
    finally:
        if tmp is not None:
            shutil.rmtree(tmp, ignore_errors=True)
    skipped = tuple(s.table for s in STORES if s not in stores and not tables)
    result = ParityResult(str(src.dir if isinstance(src, StageFolder) else src), str(target), tuple(r.summary for r in reports), round(time.perf_counter() - t0, 3), skipped)
    return result.with_details(reports)


def _compare(target, store: Store, stage_dir: Path, buckets, parts: int, max_rows: int) -> TableReport:
    stage = read_stage(stage_dir, store, lazy=True)  # checks the file against the description
    points = []
    if parts > 1 and len(store.primary_key) == 1 and stage.select(pl.len()).collect().item() >= PART_MIN_ROWS:
        points = split_points(stage.select(store.primary_key[0]).collect().to_series(), parts)
    # The load finalizes upload sessions (etl/stage/sessions.py): parity expects them finalized.
    source = expected_sessions(StageFolder.open(stage_dir)) if store is UPLOAD_SESSIONS else stage_path(stage_dir, store)
    con = duck.connect()
    try:
        return compare_table(con, store, source, MySQLSide(target, store, points, buckets), buckets, max_rows=max_rows)
    except duckdb.Error as e:
        raise ParityError(f"comparing in DuckDB failed: {e}", store=store.name) from None
    finally:
        con.close()


# ---------------------------------------------------------------- the terminal summary


def summary_table(result: ParityResult):
    """The per-table totals as a rich Table: columns as wide as their contents."""
    from rich import box
    from rich.table import Table

    status = "OK" if result.ok else "MISMATCH"
    table = Table(title=f"parity {result.source} vs {result.target}: {status} in {result.seconds:.1f} s",
                  title_justify="left", box=box.SIMPLE_HEAD, pad_edge=False)
    table.add_column("table")
    for name in ("stage", "mysql", "buckets", "bad", "missing", "extra", "changed"):
        table.add_column(name, justify="right")
    table.add_column("status")
    table.add_column("buckets by")
    for t in result.tables:
        table.add_row(t.table, *(f"{n:,}" for n in (t.stage_rows, t.mysql_rows, t.bucket_count, t.mismatched_buckets,
                                                    t.missing_in_mysql, t.only_in_mysql, t.changed)),
                      "ok" if t.ok else "MISMATCH", ", ".join(t.buckets) or "(whole table)")
    return table


def summary_text(result: ParityResult, width: int = 160) -> str:
    """The summary as plain text (the result's str): the table, then examples and where the report is."""
    from rich.console import Console

    buf = StringIO()
    # force_jupyter=False: inside a notebook rich would display the table itself (a text table as an output)
    Console(file=buf, width=width, color_system=None, highlight=False, soft_wrap=False,
            force_jupyter=False).print(summary_table(result))
    lines = [line.rstrip() for line in buf.getvalue().rstrip("\n").splitlines()]
    for t in result.tables:
        lines += [f"  {t.table}: {e}" for e in t.examples]
    if result.skipped:
        lines.append(f"  not in the stage: {', '.join(result.skipped)}")
    full = [t.table for t in result.tables if t.method == "rows"]
    if full:
        lines.append(f"  read in full (no {DIGEST} column of this version: made by an older schema): {', '.join(full)}")
    if result.report_dir:
        lines.append(f"  report: {result.report_dir}/report.html (and report.json)")
    return "\n".join(lines)
