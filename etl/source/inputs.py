"""What every part of the export shares about its input files (etl.source.export): the folder's
names and limits, what a reader placed in the work folder (`Found`), and how a file that is not
UTF-8 JSON (compressed, UTF-16/32, not a regular file) is refused with a message that says what it is."""

from __future__ import annotations

import json
import os
import stat
from dataclasses import dataclass, field
from pathlib import Path

from ..core.errors import ExportError

SUMMARY = "export-summary.json"
DATABASE_NAME = "InsightTicketDatabase"
NOT_MIGRATED = ("users", "menuPermissions")  # in the app's database, but the backend owns them
ARRAY, NDJSON = "array", "newline_delimited"
MAX_OBJECT_BYTES = 64 << 20  # DuckDB: one record may hold a 10 MB+ text; much larger slows reading (bigger buffers)


@dataclass
class Found:
    """What a reader placed in the work folder, before it is checked."""

    form: str
    files: dict[str, list[tuple[str, str]]] = field(default_factory=dict)  # store -> [(name, format)]
    claimed: dict[str, int] = field(default_factory=dict)  # counts the source itself states
    claimed_in: str | None = None  # the file that states them
    meta: dict = field(default_factory=dict)  # databaseName, databaseVersion, exportedAt
    warnings: list[str] = field(default_factory=list)
    inputs: list[Path] = field(default_factory=list)  # files read: the source's fingerprint
    origin: dict[str, str] = field(default_factory=dict)  # placed file -> the source file errors name
    cuts: dict[str, list[str]] = field(default_factory=dict)  # placed array file -> the parts cut from it
    records: dict[str, int] = field(default_factory=dict)  # placed file -> records counted in it
    replaced: dict[str, int] = field(default_factory=dict)  # placed file -> lone surrogates replaced in it


def what_is(path: Path) -> str:
    """What is at `path`, in words (for a message about something that is not a regular file)."""
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return "nothing"
    if stat.S_ISLNK(st.st_mode):
        if not path.exists():
            return f"a broken symbolic link (to {os.readlink(path)})"
        st = path.stat()
    return ("a folder" if stat.S_ISDIR(st.st_mode) else "a FIFO (named pipe)" if stat.S_ISFIFO(st.st_mode)
            else "a socket" if stat.S_ISSOCK(st.st_mode) else "a device" if stat.S_ISCHR(st.st_mode) or stat.S_ISBLK(st.st_mode)
            else "a regular file" if stat.S_ISREG(st.st_mode) else "not a regular file")


# Leading bytes of inputs that are not UTF-8 JSON, and what to tell the user.
_MAGIC = (
    (b"\x1f\x8b", "compressed (gzip): decompress it first (gunzip)"),
    (b"PK\x03\x04", "compressed (zip): unzip it first"),
    (b"BZh", "compressed (bzip2): decompress it first (bunzip2)"),
    (b"\xfd7zXZ\x00", "compressed (xz): decompress it first (unxz)"),
    (b"\x28\xb5\x2f\xfd", "compressed (zstd): decompress it first (unzstd)"),
    (b"\xff\xfe\x00\x00", "UTF-32 text: save it as UTF-8"),
    (b"\x00\x00\xfe\xff", "UTF-32 text: save it as UTF-8"),
    (b"\xff\xfe", "UTF-16 text (little-endian): save it as UTF-8"),
    (b"\xfe\xff", "UTF-16 text (big-endian): save it as UTF-8"),
)


def sniff(path: Path, store: str | None = None) -> None:
    """ExportError when `path` is not a regular file, or not UTF-8 text (compressed, UTF-16/32)."""
    if not path.is_file():
        raise ExportError(f"{what_is(path)} where a store file was expected", file=str(path), store=store)
    with open(path, "rb") as f:
        head = f.read(8)
    for magic, what in _MAGIC:
        if head.startswith(magic):
            raise ExportError(f"not UTF-8 JSON: the file is {what}", file=str(path), store=store)
    if len(head) >= 4 and (head[0] == 0) != (head[1] == 0) and (head[1] == 0 or head[0] == 0) and head[2:4].count(0) == 1:
        raise ExportError("not UTF-8 JSON: the file is UTF-16 text (no byte-order mark): save it as UTF-8",
                          file=str(path), store=store)


def load_small_json(path: Path) -> dict:
    """A small JSON object file (export-summary.json); a byte-order mark is allowed."""
    sniff(path)
    try:
        value = json.loads(path.read_text(encoding="utf-8-sig"))
    except UnicodeDecodeError as e:
        raise ExportError(f"not UTF-8 text (byte {e.start}): save it as UTF-8", file=str(path)) from None
    except json.JSONDecodeError as e:
        raise ExportError(f"malformed JSON: {e}", file=str(path)) from None
    if not isinstance(value, dict):
        raise ExportError(f"wrong top-level type: expected a JSON object, found {json_type(value)}", file=str(path))
    return value


def json_type(value) -> str:
    return {dict: "an object", list: "an array", str: "a string", bool: "a boolean", type(None): "null"}.get(type(value), "a number")
