"""Export: what people have in hand -> a normalized, immutable export folder the transform reads.

Three input forms are accepted:
  folder  the app's export layout (the snippet writes it): one JSON array or NDJSON file
          per store, numbered parts allowed, plus export-summary.json;
  single  one file `{"tickets": [records], "incidents": [...], ...}`;
  dexie   a dexie-export-import file (`"formatName": "dexie"`, typeson `$types` per row).

The output folder holds one or more files per store (records camelCase exactly as
stored; a Date as `{"$date": <epoch ms>}`; undefined properties absent) and
export-summary.json, written last. It is built in a hidden sibling folder and renamed
into place, so it appears complete or not at all, and it is never changed afterwards.

Big JSON never passes through Python objects: DuckDB counts and checks every file, a
folder's files are copied in the kernel (a copy-on-write clone where the file system offers
one) rather than rewritten, and the record arrays of a single file are cut out byte for byte
(etl.jsonscan). The export never shares a file with its source (a hard link would let an edit
of either change the other), and the summary records each file's fingerprint (size,
modification time, a hash of sampled blocks) so that the transform notices an export that was
changed afterwards.

Inputs are UTF-8 JSON (a byte-order mark is allowed, in store files and in
export-summary.json alike). A UTF-16/32 file, a compressed file (gzip, zip, bzip2, xz,
zstd: decompress it first) and anything that is not a regular file (a folder, a FIFO, a
broken symbolic link) are refused with a message that says what the file is.

The output folder is replaced (--force) only when it is an earlier export (it holds an
export-summary.json this tool wrote); any other folder is refused, never deleted.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import mmap
import os
import re
import shutil
import stat
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

import duckdb

from ..core.result import Result
from ..core import duck
from . import jsonscan
from .dexie import RowTypeError, undo_typeson
from ..core.errors import ExportError
from ..core.stores import BY_NAME, STORES, Store

SUMMARY = "export-summary.json"
DATABASE_NAME = "InsightTicketDatabase"
NOT_MIGRATED = ("users", "menuPermissions")  # in the app's database, but the backend owns them
ARRAY, NDJSON = "array", "newline_delimited"
FORMS = ("folder", "single", "dexie", "chromium")
# DuckDB reads one JSON array file on one thread but many files side by side: an array file
# over 1.5 times this size is cut at record boundaries into parts of about this size, so
# counting here and parsing in the transform use every core. (The snippet writes a large store
# as NDJSON, which DuckDB reads on every core without cutting: etl/source/snippet.js NDJSON_BYTES.)
PART_BYTES = 128 << 20
MAX_OBJECT_BYTES = 64 << 20  # DuckDB: one record may hold a 10 MB+ text; much larger slows reading (bigger buffers)
_EXT = {".json": ARRAY, ".ndjson": NDJSON, ".jsonl": NDJSON}
_FORMATS = {ARRAY: ARRAY, NDJSON: NDJSON, "ndjson": NDJSON, "jsonl": NDJSON}  # a summary's "format" names
# tickets.json, tickets.ndjson, tickets.part-0001.json, tickets.part2.ndjson, tickets-003.jsonl, ...
_FILE = re.compile(r"^(?P<store>[A-Za-z][A-Za-z0-9]*)(?:[._-]part[._-]?(?P<part>\d+)|[._-](?P<num>\d+))?(?P<ext>\.json|\.ndjson|\.jsonl)$")


# ---------------------------------------------------------------- result


@dataclass(frozen=True)
class ExportResult(Result):
    out_dir: Path
    source: Path
    source_form: str
    counts: dict[str, int]
    missing_stores: tuple[str, ...] = ()
    warnings: tuple[str, ...] = ()
    seconds: float = 0.0
    reused: bool = False

    def __str__(self) -> str:
        how = "reused (same source, unchanged)" if self.reused else f"in {self.seconds:.1f} s"
        lines = [f"export of {self.source} ({self.source_form} form) -> {self.out_dir} {how}"]
        lines += [f"  {store:<16}{n:>12,}" for store, n in self.counts.items()]
        lines += [f"  {store:<16}{'missing':>12}" for store in self.missing_stores]
        lines += [f"  warning: {w}" for w in self.warnings]
        return "\n".join(lines)

    def _repr_html_(self) -> str:
        from ..core.htmlrepr import heading, html_table

        rows = [(s, n) for s, n in self.counts.items()] + [(s, "missing") for s in self.missing_stores]
        return html_table(heading(self), ("store", "records"), rows, self.warnings)


@dataclass
class _Found:
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


# ---------------------------------------------------------------- public API


def export(source: Path, out_dir: Path, *, force: bool = False, part_bytes: int = PART_BYTES,
           origin: str | None = None) -> ExportResult:
    """Normalize `source` (a folder, a single-file dump, a dexie file or a Chromium profile) into
    `out_dir`. Array files over 1.5 times `part_bytes` are stored as parts cut at record boundaries.
    `origin` chooses among a profile's origins when several hold the database."""
    t0 = time.perf_counter()
    source, out_dir = Path(source), Path(out_dir)
    if not source.exists():
        raise ExportError("no such file or folder", file=str(source))
    src, out = source.resolve(), out_dir.resolve()
    if src == out or out in src.parents:
        raise ExportError("the output folder would replace the source: choose another --out", file=str(out_dir))
    if _non_empty(out_dir) and not force:
        raise ExportError("the output folder already holds files: pass --force to replace it", file=str(out_dir))
    if _non_empty(out_dir):
        _check_replaceable(out_dir)

    out.parent.mkdir(parents=True, exist_ok=True)
    work = out.parent / f".{out.name}.partial-{uuid.uuid4().hex[:8]}"
    work.mkdir()
    try:
        found = _read_source(src, work, origin)
        counts, missing = _check(found, work, src, part_bytes)
        summary = _summary(found, work, src, counts, missing)
        _write_json(work / SUMMARY, summary)  # last: its presence means the folder is complete
        _install(work, out, force=force)
    except BaseException as e:
        shutil.rmtree(work, ignore_errors=True)
        if isinstance(e, OSError) and not e.filename:  # a full disk: the kernel names no file
            raise ExportError(f"cannot write the export: {e.strerror or e}", file=str(out_dir)) from None
        raise
    return ExportResult(out_dir, source, found.form, counts, tuple(missing), tuple(summary["warnings"]),
                        time.perf_counter() - t0)


