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

    early = ctx.taken("source-side")  # read during the load (warm_up); validate reads it again if the stage changed
    try:
        source = early.result() if early is not None else None
    except Exception:  # noqa: BLE001 - read again inside validate, which names what fails
        source = None
    return validate(ctx.target(), ctx.settings.stage_dir, root=gx_root(ctx.settings.root), note=ctx.note_for("aggregations"),
                    source=source)


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
    """While the load waits on the server, when this run validates: import Great Expectations (seconds
    of one core) and read validation's source side from the stage (it needs no MySQL), in a daemon
    thread, so that step 9 is left with MySQL's figures and the results."""
    if "aggregations" not in ctx.to_run:
        return
    import threading
    from concurrent.futures import Future

    import connectorx  # noqa: F401 - the load's read-backs import it later: imported first, the two threads never meet in an import

    from ..check.validate import import_gx, read_source

    done: Future = Future()
    stage = ctx.settings.stage_dir

    def work():
        try:
            import_gx()
            done.set_result(read_source(stage))
        except BaseException as e:  # noqa: BLE001 - step 9 reads it again and reports what fails
            done.set_exception(e)

    ctx.put_beside("source-side", done)
    threading.Thread(target=work, name="etl-validation-source", daemon=True).start()


def bench_and_health(ctx: Context, label: str):
    """A benchmark of the API and two monitor samples: the fresh reports the cutover's guards read."""
    from ..api.bench import BenchThresholds, bench
    from ..api.monitor import monitor

    url, token = ctx.api()
    with ctx.target().connect() as conn, conn.cursor() as cur:  # rows of a benchmark killed before its cleanup
        cur.execute("DELETE FROM tickets WHERE batch_id LIKE 'test-bench-%%'")
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


