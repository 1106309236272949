"""Parity on real engines: sample -> transform -> load -> (corrupt one row in MySQL) -> parity.

Every corruption the issue lists is applied to one row after a clean load; parity must fail
and its drill-down must name exactly that row (and the changed column). The sample is
loaded once per module through the real load; each test gets its own copy of the loaded
tables (CREATE TABLE ... LIKE + INSERT ... SELECT), so a test's corruption cannot leak.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import uuid
from pathlib import Path

import polars as pl
import pytest

from etl import (
    STORES, MySQLTarget, ParityError, apply_schema, export, load, load_settings, parity_with_report as parity,
    read_stage, store, transform,
)
from etl.check.buckets import check_buckets, table_buckets
from etl.check.parity_read import MySQLSide, split_points
from etl.check.parity_table import CHANGED, EXTRA, MISSING

ROOT = Path(__file__).resolve().parent.parent
SAMPLE_EXPORT = ROOT / "data" / "sample-export"
TICKETS = store("tickets")


def _database(base: MySQLTarget) -> MySQLTarget:
    name = f"t_{uuid.uuid4().hex[:12]}"
    with base.connect(database=False) as conn, conn.cursor() as cur:
        cur.execute(f"CREATE DATABASE `{name}` CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci")
    return MySQLTarget(base.host, base.port, base.user, base.password, name, base.unix_socket)


def _drop(base: MySQLTarget, target: MySQLTarget) -> None:
    with base.connect(database=False) as conn, conn.cursor() as cur:
        cur.execute(f"DROP DATABASE IF EXISTS `{target.database}`")


@pytest.fixture(scope="module")
def export_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("parity") / "export"
    export(SAMPLE_EXPORT, out)
    return out


@pytest.fixture(scope="module")
def stage(export_dir):
    out = export_dir.parent / "stage"
    transform(export_dir, out)
    return out


@pytest.fixture(scope="module")
def loaded(mysql_server, stage):
    """A database the real load filled from the sample's stage (the template every test copies)."""
    base, _ = mysql_server
    target = _database(base)
    apply_schema(target)
    load(stage, target)
    yield target
    _drop(base, target)


@pytest.fixture
def migrated(mysql_server, loaded):
    """A fresh copy of the loaded tables for one test."""
    base, _ = mysql_server
    target = _database(base)
    with base.connect(database=False) as conn, conn.cursor() as cur:
        for st in STORES:
            cur.execute(f"CREATE TABLE `{target.database}`.`{st.table}` LIKE `{loaded.database}`.`{st.table}`")
            cur.execute(f"INSERT INTO `{target.database}`.`{st.table}` SELECT * FROM `{loaded.database}`.`{st.table}`")
    yield target
    _drop(base, target)


def sql(target: MySQLTarget, *statements: tuple) -> None:
    with target.connect() as conn, conn.cursor() as cur:
        for stmt, *args in statements:
            cur.execute(stmt, tuple(args) or None)
            assert cur.rowcount >= 1, f"the corruption changed nothing: {stmt}"


def tickets(stage: Path) -> pl.DataFrame:
    return read_stage(stage, TICKETS)


def differences(result, tmp: Path, table: str = "tickets") -> dict:
    """The drill-down of one table as report.json holds it: kind -> [(key, changed columns)]."""
    report = json.loads((Path(result.report_dir) / "report.json").read_text())
    diffs = report["tables"][table]["differences"]
    return {k: [(d["key"]["id"], tuple(d["columns"])) for d in diffs[k]] for k in (MISSING, EXTRA, CHANGED)}


def only(table: str, result) -> None:
    """Every table but `table` still matches."""
    assert result.mismatched == (table,), str(result)


# ---------------------------------------------------------------- clean


