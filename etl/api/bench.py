"""`etl bench` (the seed's perf-bench): an open-model load on the API, HDR percentiles, bulk-insert
chunks, the bench's own peak memory, thresholds that fail the run.

Open model, as wrk2 and vegeta do it: request i is *due* at start + i / rate whatever the server
does, and its latency is measured from that due time, not from when it was sent. A closed-loop
client waits for each answer before asking again, so when the server stalls it stops asking and
records one slow request where users would have met many ("coordinated omission"); here the
requests due during a stall are counted with the time they waited.

Percentiles come from an HDR histogram (the `hdrhistogram` package: microseconds, 3 significant
digits) per endpoint and overall. Bulk inserts are timed separately, one CHUNK_SIZE chunk of
synthetic tickets at a time (batch_id test-bench-<run>, ids bench-<run>-<n>), and deleted
afterwards through DELETE /api/tickets/batch/<batch_id> where the API has it.

Against the app's own backend: give --token, or set API_USERNAME and API_PASSWORD and the bench
logs in with POST /api/auth/login {"username", "password"} and takes the token from the reply's
`token`, `data.token` or `accessToken` (an assumption about the backend: tests/fixtures/backend_api.json).
"""

from __future__ import annotations

import asyncio
import json
import os
import resource
import time
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

import httpx
from hdrh.histogram import HdrHistogram

from ..core.config import mask_secrets
from ..core.errors import ApiError
from ..core.result import Result

ENDPOINTS = ("/api/tickets?page=1&limit=100", "/api/incidents?page=1&limit=100", "/api/customers?page=1&limit=100",
             "/api/vendors?page=1&limit=100", "/api/upload-sessions?page=1&limit=100")
PERCENTILES = (50, 90, 95, 99, 99.9)
MAX_SERIES = 50_000  # latency-over-time points kept for the report


@dataclass(frozen=True)
class BenchThresholds:
    """The seed's defaults: p95 < 2 s, < 5 s per bulk chunk, errors < 1 %, memory < 100 MB."""

    p95_ms: float = 2000.0
    chunk_s: float = 5.0
    error_rate: float = 0.01
    memory_mb: float = 100.0


@dataclass(frozen=True)
class EndpointStats:
    endpoint: str
    requests: int
    errors: int
    p50_ms: float
    p90_ms: float
    p95_ms: float
    p99_ms: float
    p999_ms: float
    max_ms: float
    mean_ms: float


@dataclass(frozen=True)
class BenchResult(Result):
    base_url: str
    target_rps: float
    achieved_rps: float  # requests sent per second over the sending window
    throughput_rps: float  # answers per second over the whole run
    duration_s: float
    overall: EndpointStats
    endpoints: tuple[EndpointStats, ...]
    error_classes: dict
    error_rate: float
    chunk_size: int
    chunk_seconds: tuple[float, ...]
    chunk_errors: int
    peak_memory_mb: float
    thresholds: BenchThresholds
    breaches: tuple[str, ...]
    report_dir: str
    series: list = field(default_factory=list, repr=False)  # [offset_s, latency_ms, endpoint index, status]

    @property
    def ok(self) -> bool:
        return not self.breaches

    def asdict(self) -> dict:
        """The figures without the latency series (up to MAX_SERIES points): a run record keeps the
        summary; report.json, written beside the HTML, holds the series too."""
        return {k: v for k, v in super().asdict().items() if k != "series"}

    def __str__(self) -> str:
        lines = [f"bench of {self.base_url}: {self.overall.requests:,} requests at {self.target_rps:g}/s target, "
                 f"{self.achieved_rps:.1f}/s sent, {self.throughput_rps:.1f}/s answered; errors {self.error_rate:.2%} "
                 f"{self.error_classes or ''}",
                 f"  {'endpoint':<40}{'n':>6}{'p50':>9}{'p90':>9}{'p95':>9}{'p99':>9}{'p99.9':>9}{'max':>9}  (ms, from the due time)"]
        for e in (*self.endpoints, self.overall):
            lines.append(f"  {e.endpoint:<40}{e.requests:>6}{e.p50_ms:>9.1f}{e.p90_ms:>9.1f}{e.p95_ms:>9.1f}{e.p99_ms:>9.1f}"
                         f"{e.p999_ms:>9.1f}{e.max_ms:>9.1f}")
        if self.chunk_seconds:
            lines.append(f"  bulk insert: {len(self.chunk_seconds)} chunk(s) of {self.chunk_size}: "
                         + ", ".join(f"{s:.3f}" for s in self.chunk_seconds) + " s" + (f" ({self.chunk_errors} failed)" if self.chunk_errors else ""))
        lines.append(f"  bench peak memory: {self.peak_memory_mb:.1f} MB")
        lines.append(f"  report: {self.report_dir}/report.html (and report.json)")
        lines += [f"  BREACH {b}" for b in self.breaches] or ["  within every threshold"]
        return "\n".join(lines)


