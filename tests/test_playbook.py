"""etl migrate: the seed's 18 steps (etl/run/, run by etl/run/runner.py) on a real server, through
the real API (`etl serve`, started for the run), with real files."""

from __future__ import annotations

import dataclasses
import json
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest
from test_status_runs import records as runs_of

from etl import (
    ConfigError,
    LocalServer,
    MySQLTarget,
    PlaybookError,
    Settings,
    copy_context,
    docs_index,
    migrate,
)
from etl.check.suites import GX_DIR
from etl.cutover.flags import history, read_state
from etl.run.catalog import STEPS
from etl.run.context import PHASES

ROOT = Path(__file__).resolve().parent.parent
SAMPLE = ROOT / "data" / "sample-export"
SLUGS = [s.slug for s in STEPS]
QUICK = dict(bench_seconds=0.5, monitor_samples=2, monitor_interval=0.2)  # the measuring steps, short
QUICK_ARGS = ["--bench-seconds", "0.5", "--monitor-samples", "2", "--monitor-interval", "0.2"]
FORWARD = ["dual-write", "shadow", "live", "rampdown", "complete"]


def project(tmp_path: Path, target: MySQLTarget) -> tuple[Settings, dict]:
    """A project folder of its own (its own GX context: runs here never touch the checkout's), as
    Settings and as the environment of an `etl` process run in it."""
    proj = tmp_path / "proj"
    (proj / "etl").mkdir(parents=True, exist_ok=True)
    shutil.copy(ROOT / "pyproject.toml", proj / "pyproject.toml")
    if not (proj / GX_DIR).exists():
        copy_context(ROOT / GX_DIR, proj / GX_DIR)
    settings = Settings(proj, target.uri, 200, proj / "export", proj / "stage", proj / "runtime")
    env = {"MYSQL_URI": target.uri, "EXPORT_DIR": str(settings.export_dir), "STAGE_DIR": str(settings.stage_dir),
           "RUNTIME_DIR": str(settings.runtime_dir), "PYTHONPATH": str(ROOT), "BASE_URL": "", "API_TOKEN": ""}
    return settings, env


def etl(*args, cwd: Path, env: dict, timeout: float = 600) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "etl", *args], cwd=cwd, env={**os.environ, **env},
                          capture_output=True, text=True, timeout=timeout)


def moves(target: MySQLTarget) -> list[tuple[str, str | None, str | None]]:
    """The flag history as (action, from, to), oldest first."""
    return [(h.action, h.from_stage, h.to_stage) for h in history(target, limit=1000).entries]


def checksums(target: MySQLTarget) -> dict:
    """Per table: rows and an order-free sum of the row digests (every migrated column; not the
    server-stamped created_at, which differs between two runs)."""
    from etl import STORES

    out = {}
    with target.connect() as conn, conn.cursor() as cur:
        for s in STORES:
            cur.execute(f"SELECT COUNT(*), SUM(row_digest % 1000003), BIT_XOR(row_digest) FROM `{s.table}`")
            out[s.table] = tuple(str(v) for v in cur.fetchone())
    return out


# ---------------------------------------------------------------- every step


