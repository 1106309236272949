"""etl validate: Great Expectations suites on a real migration of the committed sample.

The chain is the real one: sample export -> etl.stage.transform -> etl.mysql.load into a fresh database.
Violations are injected with SQL into MySQL, one at a time (and undone afterwards), and each
must make its named expectations fail, and only those.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import uuid
from pathlib import Path

import duckdb
import polars as pl
import pytest
from typer.testing import CliRunner

from etl import (
    MySQLTarget, ValidationError, apply_schema, copy_context, docs_index, export, load, read_stage, transform,
)
from etl.check.aggregates import AGGREGATES, expected_rows, mysql_query
from etl.cli import app
from etl.check.rules import DUCKDB, MYSQL, RULES
from etl.core.stores import TICKETS
from etl.check.expected import source_frames
from etl.check.suites import GX_DIR, URL_ENV, connection_env, open_context, suite_names, sync_runner, sync_suites
from etl.check.validate import check, validate

ROOT = Path(__file__).resolve().parent.parent
SAMPLE_EXPORT = ROOT / "data" / "sample-export"

# Rules the committed sample export itself breaks (tickets closed "before" they were opened, and
# upload sessions of failed / deleted uploads whose recordCount no row carries).
SOURCE_FINDINGS = {"tickets.durations.end_not_before_start", "upload_sessions.record_count.matches_rows"}


@pytest.fixture(scope="module")
def stage(tmp_path_factory) -> Path:
    work = tmp_path_factory.mktemp("validate")
    export(SAMPLE_EXPORT, work / "export")
    transform(work / "export", work / "stage")
    return work / "stage"


@pytest.fixture(scope="module")
def migrated(mysql_server, stage):
    """A fresh database holding the sample, loaded by the real loader."""
    base, _ = mysql_server
    target = MySQLTarget(base.host, base.port, base.user, base.password, f"t_{uuid.uuid4().hex[:12]}", base.unix_socket)
    apply_schema(target)
    load(stage, target)
    yield target
    with base.connect(database=False) as conn, conn.cursor() as cur:
        cur.execute(f"DROP DATABASE IF EXISTS `{target.database}`")


@pytest.fixture(scope="module")
def gx_copy(tmp_path_factory) -> Path:
    """The committed Great Expectations context, copied: runs here never touch the checkout."""
    return copy_context(ROOT / GX_DIR, tmp_path_factory.mktemp("gx") / GX_DIR)


def sql(target: MySQLTarget, statement: str, *args):
    with target.connect() as conn, conn.cursor() as cur:
        cur.execute(statement, args)
        return cur.fetchall()


def run(target, stage, root, **kw):
    return validate(target, stage, root=root, docs=False, **kw)


# ---------------------------------------------------------------- a clean migration


def test_suites_pass_on_a_clean_migration_of_the_sample(migrated, stage, gx_copy):
    result = run(migrated, stage, gx_copy)

    assert result.ok, str(result)
    assert result.failures == ()
    assert [s.name for s in result.suites] == list(suite_names())
    assert all(s.expectations >= 1 for s in result.suites)
    # Every aggregation the UI shows matched the source.
    parity = [c for c in result.checks if c.rule.endswith(".matches_source")]
    assert len(parity) == 2 * len(AGGREGATES) and all(c.outcome == "passed" for c in parity)  # rows, row count
    # What the source export already breaks is a warning with its records and examples, not a failure.
    assert {c.rule for c in result.warnings} == SOURCE_FINDINGS
    tickets = read_stage(stage, TICKETS)
    closed_before_open = tickets.filter(pl.any_horizontal(pl.col(s.end) < pl.col(s.start) for s in TICKETS.spans))
    warning = next(c for c in result.warnings if c.rule == "tickets.durations.end_not_before_start")
    assert warning.source_records == closed_before_open.height > 0
    assert any(i in " ".join(warning.source_examples) for i in closed_before_open["id"])
    assert "close_time" in str(result) and "warnings" in str(result)


def test_strict_turns_source_findings_into_failures(migrated, stage, gx_copy):
    result = run(migrated, stage, gx_copy, strict=True)

    assert not result.ok
    assert result.failed_rules() == SOURCE_FINDINGS
    assert result.warnings == ()
    with pytest.raises(ValidationError, match="end_not_before_start"):
        check(result)


def test_each_rule_selects_the_same_records_in_duckdb_and_in_mysql(migrated, stage):
    """One rule definition, two engines: on a clean migration both find the same records."""
    con = duckdb.connect()
    for table in ("tickets", "incidents", "customers", "upload_sessions"):
        con.sql(f"CREATE VIEW {table} AS SELECT * FROM read_parquet('{stage / (table + '.parquet')}')")
    checked = 0
    for rule in RULES:
        if not rule.source_checked:
            continue
        in_source = {r[0] for r in con.sql(rule.sql(DUCKDB)).fetchall()}
        in_mysql = {r[0] for r in sql(migrated, rule.sql(MYSQL))}
        assert in_source == in_mysql, rule.name
        checked += 1
    assert checked == sum(r.source_checked for r in RULES) >= 15


def test_the_dialects_read_durations_alike_at_every_length(mysql_target):
    """The spellings that differ by engine give the same figures: H:MM:SS texts of under 100 hours
    (MySQL reads those with TIME_TO_SEC), up to and past TIME's 838 hours, and texts that are not
    H:MM:SS; and the seconds between two times, fractions included."""
    texts = ["0:00:00", "9:59:59", "10:00:01", "99:59:59", "100:00:00", "838:59:59", "839:00:00", "900:00:00",
             "12345:06:07", "007:00:00", "00:00:09", "1:2:3", "1:60:00", "a:00:00", "1:00:00 ", ":00:00", "1:00",
             "999999999:59:59", "1000000000:00:01", "9223372036:00:00"]  # past DuckDB's INTERVAL (2.5e9 h)
    mysql_read, duck_read, con = {}, {}, duckdb.connect()
    for t in texts:
        hms, secs = sql(mysql_target, f"SELECT {MYSQL.is_hms('t')}, {MYSQL.hms_seconds('t')} FROM (SELECT %s AS t) AS x", t)[0]
        mysql_read[t] = (bool(hms), int(secs) if hms else None)
        hms, secs = con.execute(f"SELECT {DUCKDB.is_hms('t')}, {DUCKDB.hms_seconds('t')} FROM (SELECT $1::VARCHAR AS t)", [t]).fetchone()
        duck_read[t] = (bool(hms), int(secs) if hms else None)
    assert mysql_read == duck_read
    assert mysql_read["900:00:00"] == (True, 900 * 3600) and mysql_read["99:59:59"] == (True, 359999)
    assert mysql_read["1:60:00"] == (False, None) and mysql_read["1:00:00 "] == (False, None)
    assert mysql_read["9223372036:00:00"] == (True, 9223372036 * 3600)

    times = [("2024-01-01 00:00:00.000", "2024-01-01 00:00:00.001"), ("2024-01-01 10:00:00.250", "2024-03-01 09:59:59.999"),
             ("2023-12-31 23:59:59.999", "2024-01-01 00:00:00.000"), ("2024-05-01 00:00:00.000", "2024-04-30 23:00:00.500")]
    for a, b in times:
        got = sql(mysql_target, f"SELECT {MYSQL.seconds_between('a', 'b')} FROM "
                                "(SELECT CAST(%s AS DATETIME(3)) AS a, CAST(%s AS DATETIME(3)) AS b) AS x", a, b)[0][0]
        want = con.execute(f"SELECT {DUCKDB.seconds_between('a', 'b')} FROM (SELECT $1::TIMESTAMP AS a, $2::TIMESTAMP AS b)",
                           [a, b]).fetchone()[0]
        assert float(got) == want, (a, b)


def test_the_views_rows_match_the_rows_computed_from_the_stage(migrated, stage):
    frames = source_frames(stage)
    for agg in AGGREGATES:
        got = sorted(r[0] for r in sql(migrated, mysql_query(agg)))
        assert got == expected_rows(agg, frames[agg.store.name]), agg.view


# ---------------------------------------------------------------- injected violations


# name -> (table, the record to change (a query for its key), column, new value (SQL), expectations that must fail)
INJECTIONS = {
    "negative ticket duration": (
        "tickets", "close_time >= open_time AND duration_raw_hours > 8", "duration_raw_hours", "-duration_raw_hours",
        {"tickets.durations.not_negative", "tickets.durations.match_times",
         "tickets.durations.formatted_matches", "tickets.sla_bands.follow_duration"},
    ),
    "negative incident duration": (
        "incidents", "end_time >= start_time AND duration_min > 0", "duration_min", "-duration_min",
        {"incidents.durations.not_negative", "incidents.durations.match_times",
         "v_incidents_by_status.matches_source", "v_incidents_by_priority.matches_source",
         "v_incidents_by_site.matches_source"},
    ),
    # The source breaks this rule too, but not in this record: a failure, not a warning.
    "close time before the open time": (
        "tickets", "close_time >= open_time", "close_time", "close_time - INTERVAL 100 DAY",
        {"tickets.durations.end_not_before_start", "tickets.durations.match_times"},
    ),
    "upload session count off by one": (
        "upload_sessions", "status = 'completed' AND record_count > 0", "record_count", "record_count + 1",
        {"upload_sessions.record_count.matches_rows", "v_upload_session_summary.matches_source"},
    ),
    # Its session also loses a row: that session's count no longer matches.
    "record pointing to a missing session": (
        "customers", "upload_session_id IS NOT NULL", "upload_session_id", "'no-such-session'",
        {"customers.upload_session_id.session_exists", "upload_sessions.record_count.matches_rows"},
    ),
    "status outside the source's set": (
        "tickets", "status = 'Open'", "status", "'Reopened'",
        {"tickets.status.in_source_values", "v_tickets_by_status.matches_source"},
    ),
    # Out of the 4 h band, its 8 h and 24 h flags left as they were: the nesting still holds
    # (0 <= 1); the flag no longer follows the duration and the SLA shares drift.
    "ticket moved out of the 4 h band": (
        "tickets", "sla_4h = 1 AND sla_8h = 1 AND sla_24h = 1", "sla_4h", "0",
        {"tickets.sla_bands.follow_duration", "v_ticket_sla.matches_source", "v_ticket_sla_by_cabang.matches_source"},
    ),
    "ticket put in the 4 h band but not in the 8 h band": (
        "tickets", "sla_4h = 0 AND sla_8h = 0", "sla_4h", "1",
        {"tickets.sla_4h.within.sla_8h", "tickets.sla_bands.follow_duration", "v_ticket_sla.matches_source",
         "v_ticket_sla_by_cabang.matches_source"},
    ),
    "one ticket's cabang changed": (
        "tickets", "cabang = 'Semarang'", "cabang", "'Jakarta'",
        {"v_tickets_by_cabang.matches_source", "v_ticket_sla_by_cabang.matches_source"},
    ),
}


def _inject(target, table: str, where: str, column: str, value: str):
    """Change one record's column; returns (key, undo)."""
    key, old = sql(target, f"SELECT id, {column} FROM {table} WHERE {where} ORDER BY id LIMIT 1")[0]
    sql(target, f"UPDATE {table} SET {column} = {value} WHERE id = %s", key)
    return key, lambda: sql(target, f"UPDATE {table} SET {column} = %s WHERE id = %s", old, key)


