"""Undo dexie-export-import's typeson encoding of one row.

dexie-export-import (typeson, structured-cloning preset) writes a row whose values are
not plain JSON with a `$types` map from key path to type name: a Date as its epoch
milliseconds (`"date"`; the text "NaN" for an invalid date), a property whose value
was `undefined` as 0 (`"undef"`). The export contract holds a Date as
`{"$date": <epoch ms>}` and leaves undefined properties out, as the snippet does.
"""

from __future__ import annotations

DATE = "$date"
TYPES = "$types"
_SPECIAL_NUMBERS = ("NaN", "Infinity", "-Infinity")  # JSON has none: null, as JSON.stringify writes them


class RowTypeError(Exception):
    """A `$types` entry this toolkit cannot turn into plain JSON; `path` is the field."""

    def __init__(self, path: str, message: str):
        super().__init__(message)
        self.path = path


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