def test_migrate_runs_the_seeds_18_steps_and_ends_on_mysql_only(mysql_target, tmp_path, monkeypatch):
    settings, _ = project(tmp_path, mysql_target)
    import etl.mysql.db as db

    resolved = []  # every resolution of the target is a server check: the run makes one
    real = db.resolve_target
    monkeypatch.setattr(db, "resolve_target", lambda *a, **kw: resolved.append(1) or real(*a, **kw))
    shown = []
    import etl.run.validation as validation

    began = []  # when step 9's work started
    real_validate = validation._validate
    monkeypatch.setattr(validation, "_validate", lambda *a, **kw: began.append(time.time()) or real_validate(*a, **kw))

    run = migrate(settings, source=SAMPLE, echo=shown.append, **QUICK)

    assert run.status == "ok", str(run)
    assert [(s.n, s.slug, s.status) for s in run.steps] == [(n, slug, "ok") for n, slug in enumerate(SLUGS, 1)]
    assert [s.phase for s in run.steps] == [s.phase for s in STEPS] and set(s.phase for s in STEPS) == set(PHASES)
    headers = [str(x) for x in shown if str(x).startswith("[")]
    assert headers[0] == "[1/18] preparation: pre-flight checks" and headers[-1] == "[18/18] finalization: evidence report"
    assert len(resolved) == 1, f"the target was resolved {len(resolved)} times"
    # Step 9's work started beside step 8 (both only read the stage and MySQL): before parity ended.
    from datetime import datetime

    par = run.step("parity")
    assert len(began) == 1 and began[0] < datetime.fromisoformat(par.started_at).timestamp() + par.seconds
    assert run.step("aggregations").result.ok
    # The flags moved through every guarded stage, one at a time, and nothing was refused or forced.
    assert read_state(mysql_target).stage == "complete"
    assert moves(mysql_target) == [("set", a, b) for a, b in zip(["off", *FORWARD], FORWARD)]
    # The dual-read steps compared the API's answers with the export and reported them as browsers do.
    verified = [p for p in run.step("dual-read").result.parts if hasattr(p, "stores")][0]
    assert verified.ok and sum(s.compared for s in verified.stores) >= 400
    with mysql_target.connect() as conn, conn.cursor() as cur:
        cur.execute("SELECT stage, SUM(compared), SUM(mismatched) FROM migration_read_checks GROUP BY stage ORDER BY stage")
        assert {stage: (int(c), int(m)) for stage, c, m in cur.fetchall()} == {
            "live": (sum(s.compared for s in verified.stores), 0), "shadow": (sum(s.compared for s in verified.stores), 0)}
    assert run.step("rollback").result.needed is False
    assert docs_index(settings.root / GX_DIR).is_file()
    record = json.loads(run.path.read_text())
    assert record["status"] == "ok" and [s["slug"] for s in record["steps"]] == SLUGS
    assert all(s["product"] for s in record["steps"] if s["slug"] in ("export", "transform", "load"))
    page = run.report_path.read_text()
    verdict = page[page.index('id="verdict"'):page.index('id="timeline"')]
    assert 'Is the data in MySQL exact? <span class="good">yes</span>' in verdict, verdict
    assert 'Was the cutover safe? <span class="good">yes</span>' in verdict, verdict
    assert "5 guarded move(s)" in verdict and "the flags ended at stage complete" in verdict


def test_until_only_and_from_step_run_what_they_name(mysql_target, tmp_path):
    settings, _ = project(tmp_path, mysql_target)
    first = migrate(settings, source=SAMPLE, echo=lambda _: None, until="validation", **QUICK)
    assert first.status == "ok"
    assert {s.slug for s in first.steps if s.status == "ok"} == set(SLUGS[:10])
    assert all(s.status == "pending" for s in first.steps[10:])
    assert read_state(mysql_target).stage == "off"  # stopped before the cutover phase
    assert "--until validation" in first.report_path.read_text()

    only = migrate(settings, source=SAMPLE, echo=lambda _: None, only="parity", **QUICK)
    assert [s.slug for s in only.steps if s.status == "ok"] == ["parity"]
    assert [s.status for s in only.steps[:7]] == ["skipped"] * 7 and all(s.status == "pending" for s in only.steps[8:])

    rest = migrate(settings, source=SAMPLE, echo=lambda _: None, from_step="dual-read", **QUICK)
    assert rest.status == "ok", str(rest)
    assert [s.slug for s in rest.steps if s.status == "ok"] == SLUGS[10:]
    assert read_state(mysql_target).stage == "complete"

    with pytest.raises(ConfigError, match="no step 'seventeen'"):
        migrate(settings, echo=lambda _: None, only="seventeen")
    with pytest.raises(ConfigError, match="comes before"):
        migrate(settings, echo=lambda _: None, until="load", from_step="parity")


def test_a_new_run_will_not_reload_a_database_the_app_already_uses(mysql_target, tmp_path):
    settings, _ = project(tmp_path, mysql_target)
    assert migrate(settings, source=SAMPLE, echo=lambda _: None, **QUICK).status == "ok"
    with pytest.raises(PlaybookError, match="cutover: at stage complete.*--restart"):
        migrate(settings, source=SAMPLE, echo=lambda _: None, **QUICK)
    again = migrate(settings, source=SAMPLE, echo=lambda _: None, restart=True, **QUICK)
    assert again.status == "ok"
    actions = [a for a, _, _ in moves(mysql_target)]
    assert actions == ["set"] * 5 + ["rollback"] + ["set"] * 5  # rolled back (recorded), then guarded again
    verdict = again.report_path.read_text()
    verdict = verdict[verdict.index('id="verdict"'):verdict.index('id="timeline"')]
    assert 'Was the cutover safe? <span class="good">yes</span>' in verdict, verdict  # its own cutover was not undone
    assert "started over: the flags were rolled back from complete" in verdict


