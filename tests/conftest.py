"""Test fixtures on real engines: a real MySQL-compatible server, real DuckDB, real files.

The server is ETL_TEST_MYSQL_URI when set (any database name in it is ignored: each
test gets a fresh database of its own); otherwise a private, throwaway server is
started for the session under a temporary folder. When neither can be had the run
fails with a message that says how to get one; it never skips.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
import uuid
from pathlib import Path

import pytest

from etl import EtlError, LocalServer, MySQLTarget

ROOT = Path(__file__).resolve().parent.parent
SAMPLE_EXPORT = ROOT / "data" / "sample-export"


@pytest.fixture(scope="session")
def mysql_server():
    """(base target, LocalServer or None). The base target's database is a placeholder."""
    uri = os.environ.get("ETL_TEST_MYSQL_URI")
    if uri:
        base = MySQLTarget.parse(uri if uri.rstrip("/").count("/") > 2 else uri.rstrip("/") + "/mysql")
        try:
            base.connect(database=False).close()
        except EtlError as e:
            pytest.fail(f"ETL_TEST_MYSQL_URI is set but the server cannot be reached: {e}", pytrace=False)
        yield base, None
        return
    home = Path(tempfile.mkdtemp(prefix="etl-test-mysql-"))
    server = LocalServer(home, buffer_pool="256M")
    try:
        info = server.up()
    except EtlError as e:
        shutil.rmtree(home, ignore_errors=True)
        pytest.fail(
            f"No MySQL server for the tests: {e}\n"
            "Set ETL_TEST_MYSQL_URI=mysql://user:pass@host:port/ to use a server you have, "
            "or install mariadb-server so the tests can start a private one.",
            pytrace=False,
        )
    try:
        yield MySQLTarget.parse(info.uri), server
    finally:
        server.down()
        shutil.rmtree(home, ignore_errors=True)


def _fresh_database(base: MySQLTarget) -> MySQLTarget:
    name = f"t_{uuid.uuid4().hex[:12]}"
    with base.connect(database=False) as conn, conn.cursor() as cur:
        cur.execute(f"CREATE DATABASE `{name}` CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci")
    return MySQLTarget(base.host, base.port, base.user, base.password, name, base.unix_socket)


@contextlib.contextmanager
def password_user(base: MySQLTarget, password: str):
    """A user whose password is `password`, granted a fresh database of its own: yields the URI
    (password percent-encoded) and the database; both are dropped afterwards."""
    from urllib.parse import quote

    user, database = f"u{uuid.uuid4().hex[:8]}", f"t_{uuid.uuid4().hex[:12]}"
    esc = password.replace("'", "''")
    with base.connect(database=False) as conn, conn.cursor() as cur:
        cur.execute(f"CREATE DATABASE `{database}`")
        for host in ("%", "localhost", "127.0.0.1"):
            cur.execute(f"CREATE USER '{user}'@'{host}' IDENTIFIED BY '{esc}'")
            cur.execute(f"GRANT ALL ON `{database}`.* TO '{user}'@'{host}'")
    try:
        yield f"mysql://{user}:{quote(password, safe='')}@{base.host}:{base.port}/{database}", database
    finally:
        with base.connect(database=False) as conn, conn.cursor() as cur:
            for host in ("%", "localhost", "127.0.0.1"):
                cur.execute(f"DROP USER IF EXISTS '{user}'@'{host}'")
            cur.execute(f"DROP DATABASE IF EXISTS `{database}`")


@pytest.fixture
def mysql_target(mysql_server):
    """A fresh, empty database for one test, dropped afterwards."""
    base, _ = mysql_server
    target = _fresh_database(base)
    yield target
    with base.connect(database=False) as conn, conn.cursor() as cur:
        cur.execute(f"DROP DATABASE IF EXISTS `{target.database}`")


@pytest.fixture
def schema_target(mysql_target):
    """A fresh database with the schema applied."""
    from etl import apply_schema

    apply_schema(mysql_target)
    return mysql_target
