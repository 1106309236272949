"""Undo dexie-export-import's typeson encoding of one row.

dexie-export-import (typeson, structured-cloning preset) writes a row whose values are
not plain JSON with a `$types` map from key path to type name: a Date as its epoch
milliseconds (`"date"`; the text "NaN" for an invalid date), a property whose value
was `undefined` as 0 (`"undef"`). The export contract holds a Date as
`{"$date": <epoch ms>}` and leaves undefined properties out, as the snippet does.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pyarrow as pa

from ..core.duck import literal

DATE = "$date"
TYPES = "$types"
_SPECIAL_NUMBERS = ("NaN", "Infinity", "-Infinity")  # JSON has none: null, as JSON.stringify writes them


class RowTypeError(Exception):
    """A `$types` entry this toolkit cannot turn into plain JSON; `path` is the field, `index`
    (0-based) and `key` the row when a whole file is being decoded."""

    def __init__(self, path: str, message: str, index: int | None = None, key=None):
        super().__init__(message)
        self.path, self.index, self.key = path, index, key


def _keypath(path: str) -> list[str]:
    # typeson escapes "." inside a key as "~1" and "~" as "~0"
    return [p.replace("~1", ".").replace("~0", "~") for p in path.split(".")]


def decode_row(row: dict) -> dict:
    """The row in the export contract's shape (changed in place and returned)."""
    types = row.pop(TYPES, None)
    if not isinstance(types, dict):
        return row
    for path, kind in types.items():
        if path == "" or path == "$":
            raise RowTypeError(path or "(the row itself)", f"the row itself is typed {kind!r}: not a plain record")
        parts = _keypath(path)
        try:
            node = row
            for p in parts[:-1]:
                node = node[int(p)] if isinstance(node, list) else node[p]
            key = int(parts[-1]) if isinstance(node, list) else parts[-1]
            value = node[key]
        except (KeyError, IndexError, ValueError, TypeError):
            raise RowTypeError(path, f"$types names {path!r} ({kind}) but the row has no value there") from None
        if kind == "date":
            node[key] = {DATE: None if value == "NaN" else value}
        elif kind == "undef":
            if isinstance(node, list):
                node[key] = None  # as JSON.stringify writes an undefined array element
            else:
                del node[key]
        elif kind in _SPECIAL_NUMBERS:
            node[key] = None
        else:
            raise RowTypeError(path, f"unsupported dexie type {kind!r} (only date, undef and special numbers are)")
    return row


# ---------------------------------------------------------------- a whole rows array


def undo_typeson(con, raw: Path, out: Path, *, key_field: str, max_object_bytes: int) -> None:
    """Decode the rows of a dexie rows array (the JSON array file `raw`) into the JSON array file
    `out`; rows without a `$types` map pass through as text. Raises RowTypeError (naming the
    row by position and `key_field`), duckdb.Error.

    DuckDB decodes a row when every entry of its $types is a top-level property that is there,
    typed "date" or "undef" (a merge patch: {"k": {"$date": v}} or {"k": null}); any other row
    (nested paths, other types, an invalid date) is decoded in Python, one small row at a time."""
    read = "read_json_objects(?, format='array', maximum_object_size=?)"
    params = [str(raw), max_object_bytes]
    typed, keys = con.execute(
        # the candidate keys, cheaply: $types is a flat object of strings, so a regex finds it without parsing the row
        "SELECT count(*), list_distinct(flatten(list(CASE WHEN json_valid(ty) THEN json_keys(ty) END))) FROM ("
        f"SELECT regexp_extract(json, '\"\\{TYPES}\"\\s*:\\s*(\\{{[^}}]*\\}})', 1) AS ty FROM {read} "
        f"WHERE contains(json, '\"{TYPES}\"'))", params).fetchall()[0]
    if not typed:
        raw.rename(out)
        return
    simple = [k for k in keys or [] if k and not any(c in k for c in '.~"\\$')][:64]
    reader = con.sql(typeson_sql(simple, read), params=params).to_arrow_reader(20_000)
    with open(out, "wb") as f:
        f.write(b"[\n")
        index = 0
        for batch in reader:  # DuckDB's text goes to the file as bytes: no Python string per row
            done = batch.column(0)
            if done.null_count:  # rows DuckDB left to Python
                texts, values = batch.column(1).to_pylist(), done.to_pylist()
                for k, v in enumerate(values):
                    if v is None:
                        values[k] = _decode_text(texts[k], index + k, key_field) + ",\n"
                done = pa.array(values, pa.string())
            f.write(_text_bytes(done))
            index += batch.num_rows
        f.seek(-2, os.SEEK_END)  # drop the last row's ",\n"
        f.truncate()
        f.write(b"\n]\n")
    raw.unlink()