def test_a_second_run_on_the_same_database_waits_for_the_first_and_is_told_by_whom(mysql_target, tmp_path):
    import threading

    from etl import apply_schema
    from etl.mysql.lock import RUN, LockError, database_lock

    settings, _ = project(tmp_path, mysql_target)
    apply_schema(mysql_target)  # where the holder leaves its note (before it, the holder is named by its connection)
    heard: list[str] = []
    with database_lock(mysql_target, "etl migrate run first", kind=RUN):
        with pytest.raises(LockError, match="another etl migrate run holds the lock of database .*etl migrate run first"):
            migrate(settings, source=SAMPLE, echo=lambda m: heard.append(str(m)), only="preflight", lock_wait=0, **QUICK)
    assert not any("waiting" in h for h in heard)  # refused at once, not waited

    held, release = threading.Event(), threading.Event()

    def first_run():
        with database_lock(mysql_target, "etl migrate run first", kind=RUN):
            held.set()
            release.wait(30)

    holder = threading.Thread(target=first_run)
    holder.start()
    held.wait(10)
    threading.Timer(2.0, release.set).start()  # the first run ends while the second waits
    t0 = time.monotonic()
    second = migrate(settings, source=SAMPLE, echo=lambda m: heard.append(str(m)), only="preflight", lock_wait=60, **QUICK)
    holder.join()
    assert second.status == "ok" and time.monotonic() - t0 >= 1.5
    waited = [h for h in heard if h.startswith("waiting")]
    assert len(waited) == 1 and "etl-run lock of database" in waited[0] and "etl migrate run first" in waited[0], heard


@pytest.fixture
def private_server():
    """A server of our own whose global settings this test may change."""
    home = Path(tempfile.mkdtemp(prefix="etl-test-preflight-"))
    server = LocalServer(home, buffer_pool="64M")
    try:
        yield MySQLTarget.parse(server.up().uri)
    finally:
        server.down()
        shutil.rmtree(home, ignore_errors=True)


def test_a_run_that_starts_after_the_preflight_reads_the_uptime_before_its_monitor(private_server, tmp_path):
    """--from-step dual-read on a server started a minute ago: young, not restarted since the run began.
    Without the preflight the monitor's floor stayed at 60 s and a young server read as a breach."""
    from contextlib import ExitStack

    from etl.run.context import Context, PlaybookOptions

    settings, _ = project(tmp_path, private_server)
    with ExitStack() as stack:
        ctx = Context(settings, PlaybookOptions(), None, 0, lambda _: None, stack)
        floor = ctx.monitor_thresholds().min_uptime_s
    assert ctx.server_uptime is not None and ctx.server_uptime < 60  # the private server is young
    assert floor <= max(0.0, ctx.server_uptime - 4)


def test_preflight_names_every_missing_prerequisite_in_one_message(private_server, tmp_path):
    with private_server.connect(database=False) as conn, conn.cursor() as cur:
        cur.execute("SET GLOBAL local_infile = 0")
    target = private_server.with_database("preflight_never_made")
    settings, _ = project(tmp_path, target)
    with socket.socket() as s:  # a loopback port nothing listens on
        s.bind(("127.0.0.1", 0))
        api = f"http://127.0.0.1:{s.getsockname()[1]}"
    settings = dataclasses.replace(settings, base_url=api, base_url_given=True, api_token="a-token-for-the-test")
    with pytest.raises(PlaybookError) as e:
        migrate(settings, source=tmp_path / "no-such-export", echo=lambda _: None, **QUICK)
    text = str(e.value)
    assert "3 prerequisite(s) missing" in text, text
    assert "local_infile: OFF on the server" in text and f"export: {tmp_path / 'no-such-export'}: no such file" in text
    assert f"api: {api} is not reachable" in text
    with private_server.connect(database=False) as conn, conn.cursor() as cur:
        cur.execute("SHOW DATABASES LIKE %s", (target.database,))
        assert cur.fetchall() == ()  # nothing was made: the schema step never ran
    run = json.loads(next((settings.runtime_dir / "runs").glob("*/run.json")).read_text())
    assert run["status"] == "failed" and run["steps"][0]["status"] == "failed"


