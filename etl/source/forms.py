"""Reading the input forms (etl.source.export): a folder of store files, a single-file dump, a
dexie-export-import file (a Chromium profile: etl.source.chromium). Each reader places every store's
records in the work folder (copies in the kernel, or byte spans cut out of one file) and says what
it placed, and what the source itself claims, in a `Found`; etl.source.counting checks it."""

from __future__ import annotations

import fcntl
import os
import re
from pathlib import Path

import duckdb

from ..core import duck
from ..core.errors import ExportError
from ..core.stores import BY_NAME, STORES
from . import jsonscan
from .counting import duck_error, key_field, record_label
from .dexie import RowTypeError, undo_typeson
from .inputs import ARRAY, MAX_OBJECT_BYTES, NDJSON, NOT_MIGRATED, SUMMARY, Found, json_type, load_small_json, sniff, what_is

_EXT = {".json": ARRAY, ".ndjson": NDJSON, ".jsonl": NDJSON}
_FORMATS = {ARRAY: ARRAY, NDJSON: NDJSON, "ndjson": NDJSON, "jsonl": NDJSON}  # a summary's "format" names
# tickets.json, tickets.ndjson, tickets.part-0001.json, tickets.part2.ndjson, tickets-003.jsonl, ...
_FILE = re.compile(r"^(?P<store>[A-Za-z][A-Za-z0-9]*)(?:[._-]part[._-]?(?P<part>\d+)|[._-](?P<num>\d+))?(?P<ext>\.json|\.ndjson|\.jsonl)$")


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


def read_source(source: Path, work: Path, origin: str | None = None) -> Found:
    from .chromium import profile, reader  # the profile form: etl.source.chromium reads it; the checks (etl.source.counting) are shared

    if profile.is_profile(source):
        r = reader.read_profile(source, work, origin=origin)
        return Found("chromium", files=r.files, claimed=r.claimed, claimed_in=r.source_label, meta=r.meta,
                      warnings=r.warnings, inputs=r.inputs, origin=r.origin)
    if origin:
        raise ExportError("--origin is for a browser profile, and this is not one", file=str(source))
    form = detect_form(source)
    return {"folder": _read_folder, "single": _read_single, "dexie": _read_dexie}[form](source, work)


def _read_folder(folder: Path, work: Path) -> Found:
    found = Found("folder")
    summary_path = folder / SUMMARY
    summary = {}
    if summary_path.is_file():
        summary = load_small_json(summary_path)
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
            copy_file(path, work / name)
            found.inputs.append(path)
            placed.append((name, fmt))
            found.origin[name] = str(path)
        if placed:
            found.files[store.name] = placed
    return found


def _files_by_store(folder: Path, found: Found) -> dict[str, list[tuple[Path, str | None]]]:
    """Store files found by name: whole files or numbered parts, never both."""
    whole: dict[str, list[Path]] = {}
    parts: dict[str, dict[int, Path]] = {}
    ignored = set()
    for path in sorted(folder.iterdir()):
        if path.name.startswith(".") or path.name == SUMMARY:
            continue
        m = _FILE.match(path.name)
        if not path.is_file() and m and m["store"] in BY_NAME:
            raise ExportError(f"this should be the store's file, but it is {what_is(path)}", file=str(path), store=m["store"])
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
            raise ExportError(f"{SUMMARY} lists a store file but this is {what_is(path)}", file=str(path), store=store)
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


