"""The guards of a forward move: small named checks, each returning a frozen GuardResult.

Every guard looks at fresh evidence about the data the next stage exposes:
- sequence: the move is to the next stage (skipping one would skip its evidence);
- parity: the stage (STAGE_DIR) against MySQL, run now (etl.parity);
- expectations: the Great Expectations suites against MySQL (etl.validate). They take a minute
  or more, so a passing verdict is kept (RUNTIME_DIR/cutover/expectations.json) for the stage it
  was computed on (its files' names, sizes, times) and the target, and reused only when parity
  has just shown MySQL equal to that same stage: the suites are a function of the stage and
  of MySQL's rows, and neither changed. When parity fails they are not run (no green evidence);
- bench, monitor: the newest report of `etl bench` (RUNTIME_DIR/bench/<time>/report.json, whose
  `ok` must be true) and of `etl monitor` (RUNTIME_DIR/monitor/<time>.jsonl, none of whose samples
  may hold a breach), younger than a limit; no report, an unreadable one or an old one fails;
- consistency (when leaving shadow or a later stage): what browsers reported while comparing the
  two origins (migration_read_checks) since the comparing stage was entered: at least
  `min_compared` records, and a mismatch rate at most `max_mismatch_rate`.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field, replace
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable

from ..core.errors import EtlError
from ..core.reports import BENCH_REPORTS, MONITOR_REPORTS, latest as _latest
from ..core.result import Result
from .stages import COMPARING, STAGES, Stage, stage

# Where `etl bench` and `etl monitor` (etl/api) write: RUNTIME_DIR/bench/<time>/report.json and
# RUNTIME_DIR/monitor/<time>.jsonl (one sample a line); the guards read the newest of each
# (etl/core/reports.py, which the evidence report and `etl status` read too).
EXPECTATIONS_KEPT = Path("cutover") / "expectations.json"


@dataclass(frozen=True)
class Thresholds:
    bench_max_age_s: float = 24 * 3600  # a benchmark holds while the data and the server stay as they were
    monitor_max_age_s: float = 3600  # health is a present-tense fact
    max_mismatch_rate: float = 0.001
    min_compared: int = 1000


@dataclass(frozen=True)
class GuardResult(Result):
    name: str
    ok: bool
    summary: str  # one line, with the figures
    figures: dict = field(default_factory=dict)  # JSON-plain

    def __str__(self) -> str:
        return f"{self.name:<13}{'ok' if self.ok else 'FAIL':<6}{self.summary}"


@dataclass(frozen=True)
class Move:
    """What the guards look at: the move, where the evidence is, and the thresholds."""

    settings: object  # etl.config.Settings
    target: object  # etl.db.MySQLTarget
    from_stage: Stage | None
    to_stage: Stage
    thresholds: Thresholds = Thresholds()
    entered_at: dict = field(default_factory=dict)  # stage -> when the flags last entered it (MySQL text)
    earlier: tuple = ()  # the results of the guards run before this one


def sequence(m: Move) -> GuardResult:
    at = m.from_stage.index if m.from_stage else -1
    ok = m.to_stage.index == at + 1
    skipped = [s.name for s in STAGES[at + 1:m.to_stage.index]]
    return GuardResult("sequence", ok, f"{m.from_stage.name if m.from_stage else '(no stage)'} -> {m.to_stage.name}"
                       + ("" if ok else f" skips {', '.join(skipped)}: move one stage at a time"),
                       {"from": m.from_stage.name if m.from_stage else None, "to": m.to_stage.name, "skipped": skipped})


def parity(m: Move) -> GuardResult:
    from ..report.parity import parity_with_report as run  # the reports are part of the evidence

    stage_dir = Path(m.settings.stage_dir)
    try:
        r = run(stage_dir, m.target, runtime_dir=m.settings.runtime_dir)
    except EtlError as e:
        return GuardResult("parity", False, f"could not run: {e}", {"stage": str(stage_dir)})
    tables = {t.table: {"buckets": t.mismatched_buckets, "missing_in_mysql": t.missing_in_mysql,
                        "only_in_mysql": t.only_in_mysql, "changed": t.changed} for t in r.tables}
    if r.ok:
        return GuardResult("parity", True, f"{len(r.tables)} tables equal to the stage {stage_dir} (report {r.report_dir})",
                           {"tables": tables, "report": r.report_dir})
    bad = "; ".join(f"{t.table}: {t.mismatched_buckets} bucket(s), {t.missing_in_mysql} missing in MySQL, "
                    f"{t.only_in_mysql} only in MySQL, {t.changed} changed" + (f" ({t.examples[0]})" if t.examples else "")
                    for t in r.tables if not t.ok)
    return GuardResult("parity", False, f"MySQL differs from the stage: {bad} (report {r.report_dir})",
                       {"tables": tables, "report": r.report_dir})


def _kept_expectations(settings, target) -> tuple[Path, dict]:
    """(the file a passing validation is kept in, the stage and target it must match to be reused)."""
    from ..stage.folder import stage_identity

    return Path(settings.runtime_dir) / EXPECTATIONS_KEPT, {"stage": stage_identity(settings.stage_dir), "target": str(target)}


def remember_expectations(settings, target, r, kept: tuple[Path, dict] | None = None) -> dict:
    """A validation's figures; when it passed, kept (RUNTIME_DIR) with the stage and target it ran on,
    for the guard of a later move to reuse while parity shows MySQL unchanged."""
    figures = {"expectations": len(r.checks), "failed": len(r.failures), "warnings": len(r.warnings),
               "failed_rules": sorted(r.failed_rules())}
    if r.ok:
        path, key = kept or _kept_expectations(settings, target)
        path.parent.mkdir(parents=True, exist_ok=True)
        at = datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
        path.write_text(json.dumps({**key, "at": at, "figures": figures}), encoding="utf-8")
    return figures


def expectations(m: Move) -> GuardResult:
    from ..check.suites import gx_root
    from ..report.datadocs import validate  # its stored results carry the verdicts, as etl validate's do

    parity_now = next((r for r in m.earlier if r.name == "parity"), None)
    if parity_now is not None and not parity_now.ok:
        return GuardResult("expectations", False, "not run: parity failed, so MySQL is not the data they would vouch for")
    kept, key = _kept_expectations(m.settings, m.target)
    if parity_now is not None and kept.is_file():
        last = json.loads(kept.read_text(encoding="utf-8"))
        if {k: last.get(k) for k in key} == key:
            return GuardResult("expectations", True, f"{last['figures']['expectations']} expectations passed at "
                               f"{last['at']} on this stage; parity shows MySQL unchanged since",
                               {**last["figures"], "reused_from": last["at"]})
    try:
        r = validate(m.target, m.settings.stage_dir, root=gx_root(m.settings.root), docs=False)
    except EtlError as e:
        return GuardResult("expectations", False, f"could not run: {e}")
    figures = remember_expectations(m.settings, m.target, r, (kept, key))
    if r.ok:
        return GuardResult("expectations", True, f"{len(r.checks)} expectations passed ({len(r.warnings)} warnings "
                           "about the source)", figures)
    return GuardResult("expectations", False, f"{len(r.failures)} of {len(r.checks)} expectations failed: "
                       + ", ".join(figures["failed_rules"][:5]), figures)


def _read_bench(path: Path) -> tuple[bool, list]:
    body = json.loads(path.read_text(encoding="utf-8"))
    if not isinstance(body, dict) or not isinstance(body.get("ok"), bool):
        raise ValueError("no boolean `ok`")
    return body["ok"], list(body.get("breaches") or [])


def _read_monitor(path: Path) -> tuple[bool, list]:
    """A monitor run is healthy when none of its samples breached a threshold."""
    samples = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    if not samples or not all(isinstance(s, dict) and isinstance(s.get("breaches"), list) for s in samples):
        raise ValueError("no samples with `breaches`")
    breaches = [b for s in samples for b in s["breaches"]]
    return not breaches, breaches


def _report(m: Move, name: str, pattern: str, read, max_age: float, command: str) -> GuardResult:
    folder = Path(m.settings.runtime_dir) / name
    path = _latest(folder, pattern)
    if path is None:
        return GuardResult(name, False, f"no report in {folder} ({pattern}): run `{command}`", {"folder": str(folder)})
    age = time.time() - path.stat().st_mtime
    try:
        ok, breaches = read(path)
    except (OSError, ValueError) as e:
        return GuardResult(name, False, f"{path} is not a report of `{command}` ({e})", {"path": str(path)})
    figures = {"path": str(path), "age_s": round(age), "ok": ok, "breaches": breaches[:20]}
    if age > max_age:
        return GuardResult(name, False, f"the latest report is {age / 3600:.1f} h old (limit {max_age / 3600:.1f} h): "
                           f"run `{command}` again ({path})", figures)
    if not ok:
        what = "; ".join(dict.fromkeys(_breach(b) for b in breaches)) or "the report says not ok"
        return GuardResult(name, False, f"breach: {what} ({path})", figures)
    return GuardResult(name, True, f"{path} within every threshold, {age / 60:.0f} min old", figures)


def _breach(b) -> str:
    if isinstance(b, dict) and "metric" in b:
        return f"{b['metric']} = {b.get('value')} {b.get('op', '>')} threshold {b.get('threshold')}"
    return b if isinstance(b, str) else json.dumps(b)


def bench(m: Move) -> GuardResult:
    return _report(m, "bench", BENCH_REPORTS, _read_bench, m.thresholds.bench_max_age_s, "etl bench")


def monitor(m: Move) -> GuardResult:
    return _report(m, "monitor", MONITOR_REPORTS, _read_monitor, m.thresholds.monitor_max_age_s, "etl monitor")


def consistency(m: Move) -> GuardResult:
    """Browsers' dual-read reports from the stage that compared last (shadow, or live from live on)."""
    stage_name = [s for s in COMPARING if stage(s).index <= m.from_stage.index][-1]
    since = m.entered_at.get(stage_name)
    t = m.thresholds
    sql = ("SELECT table_name, SUM(compared), SUM(mismatched) FROM migration_read_checks WHERE stage = %s"
           + (" AND reported_at >= %s" if since else "") + " GROUP BY table_name ORDER BY table_name")
    with m.target.connect() as conn, conn.cursor() as cur:
        cur.execute(sql, (stage_name, since) if since else (stage_name,))
        rows = [(table, int(c or 0), int(x or 0)) for table, c, x in cur.fetchall()]
    compared, mismatched = sum(r[1] for r in rows), sum(r[2] for r in rows)
    rate = mismatched / compared if compared else None
    figures = {"stage": stage_name, "since": since, "compared": compared, "mismatched": mismatched, "rate": rate,
               "max_rate": t.max_mismatch_rate, "min_compared": t.min_compared,
               "tables": {table: {"compared": c, "mismatched": x} for table, c, x in rows}}
    where = f"in {stage_name}" + (f" since {since}" if since else "")
    if compared < t.min_compared:
        return GuardResult("consistency", False, f"browsers compared {compared:,} records {where}, "
                           f"fewer than the {t.min_compared:,} needed", figures)
    summary = f"{mismatched:,} of {compared:,} compared records differ {where} (rate {rate:.4%}, limit {t.max_mismatch_rate:.4%})"
    return GuardResult("consistency", rate <= t.max_mismatch_rate, summary, figures)


def applicable(m: Move) -> tuple[Callable[[Move], GuardResult], ...]:
    """The guards of a forward move: all but consistency, which needs a stage where browsers compared."""
    guards = [sequence, parity, expectations, bench, monitor]
    if m.from_stage is not None and m.from_stage.index >= stage(COMPARING[0]).index:
        guards.append(consistency)
    return tuple(guards)


def evaluate(m: Move, guards=None) -> tuple[GuardResult, ...]:
    results: tuple[GuardResult, ...] = ()
    for guard in guards if guards is not None else applicable(m):
        results += (guard(replace(m, earlier=results)),)
    return results
