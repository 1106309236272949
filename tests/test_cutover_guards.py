"""etl cutover on a real migration of the committed sample: forward moves on green guards only,
refusals naming the failing guard and its figures, forced moves, rollback, a complete history.

The sample is exported, transformed and loaded once per module by the real chain; every test
starts from the seed's flags with an empty history and fresh (passing) bench and monitor reports.
Browsers' dual-read reports are rows of migration_read_checks, as `etl serve` writes them
(the browser test drives the real intake).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest

from etl import MySQLTarget, Settings, apply_schema, copy_context, export, load, transform
from etl.cutover import Thresholds, advance, history, move_to, read_state, rollback
from etl.core.errors import CutoverError
from etl.check.suites import GX_DIR

ROOT = Path(__file__).resolve().parent.parent
SAMPLE_EXPORT = ROOT / "data" / "sample-export"
FEW = Thresholds(min_compared=100)


@pytest.fixture(scope="module")
def world(mysql_server, tmp_path_factory):
    base, _ = mysql_server
    root = tmp_path_factory.mktemp("cutover")
    export(SAMPLE_EXPORT, root / "export")
    transform(root / "export", root / "stage")
    copy_context(ROOT / GX_DIR, root / GX_DIR)  # validation never touches the checkout
    target = MySQLTarget(base.host, base.port, base.user, base.password, f"t_{uuid.uuid4().hex[:12]}", base.unix_socket)
    apply_schema(target)
    load(root / "stage", target)
    settings = Settings(root, target.uri, 200, root / "export", root / "stage", root / "runtime")
    yield settings, target
    with base.connect(database=False) as conn, conn.cursor() as cur:
        cur.execute(f"DROP DATABASE IF EXISTS `{target.database}`")


def sql(target, statement, *args):
    with target.connect() as conn, conn.cursor() as cur:
        cur.execute(statement, args or None)
        return cur.fetchall()


BENCH_REPORT, MONITOR_REPORT = "bench", "monitor"
STAMPS = iter(range(10**6))


def report(settings, kind, ok=True, breaches=(), age_s=0):
    """A report as `etl bench` (bench/<time>/report.json) or `etl monitor` (monitor/<time>.jsonl) writes it."""
    stamp = f"20261207T0000{next(STAMPS):06d}Z"
    if kind == BENCH_REPORT:
        path = settings.runtime_dir / "bench" / stamp / "report.json"
        body = json.dumps({"ok": ok, "breaches": list(breaches), "p95_ms": 12.5})
    else:
        path = settings.runtime_dir / "monitor" / f"{stamp}.jsonl"
        body = "".join(json.dumps({"sample": n, "breaches": list(breaches) if n == 2 else []}) + "\n" for n in (1, 2, 3))
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(body)
    if age_s:
        os.utime(path, (time.time() - age_s, time.time() - age_s))
    return path


@pytest.fixture
def cut(world):
    settings, target = world
    sql(target, "UPDATE feature_flags SET value = CASE name WHEN 'dataSource' THEN '\"indexeddb\"' "
                "WHEN 'writeMode' THEN '\"indexeddb-only\"' ELSE 'false' END")
    for table in ("feature_flag_history", "migration_read_checks", "migration_mismatches"):
        sql(target, f"DELETE FROM {table}")
    report(settings, BENCH_REPORT)
    report(settings, MONITOR_REPORT)
    return settings, target


def browsers_compared(target, stage, compared, mismatched, table="tickets"):
    sql(target, "INSERT INTO migration_read_checks (client_id, stage, table_name, compared, mismatched) "
                "VALUES ('test-browser', %s, %s, %s, %s)", stage, table, compared, mismatched)


def guards_of(change) -> dict:
    return {g["name"]: g for g in change.evidence}


def test_a_sequence_of_moves_refusals_and_a_rollback_is_recorded_completely(cut):
    settings, target = cut
    done = advance(settings, target, reason="MySQL loaded", thresholds=FEW)
    assert (done.action, done.from_stage, done.to_stage) == ("set", "off", "dual-write"), str(done)
    assert {n: g["ok"] for n, g in guards_of(done).items()} == {
        "sequence": True, "parity": True, "expectations": True, "bench": True, "monitor": True}
    assert "expectations passed" in guards_of(done)["expectations"]["summary"]

    assert advance(settings, target, thresholds=FEW).to_stage == "shadow"
    refused = advance(settings, target, thresholds=FEW)  # no browser has compared anything yet
    assert refused.refused and "guard consistency failed: browsers compared 0 records in shadow" in refused.message
    assert read_state(target).stage == "shadow"

    browsers_compared(target, "shadow", 150, 1)
    browsers_compared(target, "off", 10_000, 0)  # other stages' reports do not count
    refused = advance(settings, target, thresholds=FEW)
    assert refused.refused and "1 of 150 compared records differ in shadow" in refused.message
    assert guards_of(refused)["consistency"]["figures"]["rate"] == pytest.approx(1 / 150)
    assert advance(settings, target, thresholds=Thresholds(min_compared=100, max_mismatch_rate=0.01)).to_stage == "live"

    report(settings, BENCH_REPORT, ok=False, breaches=["p95 = 2400.0 ms >= threshold 2000 ms"])
    refused = advance(settings, target, thresholds=FEW)
    assert refused.refused and "guard bench failed: breach: p95 = 2400.0 ms >= threshold 2000 ms" in refused.message
    report(settings, BENCH_REPORT)
    report(settings, MONITOR_REPORT, breaches=[{"metric": "api.error_rate", "value": 0.05, "threshold": 0.01, "op": ">"}])
    refused = advance(settings, target, thresholds=FEW)
    assert refused.refused and "guard monitor failed: breach: api.error_rate = 0.05 > threshold 0.01" in refused.message
    assert [g for g in guards_of(refused) if not guards_of(refused)[g]["ok"]] == ["monitor", "consistency"]

    with pytest.raises(CutoverError, match="--force needs --reason"):
        advance(settings, target, force=True, thresholds=FEW)
    forced = advance(settings, target, force=True, reason="monitor flaps; on call watching", thresholds=FEW)
    assert (forced.action, forced.to_stage) == ("forced", "rampdown") and "forced past: monitor" in forced.message

    back = rollback(target, reason="drill", runtime_dir=settings.runtime_dir)
    assert (back.action, back.from_stage, back.to_stage) == ("rollback", "rampdown", "off")
    assert read_state(target).flags["rollbackMode"] is True
    assert json.loads((settings.runtime_dir / "feature-flags.json").read_text())["flags"]["dataSource"] == "indexeddb"

    entries = history(target).entries
    assert [(e.action, e.from_stage, e.to_stage) for e in entries] == [
        ("set", "off", "dual-write"), ("set", "dual-write", "shadow"), ("refused", "shadow", "live"),
        ("refused", "shadow", "live"), ("set", "shadow", "live"), ("refused", "live", "rampdown"),
        ("refused", "live", "rampdown"), ("refused", "live", "rampdown"), ("forced", "live", "rampdown"),
        ("rollback", "rampdown", "off")]
    assert entries[0].reason == "MySQL loaded" and entries[-2].reason == "monitor flaps; on call watching"
    assert all(e.actor and e.changed_at for e in entries)
    assert entries[4].changes == {"dataSource": ["indexeddb", "dual-read"]}
    assert {g["name"] for g in entries[5].evidence["guards"]} == {"sequence", "parity", "expectations", "bench",
                                                                   "monitor", "consistency"}
    assert "--force needs --reason" in entries[7].evidence["message"]


def test_a_planted_row_difference_blocks_reads_from_mysql_until_repaired(cut):
    settings, target = cut
    sql(target, "UPDATE feature_flags SET value = CASE name WHEN 'writeMode' THEN '\"dual-write\"' "
                "WHEN 'migrationMode' THEN 'true' ELSE value END")
    assert read_state(target).stage == "shadow"
    browsers_compared(target, "shadow", 5000, 0)
    (key, old), = sql(target, "SELECT id, description FROM tickets ORDER BY id LIMIT 1")
    sql(target, "UPDATE tickets SET description = CONCAT(COALESCE(description, ''), ' (edited in MySQL)') WHERE id = %s", key)

    refused = move_to(settings, target, "live", thresholds=FEW)
    assert refused.refused and refused.message.startswith("guard parity failed: MySQL differs from the stage: tickets: 1 bucket(s)")
    assert key in refused.message and "description" in refused.message
    assert guards_of(refused)["parity"]["figures"]["tables"]["tickets"]["changed"] == 1
    assert read_state(target).stage == "shadow"
    assert history(target).entries[-1].action == "refused"

    sql(target, "UPDATE tickets SET description = %s WHERE id = %s", old, key)
    done = move_to(settings, target, "live", thresholds=FEW)
    assert (done.action, done.to_stage) == ("set", "live"), str(done)
    assert read_state(target).flags["dataSource"] == "dual-read"


def test_missing_old_and_bad_reports_and_skipped_stages_refuse(cut):
    settings, target = cut
    shutil.rmtree(settings.runtime_dir / "monitor")
    shutil.rmtree(settings.runtime_dir / "bench")
    report(settings, BENCH_REPORT, age_s=3 * 24 * 3600)
    refused = move_to(settings, target, "shadow", thresholds=FEW)
    assert refused.refused
    msg = refused.message
    assert "guard sequence failed: off -> shadow skips dual-write: move one stage at a time" in msg
    assert "guard bench failed: the latest report is 72.0 h old (limit 24.0 h)" in msg
    assert f"guard monitor failed: no report in {settings.runtime_dir / 'monitor'} (*.jsonl): run `etl monitor`" in msg
    (settings.runtime_dir / "monitor").mkdir()
    (settings.runtime_dir / "monitor" / "20261207T235959Z.jsonl").write_text("not json\n")
    refused = advance(settings, target, thresholds=FEW)
    assert "20261207T235959Z.jsonl is not a report of `etl monitor`" in refused.message
    assert read_state(target).stage == "off"


def test_moving_back_needs_no_guard_and_cli_force_needs_a_reason(cut):
    settings, target = cut
    sql(target, "UPDATE feature_flags SET value = CASE name WHEN 'writeMode' THEN '\"dual-write\"' ELSE value END")
    shutil.rmtree(settings.runtime_dir / "bench")
    done = move_to(settings, target, "off", reason="back")
    assert (done.action, done.to_stage, done.evidence) == ("set", "off", ())

    def etl(*args):
        return subprocess.run([sys.executable, "-m", "etl", "cutover", *args, "--mysql", target.uri],
                              capture_output=True, text=True, cwd=ROOT, timeout=300,
                              env={**os.environ, "RUNTIME_DIR": str(settings.runtime_dir)})

    p = etl("advance", "--force")
    assert p.returncode == 1 and "--force needs --reason" in p.stderr
    p = etl("stage", "nowhere")
    assert p.returncode == 1 and "unknown stage 'nowhere'; the stages are off, dual-write, shadow, live, rampdown, complete" in p.stderr
    assert read_state(target).stage == "off"


def test_status_shows_consistency_per_table_and_bucket_and_the_figures_the_guard_used(cut):
    settings, target = cut
    sql(target, "UPDATE feature_flags SET value = CASE name WHEN 'writeMode' THEN '\"dual-write\"' "
                "WHEN 'migrationMode' THEN 'true' ELSE value END")
    browsers_compared(target, "shadow", 400, 2)
    browsers_compared(target, "shadow", 100, 0, table="incidents")
    for key, day, cabang, fields in (("t-1", "2024-07-15", "Semarang", ["status"]), ("t-2", "2024-07-15", "Semarang", ["description"])):
        sql(target, "INSERT INTO migration_mismatches (table_name, record_key, stage, client_id, bucket_day, bucket_cabang, "
                    "bucket_status, bucket_category, fields) VALUES ('tickets', %s, 'shadow', 'b', %s, %s, 'Open', 'Network', %s)",
            key, day, cabang, json.dumps(fields))
    refused = advance(settings, target, thresholds=FEW)
    assert refused.refused and "2 of 500 compared records differ in shadow (rate 0.4000%, limit 0.1000%)" in refused.message
    from etl.cutover import status

    st = status(target)
    assert st.state.stage == "shadow"
    assert [(t.table, t.stage, t.compared, t.mismatched, t.records) for t in st.tables] == [
        ("incidents", "shadow", 100, 0, 0), ("tickets", "shadow", 400, 2, 2)]
    (b,) = st.buckets
    assert (b.day, b.cabang, b.status, b.category, b.records, b.fields) == (
        "2024-07-15", "Semarang", "Open", "Network", 2, ("description", "status"))
    text = str(st)
    assert "2 of 500 compared records differ in shadow" in text and "  tickets         shadow           1       400       2   0.500%        2" in text
    assert st.last_move["guards"][-1]["figures"]["compared"] == 500
