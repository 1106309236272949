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

import contextlib
import json
import mmap
import multiprocessing
import os
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

from ...core.errors import ExportError
from ...core.stores import BY_NAME
from ..chromium import idbkeys, leveldb, profile, v8value

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


PARALLEL_BYTES = 4 << 20  # below this, decoding in this process beats starting workers


class _Failed(Exception):
    """An ExportError's parts (message, where): picklable, so a worker can hand it back."""


def _write(cand: profile.Candidate, s: _Scan, work: Path) -> ProfileRead:
    db = s.databases()[DATABASE_NAME]
    stores, version = _stores(s, db)
    warnings: set[str] = set()
    out_files, claimed, origin_of = {}, {}, {}
    by_id = {m.id: m for m in stores.values() if m.name in BY_NAME}
    ignored = sorted(m.name for m in stores.values() if m.name not in BY_NAME)
    parts = _split(s.files)
    jobs = [(i, part, cand, s, db, by_id, work) for i, part in enumerate(parts)]
    try:
        if len(jobs) == 1:
            results = [_decode_part(jobs[0])]
        else:  # decoding values is most of the time: one process per core, each its own share of the files
            with ProcessPoolExecutor(len(jobs), mp_context=multiprocessing.get_context("spawn")) as pool:
                results = list(pool.map(_decode_part, jobs))
    except _Failed as e:
        message, where = e.args
        raise ExportError(message, **where) from None
    index: dict[int, list[tuple]] = {i: [] for i in by_id}
    for part_index, part_warnings in results:
        warnings |= part_warnings
        for i, rows in part_index.items():
            index[i] += rows
    for i, meta in by_id.items():
        rows = sorted(index.pop(i), key=lambda r: r[0])
        name = f"{meta.name}.ndjson" if rows else f"{meta.name}.json"
        _copy_in_order([_scratch(work, meta, k) for k in range(len(parts))], work / name, rows)
        for k in range(len(parts)):
            _scratch(work, meta, k).unlink(missing_ok=True)
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


def _split(files: leveldb.Files) -> list[leveldb.Files]:
    """The live files in shares of about equal size, one per worker (the logs with the smallest)."""
    total = sum(p.stat().st_size for p in files.all)
    n = min(os.cpu_count() or 1, 4, len(files.tables)) if total > PARALLEL_BYTES else 1
    shares: list[list[Path]] = [[] for _ in range(max(n, 1))]
    sizes = [0] * len(shares)
    for path in sorted(files.tables, key=lambda p: p.stat().st_size, reverse=True):
        k = sizes.index(min(sizes))
        shares[k].append(path)
        sizes[k] += path.stat().st_size
    k = sizes.index(min(sizes))
    return [leveldb.Files(tuple(share), files.logs if i == k else ()) for i, share in enumerate(shares)]


def _scratch(work: Path, meta: _StoreMeta, part: int) -> Path:
    return work / f".{meta.name}.{part}.scratch"


def _decode_part(job) -> tuple[dict[int, list[tuple]], set[str]]:
    """Decode the latest records of one share of the files into scratch NDJSON files:
    ({store id: [(key, share, start, length)]}, warnings). Runs in a worker process."""
    part, files, cand, s, db, by_id, work = job
    warnings: set[str] = set()
    index: dict[int, list[tuple]] = {i: [] for i in by_id}
    latest = s.latest
    scratch = {i: open(_scratch(work, m, part), "wb") for i, m in by_id.items()}
    try:
        for path, e in leveldb.entries(files, idbkeys.not_records):
            raw_key, seq, kind, _ = e
            if kind != leveldb.VALUE or latest.get(raw_key) != (seq, kind):
                continue
            p = idbkeys.prefix(raw_key)
            if p[0] != db or p[1] not in by_id:
                continue
            meta = by_id[p[1]]
            key, _ = idbkeys.decode_key(raw_key, p[3])
            record = _record(cand, s, e, p, meta, key, path, warnings)
            f = scratch[p[1]]
            start = f.tell()
            f.write(_dumps(record).encode("utf-8", "surrogatepass") + b"\n")
            index[p[1]].append((key, part, start, f.tell() - start))
    except leveldb.LevelDBError as e:
        raise _Failed(f"cannot read the profile's LevelDB: {e}", {"file": e.file}) from None
    finally:
        for f in scratch.values():
            f.close()
    return index, warnings


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
        raise _Failed(str(err), {"file": str(path), "store": meta.name, "record": f"key {label}"}) from None
    except (ValueError, IndexError) as err:
        field_ = ".".join(err.path) or None if isinstance(err, v8value.Unsupported) else None
        raise _Failed(f"cannot decode the stored value: {err}", {"file": str(path), "store": meta.name,
                                                                 "record": f"key {label}", "field": field_}) from None
    if not isinstance(value, dict):
        raise _Failed(f"the stored value is not an object ({type(value).__name__})",
                      {"file": str(path), "store": meta.name, "record": f"key {label}"})
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


def _copy_in_order(scratch: list[Path], out: Path, rows: list[tuple]) -> None:
    """Write the records of the scratch files (one per share) in the order of `rows`."""
    with open(out, "wb") as f:
        if not rows:
            f.write(b"[]\n")
            return
        with contextlib.ExitStack() as stack:
            maps = []
            for path in scratch:
                src = stack.enter_context(open(path, "rb"))
                size = os.fstat(src.fileno()).st_size
                maps.append(stack.enter_context(mmap.mmap(src.fileno(), 0, access=mmap.ACCESS_READ)) if size else b"")
            for _, part, start, length in rows:
                f.write(maps[part][start:start + length])
        f.flush()
        os.fsync(f.fileno())


def _dumps(obj) -> str:
    try:
        text = json.dumps(obj, ensure_ascii=False, separators=(",", ":"))
        text.encode("utf-8")
        return text
    except UnicodeEncodeError:  # a lone surrogate: keep it escaped, as JSON.stringify does
        return json.dumps(obj, separators=(",", ":"))
