"""The evidence of a migration run, collected: what its report shows that run.json does not hold.

`collect_evidence(target, settings, run)` takes a JSON-plain snapshot: the load ledger's chunks
written during the run (totals and per-chunk timings, for the throughput chart), the feature-flag
history written during the run with each decision's guard evidence, the newest bench report and
monitor series under RUNTIME_DIR, the parity report's differing buckets, the stage's rejects, the
export and stage summaries and the data docs' path. Whatever cannot be read (no server, no report
yet) is recorded as such, never raised. `save_evidence` writes it as evidence.json beside
run.json (0600, masked); etl.report.evidence renders the page from the two.

This module reads the flag tables and the bench and monitor files directly (the cutover and api
wings sit above this one), in the small readers below.
"""

from __future__ import annotations

import json
import os
from datetime import datetime, timezone
from pathlib import Path

from ..core.config import mask_uri
from ..core.reports import BENCH_REPORTS, MONITOR_REPORTS, latest_bench, latest_monitor
from ..core.result import plain
from ..core.runs import RunRecord

EVIDENCE = "evidence.json"
MAX_CHUNKS = 5000  # ledger chunks kept per run (all are counted)
MAX_BUCKETS = 50  # differing buckets listed per table
MAX_FLAG_ROWS = 200
MAX_SAMPLES = 2000
REJECT_EXAMPLES = 5

# Step names of records from before the playbook's slugs -> the slug they are now.
LEGACY = {"preflight: mysql server": "preflight", "apply schema": "schema", "export": "export",
          "transform": "transform", "load": "load", "parity": "parity",
          "validate + data docs": "aggregations"}
PHASES = ("preparation", "migration", "validation", "cutover", "finalization")


def _first_line(e: BaseException) -> str:
    text = (str(e).strip().splitlines() or [type(e).__name__])[0][:300]
    return mask_uri(text if text else type(e).__name__)


def utc_time(text: str | None) -> datetime | None:
    """An ISO time as naive UTC (as MySQL's DATETIME columns hold it)."""
    if not text:
        return None
    try:
        t = datetime.fromisoformat(str(text).replace("Z", "+00:00"))
    except ValueError:
        return None
    return t.astimezone(timezone.utc).replace(tzinfo=None) if t.tzinfo else t


def iso_text(t) -> str | None:
    return t.isoformat(timespec="milliseconds") + "Z" if isinstance(t, datetime) else t


def utc_now() -> datetime:
    return datetime.now(timezone.utc).replace(tzinfo=None)


def slug_of(step) -> str:
    """A step's slug; records from before slugs are known by their name."""
    slug = getattr(step, "slug", None) if not isinstance(step, dict) else step.get("slug")
    name = getattr(step, "name", None) if not isinstance(step, dict) else step.get("name")
    return slug or LEGACY.get(name or "", "")


def steps_of(run: RunRecord, slug: str) -> list:
    return [s for s in run.steps if slug_of(s) == slug]


def find_key(value, key: str):
    """The first dict in a JSON-plain value (depth first) holding `key`: step results differ in how
    they nest (a step may return the results of several calls)."""
    if isinstance(value, dict):
        if key in value:
            return value
        children = value.values()
    elif isinstance(value, list):
        children = value
    else:
        return None
    for v in children:
        found = find_key(v, key)
        if found is not None:
            return found
    return None


# ---------------------------------------------------------------- collecting


def guarded(fn, *args):
    """fn(*args), or {"error": one line} when it cannot be read."""
    try:
        return fn(*args)
    except Exception as e:  # noqa: BLE001 - evidence that cannot be read is shown as such
        return {"error": _first_line(e)}


