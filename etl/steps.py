"""The seed's playbook as 18 named steps in five phases, each a function of a run's `Context`.

    preparation    1 preflight  2 schema  3 api-smoke
    migration      4 export  5 transform  6 upload-sessions  7 load
    validation     8 parity  9 aggregations  10 benchmark
    cutover        11 dual-read  12 dual-write  13 performance  14 cutover  15 monitor
    finalization   16 finalize-sessions  17 rollback  18 report

The seed flips `dataSource` to dual-read (11) before `writeMode` to dual-write (12). We keep its
names but move the flags through the guarded stages of etl.cutover.stages, where MySQL receives
the app's writes before any browser reads it (a read of a MySQL that misses writes is stale):
step 11 enters dual-write then shadow (browsers compare MySQL's answers; the step checks the API
path itself, etl.api.verify), step 12 enters live (the seed's dual-read with dual-write: MySQL
primary, IndexedDB fallback, both written), 14 goes on to rampdown and complete (MySQL only).
Every forward move passes its guards (parity, expectations, a fresh benchmark and monitor report,
and from shadow on the browsers' consistency reports). A cutover step finds the flags where a
killed run left them and goes on from there, so running it again changes nothing twice.

A breach in the post-cutover monitor (15) does not stop the run there: it goes to step 17, which
rolls the flags back to IndexedDB and ends the run failed with the breach as the reason.
The runner (etl.runner) selects, resumes and records the steps.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import time
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from .core.config import Settings
from .core.errors import PlaybookError, ServerError
from .core.result import Result

PHASES = ("preparation", "migration", "validation", "cutover", "finalization")
MIN_PACKET = 4 * 1024 * 1024  # the bulk writer sizes its INSERTs to the packet; below this a large record cannot pass
DISK_FACTOR = 3  # stage Parquet + the load's temporary files + slack, per byte of export
SAMPLE_BYTES_PER_TICKET = 2_000  # a generated sample's export size per ticket, other stores included
# Privileges the schema, the load, the triggers and the flags need on the target database.
PRIVILEGES = ("SELECT", "INSERT", "UPDATE", "DELETE", "CREATE", "DROP", "ALTER", "INDEX", "CREATE VIEW", "TRIGGER")


@dataclass(frozen=True)
class PlaybookOptions:
    """How a playbook run measures and decides; the CLI's options, with defaults for a quick run."""

    bench_seconds: float = 5.0
    bench_rate: float = 20.0
    monitor_samples: int = 5  # post-cutover monitor (step 15)
    monitor_interval: float = 2.0
    threshold_error: float = 0.01
    threshold_latency_p95: float = 2000.0  # ms, as `etl monitor`'s default
    per_bucket: int = 1  # records read back through the API per parity bucket (steps 11, 12): every bucket is seen
    min_compared: int = 1000  # records compared in a stage before the next move (or every record of a smaller export)
    restart: bool = False  # a cutover already begun is rolled back before migrating again