def test_clean_migration_of_the_sample_passes_for_every_table(migrated, stage, tmp_path):
    result = parity(stage, migrated, report_dir=tmp_path / "r")
    assert result.ok, str(result)
    assert {t.table for t in result.tables} == {s.table for s in STORES}
    for t in result.tables:
        assert t.stage_rows == t.mysql_rows > 0 and t.mismatched_buckets == 0 and t.bucket_count > 1
        assert t.method == "digest"  # MySQL's row_digest column was read, not the rows
    by = {t.table: t.buckets for t in result.tables}
    assert by["tickets"] == ("day", "cabang", "status", "category")
    assert by["incidents"] == ("day", "site", "status", "priority")
    assert by["customers"] == ("month", "jenis_klien", "layanan", "kategori")
    report = json.loads((tmp_path / "r" / "report.json").read_text())
    tickets_report = report["tables"]["tickets"]
    assert report["ok"] is True and tickets_report["bucket_count"] == result.tables[0].bucket_count
    # Matching buckets are counted, not listed; nothing differs, so nothing is listed.
    assert tickets_report["buckets_mismatched"] == [] and tickets_report["differences_listed"] == 0
    page = (tmp_path / "r" / "report.html").read_text()
    assert "Parity: OK" in page and "MISMATCH" not in page.split("<body>", 1)[1]


def test_an_export_folder_is_transformed_then_compared(migrated, export_dir, tmp_path):
    result = parity(export_dir, migrated, report_dir=tmp_path / "r")
    assert result.ok and result.tables[0].stage_rows == 300


# ---------------------------------------------------------------- one corruption each


def test_a_deleted_row_is_missing_in_mysql(migrated, stage, tmp_path):
    victim = tickets(stage)["id"][10]
    sql(migrated, ("DELETE FROM tickets WHERE id = %s", victim))
    result = parity(stage, migrated, report_dir=tmp_path / "r")
    only("tickets", result)
    assert differences(result, tmp_path) == {MISSING: [(victim, ())], EXTRA: [], CHANGED: []}
    t = result.tables[0]
    assert (t.stage_rows, t.mysql_rows, t.mismatched_buckets) == (300, 299, 1)
    (bad,) = json.loads((tmp_path / "r" / "report.json").read_text())["tables"]["tickets"]["buckets_mismatched"]
    assert bad["stage_rows"] - bad["mysql_rows"] == 1 and bad["stage_checksum"] != bad["mysql_checksum"]


def test_an_inserted_row_is_only_in_mysql(migrated, stage, tmp_path):
    cols = ", ".join(f"`{c}`" for c in TICKETS.column_names if c != "id")
    sql(migrated, (f"INSERT INTO tickets (id, {cols}) SELECT 'zz-extra', {cols} FROM tickets ORDER BY id LIMIT 1",))
    result = parity(stage, migrated, report_dir=tmp_path / "r")
    only("tickets", result)
    assert differences(result, tmp_path) == {MISSING: [], EXTRA: [("zz-extra", ())], CHANGED: []}


@pytest.mark.parametrize("column, change, expect", [
    ("name", "CONCAT(name, 'x')", None),  # one text value changed
    ("close_time", "close_time + INTERVAL 1 SECOND", None),  # a timestamp moved by one second
    ("duration_raw_hours", "duration_raw_hours + 0.000001", None),  # a double changed in its sixth decimal
    ("name", "CONCAT(name, ' ')", None),  # a trailing space (equal under PAD SPACE collations)
    ("cabang", "UPPER(cabang)", None),  # equal under utf8mb4_unicode_ci, not in bytes
    ("sla_4h", "2", 2),  # TINYINT(1) holds more than a boolean
], ids=["text", "timestamp+1s", "double-changed", "trailing-space", "collation-equal-case", "tinyint-2"])
def test_one_changed_value_names_the_row_and_the_column(migrated, stage, tmp_path, column, change, expect):
    frame = tickets(stage).filter(pl.col(column).is_not_null(), pl.col("sla_4h").is_not_null())
    victim = frame["id"][3]
    sql(migrated, (f"UPDATE tickets SET `{column}` = {change} WHERE id = %s", victim))
    result = parity(stage, migrated, report_dir=tmp_path / "r")
    only("tickets", result)
    assert differences(result, tmp_path) == {MISSING: [], EXTRA: [], CHANGED: [(victim, (column,))]}
    change = json.loads((tmp_path / "r" / "report.json").read_text())["tables"]["tickets"]["differences"][CHANGED][0]
    staged = frame.filter(pl.col("id") == victim)[column].item()
    assert change["stage"][column] != change["mysql"][column]
    if column == "close_time":
        assert change["stage"][column] == staged.strftime("%Y-%m-%d %H:%M:%S.%f")[:-3]
        assert change["mysql"][column][-6:] == f"{(staged.second + 1) % 60:02d}.{staged.microsecond // 1000:03d}"
    if column == "duration_raw_hours":
        assert change["stage"][column] == staged and change["mysql"][column] == staged + 0.000001  # the doubles themselves
    if column == "name" and change["mysql"][column].endswith(" "):
        assert change["mysql"][column] == change["stage"][column] + " "
    if expect is not None:
        assert change["mysql"][column] == expect


