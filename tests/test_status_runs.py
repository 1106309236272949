"""`etl status`, `etl runs` and `etl report` through the real command line, against real runs of
`etl migrate --sample-tickets 300`: one that passed, one that failed (a server that refuses the
connection) and one killed with SIGKILL half-way (its record left at "running" by a dead process,
which must read as interrupted). Nothing here depends on which steps migrate runs: what a run did
is read back from its own run.json.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path
from urllib.parse import quote

import pytest

from conftest import password_user
from etl.mysql.db import MySQLTarget

SECTIONS = ("verdict", "timeline", "export", "transform", "load", "parity", "expectations", "benchmark", "monitor", "flags")
CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run"]


def etl(*args, cwd: Path, env: dict, timeout=600):
    """`etl` as a user runs it; the finished process (never raises on a failure)."""
    return subprocess.run([sys.executable, "-m", "etl", *args], capture_output=True, text=True, cwd=cwd,
                          env={**os.environ, "MYSQL_URI": "", "DISPLAY": "", "WAYLAND_DISPLAY": "", **env},
                          timeout=timeout)


def refused_uri() -> str:
    """A MySQL URI on a loopback port nothing listens on (the connection is refused)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"mysql://root@127.0.0.1:{port}/nothing"


def records(runtime: Path) -> list[dict]:
    out = []
    for p in sorted((runtime / "runs").glob("*/run.json")):
        try:
            out.append(json.loads(p.read_text()))
        except ValueError:  # being replaced right now
            continue
    return out


@pytest.fixture(scope="module")
def home(mysql_server, tmp_path_factory):
    """One project folder with three runs of the real `etl migrate`: ok, failed, interrupted (in that order)."""
    base, _ = mysql_server
    database = f"t_{uuid.uuid4().hex[:12]}"
    with base.connect(database=False) as conn, conn.cursor() as cur:
        cur.execute(f"CREATE DATABASE `{database}`")
    target = MySQLTarget(base.host, base.port, base.user, base.password, database, base.unix_socket)
    root = tmp_path_factory.mktemp("home")
    env = {"RUNTIME_DIR": str(root / "runtime"), "EXPORT_DIR": str(root / "export"), "STAGE_DIR": str(root / "stage"),
           "MYSQL_URI": target.uri}
    try:
        passed = etl("migrate", "--sample-tickets", "300", cwd=root, env=env)
        assert passed.returncode == 0, passed.stdout[-3000:] + passed.stderr
        failed = etl("migrate", "--sample-tickets", "300", "--mysql", refused_uri(), cwd=root, env=env)
        assert failed.returncode == 1, failed.stdout[-3000:] + failed.stderr
        # Killed for good once the run has got past its first steps: nothing can record the end.
        proc = subprocess.Popen([sys.executable, "-m", "etl", "migrate", "--sample-tickets", "300", "--restart"], cwd=root,
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
                                env={**os.environ, **env})
        deadline = time.monotonic() + 120
        while proc.poll() is None and time.monotonic() < deadline:
            newest = records(root / "runtime")[-1:] if len(records(root / "runtime")) == 3 else []
            if newest and sum(s["status"] == "ok" for s in newest[0]["steps"]) >= 3:
                break
            time.sleep(0.02)
        assert proc.poll() is None, "migrate ended before it could be killed"
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
        yield {"root": root, "env": env, "target": target}
    finally:
        with base.connect(database=False) as conn, conn.cursor() as cur:
            cur.execute(f"DROP DATABASE IF EXISTS `{database}`")


def run_json(home) -> list[dict]:
    """The three runs as `etl runs --json` gives them, newest first."""
    done = etl("runs", "--json", cwd=home["root"], env=home["env"])
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)["runs"]