@pytest.mark.parametrize("case", list(INJECTIONS))
def test_an_injected_violation_fails_its_named_expectations_and_only_those(migrated, stage, gx_copy, case):
    table, where, column, value, expected = INJECTIONS[case]
    key, undo = _inject(migrated, table, where, column, value)
    try:
        result = run(migrated, stage, gx_copy)
    finally:
        undo()

    assert not result.ok
    assert result.failed_rules() == expected, str(result)
    # The untouched source findings stay warnings.
    assert {c.rule for c in result.warnings} == SOURCE_FINDINGS - expected
    for c in result.failures:
        assert c.observed, c.rule
        if c.rule.startswith(f"{table}.") and "in_source_values" not in c.rule:
            assert key in " ".join(c.mysql_examples), (c.rule, c.mysql_examples)  # it names the record


def test_an_aggregate_drift_of_one_is_shown_row_by_row(migrated, stage, gx_copy):
    before = sql(migrated, "SELECT tickets FROM v_tickets_by_cabang WHERE cabang = 'Semarang'")[0][0]
    _, undo = _inject(migrated, "tickets", "cabang = 'Semarang'", "cabang", "'Jakarta'")
    try:
        result = run(migrated, stage, gx_copy)
    finally:
        undo()

    drift = next(c for c in result.failures if c.rule == "v_tickets_by_cabang.matches_source")
    assert f"cabang='semarang' | tickets={before - 1}" in drift.observed  # what MySQL shows
    assert f"cabang='semarang' | tickets={before}" in drift.observed  # what the source gives
    assert "v_tickets_by_cabang" in str(result) and drift.observed in str(result)