def test_null_turned_into_empty_string(migrated, stage, tmp_path):
    victim = tickets(stage).filter(pl.col("handling2").is_null())["id"][0]
    sql(migrated, ("UPDATE tickets SET handling2 = '' WHERE id = %s", victim))
    result = parity(stage, migrated, report_dir=tmp_path / "r")
    only("tickets", result)
    assert differences(result, tmp_path) == {MISSING: [], EXTRA: [], CHANGED: [(victim, ("handling2",))]}
    change = json.loads((Path(result.report_dir) / "report.json").read_text())["tables"]["tickets"]["differences"][CHANGED][0]
    assert (change["stage"]["handling2"], change["mysql"]["handling2"]) == (None, "")


def test_values_swapped_between_two_rows_of_one_bucket(migrated, stage, tmp_path):
    frame = tickets(stage).with_columns(pl.col("open_time").dt.date().alias("day"))
    bucket = ["day", "cabang", "status", "category"]
    pair = (frame.filter(pl.len().over(bucket) >= 2, pl.col("description").n_unique().over(bucket) >= 2)
            .sort("id").group_by(bucket, maintain_order=True).head(2).head(2))
    a, b = pair["id"].to_list()
    sql(migrated, ("UPDATE tickets t1 JOIN tickets t2 ON t1.id = %s AND t2.id = %s "
                   "SET t1.description = t2.description, t2.description = t1.description", a, b))
    result = parity(stage, migrated, report_dir=tmp_path / "r")
    only("tickets", result)
    t = result.tables[0]
    assert t.mismatched_buckets == 1 and t.stage_rows == t.mysql_rows  # counts alone cannot see a swap
    assert differences(result, tmp_path) == {MISSING: [], EXTRA: [], CHANGED: sorted([(a, ("description",)), (b, ("description",))])}


def test_a_row_moved_to_another_bucket_is_one_changed_row(migrated, stage, tmp_path):
    victim = tickets(stage)["id"][20]
    sql(migrated, ("UPDATE tickets SET cabang = 'Kudus-moved' WHERE id = %s", victim))
    result = parity(stage, migrated, report_dir=tmp_path / "r")
    assert result.tables[0].mismatched_buckets == 2
    assert differences(result, tmp_path) == {MISSING: [], EXTRA: [], CHANGED: [(victim, ("cabang",))]}
    html = (tmp_path / "r" / "report.html").read_text()
    # Both buckets (the one it left, the one it joined) link to the row, listed once.
    links = re.findall(r'<tr class="bad-bucket" id="b-tickets-\d+">.*?<a href="#(r-tickets-\d+)">rows</a>', html, re.S)
    assert len(links) == 2 and len(set(links)) == 1
    row = html.split(f'id="{links[0]}"', 1)[1].split("</tr>", 1)[0]
    assert victim in row and "Kudus-moved" in row
    assert html.count(f"id = {victim}") == 1


def test_other_tables_are_checked_too(migrated, stage, tmp_path):
    customer = read_stage(stage, store("customers"))["id"][5]
    incident = read_stage(stage, store("incidents")).filter(pl.col("power_before").is_not_null())["id"][0]
    sql(migrated,
        ("UPDATE customers SET layanan = CONCAT(layanan, ' ') WHERE id = %s", customer),
        ("UPDATE incidents SET power_before = power_before + 0.001 WHERE id = %s", incident),
        ("UPDATE upload_sessions SET status = 'uploading' WHERE status = 'completed' ORDER BY id LIMIT 1",))
    result = parity(stage, migrated, report_dir=tmp_path / "r")
    assert set(result.mismatched) == {"customers", "incidents", "upload_sessions"}
    assert differences(result, tmp_path, "customers")[CHANGED] == [(customer, ("layanan",))]
    assert differences(result, tmp_path, "incidents")[CHANGED] == [(incident, ("power_before",))]
    assert [c for _, c in differences(result, tmp_path, "upload_sessions")[CHANGED]] == [("status",)]