def test_runs_lists_the_history_newest_first(home):
    raw = records(home["root"] / "runtime")
    assert [r["status"] for r in raw] == ["ok", "failed", "running"]  # the killed run's record says "running"
    runs = run_json(home)
    assert [r["status"] for r in runs] == ["interrupted", "failed", "ok"]
    assert [r["id"] for r in runs] == [r["id"] for r in reversed(raw)]
    for r, rec in zip(runs, reversed(raw)):
        assert r["steps_total"] == len(rec["steps"])
        assert r["steps_ok"] == sum(s["status"] == "ok" for s in rec["steps"])
        assert r["steps_skipped"] == sum(s["status"] == "skipped" for s in rec["steps"])
        assert r["started_at"] == rec["started_at"]
        assert r["seconds"] is not None and r["seconds"] >= 0
    ok, failed, killed = runs[2], runs[1], runs[0]
    assert ok["ok"] and ok["stopped_at"] is None and ok["steps_ok"] + ok["steps_skipped"] == ok["steps_total"] > 0
    bad = next(s for s in raw[1]["steps"] if s["status"] == "failed")
    assert failed["stopped_at"] == (bad["slug"] or bad["name"]) and not failed["ok"]
    assert "refused" in failed["error"] or "connect" in failed["error"]
    # killed inside a step (the record shows it running) or between two (the last one ok)
    cut = next((s for s in raw[2]["steps"] if s["status"] == "running"), None)
    last_ok = [s for s in raw[2]["steps"] if s["status"] == "ok"][-1]
    assert killed["stopped_at"] == ((cut or last_ok)["slug"] or (cut or last_ok)["name"])
    assert killed["stopped"] == f"{'at' if cut else 'after'} step {killed['stopped_at']}"
    assert failed["stopped"] == f"at step {failed['stopped_at']}"
    assert 3 <= killed["steps_ok"] < ok["steps_total"]

    text = etl("runs", cwd=home["root"], env=home["env"])
    assert text.returncode == 0 and "Traceback" not in text.stderr
    lines = text.stdout.splitlines()
    for r in runs:
        line = next(x for x in lines if x.startswith(r["id"] + " "))
        assert r["status"] in line and f"{r['steps_ok']}/{r['steps_total']}" in line
    assert f"stopped at step {failed['stopped_at']}" in text.stdout
    assert f"stopped {killed['stopped']}" in text.stdout

    one = etl("runs", "--json", "--limit", "1", cwd=home["root"], env=home["env"])
    assert [r["id"] for r in json.loads(one.stdout)["runs"]] == [killed["id"]]


def test_status_shows_every_part_and_the_last_run(home):
    done = etl("status", "--json", cwd=home["root"], env=home["env"])
    assert done.returncode == 0, done.stderr
    s = json.loads(done.stdout)
    t = s["target"]
    assert t["connects"] is True and t["uri"] == str(home["target"])
    assert isinstance(t["server_version"], str) and t["server_version"]
    assert isinstance(t["local_infile"], bool) and t["max_allowed_packet"] > 0
    assert s["export"]["present"] and s["export"]["counts"]["tickets"] == 300 and s["export"]["written_at"]
    assert s["stage"]["present"] and s["stage"]["counts"]["tickets"] == 300 and s["stage"]["transformed_at"]
    assert s["stage"]["rejects"] == sum((c.get("rejected") or 0) for c in json.loads(
        (home["root"] / "stage" / "transform-summary.json").read_text())["counts"].values())
    assert s["ledger"]["by_state"].get("done", 0) > 0 and "error" not in s["ledger"]
    assert "error" not in s["flags"] and s["flags"]["stage"] is not None
    runs = run_json(home)
    last = s["last_run"]
    assert last["id"] == runs[0]["id"] and last["status"] == "interrupted"
    # killed inside a step, or between two (steps not reached, when listed up front, are pending)
    assert [x["status"] for x in last["steps"] if x["status"] != "pending"][-1] in ("interrupted", "ok")
    assert last["stopped_at"] == runs[0]["stopped_at"]
    assert s["parity"]["ok"] is True and Path(s["parity"]["report"]).is_file()
    assert s["validation"]["ok"] is True and s["validation"]["run"] == runs[2]["id"]
    assert any("interrupted" in p for p in s["problems"]) and s["ok"] is False

    text = etl("status", cwd=home["root"], env=home["env"])
    assert text.returncode == 0 and "Traceback" not in text.stderr + text.stdout
    for expected in (f"last run: {runs[0]['id']} interrupted", "connects: yes", "local_infile", "max_allowed_packet",
                     "tickets 300", "rejects:", "load ledger: ", "flags: stage", "last parity: OK",
                     "last validation: passed"):
        assert expected in text.stdout, (expected, text.stdout)
    # asked to: exit 1 when something needs attention (here: the last run was interrupted)
    assert etl("status", "--strict", cwd=home["root"], env=home["env"]).returncode == 1