# ---------------------------------------------------------------- the context and the docs


def _files(root: Path) -> dict[str, str]:
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file() and "uncommitted" not in p.parts}


def test_the_committed_context_is_what_the_code_generates(schema_target, tmp_path):
    """The reviewable suites in expectations/ cannot drift from etl/check/rules.py and etl/check/aggregates.py."""
    root = copy_context(ROOT / GX_DIR, tmp_path / GX_DIR)
    before = _files(root)
    ctx = open_context(root)
    assert sync_suites(ctx) == []
    with connection_env(schema_target):
        assert sync_runner(ctx) == []
    assert _files(root) == before
    # No connection string, and so no password, is written into the context: only its variable.
    config = (root / "gx" / "great_expectations.yml").read_text()
    assert f"connection_string: ${{{URL_ENV}}}" in config
    assert "mysql+pymysql://" not in "".join(p.read_text() for p in root.rglob("*.json")) + config
    suites = {p.stem for p in (root / "gx" / "expectations").glob("*.json")}
    assert suites == set(suite_names())
    # Expected values are parameters, never written into the suites.
    for agg in AGGREGATES:
        body = json.loads((root / "gx" / "expectations" / f"{agg.suite}.json").read_text())
        assert body["expectations"][0]["kwargs"]["value_set"] == {"$PARAMETER": agg.parameter}


