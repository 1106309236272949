"""Every command has help; `etl db up/status/down` round-trips a real project-local server."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from typer.core import TyperGroup
import pytest
import typer.main
from typer.testing import CliRunner

from etl.cli import app
from etl.mysql.db import SCHEMA_FILE

ROOT = Path(__file__).resolve().parent.parent


def _commands(group, prefix=()):
    for name, cmd in group.commands.items():
        yield (*prefix, name)
        if isinstance(cmd, TyperGroup):
            yield from _commands(cmd, (*prefix, name))


COMMANDS = list(_commands(typer.main.get_command(app)))


def run_etl(*args, env=None, check=True):
    done = subprocess.run([sys.executable, "-m", "etl", *args], capture_output=True, text=True,
                          env={**os.environ, **(env or {})}, cwd=ROOT, timeout=300)
    if check:
        assert done.returncode == 0, done.stdout + done.stderr
    return done


def test_top_level_help_lists_every_command():
    done = run_etl("--help")
    for path in COMMANDS:
        if len(path) == 1:
            assert path[0] in done.stdout


@pytest.mark.parametrize("path", COMMANDS, ids=" ".join)
def test_every_command_has_help(path):
    done = CliRunner().invoke(app, [*path, "--help"])  # in-process: the entry point itself is tested above
    assert done.exit_code == 0 and "Usage:" in done.output
    cmd = typer.main.get_command(app)
    for part in path:
        cmd = cmd.commands[part]
    assert cmd.help or cmd.short_help, f"`etl {' '.join(path)}` has no help text"


def test_every_command_is_in_the_readme():
    readme = (ROOT / "README.md").read_text()
    for path in COMMANDS:
        if not isinstance(typer.main.get_command(app).commands.get(path[0]), TyperGroup) or len(path) > 1:
            assert f"etl {' '.join(path)}" in readme, f"`etl {' '.join(path)}` is not in README.md"


def test_db_up_status_down_round_trip(tmp_path):
    env = {"RUNTIME_DIR": str(tmp_path / "runtime"), "MYSQL_URI": "", "ETL_MYSQL_BUFFER_POOL": "128M"}
    try:
        up = run_etl("db", "up", env=env)
        assert "URI: mysql://root@127.0.0.1:" in up.stdout
        port = up.stdout.split("127.0.0.1:")[1].split(",")[0]
        again = run_etl("db", "up", env=env)  # a second up reuses the running server
        assert f"127.0.0.1:{port}," in again.stdout and up.stdout.split("(pid")[1].split(")")[0] in again.stdout
        status = run_etl("db", "status", env=env)
        assert f"127.0.0.1:{port}" in status.stdout and "not running" not in status.stdout
        applied = run_etl("schema", "apply", env=env)
        tables = SCHEMA_FILE.read_text().count("CREATE TABLE IF NOT EXISTS")
        assert f"{tables} tables" in applied.stdout
    finally:
        down = run_etl("db", "down", env=env)
    assert "stopped" in down.stdout
    assert "not running" in run_etl("db", "status", env=env).stdout


def test_bad_mysql_uri_is_a_clean_error_with_the_password_masked():
    done = run_etl("schema", "apply", "--mysql", "mysql://u:hunter2@127.0.0.1:1/db", check=False)
    assert done.returncode == 1
    assert "Traceback" not in done.stderr and "hunter2" not in done.stderr + done.stdout
    assert "cannot connect" in done.stderr and "***" in done.stderr