def login(base_url: str, username: str, password: str) -> str:
    """The backend's token from POST /api/auth/login (see the module's docstring)."""
    try:
        r = httpx.post(f"{base_url}/api/auth/login", json={"username": username, "password": password}, timeout=30)
    except httpx.HTTPError as e:
        raise ApiError(f"login at {base_url}/api/auth/login failed: {type(e).__name__}") from None
    if r.status_code != 200:
        raise ApiError(f"login at {base_url}/api/auth/login answered {r.status_code}")
    body = r.json()
    token = body.get("token") or (body.get("data") or {}).get("token") or body.get("accessToken")
    if not token:
        raise ApiError("the login reply holds no token (looked for token, data.token, accessToken)")
    return token


def peak_memory_mb() -> float:
    """This process's peak resident memory. VmHWM, not ru_maxrss: on Linux ru_maxrss survives exec, so
    a bench started by a big parent (a test runner) would report the parent's peak."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def _hist() -> HdrHistogram:
    return HdrHistogram(1, 3_600_000_000, 3)  # 1 us .. 1 h


def _stats(name: str, h: HdrHistogram, errors: int) -> EndpointStats:
    ms = lambda us: round(us / 1000, 3)  # noqa: E731
    n = h.get_total_count()
    p = {q: ms(h.get_value_at_percentile(q)) if n else 0.0 for q in PERCENTILES}
    return EndpointStats(name, n, errors, p[50], p[90], p[95], p[99], p[99.9], ms(h.get_max_value()) if n else 0.0,
                         round(h.get_mean_value() / 1000, 3) if n else 0.0)


def _classify(status: int | None, exc: BaseException | None) -> str | None:
    if exc is not None:
        if isinstance(exc, httpx.TimeoutException):
            return "timeout"
        if isinstance(exc, httpx.ConnectError):
            return "connect"
        return f"other:{type(exc).__name__}"
    if status >= 500:
        return "5xx"
    if status >= 400:
        return "4xx"
    return None


async def _open_load(base_url: str, headers: dict, endpoints, rate: float, duration: float, timeout: float):
    """Issue rate*duration requests on schedule; each result is (due offset, latency s, endpoint, status, error class)."""
    total = max(1, int(rate * duration))
    results = []
    # Idle connections are dropped by the client before a server would (uvicorn: 5 s), so no request
    # is sent on a connection the server is closing (it would fail as a "disconnected" error).
    limits = httpx.Limits(max_connections=512, max_keepalive_connections=64, keepalive_expiry=2.0)
    async with httpx.AsyncClient(base_url=base_url, headers=headers, timeout=timeout, limits=limits) as client:
        loop = asyncio.get_running_loop()
        start = loop.time() + 0.05
        sent_last = start

        async def one(i: int, due: float):
            path = endpoints[i % len(endpoints)]
            status, exc = None, None
            try:
                r = await client.get(path)
                await r.aread()
                status = r.status_code
            except httpx.HTTPError as e:
                exc = e
            results.append((due - start, loop.time() - due, i % len(endpoints), status, _classify(status, exc)))

        tasks = []
        for i in range(total):
            due = start + i / rate
            delay = due - loop.time()
            if delay > 0:
                await asyncio.sleep(delay)
            tasks.append(asyncio.create_task(one(i, due)))
            sent_last = loop.time()
        await asyncio.gather(*tasks)
        end = loop.time()
    return results, total, sent_last - start, end - start


def run_coroutine(coro):
    """asyncio.run, also where this thread's event loop is running already (a Jupyter kernel's, so a
    notebook can run the playbook): there the coroutine runs on a thread and a loop of its own."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(coro)
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(1, thread_name_prefix="etl-bench") as pool:
        return pool.submit(asyncio.run, coro).result()


BATCH_PREFIX = "test-bench-"  # the batch_id of the synthetic tickets (+ the run); what a killed bench leaves is found by it


