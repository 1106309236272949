"""Progress where people wait: live on a terminal, silent when piped (real commands, a real pseudo-terminal)."""

from __future__ import annotations

import os
import pty
import re
import select
import subprocess
import sys
from pathlib import Path

import pytest

from load_helpers import staged_sample

ROOT = Path(__file__).resolve().parents[1]
ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")


def _under_pty(args: list[str], env: dict) -> str:
    """Run the command with stdout and stderr on a pseudo-terminal; everything it drew, ANSI codes removed."""
    leader, follower = pty.openpty()
    proc = subprocess.Popen(args, cwd=ROOT, stdin=subprocess.DEVNULL, stdout=follower, stderr=follower,
                            env={**os.environ, **env, "COLUMNS": "160", "TERM": "xterm-256color"})
    os.close(follower)
    chunks = []
    while True:
        ready, _, _ = select.select([leader], [], [], 1)
        if ready:
            try:
                data = os.read(leader, 65536)
            except OSError:  # EIO: the child closed the terminal
                break
            if not data:
                break
            chunks.append(data)
        elif proc.poll() is not None:
            break
    proc.wait(timeout=300)
    os.close(leader)
    assert proc.returncode == 0, b"".join(chunks).decode(errors="replace")
    return ANSI.sub("", b"".join(chunks).decode(errors="replace"))


@pytest.fixture(scope="module")
def stage(tmp_path_factory) -> Path:
    return staged_sample(tmp_path_factory.mktemp("progress"), 3000)


def test_load_draws_live_progress_with_an_eta_on_a_terminal(stage, schema_target):
    target = schema_target
    shown = _under_pty([sys.executable, "-m", "etl", "load", "--stage", str(stage), "--mysql", target.uri,
                        "--batch-rows", "300"], {})
    tickets = [line for line in shown.replace("\r", "\n").splitlines() if line.strip().startswith("tickets")]
    # Several frames of the tickets bar, each with rows done of planned and the time left.
    frames = {m.group(1) for line in tickets if (m := re.search(r"(\d+)/3000", line))}
    assert len(frames) >= 3, tickets
    assert any(re.search(r"eta\s+(\d+:\d\d:\d\d|-:--:--)", line) for line in tickets), tickets
    assert "rows/s" in shown
    # What the time after the last chunk goes to: the empty table's indexes, dropped for the bulk path, come back.
    assert re.search(r"load: tickets: rebuilding \d+ secondary index\(es\), checking \d+ chunk\(s\) read back", shown), shown[-3000:]


def test_load_draws_nothing_when_piped(stage, schema_target):
    target = schema_target
    done = subprocess.run([sys.executable, "-m", "etl", "load", "--stage", str(stage), "--mysql", target.uri,
                           "--batch-rows", "300"], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert "eta" not in done.stderr and "rows/s" not in done.stderr and "\r" not in done.stderr + done.stdout
    assert "tickets" in done.stdout  # the summary table still comes


def test_migrate_shows_each_step_with_its_number_and_the_loads_bar_on_a_terminal(mysql_target, tmp_path):
    env = {"MYSQL_URI": mysql_target.uri, "EXPORT_DIR": str(tmp_path / "export"), "STAGE_DIR": str(tmp_path / "stage"),
           "RUNTIME_DIR": str(tmp_path / "runtime")}
    shown = _under_pty([sys.executable, "-m", "etl", "migrate", "--sample-tickets", "3000", "--until", "load"], env)
    headers = re.findall(r"\[(\d+)/18\] (\w+): ", shown)
    assert headers == [(str(n), phase) for n, phase in ((1, "preparation"), (2, "preparation"), (3, "preparation"),
                                                         (4, "migration"), (5, "migration"), (6, "migration"),
                                                         (7, "migration"))], headers
    tickets = [line for line in shown.replace("\r", "\n").splitlines() if line.strip().startswith("tickets")]
    assert any(re.search(r"3000/3000.*eta", line) for line in tickets), tickets
    # The running step's line: its number and title, then what it is doing, with the time it has taken.
    assert re.search(r"\[5/18\] transform", shown) and re.search(r"transform: tickets staged \(3,000 records\).*\d:\d\d:\d\d", shown)


def test_migrate_draws_no_progress_when_piped(mysql_target, tmp_path):
    env = {**os.environ, "MYSQL_URI": mysql_target.uri, "EXPORT_DIR": str(tmp_path / "export"),
           "STAGE_DIR": str(tmp_path / "stage"), "RUNTIME_DIR": str(tmp_path / "runtime")}
    done = subprocess.run([sys.executable, "-m", "etl", "migrate", "--sample-tickets", "3000", "--until", "parity"],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr
    assert "[7/18] migration: bulk import in chunks" in done.stdout  # the headers are output, the bars are not
    assert "\r" not in done.stdout + done.stderr and "eta" not in done.stderr and "staged (" not in done.stdout + done.stderr


def test_export_says_each_phase_on_a_terminal(tmp_path):
    shown = _under_pty([sys.executable, "-m", "etl", "export", "--from", str(ROOT / "data" / "sample-export"), "--out",
                        str(tmp_path / "export")], {})
    assert "export: folder form read into its own copy" in shown
    assert re.search(r"export: 486 records checked in 5 stores; writing the summary.*\d:\d\d:\d\d", shown), shown


def test_parity_and_validate_say_what_they_are_at_on_a_terminal(stage, schema_target):
    target = schema_target
    loaded = subprocess.run([sys.executable, "-m", "etl", "load", "--stage", str(stage), "--mysql", target.uri, "-q"],
                            cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert loaded.returncode == 0, loaded.stderr
    env = {"MYSQL_URI": target.uri, "STAGE_DIR": str(stage)}
    parity = _under_pty([sys.executable, "-m", "etl", "parity", "--src", str(stage)], env)
    assert re.search(r"parity: tickets compared \(1 of 5 tables\)", parity) and "(5 of 5 tables)" in parity, parity[-2000:]
    validate = _under_pty([sys.executable, "-m", "etl", "validate"], env)
    assert "validate: source side read" in validate and "validate: MySQL's figures in" in validate, validate[-2000:]
    assert re.search(r"validate: suite tickets (passed|FAILED) \(\d+ of 17\)", validate), validate[-2000:]
