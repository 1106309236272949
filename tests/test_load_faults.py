"""Faults against a real server, at random points of a load: after a re-run the database equals a clean run.

Ten runs in all: the loading process is killed (SIGKILL) four times, one of its connections
is killed from another session (KILL CONNECTION) three times, and a private server is
stopped and started again mid-load three times. Each time the load runs as `etl load` in a
subprocess with small chunks (many of them), is interrupted once the ledger shows a random
number of chunks written (plus a random extra delay, so some faults land in the checks or
the index rebuild), and is then run again to the end. The tables must then hold exactly
what one clean run wrote (row counts and checksums of every column), with every index in
place, nothing left pending in the ledger, and a further run must write nothing.

The seed is printed in every failure message; ETL_FAULT_SEED=<n> repeats a session's points.
"""

from __future__ import annotations

import os
import random
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import pymysql
import pytest

from etl import LocalServer, MySQLTarget, apply_schema, load
from etl.mysql.load import LOAD_DIR, WORK_PREFIX
from etl.mysql.lock import lock_name

from load_helpers import index_names, staged_sample, table_state

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parent.parent
TICKETS = 500
BATCH = 20
SEED = int(os.environ.get("ETL_FAULT_SEED", time.time_ns() % 100_000))


@pytest.fixture(scope="module")
def fault_stage(tmp_path_factory) -> Path:
    return staged_sample(tmp_path_factory.mktemp("fault-sample"), TICKETS)


def _fresh(base: MySQLTarget) -> MySQLTarget:
    target = MySQLTarget(base.host, base.port, base.user, base.password, f"t_{uuid.uuid4().hex[:12]}", base.unix_socket)
    apply_schema(target)
    return target


def _drop(target: MySQLTarget) -> None:
    with target.connect(database=False) as conn, conn.cursor() as cur:
        cur.execute(f"DROP DATABASE IF EXISTS `{target.database}`")


def _snapshot(target) -> dict:
    return {"tables": table_state(target), "indexes": index_names(target)}


@pytest.fixture(scope="module")
def reference(fault_stage, mysql_server) -> tuple[dict, int]:
    """What one clean run writes, and how many chunks it plans."""
    target = _fresh(mysql_server[0])
    try:
        result = load(fault_stage, target, batch_rows=BATCH)
        return _snapshot(target), sum(t.chunks for t in result.tables)
    finally:
        _drop(target)


def _start(stage: Path, target: MySQLTarget) -> subprocess.Popen:
    cmd = [sys.executable, "-m", "etl", "load", "--stage", str(stage), "--mysql", target.uri,
           "--batch-rows", str(BATCH), "-q"]
    return subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def _wait_for_chunks(target: MySQLTarget, proc: subprocess.Popen, chunks: int, timeout: float = 120) -> bool:
    """Until the ledger shows `chunks` chunks written; False when the load ended first."""
    deadline = time.monotonic() + timeout
    with target.connect() as conn, conn.cursor() as cur:
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                return False
            cur.execute("SELECT COUNT(*) FROM etl_load_ledger WHERE status IN ('written', 'done')")
            if cur.fetchone()[0] >= chunks:
                return True
            time.sleep(0.02)
    proc.kill()
    raise AssertionError(f"no progress within {timeout} s (seed {SEED})")


def _finish_and_compare(stage: Path, target: MySQLTarget, reference: dict, what: str) -> None:
    load(stage, target, batch_rows=BATCH)  # the re-run: continues from the ledger
    assert not list((stage / LOAD_DIR).glob(f"{WORK_PREFIX}*")), f"{what}: batch files left behind (seed {SEED})"
    assert _snapshot(target) == reference, f"{what}: database differs from a clean run (seed {SEED})"
    with target.connect() as conn, conn.cursor() as cur:
        cur.execute("SELECT COUNT(*) FROM etl_load_ledger WHERE status NOT IN ('done', 'abandoned')")
        assert cur.fetchone()[0] == 0, f"{what}: chunks left unfinished (seed {SEED})"
        cur.execute("SELECT COUNT(*) FROM etl_load_indexes")
        assert cur.fetchone()[0] == 0, f"{what}: indexes left to rebuild (seed {SEED})"
    assert load(stage, target, batch_rows=BATCH).written == 0, f"{what}: a third run still wrote rows (seed {SEED})"


