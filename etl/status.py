"""`etl status` and `etl runs`: where the migration stands, read from what the stages left behind.

In the spirit of `dbt debug` and `dlt pipeline info`: the target and whether it connects, the export
and the stage (when, how many), the rejects, the load ledger's chunks by state, the cutover's flag
stage, the last run and the last parity and validation verdicts with their reports. Each part is
read on its own: what cannot be read (no server, no export yet, an old schema) is shown as such,
with the reason, never as a traceback. Nothing here writes.

Part of the application layer (beside playbook.py): it reads every wing.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path

from .core.config import Settings, mask_uri
from .core.result import Result
from .core.runs import REPORT, RunRecord, list_runs

LEGACY_VALIDATE = ("validate + data docs",)


def _first_line(e: BaseException) -> str:
    return mask_uri((str(e).strip().splitlines() or [type(e).__name__])[0][:300] or type(e).__name__)


def _mtime(path: Path) -> str | None:
    try:
        return datetime.fromtimestamp(Path(path).stat().st_mtime, timezone.utc).isoformat(timespec="seconds")
    except OSError:
        return None


def _parse(text: str | None) -> datetime | None:
    from .report.evidence_data import utc_time

    t = utc_time(text)
    return t.replace(tzinfo=timezone.utc) if t else None


def _ago(text: str | None) -> str:
    t = _parse(text)
    if t is None:
        return ""
    s = (datetime.now(timezone.utc) - t).total_seconds()
    for unit, size in (("d", 86400), ("h", 3600), ("min", 60)):
        if s >= size:
            return f" ({s / size:.0f} {unit} ago)"
    return f" ({max(s, 0):.0f} s ago)"


# ---------------------------------------------------------------- runs


@dataclass(frozen=True)
class RunSummary(Result):
    id: str
    status: str
    started_at: str
    finished_at: str | None
    seconds: float | None
    steps_ok: int
    steps_total: int
    steps_skipped: int  # not needed in this run (e.g. no rollback), or not asked for (--only, --until)
    stopped_at: str | None  # the step where it failed or was interrupted (killed between two: the last one done)
    stopped: str | None  # "at step X", or "after step X" when killed between two steps
    error: str | None
    report: str | None  # report.html, when written
    resumed_from: str | None

    @property
    def ok(self) -> bool:
        return self.status == "ok"

    def line(self) -> str:
        took = f"{self.seconds:8.1f} s" if self.seconds is not None else f"{'':>8}  "
        where = f"  stopped {self.stopped}" if self.stopped else ""
        skipped = f" ({self.steps_skipped} skipped)" if self.steps_skipped else ""
        return (f"{self.id:<20} {self.status:<11} {self.started_at[:19]:<19} {took} {self.steps_ok:>3}/{self.steps_total:<3}"
                f"{skipped}{where}")

    def __str__(self) -> str:
        text = self.line()
        if self.error:
            text += f"\n  error: {self.error}"
        return text + f"\n  report: {self.report or '(not written)'}"


def _step_end(step) -> datetime | None:
    t = _parse(step.started_at)
    return None if t is None else t + timedelta(seconds=step.seconds or 0)


def summarize(run: RunRecord) -> RunSummary:
    from .report.evidence import stop_point, stopped_where

    stopped = stop_point(run)
    where = stopped_where(run)
    start = _parse(run.started_at)
    end = _parse(run.finished_at) or max((e for e in (_step_end(s) for s in run.steps) if e), default=None)
    seconds = round((end - start).total_seconds(), 3) if start and end else None
    report = run.report_path if run.dir and run.report_path.is_file() else None
    return RunSummary(run.id, run.status, run.started_at, run.finished_at, seconds,
                      sum(s.status == "ok" for s in run.steps), len(run.steps), sum(s.status == "skipped" for s in run.steps),
                      where.split("step ", 1)[-1] if where and "step " in where else None, where,
                      stopped.error if stopped else None,
                      str(report) if report else None, run.resumed_from)


@dataclass(frozen=True)
class RunList(Result):
    runs_dir: str
    runs: tuple[RunSummary, ...]

    def __str__(self) -> str:
        if not self.runs:
            return f"no migration runs recorded in {self.runs_dir}"
        lines = [f"{'run':<20} {'status':<11} {'started (UTC)':<19} {'duration':>10} {'steps ok':>7}",
                 *(r.line() for r in self.runs)]
        reports = [r for r in self.runs if r.report]
        lines.append(f"{len(self.runs)} run(s) in {self.runs_dir}; reports: {len(reports)} (etl report RUN)")
        return "\n".join(lines)


def runs(settings: Settings, *, limit: int | None = None) -> RunList:
    found = list_runs(settings.runtime_dir)[: limit or None]
    return RunList(str(Path(settings.runtime_dir) / "runs"), tuple(summarize(r) for r in found))


# ---------------------------------------------------------------- status


def _target_part(settings: Settings):
    """(target or None, the part): which server, and whether it connects."""
    from .mysql.db import resolve_target, server_facts

    part: dict = {"uri": mask_uri(settings.mysql_uri) if settings.mysql_uri else None,
                  "from": "MYSQL_URI" if settings.mysql_uri else "the project-local server (etl db up)",
                  "connects": False}
    try:
        target = resolve_target(settings)
    except Exception as e:  # noqa: BLE001 - no local server, a URI that does not parse
        part["error"] = _first_line(e)
        return None, part
    part["uri"] = str(target)
    try:
        with target.connect(database=False, connect_timeout=5) as conn, conn.cursor() as cur:
            version, infile, packet = server_facts(cur)
            cur.execute("SELECT COUNT(*) FROM information_schema.SCHEMATA WHERE SCHEMA_NAME = %s", (target.database,))
            exists = bool(cur.fetchone()[0])
    except Exception as e:  # noqa: BLE001
        part["error"] = _first_line(e)
        return None, part
    part.update(connects=True, server_version=version, local_infile=infile, max_allowed_packet=packet,
                database_exists=exists)
    if not exists:
        part["note"] = f"the database {target.database} does not exist yet (etl schema apply, or etl migrate, creates it)"
        return None, part
    return target, part


def _export_part(settings: Settings) -> dict:
    from .source.folder import ExportFolder

    part: dict = {"dir": str(settings.export_dir), "present": ExportFolder.present(settings.export_dir)}
    if not part["present"]:
        part["error"] = "no export yet (etl export, or etl migrate)"
        return part
    try:
        ex = ExportFolder.open(settings.export_dir)
        part.update(exported_at=ex.exported_at.isoformat(timespec="seconds") + "Z" if ex.exported_at else None,
                    written_at=_mtime(Path(settings.export_dir) / "export-summary.json"),
                    counts=ex.counts, records=sum(ex.counts.values()))
    except Exception as e:  # noqa: BLE001
        part["error"] = _first_line(e)
    return part


def _stage_part(settings: Settings) -> dict:
    from .stage.folder import SUMMARY, StageFolder

    summary = Path(settings.stage_dir) / SUMMARY
    part: dict = {"dir": str(settings.stage_dir), "present": summary.is_file()}
    if not part["present"]:
        part["error"] = "no stage yet (etl transform, or etl migrate)"
        return part
    try:
        st = StageFolder.open(settings.stage_dir)
        counts = dict(st.summary.get("counts") or {})
        part.update(transformed_at=_mtime(summary),
                    counts={k: c.get("staged") for k, c in counts.items() if isinstance(c, dict)},
                    rejected={k: c.get("rejected") for k, c in counts.items() if isinstance(c, dict) and c.get("rejected")},
                    rejects=sum(int(c.get("rejected") or 0) for c in counts.values() if isinstance(c, dict)))
        part["records"] = sum(v or 0 for v in part["counts"].values())
    except Exception as e:  # noqa: BLE001
        part["error"] = _first_line(e)
    return part


def _no_database(target_part: dict) -> str:
    return target_part.get("note") or "no database to read from"


def _ledger_part(target, target_part: dict) -> dict:
    if target is None:
        return {"error": _no_database(target_part)}
    try:
        with target.connect(connect_timeout=5) as conn, conn.cursor() as cur:
            cur.execute("SELECT status, COUNT(*), COALESCE(SUM(rows_written), 0), MAX(COALESCE(finished_at, written_at, "
                        "planned_at)) FROM etl_load_ledger GROUP BY status ORDER BY status")
            rows = cur.fetchall()
    except Exception as e:  # noqa: BLE001 - no schema yet, an old one
        return {"error": _first_line(e)}
    last = max((r[3] for r in rows if r[3]), default=None)
    return {"by_state": {r[0]: int(r[1]) for r in rows}, "chunks": sum(int(r[1]) for r in rows),
            "rows_written": sum(int(r[2]) for r in rows), "last_at": last.isoformat(timespec="seconds") + "Z" if last else None}


def _flags_part(target, target_part: dict) -> dict:
    if target is None:
        return {"error": _no_database(target_part)}
    try:
        from .cutover import read_state

        state = read_state(target)
    except Exception as e:  # noqa: BLE001
        return {"error": _first_line(e)}
    return {"stage": state.stage, "flags": state.flags, "updated_at": state.updated_at,
            "rolled_back": bool(state.flags.get("rollbackMode"))}


def _run_part(found: list[RunRecord]) -> dict | None:
    if not found:
        return None
    run = found[0]
    s = summarize(run)
    return {**s.asdict(), "path": str(run.path), "steps": [{"n": x.n, "slug": x.slug, "name": x.name, "phase": x.phase,
                                                            "status": x.status, "seconds": round(x.seconds or 0, 3)}
                                                           for x in run.steps]}


def _parity_part(settings: Settings) -> dict | None:
    reports = sorted((Path(settings.runtime_dir) / "parity").glob("*/report.json"), key=lambda p: p.stat().st_mtime)
    if not reports:
        return None
    path = reports[-1]
    part: dict = {"report": str(path.with_name("report.html")), "at": _mtime(path)}
    try:
        body = json.loads(path.read_text(encoding="utf-8"))
        tables = body.get("tables") or {}
        part.update(ok=bool(body.get("ok")), tables=len(tables),
                    differing=sorted(t for t, v in tables.items() if not v.get("ok")))
    except Exception as e:  # noqa: BLE001
        part["error"] = _first_line(e)
    return part


def _validation_part(found: list[RunRecord]) -> dict | None:
    """The newest run's expectations step that ran: its verdict and the data docs."""
    for run in found:
        for s in reversed(run.steps):
            if (s.slug == "aggregations" or s.name in LEGACY_VALIDATE) and s.status in ("ok", "failed"):
                r = s.result if isinstance(s.result, dict) else {}
                checks = r.get("checks") or []
                return {"ok": s.status == "ok" and r.get("ok", True), "run": run.id, "at": s.started_at,
                        "checks": len(checks), "failed": sum(c.get("outcome") == "failed" for c in checks),
                        "docs": r.get("docs_index"), "error": s.error}
    return None