# ---------------------------------------------------------------- hard text, reads, buckets


def test_hard_text_round_trips_and_a_changed_emoji_is_seen(mysql_target, tmp_path):
    hard = ["nul\x00byte", "emoji \U0001F600 and \U0001D11E", "tab\there", "trailing  ", "", None, "back\\slash 'q' \"q\""]
    raw = tmp_path / "raw"
    raw.mkdir()
    (raw / "tickets.json").write_text(json.dumps([
        {"id": f"k{i}", "name": v, "description": v, "cabang": v, "openTime": f"2024-07-{10 + i:02d}T01:02:03"}
        for i, v in enumerate(hard)]))
    for name in ("incidents", "customers", "vendors"):
        (raw / f"{name}.json").write_text("[]")
    export(raw, tmp_path / "export")
    transform(tmp_path / "export", tmp_path / "stage")
    assert read_stage(tmp_path / "stage", TICKETS)["description"].to_list() == hard
    apply_schema(mysql_target)
    load(tmp_path / "stage", mysql_target)
    assert parity(tmp_path / "stage", mysql_target, report_dir=tmp_path / "r1").ok
    sql(mysql_target, ("UPDATE tickets SET description = 'emoji \U0001F601 and \U0001D11E' WHERE id = 'k1'",))
    result = parity(tmp_path / "stage", mysql_target, report_dir=tmp_path / "r2")
    assert differences(result, tmp_path) == {MISSING: [], EXTRA: [], CHANGED: [("k1", ("description",))]}


def test_digests_kept_by_the_load_answer_only_for_their_stage(migrated, stage, tmp_path):
    """The load keeps the stage's row digests (etl.core.digest); parity reads them, and a stage
    transformed again after that is hashed afresh, never through the digests of the old one."""
    kept = sorted(p.name for p in (stage / "digests").glob("*.parquet"))
    assert [n.split(".")[0] for n in kept] == ["customers", "incidents", "tickets", "vendors"]
    times = {p.name: p.stat().st_mtime_ns for p in (stage / "digests").glob("*.parquet")}
    assert parity(stage, migrated, report_dir=tmp_path / "r0").ok
    assert {p.name: p.stat().st_mtime_ns for p in (stage / "digests").glob("*.parquet")} == times  # read, not made again
    copy = tmp_path / "stage"
    shutil.copytree(stage, copy)
    assert parity(copy, migrated, report_dir=tmp_path / "r1").ok
    frame = tickets(copy)
    victim = frame["id"][4]
    frame.with_columns(pl.when(pl.col("id") == victim).then(pl.lit("changed after the load")).otherwise(pl.col("name"))
                       .alias("name")).write_parquet(copy / "tickets.parquet")
    result = parity(copy, migrated, report_dir=tmp_path / "r2")
    assert differences(result, tmp_path) == {MISSING: [], EXTRA: [], CHANGED: [(victim, ("name",))]}
    assert len(list((copy / "digests").glob("tickets.*.parquet"))) == 1


# A database made by an older schema: no row_digest, or one of an earlier definition (the first
# was an MD5, which MySQL refuses in a generated column), known by its comment.
OLDER_DIGESTS = {
    "dropped": "ALTER TABLE tickets DROP COLUMN row_digest",
    "other-definition": "ALTER TABLE tickets MODIFY COLUMN row_digest BIGINT GENERATED ALWAYS AS "
                        "(CAST(CONV(LEFT(SHA2(`id`, 256), 15), 16, 10) AS SIGNED)) STORED INVISIBLE",
}