def _point(rng: random.Random, chunks: int) -> tuple[int, float]:
    return rng.randint(1, max(1, int(chunks * 0.7))), rng.uniform(0, 0.3)


def _interrupted_runs(runs: int, base: MySQLTarget, stage: Path, state: dict, chunks: int, rng, fault,
                      name: str) -> list[str]:
    """Load, fault at a random point, load again, compare; until `runs` loads were really interrupted.
    Returns what each interrupted load printed."""
    hits = attempts = 0
    said = []
    while hits < runs:
        attempts += 1
        assert attempts <= 2 * runs, f"{name}: the load kept finishing before the fault (seed {SEED})"
        target = _fresh(base)
        try:
            proc = _start(stage, target)
            at, extra = _point(rng, chunks)
            what = f"{name} #{attempts} after {at} chunks + {extra:.2f} s"
            if _wait_for_chunks(target, proc, at):
                time.sleep(extra)
                what += f" ({fault(proc, target)})"
            out = proc.communicate(timeout=120)[0]
            if proc.returncode != 0:
                hits += 1
                said.append(out)
                assert proc.returncode == -9 or "error" in out, f"{what}: {out}"
            _finish_and_compare(stage, target, state, what)
        finally:
            _drop(target)
    return said


def test_killed_process_is_continued_to_the_clean_result(fault_stage, reference, mysql_server):
    def kill(proc, target):
        proc.kill()  # SIGKILL: no cleanup of any kind
        return "SIGKILL"

    _interrupted_runs(4, mysql_server[0], fault_stage, *reference, random.Random(SEED), kill, "kill -9")


def test_killed_connection_is_continued_to_the_clean_result(fault_stage, reference, mysql_server):
    rng = random.Random(SEED + 1)

    def kill_connection(proc, target):
        with target.connect() as conn, conn.cursor() as cur:
            # Not the connection that only holds the database's etl lock (its loss: the next test).
            cur.execute("SELECT id, info FROM information_schema.processlist WHERE db = DATABASE() AND id <> CONNECTION_ID() "
                        "AND id <> COALESCE(IS_USED_LOCK(%s), 0)", (lock_name(target.database),))
            loaders = cur.fetchall()
            if not loaders:
                return "no loader connection open"
            victim = rng.choice([r for r in loaders if r[1]] or loaders)  # prefer one running a statement
            try:
                cur.execute(f"KILL CONNECTION {int(victim[0])}")
            except pymysql.err.OperationalError:
                return "its connection ended on its own"
            return f"killed while running {(victim[1] or 'nothing')[:40]!r}"

    _interrupted_runs(3, mysql_server[0], fault_stage, *reference, rng, kill_connection, "KILL CONNECTION")


def test_a_load_that_loses_its_lock_stops_and_is_continued_to_the_clean_result(fault_stage, reference, mysql_server):
    """The lock's connection runs nothing, so its loss shows nowhere by itself: the load must notice
    it before its next commit and stop (another run may be writing now), saying why."""
    def kill_lock(proc, target):
        with target.connect() as conn, conn.cursor() as cur:
            cur.execute("SELECT IS_USED_LOCK(%s)", (lock_name(target.database),))
            (holder,) = cur.fetchone()
            if holder is None:
                return "no lock held"
            cur.execute(f"KILL CONNECTION {int(holder)}")
        return "lock connection killed"

    stopped = _interrupted_runs(2, mysql_server[0], fault_stage, *reference, random.Random(SEED + 3), kill_lock,
                                "lock lost")
    assert all("etl lock" in out and "was lost" in out for out in stopped), stopped


def test_server_restart_mid_load_is_continued_to_the_clean_result(fault_stage, reference):
    home = Path(tempfile.mkdtemp(prefix="etl-fault-server-"))
    server = LocalServer(home, buffer_pool="256M")
    try:
        base = MySQLTarget.parse(server.up().uri)

        def restart(proc, target):
            server.restart()
            return "server restarted"

        _interrupted_runs(3, base, fault_stage, *reference, random.Random(SEED + 2), restart, "server restart")
    finally:
        server.down()
        shutil.rmtree(home, ignore_errors=True)
