"""Feature flags in MySQL: validated, changed in one transaction with their history, mirrored to a file.

Every change, and every refusal, runs the same transaction: `SELECT ... FOR UPDATE` on every flag
row (in primary-key order, so two writers queue instead of deadlocking), the decision is made on
the locked values (so two concurrent `etl flags set` never lose an update, and a combination is
checked against what is really there), the flag rows are updated, the history row is inserted,
COMMIT. A process killed in between leaves neither. After the commit the flags are mirrored to
RUNTIME_DIR/feature-flags.json (written beside it and renamed into place) in the API's shape.

Test hook: ETL_FLAGS_SLEEP_BEFORE_COMMIT=SECONDS makes a change print a line to stderr and sleep
inside the transaction, just before COMMIT (tests kill the process there, and race two writers).
"""

from __future__ import annotations

import getpass
import json
import os
import socket
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from ..core.errors import FlagError
from ..core.result import Result
from .stages import STAGE_NAMES, Stage, stage_of

BOOL = ("true", "false")
FLAGS: dict[str, tuple[str, ...]] = {
    "dataSource": ("indexeddb", "mysql", "dual-read"),
    "writeMode": ("indexeddb-only", "mysql-only", "dual-write"),
    "migrationMode": BOOL,
    "debugMode": BOOL,
    "performanceMonitoring": BOOL,
    "rollbackMode": BOOL,
}
STAGE_FLAGS = ("dataSource", "writeMode", "migrationMode", "rollbackMode")  # what moves the cutover
MIRROR = "feature-flags.json"
SLEEP_HOOK = "ETL_FLAGS_SLEEP_BEFORE_COMMIT"


def actor() -> str:
    """Who: the OS user at this host."""
    try:
        user = getpass.getuser()
    except Exception:  # noqa: BLE001 - no name for the uid (containers)
        user = f"uid{os.getuid()}"
    return f"{user}@{socket.gethostname()}"


def parse_value(name: str, text: str):
    """A flag's value from its text (the error lists the flags or values allowed)."""
    if name not in FLAGS:
        raise FlagError(f"unknown flag {name!r}; the flags are {', '.join(FLAGS)}", field=name)
    allowed = FLAGS[name]
    value = text.strip()
    if value not in allowed:
        raise FlagError(f"{name}={text!r} is not allowed; {name} is one of {', '.join(allowed)}", field=name)
    return value == "true" if allowed is BOOL else value


def parse_assignments(items: list[str]) -> dict[str, object]:
    """["dataSource=mysql", ...] -> {"dataSource": "mysql", ...}."""
    if not items:
        raise FlagError("nothing to set: give KEY=VALUE, e.g. debugMode=true")
    out: dict[str, object] = {}
    for item in items:
        name, sep, text = item.partition("=")
        if not sep:
            raise FlagError(f"{item!r} is not KEY=VALUE; the flags are {', '.join(FLAGS)}")
        name = name.strip()
        if name in out:
            raise FlagError(f"{name} is given twice", field=name)
        out[name] = parse_value(name, text)
    return out


def check_combination(flags: dict) -> str | None:
    """Why a combination makes no sense (None: it is one of the stages)."""
    src, write, compare, rollback = (flags.get(k) for k in STAGE_FLAGS)
    if src in ("mysql", "dual-read") and write == "indexeddb-only":
        return f"dataSource={src} reads from MySQL, which no write reaches with writeMode=indexeddb-only"
    if src in ("indexeddb", "dual-read") and write == "mysql-only":
        return f"dataSource={src} reads from IndexedDB, which no write reaches with writeMode=mysql-only"
    if rollback and (src, write) != ("indexeddb", "indexeddb-only"):
        return "rollbackMode=true means reads and writes are back on IndexedDB (dataSource=indexeddb, writeMode=indexeddb-only)"
    if compare and write != "dual-write":
        return f"migrationMode=true compares the two origins' answers, which only writeMode=dual-write keeps in step (not {write})"
    if src == "dual-read" and not compare:
        return "dataSource=dual-read reads both origins to compare them: it needs migrationMode=true"
    if src == "mysql" and compare:
        return "migrationMode=true compares reads with IndexedDB, but dataSource=mysql reads only MySQL (use dual-read)"
    if stage_of(flags) is None:  # every rule above passed: unreachable unless the stages change
        return "no cutover stage has these flags"
    return None


