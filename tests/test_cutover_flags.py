"""etl flags on a real server: values and combinations checked, every change and refusal recorded
in the same transaction, no lost update between two processes, nothing half-done after a kill."""

from __future__ import annotations

import itertools
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from etl.cutover import FLAGS, STAGES, check_combination, history, read_state, rollback, set_flags, stage_of
from etl.cutover.flags import SLEEP_HOOK
from etl.core.errors import FlagError

ROOT = Path(__file__).resolve().parent.parent


def flag_rows(target) -> dict:
    with target.connect() as conn, conn.cursor() as cur:
        cur.execute("SELECT name, value FROM feature_flags")
        return {k: json.loads(v) for k, v in cur.fetchall()}


def history_count(target) -> int:
    with target.connect() as conn, conn.cursor() as cur:
        cur.execute("SELECT COUNT(*) FROM feature_flag_history")
        return cur.fetchone()[0]


def etl(target, runtime: Path, *args, env=None, **kw):
    return subprocess.Popen([sys.executable, "-m", "etl", "flags", *args, "--mysql", target.uri],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT,
                            env={**os.environ, "RUNTIME_DIR": str(runtime), **(env or {})}, **kw)


def test_seed_flags_are_the_off_stage(schema_target):
    state = read_state(schema_target)
    assert state.stage == "off"
    assert state.flags == {"dataSource": "indexeddb", "writeMode": "indexeddb-only", "migrationMode": False,
                           "debugMode": False, "performanceMonitoring": False, "rollbackMode": False}
    assert "stage: off" in str(state)


@pytest.mark.parametrize("item, allowed", [
    ("dataSource=postgres", "indexeddb, mysql, dual-read"),
    ("writeMode=both", "indexeddb-only, mysql-only, dual-write"),
    ("debugMode=yes", "true, false"),
    ("rollbackMode=1", "true, false"),
    ("colour=red", "dataSource, writeMode, migrationMode"),
])
def test_invalid_values_are_refused_listing_the_allowed_ones_and_recorded(schema_target, item, allowed):
    before = flag_rows(schema_target)
    with pytest.raises(FlagError, match=allowed):
        set_flags(schema_target, [item], reason="try")
    assert flag_rows(schema_target) == before
    (entry,) = history(schema_target).entries
    key, _, value = item.partition("=")
    assert (entry.action, entry.changes, entry.reason) == ("refused", {key: [before.get(key), value]}, "try")
    assert allowed in entry.evidence["message"]


def test_every_combination_is_a_stage_or_refused_with_its_reason(schema_target):
    """All 36 combinations of the stage flags: the 6 stages plus rollback pass the check; the rest
    are refused by set_flags with the check's message and leave the flags as they were."""
    names = ("dataSource", "writeMode", "migrationMode", "rollbackMode")
    valid = []
    for combo in itertools.product(*(FLAGS[n] for n in names)):
        flags = {n: (v == "true" if FLAGS[n][0] == "true" else v) for n, v in zip(names, combo)}
        why = check_combination(flags)
        if why is None:
            valid.append(flags)
            continue
        with pytest.raises(FlagError, match="refused: "):
            set_flags(schema_target, [f"{n}={v}" for n, v in zip(names, combo)], reason="combination")
        assert read_state(schema_target).stage == "off"
    assert sorted(stage_of(f).name + ("+rollback" if f["rollbackMode"] else "") for f in valid) == sorted(
        [s.name for s in STAGES] + ["off+rollback"])
    refused = [e for e in history(schema_target, limit=100).entries if e.action == "refused"]
    assert len(valid) == 7 and len(refused) == 36 - 7
    assert any("reads from MySQL, which no write reaches" in e.evidence["message"] for e in refused)


def test_reading_mysql_while_writing_only_indexeddb_is_refused(schema_target):
    with pytest.raises(FlagError, match="dataSource=mysql reads from MySQL, which no write reaches with writeMode=indexeddb-only"):
        set_flags(schema_target, ["dataSource=mysql"], reason="read from mysql")


def test_forward_moves_go_through_the_guards_back_moves_and_plain_flags_do_not(schema_target, tmp_path):
    with pytest.raises(FlagError, match="etl cutover stage dual-write"):
        set_flags(schema_target, ["writeMode=dual-write"], reason="skip the guards")
    done = set_flags(schema_target, ["debugMode=true", "performanceMonitoring=true"], reason="look closer", runtime_dir=tmp_path)
    assert (done.action, done.changes) == ("set", {"debugMode": [False, True], "performanceMonitoring": [False, True]})
    mirrored = json.loads((tmp_path / "feature-flags.json").read_text())
    assert mirrored["flags"]["debugMode"] is True and mirrored["stage"] == "off" and mirrored["updatedAt"]
    assert set_flags(schema_target, ["debugMode=true"], reason="again").action == "unchanged"
    with pytest.raises(FlagError, match="reason is required"):
        set_flags(schema_target, ["debugMode=false"], reason=" ")