def read_ledger(target, start: datetime, end: datetime) -> dict:
    """The load ledger's chunks active in [start, end]: totals by state and per table, and timings."""
    with target.connect() as conn, conn.cursor() as cur:
        cur.execute(
            "SELECT run_id, table_name, chunk_no, kind, row_count, COALESCE(rows_written, 0), COALESCE(rows_rejected, 0), "
            "method, status, attempts, planned_at, started_at, written_at, finished_at FROM etl_load_ledger "
            "WHERE planned_at <= %s AND COALESCE(finished_at, written_at, started_at, planned_at) >= %s "
            "ORDER BY COALESCE(written_at, finished_at, started_at, planned_at), run_id, chunk_no", (end, start))
        rows = cur.fetchall()
    by_state: dict[str, int] = {}
    tables: dict[str, dict] = {}
    chunks = []
    for (plan, table, no, kind, planned, written, rejected, method, status, attempts, planned_at, started, written_at,
         finished) in rows:
        by_state[status] = by_state.get(status, 0) + 1
        t = tables.setdefault(table, {"chunks": 0, "rows_planned": 0, "rows_written": 0, "rows_rejected": 0, "done": 0,
                                      "mismatch": 0})
        t["chunks"] += 1
        t["rows_planned"] += int(planned)
        t["rows_written"] += int(written)
        t["rows_rejected"] += int(rejected)
        t["done"] += status == "done"
        t["mismatch"] += status == "mismatch"
        if len(chunks) < MAX_CHUNKS:
            seconds = (written_at - started).total_seconds() if written_at and started else None
            chunks.append({"plan": plan, "table": table, "chunk": int(no), "kind": kind, "rows": int(planned),
                           "written": int(written), "status": status, "method": method, "attempts": int(attempts),
                           "started_at": iso_text(started), "written_at": iso_text(written_at), "finished_at": iso_text(finished),
                           "seconds": round(seconds, 4) if seconds is not None else None})
    totals = {"chunks": len(rows), "rows_written": sum(t["rows_written"] for t in tables.values()),
              "rows_rejected": sum(t["rows_rejected"] for t in tables.values()), "by_state": by_state}
    return {"totals": totals, "tables": tables, "chunks": chunks, "chunks_listed": len(chunks)}


def read_flag_history(target, start: datetime, end: datetime) -> dict:
    """feature_flag_history rows written in [start, end], oldest first, with their guard evidence."""
    with target.connect() as conn, conn.cursor() as cur:
        cur.execute("SELECT id, changed_at, actor, action, from_stage, to_stage, changes, reason, evidence "
                    "FROM feature_flag_history WHERE changed_at BETWEEN %s AND %s ORDER BY id LIMIT %s",
                    (start, end, MAX_FLAG_ROWS))
        rows = cur.fetchall()
        cur.execute("SELECT to_stage, action FROM feature_flag_history WHERE action <> 'refused' AND changed_at <= %s "
                    "ORDER BY id DESC LIMIT 1", (end,))
        last = cur.fetchone()

    def load(text):
        try:
            return json.loads(text) if text else {}
        except ValueError:
            return {"text": text}

    history = [{"id": int(i), "changed_at": iso_text(at), "actor": who, "action": act, "from_stage": fs, "to_stage": ts,
                "changes": load(ch), "reason": reason, "evidence": load(ev)}
               for i, at, who, act, fs, ts, ch, reason, ev in rows]
    return {"history": history, "stage_at_end": last[0] if last else None}


def _written(path: Path) -> datetime:
    return datetime.fromtimestamp(path.stat().st_mtime, timezone.utc).replace(tzinfo=None)


def _during(folder: Path, pattern: str, start: datetime, read) -> list[dict]:
    """A line for every report in `folder` written since `start`, oldest first (each read on its own)."""
    out = []
    for path in sorted(Path(folder).glob(pattern), key=lambda p: p.stat().st_mtime):
        if _written(path) >= start:
            line = guarded(read, path)
            out.append({"path": str(path), "written_at": iso_text(_written(path)), **line})
    return out[-50:]


def _bench_line(path: Path) -> dict:
    body = json.loads(path.read_text(encoding="utf-8"))
    return {"ok": body.get("ok"), "p95_ms": (body.get("overall") or {}).get("p95_ms"),
            "requests": (body.get("overall") or {}).get("requests"), "breaches": list(body.get("breaches") or [])}


