"""Reading an export's records: the DuckDB SQL that flattens each store's JSON (array or NDJSON)
into one typed column per described field, plus `__why`, the reasons a record cannot be staged.

DuckDB reads each top-level field as JSON and flattens the described source paths
(``duration.rawHours``) into text columns named for their target, then types them by the rules
in etl.stage.transform's docstring: big JSON never passes through Python objects. The transform
streams these rows in batches (`batches`); etl.api.verify reads the same way (`records_sql`).
"""

from __future__ import annotations

import itertools
import json
from pathlib import Path

import duckdb
import numpy as np
import polars as pl
import pyarrow as pa

from ..core import duck
from ..core.errors import TransformError
from ..core.stores import Column, Store
from ..source.inputs import MAX_OBJECT_BYTES

EXCERPT = 120
BATCH_ROWS = 100_000  # rows per streamed batch: bounds memory whatever the export's size
META = ("__file", "__record")  # where each record came from: file and 0-based index in it
# A record's problems travel in one text column: "field<US>reason<US>value" items joined by <RS>.
US, RS = "\x1f", "\x1e"
RAW = "__raw_"  # the inner query's text columns


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


# Bare numbers (JSON numbers, or text that is only digits) in a time column; see etl.stage.transform's rules.
EPOCH_MS_FROM = 1e11  # and up: epoch milliseconds (1e11 ms is 1973-03-03; 1e11 s would be the year 5138)
EPOCH_S_FROM, EPOCH_S_TO = 1e9, 1e10  # epoch seconds: 2001-09-09 .. 2286-11-20
EXCEL_TO = 2958466  # spreadsheet serial days reach 9999-12-31 here
_BARE = r"^\s*-?[0-9]+(\.[0-9]+)?\s*$"
# a date, a time, then a zone word: "2025-05-12 14:30:00 Asia/Jakarta", "2025-05-12T14:30 WIB"
_ZONE_WORD = r"^\s*[0-9]{4}[-/][0-9]{2}[-/][0-9]{2}[T ][0-9:.]+\s+([A-Za-z][A-Za-z0-9_/+-]*)\s*$"


def _time_sql(r: str, v: str, col: Column) -> tuple[str, str]:
    """(value, problem) SQL of a time column (rules in etl.stage.transform's docstring). The usual forms (ISO
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
    # A JSON value's text is minified: a string starts with `"`, a null is `null`, anything else is
    # a number, boolean, object or array. Its first character tells without a second parse of
    # every text value (json_type cost the 1M-ticket transform 2.5 s).
    odd = [f"CASE WHEN left(CAST({values_of[c.source]} AS VARCHAR), 1) NOT IN ('\"', 'n') THEN {_lit(c.name)} END"
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


def typed_records_sql(store: Store, fmt: str) -> str:
    """The transform's first try as `records_sql` gives it, without `__json`: several times faster,
    but DuckDB refuses a whole file (duckdb.Error) where `records_sql` would name a record's problem
    (a nested field that is not an object, a repeated property). Where it reads, its rows equal
    `records_sql`'s (the transform stages from either)."""
    return _read_sql(store, fmt, typed=True)


class Retry(Exception):
    """Raised by `batches` when the fast read fails: the caller reads those files again, carefully."""

    def __init__(self, paths: list[Path]):
        self.paths = paths


def batches(con, store: Store, paths: list[Path], fmt: str, careful: bool):
    """The typed rows of some files of one format, read in one scan: DuckDB parses one JSON
    array on one thread but several files side by side (in file order: insertion order is kept)."""
    try:
        sql = _read_sql(store, fmt, typed=not careful)
        yield from con.sql(sql, params=[[str(p) for p in paths]]).to_arrow_reader(BATCH_ROWS)
    except (duckdb.Error, OSError, pa.ArrowException) as e:  # errors met while streaming arrive through Arrow
        if not careful:  # e.g. a nested field that is not an object: read these files carefully
            raise Retry(paths) from None
        shown = paths[0] if len(paths) == 1 else f"{paths[0].parent}/{{{', '.join(p.name for p in paths)}}}"
        raise TransformError(f"cannot read: {str(e).splitlines()[0]}", file=str(shown), store=store.name) from None


def format_runs(files: list[tuple[Path, str]]) -> list[tuple[str, list[Path]]]:
    """Consecutive files of one format: each run is read in one scan."""
    return [(fmt, [p for p, _ in group]) for fmt, group in itertools.groupby(files, key=lambda f: f[1])]


class Origins:
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
