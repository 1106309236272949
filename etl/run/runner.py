"""`etl migrate`: select the playbook's steps (etl.run.catalog), run them in order, record the run.

Which steps: all 18, or `until` (a step's slug or number, or a phase: through its last step),
`from_step` (from a step, or a phase's first), `only` (one step, or one phase). `resume` continues
the last run that did not end ok from the step where it stopped, with its options; the steps it
completed are re-checked first (the export's fingerprints, the stage's identity, MySQL's row
counts), and a run whose earlier product changed since starts again from that step.

The record (etl.core.runs) is saved before and after every step, so a killed run leaves a record
that says where (a dead pid reads as interrupted). Every run ends with its evidence report
written, also one that failed or was interrupted.
"""

from __future__ import annotations

import time
from contextlib import ExitStack
from dataclasses import asdict, fields
from pathlib import Path
from typing import Callable

from ..core.config import Settings
from ..core.errors import (
    ConfigError,
    EtlError,
    PlaybookError,
    raise_if_stopped,
    stop_requested,
)
from ..core.runs import RunRecord, StepRecord, find_run, new_run, now_text
from .catalog import STEPS
from .context import PHASES, Context, PlaybookOptions, Step
from .cutover import MonitorBreach
from .finalization import write_evidence

TOTAL = len(STEPS)


def step_of(ref: str, *, last: bool = False) -> Step:
    """A step by slug or number; a phase name means its first step (its last with `last`)."""
    text = str(ref).strip().lower()
    if text in PHASES:
        inside = [s for s in STEPS if s.phase == text]
        return inside[-1] if last else inside[0]
    for s in STEPS:
        if text in (s.slug, str(s.n)):
            return s
    raise ConfigError(f"no step {ref!r}: name one of {', '.join(s.slug for s in STEPS)} (or its number 1-{TOTAL}), "
                      f"or a phase: {', '.join(PHASES)}")


def select(*, until: str | None = None, from_step: str | None = None, only: str | None = None) -> list[str]:
    """The slugs to run, in order."""
    if only is not None:
        if until is not None or from_step is not None:
            raise ConfigError("--only runs one step (or phase): it does not go with --until or --from-step")
        text = str(only).strip().lower()
        return [s.slug for s in STEPS if s.phase == text] if text in PHASES else [step_of(only).slug]
    first = step_of(from_step).n if from_step is not None else 1
    end = step_of(until, last=True).n if until is not None else TOTAL
    if end < first:
        raise ConfigError(f"--until {until} comes before --from-step {from_step}: nothing would run")
    return [s.slug for s in STEPS if first <= s.n <= end]


def _previous(settings: Settings) -> RunRecord:
    """The run --resume continues: the newest one, unless it ended ok."""
    last = find_run(settings.runtime_dir)
    if last is None:
        raise ConfigError(f"--resume: no run recorded in {settings.runtime_dir / 'runs'}: run `etl migrate`")
    if last.status == "running":
        raise ConfigError(f"--resume: run {last.id} is still running (pid {last.pid}): wait for it, or stop it first")
    if last.status == "ok":
        raise ConfigError(f"--resume: the last run ({last.id}) ended ok: nothing to resume; `etl migrate` starts a new one")
    return last


def _resume_point(ctx: Context, last: RunRecord, selected: list[str]) -> tuple[list[StepRecord], str]:
    """(the earlier run's step records kept, the first slug to run again), after re-checking what
    the completed steps left behind."""
    kept: list[StepRecord] = []
    for slug in selected:
        rec = last.step(slug)
        step = next(s for s in STEPS if s.slug == slug)
        if rec is None or rec.status != "ok":
            return kept, slug
        if step.product is not None and rec.product is not None:
            try:
                now = step.product(ctx)
            except EtlError as e:
                now = f"unreadable: {e}"
            if now != rec.product:
                ctx.echo(f"note: what step {slug} produced changed since run {last.id}: running again from it")
                return kept, slug
        kept.append(rec)
    return kept, ""