def _measure_part(read, runtime_dir) -> dict | None:
    """The newest bench report or monitor series: where, when, and whether it was within its thresholds."""
    from .report.evidence_data import guarded

    found = guarded(read, Path(runtime_dir), datetime.min)
    if found is None or "error" in found:
        return found
    breaches = found.get("breaches") or []
    ok = found["ok"] if "ok" in found else not breaches
    return {"path": found["path"], "at": found["written_at"], "ok": bool(ok), "breaches": len(breaches)}


@dataclass(frozen=True)
class StatusReport(Result):
    target: dict
    export: dict
    stage: dict
    ledger: dict
    flags: dict
    last_run: dict | None
    parity: dict | None
    validation: dict | None
    bench: dict | None
    monitor: dict | None
    runtime_dir: str

    @property
    def problems(self) -> tuple[str, ...]:
        out = []
        if not self.target.get("connects"):
            out.append(f"the target does not connect: {self.target.get('error')}")
        elif self.target.get("local_infile") is False:
            out.append("local_infile is OFF on the server: the bulk load cannot use LOAD DATA LOCAL")
        if not self.export.get("present"):
            out.append("no export")
        if self.last_run and self.last_run["status"] != "ok":
            out.append(f"the last run {self.last_run['status']}" + (f" {self.last_run['stopped']}"
                                                                   if self.last_run.get("stopped") else ""))
        if self.parity and self.parity.get("ok") is False:
            out.append("the last parity found differences")
        if self.validation and not self.validation.get("ok"):
            out.append("the last validation failed")
        return tuple(out)

    @property
    def ok(self) -> bool:
        return not self.problems

    def asdict(self) -> dict:
        return {**super().asdict(), "problems": list(self.problems)}

    def __str__(self) -> str:
        def unreadable(part: dict) -> str:
            return f"cannot be read: {part['error']}"

        t = self.target
        lines = ["target:", f"  {t.get('uri') or '(none)'}  (from {t['from']})"]
        if t.get("connects"):
            lines.append(f"  connects: yes, server {t['server_version']}, local_infile {'ON' if t['local_infile'] else 'OFF'}, "
                         f"max_allowed_packet {t['max_allowed_packet'] / 1048576:.0f} MB")
            if t.get("note"):
                lines.append(f"  {t['note']}")
        else:
            lines.append(f"  connects: NO ({t.get('error')})")
        for name, part, when in (("export", self.export, f"exported {self.export.get('exported_at') or '?'}, written "
                                  f"{self.export.get('written_at')}{_ago(self.export.get('written_at'))}"),
                                 ("stage", self.stage, f"transformed {self.stage.get('transformed_at')}"
                                  f"{_ago(self.stage.get('transformed_at'))}")):
            lines.append(f"{name}: {part['dir']}")
            if part.get("error"):
                lines.append(f"  {part['error'] if not part.get('present') else unreadable(part)}")
            else:
                lines += [f"  {when}", "  " + ", ".join(f"{k} {v:,}" for k, v in (part.get("counts") or {}).items()
                                                       if v is not None)]
        s = self.stage
        if not s.get("error"):
            lines.append(f"  rejects: {s.get('rejects', 0):,}" + (" (" + ", ".join(f"{k} {v:,}" for k, v in s["rejected"].items()) + ")"
                                                                  if s.get("rejected") else ""))
        g = self.ledger
        lines.append("load ledger: " + (unreadable(g) if g.get("error") else
                                        (", ".join(f"{k} {v:,}" for k, v in g["by_state"].items()) + f" chunks; {g['rows_written']:,} rows written"
                                         + (f", last {g['last_at']}" if g.get("last_at") else "")) if g.get("chunks") else "no chunks yet"))
        f = self.flags
        lines.append("flags: " + (unreadable(f) if f.get("error") else
                                  f"stage {f.get('stage') or '(none)'}" + (" (rolled back)" if f.get("rolled_back") else "")
                                  + (f", updated {f['updated_at']}" if f.get("updated_at") else "")))
        r = self.last_run
        if r is None:
            lines.append(f"last run: none recorded in {self.runtime_dir}/runs")
        else:
            lines.append(f"last run: {r['id']} {r['status']}, {r['steps_ok']}/{r['steps_total']} steps ok"
                         + (f" ({r['steps_skipped']} skipped)" if r.get("steps_skipped") else "")
                         + (f", stopped {r['stopped']}" if r.get("stopped") else ""))
            if r.get("error"):
                lines.append(f"  error: {r['error']}")
            for x in r["steps"]:
                number = f"[{x['n']}] " if x.get("n") else ""
                lines.append(f"  {x['status']:<11} {number + (x['slug'] or x['name']):<26} {x['seconds']:8.2f} s")
            lines.append(f"  report: {r['report'] or '(not written; etl report ' + r['id'] + ')'}")
        p = self.parity
        lines.append("last parity: " + ("none yet" if p is None else unreadable(p) if p.get("error") else
                                        ("OK" if p["ok"] else "MISMATCH in " + ", ".join(p["differing"]))
                                        + f" at {p['at']}, report {p['report']}"))
        v = self.validation
        lines.append("last validation: " + ("none recorded" if v is None else
                                            ("passed" if v["ok"] else f"FAILED ({v['failed']} of {v['checks']})")
                                            + f" in run {v['run']}" + (f", data docs {v['docs']}" if v.get("docs") else "")))
        for name, m in (("last bench", self.bench), ("last monitor", self.monitor)):
            if m is not None:
                lines.append(f"{name}: " + (unreadable(m) if m.get("error") else
                                            ("ok" if m["ok"] else "BREACH") + f" at {m['at']} ({m['path']})"))
        if self.problems:
            lines.append("needs attention: " + "; ".join(self.problems))
        return "\n".join(lines)


