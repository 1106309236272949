"""The control endpoints' work: feature flags for the browsers, the migration's status, and the
intake of the mismatches browsers find while reading both stores (dual-read).

The mismatch intake is a contract shared with the cutover's browser adapter (issue 17):
a report {"clientId", "stage", "table", "compared", "mismatches": [{"key", "fields", "buckets":
{"day", "cabang", "status", "category"}}]} becomes one row of `migration_read_checks` and one
upserted row per mismatch in `migration_mismatches`.
"""

from __future__ import annotations

import hashlib
import json
from datetime import date
from pathlib import Path
from typing import Annotated, Optional

from pydantic import BaseModel, Field, field_validator, model_validator

from ..core.stores import STORES, store as find_store

# Flags change rarely and a rollback must reach every browser soon: a short cache, revalidated by ETag.
FLAGS_MAX_AGE = 15

DAY = r"^\d{4}-\d{2}-\d{2}$"


# ---------------------------------------------------------------- feature flags


def flags_body(conn) -> dict:
    """{"flags": {name: value}, "updatedAt": ISO text}; a value that is not JSON is passed as its text."""
    with conn.cursor() as cur:
        cur.execute("SELECT name, value, updated_at FROM feature_flags ORDER BY name")
        rows = cur.fetchall()
    flags = {}
    for name, value, _ in rows:
        try:
            flags[name] = json.loads(value)
        except ValueError:
            flags[name] = value
    return {"flags": flags, "updatedAt": max((r[2] for r in rows), default=None)}


def etag(body: dict) -> str:
    return '"' + hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest()[:20] + '"'


# ---------------------------------------------------------------- status


def table_counts(conn) -> dict[str, int]:
    counts = {}
    with conn.cursor() as cur:
        for s in STORES:
            cur.execute(f"SELECT COUNT(*) FROM `{s.table}`")
            counts[s.table] = cur.fetchone()[0]
    return counts


def last_parity(runtime_dir: Path) -> dict | None:
    """The newest parity report under RUNTIME_DIR/parity: its verdict, time and folder."""
    reports = sorted((runtime_dir / "parity").glob("*/report.json"), key=lambda p: p.stat().st_mtime)
    if not reports:
        return None
    path = reports[-1]
    try:
        body = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {"ok": None, "report": str(path.parent), "error": "unreadable report"}
    return {"ok": body.get("ok"), "at": path.parent.name, "report": str(path.parent)}


def last_validation(runtime_dir: Path) -> dict | None:
    """The newest playbook run record (RUNTIME_DIR/runs) that ran validation: its step's verdict."""
    from ..core.runs import list_runs

    for run in list_runs(runtime_dir):
        for step in run.steps:
            if step.name.startswith("validate") and step.status in ("ok", "failed"):
                return {"ok": step.status == "ok", "at": run.id, "run": str(run.path), "error": step.error}
    return None


def status_body(conn, runtime_dir: Path) -> dict:
    flags = flags_body(conn)
    return {
        "tables": table_counts(conn),
        "parity": last_parity(runtime_dir),
        "validation": last_validation(runtime_dir),
        # The cutover stage is what the flags say (issue 17 names the stages).
        "stage": {k: flags["flags"].get(k) for k in ("dataSource", "writeMode")},
        "flags": flags,
    }


# ---------------------------------------------------------------- mismatch intake


class Buckets(BaseModel):
    day: Optional[Annotated[str, Field(pattern=DAY)]] = None
    cabang: Optional[Annotated[str, Field(max_length=100)]] = None
    status: Optional[Annotated[str, Field(max_length=50)]] = None
    category: Optional[Annotated[str, Field(max_length=100)]] = None

    @field_validator("day")
    @classmethod
    def _real_day(cls, v):
        if v is not None:
            date.fromisoformat(v)  # ValueError -> 422: 2025-02-30 is not a day
        return v


class Mismatch(BaseModel):
    key: Annotated[str, Field(min_length=1, max_length=255)]
    fields: Annotated[list[Annotated[str, Field(max_length=64)]], Field(max_length=200)]
    buckets: Buckets