def test_a_target_without_the_schema_is_refused(mysql_target, stage, gx_copy):
    with pytest.raises(ValidationError, match="lacks"):
        run(mysql_target, stage, gx_copy)


def _project(tmp_path: Path) -> Path:
    """A project folder of its own (pyproject.toml, etl/, expectations/): the CLI's runs stay out of the checkout."""
    proj = tmp_path / "proj"
    proj.mkdir()
    shutil.copy(ROOT / "pyproject.toml", proj / "pyproject.toml")
    (proj / "etl").mkdir()
    copy_context(ROOT / GX_DIR, proj / GX_DIR)
    return proj


def _etl(proj: Path, monkeypatch, *args: str):
    """`etl ...` in-process, from the project folder `proj` (settings are rooted where the command runs)."""
    monkeypatch.chdir(proj)
    for name in ("MYSQL_URI", "STAGE_DIR"):
        monkeypatch.delenv(name, raising=False)
    return CliRunner().invoke(app, list(args))


@pytest.mark.slow  # two runs, each rebuilding the data docs
def test_cli_exit_status_and_summary(migrated, stage, tmp_path, monkeypatch):
    proj = _project(tmp_path)
    ok = _etl(proj, monkeypatch, "validate", "--mysql", migrated.uri, "--stage", str(stage))
    assert ok.exit_code == 0, ok.output
    assert "passed" in ok.output and "warnings" in ok.output and "tickets" in ok.output

    strict = _etl(proj, monkeypatch, "validate", "--mysql", migrated.uri, "--stage", str(stage), "--strict")
    assert strict.exit_code == 1, strict.output
    assert "FAILED" in strict.output
    # Each failed expectation with its observed value.
    assert "tickets / tickets.durations.end_not_before_start: " in strict.output
    assert "record(s) unexpected" in strict.output
    # The data docs were rebuilt with the run.
    assert docs_index(proj / GX_DIR).is_file()


def test_docs_index_names_every_suite(tmp_path, monkeypatch):
    """`make docs` runs `etl docs`: the data docs need no database, and the index lists every suite."""
    assert "$(ETL) docs" in (ROOT / "Makefile").read_text().split("\ndocs:", 1)[1].split("\n\n", 1)[0]
    proj = _project(tmp_path)
    done = _etl(proj, monkeypatch, "docs")
    assert done.exit_code == 0, done.output
    index = docs_index(proj / GX_DIR)
    html = index.read_text()
    for name in suite_names():
        assert f"expectations/{name}.html" in html, name
        assert (index.parent / "expectations" / f"{name}.html").is_file()
    assert str(index) in done.output


