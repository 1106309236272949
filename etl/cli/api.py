"""The commands of the API (etl/api/): `etl serve`, the migrated tables and the migration's control
endpoints over HTTP; `etl monitor`, the API and the database watched against thresholds (its live
table is in progress.py); and `etl bench`, the API's benchmark."""

from __future__ import annotations

from typing import Optional

import typer
from rich.markup import escape

from ..core.config import load_settings
from .common import BaseUrlOpt, MysqlOpt, TokenOpt, app, cli_errors, err, show
from .progress import monitor_display


# ---------------------------------------------------------------- the API (issue 16)


@app.command()
@cli_errors
def serve(
    mysql: Optional[str] = MysqlOpt,
    host: Optional[str] = typer.Option(None, "--host", help="Address to listen on (default: BASE_URL's host, 127.0.0.1)."),
    port: Optional[int] = typer.Option(None, "--port", help="Port (default: BASE_URL's port, 8700)."),
    pool_size: int = typer.Option(16, "--pool-size", min=1, help="Database connections kept open (8 more may open under load)."),
):
    """Serve the migrated tables over HTTP as the app's backend does, plus the migration's control endpoints.

    Data: /health, /api/tickets (page, limit, search, category, status, cabang; keyset paging with after=), /api/tickets/years, /api/incidents, /api/incidents/stats, /api/customers, /api/vendors, /api/upload-sessions, and POST /api/<table>/bulk upserts. Control: /api/feature-flags, /api/migration/status, /api/migration/mismatches, /metrics (Prometheus). OpenAPI at /openapi.json, docs at /docs.

    Needs API_TOKEN (reads and writes); API_READ_TOKEN, when set, only reads (and may report mismatches). Runs until Ctrl-C.
    """
    from .. import playbook

    show(playbook.serve_api(load_settings(mysql_uri=mysql), host=host, port=port, pool_size=pool_size, echo=show))


@app.command()
@cli_errors
def monitor(
    base_url: Optional[str] = BaseUrlOpt,
    token: Optional[str] = TokenOpt,
    mysql: Optional[str] = MysqlOpt,
    threshold_error: float = typer.Option(0.01, "--threshold-error", help="Largest tolerated share of failed API requests in a sample."),
    threshold_latency_p95: float = typer.Option(2000, "--threshold-latency-p95", help="Largest tolerated p95 of the API probes, in ms."),
    interval: float = typer.Option(5.0, "--interval", min=0, help="Seconds between samples."),
    count: int = typer.Option(12, "--count", min=1, help="Samples to take (the run is bounded; 12 x 5 s = a minute)."),
    probes: int = typer.Option(5, "--probes", min=1, help="Reads of a page of 100 tickets per sample (latency and errors)."),
    fail_fast: bool = typer.Option(False, "--fail-fast", help="Stop at the first sample with a breach."),
    no_db: bool = typer.Option(False, "--no-db", help="Watch the API only (no database health)."),
):
    """Watch the API (health, errors, p95 latency), the database (Threads_running, connections against max_connections, buffer-pool hit ratio, slow-query and aborted-connect rates, restarts, replica lag) and the API's connection pool.

    Each sample is appended to RUNTIME_DIR/monitor/<time>.jsonl; a terminal shows a live table. Exit status 1 when any sample breached a threshold, each breach named with its metric, value and threshold. Database thresholds follow the mysqld_exporter alert rules (connections > 80 % and Threads_running > 60 % of max_connections, any slow query, uptime < 60 s, replica lag > 30 s) plus a buffer-pool hit ratio under 95 % and over 1 aborted connect per second.
    """
    from .. import playbook

    result = playbook.monitor_api(load_settings(mysql_uri=mysql, base_url=base_url, api_token=token),
                                  threshold_error=threshold_error, threshold_latency_p95=threshold_latency_p95,
                                  with_db=not no_db, note=lambda text: err.print(escape(text), highlight=False),
                                  display=monitor_display, interval=interval, count=count, probes=probes,
                                  fail_fast=fail_fast)
    show(result)
    if not result.ok:
        raise typer.Exit(1)



@app.command()
@cli_errors
def bench(
    base_url: Optional[str] = BaseUrlOpt,
    token: Optional[str] = typer.Option(None, "--token", help="Bearer token (default: API_TOKEN; else a login with API_USERNAME/API_PASSWORD at POST /api/auth/login, for the app's backend). Never printed."),
    rate: float = typer.Option(20.0, "--rate", help="Requests started per second, on schedule whatever the server does (open model)."),
    duration: float = typer.Option(10.0, "--duration", help="Seconds of load."),
    endpoint: Optional[list[str]] = typer.Option(None, "--endpoint", help="A path (with its query) to request, repeatable; default: a page of 100 of tickets, incidents, customers, vendors and upload-sessions (the backend's page=1&limit=100)."),
    bulk_chunks: int = typer.Option(3, "--bulk-chunks", min=0, help="Bulk-insert chunks of CHUNK_SIZE synthetic tickets to time (batch_id test-bench-*, deleted afterwards); 0: none."),
    chunk_size: Optional[int] = typer.Option(None, "--chunk-size", help="Rows per bulk chunk (default: CHUNK_SIZE, 200)."),
    threshold_p95: float = typer.Option(2000, "--threshold-p95", help="Largest tolerated p95 latency over all endpoints, ms."),
    threshold_chunk: float = typer.Option(5.0, "--threshold-chunk", help="Largest tolerated seconds per bulk chunk."),
    threshold_error: float = typer.Option(0.01, "--threshold-error", help="Largest tolerated share of failed requests."),
    threshold_memory: float = typer.Option(100, "--threshold-memory", help="Largest tolerated peak memory of the bench itself, MB."),
):
    """Benchmark the API (the seed's perf-bench): tickets, incidents, customers, vendors and upload-sessions pages, and bulk inserts.

    Requests start on schedule whatever the server does and latency counts from that due time (open model, as wrk2 and vegeta: a stall cannot hide). Prints p50/p90/p95/p99/p99.9/max per endpoint (HDR histogram), errors by class, achieved against target rate, seconds per bulk chunk and the bench's own peak memory; writes RUNTIME_DIR/bench/<time>/report.json and a self-contained report.html. Exit status 1 on any breach (defaults: p95 < 2 s, < 5 s a chunk, errors < 1 %, memory < 100 MB).
    """
    from .. import playbook

    result = playbook.bench_api(load_settings(base_url=base_url, api_token=token, chunk_size=chunk_size), rate=rate,
                                duration=duration, endpoints=endpoint, bulk_chunks=bulk_chunks, threshold_p95=threshold_p95,
                                threshold_chunk=threshold_chunk, threshold_error=threshold_error,
                                threshold_memory=threshold_memory)
    show(result)
    if not result.ok:
        raise typer.Exit(1)

