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

import hashlib
import json
import os
import shutil
import time
import uuid
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

from ..core.errors import ExportError
from ..core.result import Result
from ..core.stores import BY_NAME, Store
from .counting import check_counts
from .forms import read_source
from .inputs import ARRAY, SUMMARY, Found, load_small_json, what_is

FORMS = ("folder", "single", "dexie", "chromium")
# DuckDB reads one JSON array file on one thread but many files side by side: an array file
# over 1.5 times this size is cut at record boundaries into parts of about this size, so
# counting here and parsing in the transform use every core. (The snippet writes a large store
# as NDJSON, which DuckDB reads on every core without cutting: etl/source/snippet.js NDJSON_BYTES.)
PART_BYTES = 128 << 20


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


# ---------------------------------------------------------------- public API


def export(source: Path, out_dir: Path, *, force: bool = False, part_bytes: int = PART_BYTES,
           origin: str | None = None, note=None) -> ExportResult:
    """Normalize `source` (a folder, a single-file dump, a dexie file or a Chromium profile) into
    `out_dir`. Array files over 1.5 times `part_bytes` are stored as parts cut at record boundaries.
    `origin` chooses among a profile's origins when several hold the database. `note(text)` hears
    of each phase as it ends (progress)."""
    note = note or (lambda _: None)
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
        found = read_source(src, work, origin)
        note(f"export: {found.form} form read into its own copy; counting and checking the records")
        counts, missing = check_counts(found, work, src, part_bytes)
        note(f"export: {sum(counts.values()):,} records checked in {len(counts)} stores; writing the summary")
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


def export_or_reuse(source: Path, out_dir: Path, *, note=None) -> ExportResult:
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
    return export(source, out_dir, force=True, note=note)


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


# ---------------------------------------------------------------- writing


def _summary(found: Found, work: Path, source: Path, counts: dict, missing: list[str]) -> dict:
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


def _entry(found: Found, work: Path, name: str, fmt: str) -> dict:
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
                raise ExportError(f"the export was changed after it was written: {what_is(path)} where its summary "
                                  "lists a file; run `etl export --force` from the original", file=str(path), store=store)
            now = fingerprint(path)
            if now["bytes"] != e["bytes"] or now["sample"] != e["sample"]:
                raise ExportError(f"the export was changed after it was written ({now['bytes']:,} bytes, summary "
                                  f"{e['bytes']:,}; content differs): run `etl export --force` from the original",
                                  file=str(path), store=store)


def _check_replaceable(out_dir: Path) -> None:
    """Refuse to replace a folder that is not an earlier export (what --force may replace)."""
    if not out_dir.is_dir():
        raise ExportError(f"the output is {what_is(out_dir)}, not an export folder: choose another --out", file=str(out_dir))
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


# ---------------------------------------------------------------- small helpers


def _existing_summary(out_dir: Path) -> dict | None:
    path = out_dir / SUMMARY
    if not path.is_file():
        return None
    summary = load_small_json(path)
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
