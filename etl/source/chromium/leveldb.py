"""Read a LevelDB folder offline: CURRENT -> MANIFEST (the live table files), the .ldb/.sst tables
and the write-ahead .log files, as a stream of (user key, sequence number, kind, value).

Only what Chromium's IndexedDB writes is needed: tables compressed with snappy (or not at all),
log records in 32 KB blocks. Nothing is sorted or merged here: the caller keeps, per key, the
entry with the highest sequence number (LevelDB's own rule), which is what makes the result
independent of compaction. Checksums are not verified (a copy of a live profile is expected to
be consistent); a structure that does not parse raises LevelDBError naming the file.
"""

from __future__ import annotations

import re
import struct
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import cramjam

VALUE, DELETION = 1, 0  # LevelDB's value types, the low byte of an internal key's trailer
TABLE_MAGIC = 0xDB4775248B80FB57
_BLOCK = 32 * 1024  # log block size
_FULL, _FIRST, _MIDDLE, _LAST = 1, 2, 3, 4
_FILE = re.compile(r"^(\d+)\.(log|ldb|sst)$")


class LevelDBError(Exception):
    def __init__(self, message: str, file: Path | str):
        super().__init__(message)
        self.file = str(file)


Entry = tuple[bytes, int, int, bytes]  # (user key, sequence number, VALUE or DELETION, value): tuples, being many


def varint(buf, pos: int) -> tuple[int, int]:
    """(value, next position) of a little-endian base-128 varint."""
    result = shift = 0
    while True:
        b = buf[pos]
        pos += 1
        result |= (b & 0x7F) << shift
        if b < 0x80:
            return result, pos
        shift += 7
        if shift > 63:
            raise ValueError("varint too long")


def _prefixed(buf, pos: int) -> tuple[bytes, int]:
    n, pos = varint(buf, pos)
    if pos + n > len(buf):
        raise ValueError("length runs past the end")
    return bytes(buf[pos:pos + n]), pos + n


# ---------------------------------------------------------------- log files (and the MANIFEST)


def log_records(path: Path) -> Iterator[bytes]:
    """The logical records of a LevelDB log file. A torn last record (the writer was killed
    mid-write) ends the file, as LevelDB's own recovery treats it."""
    data = path.read_bytes()
    pending: list[bytes] = []
    pos = 0
    while pos + 7 <= len(data):
        room = _BLOCK - pos % _BLOCK
        if room < 7:  # the block's tail is padding
            pos += room
            continue
        length, kind = struct.unpack_from("<HB", data, pos + 4)
        if kind == 0 and length == 0:  # preallocated zeros
            pos += room
            continue
        start = pos + 7
        if start + length > len(data):
            return  # torn write at the end
        frag = data[start:start + length]
        pos = start + length
        if kind == _FULL:
            pending.clear()
            yield frag
        elif kind == _FIRST:
            pending[:] = [frag]
        elif kind == _MIDDLE:
            pending.append(frag)
        elif kind == _LAST:
            pending.append(frag)
            yield b"".join(pending)
            pending.clear()
        else:
            raise LevelDBError(f"log record of unknown type {kind} at byte {pos - length - 7}", path)


def log_entries(path: Path) -> Iterator[Entry]:
    """Every put and delete of a .log file's write batches, each with its sequence number."""
    for rec in log_records(path):
        if len(rec) < 12:
            raise LevelDBError("write batch shorter than its header", path)
        seq, count = struct.unpack_from("<QI", rec, 0)
        pos = 12
        try:
            for i in range(count):
                kind = rec[pos]
                key, pos = _prefixed(rec, pos + 1)
                value = b""
                if kind == VALUE:
                    value, pos = _prefixed(rec, pos)
                elif kind != DELETION:
                    raise ValueError(f"unknown entry type {kind}")
                yield key, seq + i, kind, value
        except (IndexError, ValueError) as e:
            raise LevelDBError(f"malformed write batch at sequence {seq}: {e}", path) from None


# ---------------------------------------------------------------- tables (.ldb / .sst)


def _block(data: bytes, offset: int, size: int, path: Path) -> bytes:
    if offset + size + 5 > len(data):
        raise LevelDBError(f"block at byte {offset} runs past the end of the file (truncated?)", path)
    raw = data[offset:offset + size]
    kind = data[offset + size]
    if kind == 0:
        return raw
    if kind == 1:
        try:
            return bytes(cramjam.snappy.decompress_raw(raw))
        except Exception as e:  # cramjam raises its own DecompressionError
            raise LevelDBError(f"block at byte {offset} does not decompress (snappy: {e})", path) from None
    raise LevelDBError(f"block at byte {offset} has unknown compression {kind}", path)


def _block_entries(block: bytes, path: Path) -> Iterator[tuple[bytes, bytes]]:
    if len(block) < 4:
        raise LevelDBError("block shorter than its restart count", path)
    restarts = struct.unpack_from("<I", block, len(block) - 4)[0]
    end = len(block) - 4 - 4 * restarts
    if end < 0:
        raise LevelDBError("block's restart array runs past its start", path)
    pos, key = 0, b""
    try:
        while pos < end:
            # three varints; one byte each in almost every entry, so that case is inlined
            shared = block[pos]
            if shared < 0x80:
                pos += 1
            else:
                shared, pos = varint(block, pos)
            own = block[pos]
            if own < 0x80:
                pos += 1
            else:
                own, pos = varint(block, pos)
            vlen = block[pos]
            if vlen < 0x80:
                pos += 1
            else:
                vlen, pos = varint(block, pos)
            key = key[:shared] + block[pos:pos + own]
            pos += own
            yield key, block[pos:pos + vlen]
            pos += vlen
    except IndexError:
        raise LevelDBError("block entry runs past the block's end", path) from None


