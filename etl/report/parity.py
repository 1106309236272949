"""Parity's reports, built around "where is it red": report.html, report.json and the terminal summary.

`etl.check.parity.parity` compares and returns its result with the buckets and rows behind it; this
module only presents them. report.html (one self-contained page: no script, no font, nothing
fetched) reads from the top: the verdict, then every differing bucket with the counts and
checksums of both sides, then per table a heatmap small enough for a screen (months by the
first other bucket dimension, each cell the number of differing buckets in it; runs of months
where everything matches are folded into one row), then the differing rows, one per key, each
changed column with both values. Text is shown as it is, with what the eye cannot see made
visible: trailing and leading spaces, tabs, line breaks, NUL, non-breaking and zero-width
spaces. report.json holds per-table totals, the differing buckets and the differing rows
(each up to a cap); matching buckets are only counted.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, replace
from datetime import datetime, timezone
from pathlib import Path

import polars as pl
from jinja2 import Environment, PackageLoader, select_autoescape
from markupsafe import Markup, escape

from ..check.parity import ParityResult, parity
from ..check.parity_table import CHANGED, EXTRA, KINDS, MISSING, RowDiff, TableReport
from ..core.digest import DIGEST
from ..core.errors import ParityError
from ..core.show import pieces, plain_text  # noqa: F401 (plain_text: a public name of the report's values)
from ..core.stores import store as lookup

REPORT_BUCKETS = 500  # differing buckets listed per table (all are counted)
REPORT_ROWS = 100  # differing rows listed per table in report.json and report.html (all are counted)
HEAT_COLUMNS = 24  # past this many values the heatmap shows the columns with a difference, then "others"
KIND_LABEL = {MISSING: "missing in MySQL", EXTRA: "only in MySQL", CHANGED: "changed"}

def visible(value, limit: int | None = None) -> Markup:
    """A value for the page: NULL and '' marked as such, invisible characters shown and highlighted;
    text past `limit` characters cut, saying how much more there is."""
    if value is None:
        return Markup('<span class="null">NULL</span>')
    if not isinstance(value, str):
        return escape(str(value))
    if value == "":
        return Markup('<span class="empty" title="empty string">\'\'</span>')
    more = Markup("")
    if limit is not None and len(value) > limit:
        value, more = value[:limit], Markup('<i>… ({:,} more characters)</i>').format(len(value) - limit)
    return Markup("").join(Markup('<span class="ws">{}</span>').format(p) if hidden else escape(p)
                           for p, hidden in pieces(value)) + more


# ---------------------------------------------------------------- what the reports show


def _label(value) -> str:
    return "NULL" if value is None else str(value)


def _anchor(prefix: str, table: str, n: int) -> str:
    return f"{prefix}-{table}-{n}"


@dataclass(frozen=True)
class Heatmap:
    row_name: str  # "month", or the first bucket dimension when there is no time bucket
    col_name: str | None
    columns: tuple[str, ...]
    rows: tuple[dict, ...]  # {"label", "cells": [(bad, buckets, link) per column], "folded": months folded or 0}


def _time_bucket(table: str, buckets: tuple[str, ...]) -> str | None:
    try:
        st = lookup(table)
    except KeyError:
        return None
    return next((b for b in buckets if st.bucket_column(b)[1] is not None), None)


def heatmap(table: str, buckets: tuple[str, ...], frame: pl.DataFrame, links: dict[tuple, str]) -> Heatmap:
    """Months (or the first dimension) by the first other dimension; a cell counts its differing
    buckets and links to the first of them. Consecutive rows with nothing red become one row."""
    when = _time_bucket(table, buckets)
    others = [b for b in buckets if b != when]
    row_name = "month" if when else (others.pop(0) if others else "table")
    col_name = others[0] if others else None
    row = (pl.col(when).str.slice(0, 7) if when else pl.col(row_name) if row_name in buckets else pl.lit("all"))
    col = pl.col(col_name) if col_name else pl.lit("")
    keyed = frame.with_row_index("_i").with_columns(row.alias("_r"), col.alias("_c"))
    cells = (keyed.group_by("_r", "_c")
             .agg(pl.len().alias("n"), (~pl.col("ok")).sum().alias("bad"), pl.col("_i").filter(~pl.col("ok")).first().alias("first"))
             .sort("_r", "_c", nulls_last=False))
    bad_cols = set(cells.filter(pl.col("bad") > 0)["_c"].to_list())
    all_cols = sorted(set(cells["_c"].to_list()), key=lambda v: (v is not None, str(v)))
    shown = all_cols if len(all_cols) <= HEAT_COLUMNS else [c for c in all_cols if c in bad_cols]
    folded_cols = len(all_cols) - len(shown)
    columns = tuple(_label(c) for c in shown) + ((f"{folded_cols} others",) if folded_cols else ())
    bucket_rows = frame.select(buckets).rows() if buckets else [()] * frame.height

    by_row: dict = {}
    for r, c, n, bad, first in cells.iter_rows():
        by_row.setdefault(r, {})[c] = (n, bad, first)
    out, green = [], []

    def flush():
        if green:
            span = green[0] if len(green) == 1 else f"{green[0]} – {green[-1]}"
            out.append({"label": span, "folded": len(green), "cells": None})
            green.clear()

    for r in sorted(by_row, key=lambda v: (v is not None, str(v))):
        got = by_row[r]
        if not any(bad for _, bad, _ in got.values()):
            green.append(_label(r))
            continue
        flush()
        row_cells = []
        for c in shown:
            n, bad, first = got.get(c, (0, 0, None))
            row_cells.append((bad, n, links.get(bucket_rows[first]) if bad else None))
        if folded_cols:
            rest = [v for k, v in got.items() if k not in shown]
            row_cells.append((sum(v[1] for v in rest), sum(v[0] for v in rest), None))
        out.append({"label": _label(r), "folded": 0, "cells": row_cells})
    flush()
    return Heatmap(row_name, col_name, columns, tuple(out))


@dataclass(frozen=True)
class TableView:
    """One table as the page shows it."""

    summary: object  # TableParity
    bad_buckets: tuple[dict, ...]  # labels, counts and checksums of both sides, anchor, link to rows
    bad_total: int
    heat: Heatmap | None
    rows: tuple[dict, ...]  # one per differing key
    rows_total: int


def _bucket_key(buckets, bucket: dict | None) -> tuple | None:
    return None if bucket is None else tuple(bucket.get(b) for b in buckets)


def table_view(r: TableReport) -> TableView:
    t = r.summary
    bad = r.buckets.filter(~pl.col("ok"))
    diffs = [d for k in KINDS for d in r.diffs[k]][:REPORT_ROWS]
    row_of: dict[tuple, str] = {}  # bucket -> anchor of its first differing row
    rows = []
    for n, d in enumerate(sorted(diffs, key=lambda d: tuple(str(v) for v in d.key.values()))):
        anchor = _anchor("r", t.table, n)
        sb, mb = _bucket_key(t.buckets, d.stage_bucket), _bucket_key(t.buckets, d.mysql_bucket)
        for b in (sb, mb):
            if b is not None:
                row_of.setdefault(b, anchor)
        rows.append(_row(d, anchor, t.buckets))
    buckets, links = [], {}
    for n, b in enumerate(bad.head(REPORT_BUCKETS).iter_rows(named=True)):
        key = tuple(b[name] for name in t.buckets)
        links[key] = _anchor("b", t.table, n)
        buckets.append({"anchor": links[key], "labels": [_label(b[name]) for name in t.buckets], "rows": row_of.get(key),
                        **{k: b[k] for k in ("stage_rows", "mysql_rows", "stage_checksum", "mysql_checksum")}})
    heat = heatmap(t.table, t.buckets, r.buckets, links) if r.buckets.height else None
    return TableView(t, tuple(buckets), bad.height, heat, tuple(rows), t.missing_in_mysql + t.only_in_mysql + t.changed)


def _row(d: RowDiff, anchor: str, buckets) -> dict:
    bucket = " / ".join(_label(v) for v in (d.stage_bucket or d.mysql_bucket).values()) if buckets else ""
    moved = (" / ".join(_label(v) for v in d.mysql_bucket.values())
             if d.stage_bucket and d.mysql_bucket and d.stage_bucket != d.mysql_bucket else None)
    # changed: each changed column with both values; missing or extra: the whole row, on the side that has it
    cols = [(c, d.stage[c], d.mysql[c]) for c in d.columns] if d.kind == CHANGED else []
    row = list(((d.stage if d.kind == MISSING else d.mysql) or {}).items()) if d.kind != CHANGED else []
    return {"anchor": anchor, "kind": d.kind, "kind_label": KIND_LABEL[d.kind],
            "key": ", ".join(f"{k} = {_label(v)}" for k, v in d.key.items()), "bucket": bucket, "moved_to": moved,
            "columns": cols, "row": row}


# ---------------------------------------------------------------- writing


def report_json(result: ParityResult) -> dict:
    """Per-table totals, the differing buckets and the differing rows (up to the caps); matching
    buckets are counted, not listed."""
    tables = {}
    for r in result.details:
        t = r.summary
        bad = r.buckets.filter(~pl.col("ok"))
        diffs = {k: [asdict(d) for d in r.diffs[k]] for k in KINDS}
        shown, budget = {}, REPORT_ROWS
        for k in KINDS:
            shown[k], budget = diffs[k][:budget], budget - len(diffs[k][:budget])
        tables[t.table] = {**asdict(t), "ok": t.ok,
                           "buckets_mismatched": bad.head(REPORT_BUCKETS).drop("ok").to_dicts(),
                           "buckets_mismatched_listed": min(bad.height, REPORT_BUCKETS),
                           "differences": shown, "differences_listed": sum(len(v) for v in shown.values())}
    return {**{k: v for k, v in asdict(result).items() if k != "tables"}, "ok": result.ok, "tables": tables}


_env = Environment(loader=PackageLoader(__package__, "templates"), autoescape=select_autoescape(default=True),
                   trim_blocks=True, lstrip_blocks=True)
_env.filters["visible"] = visible


def render_html(result: ParityResult) -> str:
    views = [table_view(r) for r in result.details]
    return _env.get_template("parity_report.html.j2").render(
        result=result, views=views, bad=[v for v in views if not v.summary.ok], kinds=KIND_LABEL, digest=DIGEST,
        report_rows=REPORT_ROWS)


def new_report_dir(base: Path) -> Path:
    stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    out, n = base / stamp, 1
    while out.exists():
        n += 1
        out = base / f"{stamp}-{n}"
    return out


def write_report(result: ParityResult, out_dir: Path | None = None, *, runtime_dir: Path = Path("runtime")) -> ParityResult:
    """Write report.json and report.html into `out_dir` (default RUNTIME_DIR/parity/<time>/); the
    result, naming the folder. Only the target's masked URI reaches the reports."""
    out = Path(out_dir) if out_dir else new_report_dir(Path(runtime_dir) / "parity")
    out.mkdir(parents=True, exist_ok=True)
    done = replace(result, report_dir=str(out)).with_details(result.details)
    (out / "report.json").write_text(json.dumps(report_json(done), ensure_ascii=False, default=str), encoding="utf-8")
    (out / "report.html").write_text(render_html(done), encoding="utf-8")
    return done