# ---------------------------------------------------------------- a breach after the cutover


def test_a_breach_in_the_post_cutover_monitor_rolls_back_and_fails_the_run(mysql_target, tmp_path):
    settings, env = project(tmp_path, mysql_target)
    proj = settings.root
    done = etl("migrate", "--from", str(SAMPLE), "--until", "cutover", *QUICK_ARGS, cwd=proj, env=env)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr
    assert read_state(mysql_target).stage == "complete"
    # The API now stalls 3 s at every request: a GC pause or a held lock as users would meet it.
    stalled = etl("migrate", "--from-step", "monitor", "--threshold-latency-p95", "1000", *QUICK_ARGS, cwd=proj,
                  env={**env, "ETL_SERVE_STALL": "3"})
    assert stalled.returncode == 1, stalled.stdout[-3000:] + stalled.stderr
    assert "rolled back to IndexedDB after the cutover: post-cutover monitor breach" in stalled.stderr
    state = read_state(mysql_target)
    assert state.stage == "off" and state.flags["rollbackMode"] is True
    assert moves(mysql_target)[-1] == ("rollback", "complete", "off")
    run = json.loads(sorted((settings.runtime_dir / "runs").glob("*/run.json"))[-1].read_text())
    status = {s["slug"]: s["status"] for s in run["steps"]}
    assert run["status"] == "failed"
    assert (status["monitor"], status["finalize-sessions"], status["rollback"]) == ("failed", "skipped", "failed")
    assert "api.p95_ms = 3," in next(s for s in run["steps"] if s["slug"] == "monitor")["error"]
    page = (settings.runtime_dir / "runs" / run["id"] / "report.html").read_text()
    assert "rolled back at" in page and "post-cutover monitor breach" in page


# ---------------------------------------------------------------- killed anywhere, resumed


def kill_in(slug: str, delay: float, proj: Path, env: dict) -> str | None:
    """Start `etl migrate`, SIGKILL it `delay` s after step `slug` started; the step the record shows
    running (or last done) when it died, or None when the run ended first."""
    proc = subprocess.Popen([sys.executable, "-m", "etl", "migrate", "--sample-tickets", "300", *QUICK_ARGS], cwd=proj,
                            env={**os.environ, **env}, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True)
    deadline = time.monotonic() + 300
    try:
        while proc.poll() is None and time.monotonic() < deadline:
            runs = runs_of(Path(env["RUNTIME_DIR"]))
            step = next((s for s in runs[-1]["steps"] if s["slug"] == slug), None) if runs else None
            if step and step["status"] in ("running", "ok"):
                time.sleep(delay)
                break
            time.sleep(0.005)
        if proc.poll() is not None:
            return None
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    steps = runs_of(Path(env["RUNTIME_DIR"]))[-1]["steps"]
    return next((s["slug"] for s in steps if s["status"] == "running"),
                next((s["slug"] for s in reversed(steps) if s["status"] == "ok"), "(none)"))


