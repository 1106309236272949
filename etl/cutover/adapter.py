"""The browser adapter (etl/cutover/adapter.js): the JavaScript a Dexie app includes to obey the flags.

`etl adapter` prints it with its configuration filled in from the one description of each
(the stages of etl.cutover.stages, the stores and columns of etl.stores), so neither is written
twice. The API paths are the app backend's (`/api/tickets`, `/api/upload-sessions`, ...).
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from importlib.resources import files
from pathlib import Path

from ..core.stores import STORES, Store
from .stages import STAGES

PLACEHOLDER = "__ETL_CUTOVER_CONFIG__"
BUCKETS = ("cabang", "status", "category")  # the mismatch contract's buckets besides the day
# Columns the transform fills in where the browser's record has nothing (upload sessions are
# rebuilt for records that have none): NULL in IndexedDB and a value in MySQL is no difference.
FILLED = ("upload_session_id",)


def _store(s: Store) -> dict:
    (key,) = s.primary_key
    return {
        "name": s.name, "table": s.table, "path": "/api/" + s.table.replace("_", "-"),
        "key": key, "keySource": s.column(key).source, "time": s.time_column,
        "buckets": [b for b in BUCKETS if b in s.column_names],
        "filled": [c for c in FILLED if c in s.column_names],
        "columns": [{"name": c.name, "source": c.source, "kind": c.kind} for c in s.columns],
    }


def config() -> dict:
    stages = [{**asdict(s), "flags": s.flags} for s in STAGES]
    return {"stages": stages, "stores": {s.name: _store(s) for s in STORES}}


def adapter_source() -> str:
    text = files("etl.cutover").joinpath("adapter.js").read_text(encoding="utf-8")
    return text.replace(PLACEHOLDER, json.dumps(config(), ensure_ascii=False))


@dataclass(frozen=True)
class AdapterFile:
    path: str
    bytes: int

    def __str__(self) -> str:
        return f"wrote the cutover adapter to {self.path} ({self.bytes:,} bytes): include it with a <script> tag"


def write_adapter(path: Path) -> AdapterFile:
    text = adapter_source()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return AdapterFile(str(path), len(text.encode("utf-8")))