def _monitor_line(path: Path) -> dict:
    samples = [json.loads(x) for x in path.read_text(encoding="utf-8").splitlines() if x.strip()]
    breaches = [str(b.get("metric")) for s in samples for b in s.get("breaches") or []]
    return {"samples": len(samples), "breaches": len(breaches), "metrics": sorted(set(breaches)), "ok": not breaches}


def read_bench(runtime_dir: Path, start: datetime) -> dict | None:
    """The newest `etl bench` report: percentiles per endpoint, breaches, whether it is from this run;
    and a line for each report written during the run."""
    path = latest_bench(runtime_dir)
    if path is None:
        return None
    body = json.loads(path.read_text(encoding="utf-8"))
    keep = ("endpoint", "requests", "errors", "p50_ms", "p90_ms", "p95_ms", "p99_ms", "p999_ms", "max_ms", "mean_ms")
    written = _written(path)
    return {"path": str(path), "html": str(path.with_name("report.html")), "written_at": iso_text(written),
            "during": _during(path.parent.parent, BENCH_REPORTS, start, _bench_line),
            "during_run": written >= start, "ok": body.get("ok"), "breaches": list(body.get("breaches") or []),
            "target_rps": body.get("target_rps"), "achieved_rps": body.get("achieved_rps"),
            "error_rate": body.get("error_rate"), "chunk_seconds": list(body.get("chunk_seconds") or []),
            "thresholds": body.get("thresholds"),
            "overall": {k: (body.get("overall") or {}).get(k) for k in keep},
            "endpoints": [{k: e.get(k) for k in keep} for e in body.get("endpoints") or []]}


def read_monitor(runtime_dir: Path, start: datetime) -> dict | None:
    """The newest `etl monitor` series: per sample the API's health and latency and the database's load."""
    path = latest_monitor(runtime_dir)
    if path is None:
        return None
    samples = []
    for line in path.read_text(encoding="utf-8").splitlines():
        if not line.strip():
            continue
        s = json.loads(line)
        api, db, derived = s.get("api") or {}, s.get("db") or {}, s.get("derived") or {}
        samples.append({"sample": s.get("sample"), "time": s.get("time"), "elapsed_s": s.get("elapsed_s"),
                        "api_up": api.get("up"), "p95_ms": api.get("p95_ms"), "error_rate": api.get("error_rate"),
                        "db_up": db.get("up"), "threads_running": db.get("threads_running"),
                        "connections_ratio": derived.get("db.connections_ratio"),
                        "breaches": s.get("breaches") or []})
    written = _written(path)
    return {"path": str(path), "written_at": iso_text(written), "during_run": written >= start,
            "during": _during(path.parent, MONITOR_REPORTS, start, _monitor_line),
            "samples": samples[-MAX_SAMPLES:], "breaches": [dict(b, sample=s["sample"]) for s in samples for b in s["breaches"]]}


def read_parity(report_dir: str | None) -> dict | None:
    """Parity's report.json: per table its verdict and the first differing buckets."""
    if not report_dir:
        return None
    path = Path(report_dir) / "report.json"
    body = json.loads(path.read_text(encoding="utf-8"))
    tables = []
    for name, t in (body.get("tables") or {}).items():
        tables.append({"table": name, "ok": t.get("ok"), "buckets": t.get("buckets"),
                       **{k: t.get(k) for k in ("stage_rows", "mysql_rows", "bucket_count", "mismatched_buckets",
                                                "missing_in_mysql", "only_in_mysql", "changed")},
                       "differing": (t.get("buckets_mismatched") or [])[:MAX_BUCKETS], "examples": t.get("examples") or []})
    return {"report_dir": str(report_dir), "html": str(Path(report_dir) / "report.html"), "ok": body.get("ok"),
            "source": body.get("source"), "target": body.get("target"), "tables": tables}


