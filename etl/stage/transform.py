"""Transform: the normalized export -> typed, staged Parquet (plus rejects with reasons).

Reading: DuckDB reads each store's JSON (array or NDJSON) with one JSON-typed column per
top-level field and flattens the described source paths (``duration.rawHours``) into text
columns named for their target: big JSON never passes through Python objects.

Transforming: Polars, vectorized, driven by etl/core/stores.py. `STEPS` is the named sequence of
pure ``frame -> frame`` steps applied to every store; the cross-store step that rebuilds
upload sessions runs after them. Values are carried as they are (this is a migration, not a
clean-up): a value that cannot be represented in its column makes its record a reject with
store, key, field, value excerpt and reason, so for every store records in = staged + rejected.

Rules, in one place:
* text: kept byte for byte (tabs, trailing spaces, NUL, 4-byte UTF-8); `""` stays `""`,
  absent and `null` both become NULL (the one state MySQL cannot tell apart). Longer than
  the column (characters for VARCHAR, bytes for TEXT) -> reject.
  A non-string JSON value in a text column (number, boolean, object, array) is carried as
  its JSON text (`5`, `true`, `{"a":1}`) and counted per column in the summary
  (`non_string_text`, and a note): the text fields are read as JSON, whose type tells a
  number from a string of digits (on 200k tickets, about 0.5 s more to read them).
* records: a property repeated inside one record -> reject naming the property (which of
  the two holds the data cannot be known); the rest of its file goes through.
* times: zone-less ISO (the app's openTime) is UTC wall-clock; `...Z`, `+hh:mm` and a
  trailing zone name (`14:30:00 Asia/Jakarta`, `UTC`, `GMT`) are converted to UTC; a zone
  abbreviation (`WIB`, `PST`, `IST`: several zones share them) -> reject. A Date instant
  (`{"$date": ms}`) is taken as is. A bare number (JSON number or digits as text) is read
  by its size: >= 1e11 epoch milliseconds, 1e9..1e10 epoch seconds (2001..2286); anything
  else -> reject with why (0, negative, a spreadsheet serial date: 1900 or 1904 system,
  or between the two epochs). Kept at millisecond precision, naive UTC. `""` in an optional
  time -> NULL (a DATETIME cannot hold ''); anything else that does not parse -> reject; a
  required time that is missing -> reject. Staged times before 2000 or after the export's
  time are counted per column in the summary (`implausible_times`) and named in a note.
* numbers: JSON numbers or numeric strings; anything else -> reject. Fractional numbers are
  kept as the doubles they are (DOUBLE columns); integers rejected when they do not fit.
* durations are never recomputed: the stored rawHours/formatted are what users saw. The
  summary reports the offset between rawHours and close - open (the browser's UTC offset).
* duplicate primary keys (compared as MySQL's PAD SPACE collations do, i.e. ignoring
  trailing spaces): the record with the latest uploadTimestamp wins, ties go to the one
  later in the export (a later put() overwrites in IndexedDB); the others are rejected
  with reason `duplicate key`, naming the record kept.
"""

from __future__ import annotations

import io
import itertools
import json
import os
import shutil
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from datetime import datetime
from pathlib import Path

import duckdb
import numpy as np
import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq

from ..core.result import Result
from ..core import duck
from ..core.duplicates import RULE, pad_space, winners
from ..core.errors import TransformError
from ..source.inputs import MAX_OBJECT_BYTES
from ..source.folder import ExportFolder
from ..core.process import alive
from .folder import SUMMARY, polars_dtype, rejects_path, stage_path, stage_schema
from .sessions import INCIDENT_UPLOAD_GAP_MS, SESSION_META, incident_sessions, rebuilt_sessions, session_ids  # noqa: F401 - INCIDENT_UPLOAD_GAP_MS: named by tests
from ..core.digest import DIGESTS_DIR
from ..core.stores import INCIDENTS, SESSION_COLUMN, STORES, UPLOAD_SESSIONS, Column, Store
from ..core.stores import store as store_by_name

EXCERPT = 120
BATCH_ROWS = 100_000  # rows per streamed batch: bounds memory whatever the export's size
REJECT_SCHEMA = pl.Schema(
    {"store": pl.String, "file": pl.String, "record": pl.Int64, "key": pl.String,
     "field": pl.String, "value": pl.String, "reason": pl.String}
)
META = ("__file", "__record")  # where each record came from: file and 0-based index in it
# A record's problems travel in one text column: "field<US>reason<US>value" items joined by <RS>.
US, RS = "\x1f", "\x1e"
RAW = "__raw_"  # the inner query's text columns


# ---------------------------------------------------------------- reading and typing


