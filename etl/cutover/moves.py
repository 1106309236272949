"""Moving the cutover: `etl cutover stage NAME` / `advance`, forward only on green guards.

A forward move runs its guards first (they take a while: parity and the suites run now), then
locks the flags; if they changed while the guards ran, the move is refused (run it again). A
failing guard refuses the move (recorded as `refused`, with every guard's figures) unless
`force` is given with a reason (recorded as `forced`). Moving back needs no guard; rollback
(etl.cutover.flags.rollback) is always allowed.
"""

from __future__ import annotations

from pathlib import Path

from ..core.errors import CutoverError
from . import guards as g
from .flags import Decision, FlagChange, change, read_state
from .stages import COMPARING, STAGES, Stage, stage, stage_of


def entered_at(target) -> dict:
    """When the flags last entered each comparing stage (MySQL datetime text), from the history."""
    with target.connect() as conn, conn.cursor() as cur:
        cur.execute("SELECT to_stage, DATE_FORMAT(MAX(changed_at), '%%Y-%%m-%%d %%H:%%i:%%s.%%f') FROM feature_flag_history "
                    "WHERE action IN ('set', 'forced') AND to_stage IN %s GROUP BY to_stage", (COMPARING,))
        return {s: at for s, at in cur.fetchall()}


def move_to(settings, target, name: str, *, force: bool = False, reason: str | None = None,
            thresholds: g.Thresholds = g.Thresholds(), who: str | None = None, guards=None) -> FlagChange:
    """Move the flags to stage `name`; forward moves only when every guard passes (or forced with a reason)."""
    try:
        to = stage(name)
    except KeyError as e:
        raise CutoverError(str(e.args[0])) from None
    want = {**to.flags, "rollbackMode": False}
    runtime: Path = settings.runtime_dir
    if force and not (reason and reason.strip()):
        change(target, lambda _: Decision("refused", None, "--force needs --reason"), reason=reason, who=who, requested=want)
        raise CutoverError("--force needs --reason TEXT: a forced move is recorded with why it was forced")
    seen = read_state(target)
    now = stage_of(seen.flags)
    if now is not None and to.index <= now.index:  # back (or a rolled-back "off" to "off"): no guard
        return change(target, lambda _: Decision("set", want), reason=reason, who=who, runtime_dir=runtime)

    results = g.evaluate(g.Move(settings, target, now, to, thresholds, entered_at(target)), guards)
    failed = [r for r in results if not r.ok]
    evidence = tuple(r.asdict() for r in results)

    def decide(flags: dict) -> Decision:
        if flags != seen.flags:
            return Decision("refused", None, "the flags changed while the guards ran (now stage "
                            f"{stage_of(flags).name if stage_of(flags) else '(none)'}): run the move again", evidence)
        if failed and not force:
            return Decision("refused", None, "guard " + "; guard ".join(f"{r.name} failed: {r.summary}" for r in failed),
                            evidence)
        if failed:
            return Decision("forced", want, "forced past: " + ", ".join(r.name for r in failed), evidence)
        return Decision("set", want, None, evidence)

    return change(target, decide, reason=reason, who=who, runtime_dir=runtime, requested=want)


def advance(settings, target, **kw) -> FlagChange:
    """Move to the stage after the current one."""
    now = stage_of(read_state(target).flags)
    if now is None:
        raise CutoverError("the flags match no stage: move to one by name (etl cutover stage NAME) or roll back")
    if now.index == len(STAGES) - 1:
        raise CutoverError(f"the cutover is {now.name}: there is no stage after it")
    return move_to(settings, target, STAGES[now.index + 1].name, **kw)


__all__ = ["advance", "entered_at", "move_to", "Stage"]
