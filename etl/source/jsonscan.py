"""Find the record arrays inside one big JSON document without parsing the records.

A single-file dump (`{"tickets": [...], ...}`) or a dexie-export-import file can be
hundreds of MB; parsing it whole costs several times its size in memory (DuckDB
needed 11 GB for a 1.6 GB dump). This module reads the bytes instead, vectorized
with numpy, tracking only what JSON structure needs: which quotes are real (not
escaped), hence which brackets lie outside strings, hence the nesting depth. The
arrays opened at a given depth are cut out as byte spans, each itself a valid JSON
array that DuckDB then reads like a folder export's file; what is left (the
"skeleton", a few KB) is parsed with the json module to learn the keys and metadata.

Nothing here decides what is valid: a span that is not a clean array fails in DuckDB
later, and a broken skeleton fails in `json.loads`.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..core.errors import ExportError

CHUNK = 32 << 20  # bytes scanned per numpy pass: bounded memory whatever the file size
MAX_SKELETON = 64 << 20  # more than this outside the cut arrays: not the layout we expect
PLACEHOLDER = "$etlSpan"  # the skeleton holds {"$etlSpan": i} where span i was cut out

_QUOTE, _BACKSLASH, _OPEN_ARRAY, _CLOSE_ARRAY = 0x22, 0x5C, 0x5B, 0x5D
_BOM = b"\xef\xbb\xbf"


@dataclass(frozen=True)
class Span:
    start: int  # offset of "["
    end: int  # offset just past the matching "]"

    @property
    def size(self) -> int:
        return self.end - self.start


@dataclass(frozen=True)
class Scan:
    path: Path
    spans: tuple[Span, ...]
    skeleton: object  # the document with each span replaced by {"$etlSpan": i}


def _brackets(buf: np.ndarray, in_string: bool) -> tuple[np.ndarray, bool]:
    """Offsets of the brackets of `buf` that lie outside strings; and whether `buf` ends inside a string."""
    quote = buf == _QUOTE
    # A quote after a backslash is escaped when the backslash run before it is odd: rare, so a loop.
    for i in np.flatnonzero(quote[1:] & (buf[:-1] == _BACKSLASH)) + 1:
        j = i - 1
        while j >= 0 and buf[j] == _BACKSLASH:
            j -= 1
        quote[i] = (i - 1 - j) % 2 == 0
    quotes = np.flatnonzero(quote)
    folded = buf | 0x20  # "[" -> "{", "]" -> "}": two comparisons instead of four
    pos = np.flatnonzero((folded == 0x7B) | (folded == 0x7D))
    outside = ((np.searchsorted(quotes, pos) + in_string) & 1) == 0
    return pos[outside], in_string ^ bool(quotes.size & 1)


def scan(path: Path, level: int, *, chunk: int = CHUNK) -> Scan:
    """Cut out every array opened at nesting `level` (1: the values of a top-level object).
    `chunk` is the bytes per numpy pass (small values let tests cross many chunk boundaries)."""
    path = Path(path)
    size = path.stat().st_size
    if size == 0:
        raise ExportError("the file is empty: expected a JSON object", file=str(path))
    block = bytearray(chunk)  # one reused buffer (not mmap: pages read stay out of the process's memory)
    with open(path, "rb", buffering=0) as f:
        head = len(_BOM) if f.read(3) == _BOM else 0
        depth, in_string = 0, False
        events: list[tuple[int, int]] = []  # (offset, char) of brackets crossing the cut level
        start = head
        while start < size:
            f.seek(start)
            n = f.readinto(block)
            if n == 0:
                raise ExportError(f"the file changed while being read (short read at byte {start})", file=str(path))
            buf = np.frombuffer(block, dtype=np.uint8, count=n)
            if start + n < size:  # end the chunk on a non-backslash: escape runs never straddle two chunks
                n -= int(np.argmax(buf[::-1] != _BACKSLASH))
                buf = buf[:n]
            pos, ends_in_string = _brackets(buf, in_string)
            if pos.size:
                delta = np.where(buf[pos] & 0x02, 1, -1)  # "[" and "{" have bit 1 set, "]" and "}" not
                after = depth + np.cumsum(delta)
                before = after - delta
                if after.min() < 0:
                    bad = int(pos[np.argmax(after < 0)]) + start
                    raise ExportError(f"malformed JSON: a closing bracket with nothing open at byte {bad}", file=str(path))
                at = np.flatnonzero(((delta > 0) & (before == level)) | ((delta < 0) & (after == level)))
                events += [(int(pos[k]) + start, int(buf[pos[k]])) for k in at]
                depth = int(after[-1])
            in_string = ends_in_string
            del buf
            start += n
        if depth or in_string:
            where = "inside a string" if in_string else f"with {depth} bracket(s) still open"
            raise ExportError(f"truncated JSON: the file ends {where} at byte {size}", file=str(path))

        spans: list[Span] = []
        for (o, oc), (c, cc) in zip(events[0::2], events[1::2]):
            if oc == _OPEN_ARRAY:
                if cc != _CLOSE_ARRAY:
                    raise ExportError(f"malformed JSON: the array opened at byte {o} is closed by {chr(cc)!r} at byte {c}", file=str(path))
                spans.append(Span(o, c + 1))
        outside = size - head - sum(s.size for s in spans)
        if outside > MAX_SKELETON:
            raise ExportError(
                f"unexpected layout: {outside:,} bytes lie outside the record arrays (expected a small wrapper object)",
                file=str(path),
            )
        pieces, prev = [], head
        for i, s in enumerate(spans):
            f.seek(prev)
            pieces += [f.read(s.start - prev), b'{"%s":%d}' % (PLACEHOLDER.encode(), i)]
            prev = s.end
        f.seek(prev)
        pieces.append(f.read(size - prev))
    try:
        skeleton = json.loads(b"".join(pieces).decode("utf-8"), object_pairs_hook=_unique_keys)
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise ExportError(f"malformed JSON outside the record arrays: {e}", file=str(path)) from None
    except _DuplicateKey as e:
        raise ExportError(f"the key {e.args[0]!r} appears twice in one object: which one holds the data?",
                          file=str(path)) from None
    return Scan(path, tuple(spans), skeleton)


class _DuplicateKey(Exception):
    pass


def _unique_keys(pairs: list) -> dict:
    """json.loads keeps the last of two equal keys; for a store that would drop records silently."""
    out = dict(pairs)
    if len(out) != len(pairs):
        seen = set()
        raise _DuplicateKey(next(k for k, _ in pairs if k in seen or seen.add(k)))
    return out


def span_index(value) -> int | None:
    """i when a skeleton value is the placeholder of span i, else None."""
    if isinstance(value, dict) and len(value) == 1 and isinstance(value.get(PLACEHOLDER), int):
        return value[PLACEHOLDER]
    return None


def copy_span(src: Path, span: Span, dst: Path, *, wrap: bool = False) -> None:
    """Copy one span into its own file, in the kernel (copy_file_range) where it can;
    `wrap` puts it between "[" and "]" (a run of records cut out of an array)."""
    with open(src, "rb", buffering=0) as fi, open(dst, "wb", buffering=0) as fo:
        if wrap:
            fo.write(b"[")
        offset, left = span.start, span.size
        while left:
            try:
                n = os.copy_file_range(fi.fileno(), fo.fileno(), left, offset)
            except (AttributeError, OSError):
                fi.seek(offset)
                n = fo.write(fi.read(min(left, CHUNK)))
            if n == 0:
                raise ExportError(f"the file changed while being read (short read at byte {offset})", file=str(src))
            offset += n
            left -= n
        if wrap:
            fo.write(b"]")
