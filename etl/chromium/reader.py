"""Read the app's database from a Chromium profile offline into export store files.

Two passes over the live LevelDB files (etl.chromium.leveldb), streaming:
  1. metadata (database ids, object store names and key paths, the version) and, per record
     key, only the highest sequence number and whether it is a put or a delete: LevelDB's rule
     for the current state, whatever compaction has or has not merged yet;
  2. the records whose entry is that latest put are decoded (etl.chromium.v8value) and written
     to a scratch NDJSON file per store, with each record's IndexedDB key and byte range.
Each store's file is then rewritten in key order (IndexedDB's, as the snippet reads it) by
copying byte ranges: no record is held in memory, only the keys and offsets.
"""

from __future__ import annotations

import json
import mmap
import os
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

from ..errors import ExportError
from ..stores import BY_NAME
from . import idbkeys, leveldb, profile, v8value

DATABASE_NAME = "InsightTicketDatabase"
NOT_MIGRATED = ("users", "menuPermissions")  # the backend owns them; users hold passwords: never written


@dataclass
class _Scan:
    """What pass 1 learned about one origin's LevelDB."""

    files: leveldb.Files
    meta: dict[bytes, tuple[int, int, bytes]] = field(default_factory=dict)  # key -> (seq, kind, value)
    latest: dict[bytes, tuple[int, int]] = field(default_factory=dict)  # record key -> (seq, kind)
    blob_entries: dict[bytes, tuple[int, int, bytes]] = field(default_factory=dict)

    def live_meta(self):
        for key, (_, kind, value) in self.meta.items():
            if kind == leveldb.VALUE:
                yield key, value

    def databases(self) -> dict[str, int]:
        """Database name -> id, for the live DatabaseName entries."""
        out = {}
        for key, value in self.live_meta():
            p = idbkeys.prefix(key)
            if p and p[:3] == idbkeys.GLOBAL and (named := idbkeys.database_name(key, p[3])):
                out[named[1]] = idbkeys.int_le(value)
        return out


def scan(files: leveldb.Files) -> _Scan:
    s = _Scan(files)
    latest = s.latest
    for path, (key, seq, kind, value) in leveldb.entries(files, idbkeys.not_records):
        p = idbkeys.prefix(key)
        if p is None:
            continue
        db, store, index, _ = p
        if index == idbkeys.DATA and store:
            seen = latest.get(key)
            if seen is None or seq > seen[0]:
                latest[key] = (seq, kind)
        elif store == 0 and index == 0:
            if db == 0 and key[p[3]:p[3] + 1] == bytes([idbkeys.SCOPES]):
                continue  # LevelDB scopes' undo log: bookkeeping, not data
            seen = s.meta.get(key)
            if seen is None or seq > seen[0]:
                s.meta[key] = (seq, kind, value)
        elif index == idbkeys.BLOB_ENTRY and store:
            seen = s.blob_entries.get(key)
            if seen is None or seq > seen[0]:
                s.blob_entries[key] = (seq, kind, value)
    return s


@dataclass(frozen=True)
class _StoreMeta:
    id: int
    name: str
    key_path: str | None
    auto_increment: bool


def _stores(s: _Scan, db: int) -> tuple[dict[int, _StoreMeta], int | None]:
    names, paths, auto, version = {}, {}, {}, None
    for key, value in s.live_meta():
        p = idbkeys.prefix(key)
        if not p or p[0] != db:
            continue
        pos = p[3]
        if key[pos] == idbkeys.USER_VERSION and len(key) == pos + 1:
            version = leveldb.varint(value, 0)[0]
        elif key[pos] == idbkeys.OBJECT_STORE_META:
            store, q = leveldb.varint(key, pos + 1)
            kind = key[q] if q < len(key) else None
            if kind == idbkeys.OBJECT_STORE_NAME:
                names[store] = idbkeys.utf16(value)
            elif kind == 1:
                paths[store] = _key_path(value)
            elif kind == 2:
                auto[store] = bool(value and value[0])
    return {i: _StoreMeta(i, n, paths.get(i), auto.get(i, False)) for i, n in names.items()}, version