def stage_name(flags: dict) -> str | None:
    s = stage_of(flags)
    return s.name if s else None


# ---------------------------------------------------------------- results


@dataclass(frozen=True)
class FlagState(Result):
    flags: dict
    stage: str | None
    updated_at: str | None
    updated_by: dict  # flag -> who changed it last

    def api_body(self) -> dict:
        """What GET /api/feature-flags serves, and what RUNTIME_DIR/feature-flags.json holds."""
        return {"flags": self.flags, "stage": self.stage, "updatedAt": self.updated_at}

    def __str__(self) -> str:
        lines = [f"stage: {self.stage or '(none: the flags match no stage)'}"
                 + (" (rolled back)" if self.flags.get("rollbackMode") else "")]
        lines += [f"  {k:<22}{json.dumps(v):<18}{self.updated_by.get(k) or ''}" for k, v in self.flags.items()]
        lines.append(f"updated at {self.updated_at}")
        return "\n".join(lines)

    def _repr_html_(self) -> str:
        from .frames import state_html

        return state_html(self)


@dataclass(frozen=True)
class FlagChange(Result):
    action: str  # set | forced | rollback | refused | unchanged
    actor: str
    from_stage: str | None
    to_stage: str | None
    changes: dict  # flag -> [from, to] (refused: the requested values)
    reason: str | None
    message: str | None = None  # why it was refused
    evidence: tuple = ()  # guard results (dicts) the decision relied on
    history_id: int | None = None
    flags: dict = field(default_factory=dict)  # the flags after the decision

    @property
    def refused(self) -> bool:
        return self.action == "refused"

    @property
    def ok(self) -> bool:
        return not self.refused

    def __str__(self) -> str:
        moves = ", ".join(f"{k} {json.dumps(a)} -> {json.dumps(b)}" for k, (a, b) in self.changes.items()) or "nothing"
        stages = f"{self.from_stage or '?'} -> {self.to_stage or '?'}"
        head = {"refused": "REFUSED", "unchanged": "unchanged"}.get(self.action, self.action)
        lines = [f"{head}: {moves} (stage {stages})" + (f" [history #{self.history_id}]" if self.history_id else "")]
        if self.message:
            lines.append(f"  why: {self.message}")
        if self.reason:
            lines.append(f"  reason: {self.reason}")
        for g in self.evidence:
            lines.append(f"  guard {g['name']:<12} {'ok' if g['ok'] else 'FAIL':<5} {g['summary']}")
        return "\n".join(lines)

    def raise_if_refused(self) -> "FlagChange":
        if self.refused:
            raise FlagError(f"refused: {self.message}")
        return self


# ---------------------------------------------------------------- the transaction


@dataclass(frozen=True)
class Decision:
    """What a caller decided on the locked flags: new values (None: refuse) and why."""

    action: str
    to: dict | None
    message: str | None = None
    evidence: tuple = ()


def _load(cur, lock: bool) -> tuple[dict, dict, str | None]:
    # no parameters: PyMySQL leaves the % of DATE_FORMAT as they are
    cur.execute("SELECT name, value, updated_by, DATE_FORMAT(updated_at, '%Y-%m-%dT%H:%i:%s.%f') "
                "FROM feature_flags ORDER BY name" + (" FOR UPDATE" if lock else ""))
    rows = cur.fetchall()
    known = {r[0]: r for r in rows}
    missing = [k for k in FLAGS if k not in known]
    if missing:
        raise FlagError(f"feature_flags has no row for {', '.join(missing)}: run `etl schema apply`")
    flags = {k: json.loads(known[k][1]) for k in FLAGS}
    by = {k: known[k][2] for k in FLAGS}
    latest = max((known[k][3] for k in FLAGS), default=None)
    return flags, by, latest and latest[:23] + "Z"


