"""Bad input, faults and misuse, as a new user meets them (issue 13): one case per input kind.

Each case runs the real `etl` command (a subprocess, as a user would) on real files, and asserts
what the user must get: a one-line error naming the file/store/record/field, the documented exit
status, no traceback, nothing partial left behind, nothing of theirs deleted, no secret written.
"""

from __future__ import annotations

import gzip
import json
import os
import shutil
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path
from urllib.parse import quote

import pytest

from etl.export import export
from etl.sample import write_sample
from etl.stores import STORES

ROOT = Path(__file__).resolve().parent.parent
# Every character a URI gives a meaning to, and the percent sign that encodes them.
PASSWORD = "pw@:/%#?&=+x" + uuid.uuid4().hex[:6]


def etl(*args, env=None, timeout=600):
    """Run `etl` as a user does; returns the finished process (never raises on a failure)."""
    return subprocess.run([sys.executable, "-m", "etl", *args], capture_output=True, text=True, cwd=ROOT,
                          env={**os.environ, "MYSQL_URI": "", **(env or {})}, timeout=timeout)


def one_line_error(done, *names, code=1):
    """The process failed with `code` and said why in one line naming each of `names`."""
    assert done.returncode == code, done.stdout + done.stderr
    assert "Traceback" not in done.stderr + done.stdout, done.stderr
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, done.stderr
    for name in names:
        assert str(name) in lines[0], (name, lines[0])
    return lines[0]


@pytest.fixture(scope="module")
def raw(tmp_path_factory):
    """A small export in the app's layout."""
    folder = tmp_path_factory.mktemp("raw") / "raw"
    write_sample(folder, tickets=120, seed=3)
    return folder


def copy_raw(raw: Path, dest: Path) -> Path:
    shutil.copytree(raw, dest)
    return dest


# ---------------------------------------------------------------- 1. secrets


def test_a_password_is_never_written_or_printed(mysql_server, tmp_path):
    """`etl migrate` with a password holding every URI character, percent-encoded: neither it nor
    its encoding appears in any file the run writes, nor in its output; run records are 0600."""
    base, _ = mysql_server
    user, database = f"u{uuid.uuid4().hex[:8]}", f"t_{uuid.uuid4().hex[:12]}"
    esc = PASSWORD.replace("'", "''")
    with base.connect(database=False) as conn, conn.cursor() as cur:
        cur.execute(f"CREATE DATABASE `{database}`")
        for host in ("%", "localhost", "127.0.0.1"):
            cur.execute(f"CREATE USER '{user}'@'{host}' IDENTIFIED BY '{esc}'")
            cur.execute(f"GRANT ALL ON `{database}`.* TO '{user}'@'{host}'")
    uri = f"mysql://{user}:{quote(PASSWORD, safe='')}@{base.host}:{base.port}/{database}"
    dirs = {"RUNTIME_DIR": tmp_path / "runtime", "EXPORT_DIR": tmp_path / "export", "STAGE_DIR": tmp_path / "stage"}
    try:
        done = etl("migrate", "--sample-tickets", "150", env={"MYSQL_URI": uri, **{k: str(v) for k, v in dirs.items()}})
        assert done.returncode == 0, done.stdout + done.stderr
        # A failed run writes its record too: a wrong database name fails after the record exists.
        failed = etl("migrate", "--sample-tickets", "150", "--mysql", uri.replace(database, database + "_nope"),
                     env={k: str(v) for k, v in dirs.items()})
        assert failed.returncode == 1
    finally:
        with base.connect(database=False) as conn, conn.cursor() as cur:
            for host in ("%", "localhost", "127.0.0.1"):
                cur.execute(f"DROP USER IF EXISTS '{user}'@'{host}'")
            cur.execute(f"DROP DATABASE IF EXISTS `{database}`")
            cur.execute(f"DROP DATABASE IF EXISTS `{database}_nope`")
    forms = {PASSWORD, quote(PASSWORD, safe=""), quote(PASSWORD)}
    output = done.stdout + done.stderr + failed.stdout + failed.stderr
    for form in forms:
        assert form not in output
    runs = sorted((tmp_path / "runtime" / "runs").glob("*.json"))
    assert runs, "no run record"
    for run in runs:
        assert run.stat().st_mode & 0o777 == 0o600, run
    assert json.loads(runs[-1].read_text())["steps"][0]["result"]["password"] == "***"
    scanned = 0
    for folder in (*dirs.values(), ROOT / "expectations"):
        for path in Path(folder).rglob("*"):
            if path.is_file() and not path.is_symlink():
                data = path.read_bytes()
                scanned += 1
                for form in forms:
                    assert form.encode() not in data, path
    assert scanned > 20


@pytest.mark.parametrize("sep", ["/", "?", "#"])
def test_a_port_that_does_not_parse_is_one_line_without_the_password(sep):
    # A half-encoded password: what follows its ":" up to the unencoded "/" reads as the port.
    done = etl("schema", "apply", "--mysql", f"mysql://me:s3cr{sep}et@127.0.0.1:3306/db")
    line = one_line_error(done, "MYSQL_URI", "port")
    assert "s3cr" not in line and "et@" not in line


# ---------------------------------------------------------------- 7. one line, exit status, debug switch


def test_sample_with_a_negative_count_is_a_usage_error(tmp_path):
    done = etl("sample", "--out", str(tmp_path / "s"), "--tickets", "-1")
    assert done.returncode == 2 and "Traceback" not in done.stderr and "--tickets" in done.stderr
    assert not (tmp_path / "s").exists()


def test_an_unexpected_error_is_one_line_and_the_debug_switch_shows_the_traceback(tmp_path, raw):
    # export-summary.json that is a JSON array: reached code that expected an object
    src = copy_raw(raw, tmp_path / "src")
    (src / "export-summary.json").write_text("[1, 2]")
    done = etl("export", "--from", str(src), "--out", str(tmp_path / "out"))
    one_line_error(done, "export-summary.json")
    assert not (tmp_path / "out").exists()
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []  # no partial folder left


def test_debug_switch_shows_a_traceback(tmp_path):
    done = etl("--debug", "transform", "--in", str(tmp_path / "nothing"), "--out", str(tmp_path / "stage"))
    assert done.returncode == 1 and "Traceback" in done.stderr
    done = etl("transform", "--in", str(tmp_path / "nothing"), "--out", str(tmp_path / "stage"), env={"ETL_DEBUG": "1"})
    assert done.returncode == 1 and "Traceback" in done.stderr