def _bulk(base_url: str, headers: dict, chunks: int, chunk_size: int, run: str, timeout: float):
    """Seconds per CHUNK_SIZE chunk of synthetic tickets, then their deletion; (seconds, failures)."""
    seconds, failed = [], 0
    batch = f"{BATCH_PREFIX}{run}"
    now = datetime.now(timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")
    with httpx.Client(base_url=base_url, headers=headers, timeout=timeout) as client:
        for c in range(chunks):
            records = [{"id": f"bench-{run}-{c}-{i}", "open_time": now, "name": "perf-bench", "customer_id": "bench",
                        "category": "bench", "status": "Open", "cabang": "bench", "batch_id": batch,
                        "description": "synthetic row written by etl bench"} for i in range(chunk_size)]
            t0 = time.perf_counter()
            try:
                ok = client.post("/api/tickets/bulk", json={"records": records}).status_code < 300
            except httpx.HTTPError:
                ok = False
            seconds.append(round(time.perf_counter() - t0, 4))
            failed += not ok
        if chunks:
            try:
                client.delete(f"/api/tickets/batch/{batch}")
            except httpx.HTTPError:
                pass
    return seconds, failed


def bench(base_url: str, token: str | None, runtime_dir: Path, *, rate: float = 20.0, duration: float = 10.0,
          endpoints=ENDPOINTS, bulk_chunks: int = 3, chunk_size: int = 200, thresholds: BenchThresholds = BenchThresholds(),
          timeout: float = 30.0, report_dir: Path | None = None) -> BenchResult:
    if rate <= 0 or duration <= 0 or bulk_chunks < 0:
        raise ApiError("--rate and --duration must be positive, --bulk-chunks not negative")
    if token is None and os.environ.get("API_USERNAME") and os.environ.get("API_PASSWORD"):
        token = login(base_url, os.environ["API_USERNAME"], os.environ["API_PASSWORD"])
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    run = uuid.uuid4().hex[:8]
    results, total, send_window, wall = run_coroutine(_open_load(base_url, headers, tuple(endpoints), rate, duration, timeout))
    chunk_seconds, chunk_failed = _bulk(base_url, headers, bulk_chunks, chunk_size, run, timeout)

    overall, per = _hist(), [_hist() for _ in endpoints]
    errors, classes = [0] * len(endpoints), {}
    for _, latency, e, _, cls in results:
        us = max(1, int(latency * 1_000_000))
        overall.record_value(us)
        per[e].record_value(us)
        if cls:
            errors[e] += 1
            classes[cls] = classes.get(cls, 0) + 1
    stats = tuple(_stats(ep, h, n) for ep, h, n in zip(endpoints, per, errors))
    all_stats = _stats("all", overall, sum(errors))
    error_rate = sum(errors) / len(results)
    peak = peak_memory_mb()

    breaches = []
    if all_stats.p95_ms >= thresholds.p95_ms:
        breaches.append(f"p95 = {all_stats.p95_ms:.1f} ms >= threshold {thresholds.p95_ms:g} ms")
    if error_rate >= thresholds.error_rate:
        breaches.append(f"error rate = {error_rate:.4f} >= threshold {thresholds.error_rate:g}")
    if chunk_seconds and max(chunk_seconds) >= thresholds.chunk_s:
        breaches.append(f"bulk chunk = {max(chunk_seconds):.3f} s >= threshold {thresholds.chunk_s:g} s")
    if chunk_failed:
        breaches.append(f"bulk chunks failed = {chunk_failed} of {len(chunk_seconds)}")
    if peak >= thresholds.memory_mb:
        breaches.append(f"bench peak memory = {peak:.1f} MB >= threshold {thresholds.memory_mb:g} MB")

    out = report_dir or runtime_dir / "bench" / datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%S%fZ")
    out.mkdir(parents=True, exist_ok=True)
    series = sorted([round(o, 4), round(lat * 1000, 3), e, s or 0] for o, lat, e, s, _ in results)[:MAX_SERIES]
    result = BenchResult(base_url, rate, total / send_window if send_window > 0 else float(total), len(results) / wall,
                         round(wall, 3), all_stats, stats, classes, error_rate, chunk_size, tuple(chunk_seconds),
                         chunk_failed, round(peak, 1), thresholds, tuple(breaches), str(out), series)
    from .bench_report import render_html

    body = {**result.asdict(), "series": result.series, "endpoint_names": list(endpoints),
            "generated_at": datetime.now(timezone.utc).isoformat(timespec="seconds")}
    (out / "report.json").write_text(mask_secrets(json.dumps(body), token), encoding="utf-8")
    (out / "report.html").write_text(mask_secrets(render_html(result, list(endpoints)), token), encoding="utf-8")
    return result
