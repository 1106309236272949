"""Steps 11-15, cutover: the guarded moves of the flags (etl.cutover), each checked through the
API against the export, the performance test, and the post-cutover monitor whose breach sends the
run to the rollback (step 17)."""

from __future__ import annotations

from dataclasses import dataclass

from ..core.errors import PlaybookError
from ..core.result import Result
from .context import Context, Parts
from .validation import bench_and_health


def _move(ctx: Context, name: str):
    """Move the flags forward to stage `name` unless they are there already (or past it)."""
    from ..cutover import Thresholds, move_to
    from ..cutover.stages import stage

    now = ctx.stage_now()
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
    from ..stage.folder import stage_summary

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
    from ..api.verify import verify_reads

    url, token = ctx.api()
    need = _need(ctx)
    per_bucket = ctx.options.per_bucket if _comparable(ctx) > need else ALL  # a small export: every record
    stage = ctx.settings.stage_dir  # upload sessions are expected as the load finalized them
    cap = ctx.options.verify_max
    result = verify_reads(url, token, ctx.settings.export_dir, stage_name=stage_name, per_bucket=per_bucket,
                          stage_dir=stage, max_per_store=cap)
    if sum(s.compared for s in result.stores) < need:  # few buckets: a second pass over every record
        result = verify_reads(url, token, ctx.settings.export_dir, stage_name=stage_name, per_bucket=ALL,
                              stage_dir=stage, max_per_store=cap)
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
    return bench_and_health(ctx, "performance test")


def cutover(ctx: Context):
    moves = [_move(ctx, "rampdown"), _move(ctx, "complete")]
    return Parts(tuple(m for m in moves if m)) if any(moves) else AlreadyThere(ctx.stage_now())


@dataclass(frozen=True)
class AlreadyThere(Result):
    """A cutover step that found the flags at its stage (or past it): a killed run had moved them."""

    stage: str | None

    def __str__(self) -> str:
        return f"the flags are at {self.stage} already"


def post_cutover_monitor(ctx: Context):
    from ..api.monitor import monitor

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