def status(settings: Settings) -> StatusReport:
    from .report.evidence_data import read_bench, read_monitor

    target, target_part = _target_part(settings)
    found = list_runs(settings.runtime_dir)
    return StatusReport(target_part, _export_part(settings), _stage_part(settings), _ledger_part(target, target_part),
                        _flags_part(target, target_part), _run_part(found), _parity_part(settings), _validation_part(found),
                        _measure_part(read_bench, settings.runtime_dir), _measure_part(read_monitor, settings.runtime_dir),
                        str(settings.runtime_dir))


# ---------------------------------------------------------------- the report


@dataclass(frozen=True)
class ReportResult(Result):
    run: str
    status: str
    path: str
    evidence: str | None  # evidence.json, when the run has one
    collected_now: bool  # the evidence was collected now (the run saved none)
    opened: bool

    def __str__(self) -> str:
        note = " (its evidence collected now: the run saved none)" if self.collected_now else ""
        note = note if self.evidence else " (no evidence.json: built from run.json alone)"
        return f"report of run {self.run} ({self.status}){note}: {self.path}"


def has_display() -> bool:
    import os
    import sys

    return sys.platform in ("darwin", "win32") or bool(os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY"))


def report_file(run: RunRecord) -> Path:
    return run.dir / REPORT


def _evidence_target(settings: Settings, run: RunRecord):
    """The target to read a past run's evidence from: the configured one, only when it is the run's
    own (same masked URI, or both the local server); None otherwise or when it is not there."""
    from .mysql.db import resolve_target

    if (settings.mysql_uri and mask_uri(settings.mysql_uri)) != run.settings.get("mysql_uri"):
        return None
    try:
        return resolve_target(settings)
    except Exception:  # noqa: BLE001 - no server now: the report says the ledger and flags cannot be read
        return None


def report(settings: Settings, run_id: str | None = None, *, open_browser: bool = True) -> ReportResult:
    """Rebuild RUN's report.html (id or prefix; default the newest run) from run.json and evidence.json.
    A run that saved no evidence (stopped before its report step) has it collected now, from the
    folders and, when it is there, the run's own database; then it is saved beside the record."""
    import webbrowser

    from .core.errors import ConfigError
    from .core.runs import find_run
    from .report.evidence import write_report
    from .report.evidence_data import collect_evidence, load_evidence, save_evidence

    run = find_run(settings.runtime_dir, run_id)
    if run is None:
        what = f"no run {run_id!r} (or more than one starting so)" if run_id else "no run recorded yet"
        raise ConfigError(f"{what} in {Path(settings.runtime_dir) / 'runs'}; `etl runs` lists them")
    evidence, collected = load_evidence(run), False
    if evidence is None:
        paths = {k: Path(run.settings[k]) for k in ("export_dir", "stage_dir", "runtime_dir") if run.settings.get(k)}
        own = settings.with_(**paths)
        evidence = collect_evidence(_evidence_target(settings, run), own, run)
        save_evidence(run, evidence)
        collected = True
    path = write_report(run, evidence)
    opened = bool(open_browser and has_display() and webbrowser.open(path.as_uri()))
    return ReportResult(run.id, run.status, str(path), str(run.dir / "evidence.json"), collected, opened)