def _key_path(value: bytes) -> str | None:
    """A store's key path: a string path is all the app uses (arrays and none give None)."""
    if len(value) >= 3 and value[0] == 0 and value[1] == 0:
        if value[2] == 1:
            return idbkeys.string_with_length(value, 3)[0]
        return None
    return idbkeys.utf16(value)  # the old coding: the bare string


# ---------------------------------------------------------------- the whole read


@dataclass(frozen=True)
class ProfileRead:
    files: dict[str, list[tuple[str, str]]]  # store -> [(file name in the work folder, format)]
    claimed: dict[str, int]
    meta: dict
    warnings: list[str]
    inputs: list[Path]
    origin: dict[str, str]  # placed file -> what errors name
    source_label: str


def read_profile(source: Path, work: Path, *, origin: str | None = None) -> ProfileRead:
    """Write each migrated store of the app's database as `work/<store>.ndjson` (or `.json` when
    empty). Raises ExportError naming the file, store, record and field."""
    cands = profile.candidates(source)
    if origin:
        chosen = [c for c in cands if profile.matches(c, origin)]
        if not chosen:
            raise ExportError(f"no origin {origin!r} in this profile; it has: {', '.join(map(str, cands))}", file=str(source))
        cands = chosen
    holding = []
    for c in cands:
        s = _scan_or_fail(c.folder)
        if DATABASE_NAME in s.databases():
            holding.append((c, s))
    if not holding:
        raise ExportError(f"no origin in this profile holds the database {DATABASE_NAME} "
                          f"(looked in: {', '.join(map(str, cands))})", file=str(source))
    if len(holding) > 1:
        raise ExportError(f"{len(holding)} origins hold {DATABASE_NAME}: choose one with --origin "
                          f"({', '.join(str(c) for c, _ in holding)})", file=str(source))
    cand, s = holding[0]
    return _write(cand, s, work)


def _scan_or_fail(folder: Path) -> _Scan:
    try:
        return scan(leveldb.live_files(folder))
    except leveldb.LevelDBError as e:
        raise ExportError(f"cannot read the profile's LevelDB: {e}", file=e.file) from None