@dataclass
class Context:
    """What the steps of one run share: settings, the target resolved once, the API started once."""

    settings: Settings
    options: PlaybookOptions
    source: Path | None
    sample_tickets: int
    echo: Callable[[object], None]
    stack: ExitStack
    progress: object = None  # the load's progress callback (table, done, total), with step() and note(), or None
    resuming: bool = False
    run: object = None  # the RunRecord
    breaches: list = field(default_factory=list)  # what the post-cutover monitor saw
    server_uptime: float | None = None  # seconds, at the preflight (a restart since shows as less)
    started: float = field(default_factory=time.monotonic)
    _target: object = None
    _api: tuple[str, str] | None = None

    def target(self):
        if self._target is None:
            from .mysql.db import resolve_target

            self._target = resolve_target(self.settings, start=True)
        return self._target

    def api(self) -> tuple[str, str]:
        """(base URL, write token): BASE_URL with API_TOKEN, else `etl serve` started for this run."""
        if self._api is None:
            if self.settings.base_url_given:
                if not self.settings.api_token:
                    raise PlaybookError("BASE_URL is set but API_TOKEN is not: the playbook's API steps need a write token")
                self._api = (self.settings.base_url.rstrip("/"), self.settings.api_token)
            else:
                from .api.serve import background

                self._api = self.stack.enter_context(background(self.settings, self.target()))
                self.echo(f"    etl serve started for this run at {self._api[0]} (stopped when the run ends)")
        return self._api

    def note(self, text: str) -> None:
        """Live news of the running step, on the terminal's step line (nothing when piped or -q)."""
        if hasattr(self.progress, "note"):
            self.progress.note(text)

    def monitor_thresholds(self):
        """`etl monitor`'s thresholds, with the uptime floor lowered to "not restarted since the preflight":
        a server the run itself started is young, not restarted."""
        from .api.monitor import Thresholds

        t = Thresholds(error_rate=self.options.threshold_error, latency_p95_ms=self.options.threshold_latency_p95)
        if self.server_uptime is not None:
            since = self.server_uptime + time.monotonic() - self.started - 5
            return Thresholds(**{**t.__dict__, "min_uptime_s": max(0.0, min(t.min_uptime_s, since))})
        return t


@dataclass(frozen=True)
class Step:
    n: int
    slug: str
    phase: str
    title: str
    run: Callable[[Context], object]
    product: Callable[[Context], str | None] | None = None  # what it leaves behind, to re-check on --resume


@dataclass(frozen=True)
class Parts(Result):
    """A step that made several calls: their results, in order."""

    parts: tuple

    @property
    def ok(self) -> bool:
        return all(getattr(p, "ok", True) for p in self.parts)

    def __str__(self) -> str:
        return "\n".join(str(p) for p in self.parts)


# ---------------------------------------------------------------- 1-3 preparation


@dataclass(frozen=True)
class Check:
    name: str
    ok: bool
    detail: str

    def __str__(self) -> str:
        return f"  {'ok' if self.ok else 'MISSING':<8} {self.name:<18} {self.detail}"


@dataclass(frozen=True)
class PreflightResult(Result):
    checks: tuple[Check, ...]
    target: dict | None = None  # MySQLTarget.public(): the password masked

    @property
    def ok(self) -> bool:
        return all(c.ok for c in self.checks)

    def __str__(self) -> str:
        return "\n".join(["pre-flight checks:", *map(str, self.checks)])


def _grants_cover(grants: list[str], database: str) -> tuple[set[str], bool]:
    """(privileges granted on the database or globally, whether the grants could be read at all)."""
    import re

    have: set[str] = set()
    for g in grants:
        m = re.match(r"GRANT (.+?) ON (\S+) TO ", g)
        if not m:
            continue
        scope = m.group(2).replace("`", "").replace("\\_", "_")
        if scope in ("*.*", f"{database}.*"):
            privs = {p.strip().upper() for p in m.group(1).split(",")}
            have |= set(PRIVILEGES) if "ALL PRIVILEGES" in privs or "ALL" in privs else privs
    return have, bool(grants)


def _server_checks(ctx: Context) -> list[Check]:
    from .mysql.db import server_facts

    try:
        target = ctx.target()
        with target.connect(database=False) as conn, conn.cursor() as cur:
            version, infile, packet = server_facts(cur)
            cur.execute("SHOW GLOBAL STATUS LIKE 'Uptime'")
            ctx.server_uptime = float(cur.fetchone()[1])
            cur.execute("SHOW GRANTS FOR CURRENT_USER()")
            grants = [r[0] for r in cur.fetchall()]
    except ServerError as e:
        return [Check("mysql server", False, str(e).removeprefix("[db] "))]
    checks = [Check("mysql server", True, f"{target} answers, version {version}"),
              Check("local_infile", infile, "ON" if infile else
                    "OFF on the server: the bulk load needs LOAD DATA LOCAL (SET GLOBAL local_infile = 1)"),
              Check("max_allowed_packet", packet >= MIN_PACKET, f"{packet / 1048576:.0f} MB"
                    + ("" if packet >= MIN_PACKET else f", below the {MIN_PACKET // 1048576} MB a large record needs"))]
    have, readable = _grants_cover(grants, target.database)
    missing = [p for p in PRIVILEGES if p not in have]
    checks.append(Check("privileges", not missing or not readable,
                        f"{target.user} lacks {', '.join(missing)} on {target.database}" if missing and readable
                        else "every privilege the run needs" if readable else "could not be read (granted through a role?)"))
    return checks