def read_state(target) -> FlagState:
    """The flags as MySQL holds them now."""
    with target.connect() as conn, conn.cursor() as cur:
        flags, by, at = _load(cur, lock=False)
    return FlagState(flags, stage_name(flags), at, by)


def change(target, decide: Callable[[dict], Decision], *, reason: str | None, who: str | None = None,
           runtime_dir: Path | None = None, requested: dict | None = None) -> FlagChange:
    """Lock the flags, let `decide` choose on them, write the flags and their history row, commit.

    A refusal is recorded too (with the values requested), in the same transaction."""
    who = who or actor()
    conn = target.connect(autocommit=False)
    try:
        with conn.cursor() as cur:
            conn.begin()
            before, _, _ = _load(cur, lock=True)
            d = decide(dict(before))
            after = before if d.to is None else {**before, **d.to}
            wanted = requested if d.to is None else d.to
            changes = {k: [before.get(k), v] for k, v in (wanted or {}).items() if d.to is None or before.get(k) != v}
            if d.to is not None and not changes:
                conn.rollback()
                return FlagChange("unchanged", who, stage_name(before), stage_name(before), {}, reason, flags=before)
            for k, (_, v) in (changes.items() if d.to is not None else ()):
                cur.execute("UPDATE feature_flags SET value = %s, updated_by = %s WHERE name = %s", (json.dumps(v), who, k))
            cur.execute(
                "INSERT INTO feature_flag_history (actor, action, from_stage, to_stage, changes, reason, evidence) "
                "VALUES (%s, %s, %s, %s, %s, %s, %s)",
                (who, d.action, stage_name(before), stage_name(after) if d.to is not None else _target_stage(before, wanted),
                 json.dumps(changes), reason, json.dumps({"message": d.message, "guards": list(d.evidence)})))
            history_id = cur.lastrowid
            _sleep_hook()
            conn.commit()
    except BaseException:
        conn.rollback()
        raise
    finally:
        conn.close()
    result = FlagChange(d.action, who, stage_name(before), stage_name(after) if d.to is not None else _target_stage(before, wanted),
                        changes, reason, d.message, d.evidence, history_id, after)
    if runtime_dir is not None and d.to is not None:
        mirror(read_state(target), runtime_dir)
    return result


def _target_stage(before: dict, wanted: dict | None) -> str | None:
    return stage_name({**before, **(wanted or {})})


def _sleep_hook() -> None:
    seconds = os.environ.get(SLEEP_HOOK)
    if seconds:
        print(f"{SLEEP_HOOK}: sleeping {seconds} s before COMMIT (pid {os.getpid()})", file=sys.stderr, flush=True)
        time.sleep(float(seconds))


def mirror(state: FlagState, runtime_dir: Path) -> Path:
    """RUNTIME_DIR/feature-flags.json, complete or as it was (written beside it, then renamed)."""
    runtime_dir = Path(runtime_dir)
    runtime_dir.mkdir(parents=True, exist_ok=True)
    path = runtime_dir / MIRROR
    tmp = runtime_dir / f".{MIRROR}.{os.getpid()}.tmp"
    tmp.write_text(json.dumps(state.api_body(), indent=2) + "\n", encoding="utf-8")
    os.replace(tmp, path)
    return path


# ---------------------------------------------------------------- the commands


