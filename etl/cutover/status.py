"""`etl cutover status`: the stage, browsers' dual-read consistency per table and bucket, the last guards."""

from __future__ import annotations

import json
from dataclasses import dataclass

from ..core.result import Result
from .flags import FlagState, read_state

BUCKETS = ("day", "cabang", "status", "category")


@dataclass(frozen=True)
class TableConsistency:
    table: str
    stage: str
    reports: int
    compared: int
    mismatched: int
    records: int  # distinct differing records (migration_mismatches)

    @property
    def rate(self) -> float | None:
        return self.mismatched / self.compared if self.compared else None


@dataclass(frozen=True)
class BucketMismatches:
    table: str
    stage: str
    day: str | None
    cabang: str | None
    status: str | None
    category: str | None
    records: int
    times_seen: int
    fields: tuple[str, ...]  # the fields that differ in this bucket's records


@dataclass(frozen=True)
class CutoverStatus(Result):
    state: FlagState
    tables: tuple[TableConsistency, ...]
    buckets: tuple[BucketMismatches, ...]
    last_move: dict | None  # the latest guarded move: when, action, from/to, every guard's result

    def __str__(self) -> str:
        lines = [str(self.state), "", "dual-read consistency reported by browsers:"]
        if not self.tables:
            lines.append("  no reports yet (browsers report from the shadow stage on)")
        else:
            lines.append(f"  {'table':<16}{'stage':<10}{'reports':>8}{'compared':>10}{'differ':>8}{'rate':>9}{'records':>9}")
            for t in self.tables:
                rate = f"{t.rate:.3%}" if t.rate is not None else "-"
                lines.append(f"  {t.table:<16}{t.stage:<10}{t.reports:>8,}{t.compared:>10,}{t.mismatched:>8,}{rate:>9}{t.records:>9,}")
        if self.buckets:
            lines.append("differing records by bucket (day, cabang, status, category):")
            for b in self.buckets:
                where = ", ".join(str(getattr(b, k)) if getattr(b, k) is not None else "-" for k in BUCKETS)
                lines.append(f"  {b.table:<12}{b.stage:<9}{where:<50} {b.records:>5} record(s) "
                             f"seen {b.times_seen}x  fields: {', '.join(b.fields)}")
        if self.last_move:
            m = self.last_move
            lines.append(f"last guarded move: #{m['id']} {m['at']} {m['action']} {m['from']} -> {m['to']}")
            lines += [f"  {g['name']:<13}{'ok' if g['ok'] else 'FAIL':<6}{g['summary']}" for g in m["guards"]]
        return "\n".join(lines)

    def frame(self):
        """The dual-read comparisons per table and stage as a Polars frame (etl.cutover.frames)."""
        from .frames import consistency_frame

        return consistency_frame(self)

    def _repr_html_(self) -> str:
        from .frames import status_html

        return status_html(self)


def status(target, *, bucket_limit: int = 20) -> CutoverStatus:
    with target.connect() as conn, conn.cursor() as cur:
        cur.execute("SET SESSION group_concat_max_len = 1048576")  # the default 1024 would cut the JSON
        cur.execute("SELECT c.table_name, c.stage, COUNT(*), SUM(c.compared), SUM(c.mismatched), "
                    "(SELECT COUNT(*) FROM migration_mismatches m WHERE m.table_name = c.table_name AND m.stage = c.stage) "
                    "FROM migration_read_checks c GROUP BY c.table_name, c.stage ORDER BY c.table_name, c.stage")
        tables = tuple(TableConsistency(t, s, int(n), int(c or 0), int(x or 0), int(r)) for t, s, n, c, x, r in cur.fetchall())
        cur.execute("SELECT table_name, stage, DATE_FORMAT(bucket_day, '%%Y-%%m-%%d'), bucket_cabang, bucket_status, "
                    "bucket_category, COUNT(*), SUM(times_seen), GROUP_CONCAT(fields SEPARATOR '\\n') FROM migration_mismatches "
                    "GROUP BY table_name, stage, bucket_day, bucket_cabang, bucket_status, bucket_category "
                    "ORDER BY COUNT(*) DESC, table_name, stage, bucket_day LIMIT %s", (bucket_limit,))
        buckets = tuple(
            BucketMismatches(t, s, d, c, st, cat, int(n), int(seen),
                             tuple(sorted({f for line in (fields or "").splitlines() if line for f in json.loads(line)})))
            for t, s, d, c, st, cat, n, seen, fields in cur.fetchall())
        cur.execute("SELECT id, DATE_FORMAT(changed_at, '%%Y-%%m-%%dT%%H:%%i:%%sZ'), action, from_stage, to_stage, evidence "
                    "FROM feature_flag_history WHERE evidence LIKE %s ORDER BY id DESC LIMIT 1", ('%"guards": [{%',))
        row = cur.fetchone()
    last = None
    if row:
        i, at, action, frm, to, evidence = row
        last = {"id": i, "at": at, "action": action, "from": frm, "to": to, "guards": json.loads(evidence)["guards"]}
    return CutoverStatus(read_state(target), tables, buckets, last)