def test_killed_at_random_points_in_every_phase_a_resumed_run_ends_as_an_uninterrupted_one(mysql_server, tmp_path):
    from conftest import _fresh_database

    base, _ = mysql_server
    seed = int(os.environ.get("ETL_KILL_SEED") or time.time())
    rng = random.Random(seed)
    made = []

    def fresh(name: str) -> tuple[MySQLTarget, Path, dict]:
        target = _fresh_database(base)
        made.append(target)
        settings, env = project(tmp_path / name, target)
        return target, settings.root, env

    try:
        reference, proj, env = fresh("reference")
        done = etl("migrate", "--sample-tickets", "300", *QUICK_ARGS, cwd=proj, env=env)
        assert done.returncode == 0, done.stdout[-3000:] + done.stderr
        want_sums, want_moves = checksums(reference), moves(reference)

        # Two kill points per phase (at a step of that phase and a random moment inside it), and two anywhere.
        phases = [p for p in PHASES for _ in range(2)] + rng.sample(PHASES, 2)
        points = [(rng.choice([s.slug for s in STEPS if s.phase == phase]),
                   round(rng.uniform(0, 0.05 if phase == "finalization" else 0.8), 3))  # its steps are quick
                  for phase in phases]
        killed = []
        for i, (slug, delay) in enumerate(points):
            target, proj, env = fresh(f"kill{i}")
            at = kill_in(slug, delay, proj, env)
            if at is None:
                continue  # the run ended before the kill: not a kill point
            status = json.loads(etl("runs", "--json", cwd=proj, env=env).stdout)["runs"][0]["status"]
            if status == "ok":
                continue  # killed while it exited, its record complete: not a kill point either
            killed.append(at)
            assert status == "interrupted", (seed, slug, delay, at, status)
            resumed = etl("migrate", "--resume", *QUICK_ARGS, cwd=proj, env=env)
            assert resumed.returncode == 0, (seed, slug, delay, at, resumed.stdout[-3000:] + resumed.stderr)
            assert "resuming run" in resumed.stdout
            parity = etl("parity", cwd=proj, env=env)
            assert parity.returncode == 0, (seed, at, parity.stdout[-2000:])
            assert checksums(target) == want_sums, (seed, slug, delay, at)
            assert moves(target) == want_moves, (seed, slug, delay, at)
            assert read_state(target).stage == "complete"
        assert len(killed) >= 10, (seed, points, killed)
        assert {next(s.phase for s in STEPS if s.slug == k) for k in killed} >= set(PHASES[:4]), (seed, killed)
    finally:
        with base.connect(database=False) as conn, conn.cursor() as cur:
            for t in made:
                cur.execute(f"DROP DATABASE IF EXISTS `{t.database}`")


def test_resume_re_checks_what_the_finished_steps_left_and_runs_again_from_a_changed_one(mysql_target, tmp_path):
    settings, _ = project(tmp_path, mysql_target)
    first = migrate(settings, source=SAMPLE, echo=lambda _: None, until="load", **QUICK)
    assert first.status == "ok"

    def fail_at_load():  # the record as a run that failed in its load would leave it
        body = json.loads(first.path.read_text())
        body["status"] = "failed"
        step = next(s for s in body["steps"] if s["slug"] == "load")
        step["status"], step["error"] = "failed", "[load] planted"
        first.path.write_text(json.dumps(body))

    fail_at_load()
    shown = []
    unchanged = migrate(settings, echo=shown.append, resume=True)
    assert unchanged.status == "ok" and unchanged.resumed_from == first.id
    ran = [s.slug for s in unchanged.steps if s.started_at and s.started_at > first.finished_at]
    assert ran == ["preflight", "load"], ran  # the export and the transform were found as they were left

    first = unchanged
    fail_at_load()
    staged = settings.stage_dir / "tickets.parquet"
    os.utime(staged, ns=(staged.stat().st_atime_ns, staged.stat().st_mtime_ns + 10**9))  # the stage touched since
    shown.clear()
    again = migrate(settings, echo=shown.append, resume=True)
    assert any("what step transform produced changed since run" in str(x) for x in shown), shown
    ran = [s.slug for s in again.steps if s.started_at and s.started_at > first.finished_at]
    assert ran == ["preflight", "transform", "upload-sessions", "load"], ran
    with pytest.raises(ConfigError, match="ended ok: nothing to resume"):
        migrate(settings, echo=lambda _: None, resume=True)


@pytest.mark.parametrize("where", ["[1/", "[3/"])
def test_a_stop_between_two_steps_is_recorded_as_the_step_it_stopped(mysql_target, tmp_path, where):
    """A stop (Ctrl-C, SIGTERM) that lands outside a step, here while the next step's title is being
    printed, leaves the record saying so: the steps before it ok, the one it stopped interrupted,
    the rest pending, the run interrupted (a SIGTERM in that window once left it "running")."""
    settings, _ = project(tmp_path, mysql_target)

    def echo(line):
        if str(line).startswith(where):
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        migrate(settings, source=SAMPLE, echo=echo, **QUICK)
    (record,) = [json.loads(p.read_text()) for p in (settings.runtime_dir / "runs").glob("*/run.json")]
    statuses = [s["status"] for s in record["steps"]]
    stopped = int(where[1:-1]) - 1
    assert record["status"] == "interrupted" and statuses[stopped] == "interrupted", statuses
    assert set(statuses[:stopped]) <= {"ok"} and set(statuses[stopped + 1:]) == {"pending"}, statuses