def _read_single(path: Path, work: Path) -> Found:
    scan = jsonscan.scan(path, level=1)
    top = scan.skeleton
    if not isinstance(top, dict):
        raise ExportError("wrong top-level type: expected a JSON object {store: [records]}", file=str(path))
    if top.get("formatName") == "dexie":  # a dexie file whose header we did not see first
        return _read_dexie(path, work)
    found = Found("single", inputs=[path])
    found.meta = {k: top.get(k) for k in ("databaseName", "databaseVersion", "exportedAt")}
    if isinstance(top.get("counts"), dict):
        found.claimed, found.claimed_in = _claimed_counts(top, path), str(path)
    for key, value in top.items():
        if key in BY_NAME:
            i = jsonscan.span_index(value)
            if i is None:
                raise ExportError(f"wrong type: a store must be an array of records, found {json_type(value)}",
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


def _read_dexie(path: Path, work: Path) -> Found:
    # dexie-export-import: {"formatName":"dexie","data":{"tables":[...],"data":[{"tableName", "inbound", "rows":[...]}]}}
    # The rows arrays are opened inside four containers: the file, data, data.data and one table's entry.
    scan = jsonscan.scan(path, level=4)
    top = scan.skeleton
    data = top.get("data") if isinstance(top, dict) else None
    if not isinstance(data, dict) or not isinstance(data.get("data"), list) or top.get("formatName") != "dexie":
        raise ExportError("not a dexie-export-import file: expected formatName 'dexie' and data.data[] of tables",
                          file=str(path))
    found = Found("dexie", inputs=[path])
    if top.get("formatVersion") != 1:
        found.warnings.append(f"dexie formatVersion {top.get('formatVersion')!r}: read as version 1")
    found.meta = {"databaseName": data.get("databaseName"), "databaseVersion": data.get("databaseVersion"), "exportedAt": None}
    found.claimed = {t["name"]: t["rowCount"] for t in data.get("tables", [])
                     if isinstance(t, dict) and t.get("name") in BY_NAME and isinstance(t.get("rowCount"), int)}
    found.claimed_in = f"{path} (data.tables[].rowCount)"
    con = duck.connect()
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
            raise ExportError(f"wrong type: rows must be an array, found {json_type(table.get('rows'))}", file=str(path), store=name)
        if table.get("inbound") is False:
            raise ExportError("rows with out-of-line keys (inbound false): the app's stores keep their key in the record",
                              file=str(path), store=name)
        out = _out_name(name, None, ARRAY)
        raw = work / f".{name}.dexie.json"
        jsonscan.copy_span(path, scan.spans[i], raw)
        try:
            undo_typeson(con, raw, work / out, key_field=key_field(BY_NAME[name]), max_object_bytes=MAX_OBJECT_BYTES)
        except RowTypeError as e:
            raise ExportError(str(e), file=str(path), store=name, record=record_label(e.index, e.key), field=e.path) from None
        except duckdb.Error as e:
            raise duck_error(e, str(path), name) from None
        found.files[name] = [(out, ARRAY)]
        found.origin[out] = str(path)
    con.close()
    return found


def _claimed_counts(summary: dict, path: Path) -> dict[str, int]:
    counts = summary.get("counts", {})
    if not isinstance(counts, dict):
        raise ExportError("counts must be an object {store: n}", file=str(path))
    bad = [k for k, v in counts.items() if k in BY_NAME and (not isinstance(v, int) or isinstance(v, bool) or v < 0)]
    if bad:
        raise ExportError(f"counts must be whole numbers: {counts[bad[0]]!r}", file=str(path), store=bad[0])
    return {k: v for k, v in counts.items() if k in BY_NAME}


def _first_char(path: Path, store: str | None = None) -> str:
    """The first character that is not whitespace or a byte-order mark ('' for an empty file)."""
    sniff(path, store)
    with open(path, "rb") as f:
        while chunk := f.read(1 << 16):
            stripped = chunk.lstrip(b"\xef\xbb\xbf \t\r\n")
            if stripped:
                return chr(stripped[0])
    return ""


def _out_name(store: str, part: int | None, fmt: str) -> str:
    ext = ".json" if fmt == ARRAY else ".ndjson"
    return f"{store}{ext}" if part is None else f"{store}.part-{part + 1:04d}{ext}"


_FICLONE = 0x40049409  # linux/fs.h: share the blocks copy-on-write (btrfs, xfs, bcachefs, ...)


def copy_file(src: Path, dst: Path) -> None:
    """An independent copy: a copy-on-write clone where the file system offers one, else a copy
    in the kernel (copy_file_range). Never a hard link: the export must not share the user's file."""
    with open(src, "rb") as fi, open(dst, "wb") as fo:
        try:
            fcntl.ioctl(fo.fileno(), _FICLONE, fi.fileno())
            return
        except OSError:
            pass
    jsonscan.copy_span(src, jsonscan.Span(0, src.stat().st_size), dst)
