"""Load, parity and schema given bad input, misuse and faults: one-line errors, nothing half-written.

Each case runs the real `etl` command (a subprocess: what a user sees, tracebacks included)
or the library against a real server. Cases that need server settings no shared server
should get (a small max_allowed_packet, local_infile off, a user without some privileges,
a server killed mid-load) run on a private server started here.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import polars as pl
import pytest

from etl import EtlError, LocalServer, MySQLTarget, apply_schema, load
from etl.mysql import bulk
from etl.mysql.load import LOAD_DIR
from etl.mysql.server import alive

from load_helpers import TICKETS, frame, staged_sample, table_state, ticket

ROOT = Path(__file__).resolve().parent.parent


# ---------------------------------------------------------------- helpers


def etl(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "etl", *args], cwd=ROOT, capture_output=True, text=True, timeout=300,
                          env={**os.environ, **(env or {})})


def start(*args: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "etl", *args], cwd=ROOT, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)


def one_line_error(text: str) -> str:
    """The error line of a failed command, checked to be the only thing it said about it."""
    assert "Traceback" not in text, text
    lines = [ln for ln in text.strip().splitlines() if ln.startswith("error:")]
    assert len(lines) == 1, text
    return lines[0]


def other_db(base: MySQLTarget, name: str) -> MySQLTarget:
    return MySQLTarget(base.host, base.port, base.user, base.password, name, base.unix_socket)


def fresh(base: MySQLTarget, *, schema: bool = True) -> MySQLTarget:
    target = other_db(base, f"t_{uuid.uuid4().hex[:12]}")
    if schema:
        apply_schema(target)
    return target


def drop(target: MySQLTarget) -> None:
    with target.connect(database=False) as conn, conn.cursor() as cur:
        cur.execute(f"DROP DATABASE IF EXISTS `{target.database}`")


def sql(target: MySQLTarget, statement: str):
    with target.connect() as conn, conn.cursor() as cur:
        cur.execute(statement)
        return cur.fetchall()


@pytest.fixture(scope="module")
def stages(tmp_path_factory) -> dict[str, Path]:
    """Two different stages of the real chain (different seeds)."""
    base = tmp_path_factory.mktemp("load-bad-input")
    return {"a": staged_sample(base / "a", 3000, seed=7), "b": staged_sample(base / "b", 3000, seed=11)}


@pytest.fixture(scope="module")
def references(stages, mysql_server) -> dict[str, dict]:
    """What one clean load of each stage leaves in MySQL."""
    out = {}
    for name, stage in stages.items():
        target = fresh(mysql_server[0])
        try:
            load(stage, target)
            out[name] = table_state(target)
        finally:
            drop(target)
    return out


def copy_stage(stage: Path, to: Path) -> Path:
    shutil.copytree(stage, to, ignore=shutil.ignore_patterns(LOAD_DIR, "digests"))
    return to


@pytest.fixture(scope="module")
def private_server():
    """A server of our own whose global settings the tests may change (restored after each test)."""
    home = Path(tempfile.mkdtemp(prefix="etl-test-special-"))
    server = LocalServer(home, buffer_pool="128M")
    try:
        yield server, MySQLTarget.parse(server.up().uri)
    finally:
        server.down()
        shutil.rmtree(home, ignore_errors=True)


@pytest.fixture
def special(private_server):
    server, base = private_server
    base = MySQLTarget.parse(server.up().uri)  # up again if a test crashed it
    target = fresh(base)
    yield server, target
    base = MySQLTarget.parse(server.up().uri)
    with base.connect(database=False) as conn, conn.cursor() as cur:
        cur.execute("SET GLOBAL max_allowed_packet = 268435456")
        cur.execute("SET GLOBAL local_infile = 1")
    drop(other_db(base, target.database))  # a crashed server comes back on another port


# ---------------------------------------------------------------- 5: one load at a time


@pytest.mark.parametrize("which", ["same stage", "different stages"])
def test_two_loads_at_once_end_as_one_stage_with_one_success(which, stages, references, mysql_target):
    apply_schema(mysql_target)
    first, second = ("a", "a") if which == "same stage" else ("a", "b")
    procs = {name: start("load", "--stage", str(stages[stage]), "--mysql", mysql_target.uri, "-q")
             for name, stage in (("p1", first), ("p2", second))}
    ended: dict[str, float] = {}
    while len(ended) < 2:
        for name, p in procs.items():
            if name not in ended and p.poll() is not None:
                ended[name] = time.monotonic()
        time.sleep(0.01)
    outs = {name: p.communicate()[0] for name, p in procs.items()}
    winners = [n for n, p in procs.items() if p.returncode == 0]
    assert len(winners) == 1, outs
    winner = winners[0]
    loser = next(n for n in procs if n != winner)
    message = one_line_error(outs[loser])
    assert procs[loser].returncode == 1
    assert f"another etl run holds the lock of database {mysql_target.database}" in message
    assert "load by" in message and "pid" in message and "connection" in message, message
    # Refused at once, not after a load of its own: it ended while the winner still worked.
    assert ended[loser] < ended[winner], outs
    assert table_state(mysql_target) == references[first if winner == "p1" else second]


def test_lock_names_its_holder_and_is_released(mysql_target):
    from etl.mysql.lock import LockError, database_lock

    apply_schema(mysql_target)
    with database_lock(mysql_target, "flags") as me:
        with pytest.raises(LockError) as refused:
            with database_lock(mysql_target, "load"):
                pass
        assert f"flags by {me.holder}" in str(refused.value) and f"connection {me.connection_id}" in str(refused.value)
    with database_lock(mysql_target, "load"):  # released at the end of the block
        pass
    assert sql(mysql_target, "SELECT COUNT(*) FROM etl_locks") == ((0,),)


def test_rejects_file_holds_what_the_summary_counts(stages, mysql_target, tmp_path):
    """A rejects file left by an earlier run never stands beside a summary of this one."""
    apply_schema(mysql_target)
    stage = copy_stage(stages["a"], tmp_path / "stage")
    (stage / LOAD_DIR).mkdir(exist_ok=True)
    stale = stage / LOAD_DIR / "tickets.rejects.parquet"
    pl.DataFrame({"id": ["x"] * 20}).write_parquet(stale)
    result = load(stage, mysql_target)
    for t in result.tables:
        path = stage / LOAD_DIR / f"{t.table}.rejects.parquet"
        assert (pl.read_parquet(path).height if path.exists() else 0) == t.rejected, t.table


# ---------------------------------------------------------------- 6: a damaged stage


def test_missing_staged_table_stops_load_and_parity(stages, mysql_target, tmp_path):
    apply_schema(mysql_target)
    stage = copy_stage(stages["a"], tmp_path / "stage")
    (stage / "tickets.parquet").unlink()
    for cmd in (["load", "--stage", str(stage), "--mysql", mysql_target.uri, "-q"],
                ["parity", "--src", str(stage), "--mysql", mysql_target.uri, "--fail-on-mismatch"]):
        run = etl(*cmd, env={"RUNTIME_DIR": str(tmp_path / "runtime")})
        assert run.returncode == 1, run.stdout + run.stderr
        line = one_line_error(run.stderr)
        assert "tickets is missing although the transform summary lists" in line and "tickets.parquet" in line
    assert sql(mysql_target, "SELECT COUNT(*) FROM etl_load_ledger") == ((0,),)


@pytest.mark.parametrize("damage", ["truncated", "other rows", "garbage"])
def test_damaged_staged_table_is_one_line_error(damage, stages, mysql_target, tmp_path):
    apply_schema(mysql_target)
    stage = copy_stage(stages["a"], tmp_path / "stage")
    path = stage / "tickets.parquet"
    if damage == "truncated":
        data = path.read_bytes()
        path.write_bytes(data[: len(data) // 2])
    elif damage == "other rows":
        pl.read_parquet(path).head(10).write_parquet(path)
    else:
        path.write_bytes(b"not parquet at all\n" * 100)
    for cmd in (["load", "--stage", str(stage), "--mysql", mysql_target.uri, "-q"],
                ["parity", "--src", str(stage), "--mysql", mysql_target.uri]):
        run = etl(*cmd, env={"RUNTIME_DIR": str(tmp_path / "runtime")})
        assert run.returncode == 1, run.stdout + run.stderr
        line = one_line_error(run.stderr)
        assert "tickets.parquet" in line and "run `etl transform` again" in line, line
    assert sql(mysql_target, "SELECT COUNT(*) FROM tickets") == ((0,),)


# ---------------------------------------------------------------- 7, 9: faults mid-load


def _wait_for(target: MySQLTarget, proc: subprocess.Popen, query: str, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert proc.poll() is None, proc.communicate()[0]
        try:
            if sql(target, query)[0][0]:
                return
        except EtlError:
            pass
        time.sleep(0.01)
    proc.kill()
    raise AssertionError(f"never saw {query!r}")


def test_server_crash_mid_load_is_one_line_and_resumable(special, stages, references):
    server, target = special
    proc = start("load", "--stage", str(stages["a"]), "--mysql", target.uri, "--batch-rows", "200", "-q")
    _wait_for(target, proc, "SELECT COUNT(*) >= 3 FROM etl_load_ledger WHERE status IN ('written', 'done')")
    info = server.status()
    os.kill(info.pid, signal.SIGKILL)  # a crash: no shutdown of any kind
    while alive(info.pid):
        try:
            os.waitpid(info.pid, os.WNOHANG)
        except ChildProcessError:
            pass
        time.sleep(0.05)
    out = proc.communicate(timeout=120)[0]
    assert proc.returncode == 1, out
    line = one_line_error(out)
    assert "run the load again to continue" in line, line
    server.up(port=info.port)
    load(stages["a"], target)
    assert table_state(target) == references["a"]


def _blocked_sending(pid: int, seconds: float = 0.3) -> bool:
    """Whether the process's main thread sits in sendto(2) (x86-64: 44) for `seconds` on end."""
    until = time.monotonic() + seconds
    while time.monotonic() < until:
        try:
            if Path(f"/proc/{pid}/syscall").read_text().split()[0] != "44":
                return False
        except (OSError, IndexError):
            return False
        time.sleep(0.01)
    return True


