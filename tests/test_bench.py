"""`etl bench` against `etl serve` over the 30k-ticket sample: a report with every field, a threshold
below the observed p95 fails the run, and a stalling server shows its stalls in p99 (open model)."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from api_helpers import TOKEN, loaded_database, running_api
from etl.api.bench import BenchThresholds, bench, run_coroutine
from load_helpers import staged_sample

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def sample_30k(mysql_server, tmp_path_factory):
    with loaded_database(mysql_server[0], staged_sample(tmp_path_factory.mktemp("bench"), 30_000)) as target:
        yield target


def test_report_has_every_field_and_a_low_threshold_fails(sample_30k, tmp_path):
    with running_api(sample_30k) as (url, _):
        env = {**os.environ, "RUNTIME_DIR": str(tmp_path), "API_TOKEN": TOKEN, "BASE_URL": url}
        # The shared machine is noisy: this run checks the report, not the speed (generous p95 ceiling).
        done = subprocess.run([sys.executable, "-m", "etl", "bench", "--rate", "20", "--duration", "5", "--bulk-chunks", "2",
                               "--threshold-p95", "60000", "--threshold-chunk", "60"],
                              cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
        assert done.returncode == 0, done.stdout + done.stderr
        report = json.loads(next((tmp_path / "bench").glob("*/report.json")).read_text())
        for key in ("target_rps", "achieved_rps", "throughput_rps", "error_rate", "error_classes", "chunk_seconds",
                    "peak_memory_mb", "thresholds", "breaches", "endpoints", "overall", "series"):
            assert key in report, key
        assert report["overall"]["requests"] == 100 and report["error_rate"] == 0 and report["ok"]
        assert {e["endpoint"].split("?")[0] for e in report["endpoints"]} == {
            "/api/tickets", "/api/incidents", "/api/customers", "/api/vendors", "/api/upload-sessions"}
        for e in report["endpoints"]:
            assert e["requests"] == 20 and 0 < e["p50_ms"] <= e["p90_ms"] <= e["p95_ms"] <= e["p99_ms"] <= e["p999_ms"] <= e["max_ms"]
        assert len(report["chunk_seconds"]) == 2 and all(s > 0 for s in report["chunk_seconds"])
        assert 0 < report["peak_memory_mb"] < 100 and report["achieved_rps"] > 15
        html = next((tmp_path / "bench").glob("*/report.html")).read_text()
        assert "<svg" in html and "Latency over time" in html and "Percentile spectrum" in html
        assert "http://" not in html.replace(url, "").replace("http://www.w3.org/2000/svg", "")  # nothing fetched from elsewhere
        assert TOKEN not in done.stdout + done.stderr + html + json.dumps(report)
        with sample_30k.connect() as conn, conn.cursor() as cur:  # the synthetic bulk rows were removed
            cur.execute("SELECT COUNT(*) FROM tickets WHERE batch_id LIKE 'test-bench-%%'")
            assert cur.fetchone()[0] == 0

        observed = report["overall"]["p95_ms"]
        low = subprocess.run([sys.executable, "-m", "etl", "bench", "--rate", "20", "--duration", "3", "--bulk-chunks", "0",
                              "--threshold-p95", str(observed / 100)], cwd=ROOT, env=env, capture_output=True, text=True,
                             timeout=600)
        assert low.returncode == 1 and "BREACH p95 = " in low.stdout and f"threshold {observed / 100:g} ms" in low.stdout


def test_a_stalling_server_shows_in_p99(sample_30k, tmp_path):
    # Test hook: every 20th /api/ request stops the whole server for 1 s.
    with running_api(sample_30k, stall="1/20") as (url, _):
        result = bench(url, TOKEN, tmp_path, rate=10, duration=10, bulk_chunks=0,
                       endpoints=("/api/tickets?page=1&limit=100",), thresholds=BenchThresholds(p95_ms=60_000))
    assert result.overall.requests == 100 and result.error_rate == 0
    assert result.overall.p99_ms >= 900 and result.overall.max_ms >= 900
    # 5 requests met a stall; the requests due while the server stood still waited too, and are counted
    # with that wait (a closed-loop client would have sent none of them).
    waited = [p for p in result.series if p[1] >= 300]
    assert len(waited) > 5, result


def test_the_load_runs_also_where_an_event_loop_runs_already():
    """A notebook's kernel runs an event loop in its thread: the bench's coroutine then runs on one of its own."""
    async def answer():
        return asyncio.get_running_loop()

    async def inside_a_running_loop():
        return asyncio.get_running_loop(), run_coroutine(answer())

    outer, inner = asyncio.run(inside_a_running_loop())
    assert inner is not outer
    assert run_coroutine(answer()) is not None