def test_status_without_a_server_or_an_export_says_so(home, tmp_path):
    env = {**home["env"], "MYSQL_URI": refused_uri(), "EXPORT_DIR": str(tmp_path / "none"),
           "STAGE_DIR": str(tmp_path / "nostage"), "RUNTIME_DIR": str(tmp_path / "runtime")}
    done = etl("status", cwd=tmp_path, env=env)
    assert done.returncode == 0 and "Traceback" not in done.stdout + done.stderr, done.stderr
    assert "connects: NO" in done.stdout and "refused" in done.stdout
    assert "no export yet" in done.stdout and "no stage yet" in done.stdout
    assert "load ledger: cannot be read" in done.stdout and "flags: cannot be read" in done.stdout
    assert "last run: none recorded" in done.stdout
    s = json.loads(etl("status", "--json", cwd=tmp_path, env=env).stdout)
    assert s["target"]["connects"] is False and s["export"]["present"] is False and s["last_run"] is None
    assert etl("runs", cwd=tmp_path, env=env).stdout.startswith("no migration runs recorded")
    # a server that answers, a database not made yet
    fresh = home["target"].with_database(home["target"].database + "_not_yet")
    done = etl("status", cwd=tmp_path, env={**env, "MYSQL_URI": fresh.uri})
    assert done.returncode == 0 and "connects: yes" in done.stdout, done.stdout + done.stderr
    assert f"the database {fresh.database} does not exist yet" in done.stdout
    assert f"load ledger: cannot be read: the database {fresh.database} does not exist yet" in done.stdout


def test_report_of_each_run_is_rebuilt_without_a_database(home):
    runs = run_json(home)
    pages = {}
    for r in runs:
        done = etl("report", r["id"][:15] if r is runs[2] else r["id"], "--no-open", cwd=home["root"], env=home["env"])
        assert done.returncode == 0, done.stderr
        path = Path(done.stdout.strip().rsplit(": ", 1)[1])
        assert path == home["root"] / "runtime" / "runs" / r["id"] / "report.html" and path.is_file()
        assert (path.parent / "evidence.json").stat().st_mode & 0o777 == 0o600
        pages[r["status"]] = path.read_text()
    # the newest run by default; the report is listed by `etl runs` once written
    newest = etl("report", "--no-open", cwd=home["root"], env=home["env"])
    assert runs[0]["id"] in newest.stdout
    assert all(r["report"] for r in run_json(home))

    ok, failed, killed = pages["ok"], pages["failed"], pages["interrupted"]
    assert "Is the data in MySQL exact? <span class=\"good\">yes</span>" in ok
    assert "Is the data in MySQL exact? <span class=\"unknown\">not shown</span>" in failed
    assert "status-failed" in failed and "refused" in failed
    assert "status-interrupted" in killed
    # sections whose step did not run say so and why
    assert "not run: the run failed at step" in failed
    assert "not run: the run was interrupted " in killed
    assert failed.count('class="notrun"') > ok.count('class="notrun"')

    # rebuilt from run.json + evidence.json alone: no server now, the same page (but its time)
    evidence = (home["root"] / "runtime" / "runs" / runs[2]["id"] / "evidence.json").read_text()
    again = etl("report", runs[2]["id"], "--no-open", cwd=home["root"], env={**home["env"], "MYSQL_URI": refused_uri()})
    assert again.returncode == 0, again.stderr
    rebuilt = (home["root"] / "runtime" / "runs" / runs[2]["id"] / "report.html").read_text()
    strip = lambda text: [x for x in text.splitlines() if "Report generated" not in x]  # noqa: E731
    assert strip(rebuilt) == strip(ok)
    assert (home["root"] / "runtime" / "runs" / runs[2]["id"] / "evidence.json").read_text() == evidence
    assert "evidence collected now" not in again.stdout

    unknown = etl("report", "nope", "--no-open", cwd=home["root"], env=home["env"])
    assert unknown.returncode == 1 and "no run 'nope'" in unknown.stderr and "Traceback" not in unknown.stderr