def test_ctrl_c_during_load_data_is_interrupted_and_resumable(tmp_path, mysql_server, mysql_target):
    """Ctrl-C while PyMySQL sends a LOAD DATA LOCAL file: PyMySQL ends the exchange in a `finally`
    and raised the server's answer to the half-sent file ("Lost connection") in place of the
    interruption. To land the signal there every time, another transaction holds a gap lock the
    first row needs: the server stops reading, and the client blocks in sendto once the socket
    buffers are full (seen in /proc/PID/syscall; so a file larger than they hold: one batch of 12,000).
    MySQL 9.7 takes the whole file before its insert waits on the lock (a 60,000-row file, also with
    max_allowed_packet at 1 MB: the client never blocked sending, and the chunk failed on the lock
    wait timeout), so there this way of landing the signal mid-send does not exist."""
    if "mariadb" not in sql(mysql_target, "SELECT VERSION()")[0][0].lower():
        pytest.skip("needs MariaDB: MySQL reads the whole LOCAL file before the insert waits on the lock")
    stage = staged_sample(tmp_path / "big", 12000, seed=7)
    clean = fresh(mysql_server[0])
    try:
        load(stage, clean)
        reference = table_state(clean)
    finally:
        drop(clean)
    apply_schema(mysql_target)
    sentinel = "zzzz-sentinel"  # sorts after every staged key: the table is not empty (no ALTER waits on the lock)
    sql(mysql_target, f"INSERT INTO tickets (id, open_time) VALUES ('{sentinel}', '2024-01-01')")
    blocker = mysql_target.connect(autocommit=False)
    try:
        with blocker.cursor() as cur:
            cur.execute("SET SESSION TRANSACTION ISOLATION LEVEL REPEATABLE READ")
            cur.execute("BEGIN")
            cur.execute(f"SELECT id FROM tickets WHERE id < '{sentinel}' FOR UPDATE")  # the gap before it
        proc = start("load", "--stage", str(stage), "--mysql", mysql_target.uri, "--batch-rows", "12000",
                     "--method", "load-data", "-q")
        deadline = time.monotonic() + 120
        while not _blocked_sending(proc.pid):
            assert proc.poll() is None and time.monotonic() < deadline, "the load never blocked sending its file"
        proc.send_signal(signal.SIGINT)
        time.sleep(0.5)
    finally:
        blocker.rollback()
        blocker.close()
    # Answered at once: before, the half-sent file held the process for the server's read timeouts (61 s).
    out = proc.communicate(timeout=30)[0]
    assert proc.returncode == 130, out
    assert "Traceback" not in out and "interrupted" in out and "Lost connection" not in out, out
    load(stage, mysql_target)
    sql(mysql_target, f"DELETE FROM tickets WHERE id = '{sentinel}'")
    assert table_state(mysql_target) == reference
    assert sql(mysql_target, "SELECT COUNT(*) FROM etl_load_ledger WHERE status NOT IN ('done', 'abandoned')") == ((0,),)


