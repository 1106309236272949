"""What a notebook shows of the cutover: the flag history as a timeline, each move's guards, the
dual-read comparisons per table and stage, as Polars frames (for charts) and HTML tables.

The results (FlagHistory, FlagState, CutoverStatus) call these from `frame()` and `_repr_html_`,
so Polars loads only when a notebook asks; `etl flags` and `etl cutover` never do.
"""

from __future__ import annotations

import json
from datetime import datetime

import polars as pl

from ..core.htmlrepr import heading, html_table
from .stages import STAGE_NAMES

MOVED = ("set", "forced", "rollback")  # the actions that changed the flags (refused and unchanged did not)

HISTORY = {"id": pl.Int64, "at": pl.Datetime("ms"), "action": pl.String, "from_stage": pl.String,
           "to_stage": pl.String, "stage": pl.String, "stage_index": pl.Int64, "entered": pl.Boolean,
           "guards": pl.Int64, "guards_failed": pl.Int64, "actor": pl.String, "reason": pl.String}
GUARDS = {"id": pl.Int64, "at": pl.Datetime("ms"), "move": pl.String, "action": pl.String, "from_stage": pl.String,
          "to_stage": pl.String, "guard": pl.String, "ok": pl.Boolean, "summary": pl.String}
CONSISTENCY = {"table": pl.String, "stage": pl.String, "reports": pl.Int64, "compared": pl.Int64,
               "mismatched": pl.Int64, "rate": pl.Float64, "records": pl.Int64}


def stage_after(entry) -> str | None:
    """The stage the flags were at once the entry was decided (a refusal leaves them where they were)."""
    return entry.to_stage if entry.action in MOVED else entry.from_stage


def _at(text: str) -> datetime:
    return datetime.fromisoformat(text.rstrip("Z"))


def _guards(entry) -> list[dict]:
    return list((entry.evidence or {}).get("guards") or [])


def history_frame(history) -> pl.DataFrame:
    """One row per change or refusal, oldest first: when, the action, the stage moved from and to,
    the stage the flags were at after it (and its place in STAGE_NAMES, to order a chart's axis),
    whether a stage was entered, how many guards ran and failed, who and why."""
    rows = []
    for e in history.entries:
        now = stage_after(e)
        guards = _guards(e)
        rows.append({"id": e.id, "at": _at(e.changed_at), "action": e.action, "from_stage": e.from_stage,
                     "to_stage": e.to_stage, "stage": now, "stage_index": STAGE_NAMES.index(now) if now in STAGE_NAMES else None,
                     "entered": e.action in MOVED and e.to_stage != e.from_stage, "guards": len(guards),
                     "guards_failed": sum(not g.get("ok") for g in guards), "actor": e.actor, "reason": e.reason})
    return pl.DataFrame(rows, schema=HISTORY, orient="row") if rows else pl.DataFrame(schema=HISTORY)


def guards_frame(history) -> pl.DataFrame:
    """One row per guard of every guarded move (forward moves, and their refusals): the move (also
    as a label, "#3 shadow -> live"), the guard's name, whether it passed and its one-line summary."""
    rows = [{"id": e.id, "at": _at(e.changed_at), "move": f"#{e.id} {e.from_stage or '?'} -> {e.to_stage or '?'}",
             "action": e.action, "from_stage": e.from_stage, "to_stage": e.to_stage,
             "guard": g.get("name"), "ok": bool(g.get("ok")), "summary": g.get("summary")}
            for e in history.entries for g in _guards(e)]
    return pl.DataFrame(rows, schema=GUARDS, orient="row") if rows else pl.DataFrame(schema=GUARDS)


def history_html(history) -> str:
    entries = history.entries
    at = stage_after(entries[-1]) if entries else None
    title = (f"flag history: {len(entries)} change(s) and refusal(s), the flags now at stage {at or '(none)'}"
             if entries else heading(history))
    rows = [(e.id, e.changed_at, e.action, e.from_stage or "", e.to_stage or "",
             f"{sum(bool(g.get('ok')) for g in _guards(e))}/{len(_guards(e))}" if _guards(e) else "",
             e.reason or "", e.actor) for e in entries]
    html = html_table(title, ("#", "at", "action", "from", "to", "guards passed", "reason", "by"), rows)
    guarded = [(e.id, e.from_stage or "", e.to_stage or "", e.action, g.get("name"), "ok" if g.get("ok") else "FAIL",
                g.get("summary")) for e in entries for g in _guards(e)]
    if guarded:
        html += html_table("the guards of each forward move", ("#", "from", "to", "action", "guard", "ok", "summary"),
                           guarded)
    return html


def state_html(state) -> str:
    return html_table(heading(state), ("flag", "value", "last changed by"),
                      [(k, v if isinstance(v, str) else json.dumps(v), state.updated_by.get(k) or "") for k, v in state.flags.items()],
                      [f"updated at {state.updated_at}"])


def consistency_frame(status) -> pl.DataFrame:
    """One row per table and comparing stage: the reports, records compared and mismatched, the
    mismatch rate, the distinct differing records."""
    rows = [{"table": t.table, "stage": t.stage, "reports": t.reports, "compared": t.compared,
             "mismatched": t.mismatched, "rate": t.rate, "records": t.records} for t in status.tables]
    return pl.DataFrame(rows, schema=CONSISTENCY, orient="row") if rows else pl.DataFrame(schema=CONSISTENCY)


def status_html(status) -> str:
    title = f"{heading(status.state)}: dual-read comparisons reported per table and stage"
    html = html_table(title, ("table", "stage", "reports", "compared", "mismatched", "rate", "differing records"),
                      [(t.table, t.stage, t.reports, t.compared, t.mismatched,
                        f"{t.rate:.3%}" if t.rate is not None else "-", t.records) for t in status.tables],
                      [] if status.tables else ["no reports yet (browsers report from the shadow stage on)"])
    if status.buckets:
        html += html_table("differing records by bucket",
                           ("table", "stage", "day", "cabang", "status", "category", "records", "times seen", "fields"),
                           [(b.table, b.stage, b.day, b.cabang, b.status, b.category, b.records, b.times_seen,
                             ", ".join(b.fields)) for b in status.buckets])
    if status.last_move:
        m = status.last_move
        html += html_table(f"last guarded move: #{m['id']} {m['at']} {m['action']} {m['from']} -> {m['to']}",
                           ("guard", "ok", "summary"),
                           [(g["name"], "ok" if g["ok"] else "FAIL", g["summary"]) for g in m["guards"]])
    return html


__all__ = ["consistency_frame", "guards_frame", "history_frame", "history_html", "stage_after", "state_html",
           "status_html"]