def export_or_reuse(source: Path, out_dir: Path) -> ExportResult:
    """The playbook's rule: keep `out_dir` when it was exported from this very source and
    the source's files are unchanged (same sizes and modification times); otherwise export
    again and replace `out_dir` atomically."""
    source, out_dir = Path(source), Path(out_dir)
    summary = _existing_summary(out_dir)
    if summary is not None and source.exists():
        same_folder = source.resolve() == out_dir.resolve()
        if same_folder or (summary.get("source") == str(source.resolve()) and _unchanged(summary)):
            return ExportResult(out_dir, source, summary.get("sourceForm", "folder"), dict(summary.get("counts", {})),
                                tuple(summary.get("missingStores", [])), tuple(summary.get("warnings", [])), reused=True)
    return export(source, out_dir, force=True)


def read_summary(export_dir: Path) -> dict:
    """The summary of a complete export folder (ExportError when there is none)."""
    summary = _existing_summary(Path(export_dir))
    if summary is None:
        raise ExportError("not a complete export (no export-summary.json): run `etl export`", file=str(export_dir))
    return summary


def export_files(export_dir: Path, store_name: str | Store, *, summary=None) -> list[tuple[Path, str]]:
    """(path, DuckDB read_json format) of each file of a store, in order; [] for a missing store.
    `summary`: the folder's, already read (etl.source.folder.ExportFolder passes its own)."""
    name = store_name.name if isinstance(store_name, Store) else store_name
    if name not in BY_NAME:
        raise ExportError(f"unknown store; known: {', '.join(BY_NAME)}", store=name)
    entries = (summary if summary is not None else read_summary(export_dir)).get("files", {}).get(name, [])
    return [(Path(export_dir) / e["path"], e["format"]) for e in entries]