@pytest.mark.parametrize("older", OLDER_DIGESTS)
def test_a_table_without_this_row_digest_is_read_in_full(migrated, stage, tmp_path, older):
    """Parity then reads every column instead, and still finds every difference."""
    with migrated.connect() as conn, conn.cursor() as cur:
        cur.execute(OLDER_DIGESTS[older])
    result = parity(stage, migrated, tables=["tickets"], report_dir=tmp_path / "r1")
    assert result.ok and result.tables[0].method == "rows", str(result)
    assert "read in full (no row_digest column of this version" in str(result)
    victim = tickets(stage)["id"][7]
    sql(migrated, ("UPDATE tickets SET handling = CONCAT(IFNULL(handling, ''), '!') WHERE id = %s", victim))
    result = parity(stage, migrated, tables=["tickets"], report_dir=tmp_path / "r2")
    assert result.tables[0].method == "rows"
    assert differences(result, tmp_path) == {MISSING: [], EXTRA: [], CHANGED: [(victim, ("handling",))]}


def test_key_ranges_read_every_row_once(migrated, stage):
    keys = tickets(stage)["id"]
    whole = MySQLSide(migrated, TICKETS).read()
    for parts in (2, 3, 7):
        points = split_points(keys, parts)
        assert len(points) == parts - 1
        split = MySQLSide(migrated, TICKETS, points).read()
        assert sorted(split["id"].to_pylist()) == sorted(whole["id"].to_pylist())
    # Keys with quotes, backslashes and 4-byte UTF-8 as range bounds (hex literals, never quoted text).
    odd = pl.Series(["a'b", "c\\d", "\U0001F600", "zz"])
    assert len(MySQLSide(migrated, TICKETS, split_points(odd, 3)).read()) == len(whole)


def test_buckets_are_checked_against_the_description(migrated, stage, tmp_path):
    assert check_buckets(STORES, ["day", "cabang"]) == ("day", "cabang")
    assert table_buckets(store("incidents"), ("day", "cabang")) == ("day",)
    assert table_buckets(store("vendors"), None) == ("day",)
    for bad in (["nope"], ["day; DROP TABLE tickets"], ["day", "id"]):
        with pytest.raises(ParityError, match="unknown bucket"):
            parity(stage, migrated, buckets=bad, report_dir=tmp_path / "r")
    result = parity(stage, migrated, buckets=["day", "cabang"], report_dir=tmp_path / "r")
    assert result.ok
    by = {t.table: t.buckets for t in result.tables}
    assert by["tickets"] == ("day", "cabang") and by["incidents"] == ("day",) and by["customers"] == ("day",)


# ---------------------------------------------------------------- command and playbook


def run_etl(*args, env):
    return subprocess.run([sys.executable, "-m", "etl", *args], capture_output=True, text=True,
                          env={**os.environ, **env}, cwd=ROOT, timeout=300)


def test_cli_reports_and_fails_on_mismatch(migrated, stage, tmp_path):
    env = {"RUNTIME_DIR": str(tmp_path / "runtime"), "MYSQL_URI": ""}
    args = ("parity", "--src", str(stage), "--dst-mysql", migrated.uri, "--fail-on-mismatch")
    done = run_etl(*args, env=env)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "OK" in done.stdout and "report:" in done.stdout
    victim = tickets(stage)["id"][0]
    sql(migrated, ("UPDATE tickets SET name = 'someone else' WHERE id = %s", victim))
    done = run_etl(*args, env=env)
    assert done.returncode == 1
    assert "MISMATCH" in done.stdout and victim in done.stdout and "[parity]" in done.stderr
    reports = sorted((tmp_path / "runtime" / "parity").glob("*/report.html"))
    assert len(reports) == 2 and victim in reports[-1].read_text()
    assert run_etl(*args[:-1], env=env).returncode == 0  # without --fail-on-mismatch: report only
    bad = run_etl("parity", "--src", str(stage), "--dst-mysql", migrated.uri, "--buckets", "day,nope", env=env)
    assert bad.returncode == 1 and "unknown bucket 'nope'" in bad.stderr


def test_playbook_step_stops_on_mismatch(migrated, stage, tmp_path):
    from etl import parity_check

    settings = load_settings(root=tmp_path, mysql_uri=migrated.uri, stage_dir=str(stage), runtime_dir=str(tmp_path / "rt"))
    assert parity_check(settings).ok
    sql(migrated, ("DELETE FROM vendors ORDER BY id LIMIT 1",))
    with pytest.raises(ParityError, match="vendors: 1 buckets, 1 rows missing in MySQL"):
        parity_check(settings)