# ---------------------------------------------------------------- 9: privileges, packet size


def _user(target: MySQLTarget, name: str, privileges: str) -> MySQLTarget:
    with target.connect() as conn, conn.cursor() as cur:
        cur.execute(f"CREATE USER IF NOT EXISTS '{name}'@'%' IDENTIFIED BY 'pw-{name}'")
        cur.execute(f"GRANT {privileges} ON `{target.database}`.* TO '{name}'@'%'")
    return MySQLTarget(target.host, target.port, name, f"pw-{name}", target.database)


def test_missing_temporary_table_privilege_is_named_before_anything_is_written(special, stages):
    _, target = special
    load(stages["a"], target)
    before = table_state(target)
    user = _user(target, "no_temp", "SELECT, INSERT, UPDATE, DELETE, ALTER, INDEX")
    run = etl("load", "--stage", str(stages["b"]), "--mysql", user.uri, "-q")
    assert run.returncode == 1
    line = one_line_error(run.stderr)
    assert "needs the CREATE TEMPORARY TABLES privilege" in line and "nothing was written" in line, line
    assert "run the load again to continue" not in line
    assert table_state(target) == before


def test_missing_alter_privilege_is_named_before_anything_is_written(special, stages):
    _, target = special
    user = _user(target, "no_alter", "SELECT, INSERT, UPDATE, DELETE, CREATE TEMPORARY TABLES")
    run = etl("load", "--stage", str(stages["a"]), "--mysql", user.uri, "-q")
    assert run.returncode == 1
    assert "needs the ALTER privilege" in one_line_error(run.stderr)
    assert sql(target, "SELECT COUNT(*) FROM etl_load_ledger") == ((0,),)
    assert sql(target, "SELECT COUNT(*) FROM etl_load_indexes") == ((0,),)


