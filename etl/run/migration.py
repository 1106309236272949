"""Steps 4-7, migration: the export (a generated sample when no --from), the transform, the check
of the upload sessions it rebuilt, and the load; with what each leaves behind, re-checked on --resume."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

from ..core.errors import PlaybookError
from ..core.result import Result
from .context import Context, Parts


def export(ctx: Context):
    from ..source.export import export_or_reuse

    parts = []
    source = ctx.source
    if source is None:
        from ..source.sample import sample_or_reuse

        source = ctx.settings.runtime_dir / "sample-export"
        parts.append(sample_or_reuse(source, ctx.sample_tickets))
    parts.append(export_or_reuse(Path(source), ctx.settings.export_dir, note=ctx.note))
    return Parts(tuple(parts)) if len(parts) > 1 else parts[0]


def export_product(ctx: Context) -> str | None:
    summary = Path(ctx.settings.export_dir) / "export-summary.json"
    if not summary.is_file():
        return None
    from ..source.folder import ExportFolder

    ExportFolder.open(ctx.settings.export_dir).check_fingerprints()  # raises when a file changed
    return hashlib.sha256(summary.read_bytes()).hexdigest()[:20]


def transform(ctx: Context):
    from ..stage.transform import transform as run

    return run(ctx.settings.export_dir, ctx.settings.stage_dir, note=ctx.note)


def stage_product(ctx: Context) -> str | None:
    from ..stage.folder import stage_identity

    return stage_identity(ctx.settings.stage_dir)


@dataclass(frozen=True)
class SessionsResult(Result):
    sessions: int
    reconstructed: int  # rebuilt from the rows that carry their id (no session record in the browser)
    carried: int  # sessions at least one staged row carries
    rows: int  # staged rows carrying a session id
    unknown: tuple[str, ...]  # ids rows carry that no session has (the first 10)

    @property
    def ok(self) -> bool:
        return not self.unknown

    def __str__(self) -> str:
        text = (f"upload sessions: {self.sessions:,} staged, {self.reconstructed:,} reconstructed from their rows; "
                f"{self.rows:,} rows carry {self.carried:,} of them")
        return text + (f"; rows name sessions that do not exist: {', '.join(self.unknown)}" if self.unknown else "")


def upload_sessions(ctx: Context) -> SessionsResult:
    """The transform rebuilt the session history (etl.stage.sessions); check it: every session id a
    staged row carries is a staged session, and count what was reconstructed."""
    import polars as pl

    from ..core.stores import UPLOAD_SESSIONS
    from ..stage.folder import StageFolder
    from ..stage.sessions import SESSION_COLUMN, SESSION_STORES, carried_counts

    stage = StageFolder.open(ctx.settings.stage_dir)
    sessions = stage.read(UPLOAD_SESSIONS) if stage.has(UPLOAD_SESSIONS) else pl.DataFrame({"id": [], "reconstructed": []})
    counts = carried_counts(stage.read(s, lazy=True) for s in SESSION_STORES if stage.has(s))
    unknown = counts.filter(~pl.col(SESSION_COLUMN).is_in(sessions["id"].implode()))[SESSION_COLUMN].sort().head(10)
    rebuilt = int(sessions["reconstructed"].cast(pl.Int64).fill_null(0).sum()) if "reconstructed" in sessions.columns else 0
    result = SessionsResult(sessions.height, rebuilt, counts.height, int(counts["rows"].sum() or 0), tuple(unknown))
    if not result.ok:
        raise PlaybookError(str(result))
    return result


def load(ctx: Context):
    from ..mysql.load import load as run

    now = ctx.stage_now()
    if now not in (None, "off"):
        raise PlaybookError(f"the cutover is at stage {now}: the app writes to this database, so the export is not "
                            "loaded over it (roll back first: etl flags rollback)")
    from .validation import warm_up

    warm_up(ctx)  # the load's time is mostly the server's: Great Expectations is imported beside it
    return run(ctx.settings.stage_dir, ctx.target(), chunk_size=ctx.settings.chunk_size, progress=ctx.progress)


def load_product(ctx: Context) -> str | None:
    """Rows per table in MySQL: a table emptied or changed in size since the load is seen."""
    from ..api.bench import BATCH_PREFIX
    from ..core.stores import STORES

    with ctx.target().connect() as conn, conn.cursor() as cur:
        counts = {}
        for s in STORES:
            # not the rows a benchmark killed before its cleanup left (steps 10, 13 delete them first)
            bench = " WHERE batch_id IS NULL OR batch_id NOT LIKE %s" if s.table == "tickets" else ""
            cur.execute(f"SELECT COUNT(*) FROM `{s.table}`{bench}", (BATCH_PREFIX + "%",) if bench else None)
            counts[s.table] = cur.fetchone()[0]
    return json.dumps(counts, sort_keys=True)


