"""Chromium's IndexedDB key coding inside LevelDB (content/browser/indexed_db/indexed_db_leveldb_coding.cc).

Every LevelDB key starts with a prefix: one byte giving the widths of the three ids that follow
(database id 1-8 bytes, object store id 1-8, index id 1-4; little-endian), then the ids.
  (0, 0, 0) + 201 + origin + name        -> database id        (global metadata: DatabaseName)
  (0, 0, 0) + 50 ...                     LevelDB scopes' undo log: never part of the data
  (db, 0, 0) + 4                         -> the database's version (varint)
  (db, 0, 0) + 50 + store id + 0         -> the object store's name (UTF-16BE)
  (db, store, 1) + encoded key           -> varint version + the serialized value (a record)
  (db, store, 3) + encoded key           -> the record's external objects (blobs)
Index ids 2 ("exists") and 30+ (index entries) are not needed to read records.
"""

from __future__ import annotations

import struct

from .leveldb import varint

GLOBAL = (0, 0, 0)
DATABASE_NAME = 201
SCOPES = 50  # in the global metadata: the scopes' undo log
_SCOPES_KEY = bytes([0, 0, 0, 0, SCOPES])
USER_VERSION = 4
OBJECT_STORE_META = 50
OBJECT_STORE_NAME = 0
DATA, BLOB_ENTRY = 1, 3

# IDB key types as encoded
_NULL, _STRING, _DATE, _NUMBER, _ARRAY, _MIN, _BINARY = 0, 1, 2, 3, 4, 5, 6
# IndexedDB's order of key types (the spec): number < date < string < binary < array
_RANK = {_NUMBER: 0, _DATE: 1, _STRING: 2, _BINARY: 3, _ARRAY: 4}


class KeyError_(ValueError):
    """A key or metadata value that does not decode."""


def prefix(key: bytes) -> tuple[int, int, int, int] | None:
    """(database id, object store id, index id, position after the prefix); None when too short."""
    if not key:
        return None
    first = key[0]
    db_len, os_len, ix_len = (first >> 5) + 1, ((first >> 2) & 7) + 1, (first & 3) + 1
    end = 1 + db_len + os_len + ix_len
    if len(key) < end:
        return None
    db = int.from_bytes(key[1:1 + db_len], "little")
    os_ = int.from_bytes(key[1 + db_len:1 + db_len + os_len], "little")
    ix = int.from_bytes(key[1 + db_len + os_len:end], "little")
    return db, os_, ix, end


def not_records(low: bytes, high: bytes) -> bool:
    """Whether a table block bounded by these keys holds only index or "exists" entries of one
    object store (both bounds share that prefix, and keys sort by prefix first): such blocks, most
    of a profile, need not be read."""
    if low.startswith(_SCOPES_KEY) and high.startswith(_SCOPES_KEY):
        return True  # the scopes' undo log (often most entries of all)
    a, b = prefix(low), prefix(high)
    return a is not None and b is not None and a[:3] == b[:3] and a[1] != 0 and a[2] not in (DATA, BLOB_ENTRY)


def string_with_length(buf: bytes, pos: int) -> tuple[str, int]:
    n, pos = varint(buf, pos)
    end = pos + 2 * n
    if end > len(buf):
        raise KeyError_("string runs past the end of the key")
    return buf[pos:end].decode("utf-16-be", "surrogatepass"), end


def utf16(buf: bytes) -> str:
    return buf.decode("utf-16-be", "surrogatepass")


def database_name(key: bytes, pos: int) -> tuple[str, str] | None:
    """(origin, database name) of a global DatabaseName key (pos after the prefix), else None."""
    if pos >= len(key) or key[pos] != DATABASE_NAME:
        return None
    origin, p = string_with_length(key, pos + 1)
    name, _ = string_with_length(key, p)
    return origin, name


def int_le(value: bytes) -> int:
    """Chromium's EncodeInt: little-endian, as few bytes as needed."""
    return int.from_bytes(value, "little")


def decode_key(buf: bytes, pos: int = 0):
    """(key, next position) of an encoded IDB key, as (rank, value) pairs that sort in
    IndexedDB's key order: numbers and dates as floats, strings as str, binary as bytes,
    arrays as tuples of such pairs."""
    kind = buf[pos]
    pos += 1
    if kind in (_NUMBER, _DATE):
        return (_RANK[kind], struct.unpack_from("<d", buf, pos)[0]), pos + 8
    if kind == _STRING:
        s, pos = string_with_length(buf, pos)
        return (_RANK[kind], s.encode("utf-16-be", "surrogatepass")), pos  # code-unit order, as IndexedDB compares
    if kind == _BINARY:
        n, pos = varint(buf, pos)
        return (_RANK[kind], bytes(buf[pos:pos + n])), pos + n
    if kind == _ARRAY:
        n, pos = varint(buf, pos)
        items = []
        for _ in range(n):
            item, pos = decode_key(buf, pos)
            items.append(item)
        return (_RANK[kind], tuple(items)), pos
    raise KeyError_(f"unknown IndexedDB key type {kind}")


def key_text(key) -> str:
    """A decoded key as a person reads it in a message."""
    rank, value = key
    if rank == _RANK[_STRING]:
        return repr(value.decode("utf-16-be", "surrogatepass"))
    if rank in (_RANK[_NUMBER], _RANK[_DATE]):
        return repr(int(value)) if value == int(value) else repr(value)
    if rank == _RANK[_ARRAY]:
        return "[" + ", ".join(key_text(k) for k in value) + "]"
    return value.hex()


def external_objects(value: bytes) -> list[dict]:
    """A blob entry's list: {kind: blob|file|handle, number, type, size?}; the wrapper blobs of large
    values are among them (type application/vnd.blink-idb-value-wrapper)."""
    out, pos = [], 0
    while pos < len(value):
        kind = value[pos]
        pos += 1
        if kind == 2:  # a file system access handle: a length-prefixed token
            n, pos = varint(value, pos)
            out.append({"kind": "handle"})
            pos += n
            continue
        number, pos = varint(value, pos)
        mime, pos = string_with_length(value, pos)
        entry = {"kind": "file" if kind == 1 else "blob", "number": number, "type": mime}
        if kind == 1:
            entry["name"], pos = string_with_length(value, pos)
            _, pos = varint(value, pos)  # last modified
        else:
            entry["size"], pos = varint(value, pos)
        out.append(entry)
    return out