class MismatchReport(BaseModel):
    clientId: Annotated[str, Field(min_length=1, max_length=64)]
    stage: Annotated[str, Field(min_length=1, max_length=32)]
    table: Annotated[str, Field(min_length=1, max_length=64)]
    compared: Annotated[int, Field(ge=0, le=2**31 - 1)]
    mismatches: Annotated[list[Mismatch], Field(max_length=1000)]

    @field_validator("table")
    @classmethod
    def _known_table(cls, v):
        try:
            return find_store(v).table  # a store name (uploadSessions) or a table name
        except KeyError:
            raise ValueError(f"unknown table {v!r}; known: {', '.join(s.table for s in STORES)}") from None

    @model_validator(mode="after")
    def _no_more_than_compared(self):
        if len(self.mismatches) > self.compared:
            raise ValueError(f"{len(self.mismatches)} mismatches but only {self.compared} records compared")
        return self


def record_mismatches(conn, report: MismatchReport) -> int:
    """One read check and the upserted mismatches, in one transaction."""
    with conn.cursor() as cur:
        cur.execute("START TRANSACTION")
        cur.execute(
            "INSERT INTO migration_read_checks (client_id, stage, table_name, compared, mismatched) VALUES (%s, %s, %s, %s, %s)",
            (report.clientId, report.stage, report.table, report.compared, len(report.mismatches)),
        )
        if report.mismatches:
            cur.executemany(
                "INSERT INTO migration_mismatches (table_name, record_key, stage, client_id, bucket_day, bucket_cabang, "
                "bucket_status, bucket_category, fields) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s) "
                "ON DUPLICATE KEY UPDATE times_seen = times_seen + 1, last_seen = CURRENT_TIMESTAMP(3)",
                [(report.table, m.key, report.stage, report.clientId, m.buckets.day, m.buckets.cabang,
                  m.buckets.status, m.buckets.category, json.dumps(m.fields, ensure_ascii=False))
                 for m in report.mismatches],
            )
    conn.commit()
    return len(report.mismatches)


def mismatch_summary(conn, table: str | None = None, stage: str | None = None, limit: int = 1000) -> dict:
    """Per table and stage: reports, records compared and mismatched (the rate's denominator),
    distinct records; then per bucket: records and times seen, the most affected first."""
    where, args = [], []
    for col, v in (("table_name", table), ("stage", stage)):
        if v is not None:
            where.append(f"{col} = %s")
            args.append(v)
    clause = (" WHERE " + " AND ".join(where)) if where else ""
    with conn.cursor() as cur:
        cur.execute("SELECT table_name, stage, COUNT(*), SUM(compared), SUM(mismatched), MAX(reported_at) "
                    f"FROM migration_read_checks{clause} GROUP BY table_name, stage ORDER BY table_name, stage", args)
        checks = cur.fetchall()
        cur.execute("SELECT table_name, stage, COUNT(*), SUM(times_seen) FROM migration_mismatches"
                    f"{clause} GROUP BY table_name, stage", args)
        records = {(t, s): (int(n), int(seen)) for t, s, n, seen in cur.fetchall()}
        cur.execute(
            "SELECT table_name, stage, bucket_day, bucket_cabang, bucket_status, bucket_category, COUNT(*), "
            f"SUM(times_seen), MAX(last_seen) FROM migration_mismatches{clause} "
            "GROUP BY table_name, stage, bucket_day, bucket_cabang, bucket_status, bucket_category "
            "ORDER BY COUNT(*) DESC, table_name, stage, bucket_day LIMIT %s", (*args, limit))
        buckets = cur.fetchall()
    tables = []
    for t, s, reports, compared, mismatched, last in checks:
        compared, mismatched = int(compared or 0), int(mismatched or 0)
        n, seen = records.get((t, s), (0, 0))
        tables.append({"table": t, "stage": s, "reports": reports, "compared": compared, "mismatched": mismatched,
                       "rate": (mismatched / compared) if compared else None, "records": n, "timesSeen": seen,
                       "lastReport": last})
    return {
        "tables": tables,
        "buckets": [{"table": t, "stage": s, "day": d, "cabang": c, "status": st, "category": cat, "records": n,
                     "timesSeen": int(seen), "lastSeen": last}
                    for t, s, d, c, st, cat, n, seen, last in buckets],
    }
