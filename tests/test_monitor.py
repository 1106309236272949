"""`etl monitor` sees planted breaches (API stopped, a slow endpoint, a database threshold), names them,
exits non-zero, and its JSONL series holds every sample."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from api_helpers import TOKEN, free_port, running_api
from etl.api.monitor import Thresholds, monitor, rows_for_display

ROOT = Path(__file__).resolve().parent.parent


def series(result) -> list[dict]:
    return [json.loads(line) for line in Path(result.series).read_text().splitlines()]


def test_healthy_api_database_and_pool_are_sampled(schema_target, tmp_path):
    with running_api(schema_target) as (url, _):
        result = monitor(url, TOKEN, schema_target, tmp_path, interval=0.3, count=3, probes=3)
    samples = series(result)
    assert [s["sample"] for s in samples] == [1, 2, 3] and result.samples == 3
    assert not [b for _, b in result.breaches if b.metric.startswith(("api.", "pool."))], result
    last = samples[-1]
    assert last["api"]["up"] == 1 and last["api"]["requests"] == 4 and last["api"]["p95_ms"] > 0
    assert last["pool"]["size"] >= 1 and last["pool"]["requests_total"] >= 8
    assert last["db"]["up"] == 1 and last["db"]["max_connections"] > 0 and last["db"]["uptime"] > 0
    assert "db.connections_ratio" in last["derived"] and "db.queries_per_s" in last["derived"]
    assert "pool.timeouts" in last["derived"] and TOKEN not in Path(result.series).read_text()


def test_a_database_threshold_breach_is_named(schema_target, tmp_path):
    # Threads_running is at least 1 (the monitor's own query): a ceiling of 0 must be breached.
    result = monitor(f"http://127.0.0.1:{free_port()}", None, schema_target, tmp_path, interval=0, count=1, probes=1,
                     thresholds=Thresholds(threads_running_ratio=0.0))
    metrics = {b.metric for _, b in result.breaches}
    assert "db.threads_running_ratio" in metrics and "api.up" in metrics
    assert "db.threads_running_ratio" in str(result) and "threshold 0" in str(result)


def test_a_slow_endpoint_breaches_the_p95(schema_target, tmp_path):
    with running_api(schema_target, stall="2.2") as (url, _):  # test hook: every /api/ request waits 2.2 s
        result = monitor(url, TOKEN, None, tmp_path, interval=0, count=2, probes=2)
    found = [b for _, b in result.breaches if b.metric == "api.p95_ms"]
    assert len(found) == 2 and all(b.value >= 2200 and b.threshold == 2000 for b in found)
    assert len(series(result)) == 2 and all(s["breaches"] for s in series(result))
    rows = {r[0]: r for r in rows_for_display(series(result)[-1], Thresholds())}  # the live table's rows
    assert rows["api.p95_ms"][3] == "BREACH" and rows["api.p95_ms"][2] == "<= 2000" and rows["api.up"][3] == "ok"


def test_command_exits_non_zero_naming_a_stopped_api(schema_target, tmp_path):
    port = free_port()  # nothing listens here: the API is down
    env = {**os.environ, "RUNTIME_DIR": str(tmp_path), "API_TOKEN": TOKEN, "MYSQL_URI": schema_target.uri}
    done = subprocess.run([sys.executable, "-m", "etl", "monitor", "--base-url", f"http://127.0.0.1:{port}",
                           "--threshold-error", "0.01", "--threshold-latency-p95", "2000", "--interval", "0.2",
                           "--count", "3"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 1, done.stdout + done.stderr
    assert "BREACH at sample 1: api.up = 0 < threshold 1" in done.stdout
    assert "api.error_rate = 1 > threshold 0.01" in done.stdout
    files = list((tmp_path / "monitor").glob("*.jsonl"))
    assert len(files) == 1 and len(files[0].read_text().splitlines()) == 3
    assert TOKEN not in done.stdout + done.stderr + files[0].read_text()