def typeson_sql(keys: list[str], read: str) -> str:
    """(decoded text + ",\\n" or NULL for Python, original text when NULL) per row, in file order.
    One json_extract with a list of constant paths reads $types and every candidate property."""
    paths = ", ".join(_lit(f'$."{k}"') for k in [TYPES, *keys])
    ok, patch = ["true"], ["'{\"$types\":null'"]
    for j, key in enumerate(keys, 1):
        t, v, name = f"t[{j}]", f"v[{j + 1}]", _lit(json.dumps(key))
        ok.append(f"({t} IS NULL OR ({v} IS NOT NULL AND ({t} = 'undef' OR ({t} = 'date' AND {v} <> '\"NaN\"'))))")
        patch.append(f"CASE {t} WHEN 'undef' THEN ',' || {name} || ':null' "
                     f"WHEN 'date' THEN ',' || {name} || ':{{\"$date\":' || {v} || '}}' ELSE '' END")
    types = ", ".join(_lit(f'$."{k}"') for k in keys)
    t = f"json_extract_string(v[1], [{types}])" if keys else "[]::VARCHAR[]"
    simple = f"len(json_keys(v[1])) = len(list_filter(t, lambda x: x IS NOT NULL)) AND {' AND '.join(ok)}"
    return f"""
        SELECT done || ',' || chr(10), CASE WHEN done IS NULL THEN json END
        FROM (SELECT json, CASE WHEN NOT typed THEN json
                    WHEN {simple} THEN json_merge_patch(json, ({' || '.join(patch)} || '}}')::JSON)::VARCHAR END AS done
              FROM (SELECT json, typed, v, {t} AS t
                    FROM (SELECT json, contains(json, '"{TYPES}"') AS typed, json_extract(json, [{paths}])::VARCHAR[] AS v
                          FROM {read})))"""


def _decode_text(text: str, index: int, key_field: str) -> str:
    row = json.loads(text)
    if not isinstance(row, dict):
        return text  # not a record: the export's count reports it
    key = row.get(key_field)
    try:
        return _dumps(decode_row(row))
    except RowTypeError as e:
        raise RowTypeError(e.path, str(e), index, key) from None


def _text_bytes(arr: pa.Array) -> memoryview:
    """The concatenated UTF-8 of a string array without nulls, straight from its buffers."""
    if pa.types.is_string(arr.type) or pa.types.is_large_string(arr.type):
        width = np.int32 if pa.types.is_string(arr.type) else np.int64
        _, offsets, data = arr.buffers()
        ends = np.frombuffer(offsets, dtype=width)[arr.offset:arr.offset + len(arr) + 1]
        return memoryview(data)[int(ends[0]):int(ends[-1])]
    return memoryview("".join(arr.to_pylist()).encode("utf-8"))


_lit = literal


def _dumps(obj) -> str:
    try:
        return json.dumps(obj, ensure_ascii=False, separators=(",", ":"))
    except UnicodeEncodeError:  # a lone surrogate: keep it escaped
        return json.dumps(obj, separators=(",", ":"))