# ---------------------------------------------------------------- the computed figures are Great Expectations' own


def _stored_results(root: Path) -> dict[str, list[dict]]:
    """suite -> its latest stored expectation results (config without its id, success, result), in the suite's order."""
    out = {}
    for name in suite_names():
        latest = max((root / "gx" / "uncommitted" / "validations" / name).rglob("*.json"), key=lambda p: p.parent.name)
        body = json.loads(latest.read_text())
        suite = json.loads((root / "gx" / "expectations" / f"{name}.json").read_text())
        order = {e["id"]: i for i, e in enumerate(suite["expectations"])}
        rows = sorted(body["results"], key=lambda r: order[r["expectation_config"]["id"]])
        out[name] = [{"config": {k: v for k, v in r["expectation_config"].items() if k != "id"},
                      "success": r["success"], "result": r["result"], "exception": r["exception_info"]} for r in rows]
    return out


def _both_engines(target, stage, tmp_path, **kw):
    """The run with each engine, each in a context of its own: (results, stored results) per engine."""
    out = {}
    for engine in ("gx", "sql"):
        root = copy_context(ROOT / GX_DIR, tmp_path / engine / GX_DIR)
        result = validate(target, stage, root=root, docs=False, engine=engine, **kw).asdict()
        for timing in ("seconds", "source_seconds", "gx_seconds"):
            result.pop(timing)
        out[engine] = result, _stored_results(root)
    return out


@pytest.mark.parametrize("case", [None, *INJECTIONS])
def test_the_computed_results_are_those_great_expectations_computes(migrated, stage, tmp_path, case):
    """etl/check/figures.py against Great Expectations' own checkpoint (engine="gx", the code validate ran
    before): the same ValidationResult, and expectation by expectation the same stored result."""
    undo = _inject(migrated, *INJECTIONS[case][:4])[1] if case else (lambda: None)
    try:
        runs = _both_engines(migrated, stage, tmp_path, strict=case is None)
    finally:
        undo()
    (old, old_stored), (new, new_stored) = runs["gx"], runs["sql"]
    assert new == old
    assert new_stored == old_stored
    assert (not old["ok"]) and old["checks"]  # something to compare: each case fails expectations


def test_the_great_expectations_import_leaves_out_the_iri_grammar_and_only_it():
    """import_gx skips jsonschema's RFC 3987 parser (seconds of CPU at import) and nothing else: Great
    Expectations imports whole, and rfc3987-syntax (which Jupyter installs here) still imports after."""
    import subprocess
    import sys

    code = ("import sys, time; from etl.check.validate import import_gx; import_gx(); import jsonschema; "
            "print(sorted(f for f in ('iri', 'date-time', 'email') if f in jsonschema.FormatChecker.checkers)); "
            "print('rfc3987_syntax' in sys.modules); import rfc3987_syntax; print(rfc3987_syntax.is_valid_syntax('iri', 'http://a/b'))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, check=True).stdout.split("\n")
    assert out[:3] == ["['date-time', 'email']", "False", "True"], out


def test_the_great_expectations_import_puts_off_scipy_stats_until_it_is_used():
    """import_gx leaves scipy.stats unloaded (seconds of CPU) where Great Expectations imports it
    and never calls it; the first use loads it whole, through the name that module holds as well."""
    import subprocess
    import sys

    code = ("import sys; from etl.check.validate import import_gx; import_gx(); "
            "print('scipy.stats._continuous_distns' in sys.modules); "
            "from great_expectations.expectations.core import expect_column_kl_divergence_to_be_less_than as kl; "
            "print(kl.stats.norm.cdf(0.0)); print('scipy.stats._continuous_distns' in sys.modules); "
            "import scipy.stats; print(scipy.stats.entropy([0.5, 0.5], base=2))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, check=True).stdout.split("\n")
    assert out[:4] == ["False", "0.5", "True", "1.0"], out
