"""Checking what a reader placed (etl.source.export): every store there or allowed to be missing,
large array files cut into parts at record boundaries, every file counted by DuckDB with every
record parsed (side by side, to use every core), counts compared with what the source claims,
lone UTF-16 surrogates replaced, and DuckDB's reading errors said as ExportErrors naming the
file, the store and, where it can be found, the record."""

from __future__ import annotations

import json
import mmap
import os
import re
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import duckdb

from ..core import duck
from ..core.errors import ExportError
from ..core.stores import BY_NAME, STORES, Store
from . import jsonscan
from .inputs import ARRAY, DATABASE_NAME, MAX_OBJECT_BYTES, Found


def check_counts(found: Found, work: Path, source: Path, part_bytes: int) -> tuple[dict[str, int], list[str]]:
    counts, missing = {}, []
    for store in STORES:
        if found.files.get(store.name):
            continue
        if store.required:
            where = source / f"{store.name}.json" if found.form == "folder" else source
            raise ExportError("missing store: the export has no records array for it", file=str(where), store=store.name)
        if found.claimed.get(store.name):
            raise ExportError(f"missing store file: the source claims {found.claimed[store.name]:,} records",
                              file=found.claimed_in, store=store.name)
        missing.append(store.name)
        found.warnings.append(f"{store.name} is missing (an export from before it existed): going on without it")

    per_file = _count_cut(found, work, part_bytes)
    found.records = {name: n for name, (n, _) in per_file.items()}
    for store in STORES:
        if store.name in missing:
            continue
        counts[store.name] = sum(per_file[name][0] for name, _ in found.files[store.name])
        found.warnings.extend(per_file[name][1] for name, _ in found.files[store.name] if per_file[name][1])
        if store.name in found.claimed and found.claimed[store.name] != counts[store.name]:
            raise ExportError(f"counts disagree: the source claims {found.claimed[store.name]:,} records, "
                              f"the files hold {counts[store.name]:,}", file=found.claimed_in, store=store.name)
        if found.claimed_in and store.name not in found.claimed:
            found.warnings.append(f"{store.name}: the source states no count to check against")
    name = found.meta.get("databaseName")
    if name is not None and name != DATABASE_NAME:
        found.warnings.append(f"database {name!r}, not {DATABASE_NAME!r}")
    return counts, missing


def _count_cut(found: Found, work: Path, part_bytes: int) -> dict[str, tuple[int, str | None]]:
    """Cut the large array files into parts and count every file. Any failure puts the whole
    files back and counts those instead: the error then names the file as the source has it,
    and a cut that was not between two records (which always fails to parse) costs only time."""
    for store, files in found.files.items():
        placed = []
        for name, fmt in files:
            parts = _cut(work, name, part_bytes) if fmt == ARRAY else []
            if parts:
                found.cuts[name] = parts
                found.origin.update(dict.fromkeys(parts, found.origin[name]))
            placed += [(p, ARRAY) for p in parts] or [(name, fmt)]
        found.files[store] = placed
    if not found.cuts:
        return _count_all(found, work)
    try:
        per_file = _count_all(found, work)
    except ExportError:
        whole = {part: name for name, parts in found.cuts.items() for part in parts}
        for store, files in found.files.items():
            found.files[store] = list(dict.fromkeys((whole.get(n, n), ARRAY if n in whole else f) for n, f in files))
        for part in whole:
            (work / part).unlink()
        found.cuts.clear()
        return _count_all(found, work)
    for name in found.cuts:
        (work / name).unlink()  # the parts hold all of it
    return per_file


_BETWEEN_RECORDS = re.compile(rb"\}\s*,\s*\{")  # "}, {" : the end of one object and the start of the next