def set_flags(target, assignments: dict | list[str], *, reason: str | None, runtime_dir: Path | None = None,
              who: str | None = None) -> FlagChange:
    """`etl flags set`: values checked, combination checked on the locked flags, recorded either way.

    Moving the cutover forward (to a later stage) is refused here: it goes through the guards
    (`etl cutover stage NAME`). Moving back, and debugMode / performanceMonitoring, are free."""
    if not reason or not reason.strip():
        raise FlagError("a reason is required (--reason TEXT): it goes into the flags' history")
    raw = list(assignments) if isinstance(assignments, list) else None
    try:
        wanted = parse_assignments(raw) if raw is not None else {k: parse_value(k, str(v).lower() if isinstance(v, bool)
                                                                               else str(v)) for k, v in assignments.items()}
    except FlagError as e:
        # an invalid value is refused and recorded like any other refusal
        asked = dict(a.partition("=")[::2] for a in raw) if raw else {k: v for k, v in assignments.items()}
        why = str(e)
        change(target, lambda _: Decision("refused", None, why), reason=reason, who=who, requested=asked)
        raise

    def decide(now: dict) -> Decision:
        after = {**now, **wanted}
        why = check_combination(after)
        if why:
            return Decision("refused", None, why)
        old, new = stage_of(now), stage_of(after)
        if new and new.name != (old.name if old else None) and _forward(old, new):
            return Decision("refused", None, f"moving forward ({old.name if old else '(no stage)'} -> {new.name}) goes "
                            f"through the guards: etl cutover stage {new.name}")
        return Decision("set", wanted)

    result = change(target, decide, reason=reason, who=who, runtime_dir=runtime_dir, requested=wanted)
    return result.raise_if_refused()


def _forward(old: Stage | None, new: Stage) -> bool:
    return new.name != "off" if old is None else new.index > old.index


def rollback(target, *, reason: str | None = None, runtime_dir: Path | None = None, who: str | None = None) -> FlagChange:
    """One step back to IndexedDB for reads and writes, rollbackMode on. Always allowed."""
    to = {"dataSource": "indexeddb", "writeMode": "indexeddb-only", "migrationMode": False, "rollbackMode": True}
    result = change(target, lambda now: Decision("rollback", to), reason=reason, who=who, runtime_dir=runtime_dir)
    if result.action == "unchanged" and runtime_dir is not None:
        mirror(read_state(target), runtime_dir)
    return result


@dataclass(frozen=True)
class HistoryEntry:
    id: int
    changed_at: str
    actor: str
    action: str
    from_stage: str | None
    to_stage: str | None
    changes: dict
    reason: str | None
    evidence: dict

    def line(self) -> str:
        moves = ", ".join(f"{k} {json.dumps(a)}->{json.dumps(b)}" for k, (a, b) in self.changes.items())
        text = (f"#{self.id:<5}{self.changed_at}  {self.action:<9}{self.from_stage or '?'} -> {self.to_stage or '?'}"
                f"  {moves}  by {self.actor}")
        if self.reason:
            text += f"\n        reason: {self.reason}"
        if self.evidence.get("message"):
            text += f"\n        why: {self.evidence['message']}"
        return text


@dataclass(frozen=True)
class FlagHistory(Result):
    entries: tuple[HistoryEntry, ...]

    def __str__(self) -> str:
        if not self.entries:
            return "no flag changes recorded"
        return "\n".join(e.line() for e in self.entries)

    def frame(self):
        """The timeline as a Polars frame, one row per entry (etl.cutover.frames.history_frame)."""
        from .frames import history_frame

        return history_frame(self)

    def guards_frame(self):
        """Every guarded move's guards as a Polars frame: name, ok, summary (etl.cutover.frames)."""
        from .frames import guards_frame

        return guards_frame(self)

    def _repr_html_(self) -> str:
        from .frames import history_html

        return history_html(self)


def history(target, *, limit: int = 50) -> FlagHistory:
    """The latest `limit` changes and refusals, oldest first."""
    with target.connect() as conn, conn.cursor() as cur:
        cur.execute("SELECT id, DATE_FORMAT(changed_at, '%%Y-%%m-%%dT%%H:%%i:%%s.%%f'), actor, action, from_stage, "
                    "to_stage, changes, reason, evidence FROM feature_flag_history ORDER BY id DESC LIMIT %s", (limit,))
        rows = cur.fetchall()
    return FlagHistory(tuple(
        HistoryEntry(i, at[:23] + "Z", who, act, fs, ts, json.loads(ch), reason, json.loads(ev) if ev else {})
        for i, at, who, act, fs, ts, ch, reason, ev in reversed(rows)))


__all__ = ["FLAGS", "STAGE_NAMES", "FlagChange", "FlagHistory", "FlagState", "check_combination", "history",
           "mirror", "parse_assignments", "read_state", "rollback", "set_flags"]
