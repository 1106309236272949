"""Steps 8-10, validation: parity of stage and MySQL, the expectation suites, and the benchmark of
the API with two monitor samples (the fresh reports the cutover's guards read)."""

from __future__ import annotations

from ..core.errors import PlaybookError
from .context import Context, Parts


def parity(ctx: Context):
    from ..report.parity import parity_with_report

    result = parity_with_report(ctx.settings.stage_dir, ctx.target(), runtime_dir=ctx.settings.runtime_dir, note=ctx.note)
    result.raise_for_mismatch()
    return result


def aggregations(ctx: Context):
    from ..check.suites import gx_root
    from ..check.validate import check
    from ..report.datadocs import validate

    result = validate(ctx.target(), ctx.settings.stage_dir, root=gx_root(ctx.settings.root), note=ctx.note)
    return check(result, echo=lambda _: None)  # shown by the runner, as every step's result


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


