"""`etl load --via-api`: ends equal to the direct load (parity passes), writes nothing the second time,
and resumes after being killed mid-run, on the same ledger as the direct load."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from api_helpers import TOKEN, running_api
from conftest import _fresh_database
from etl import apply_schema, export, load, parity, transform
from etl.mysql import ledger
from etl.api.via_api import load_via_api
from load_helpers import table_state

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def stage(tmp_path_factory):
    out = tmp_path_factory.mktemp("via-api")
    export(ROOT / "data" / "sample-export", out / "export")
    transform(out / "export", out / "stage")
    return out / "stage"


def ledger_rows(target, table="tickets"):
    with target.connect() as conn, conn.cursor() as cur:
        cur.execute("SELECT status, method, COUNT(*) FROM etl_load_ledger WHERE table_name = %s GROUP BY 1, 2", (table,))
        return {(s, m): n for s, m, n in cur.fetchall()}


def test_equal_to_the_direct_load_and_idempotent(schema_target, mysql_server, stage, tmp_path):
    direct = _fresh_database(mysql_server[0])
    try:
        apply_schema(direct)
        load(stage, direct)
        with running_api(schema_target, chunk_size=40) as (url, _):
            first = load_via_api(stage, schema_target, url, TOKEN, chunk_size=40, batch_rows=100)
            assert first.table("tickets").inserted == 300 and first.table("tickets").chunks == 3
            assert first.method == "api" and first.sessions_finalized > 0
            assert table_state(schema_target) == table_state(direct)
            assert parity(stage, schema_target).ok
            assert set(ledger_rows(schema_target)) == {(ledger.DONE, "api")}  # the same ledger, every chunk checked
            again = load_via_api(stage, schema_target, url, TOKEN, chunk_size=40, batch_rows=100)
        assert again.written == 0 and again.table("tickets").unchanged == 300
    finally:
        with mysql_server[0].connect(database=False) as conn, conn.cursor() as cur:
            cur.execute(f"DROP DATABASE IF EXISTS `{direct.database}`")


def test_a_changed_row_is_updated_through_the_api(schema_target, stage, tmp_path):
    with running_api(schema_target) as (url, _):
        load_via_api(stage, schema_target, url, TOKEN, chunk_size=200)
        with schema_target.connect() as conn, conn.cursor() as cur:
            cur.execute("UPDATE tickets SET name = 'someone else' ORDER BY id LIMIT 2")
        fixed = load_via_api(stage, schema_target, url, TOKEN, chunk_size=200)
    assert fixed.table("tickets").updated == 2 and fixed.written == 2
    assert parity(stage, schema_target).ok


def test_resumes_after_a_kill_mid_run(schema_target, stage, tmp_path):
    # A slow API (test hook: every request stops the server 0.15 s) leaves time to kill the load half-way.
    with running_api(schema_target, stall="0.15", chunk_size=10) as (url, _):
        env = {**os.environ, "API_TOKEN": TOKEN, "BASE_URL": url, "MYSQL_URI": schema_target.uri, "CHUNK_SIZE": "10",
               "RUNTIME_DIR": str(tmp_path)}
        proc = subprocess.Popen([sys.executable, "-m", "etl", "load", "--via-api", "--stage", str(stage),
                                 "--batch-rows", "50", "--quiet"], cwd=ROOT, env=env, stdout=subprocess.PIPE,
                                stderr=subprocess.STDOUT, text=True)
        deadline = time.monotonic() + 300
        # Chunks are marked written one by one as the API takes them (and done only once all are checked).
        while not ledger_rows_safe(schema_target).get((ledger.WRITTEN, "api")):
            assert proc.poll() is None and time.monotonic() < deadline, "the load ended before it could be killed"
            time.sleep(0.1)
        proc.send_signal(signal.SIGKILL)
        proc.wait(30)
        half = ledger_rows(schema_target)
        done_before = sum(n for (s, _), n in half.items() if s == ledger.DONE)
        written = half.get((ledger.WRITTEN, "api"), 0)
        assert written >= 1 and done_before < 6, half  # 300 tickets in ledger chunks of 50: killed half-way
        resumed = load_via_api(stage, schema_target, url, TOKEN, chunk_size=10, batch_rows=50)
    assert resumed.table("tickets").continued == 6 - done_before
    assert set(ledger_rows(schema_target)) == {(ledger.DONE, "api")}
    assert parity(stage, schema_target).ok


def ledger_rows_safe(target):
    try:
        return ledger_rows(target)
    except Exception:  # noqa: BLE001 - the ledger table is there from the start; a busy server may refuse a moment
        return {}