def _cut(work: Path, name: str, part_bytes: int) -> list[str]:
    """Cut an array file of `work` over 1.5 times `part_bytes` into parts of about `part_bytes`, each
    itself a JSON array, at "}, {" points (byte copies in the kernel, no parsing); [] when it is
    small or no cut is found.
    A cut inside a string or a nested array leaves a part that does not parse, never a wrong
    count: the caller then counts the whole file instead."""
    path = work / name
    size = path.stat().st_size
    if size <= part_bytes * 3 // 2:
        return []
    with open(path, "rb") as f, mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as m:
        head, tail = m[:4096], m[-4096:]
        first = len(head) - len(head.lstrip(b"\xef\xbb\xbf \t\r\n"))
        last = len(m) - len(tail) + len(tail.rstrip(b" \t\r\n")) - 1
        if m[first:first + 1] != b"[" or m[last:last + 1] != b"]":
            return []  # not a clean array: counting the whole file says what is wrong
        starts, ends = [first + 1], []
        target = first + part_bytes
        while target < last - part_bytes // 2:
            hit = _BETWEEN_RECORDS.search(m, target, min(target + part_bytes // 2, last))
            if hit is None:
                target += part_bytes // 2
                continue
            ends.append(hit.start() + 1)
            starts.append(hit.end() - 1)
            target = hit.end() + part_bytes
        ends.append(last)
    if len(starts) < 2:
        return []
    stem = name[: -len(".json")]
    parts = [f"{stem}.cut-{i + 1:04d}.json" for i in range(len(starts))]
    for part, start, end in zip(parts, starts, ends):
        jsonscan.copy_span(path, jsonscan.Span(start, end), work / part, wrap=True)
    return parts


def _count_all(found: Found, work: Path) -> dict[str, tuple[int, str | None]]:
    """Count every placed file. DuckDB reads one JSON array file on one thread, so files are
    counted side by side (largest first) to use every core; the first error in store order wins."""
    jobs = [(name, fmt, BY_NAME[store]) for store, files in found.files.items() for name, fmt in files]
    jobs.sort(key=lambda job: (work / job[0]).stat().st_size, reverse=True)
    con = _duck()

    def count(job):
        name, fmt, store = job
        cursor = con.cursor()  # one DuckDB cursor per thread
        try:
            return _count(cursor, work / name, fmt, store, found.origin[name], found.replaced)
        finally:
            cursor.close()

    with ThreadPoolExecutor(max_workers=max(1, min(len(jobs), os.cpu_count() or 1))) as pool:
        futures = {job[0]: pool.submit(count, job) for job in jobs}
    con.close()
    order = [name for store in STORES for name, _ in found.files.get(store.name, [])]
    for name in order:
        if futures[name].exception() is not None:
            raise futures[name].exception()
    return {name: futures[name].result() for name in order}


def _count(con, path: Path, fmt: str, store: Store, shown: str, replaced: dict[str, int]) -> tuple[int, str | None]:
    """Records in one file, every record parsed: a record that is not an object fails; records
    without their key are counted and named in a warning (the transform rejects each with its
    reason, so one bad record neither blocks the migration nor goes missing). A lone UTF-16
    surrogate escape is replaced by U+FFFD in the export's copy, counted in `replaced` and named
    in a warning (DuckDB refuses the whole file otherwise).
    `shown` is the source file that errors name (the placed file may carry another name)."""
    key = key_field(store)
    sql = (f"SELECT count(*), count(*) FILTER (WHERE {_ident(key)} IS NULL) FROM read_json(?, format=?, records=true, "
           f"columns={{{_lit(key)}: 'VARCHAR'}}, maximum_object_size=?)")
    notes = []
    try:
        try:
            n, no_key = con.execute(sql, [str(path), fmt, MAX_OBJECT_BYTES]).fetchone()
        except duckdb.Error as e:
            if "surrogate" not in str(e) or path.name in replaced:
                raise
            replaced[path.name] = _replace_lone_surrogates(path)
            index, text = _locate(path, fmt, "contains(json, '\\ufffd')")
            notes.append(f"{shown}: {replaced[path.name]:,} lone UTF-16 surrogate escape(s) (text cut inside an emoji) "
                         f"replaced by U+FFFD (first: record {record_label(index, _key_of(text, key))})")
            n, no_key = con.execute(sql, [str(path), fmt, MAX_OBJECT_BYTES]).fetchone()
    except duckdb.Error as e:
        if "Expected OBJECT" in str(e):
            index, text = _locate(path, fmt, "NOT starts_with(ltrim(json), '{')")
            raise ExportError(f"a record is not an object: found {_describe(text)}", file=shown, store=store.name,
                              record=record_label(index)) from None
        raise duck_error(e, shown, store.name) from None
    if no_key:
        index, _ = _locate(path, fmt, f"json_extract_string(json, {_lit('$.' + json.dumps(key))}) IS NULL")
        notes.append(f"{shown}: {no_key:,} {store.name} record(s) without their key {key} (first: record {record_label(index)}); "
                     "the transform rejects them")
    return n, "; ".join(notes) or None


# A JSON escape of a UTF-16 code unit: an escaped backslash (kept), a surrogate pair (kept), or a
# lone surrogate (what JSON.stringify writes for a string cut inside an emoji; no parser takes it).
_SURROGATE = re.compile(rb"\\\\|\\u[dD][89abAB][0-9a-fA-F]{2}(?:\\u[dD][c-fC-F][0-9a-fA-F]{2})?|\\u[dD][c-fC-F][0-9a-fA-F]{2}")


def _replace_lone_surrogates(path: Path) -> int:
    """Replace each lone surrogate escape of `path` (the export's own copy) by \\ufffd; their number."""
    n = 0

    def fix(m: re.Match) -> bytes:
        nonlocal n
        if len(m[0]) != 6 or m[0] == b"\\\\":
            return m[0]
        n += 1
        return b"\\ufffd"

    data = _SURROGATE.sub(fix, path.read_bytes())
    path.write_bytes(data)
    return n


def _key_of(text: str | None, key: str):
    try:
        return json.loads(text).get(key) if text else None
    except (ValueError, AttributeError):
        return None


def _locate(path: Path, fmt: str, condition: str) -> tuple[int | None, str | None]:
    """(0-based position, text) of the first record meeting `condition` (error paths only)."""
    try:
        with duck.connect(threads=1) as con:  # one thread: row_number() follows file order
            row = con.execute(
                f"SELECT i, json FROM (SELECT row_number() OVER () - 1 AS i, json FROM read_json_objects(?, format=?, "
                f"maximum_object_size=?)) WHERE {condition} ORDER BY i LIMIT 1", [str(path), fmt, MAX_OBJECT_BYTES]).fetchone()
        return (row[0], row[1]) if row else (None, None)
    except duckdb.Error:
        return None, None


def _describe(text: str | None) -> str:
    if text is None:
        return "something else"
    t = text.strip()
    kind = {'"': "a string", "[": "an array", "t": "a boolean", "f": "a boolean", "n": "null"}.get(t[:1], "a number")
    return f"{kind}, {t[:60]}{'...' if len(t) > 60 else ''}"


def duck_error(e: duckdb.Error, shown: str, store: str) -> ExportError:
    """A DuckDB reading error as an ExportError naming the file and the store, with DuckDB's own words.
    (DuckDB's "record/value N" is not a dependable record position, so it stays in the detail only.)"""
    detail = str(e).split("\n")[0]
    detail = re.sub(r"^[A-Za-z ]*Error: ", "", detail)
    detail = re.sub(r' in file "[^"]*"', "", detail).strip().rstrip(".")
    if "unexpected end of data" in detail:
        what = "truncated JSON: the file ends in the middle of a record"
    elif "Malformed JSON" in detail:
        what = "malformed JSON"
    elif "maximum_object_size" in detail:
        what = f"a record larger than {MAX_OBJECT_BYTES >> 20} MB"
    else:
        what = "cannot read the file"
    return ExportError(f"{what} (DuckDB: {detail})", file=shown, store=store)


def record_label(index: int | None, key=None) -> str:
    if index is None:
        return "position unknown"
    return f"index {index}" + (f" (key {key!r})" if key is not None else "")


def _duck():
    return duck.connect()


def key_field(store: Store) -> str:
    return store.column(store.primary_key[0]).source


def _ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


_lit = duck.literal