def test_inserts_fit_a_small_max_allowed_packet(special, stages, references):
    _, target = special
    with target.connect() as conn, conn.cursor() as cur:
        cur.execute("SET GLOBAL max_allowed_packet = 32768")  # new sessions get it
    result = load(stages["a"], target, method="insert")
    assert result.method == "insert"
    assert table_state(target) == references["a"]


def test_a_row_larger_than_max_allowed_packet_is_a_reject(special, tmp_path):
    _, target = special
    with target.connect() as conn, conn.cursor() as cur:
        cur.execute("SET GLOBAL max_allowed_packet = 32768")
    rows = frame(TICKETS, [ticket(1), ticket(2, description="x" * 40_000), ticket(3)])
    with target.connect() as conn:
        writer = bulk.Writer(conn, TICKETS, "insert", tmp_path)
        conn.begin()
        written, refused = writer.write("tickets", rows)
        conn.commit()
    assert written == 2 and [(r.row, r.code) for r in refused] == [(1, 1153)]
    assert sql(target, "SELECT id FROM tickets ORDER BY id") == (("t-00001",), ("t-00003",))


# ---------------------------------------------------------------- 11: load-data, schema apply


def test_explicit_load_data_is_refused_without_local_infile_and_auto_says_it_fell_back(special, stages, references):
    _, target = special
    with target.connect() as conn, conn.cursor() as cur:
        cur.execute("SET GLOBAL local_infile = 0")
    run = etl("load", "--stage", str(stages["a"]), "--mysql", target.uri, "--method", "load-data", "-q")
    assert run.returncode == 1
    assert "local_infile is OFF" in one_line_error(run.stderr)
    assert sql(target, "SELECT COUNT(*) FROM tickets") == ((0,),)
    run = etl("load", "--stage", str(stages["a"]), "--mysql", target.uri, "-q")
    assert run.returncode == 0, run.stderr
    assert "note: wrote with INSERT, not LOAD DATA: the server's local_infile is OFF" in run.stdout
    assert table_state(target) == references["a"]


def test_schema_apply_says_when_it_creates_the_database(mysql_server):
    target = fresh(mysql_server[0], schema=False)
    try:
        run = etl("schema", "apply", "--mysql", target.uri)
        assert run.returncode == 0, run.stderr
        assert f"created database {target.database} (it did not exist on the server)" in run.stdout
        assert apply_schema(target).created_database is None
    finally:
        drop(target)