def _cutover_check(ctx: Context) -> Check | None:
    """A new run may not reload a database the app already writes to (the flags past `off`)."""
    from .cutover.flags import read_state

    try:
        state = read_state(ctx.target())
    except Exception:  # noqa: BLE001 - no schema yet: no cutover began
        return None
    if state.stage in (None, "off") or ctx.resuming:
        return None
    if ctx.options.restart:
        return Check("cutover", True, f"at stage {state.stage}: rolled back first (--restart)")
    if not ctx.settings.mysql_uri and ctx.source is None:  # `make migrate` again: the tool made all of it
        return Check("cutover", True, f"at stage {state.stage}: rolled back first (the project-local server and "
                     "the generated sample: no app writes there)")
    return Check("cutover", False, f"at stage {state.stage}: the app already writes to this database, and a new migration "
                 "would overwrite what users wrote since. Continue that run (etl migrate --resume), or start over with "
                 "--restart (rolls the flags back to IndexedDB first, recorded)")


def _source_bytes(path: Path) -> int:
    if path.is_file():
        return path.stat().st_size
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def preflight(ctx: Context) -> PreflightResult:
    """Every prerequisite, all named at once when any is missing."""
    s = ctx.settings
    checks = _server_checks(ctx)
    if ctx.source is not None:
        src = Path(ctx.source)
        present = src.exists()
        checks.append(Check("export", present, f"{src}" + ("" if present else ": no such file or folder (--from)")))
        need = DISK_FACTOR * _source_bytes(src) if present else 0
    else:
        checks.append(Check("export", True, f"a generated sample of {ctx.sample_tickets:,} tickets"))
        need = DISK_FACTOR * SAMPLE_BYTES_PER_TICKET * ctx.sample_tickets
    where = next(p for p in (Path(s.stage_dir).resolve(), *Path(s.stage_dir).resolve().parents) if p.exists())
    free = shutil.disk_usage(where).free
    checks.append(Check("disk", free >= need, f"{free / 1e9:.1f} GB free at {where}, about {need / 1e9:.2f} GB needed"))
    if s.base_url_given:
        import httpx

        try:
            code = httpx.get(s.base_url.rstrip("/") + "/health", timeout=10).status_code
            checks.append(Check("api", code < 500, f"{s.base_url} /health answered {code}"))
        except httpx.HTTPError as e:
            checks.append(Check("api", False, f"{s.base_url} is not reachable: {type(e).__name__}"))
    if checks[0].ok:
        cut = _cutover_check(ctx)
        if cut is not None:
            checks.append(cut)
    result = PreflightResult(tuple(checks), ctx.target().public() if checks[0].ok else None)
    if not result.ok:
        bad = [c for c in checks if not c.ok]
        raise PlaybookError(f"pre-flight: {len(bad)} prerequisite(s) missing: "
                            + "; ".join(f"{c.name}: {c.detail}" for c in bad))
    again = next((c for c in checks if c.name == "cutover"), None)  # allowed: --restart, or the embedded default
    if again is not None:
        from .cutover.flags import rollback

        reason = f"etl migrate starts over: {again.detail}"
        ctx.echo(rollback(ctx.target(), reason=reason, runtime_dir=s.runtime_dir))
    return result


