"""Steps 16-18, finalization: the upload sessions marked completed with their rows' counts, the
rollback when the post-cutover monitor saw a breach, and the run's evidence report."""

from __future__ import annotations

from dataclasses import dataclass

from ..core.errors import PlaybookError
from ..core.result import Result
from .context import Context


@dataclass(frozen=True)
class FinalizeResult(Result):
    sessions: int  # staged sessions rows carry
    updated: int  # set to completed with their rows' counts now

    def __str__(self) -> str:
        return (f"upload sessions finalized: {self.sessions:,} carried by rows, all completed with their rows' counts"
                + (f" ({self.updated:,} updated now)" if self.updated else ""))


def finalize_sessions(ctx: Context) -> FinalizeResult:
    """The seed's "mark all upload sessions as completed": every migrated session that rows carry is
    completed, with record and success counts equal to the rows that carry it in MySQL now."""
    from ..stage.sessions import carried_counts_sql

    sql = (f"SELECT s.id, c.n FROM upload_sessions s JOIN (SELECT upload_session_id AS id, SUM(n) AS n FROM "
           f"({carried_counts_sql()}) x GROUP BY upload_session_id) c ON c.id = s.id "
           "WHERE s.status <> 'completed' OR s.record_count <> c.n OR s.success_count <> c.n "
           "OR s.record_count IS NULL OR s.success_count IS NULL")
    conn = ctx.target().connect(autocommit=False)
    try:
        with conn.cursor() as cur:
            cur.execute(f"SELECT COUNT(DISTINCT upload_session_id) FROM ({carried_counts_sql()}) x")
            carried = int(cur.fetchone()[0])
            cur.execute(sql + " FOR UPDATE")
            stale = cur.fetchall()
            cur.executemany("UPDATE upload_sessions SET status = 'completed', record_count = %s, success_count = %s "
                            "WHERE id = %s", [(n, n, i) for i, n in stale])
        conn.commit()
    finally:
        conn.close()
    return FinalizeResult(carried, len(stale))


@dataclass(frozen=True)
class RollbackResult(Result):
    needed: bool
    reason: str
    change: object = None  # the FlagChange

    def __str__(self) -> str:
        return (f"rolled back to IndexedDB: {self.reason}\n{self.change}" if self.needed
                else f"rollback not needed: {self.reason}")


def rollback(ctx: Context) -> RollbackResult:
    if not ctx.breaches:
        return RollbackResult(False, f"the post-cutover monitor saw no breach; the flags are at {ctx.stage_now()}")
    from ..cutover.flags import rollback as roll

    reason = "post-cutover monitor breach: " + "; ".join(dict.fromkeys(ctx.breaches))
    change = roll(ctx.target(), reason=reason[:1000], runtime_dir=ctx.settings.runtime_dir)
    ctx.echo(RollbackResult(True, reason, change))
    raise PlaybookError(f"rolled back to IndexedDB after the cutover: {reason}")


def report(ctx: Context):
    """The run's evidence report (RUNTIME_DIR/runs/<id>/report.html), from its record and what the
    database and the reports hold; the runner writes it again when the run ends, with the last step."""
    return write_evidence(ctx)


@dataclass(frozen=True)
class ReportWritten(Result):
    path: str

    def __str__(self) -> str:
        return f"evidence report: {self.path} (etl report opens it)"


def write_evidence(ctx: Context) -> ReportWritten:
    from ..report.evidence import write_report
    from ..report.evidence_data import collect_evidence

    from ..core.runs import read_run

    try:
        target = ctx.target()
    except Exception:  # noqa: BLE001 - the report says what it could not read
        target = None
    ctx.run.save()
    run = read_run(ctx.run.dir)  # as recorded: step results as JSON, which the report reads
    return ReportWritten(str(write_report(run, collect_evidence(target, ctx.settings, run))))