def record_origins(export_dir: Path, store_name: str | Store, *, summary=None) -> dict[str, tuple[str, int]]:
    """Each file of a store -> (the file its records are numbered in, the number of its first
    record): a part the export cut out of a large array numbers its records in that array."""
    name = store_name.name if isinstance(store_name, Store) else store_name
    entries = (summary if summary is not None else read_summary(export_dir)).get("files", {}).get(name, [])
    return {e["path"]: (e.get("cutFrom", e["path"]), e.get("firstRecord", 0)) for e in entries}


def read_records(export_dir: Path, store_name: str | Store) -> list[dict]:
    """Every record of a store as Python objects, in file order. For small exports only (tests,
    notebooks): big ones are read by DuckDB, never through Python objects."""
    out: list[dict] = []
    for path, fmt in export_files(export_dir, store_name):
        text = path.read_text(encoding="utf-8")
        # NDJSON ends a record at "\n" only: str.splitlines() would also split at U+2028, U+0085,
        # ..., which JSON.stringify leaves raw inside strings.
        out += json.loads(text) if fmt == ARRAY else [json.loads(line) for line in text.split("\n") if line.strip()]
    return out


# ---------------------------------------------------------------- reading the three forms


def detect_form(source: Path) -> str:
    if source.is_dir():
        return "folder"
    first = _first_char(source)
    if first == "{":
        with open(source, "rb") as f:
            head = f.read(64 << 10).decode("utf-8", "replace")
        return "dexie" if re.search(r'"formatName"\s*:\s*"dexie"', head) else "single"
    found = "nothing (the file is empty)" if first == "" else ("an array" if first == "[" else f"{first!r}")
    raise ExportError(f"wrong top-level type: a single-file export is a JSON object {{store: [records]}}, found {found}",
                      file=str(source))


def _read_source(source: Path, work: Path, origin: str | None = None) -> _Found:
    from .chromium import profile, reader  # the profile form: etl/chromium reads it, the checks below are shared

    if profile.is_profile(source):
        r = reader.read_profile(source, work, origin=origin)
        return _Found("chromium", files=r.files, claimed=r.claimed, claimed_in=r.source_label, meta=r.meta,
                      warnings=r.warnings, inputs=r.inputs, origin=r.origin)
    if origin:
        raise ExportError("--origin is for a browser profile, and this is not one", file=str(source))
    form = detect_form(source)
    return {"folder": _read_folder, "single": _read_single, "dexie": _read_dexie}[form](source, work)


def _read_folder(folder: Path, work: Path) -> _Found:
    found = _Found("folder")
    summary_path = folder / SUMMARY
    summary = {}
    if summary_path.is_file():
        summary = _load_small_json(summary_path)
        found.inputs.append(summary_path)
        found.meta = {k: summary.get(k) for k in ("databaseName", "databaseVersion", "exportedAt")}
        found.claimed, found.claimed_in = _claimed_counts(summary, summary_path), str(summary_path)
        found.warnings += [f"the source says: {w}" for w in summary.get("warnings", []) if isinstance(w, str)]
    else:
        found.warnings.append(f"the folder has no {SUMMARY}: counts cannot be checked against one")

    listed = summary.get("files") if isinstance(summary.get("files"), dict) else {}
    on_disk = _files_by_store(folder, found)
    for store in STORES:
        if store.name in listed:
            entries = _listed_files(folder, summary_path, store.name, listed[store.name])
        else:
            entries = on_disk.get(store.name, [])
        placed = []
        for i, (path, fmt) in enumerate(entries):
            fmt = fmt or _format_of(path, store.name)
            name = _out_name(store.name, i if len(entries) > 1 else None, fmt)
            _copy(path, work / name)
            found.inputs.append(path)
            placed.append((name, fmt))
            found.origin[name] = str(path)
        if placed:
            found.files[store.name] = placed
    return found


