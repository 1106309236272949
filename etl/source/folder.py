"""The export folder contract as an object: opened once, its summary parsed once, passed along.

`export-summary.json` names every store's files (in order, with their format, where a cut part's
records are numbered and each file's fingerprint). The transform, the query views and the merge
read an export through an `ExportFolder` instead of re-reading the summary per question; the
path-taking functions of etl/source/export.py open one and call through.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from types import MappingProxyType
from typing import Mapping

from ..core.stores import Store
from .export import SUMMARY, check_fingerprints, export_files, read_summary, record_origins


@dataclass(frozen=True)
class ExportFolder:
    dir: Path
    summary: Mapping = field(repr=False, compare=False)  # the parsed export-summary.json (read-only view)

    @classmethod
    def open(cls, export_dir: Path | ExportFolder) -> ExportFolder:
        """The complete export at `export_dir` (ExportError when it has no summary); an ExportFolder is returned as is."""
        if isinstance(export_dir, ExportFolder):
            return export_dir
        return cls(Path(export_dir), MappingProxyType(read_summary(export_dir)))

    @staticmethod
    def present(export_dir: Path) -> bool:
        return (Path(export_dir) / SUMMARY).is_file()

    def files(self, store: str | Store) -> list[tuple[Path, str]]:
        """(path, DuckDB read_json format) of each file of a store, in order; [] for a missing store."""
        return export_files(self.dir, store, summary=self.summary)

    def origins(self, store: str | Store) -> dict[str, tuple[str, int]]:
        return record_origins(self.dir, store, summary=self.summary)

    def check_fingerprints(self) -> None:
        """ExportError naming the first file that no longer matches the summary."""
        check_fingerprints(self.dir, summary=self.summary)

    @property
    def counts(self) -> dict[str, int]:
        return dict(self.summary.get("counts", {}))

    @property
    def exported_at(self) -> datetime | None:
        """When the export was made (its own exportedAt, else when `etl export` normalized it), naive UTC."""
        for key in ("exportedAt", "normalizedAt"):
            try:
                t = datetime.fromisoformat(str(self.summary.get(key)).replace("Z", "+00:00"))
            except ValueError:
                continue
            return t.astimezone(timezone.utc).replace(tzinfo=None) if t.tzinfo else t
        return None