def schema(ctx: Context):
    from .mysql.db import apply_schema

    return apply_schema(ctx.target())


def api_smoke(ctx: Context):
    from .api.smoke import smoke_test

    result = smoke_test(*ctx.api())
    if not result.ok:
        raise PlaybookError(f"API smoke test failed:\n{result}")
    return result


# ---------------------------------------------------------------- 4-7 migration


def export(ctx: Context):
    from .source.export import export_or_reuse

    parts = []
    source = ctx.source
    if source is None:
        from .source.sample import sample_or_reuse

        source = ctx.settings.runtime_dir / "sample-export"
        parts.append(sample_or_reuse(source, ctx.sample_tickets))
    parts.append(export_or_reuse(Path(source), ctx.settings.export_dir, note=ctx.note))
    return Parts(tuple(parts)) if len(parts) > 1 else parts[0]


def export_product(ctx: Context) -> str | None:
    summary = Path(ctx.settings.export_dir) / "export-summary.json"
    if not summary.is_file():
        return None
    from .source.folder import ExportFolder

    ExportFolder.open(ctx.settings.export_dir).check_fingerprints()  # raises when a file changed
    return hashlib.sha256(summary.read_bytes()).hexdigest()[:20]


def transform(ctx: Context):
    from .stage.transform import transform as run

    return run(ctx.settings.export_dir, ctx.settings.stage_dir, note=ctx.note)


def stage_product(ctx: Context) -> str | None:
    from .stage.folder import stage_identity

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

    from .core.stores import UPLOAD_SESSIONS
    from .stage.folder import StageFolder
    from .stage.sessions import SESSION_COLUMN, SESSION_STORES, carried_counts

    stage = StageFolder.open(ctx.settings.stage_dir)
    sessions = stage.read(UPLOAD_SESSIONS) if stage.has(UPLOAD_SESSIONS) else pl.DataFrame({"id": [], "reconstructed": []})
    counts = carried_counts(stage.read(s, lazy=True) for s in SESSION_STORES if stage.has(s))
    unknown = counts.filter(~pl.col(SESSION_COLUMN).is_in(sessions["id"].implode()))[SESSION_COLUMN].sort().head(10)
    rebuilt = int(sessions["reconstructed"].cast(pl.Int64).fill_null(0).sum()) if "reconstructed" in sessions.columns else 0
    result = SessionsResult(sessions.height, rebuilt, counts.height, int(counts["rows"].sum() or 0), tuple(unknown))
    if not result.ok:
        raise PlaybookError(str(result))
    return result


def _stage_now(ctx: Context) -> str | None:
    from .cutover.flags import read_state

    return read_state(ctx.target()).stage


def load(ctx: Context):
    from .mysql.load import load as run

    now = _stage_now(ctx)
    if now not in (None, "off"):
        raise PlaybookError(f"the cutover is at stage {now}: the app writes to this database, so the export is not "
                            "loaded over it (roll back first: etl flags rollback)")
    return run(ctx.settings.stage_dir, ctx.target(), chunk_size=ctx.settings.chunk_size, progress=ctx.progress)


def load_product(ctx: Context) -> str | None:
    """Rows per table in MySQL: a table emptied or changed in size since the load is seen."""
    from .core.stores import STORES

    with ctx.target().connect() as conn, conn.cursor() as cur:
        counts = {}
        for s in STORES:
            cur.execute(f"SELECT COUNT(*) FROM `{s.table}`")
            counts[s.table] = cur.fetchone()[0]
    return json.dumps(counts, sort_keys=True)


# ---------------------------------------------------------------- 8-10 validation


def parity(ctx: Context):
    from .report.parity import parity_with_report

    result = parity_with_report(ctx.settings.stage_dir, ctx.target(), runtime_dir=ctx.settings.runtime_dir, note=ctx.note)
    result.raise_for_mismatch()
    return result