def parity_with_report(src: Path, target, *, runtime_dir: Path = Path("runtime"), report_dir: Path | None = None,
                       **options) -> ParityResult:
    """`etl.check.parity.parity`, then its reports written (what `etl parity` and the playbook run)."""
    return write_report(parity(src, target, **options), report_dir, runtime_dir=runtime_dir)


# ---------------------------------------------------------------- the terminal


# ---------------------------------------------------------------- the notebooks


def parity_cells(result: ParityResult, table: str = "tickets") -> pl.DataFrame:
    """One table's buckets folded to months by its first other dimension (as the report's heatmap):
    month, <dimension>, buckets, differing (buckets whose count or checksum differs)."""
    report = next((r for r in result.details if r.summary.table == table), None)
    if report is None:
        raise ParityError(f"the parity result holds no details for {table}", store=table)
    buckets = report.summary.buckets
    when = _time_bucket(table, buckets)
    others = [b for b in buckets if b != when]
    dim = others[0] if others else "table"
    frame = report.buckets
    month = pl.col(when).cast(pl.String).str.slice(0, 7) if when else pl.lit("all")
    other = pl.col(dim).cast(pl.String) if others else pl.lit(table)
    return (frame.group_by(month.alias("month"), other.alias(dim))
            .agg(pl.len().alias("buckets"), (~pl.col("ok")).sum().cast(pl.Int64).alias("differing"))
            .sort("month", dim, nulls_last=True))