def table_entries(path: Path, skip=None) -> Iterator[Entry]:
    """Every entry of a table file, in its (sorted) order, as (user key, seq, kind, value).
    `skip(low, high)`, given the user keys that bound a data block (low: the previous block's
    last key, exclusive; high: this block's last key, inclusive), may say the block holds
    nothing wanted: it is then neither decompressed nor walked."""
    data = path.read_bytes()
    if len(data) < 48 or struct.unpack_from("<Q", data, len(data) - 8)[0] != TABLE_MAGIC:
        raise LevelDBError("not a complete LevelDB table (no footer magic: truncated or foreign file)", path)
    footer = data[-48:]
    try:
        _, pos = varint(footer, 0)  # metaindex handle, not needed (filters only)
        _, pos = varint(footer, pos)
        index_offset, pos = varint(footer, pos)
        index_size, pos = varint(footer, pos)
    except IndexError:
        raise LevelDBError("malformed table footer", path) from None
    low = None
    for separator, handle in _block_entries(_block(data, index_offset, index_size, path), path):
        high = separator[:-8]
        if skip is not None and low is not None and skip(low, high):
            low = high
            continue
        low = high
        offset, p = varint(handle, 0)
        size, _ = varint(handle, p)
        for ikey, value in _block_entries(_block(data, offset, size, path), path):
            if len(ikey) < 8:
                raise LevelDBError("internal key shorter than its trailer", path)
            trailer = int.from_bytes(ikey[-8:], "little")
            yield ikey[:-8], trailer >> 8, trailer & 0xFF, value


# ---------------------------------------------------------------- the folder


@dataclass(frozen=True)
class Files:
    """The files that hold the database's current state."""

    tables: tuple[Path, ...]
    logs: tuple[Path, ...]

    @property
    def all(self) -> tuple[Path, ...]:
        return self.tables + self.logs


def live_files(folder: Path) -> Files:
    """The tables the MANIFEST names as live and the logs not yet folded into a table.
    A table left behind by an interrupted compaction is not live: reading it could bring back
    a key whose deletion was since compacted away."""
    current = folder / "CURRENT"
    if not current.is_file():
        raise LevelDBError("not a LevelDB folder (no CURRENT file)", folder)
    name = current.read_text(errors="replace").strip()
    manifest = folder / name
    if not name.startswith("MANIFEST-") or not manifest.is_file():
        raise LevelDBError(f"CURRENT names {name!r}, which is not in the folder", current)
    live: dict[int, int] = {}  # file number -> level
    log_number = prev_log = 0
    for rec in log_records(manifest):
        pos = 0
        try:
            while pos < len(rec):
                tag, pos = varint(rec, pos)
                if tag == 1:  # comparator name
                    _, pos = _prefixed(rec, pos)
                elif tag in (2, 3, 4, 9):  # log number, next file number, last sequence, prev log number
                    n, pos = varint(rec, pos)
                    log_number = n if tag == 2 else log_number
                    prev_log = n if tag == 9 else prev_log
                elif tag == 5:  # compaction pointer: level, internal key
                    _, pos = varint(rec, pos)
                    _, pos = _prefixed(rec, pos)
                elif tag == 6:  # deleted file: level, number
                    _, pos = varint(rec, pos)
                    number, pos = varint(rec, pos)
                    live.pop(number, None)
                elif tag == 7:  # new file: level, number, size, smallest, largest
                    level, pos = varint(rec, pos)
                    number, pos = varint(rec, pos)
                    _, pos = varint(rec, pos)
                    _, pos = _prefixed(rec, pos)
                    _, pos = _prefixed(rec, pos)
                    live[number] = level
                else:
                    raise ValueError(f"unknown tag {tag}")
        except (IndexError, ValueError) as e:
            raise LevelDBError(f"malformed version edit: {e}", manifest) from None
    on_disk = {int(m[1]): folder / p.name for p in folder.iterdir() if (m := _FILE.match(p.name))}
    tables = []
    for number in sorted(live):
        path = on_disk.get(number)
        if path is None or path.suffix == ".log":
            raise LevelDBError(f"the MANIFEST names table {number:06d}.ldb, which is missing", folder)
        tables.append(path)
    logs = [p for n, p in sorted(on_disk.items()) if p.suffix == ".log" and (n >= log_number or n == prev_log)]
    return Files(tuple(tables), tuple(logs))


def entries(files: Files, skip=None) -> Iterator[tuple[Path, Entry]]:
    """Every entry of every live file (older versions included: the caller keeps the latest);
    `skip` as in table_entries (the logs, unsorted, are read whole)."""
    for path in files.tables:
        for e in table_entries(path, skip):
            yield path, e
    for path in files.logs:
        for e in log_entries(path):
            yield path, e