def aggregations(ctx: Context):
    from .check.suites import gx_root
    from .check.validate import check
    from .report.datadocs import validate

    result = validate(ctx.target(), ctx.settings.stage_dir, root=gx_root(ctx.settings.root), note=ctx.note)
    return check(result, echo=lambda _: None)  # shown by the runner, as every step's result


def _bench_and_health(ctx: Context, label: str):
    """A benchmark of the API and two monitor samples: the fresh reports the cutover's guards read."""
    from .api.bench import BenchThresholds, bench
    from .api.monitor import monitor

    url, token = ctx.api()
    with ctx.target().connect() as conn, conn.cursor() as cur:  # rows of a benchmark killed before its cleanup
        cur.execute("DELETE FROM tickets WHERE batch_id LIKE 'test-bench-%%'")
    # No memory threshold: the seed's 100 MB is the bench client's own (`etl bench` run alone); here the
    # client shares a process with the stage's frames.
    b = bench(url, token, ctx.settings.runtime_dir, rate=ctx.options.bench_rate, duration=ctx.options.bench_seconds,
              chunk_size=ctx.settings.chunk_size, thresholds=BenchThresholds(memory_mb=float("inf")))
    if not b.ok:
        raise PlaybookError(f"{label}: the benchmark breached its thresholds: {'; '.join(b.breaches)}")
    m = monitor(url, token, ctx.target(), ctx.settings.runtime_dir, thresholds=ctx.monitor_thresholds(), count=2, interval=1.0)
    if not m.ok:
        raise PlaybookError(f"{label}: the API or the database is not healthy: {m}")
    return Parts((b, m))


def benchmark(ctx: Context):
    return _bench_and_health(ctx, "performance benchmark")


# ---------------------------------------------------------------- 11-15 cutover


def _move(ctx: Context, name: str):
    """Move the flags forward to stage `name` unless they are there already (or past it)."""
    from .cutover import Thresholds, move_to
    from .cutover.stages import stage

    now = _stage_now(ctx)
    if now is not None and stage(now).index >= stage(name).index:
        return None
    change = move_to(ctx.settings, ctx.target(), name, reason=f"etl migrate step: enter {name}",
                     thresholds=Thresholds(min_compared=_need(ctx)))
    if change.refused:
        raise PlaybookError(f"the move to {name} was refused: {change.message}")
    ctx.echo(f"    flags: {change.from_stage} -> {change.to_stage}")
    return change


def _comparable(ctx: Context) -> int:
    """Records the API can be compared on: the export's records the transform staged (not the
    sessions it reconstructed, which no browser holds)."""
    from .stage.folder import stage_summary

    summary = stage_summary(ctx.settings.stage_dir)
    staged = sum(int(v.get("staged", 0)) for v in (summary.get("counts") or {}).values() if isinstance(v, dict))
    return staged - int(summary.get("reconstructed_sessions") or 0)


def _need(ctx: Context) -> int:
    """Records the browsers (and this run) must have compared in a stage before the next move: the
    options' minimum, or every record of a smaller export."""
    return min(ctx.options.min_compared, _comparable(ctx))


ALL = 10**9  # records per bucket: every one


def _verify(ctx: Context, stage_name: str):
    """The API's answers for a sample of every bucket against the export, reported as read checks;
    enough of them for the consistency guard (every record, when the export is small)."""
    from .api.verify import verify_reads

    url, token = ctx.api()
    need = _need(ctx)
    per_bucket = ctx.options.per_bucket if _comparable(ctx) > need else ALL  # a small export: every record
    stage = ctx.settings.stage_dir  # upload sessions are expected as the load finalized them
    result = verify_reads(url, token, ctx.settings.export_dir, stage_name=stage_name, per_bucket=per_bucket, stage_dir=stage)
    if sum(s.compared for s in result.stores) < need:  # few buckets: a second pass over every record
        result = verify_reads(url, token, ctx.settings.export_dir, stage_name=stage_name, per_bucket=ALL, stage_dir=stage)
    if not result.ok:
        raise PlaybookError(f"the API's answers differ from the export:\n{result}")
    return result


