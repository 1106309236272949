"""Where the app's database is in a Chromium-family profile, and whether a folder is a profile at all.

Accepted: a user-data dir (holding Default/, Profile 1/, ...), one profile dir (holding
IndexedDB/), or an origin's `<scheme>_<host>_<port>.indexeddb.leveldb` folder itself. When more
than one origin holds the database, `--origin` chooses (http://host:port, or the folder's name).
Refused by name: a Firefox profile, and Chromium's SQLite IndexedDB layout (Chrome 149+ may
create new databases there).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from ...core.errors import ExportError

LEVELDB_SUFFIX = ".indexeddb.leveldb"
BLOB_SUFFIX = ".indexeddb.blob"


@dataclass(frozen=True)
class Candidate:
    folder: Path  # the origin's LevelDB folder
    profile: str  # which profile it is in ("" for a folder given directly)

    @property
    def origin(self) -> str:
        return origin_of(self.folder)

    @property
    def blob_dir(self) -> Path:
        return self.folder.parent / (self.folder.name[: -len(LEVELDB_SUFFIX)] + BLOB_SUFFIX) \
            if self.folder.name.endswith(LEVELDB_SUFFIX) else self.folder.parent / "blob"

    def __str__(self) -> str:
        return f"{self.profile}/{self.origin}" if self.profile else self.origin


def origin_of(folder: Path) -> str:
    """http_127.0.0.1_8080.indexeddb.leveldb -> http://127.0.0.1:8080 (as a person writes it)."""
    name = folder.name[: -len(LEVELDB_SUFFIX)] if folder.name.endswith(LEVELDB_SUFFIX) else folder.name
    m = re.fullmatch(r"([a-z][a-z0-9+.-]*)_(.+)_(\d+)", name)
    return f"{m[1]}://{m[2]}:{m[3]}" if m else name


def _is_leveldb(folder: Path) -> bool:
    return (folder / "CURRENT").is_file() and any(folder.glob("MANIFEST-*"))


def is_firefox(source: Path) -> bool:
    return source.is_dir() and ((source / "prefs.js").is_file() or (source / "times.json").is_file()
                                or (source / "storage" / "default").is_dir() or any(source.glob("*.default*/prefs.js")))


def is_profile(source: Path) -> bool:
    """A Chromium profile, user-data dir or LevelDB folder, or a Firefox profile (refused later by
    name); never an export folder (those hold JSON files, not these)."""
    if not source.is_dir():
        return False
    return (_is_leveldb(source) or source.name.endswith(LEVELDB_SUFFIX) or (source / "IndexedDB").is_dir()
            or (source / "Local State").is_file() or any((p / "IndexedDB").is_dir() for p in _subdirs(source))
            or is_firefox(source))


def _subdirs(source: Path) -> list[Path]:
    try:
        return sorted(p for p in source.iterdir() if p.is_dir() and not p.name.startswith("."))
    except OSError:
        return []


def candidates(source: Path) -> list[Candidate]:
    """Every origin's LevelDB folder under `source`. Raises ExportError for a Firefox profile, a
    SQLite layout without any LevelDB folder, or a folder holding no IndexedDB at all."""
    if is_firefox(source):
        raise ExportError("a Firefox profile: only Chromium-family profiles (Chrome, Chromium, Edge, Brave) are read "
                          "offline; export from Firefox with the snippet (`etl snippet`)", file=str(source))
    if source.name.endswith(LEVELDB_SUFFIX) or _is_leveldb(source):
        if not _is_leveldb(source):
            raise ExportError("not a LevelDB folder (no CURRENT and MANIFEST files): a truncated copy?", file=str(source))
        return [Candidate(source, "")]
    if (source / "IndexedDB").is_dir():
        profiles = [("", source / "IndexedDB")]
    else:
        profiles = [(p.name, p / "IndexedDB") for p in _subdirs(source) if (p / "IndexedDB").is_dir()]
    found, sqlite = [], []
    for profile, idb in profiles:
        for p in sorted(idb.iterdir()):
            if p.name.endswith(LEVELDB_SUFFIX) and p.is_dir():
                found.append(Candidate(p, profile))
            elif _is_sqlite_layout(p):
                sqlite.append(p)
    if not found and sqlite:
        raise ExportError("Chromium's SQLite IndexedDB layout (Chrome 149+) is not supported, only LevelDB: "
                          "export from the browser with the snippet (`etl snippet`)", file=str(sqlite[0]))
    if not found:
        raise ExportError("no IndexedDB data in this profile (no <origin>.indexeddb.leveldb folder)", file=str(source))
    return found


def _is_sqlite_layout(p: Path) -> bool:
    if p.name.endswith(BLOB_SUFFIX):
        return False
    if p.is_file():
        return p.suffix in (".sqlite", ".sqlite3", ".db") or _sqlite_header(p)
    return p.is_dir() and any(_sqlite_header(f) for f in p.iterdir() if f.is_file())


def _sqlite_header(path: Path) -> bool:
    try:
        with open(path, "rb") as f:
            return f.read(16) == b"SQLite format 3\x00"
    except OSError:
        return False


def matches(candidate: Candidate, origin: str) -> bool:
    """--origin as http://host:port, host:port, or the folder's name."""
    want = origin.strip().rstrip("/")
    return want in (candidate.origin, candidate.folder.name, candidate.folder.name[: -len(LEVELDB_SUFFIX)],
                    candidate.origin.split("://", 1)[-1], str(candidate))