def read_rejects(stage_dir: Path) -> dict:
    """Per staged table: how many records were rejected, by reason, with a few examples."""
    import polars as pl

    from ..core.stores import STORES
    from ..stage.folder import rejects_path

    out = {}
    for store in STORES:
        path = rejects_path(stage_dir, store)
        if not path.is_file():
            continue
        frame = pl.read_parquet(path)
        if frame.height == 0:
            out[store.table] = {"records": 0, "reasons": {}, "examples": []}
            continue
        reasons = frame.group_by("reason").agg(pl.len().alias("n")).sort("n", descending=True)
        out[store.table] = {"records": frame.select(pl.struct("file", "record").n_unique()).item(),
                            "reasons": {r: int(n) for r, n in reasons.head(20).iter_rows()},
                            "examples": frame.head(REJECT_EXAMPLES).to_dicts()}
    return out


def read_folders(settings) -> dict:
    """The export's and the stage's own summaries (counts, when)."""
    from ..source.folder import ExportFolder
    from ..stage.folder import StageFolder

    out: dict = {}
    try:
        ex = ExportFolder.open(settings.export_dir)
        out["export"] = {"dir": str(ex.dir), "counts": ex.counts, "exported_at": iso_text(ex.exported_at)}
    except Exception as e:  # noqa: BLE001
        out["export"] = {"dir": str(settings.export_dir), "error": _first_line(e)}
    try:
        st = StageFolder.open(settings.stage_dir)
        out["stage"] = {"dir": str(st.dir), "counts": dict(st.summary.get("counts") or {}),
                        "findings": list(st.summary.get("findings") or [])}
    except Exception as e:  # noqa: BLE001
        out["stage"] = {"dir": str(settings.stage_dir), "error": _first_line(e)}
    return out


def collect_evidence(target, settings, run: RunRecord) -> dict:
    """What the report needs beyond run.json, JSON-plain; `target` None: the database's part is
    recorded as unavailable. Never raises for evidence it cannot read."""
    start = utc_time(run.started_at) or utc_now()
    end = utc_time(run.finished_at) or utc_now()
    parity_step = next((s for s in reversed(steps_of(run, "parity")) if s.result), None)
    report_dir = (find_key(parity_step.result, "report_dir") or {}).get("report_dir") if parity_step else None
    docs_step = next((s for s in reversed(steps_of(run, "aggregations")) if s.result), None)
    docs = (find_key(docs_step.result, "docs_index") or {}).get("docs_index") if docs_step else None
    no_db = {"error": "no database was given to read it from"}
    evidence = {
        "version": 1,
        "run_id": run.id,
        "collected_at": iso_text(utc_now()),
        "window": {"from": iso_text(start), "to": iso_text(end)},
        "target": str(target) if target is not None else None,
        "ledger": guarded(read_ledger, target, start, end) if target is not None else no_db,
        "flags": guarded(read_flag_history, target, start, end) if target is not None else no_db,
        "bench": guarded(read_bench, settings.runtime_dir, start),
        "monitor": guarded(read_monitor, settings.runtime_dir, start),
        "parity": guarded(read_parity, report_dir),
        "rejects": guarded(read_rejects, Path(settings.stage_dir)),
        "folders": guarded(read_folders, settings),
        "data_docs": {"path": docs, "exists": bool(docs and Path(docs).is_file())},
    }
    return plain(evidence)


def write_private(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        f.write(text)
    os.chmod(tmp, 0o600)
    os.replace(tmp, path)


def save_evidence(run: RunRecord, evidence: dict) -> Path:
    """RUNTIME_DIR/runs/<id>/evidence.json: private to the user (0600), passwords masked."""
    run.dir.mkdir(parents=True, exist_ok=True)
    path = run.dir / EVIDENCE
    write_private(path, mask_uri(json.dumps(plain(evidence), indent=1, ensure_ascii=False, default=str)))
    return path


def load_evidence(run: RunRecord) -> dict | None:
    path = run.dir / EVIDENCE
    if not path.is_file():
        return None
    body = json.loads(path.read_text(encoding="utf-8"))
    return body if isinstance(body, dict) else None
