"""Steps 8-10, validation: parity of stage and MySQL, the expectation suites, and the benchmark of
the API with two monitor samples (the fresh reports the cutover's guards read)."""

from __future__ import annotations

from ..core.errors import PlaybookError
from .context import Context, Parts


def parity(ctx: Context):
    """Step 8. When step 9 runs in this run too, its suites start now, beside the comparison: both
    only read the stage and MySQL, and MySQL computes one's figures while this process reads the
    other's. Step 9 still counts only after parity passed: a mismatch stops the run here."""
    from ..report.parity import parity_with_report

    if "aggregations" in ctx.to_run:
        ctx.start_beside("aggregations", lambda: _validate(ctx))
    result = parity_with_report(ctx.settings.stage_dir, ctx.target(), runtime_dir=ctx.settings.runtime_dir, note=ctx.note)
    result.raise_for_mismatch()
    return result


def _validate(ctx: Context):
    from ..check.suites import gx_root
    from ..report.datadocs import validate

    return validate(ctx.target(), ctx.settings.stage_dir, root=gx_root(ctx.settings.root), note=ctx.note_for("aggregations"))


def aggregations(ctx: Context):
    from ..check.validate import check

    early = ctx.taken("aggregations")
    if early is not None:
        ctx.note("validate: the suites started beside parity; waiting for their results")
    result = early.result() if early is not None else _validate(ctx)
    checked = check(result, echo=lambda _: None)  # shown by the runner, as every step's result; raises when failed
    from ..cutover.guards import remember_expectations

    remember_expectations(ctx.settings, ctx.target(), result)  # the first move's guard reuses it (parity re-checked)
    return checked


def warm_up(ctx: Context) -> None:
    """Import Great Expectations in a daemon thread while the load waits on the server, when this run
    validates: its import is seconds of one core that step 9 would otherwise wait for."""
    if "aggregations" not in ctx.to_run:
        return
    import threading

    import connectorx  # noqa: F401 - the load's read-backs import it later: imported first, the two threads never meet in an import

    from ..check.validate import import_gx

    def work():
        try:
            import_gx()
        except Exception:  # noqa: BLE001 - step 9 imports it again and reports what fails
            pass

    threading.Thread(target=work, name="etl-import-gx", daemon=True).start()


def bench_and_health(ctx: Context, label: str):
    """A benchmark of the API and two monitor samples: the fresh reports the cutover's guards read."""
    from ..api.bench import BATCH_PREFIX, BenchThresholds, bench
    from ..api.monitor import monitor

    url, token = ctx.api()
    with ctx.target().connect() as conn, conn.cursor() as cur:  # rows of a benchmark killed before its cleanup
        cur.execute("DELETE FROM tickets WHERE batch_id LIKE %s", (BATCH_PREFIX + "%",))
    # No memory threshold: the seed's 100 MB is the bench client's own (`etl bench` run alone); here the
    # client shares a process with the stage's frames.
    b = bench(url, token, ctx.settings.runtime_dir, rate=ctx.options.bench_rate, duration=ctx.options.bench_seconds,
              chunk_size=ctx.settings.chunk_size, thresholds=BenchThresholds(memory_mb=float("inf")))
    if not b.ok:
        raise PlaybookError(f"{label}: the benchmark breached its thresholds: {'; '.join(b.breaches)}")
    m = monitor(url, token, ctx.target(), ctx.settings.runtime_dir, thresholds=ctx.monitor_thresholds(), count=2, interval=1.0)
    if not m.ok:
        raise PlaybookError(f"{label}: the API or the database is not healthy: {m}")
    return Parts((b, m))


def benchmark(ctx: Context):
    return bench_and_health(ctx, "performance benchmark")