def _files_by_store(folder: Path, found: _Found) -> dict[str, list[tuple[Path, str | None]]]:
    """Store files found by name: whole files or numbered parts, never both."""
    whole: dict[str, list[Path]] = {}
    parts: dict[str, dict[int, Path]] = {}
    ignored = set()
    for path in sorted(folder.iterdir()):
        if path.name.startswith(".") or path.name == SUMMARY:
            continue
        m = _FILE.match(path.name)
        if not path.is_file() and m and m["store"] in BY_NAME:
            raise ExportError(f"this should be the store's file, but it is {_what_is(path)}", file=str(path), store=m["store"])
        if not path.is_file():
            continue
        if not m or m["store"] not in BY_NAME:
            ignored.add(m["store"] if m and m["store"] in NOT_MIGRATED else path.name)
            continue
        number = m["part"] or m["num"]
        if number is None:
            whole.setdefault(m["store"], []).append(path)
        elif int(number) in parts.setdefault(m["store"], {}):
            raise ExportError(f"two parts numbered {int(number)}: {parts[m['store']][int(number)].name} and {path.name}",
                              file=str(path), store=m["store"])
        else:
            parts[m["store"]][int(number)] = path
    for name in sorted(ignored):
        why = "not migrated (the backend owns it)" if name in NOT_MIGRATED else "not a store file"
        found.warnings.append(f"ignored {name}: {why}")
    out = {}
    for store in set(whole) | set(parts):
        files = whole.get(store, []) + [parts[store][k] for k in sorted(parts.get(store, {}))]
        if len(whole.get(store, [])) > 1 or (store in whole and parts.get(store)):
            raise ExportError(f"the store is in more than one file ({', '.join(p.name for p in files)}): "
                              "keep one file, or number every part", file=str(folder), store=store)
        out[store] = [(p, None) for p in files]
    return out


def _listed_files(folder: Path, summary_path: Path, store: str, entries) -> list[tuple[Path, str | None]]:
    if not isinstance(entries, list):
        raise ExportError("files must list the store's file names", file=str(summary_path), store=store)
    out = []
    for e in entries:
        name, fmt = (e, None) if isinstance(e, str) else (e.get("path"), e.get("format")) if isinstance(e, dict) else (None, None)
        if not isinstance(name, str) or Path(name).name != name or fmt not in (None, *_FORMATS):
            raise ExportError(f"bad files entry {e!r}", file=str(summary_path), store=store)
        path = folder / name
        if not os.path.lexists(path):
            raise ExportError(f"missing store file: {SUMMARY} lists it but it is not in the folder", file=str(path), store=store)
        if not path.is_file():
            raise ExportError(f"{SUMMARY} lists a store file but this is {_what_is(path)}", file=str(path), store=store)
        out.append((path, _FORMATS.get(fmt)))
    return out


def _format_of(path: Path, store: str) -> str:
    fmt = _EXT.get(path.suffix.lower())
    first = _first_char(path, store)
    if fmt == ARRAY and first != "[":
        if first == "":
            raise ExportError("empty file: expected a JSON array of records (an empty store is [])", file=str(path), store=store)
        found = "an object" if first == "{" else repr(first)
        hint = "; a file of one record per line must be named .ndjson" if first == "{" else ""
        raise ExportError(f"wrong top-level type: expected a JSON array of records, found {found}{hint}", file=str(path), store=store)
    if fmt == NDJSON and first not in ("{", ""):
        raise ExportError(f"wrong top-level type: NDJSON holds one record object per line, found {first!r}", file=str(path), store=store)
    return fmt