def _write(cand: profile.Candidate, s: _Scan, work: Path) -> ProfileRead:
    db = s.databases()[DATABASE_NAME]
    stores, version = _stores(s, db)
    warnings: set[str] = set()
    out_files, claimed, origin_of = {}, {}, {}
    by_id = {m.id: m for m in stores.values() if m.name in BY_NAME}
    ignored = sorted(m.name for m in stores.values() if m.name not in BY_NAME)
    scratch = {i: open(work / f".{m.name}.scratch", "wb") for i, m in by_id.items()}
    index: dict[int, list[tuple]] = {i: [] for i in by_id}
    try:
        for path, e in leveldb.entries(s.files, idbkeys.not_records):
            raw_key, seq, kind, _ = e
            if kind != leveldb.VALUE:
                continue
            p = idbkeys.prefix(raw_key)
            if not p or p[0] != db or p[2] != idbkeys.DATA or p[1] not in by_id or s.latest.get(raw_key) != (seq, kind):
                continue
            meta = by_id[p[1]]
            key, _ = idbkeys.decode_key(raw_key, p[3])
            record = _record(cand, s, e, p, meta, key, path, warnings)
            f = scratch[p[1]]
            start = f.tell()
            f.write(_dumps(record).encode("utf-8", "surrogatepass") + b"\n")
            index[p[1]].append((key, start, f.tell() - start))
    except leveldb.LevelDBError as e:
        raise ExportError(f"cannot read the profile's LevelDB: {e}", file=e.file) from None
    finally:
        for f in scratch.values():
            f.close()
    for i, meta in by_id.items():
        tmp = work / f".{meta.name}.scratch"
        rows = sorted(index.pop(i), key=lambda r: r[0])
        name = f"{meta.name}.ndjson" if rows else f"{meta.name}.json"
        _copy_in_order(tmp, work / name, rows)
        tmp.unlink()
        out_files[meta.name] = [(name, "newline_delimited" if rows else "array")]
        claimed[meta.name] = len(rows)
        origin_of[name] = f"{cand.folder} (object store {meta.name})"
    notes = [f"read offline from a Chromium profile: origin {cand.origin}, {len(s.files.all)} LevelDB files"]
    notes += [f"ignored {n}: {'not migrated (the backend owns it)' if n in NOT_MIGRATED else 'not a store of the app'}"
              for n in ignored]
    notes += [f"the source says: {w}" for w in sorted(warnings)]
    mtime = max(p.stat().st_mtime for p in s.files.all)
    meta = {"databaseName": DATABASE_NAME,
            "databaseVersion": version // 10 if version and version % 10 == 0 else version,  # Dexie: IndexedDB version / 10
            "exportedAt": datetime.fromtimestamp(mtime, timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")}
    return ProfileRead(out_files, claimed, meta, notes, list(s.files.all), origin_of, str(cand))


def _record(cand, s: _Scan, e: leveldb.Entry, p, meta: _StoreMeta, key, path: Path, warnings: set) -> dict:
    """One live record as the export contract's JSON object."""
    def blob(i: int) -> bytes:
        objects = idbkeys.external_objects(_blob_entry(s, e[0], p))
        number = objects[i]["number"]
        blob_path = cand.blob_dir / str(p[0]) / f"{(number >> 8) & 0xFF:02x}" / f"{number:x}"
        if not blob_path.is_file():
            raise ValueError(f"the value's blob file {blob_path} is missing")
        return blob_path.read_bytes()

    label = idbkeys.key_text(key)
    try:
        _, pos = leveldb.varint(e[3], 0)  # the record's version
        store_warnings: set[str] = set()
        value = v8value.decode(e[3][pos:], blob, store_warnings)
        warnings.update(f"{meta.name}.{w}" for w in store_warnings)
    except v8value.UnknownEnvelope as err:
        raise ExportError(str(err), file=str(path), store=meta.name, record=f"key {label}") from None
    except (ValueError, IndexError) as err:
        field_ = ".".join(err.path) or None if isinstance(err, v8value.Unsupported) else None
        raise ExportError(f"cannot decode the stored value: {err}", file=str(path), store=meta.name,
                          record=f"key {label}", field=field_) from None
    if not isinstance(value, dict):
        raise ExportError(f"the stored value is not an object ({type(value).__name__})", file=str(path),
                          store=meta.name, record=f"key {label}")
    if meta.auto_increment and meta.key_path and meta.key_path not in value:
        # A generated key is not in the stored value: the browser puts it in when it reads the record.
        value[meta.key_path] = _key_value(key)
    return value


def _blob_entry(s: _Scan, data_key: bytes, p) -> bytes:
    """The blob entry of a record: the same key with index id 3 (the prefix's last byte, which
    the app's small ids keep one byte wide)."""
    key = data_key[:p[3] - 1] + bytes([idbkeys.BLOB_ENTRY]) + data_key[p[3]:]
    seen = s.blob_entries.get(key)
    if seen is None or seen[1] != leveldb.VALUE:
        raise ValueError("the value is kept in a blob file but the record lists no blobs")
    return seen[2]


def _key_value(key):
    rank, value = key
    if rank == 0:
        return int(value) if value == int(value) else value
    if rank == 2:
        return value.decode("utf-16-be", "surrogatepass")
    raise ValueError("an auto-increment key that is not a number")


def _copy_in_order(scratch: Path, out: Path, rows: list[tuple]) -> None:
    with open(out, "wb") as f:
        if not rows:
            f.write(b"[]\n")
            return
        with open(scratch, "rb") as src, mmap.mmap(src.fileno(), 0, access=mmap.ACCESS_READ) as m:
            for _, start, length in rows:
                f.write(m[start:start + length])
        f.flush()
        os.fsync(f.fileno())


def _dumps(obj) -> str:
    try:
        text = json.dumps(obj, ensure_ascii=False, separators=(",", ":"))
        text.encode("utf-8")
        return text
    except UnicodeEncodeError:  # a lone surrogate: keep it escaped, as JSON.stringify does
        return json.dumps(obj, separators=(",", ":"))