def dual_read(ctx: Context):
    moves = [_move(ctx, "dual-write"), _move(ctx, "shadow")]
    verified = _verify(ctx, "shadow")
    return Parts((*[m for m in moves if m], verified))


def dual_write(ctx: Context):
    moved = _move(ctx, "live")
    verified = _verify(ctx, "live")
    return Parts((*([moved] if moved else []), verified))


def performance(ctx: Context):
    return _bench_and_health(ctx, "performance test")


def cutover(ctx: Context):
    moves = [_move(ctx, "rampdown"), _move(ctx, "complete")]
    return Parts(tuple(m for m in moves if m)) if any(moves) else f"the flags are at {_stage_now(ctx)} already"


def post_cutover_monitor(ctx: Context):
    from .api.monitor import monitor

    url, token = ctx.api()
    m = monitor(url, token, ctx.target(), ctx.settings.runtime_dir, thresholds=ctx.monitor_thresholds(),
                count=ctx.options.monitor_samples, interval=ctx.options.monitor_interval,
                on_sample=lambda s: ctx.note(f"monitor: sample {s['sample']} of {ctx.options.monitor_samples}, "
                                             f"{len(s['breaches'])} breach(es)"))
    if not m.ok:
        ctx.breaches = [str(b) for _, b in m.breaches]
        raise MonitorBreach(f"the post-cutover monitor saw {len(m.breaches)} breach(es): "
                            + "; ".join(dict.fromkeys(ctx.breaches)), m)
    return m


class MonitorBreach(PlaybookError):
    """Step 15 failed: the runner goes on to step 17, which rolls back."""

    def __init__(self, message: str, result):
        super().__init__(message)
        self.result = result


# ---------------------------------------------------------------- 16-18 finalization


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
    from .stage.sessions import carried_counts_sql

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
        return RollbackResult(False, f"the post-cutover monitor saw no breach; the flags are at {_stage_now(ctx)}")
    from .cutover.flags import rollback as roll

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
    from .report.evidence import write_report
    from .report.evidence_data import collect_evidence

    from .core.runs import read_run

    try:
        target = ctx.target()
    except Exception:  # noqa: BLE001 - the report says what it could not read
        target = None
    ctx.run.save()
    run = read_run(ctx.run.dir)  # as recorded: step results as JSON, which the report reads
    return ReportWritten(str(write_report(run, collect_evidence(target, ctx.settings, run))))


STEPS: tuple[Step, ...] = (
    Step(1, "preflight", "preparation", "pre-flight checks", preflight),
    Step(2, "schema", "preparation", "apply schema", schema),
    Step(3, "api-smoke", "preparation", "API smoke test", api_smoke),
    Step(4, "export", "migration", "export IndexedDB", export, export_product),
    Step(5, "transform", "migration", "transform", transform, stage_product),
    Step(6, "upload-sessions", "migration", "reconstruct upload sessions", upload_sessions),
    Step(7, "load", "migration", "bulk import in chunks", load, load_product),
    Step(8, "parity", "validation", "validate parity", parity),
    Step(9, "aggregations", "validation", "validate aggregations", aggregations),
    Step(10, "benchmark", "validation", "performance benchmark", benchmark),
    Step(11, "dual-read", "cutover", "switch dual read", dual_read),
    Step(12, "dual-write", "cutover", "switch dual write", dual_write),
    Step(13, "performance", "cutover", "performance test", performance),
    Step(14, "cutover", "cutover", "cutover to MySQL only", cutover),
    Step(15, "monitor", "cutover", "post-cutover monitor", post_cutover_monitor),
    Step(16, "finalize-sessions", "finalization", "finalize upload sessions", finalize_sessions),
    Step(17, "rollback", "finalization", "rollback if needed", rollback),
    Step(18, "report", "finalization", "evidence report", report),
)