def _read_single(path: Path, work: Path) -> _Found:
    scan = jsonscan.scan(path, level=1)
    top = scan.skeleton
    if not isinstance(top, dict):
        raise ExportError("wrong top-level type: expected a JSON object {store: [records]}", file=str(path))
    if top.get("formatName") == "dexie":  # a dexie file whose header we did not see first
        return _read_dexie(path, work)
    found = _Found("single", inputs=[path])
    found.meta = {k: top.get(k) for k in ("databaseName", "databaseVersion", "exportedAt")}
    if isinstance(top.get("counts"), dict):
        found.claimed, found.claimed_in = _claimed_counts(top, path), str(path)
    for key, value in top.items():
        if key in BY_NAME:
            i = jsonscan.span_index(value)
            if i is None:
                raise ExportError(f"wrong type: a store must be an array of records, found {_json_type(value)}",
                                  file=str(path), store=key)
            name = _out_name(key, None, ARRAY)
            jsonscan.copy_span(path, scan.spans[i], work / name)
            found.files[key] = [(name, ARRAY)]
            found.origin[name] = str(path)
        elif key in NOT_MIGRATED:
            found.warnings.append(f"ignored {key}: not migrated (the backend owns it)")
        elif key not in ("databaseName", "databaseVersion", "exportedAt", "counts"):
            found.warnings.append(f"ignored top-level key {key!r}: not a store")
    return found


def _read_dexie(path: Path, work: Path) -> _Found:
    # dexie-export-import: {"formatName":"dexie","data":{"tables":[...],"data":[{"tableName", "inbound", "rows":[...]}]}}
    # The rows arrays are opened inside four containers: the file, data, data.data and one table's entry.
    scan = jsonscan.scan(path, level=4)
    top = scan.skeleton
    data = top.get("data") if isinstance(top, dict) else None
    if not isinstance(data, dict) or not isinstance(data.get("data"), list) or top.get("formatName") != "dexie":
        raise ExportError("not a dexie-export-import file: expected formatName 'dexie' and data.data[] of tables",
                          file=str(path))
    found = _Found("dexie", inputs=[path])
    if top.get("formatVersion") != 1:
        found.warnings.append(f"dexie formatVersion {top.get('formatVersion')!r}: read as version 1")
    found.meta = {"databaseName": data.get("databaseName"), "databaseVersion": data.get("databaseVersion"), "exportedAt": None}
    found.claimed = {t["name"]: t["rowCount"] for t in data.get("tables", [])
                     if isinstance(t, dict) and t.get("name") in BY_NAME and isinstance(t.get("rowCount"), int)}
    found.claimed_in = f"{path} (data.tables[].rowCount)"
    con = _duck()
    for table in data["data"]:
        name = table.get("tableName") if isinstance(table, dict) else None
        if name in NOT_MIGRATED:
            found.warnings.append(f"ignored {name}: not migrated (the backend owns it)")
            continue
        if name not in BY_NAME:
            found.warnings.append(f"ignored table {name!r}: not a store")
            continue
        if name in found.files:
            raise ExportError("two tables of this name in data.data[]", file=str(path), store=name)
        i = jsonscan.span_index(table.get("rows"))
        if i is None:
            raise ExportError(f"wrong type: rows must be an array, found {_json_type(table.get('rows'))}", file=str(path), store=name)
        if table.get("inbound") is False:
            raise ExportError("rows with out-of-line keys (inbound false): the app's stores keep their key in the record",
                              file=str(path), store=name)
        out = _out_name(name, None, ARRAY)
        raw = work / f".{name}.dexie.json"
        jsonscan.copy_span(path, scan.spans[i], raw)
        try:
            undo_typeson(con, raw, work / out, key_field=_key_field(BY_NAME[name]), max_object_bytes=MAX_OBJECT_BYTES)
        except RowTypeError as e:
            raise ExportError(str(e), file=str(path), store=name, record=_record(e.index, e.key), field=e.path) from None
        except duckdb.Error as e:
            raise _duck_error(e, str(path), name) from None
        found.files[name] = [(out, ARRAY)]
        found.origin[out] = str(path)
    con.close()
    return found


