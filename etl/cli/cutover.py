"""`etl flags` and `etl cutover`: the feature flags the app's browsers obey (list, set, history,
rollback, every change recorded) and the guarded cutover through its stages (stage, advance, status,
rollback), whose forward moves pass the guards the options below tune."""

from __future__ import annotations

from typing import Optional

import typer

from ..core.config import load_settings
from .common import MysqlOpt, cli_errors, show

flags_app = typer.Typer(help="Feature flags the app's browsers obey (dataSource, writeMode, ...): list, set, history, rollback.\n\n"
                        "Every change and refusal is recorded in MySQL (feature_flag_history) in the same transaction "
                        "as the change, and mirrored to RUNTIME_DIR/feature-flags.json.", no_args_is_help=True)
cutover_app = typer.Typer(help="The guarded cutover: stages off, dual-write, shadow, live, rampdown, complete.", no_args_is_help=True)


# ---------------------------------------------------------------- flags and cutover (issue 17)


@flags_app.command("list")
@cli_errors
def flags_list(mysql: Optional[str] = MysqlOpt):
    """Show every flag, who changed it last, and the cutover stage the flags describe."""
    from .. import playbook

    show(playbook.flags_list(load_settings(mysql_uri=mysql)))


@flags_app.command("set")
@cli_errors
def flags_set(
    assignments: list[str] = typer.Argument(..., help="KEY=VALUE pairs: dataSource=indexeddb|mysql|dual-read, "
                                            "writeMode=indexeddb-only|mysql-only|dual-write, migrationMode, debugMode, "
                                            "performanceMonitoring, rollbackMode = true|false."),
    reason: Optional[str] = typer.Option(None, "--reason", help="Why (required): recorded in the history."),
    mysql: Optional[str] = MysqlOpt,
):
    """Change flags: values and the combination are checked; the change or the refusal is recorded.

    A combination that makes no sense (reading from MySQL while writing only to IndexedDB, ...) is refused, and so is a move to a later cutover stage: that goes through the guards (`etl cutover stage NAME`). Moving back is allowed.
    """
    from .. import playbook

    show(playbook.flags_set(load_settings(mysql_uri=mysql), assignments, reason=reason))


@flags_app.command("history")
@cli_errors
def flags_history(
    limit: int = typer.Option(50, "--limit", min=1, help="How many of the latest entries."),
    mysql: Optional[str] = MysqlOpt,
):
    """Every change and refusal, oldest first: when, who, action, stage from -> to, flags from -> to, reason."""
    from .. import playbook

    show(playbook.flags_history(load_settings(mysql_uri=mysql), limit=limit))


@flags_app.command("rollback")
@cli_errors
def flags_rollback(
    reason: Optional[str] = typer.Option(None, "--reason", help="Why: recorded in the history."),
    mysql: Optional[str] = MysqlOpt,
):
    """Return reads and writes to IndexedDB at once and set rollbackMode (always allowed, no guards)."""
    from .. import playbook

    show(playbook.flags_rollback(load_settings(mysql_uri=mysql), reason=reason))


def _move(name, force, reason, mysql, max_mismatch_rate, min_compared, bench_max_age_h, monitor_max_age_h):
    from .. import playbook

    result = playbook.cutover_move(load_settings(mysql_uri=mysql), name, force=force, reason=reason,
                                   max_mismatch_rate=max_mismatch_rate, min_compared=min_compared,
                                   bench_max_age_h=bench_max_age_h, monitor_max_age_h=monitor_max_age_h)
    show(result)
    if result.refused:
        raise typer.Exit(1)


ForceOpt = typer.Option(False, "--force", help="Move even though guards fail (needs --reason; recorded as forced).")
ReasonOpt = typer.Option(None, "--reason", help="Why: recorded in the history (required with --force).")
RateOpt = typer.Option(0.001, "--max-mismatch-rate", help="Consistency guard: highest share of compared records that may differ.")
ComparedOpt = typer.Option(1000, "--min-compared", help="Consistency guard: fewest records browsers must have compared.")
BenchAgeOpt = typer.Option(24.0, "--bench-max-age", help="Bench guard: oldest `etl bench` report accepted (RUNTIME_DIR/bench/*/report.json), in hours.")
MonitorAgeOpt = typer.Option(1.0, "--monitor-max-age", help="Monitor guard: oldest `etl monitor` run accepted (RUNTIME_DIR/monitor/*.jsonl), in hours.")


@cutover_app.command("stage")
@cli_errors
def cutover_stage(
    name: str = typer.Argument(..., help="off, dual-write, shadow, live, rampdown or complete."),
    force: bool = ForceOpt, reason: Optional[str] = ReasonOpt, mysql: Optional[str] = MysqlOpt,
    max_mismatch_rate: float = RateOpt, min_compared: int = ComparedOpt,
    bench_max_age: float = BenchAgeOpt, monitor_max_age: float = MonitorAgeOpt,
):
    """Move the cutover to a stage. Forward: one stage at a time, only when every guard passes.

    Guards: sequence, parity (STAGE_DIR vs MySQL, run now), expectations (the suites, run now), bench and monitor (their latest reports under RUNTIME_DIR), and from shadow on consistency (browsers' dual-read reports). A refusal names the failing guards and their figures and is recorded; exit status 1. Moving back needs no guard.
    """
    _move(name, force, reason, mysql, max_mismatch_rate, min_compared, bench_max_age, monitor_max_age)


@cutover_app.command("advance")
@cli_errors
def cutover_advance(
    force: bool = ForceOpt, reason: Optional[str] = ReasonOpt, mysql: Optional[str] = MysqlOpt,
    max_mismatch_rate: float = RateOpt, min_compared: int = ComparedOpt,
    bench_max_age: float = BenchAgeOpt, monitor_max_age: float = MonitorAgeOpt,
):
    """Move the cutover to the next stage, on the same guards as `etl cutover stage`."""
    _move(None, force, reason, mysql, max_mismatch_rate, min_compared, bench_max_age, monitor_max_age)


@cutover_app.command("status")
@cli_errors
def cutover_status(mysql: Optional[str] = MysqlOpt,
                   buckets: int = typer.Option(20, "--buckets", min=1, help="How many buckets with differing records to list.")):
    """The stage, browsers' dual-read consistency per table and bucket, and the last guarded move's guards."""
    from .. import playbook

    show(playbook.cutover_status(load_settings(mysql_uri=mysql), bucket_limit=buckets))


@cutover_app.command("rollback")
@cli_errors
def cutover_rollback(reason: Optional[str] = typer.Option(None, "--reason", help="Why: recorded in the history."),
                     mysql: Optional[str] = MysqlOpt):
    """The same as `etl flags rollback`: reads and writes back to IndexedDB, rollbackMode on. Always allowed."""
    flags_rollback(reason=reason, mysql=mysql)