def migrate(settings: Settings, *, source: Path | None = None, sample_tickets: int = 30000,
            echo: Callable[[object], None] = print, until: str | None = None, from_step: str | None = None,
            only: str | None = None, resume: bool = False, options: PlaybookOptions | None = None,
            progress=None) -> RunRecord:
    """Run the selected steps in order; stop at the first failure (a monitor breach first rolls back).
    The record and the evidence report land in RUNTIME_DIR/runs/<id>/."""
    opts = options or PlaybookOptions()
    last = None
    if resume:
        if until is not None or from_step is not None or only is not None:
            raise ConfigError("--resume continues the last run with its own steps: it does not go with --until, "
                              "--from-step or --only")
        last = _previous(settings)
        asked = last.options
        source = Path(asked["source"]) if asked.get("source") else None
        sample_tickets = int(asked.get("sample_tickets") or sample_tickets)
        known = {f.name for f in fields(PlaybookOptions)}
        opts = PlaybookOptions(**{k: v for k, v in (asked.get("playbook") or {}).items() if k in known})
        selected = list(asked.get("selected") or [s.slug for s in STEPS])
        until = asked.get("until")
    else:
        selected = select(until=until, from_step=from_step, only=only)

    with ExitStack() as stack:
        ctx = Context(settings, opts, Path(source) if source else None, sample_tickets, echo, stack, progress)
        run = new_run(settings.runtime_dir, settings.public(),
                      {"source": str(source) if source else None, "sample_tickets": sample_tickets, "until": until,
                       "from_step": from_step, "only": only, "resume": resume, "selected": selected,
                       "playbook": asdict(opts)},
                      resumed_from=last.id if last else None)
        ctx.run = run
        start = selected[0]
        kept: dict[str, StepRecord] = {}
        if last is not None:
            # The preflight runs again on a resume: it resolves the target and starts what the run needs.
            records, start = _resume_point(ctx, last, selected)
            kept = {r.slug: r for r in records if r.slug != "preflight"}
            ctx.resuming = "load" in kept  # the cutover that run began is its own to continue
            if not start:
                raise ConfigError(f"--resume: every step of run {last.id} ended ok and is unchanged: nothing to resume")
            monitor = last.step("monitor")
            if monitor is not None and monitor.status == "failed" and start in ("finalize-sessions", "rollback"):
                ctx.breaches = [monitor.error or "the post-cutover monitor breached"]
            echo(f"resuming run {last.id} ({last.status}) at step {start}")
        to_run = selected[selected.index(start):]
        if last is not None and "preflight" in selected and "preflight" not in to_run:
            to_run.insert(0, "preflight")
        ctx.to_run = tuple(to_run)
        end = max(step_of(x).n for x in selected)
        for s in STEPS:
            # Not selected: before the selection "skipped", after it "pending" (the run stopped early).
            status = "pending" if s.slug in selected or s.n > end else "skipped"
            run.steps.append(kept.get(s.slug) or StepRecord(s.title, slug=s.slug, n=s.n, phase=s.phase, status=status))
        try:
            run.save()
            _run_steps(ctx, run, to_run)
        except KeyboardInterrupt:
            _record_stop(run, to_run)
            raise
        finally:
            _final_report(ctx, run)
    return run


def _record_stop(run: RunRecord, to_run: list[str]) -> None:
    """A stop that landed outside a step's own handler (before the first step, or between two: saving
    the record, printing the next step's title) is recorded as the step it stopped: the one running,
    else the next one the run would have started."""
    if run.status != "running":
        return  # a step's handler recorded it
    rec = (next((r for r in run.steps if r.status == "running"), None)
           or next((r for r in run.steps if r.slug in to_run and r.status == "pending"), None))
    if rec is not None:
        rec.status, rec.error = "interrupted", "interrupted"
    run.status, run.finished_at = "interrupted", now_text()
    run.save()


def _run_steps(ctx: Context, run: RunRecord, to_run: list[str]) -> None:
    breach: MonitorBreach | None = None
    for step, rec in zip(STEPS, run.steps):
        forced = breach is not None and step.slug == "rollback"
        if step.slug not in to_run and not forced:
            continue
        if breach is not None and not forced:
            rec.status = "skipped"  # after a breach only the rollback runs
            continue
        ctx.echo(f"[{step.n}/{TOTAL}] {step.phase}: {step.title}")
        if hasattr(ctx.progress, "step"):
            ctx.progress.step(f"[{step.n}/{TOTAL}] {step.title}")
        rec.status, rec.started_at, rec.error = "running", now_text(), None
        ctx.current = step.slug
        run.save()
        t0 = time.perf_counter()
        try:
            rec.result = step.run(ctx)
            raise_if_stopped()  # a SIGTERM swallowed inside the step (etl.core.errors) stops the run here
            rec.product = step.product(ctx) if step.product else None
            rec.status = "ok"
            ctx.echo(rec.result)
        except KeyboardInterrupt:  # Ctrl-C or SIGTERM (etl.core.errors.Interrupted)
            rec.status = run.status = "interrupted"
            rec.error = "interrupted"
            raise
        except MonitorBreach as e:
            rec.status, rec.error, rec.result = "failed", str(e), e.result
            ctx.echo(e.result)
            breach = e
        except Exception as e:
            if stop_requested() is not None:  # an error met while unwinding from a stop is the stop
                rec.status = run.status = "interrupted"
                rec.error = "interrupted"
                raise
            rec.status = run.status = "failed"
            rec.error = str(e) if isinstance(e, EtlError) else f"{type(e).__name__}: {e}"
            raise
        finally:
            rec.seconds = time.perf_counter() - t0
            if run.status != "running":
                run.finished_at = now_text()
            run.save()
    if breach is not None:
        run.status, run.finished_at = "failed", now_text()
        run.save()
        raise PlaybookError(f"{breach} (no rollback ran)")
    run.status, run.finished_at = "ok", now_text()
    run.save()


def _final_report(ctx: Context, run: RunRecord) -> None:
    """The evidence report, as the run ended (failed, interrupted, --until, or after step 18)."""
    done = run.step("report")
    try:
        written = write_evidence(ctx)  # again, also after step 18: the page shows how the run ended
        if done is None or done.status != "ok":
            ctx.echo(f"evidence report: {written.path}")
    except Exception as e:  # noqa: BLE001 - the run's own outcome matters more than its page
        ctx.echo(f"note: the evidence report could not be written: {e}")


__all__ = ["migrate", "select", "step_of"]