def _q(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


_lit = duck.literal


def _typed_sql(col: Column) -> tuple[str | None, str, str]:
    """(number, value, problem) SQL for one column, each evaluated once per row, in this order:
    `number` over its raw text `r` (numeric columns: the text as a double, else None), the
    typed `value` over `r` and the number `n`, and over `r`, `n` and the value `v`, when the
    value cannot be represented in the column, why (NULL when it can)."""
    r, n, v = (_q(prefix + col.name) for prefix in (RAW, "__n_", "__v_"))
    if col.kind == "varchar":
        return None, r, f"CASE WHEN length({r}) > {col.length} THEN 'text longer than the column (' || length({r}) || ' > {col.length} characters)' END"
    if col.is_text:  # TEXT / MEDIUMTEXT / JSON text: limited in bytes
        return None, r, f"CASE WHEN strlen({r}) > {col.max_bytes} THEN 'text longer than the column (' || strlen({r}) || ' > {col.max_bytes} bytes)' END"
    if col.is_time:
        return (None, *_time_sql(r, v, col))
    if col.kind == "bool":
        value = f"CASE WHEN lower({r}) IN ('true', '1') THEN true WHEN lower({r}) IN ('false', '0') THEN false END"
        return None, value, f"CASE WHEN {r} IS NOT NULL AND {v} IS NULL THEN 'not a boolean' END"
    number = f"try_cast({r} AS DOUBLE)"  # the cast skips surrounding whitespace itself
    not_number = f"WHEN {r} IS NOT NULL AND ({n} IS NULL OR NOT isfinite({n})) THEN 'not a number'"
    if col.kind == "double":  # the JavaScript number as it is: DOUBLE holds every finite one
        return number, f"CASE WHEN isfinite({n}) THEN {n} END", f"CASE {not_number} END"
    bits = 31 if col.kind == "int" else 63
    duck = "INTEGER" if col.kind == "int" else "BIGINT"
    ok = f"{n} = round({n}) AND abs({n}) < {float(2 ** bits)!r}"
    return (number, f"CASE WHEN {ok} THEN CAST({n} AS {duck}) END",
            f"CASE {not_number} WHEN {r} IS NOT NULL AND NOT ({ok}) THEN 'not an integer that fits {col.mysql_type}' END")


# Bare numbers (JSON numbers, or text that is only digits) in a time column; see the rules above.
EPOCH_MS_FROM = 1e11  # and up: epoch milliseconds (1e11 ms is 1973-03-03; 1e11 s would be the year 5138)
EPOCH_S_FROM, EPOCH_S_TO = 1e9, 1e10  # epoch seconds: 2001-09-09 .. 2286-11-20
EXCEL_TO = 2958466  # spreadsheet serial days reach 9999-12-31 here
_BARE = r"^\s*-?[0-9]+(\.[0-9]+)?\s*$"
# a date, a time, then a zone word: "2025-05-12 14:30:00 Asia/Jakarta", "2025-05-12T14:30 WIB"
_ZONE_WORD = r"^\s*[0-9]{4}[-/][0-9]{2}[-/][0-9]{2}[T ][0-9:.]+\s+([A-Za-z][A-Za-z0-9_/+-]*)\s*$"


def _time_sql(r: str, v: str, col: Column) -> tuple[str, str]:
    """(value, problem) SQL of a time column (rules in the module docstring). The usual forms (ISO
    without zone or with Z / an offset) take the fast path; the rest is looked at only for values
    that end in a letter other than Z, or that did not parse."""
    # An offset (+hh:mm, +hhmm, +hh, or - after the time's colons) needs the zone-aware cast;
    # every other form (zone-less, Z) parses as plain TIMESTAMP, which would ignore an offset
    # but is several times faster. A plain TIMESTAMP cast also drops a trailing zone name, so
    # text ending in a letter (other than Z) goes to the zone rules.
    last = f"right({r}, 1)"
    zoned = f"({last} NOT BETWEEN '0' AND '9' AND {last} NOT IN ('Z', '}}', ' '))"
    zone = f"regexp_extract({r}, {_lit(_ZONE_WORD)}, 1)"
    named = f"(contains({zone}, '/') OR upper({zone}) IN ('UTC', 'GMT'))"
    iso = (f"CASE WHEN {zoned} THEN CASE WHEN {named} THEN try_cast({r} AS TIMESTAMPTZ)::TIMESTAMP END "
           f"WHEN contains({r}, '+') OR {r} LIKE '%:%-%' THEN try_cast({r} AS TIMESTAMPTZ)::TIMESTAMP "
           f"ELSE try_cast({r} AS TIMESTAMP) END")
    date = rf"""try_cast(regexp_extract({r}, '^\{{"\$date":\s*(-?[0-9]+(?:\.[0-9]+)?)\}}$', 1) AS DOUBLE)"""
    n = f"CASE WHEN regexp_full_match({r}, {_lit(_BARE)}) THEN try_cast({r} AS DOUBLE) END"
    bare = (f"CASE WHEN {n} >= {EPOCH_MS_FROM} THEN {n} "
            f"WHEN {n} >= {EPOCH_S_FROM} AND {n} < {EPOCH_S_TO} THEN {n} * 1000 END")
    ms = f"CASE WHEN starts_with({r}, '{{') THEN {date} ELSE {bare} END"
    value = f"date_trunc('millisecond', coalesce({iso}, epoch_ms(try_cast(round({ms}) AS BIGINT))))"
    missing = "required time is missing" if not col.nullable else None
    number_why = (f"CASE WHEN {n} = 0 THEN 'a bare 0 is not a time (an unset value?)' "
                  f"WHEN {n} < 0 THEN 'a negative bare number is not a time' "
                  f"WHEN {n} < {EXCEL_TO} THEN 'a bare number like a spreadsheet serial date (1900 or 1904 "
                  f"date system: ambiguous): export times as ISO text' "
                  f"WHEN {n} < {EPOCH_S_FROM} THEN 'a bare number too small for epoch seconds after 2001 "
                  f"(and epoch milliseconds would be January 1970)' "
                  f"ELSE 'a bare number too large for epoch seconds and too small for epoch milliseconds (ambiguous)' END")
    zone_why = (f"'the time zone ' || {zone} || ' is an abbreviation (ambiguous): give an offset (+07:00) "
                f"or a zone name (Asia/Jakarta)'")
    # The usual case (a time in range) is decided first: the rest is checked for the few others.
    why = (f"CASE WHEN {v} BETWEEN TIMESTAMP '1000-01-01' AND TIMESTAMP '9999-12-31 23:59:59.999' THEN NULL "
           f"WHEN {r} IS NULL OR trim({r}) = '' THEN {_lit(missing) if missing else 'NULL'} "
           f"WHEN {v} IS NULL AND {n} IS NOT NULL THEN {number_why} "
           f"WHEN {v} IS NULL AND {zoned} AND {zone} <> '' AND NOT {named} THEN {zone_why} "
           f"WHEN {v} IS NULL THEN 'time does not parse' ELSE 'time outside the DATETIME range' END")
    return value, why


NON_STRING = "__nonstr"  # per record: the text columns whose JSON value was not a string, comma-separated


def _plain_text(col: Column) -> bool:
    """A text column whose JSON value should be a string (a `json` column holds JSON text by design)."""
    return col.is_text and col.kind != "json"


def _read_sql(store: Store, fmt: str, typed: bool, raw: bool = False) -> str:
    """One row per record: each described column typed, plus `__why` (its problems).

    The inner query flattens each source path into text named for its target column:
    typed=True reads each top-level field as VARCHAR (non-string JSON arrives as its JSON
    text, a Date as `{"$date":ms}`) and nested objects as structs of VARCHAR: fast, but DuckDB
    refuses the whole file when a nested field is not an object or a record repeats a
    property. typed=False reads each record as JSON text and extracts with json functions:
    slower, refuses nothing, and reports nested fields that are not objects and repeated
    properties (the record's reject names the property).
    """
    raw_json = ", __o AS __json" if raw and not typed else ""  # (`typed` is reused below)
    sourced = [c for c in store.columns if c.source]
    nested: dict[str, list[str]] = {}
    for c in sourced:
        if "." in c.source:
            top, sub = c.source.split(".", 1)
            nested.setdefault(top, []).append(sub)
    fields = dict.fromkeys(c.source.split(".")[0] for c in sourced)
    texts = {c.source for c in sourced if _plain_text(c)}
    if typed:
        def kind(path: str) -> str:
            return "JSON" if path in texts else "VARCHAR"
        types = {f: ("STRUCT(" + ", ".join(f"{_q(s)} {kind(f + '.' + s)}" for s in nested[f]) + ")" if f in nested
                     else kind(f)) for f in fields}
        values_of = {c.source: ".".join(_q(p) for p in c.source.split(".", 1)) for c in sourced}
        raw = [values_of[c.source] + ("->>'$'" if c.source in texts else "") for c in sourced]
        shapes = []
    else:
        values_of = {c.source: (f"json_extract({_q(c.source.split('.')[0])}, {_lit('$.' + c.source.split('.')[1])})"
                                if "." in c.source else _q(c.source)) for c in sourced}
        raw = [values_of[c.source] + "->>'$'" for c in sourced]
        shapes = [f"CASE WHEN json_type({_q(p)}) NOT IN ('OBJECT', 'NULL') THEN "
                  f"{_lit(p)} || '{US}' || {_lit(p + ' is not an object')} || '{US}' || left({_q(p)}::VARCHAR, {EXCERPT}) END"
                  for p in nested]
        # A property repeated inside one record: DuckDB's read_json refuses the whole file, so the
        # careful read takes each record as JSON text; the record becomes a reject naming the property.
        keys = "json_keys(__o)"
        shapes.append(f"CASE WHEN len({keys}) <> len(list_distinct({keys})) THEN "
                      f"[k FOR k IN {keys} IF len(list_filter({keys}, lambda j: j = k)) > 1][1] || '{US}' || "
                      f"'the property appears twice in the record (which one holds the data?)' || '{US}' || left(__o, {EXCERPT}) END")
    if typed:
        columns = "{" + ", ".join(f"{_lit(f)}: {_lit(t)}" for f, t in types.items()) + "}"
        source = f"read_json(?, format={_lit(fmt)}, columns={columns}, maximum_object_size={MAX_OBJECT_BYTES})"
    else:
        tops = ", ".join(f"json_extract(json, {_lit('$.' + json.dumps(f))}) AS {_q(f)}" for f in fields)
        source = (f"(SELECT json AS __o, {tops}, file_index FROM read_json_objects(?, format={_lit(fmt)}, "
                  f"maximum_object_size={MAX_OBJECT_BYTES}))")
    # The text columns that hold a JSON number, boolean, object or array: carried as text, counted.
    odd = [f"CASE WHEN json_type({values_of[c.source]}) NOT IN ('VARCHAR', 'NULL') THEN {_lit(c.name)} END"
           for c in sourced if c.source in texts]
    nonstr = f"concat_ws(',', {', '.join(odd)})" if odd else "''"
    inner = (f"SELECT {', '.join(f'{e} AS {_q(RAW + c.name)}' for e, c in zip(raw, sourced))}"
             f"{''.join(', ' + s + f' AS __shape{i}' for i, s in enumerate(shapes))} "
             f", {nonstr} AS {NON_STRING}, file_index AS __fi{', __o' if raw_json else ''} FROM {source}")
    # Each level computes what the next one reads, so every cast and parse runs once per value.
    numbers, typed, values, problems = [], [], [], [f"__shape{i}" for i in range(len(shapes))]
    for c in sourced:
        number, value, why = _typed_sql(c)
        if number is not None:
            numbers.append(f"{number} AS {_q('__n_' + c.name)}")
        if value != _q(RAW + c.name):
            typed.append(f"{value} AS {_q('__v_' + c.name)}")
            value = _q("__v_" + c.name)
        values.append(f"{value} AS {_q(c.name)}")
        problems.append(f"CASE WHEN ({why}) IS NOT NULL THEN {_lit(c.source)} || '{US}' || ({why}) || '{US}' "
                        f"|| coalesce(left({_q(RAW + c.name)}, {EXCERPT}), '') END")
    for k in store.primary_key:
        problems.append(f"CASE WHEN {_q(RAW + k)} IS NULL OR trim({_q(RAW + k)}) = '' THEN "
                        f"{_lit(store.column(k).source)} || '{US}no primary key{US}' END")
    with_numbers = f"SELECT *{''.join(', ' + e for e in numbers)} FROM ({inner})"
    with_values = f"SELECT *{''.join(', ' + e for e in typed)} FROM ({with_numbers})"
    return (f"SELECT {', '.join(values)}, concat_ws('{RS}', {', '.join(problems)}) AS __why, {NON_STRING}, "
            f"__fi{raw_json} FROM ({with_values})")


def records_sql(store: Store, fmt: str) -> str:
    """DuckDB SQL over some export files of one store and format (`?`: the list of their paths):
    one row per record, in file order, with each described column typed as the transform types
    it, `__why` ('' unless the transform rejects the record), `__fi` (the file's index in the list)
    and `__json` (the record's JSON text as the export holds it). The careful read: it refuses
    nothing, at about twice the cost of the transform's first try."""
    return _read_sql(store, fmt, typed=False, raw=True)


# ---------------------------------------------------------------- the per-store steps


def add_derived(store: Store):
    """Columns the export does not hold: NULL here, filled by the steps that know them."""

    def step(frame: pl.DataFrame) -> pl.DataFrame:
        missing = [c for c in store.columns if c.source is None and c.name not in frame.columns]
        return frame.with_columns(pl.lit(None, polars_dtype(c)).alias(c.name) for c in missing)

    return step


def sla_bands(store: Store):
    """The SLA bands of a store that has them (tickets: etl/core/stores.py TICKET_SLA)."""

    def step(frame: pl.DataFrame) -> pl.DataFrame:
        sla = store.sla
        if sla is None:
            return frame
        hours = pl.col(sla.duration)
        closed = pl.col(sla.closed).is_not_null() & hours.is_not_null()
        return frame.with_columns(pl.when(closed).then(hours <= h).alias(sla.column(h)) for h in sla.hours)

    return step


STEPS = (add_derived, sla_bands, session_ids)


def split_rejects(store: Store, frame: pl.DataFrame) -> tuple[pl.DataFrame, pl.DataFrame]:
    """(good rows, one reject row per problem) from the `__why` column."""
    bad = pl.col("__why") != ""
    if not frame.select(bad.any()).item():
        return frame.drop("__why"), pl.DataFrame(schema=REJECT_SCHEMA)  # the usual case: no copy
    good = frame.filter(~bad).drop("__why")
    rejects = (
        frame.filter(bad)
        .select(pl.lit(store.name).alias("store"), pl.col("__file").alias("file"), pl.col("__record").alias("record"),
                _key_text(store).alias("key"), pl.col("__why").str.split(RS).alias("p"))
        .explode("p")
        .with_columns(pl.col("p").str.split(US).list.to_struct(fields=["field", "reason", "value"]))
        .unnest("p")
    )
    return good, rejects.select(REJECT_SCHEMA.names()).cast(REJECT_SCHEMA)


def _key_text(store: Store) -> pl.Expr:
    return pl.concat_str([pl.col(k).cast(pl.String) for k in store.primary_key], separator="|", ignore_nulls=False)


def duplicate_losers(store: Store, meta: pl.DataFrame) -> pl.DataFrame:
    """Rejects (with __pos) for the records that lose a duplicate primary key, by the one rule
    (etl.duplicates): keys compared as MySQL compares them (trailing spaces ignored); the latest
    uploadTimestamp wins, then the later record in the export."""
    keys = [f"__norm_{k}" for k in store.primary_key]
    meta = meta.with_columns(pad_space(k).alias(f"__norm_{k}") for k in store.primary_key)
    if meta.height == 0 or not meta.select(pl.struct(keys).is_duplicated().any()).item():
        return pl.DataFrame(schema={"__pos": pl.Int64, **REJECT_SCHEMA})  # the usual case
    dupes = winners(meta, keys)
    kept = dupes.filter(pl.col("__pos") == pl.col("__win")).select(
        "__win", pl.format("{} record {}", pl.col("__file"), pl.col("__record")).alias("__kept"))
    losers = dupes.filter(pl.col("__pos") != pl.col("__win")).join(kept, on="__win")
    return losers.select(
        pl.col("__pos"), pl.lit(store.name).alias("store"), pl.col("__file").cast(pl.String).alias("file"), pl.col("__record").alias("record"),
        _key_text(store).alias("key"), pl.lit(store.column(store.primary_key[0]).source).alias("field"),
        _key_text(store).str.slice(0, EXCERPT).alias("value"),
        ("duplicate key: kept " + pl.col("__kept") + f" ({RULE})").alias("reason"),
    ).sort("__pos")


# ---------------------------------------------------------------- the stage


@dataclass(frozen=True)
class StoreCounts:
    records_in: int
    staged: int
    rejected: int
    duplicates: int
    non_string_text: dict[str, int] = field(default_factory=dict)  # column -> JSON non-strings carried as text

    @property
    def balanced(self) -> bool:
        return self.records_in == self.staged + self.rejected


@dataclass(frozen=True)
class TransformResult(Result):
    export_dir: str
    stage_dir: str
    counts: dict[str, StoreCounts]
    reconstructed_sessions: int
    findings: tuple[str, ...]
    seconds: float
    missing_stores: tuple[str, ...] = field(default=())
    # store -> column -> staged times before PLAUSIBLE_FROM or after the export's time
    implausible_times: dict[str, dict[str, int]] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return all(c.balanced for c in self.counts.values())

    def __str__(self) -> str:
        lines = [f"staged {self.export_dir} -> {self.stage_dir} in {self.seconds:.1f} s"]
        lines.append(f"  {'store':<15}{'in':>10}{'staged':>10}{'rejected':>10}{'dupes':>8}")
        for name, c in self.counts.items():
            lines.append(f"  {name:<15}{c.records_in:>10,}{c.staged:>10,}{c.rejected:>10,}{c.duplicates:>8,}")
        if self.reconstructed_sessions:
            lines.append(f"  reconstructed upload sessions: {self.reconstructed_sessions}")
        lines += [f"  note: {f}" for f in self.findings]
        return "\n".join(lines)

    def _repr_html_(self) -> str:
        from ..core.htmlrepr import heading, html_table

        rows = [(n, c.records_in, c.staged, c.rejected, c.duplicates, "yes" if c.balanced else "NO")
                for n, c in self.counts.items()]
        notes = ([f"reconstructed upload sessions: {self.reconstructed_sessions}"] if self.reconstructed_sessions
                 else []) + list(self.findings)
        return html_table(heading(self), ("store", "in", "staged", "rejected", "duplicates", "in = staged + rejected"),
                          rows, notes)


PLAUSIBLE_FROM = datetime(2000, 1, 1)  # the app is far younger: an earlier time is a sign of a wrong reading


def implausible_times(stage: Path, until: datetime | None) -> dict[str, dict[str, int]]:
    """Per store and time column, the staged times before PLAUSIBLE_FROM or after `until` (the
    export's time): staged as they are, but worth a look (one scan of the time columns)."""
    out: dict[str, dict[str, int]] = {}
    for store in STORES:
        cols = [c.name for c in store.columns if c.is_time]
        path = stage_path(stage, store)
        if not cols or not path.is_file():
            continue
        bad = [(pl.col(c) < PLAUSIBLE_FROM) | ((pl.col(c) > until) if until else pl.lit(False)) for c in cols]
        row = pl.scan_parquet(path).select(b.sum().alias(c) for b, c in zip(bad, cols)).collect().row(0, named=True)
        if any(row.values()):
            out[store.name] = {c: n for c, n in row.items() if n}
    return out


@dataclass
class _Pass:
    """What the first pass over a store leaves: the rows written, their rejects and a small
    `meta` frame (position in the written file, origin, key and session columns)."""

    records_in: int = 0
    written: int = 0
    rejects: list = field(default_factory=list)
    metas: list = field(default_factory=list)
    non_string: dict = field(default_factory=dict)

    def count_non_strings(self, column: pl.Series) -> None:
        odd = column.filter(column.is_not_null() & (column != ""))
        if odd.len():
            for name, n in odd.str.split(",").explode().value_counts().iter_rows():
                self.non_string[name] = self.non_string.get(name, 0) + n

    def add_meta(self, meta: pl.DataFrame) -> None:
        """Keep a batch's meta in memory of its own. Polars takes DuckDB's Arrow batches without
        copying, and one column kept from a batch keeps all of it alive: without this copy the
        meta would hold every batch of the store (1M tickets: about 700 MB)."""
        copy = io.BytesIO()
        meta.write_ipc(copy, compression="uncompressed")
        self.metas.append(pl.read_ipc(copy.getvalue()))


PARALLEL_STORES = 2  # stores staged side by side (see transform)
# Meta columns with a few values repeated over every record: kept as categoricals (1M tickets'
# meta: 185 -> about 85 MB, which lowers the transform's peak): the session's file, and the record's.
REPEATED = (*(c for c in SESSION_META if c != SESSION_COLUMN and UPLOAD_SESSIONS.column(c).is_text), "__file")


def meta_columns(store: Store) -> tuple[str, ...]:
    """What the meta frame keeps of a store's rows besides their key: what rebuilding sessions
    reads, and what an upload sets per record (incidents: importedAt, which clusters their sessions)."""
    return tuple(c for c in (*SESSION_META, *store.per_upload) if c in store.column_names)


class _Retry(Exception):
    def __init__(self, paths: list[Path]):
        self.paths = paths


def _batches(con, store: Store, paths: list[Path], fmt: str, careful: bool):
    """The typed rows of some files of one format, read in one scan: DuckDB parses one JSON
    array on one thread but several files side by side (in file order: insertion order is kept)."""
    try:
        sql = _read_sql(store, fmt, typed=not careful)
        yield from con.sql(sql, params=[[str(p) for p in paths]]).to_arrow_reader(BATCH_ROWS)
    except (duckdb.Error, OSError, pa.ArrowException) as e:  # errors met while streaming arrive through Arrow
        if not careful:  # e.g. a nested field that is not an object: read these files carefully
            raise _Retry(paths) from None
        shown = paths[0] if len(paths) == 1 else f"{paths[0].parent}/{{{', '.join(p.name for p in paths)}}}"
        raise TransformError(f"cannot read: {str(e).splitlines()[0]}", file=str(shown), store=store.name) from None


def format_runs(files: list[tuple[Path, str]]) -> list[tuple[str, list[Path]]]:
    """Consecutive files of one format: each run is read in one scan."""
    return [(fmt, [p for p, _ in group]) for fmt, group in itertools.groupby(files, key=lambda f: f[1])]


class _Origins:
    """Names each row's record as messages show it: file and 0-based position in that file
    (parts the export cut from one array are numbered in that array)."""

    def __init__(self, paths: list[Path], origins: dict[str, tuple[str, int]]):
        self.labels = [origins.get(p.name, (p.name, 0))[0] for p in paths]
        self.next = np.array([origins.get(p.name, (p.name, 0))[1] for p in paths], dtype=np.int64)

    def columns(self, fi: np.ndarray) -> list[pl.Series]:
        if fi.size and (np.diff(fi) < 0).any():
            raise TransformError("DuckDB returned rows out of file order: record positions would be wrong")
        first_in_batch = np.searchsorted(fi, fi, side="left")
        record = self.next[fi] + np.arange(fi.size) - first_in_batch
        self.next += np.bincount(fi, minlength=self.next.size)
        return [pl.Series("__file", self.labels, pl.String)[pl.Series(fi)], pl.Series("__record", record, pl.Int64)]


def first_pass(con, export: ExportFolder, store: Store, out: Path, careful: frozenset[Path] = frozenset()) -> _Pass:
    """Stream a store through the steps batch by batch into `out`; memory stays bounded by BATCH_ROWS.

    Each batch is written to Parquet on a second thread while DuckDB reads the next (at most
    one batch waits to be written)."""
    result, writer, pending = _Pass(), None, None
    schema = stage_schema(store)
    keep = [*store.primary_key, *meta_columns(store)]
    origins = export.origins(store)
    with ThreadPoolExecutor(max_workers=1) as pool:
        try:
            for fmt, paths in format_runs(export.files(store)):
                where = _Origins(paths, origins)
                for batch in _batches(con, store, paths, fmt, any(p in careful for p in paths)):
                    frame = pl.from_arrow(batch)
                    result.count_non_strings(frame[NON_STRING])
                    frame = frame.drop("__fi", NON_STRING).with_columns(
                        [pl.col(c.name).cast(polars_dtype(c)) for c in store.columns if c.source]
                        + where.columns(frame["__fi"].to_numpy().astype(np.int64)))
                    result.records_in += batch.num_rows
                    for make in STEPS:
                        frame = make(store)(frame)
                    good, rejects = split_rejects(store, frame)
                    result.rejects.append(rejects)
                    result.add_meta(good.select(*keep, "__file", "__record").with_columns(
                        pl.int_range(result.written, result.written + good.height, dtype=pl.Int64).alias("__pos"),
                        *(pl.col(c).cast(pl.Categorical) for c in REPEATED if c in keep or c == "__file")))
                    table = good.select(schema.names()).to_arrow()
                    if writer is None:
                        writer = pq.ParquetWriter(out, table.schema, compression="lz4", write_statistics=_stats(store))
                    if pending is not None:
                        pending.result()
                    pending = pool.submit(writer.write_table, table.cast(writer.schema))
                    result.written += good.height
            if pending is not None:
                pending.result()
        except _Retry as retry:
            if pending is not None:
                pending.result()
            if writer:
                writer.close()
            return first_pass(con, export, store, out, careful | set(retry.paths))
    if writer is None:
        pl.DataFrame(schema=schema).write_parquet(out, compression="lz4")
    else:
        writer.close()
    return result


def _stats(store: Store) -> list[str]:
    """Columns given min/max statistics: keys and every non-text column. Free text prunes
    nothing, and its statistics cost about 0.3 CPU seconds per 1M tickets."""
    return [c.name for c in store.columns if c.name in store.primary_key or polars_dtype(c) != pl.String]


def fix_up(store: Store, path: Path, drop: pl.Series, sessions: pl.DataFrame | None) -> None:
    """Second pass, only when needed: drop duplicate losers and fill incident sessions (streaming)."""
    frame = pl.scan_parquet(path).with_row_index("__pos").with_columns(pl.col("__pos").cast(pl.Int64))
    if sessions is not None and sessions.height:
        frame = frame.join(sessions.lazy().rename({SESSION_COLUMN: "__sid"}), on="__pos", how="left",
                           maintain_order="left").with_columns(pl.coalesce(SESSION_COLUMN, "__sid").alias(SESSION_COLUMN))
    if drop.len():
        frame = frame.filter(~pl.col("__pos").is_in(drop.implode()))
    tmp = path.with_suffix(".fixing")
    frame.select(stage_schema(store).names()).sink_parquet(tmp, compression="lz4")
    tmp.replace(path)


def duration_offset(path: Path) -> str | None:
    """The median gap between stored rawHours and close - open: the uploading browser's UTC offset."""
    gap = pl.scan_parquet(path).filter(pl.col("duration_raw_hours") > 0,
                                       pl.col("close_time").is_not_null()).select(
        (pl.col("duration_raw_hours")
         - (pl.col("close_time") - pl.col("open_time")).dt.total_milliseconds() / 3_600_000).median()
    ).collect().item()
    if gap is None:
        return None
    return (f"stored ticket durations exceed close - open by a median {gap:+.2f} h (the uploading browser's UTC "
            "offset: openTime was read as local time); carried as stored, not recomputed")


def transform(export: Path | ExportFolder, stage_dir: Path) -> TransformResult:
    """Stage every store of an export (a folder path, or an ExportFolder already open: its summary
    is read once, here or by the caller). The stage folder appears complete or not at all."""
    t0 = time.perf_counter()
    stage_dir = Path(stage_dir)
    if not isinstance(export, ExportFolder):
        if not ExportFolder.present(export):
            raise TransformError("not an export folder (no export-summary.json): run `etl export` first", file=str(export))
        export = ExportFolder.open(export)
    export_dir = export.dir
    missing = [s.name for s in STORES if not export.files(s)]
    for name in missing:
        if store_by_name(name).required:
            raise TransformError("the export has no file for this store", file=str(export_dir), store=name)

    export.check_fingerprints()
    check_replaceable(stage_dir, export_dir)
    remove_stale_work(stage_dir)

    tmp = stage_dir.with_name(f".{stage_dir.name}.tmp-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    con = duck.connect(string_views=True)
    # Two stores at a time: a store's Python steps and Parquet writing leave DuckDB's threads
    # idle now and then, and the other store's reading fills the gaps.
    pool = ThreadPoolExecutor(max_workers=PARALLEL_STORES)
    metas: dict[str, pl.DataFrame] = {}
    counts: dict[str, StoreCounts] = {}
    try:
        (tmp / "rejects").mkdir(parents=True)  # inside the try: an interruption right after it removes it too
        # uploadSessions comes last: the sessions rebuilt from the other stores are added to it.
        first = [s for s in STORES if s.name not in missing and s is not UPLOAD_SESSIONS]
        futures = [pool.submit(_stage_store, con, export, tmp, s) for s in first]
        for store, future in zip(first, futures):  # the first failure in store order is the one reported
            counts[store.name], metas[store.name] = future.result()
        sessions = UPLOAD_SESSIONS
        if sessions.name in missing:
            pl.DataFrame(schema=stage_schema(sessions)).write_parquet(stage_path(tmp, sessions))
            counts[sessions.name] = StoreCounts(0, 0, 0, 0)
        else:
            counts[sessions.name], _ = _stage_store(con, export, tmp, sessions)
        rebuilt = _append_rebuilt(sessions, stage_path(tmp, sessions), metas)
        c = counts[sessions.name]
        counts[sessions.name] = StoreCounts(c.records_in + rebuilt, c.staged + rebuilt, c.rejected, c.duplicates,
                                            c.non_string_text)
        for name, c in counts.items():
            if not c.balanced:
                raise TransformError(f"records in != staged + rejected: {c}", store=name)
        findings = [f for f in [duration_offset(stage_path(tmp, store_by_name("tickets")))] if f]
        carried = [f"{store_by_name(name).table}.{col} {n:,}" for name, c in counts.items()
                   for col, n in c.non_string_text.items()]
        if carried:
            findings.append("JSON numbers, booleans, objects or arrays in text columns were carried as their JSON "
                            f"text: {'; '.join(carried)}")
        if missing:
            findings.append(f"the export holds no {', '.join(missing)}: sessions were reconstructed from the records")
        odd = implausible_times(tmp, until := export.exported_at)
        if odd:
            listed = "; ".join(f"{s}.{c} {n:,}" for s, cols in odd.items() for c, n in cols.items())
            findings.append(f"times before {PLAUSIBLE_FROM:%Y-%m-%d} or after the export ({until or 'unknown'}) "
                            f"were staged as they are: {listed}")
        counts = {s.name: counts[s.name] for s in STORES if s.name in counts}
        result = TransformResult(str(export_dir), str(stage_dir), counts, rebuilt, tuple(findings),
                                 time.perf_counter() - t0, tuple(missing), odd)
        (tmp / SUMMARY).write_text(json.dumps(asdict(result), indent=2, ensure_ascii=False))
    except BaseException as e:
        pool.shutdown(cancel_futures=True)  # waits for the store being staged: then nothing writes into tmp
        shutil.rmtree(tmp, ignore_errors=True)  # never leave a half-written stage behind
        if isinstance(e, (OSError, pa.ArrowException, pl.exceptions.PolarsError, duckdb.IOException)):
            # a full disk, a folder we may not write: Arrow and Polars name neither the file nor the folder
            where = getattr(e, "filename", None) or stage_dir
            raise TransformError(f"cannot write the stage: {str(e).splitlines()[0]}", file=str(where)) from None
        raise
    finally:
        pool.shutdown()
        con.close()
    old = stage_dir.with_name(f".{stage_dir.name}.old-{os.getpid()}")
    if stage_dir.exists():
        stage_dir.rename(old)
    tmp.rename(stage_dir)
    shutil.rmtree(old, ignore_errors=True)
    return result


# What a stage folder may hold: the transform's tables, rejects and summary, and the load's work
# (STAGE/load) and row digests (STAGE/digests, etl.core.digest). A folder with anything else is not a stage, and is never replaced.
STAGE_OWN = frozenset({SUMMARY, "rejects", "load", DIGESTS_DIR, *(f"{s.table}.parquet" for s in STORES)})


def check_replaceable(stage_dir: Path, export_dir: Path) -> None:
    """TransformError unless `stage_dir` is absent, empty, or an earlier stage (its summary and only
    the files a stage holds), and holds neither the export nor a folder above it."""
    out, src = stage_dir.resolve(), export_dir.resolve()
    if out == src or out in src.parents:
        raise TransformError("the stage folder would replace the export it reads (it is the export folder or "
                             "holds it): choose another --out", file=str(stage_dir))
    if not os.path.lexists(stage_dir):
        return
    if not stage_dir.is_dir() or stage_dir.is_symlink():
        raise TransformError("the stage folder is not a folder: choose another --out", file=str(stage_dir))
    names = {p.name for p in stage_dir.iterdir()}
    if not names:
        return
    if SUMMARY not in names:
        raise TransformError(f"the folder is not a stage (no {SUMMARY}) and is replaced only when it is one: "
                             "choose another --out, or empty it yourself", file=str(stage_dir))
    foreign = sorted(names - STAGE_OWN)
    if foreign:
        raise TransformError(f"the stage folder holds files a stage does not ({', '.join(foreign[:3])}"
                             f"{', ...' if len(foreign) > 3 else ''}): move them away, then run again", file=str(stage_dir))


def remove_stale_work(stage_dir: Path) -> None:
    """Remove `.STAGE.tmp-PID` / `.STAGE.old-PID` folders left by a transform that was killed
    (its PID no longer runs): they are this tool's and no one else's."""
    for path in stage_dir.parent.glob(f".{stage_dir.name}.*-*"):
        kind, _, pid = path.name[len(stage_dir.name) + 2:].rpartition("-")
        if kind in ("tmp", "old") and pid.isdigit() and int(pid) != os.getpid() and not alive(int(pid)):
            shutil.rmtree(path, ignore_errors=True)


def _stage_store(con, export: ExportFolder, tmp: Path, store: Store) -> tuple[StoreCounts, pl.DataFrame]:
    """Stage one store into `tmp`: its rows, duplicate losers dropped and incident sessions filled,
    and its rejects. Returns its counts and what rebuilding sessions reads of it."""
    out = stage_path(tmp, store)
    cursor = con.cursor()  # one DuckDB cursor per thread
    try:
        p = first_pass(cursor, export, store, out)
    finally:
        cursor.close()
    meta = pl.concat(p.metas) if p.metas else pl.DataFrame()
    p.metas.clear()  # held once, in `meta`
    losers = duplicate_losers(store, meta) if meta.height else pl.DataFrame(schema={"__pos": pl.Int64})
    filled = incident_sessions(meta) if store is INCIDENTS and meta.height else None
    if losers.height or (filled is not None and filled.height):
        fix_up(store, out, losers["__pos"], filled)
    if meta.height:
        meta = meta.filter(~pl.col("__pos").is_in(losers["__pos"].implode()))
        if filled is not None and filled.height:
            meta = meta.join(filled.rename({SESSION_COLUMN: "__sid"}), on="__pos", how="left").with_columns(
                pl.coalesce(SESSION_COLUMN, "__sid").alias(SESSION_COLUMN))
    rejects = pl.concat([*p.rejects, losers.drop("__pos")]) if p.rejects or losers.height else pl.DataFrame(schema=REJECT_SCHEMA)
    rejects.write_parquet(rejects_path(tmp, store))
    counts = StoreCounts(p.records_in, p.written - losers.height,
                         rejects.select(pl.struct("file", "record").n_unique()).item() if rejects.height else 0,
                         losers.height, dict(sorted(p.non_string.items())))
    return counts, meta.select(c for c in SESSION_META if c in meta.columns)


def _append_rebuilt(store: Store, path: Path, metas: dict[str, pl.DataFrame]) -> int:
    """Add the rebuilt sessions to the staged upload_sessions (small: rewritten in memory)."""
    staged = pl.read_parquet(path).with_columns(pl.lit(False).alias("reconstructed"))  # the export's own
    known = set(staged["id"].to_list())
    rebuilt = rebuilt_sessions({k: v for k, v in metas.items() if store_by_name(k).carries_session}, known)
    pl.concat([staged, rebuilt]).write_parquet(path, compression="lz4")
    return rebuilt.height