def test_rollback_is_one_step_back_to_indexeddb(schema_target, tmp_path):
    # put the flags at "complete" by hand (the guarded path is tested in test_cutover_guards)
    with schema_target.connect() as conn, conn.cursor() as cur:
        cur.execute("""UPDATE feature_flags SET value = CASE name WHEN 'dataSource' THEN '"mysql"'
                       WHEN 'writeMode' THEN '"mysql-only"' ELSE value END""")
    assert read_state(schema_target).stage == "complete"
    done = rollback(schema_target, reason="errors after cutover", runtime_dir=tmp_path)
    assert done.action == "rollback" and (done.from_stage, done.to_stage) == ("complete", "off")
    state = read_state(schema_target)
    assert state.flags["rollbackMode"] is True and state.stage == "off"
    assert json.loads((tmp_path / "feature-flags.json").read_text())["flags"] == state.flags
    assert history(schema_target).entries[-1].action == "rollback"


def test_two_concurrent_sets_never_lose_an_update(schema_target, tmp_path):
    """The first writer holds the rows (sleeping before COMMIT); the second queues on them and then
    decides on the first one's value. Without the row locks the second would read the old value,
    find nothing to change, and the first writer's value would stay: a lost update."""
    first = etl(schema_target, tmp_path, "set", "debugMode=true", "--reason", "first", env={SLEEP_HOOK: "3"})
    assert SLEEP_HOOK in first.stderr.readline()  # inside the transaction, rows locked
    second = etl(schema_target, tmp_path, "set", "debugMode=false", "--reason", "second")
    out1, err1 = first.communicate(timeout=60)
    out2, err2 = second.communicate(timeout=60)
    assert first.returncode == 0 and second.returncode == 0, err1 + err2
    entries = history(schema_target).entries
    assert [(e.reason, e.changes) for e in entries] == [("first", {"debugMode": [False, True]}),
                                                         ("second", {"debugMode": [True, False]})]
    assert flag_rows(schema_target)["debugMode"] is False
    assert json.loads((tmp_path / "feature-flags.json").read_text())["flags"]["debugMode"] is False


def test_a_kill_inside_the_transaction_leaves_neither_the_change_nor_its_record(schema_target, tmp_path):
    before, records = flag_rows(schema_target), history_count(schema_target)
    proc = etl(schema_target, tmp_path, "set", "debugMode=true", "--reason", "doomed", env={SLEEP_HOOK: "60"})
    assert SLEEP_HOOK in proc.stderr.readline()  # flag row updated and history row inserted, not committed
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    deadline = time.monotonic() + 30  # the server rolls back once it notices the dropped connection
    while time.monotonic() < deadline:
        try:
            done = set_flags(schema_target, ["performanceMonitoring=true"], reason="after the kill")
            break
        except Exception:  # noqa: BLE001 - lock wait while the server cleans up
            time.sleep(0.5)
    assert done.action == "set"
    assert flag_rows(schema_target) == {**before, "performanceMonitoring": True}
    assert history_count(schema_target) == records + 1
    assert not (tmp_path / "feature-flags.json").exists() or json.loads(
        (tmp_path / "feature-flags.json").read_text())["flags"]["debugMode"] is False


def test_cli_list_set_history_rollback(schema_target, tmp_path):
    def run(*args):
        p = etl(schema_target, tmp_path, *args)
        out, err = p.communicate(timeout=120)
        return p.returncode, out + err

    code, out = run("set", "writeMode=mysql-only", "--reason", "nope")
    assert code == 1 and "reads from IndexedDB, which no write reaches" in out
    code, out = run("set", "debugMode=true", "--reason", "debugging")
    assert code == 0 and "debugMode false -> true" in out
    code, out = run("rollback", "--reason", "drill")
    assert code == 0 and "rollback" in out
    code, out = run("list")
    assert code == 0 and "stage: off (rolled back)" in out
    code, out = run("history")
    assert code == 0 and [line.split()[2] for line in out.splitlines() if line.startswith("#")] == ["refused", "set", "rollback"]