# ---------------------------------------------------------------- checking


def _check(found: _Found, work: Path, source: Path, part_bytes: int) -> tuple[dict[str, int], list[str]]:
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


def _count_cut(found: _Found, work: Path, part_bytes: int) -> dict[str, tuple[int, str | None]]:
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


def _count_all(found: _Found, work: Path) -> dict[str, tuple[int, str | None]]:
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
    key = _key_field(store)
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
                         f"replaced by U+FFFD (first: record {_record(index, _key_of(text, key))})")
            n, no_key = con.execute(sql, [str(path), fmt, MAX_OBJECT_BYTES]).fetchone()
    except duckdb.Error as e:
        if "Expected OBJECT" in str(e):
            index, text = _locate(path, fmt, "NOT starts_with(ltrim(json), '{')")
            raise ExportError(f"a record is not an object: found {_describe(text)}", file=shown, store=store.name,
                              record=_record(index)) from None
        raise _duck_error(e, shown, store.name) from None
    if no_key:
        index, _ = _locate(path, fmt, f"json_extract_string(json, {_lit('$.' + json.dumps(key))}) IS NULL")
        notes.append(f"{shown}: {no_key:,} {store.name} record(s) without their key {key} (first: record {_record(index)}); "
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


def _duck_error(e: duckdb.Error, shown: str, store: str) -> ExportError:
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


def _record(index: int | None, key=None) -> str:
    if index is None:
        return "position unknown"
    return f"index {index}" + (f" (key {key!r})" if key is not None else "")


# ---------------------------------------------------------------- writing


def _summary(found: _Found, work: Path, source: Path, counts: dict, missing: list[str]) -> dict:
    def source_print(p: Path) -> dict:
        st = p.stat()
        return {"path": str(p), "bytes": st.st_size, "mtimeNs": st.st_mtime_ns}

    return {
        "databaseName": found.meta.get("databaseName"),
        "databaseVersion": found.meta.get("databaseVersion"),
        "exportedAt": found.meta.get("exportedAt"),
        "sourceForm": found.form,
        "source": str(source),
        "counts": counts,
        "files": {s: [_entry(found, work, n, f) for n, f in found.files[s]] for s in counts},
        "missingStores": missing,
        "warnings": found.warnings,
        # store -> lone UTF-16 surrogate escapes replaced by U+FFFD in its files
        "replacedSurrogates": {s: sum(found.replaced.get(n, 0) for n, _ in found.files[s]) for s in counts
                               if any(found.replaced.get(n) for n, _ in found.files[s])},
        "sourceFiles": [source_print(p) for p in found.inputs],
        "normalizedAt": datetime.now(timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z"),
    }


def _entry(found: _Found, work: Path, name: str, fmt: str) -> dict:
    """A file of the summary with its fingerprint; a part the export cut says where its records were
    (for messages that name a record: `cutFrom` record `firstRecord + i` is this part's record i)."""
    for whole, parts in found.cuts.items():
        if name in parts:
            first = sum(found.records[p] for p in parts[: parts.index(name)])
            return {"path": name, "format": fmt, "cutFrom": whole, "firstRecord": first, **fingerprint(work / name)}
    return {"path": name, "format": fmt, **fingerprint(work / name)}


def _install(work: Path, out: Path, *, force: bool) -> None:
    """Rename the finished work folder into place; a replaced export is removed only afterwards."""
    if not out.exists():
        os.rename(work, out)
    elif not _non_empty(out):
        out.rmdir()
        os.rename(work, out)
    elif force:
        old = out.parent / f".{out.name}.replaced-{uuid.uuid4().hex[:8]}"
        os.rename(out, old)
        os.rename(work, out)
        shutil.rmtree(old, ignore_errors=True)
    else:
        raise ExportError("the output folder already holds files: pass --force to replace it", file=str(out))


_FICLONE = 0x40049409  # linux/fs.h: share the blocks copy-on-write (btrfs, xfs, bcachefs, ...)


def _copy(src: Path, dst: Path) -> None:
    """An independent copy: a copy-on-write clone where the file system offers one, else a copy
    in the kernel (copy_file_range). Never a hard link: the export must not share the user's file."""
    with open(src, "rb") as fi, open(dst, "wb") as fo:
        try:
            fcntl.ioctl(fo.fileno(), _FICLONE, fi.fileno())
            return
        except OSError:
            pass
    jsonscan.copy_span(src, jsonscan.Span(0, src.stat().st_size), dst)


def fingerprint(path: Path) -> dict:
    """What the transform checks an export file against: its size, modification time and a
    hash of sampled blocks (head, tail and 62 blocks spread between: 4 MB read at most, so
    checking costs nothing next to parsing; an edit leaves the size, the time and every sampled
    block alike only when made on purpose)."""
    st = path.stat()
    h = hashlib.blake2b(digest_size=16)
    size, block = st.st_size, 64 << 10
    with open(path, "rb") as f:
        starts = [0] if size <= 64 * block else sorted({round(i * (size - block) / 63) for i in range(64)})
        for start in starts:
            f.seek(start)
            h.update(f.read(block if size > 64 * block else size))
    return {"bytes": size, "mtimeNs": st.st_mtime_ns, "sample": h.hexdigest()}


def check_fingerprints(export_dir: Path, *, summary=None) -> None:
    """ExportError naming the first file of an export that no longer matches its summary."""
    export_dir = Path(export_dir)
    summary = summary if summary is not None else read_summary(export_dir)
    for store, entries in summary.get("files", {}).items():
        for e in entries:
            if "sample" not in e:
                continue  # an export written before fingerprints were recorded
            path = export_dir / e["path"]
            if not path.is_file():
                raise ExportError(f"the export was changed after it was written: {_what_is(path)} where its summary "
                                  "lists a file; run `etl export --force` from the original", file=str(path), store=store)
            now = fingerprint(path)
            if now["bytes"] != e["bytes"] or now["sample"] != e["sample"]:
                raise ExportError(f"the export was changed after it was written ({now['bytes']:,} bytes, summary "
                                  f"{e['bytes']:,}; content differs): run `etl export --force` from the original",
                                  file=str(path), store=store)


def _check_replaceable(out_dir: Path) -> None:
    """Refuse to replace a folder that is not an earlier export (what --force may replace)."""
    if not out_dir.is_dir():
        raise ExportError(f"the output is {_what_is(out_dir)}, not an export folder: choose another --out", file=str(out_dir))
    summary = _existing_summary(out_dir) if (out_dir / SUMMARY).is_file() else None
    if summary is None:
        raise ExportError("--force replaces only an earlier export (a folder holding an export-summary.json "
                          "written by `etl export`); this folder is not one: choose another --out or empty it yourself",
                          file=str(out_dir))
    names = {e["path"] for entries in summary.get("files", {}).values() for e in entries} | {SUMMARY}
    foreign = sorted(p.name for p in out_dir.iterdir() if p.name not in names)
    if foreign:
        raise ExportError(f"the export folder also holds files it did not write ({', '.join(foreign[:3])}"
                          f"{', ...' if len(foreign) > 3 else ''}): move them away, then run again", file=str(out_dir))


def _what_is(path: Path) -> str:
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


def _sniff(path: Path, store: str | None = None) -> None:
    """ExportError when `path` is not a regular file, or not UTF-8 text (compressed, UTF-16/32)."""
    if not path.is_file():
        raise ExportError(f"{_what_is(path)} where a store file was expected", file=str(path), store=store)
    with open(path, "rb") as f:
        head = f.read(8)
    for magic, what in _MAGIC:
        if head.startswith(magic):
            raise ExportError(f"not UTF-8 JSON: the file is {what}", file=str(path), store=store)
    if len(head) >= 4 and (head[0] == 0) != (head[1] == 0) and (head[1] == 0 or head[0] == 0) and head[2:4].count(0) == 1:
        raise ExportError("not UTF-8 JSON: the file is UTF-16 text (no byte-order mark): save it as UTF-8",
                          file=str(path), store=store)


def _out_name(store: str, part: int | None, fmt: str) -> str:
    ext = ".json" if fmt == ARRAY else ".ndjson"
    return f"{store}{ext}" if part is None else f"{store}.part-{part + 1:04d}{ext}"


# ---------------------------------------------------------------- small helpers


def _duck():
    return duck.connect()


def _key_field(store: Store) -> str:
    return store.column(store.primary_key[0]).source


def _ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


_lit = duck.literal


def _json_type(value) -> str:
    return {dict: "an object", list: "an array", str: "a string", bool: "a boolean", type(None): "null"}.get(type(value), "a number")


def _first_char(path: Path, store: str | None = None) -> str:
    """The first character that is not whitespace or a byte-order mark ('' for an empty file)."""
    _sniff(path, store)
    with open(path, "rb") as f:
        while chunk := f.read(1 << 16):
            stripped = chunk.lstrip(b"\xef\xbb\xbf \t\r\n")
            if stripped:
                return chr(stripped[0])
    return ""


def _load_small_json(path: Path) -> dict:
    """A small JSON object file (export-summary.json); a byte-order mark is allowed."""
    _sniff(path)
    try:
        value = json.loads(path.read_text(encoding="utf-8-sig"))
    except UnicodeDecodeError as e:
        raise ExportError(f"not UTF-8 text (byte {e.start}): save it as UTF-8", file=str(path)) from None
    except json.JSONDecodeError as e:
        raise ExportError(f"malformed JSON: {e}", file=str(path)) from None
    if not isinstance(value, dict):
        raise ExportError(f"wrong top-level type: expected a JSON object, found {_json_type(value)}", file=str(path))
    return value


def _claimed_counts(summary: dict, path: Path) -> dict[str, int]:
    counts = summary.get("counts", {})
    if not isinstance(counts, dict):
        raise ExportError("counts must be an object {store: n}", file=str(path))
    bad = [k for k, v in counts.items() if k in BY_NAME and (not isinstance(v, int) or isinstance(v, bool) or v < 0)]
    if bad:
        raise ExportError(f"counts must be whole numbers: {counts[bad[0]]!r}", file=str(path), store=bad[0])
    return {k: v for k, v in counts.items() if k in BY_NAME}


def _existing_summary(out_dir: Path) -> dict | None:
    path = out_dir / SUMMARY
    if not path.is_file():
        return None
    summary = _load_small_json(path)
    return summary if "sourceForm" in summary else None


def _unchanged(summary: dict) -> bool:
    for f in summary.get("sourceFiles", []):
        try:
            st = Path(f["path"]).stat()
        except OSError:
            return False
        if (st.st_size, st.st_mtime_ns) != (f.get("bytes"), f.get("mtimeNs")):
            return False
    return bool(summary.get("sourceFiles"))


def _non_empty(path: Path) -> bool:
    return path.is_dir() and any(path.iterdir()) or (path.exists() and not path.is_dir())


def _write_json(path: Path, obj) -> None:
    with open(path, "w", encoding="utf-8") as f:
        json.dump(obj, f, ensure_ascii=False, indent=2)
        f.write("\n")
        f.flush()
        os.fsync(f.fileno())