def test_the_report_loads_offline_in_chromium_with_every_section(home):
    """Headless Chromium, offline, every request but the file itself refused: every section is there
    and nothing was fetched."""
    from playwright.sync_api import sync_playwright

    if not CHROMIUM.exists():
        pytest.fail(f"{CHROMIUM} is missing: `make system-deps` installs it", pytrace=False)
    runs = run_json(home)
    ok = home["root"] / "runtime" / "runs" / runs[2]["id"] / "report.html"
    if not ok.is_file():
        assert etl("report", runs[2]["id"], "--no-open", cwd=home["root"], env=home["env"]).returncode == 0
    html = ok.read_text()
    assert "<script" not in html and "<link" not in html and "@import" not in html and "url(" not in html
    requested = []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            context = browser.new_context(offline=True, java_script_enabled=False)
            page = context.new_page()
            page.on("request", lambda r: requested.append(r.url))
            page.route("**/*", lambda route: route.abort() if not route.request.url.startswith("file:") else route.continue_())
            page.goto(ok.as_uri())
            for section in SECTIONS:
                assert page.locator(f"section#{section}").count() == 1, section
                assert page.locator(f"#{section}").is_visible(), section
            assert "yes" in page.locator("#verdict").inner_text()
            assert page.locator("#load svg.chart").count() == 1  # the throughput chart
            assert page.locator("#timeline tr").count() == len(json.loads(
                (ok.parent / "run.json").read_text())["steps"]) + 1
        finally:
            browser.close()
    assert requested == [ok.as_uri()], requested


PASSWORD = "pw@:/%#?&=+x" + uuid.uuid4().hex[:6]


def test_no_password_reaches_the_run_folder_or_the_output(mysql_server, tmp_path):
    """migrate with a password holding every URI character; then status, runs and report: the password
    (in any encoding) is in none of their output and in no file of the run folder."""
    base, _ = mysql_server
    with password_user(base, PASSWORD) as (uri, _database):
        env = {"MYSQL_URI": uri, "RUNTIME_DIR": str(tmp_path / "runtime"), "EXPORT_DIR": str(tmp_path / "export"),
               "STAGE_DIR": str(tmp_path / "stage")}
        outputs = [etl("migrate", "--sample-tickets", "300", cwd=tmp_path, env=env)]
        assert outputs[0].returncode == 0, outputs[0].stderr
        for args in (("report", "--no-open"), ("status",), ("status", "--json"), ("runs", "--json"), ("runs",)):
            outputs.append(etl(*args, cwd=tmp_path, env=env))
            assert outputs[-1].returncode == 0, (args, outputs[-1].stderr)
        status = json.loads(outputs[3].stdout)
        assert status["target"]["connects"] is True and "***" in status["target"]["uri"]
    forms = {PASSWORD, quote(PASSWORD, safe=""), quote(PASSWORD)}
    for done in outputs:
        for form in forms:
            assert form not in done.stdout + done.stderr
    (folder,) = (tmp_path / "runtime" / "runs").iterdir()
    files = sorted(p.name for p in folder.iterdir())
    assert {"run.json", "evidence.json", "report.html"} <= set(files), files
    for path in folder.iterdir():
        data = path.read_bytes()
        for form in forms:
            assert form.encode() not in data, path
        assert path.stat().st_mode & 0o777 == 0o600, path
    assert "***" in (folder / "report.html").read_text()
