"""`etl sql` and the views it opens: staged tables, their rejects and the export's stores, in real DuckDB."""

from __future__ import annotations

import csv
import io
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from etl import EtlError, export, run_sql, transform, write_sample
from etl.source.export import read_summary
from etl.report.query import mysql_names, mysql_tables, shell_binary, views, write_init

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def staged(tmp_path_factory):
    base = tmp_path_factory.mktemp("query")
    write_sample(base / "raw", tickets=300, seed=5)
    export(base / "raw", base / "export")
    transform(base / "export", base / "stage")
    return base / "export", base / "stage"


def test_a_view_per_staged_table_its_rejects_and_each_export_store(staged):
    export_dir, stage_dir = staged
    names = views(stage_dir, export_dir)
    for table in ("tickets", "incidents", "customers", "vendors", "upload_sessions"):
        assert {table, f"{table}_rejects", f"export_{table}"} <= set(names), table
    counts = read_summary(export_dir)["counts"]
    got = run_sql("SELECT (SELECT count(*) FROM export_tickets) AS exported, (SELECT count(*) FROM tickets) AS staged, "
                  "(SELECT count(*) FROM tickets_rejects) AS rejected", stage_dir, export_dir).frame.row(0, named=True)
    assert got["exported"] == counts["tickets"] == got["staged"] + got["rejected"]


def test_cli_prints_the_result(staged):
    export_dir, stage_dir = staged
    done = subprocess.run([sys.executable, "-m", "etl", "sql", "SELECT count(*) AS n FROM tickets", "--stage", str(stage_dir),
                           "--export", str(export_dir)], capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert done.returncode == 0, done.stderr
    assert str(read_summary(export_dir)["counts"]["tickets"]) in done.stdout


def test_a_store_in_array_and_ndjson_parts_is_read_whole(tmp_path):
    raw = tmp_path / "raw"
    raw.mkdir()
    records = [{"id": f"t{i}", "openTime": "2024-07-15T17:35:00", **({"note": i} if i % 2 else {})} for i in range(6)]
    (raw / "tickets.part-1.json").write_text(json.dumps(records[:3]))
    (raw / "tickets.part-2.ndjson").write_text("".join(json.dumps(r) + "\n" for r in records[3:]))
    for name in ("incidents", "customers", "vendors"):
        (raw / f"{name}.json").write_text("[]")
    export(raw, tmp_path / "export")
    frame = run_sql("SELECT id, note FROM export_tickets ORDER BY id", tmp_path / "no-stage", tmp_path / "export").frame
    assert frame.rows() == [(f"t{i}", i if i % 2 else None) for i in range(6)]


def test_a_bad_query_names_the_views_and_no_data_is_a_clear_error(staged, tmp_path):
    export_dir, stage_dir = staged
    with pytest.raises(EtlError, match=r"query failed: .*views: tickets, tickets_rejects"):
        run_sql("SELECT * FROM no_such_table", stage_dir, export_dir)
    with pytest.raises(EtlError, match="nothing to query"):
        run_sql("SELECT 1", tmp_path / "empty")


# ---------------------------------------------------------------- output formats


def test_each_output_format_gives_the_rows(staged):
    export_dir, stage_dir = staged
    got = run_sql("SELECT id, name, open_time, duration_raw_hours FROM tickets ORDER BY id", stage_dir, export_dir)
    frame = got.frame
    rows = list(csv.DictReader(io.StringIO(got.render("csv"))))
    assert [r["id"] for r in rows] == frame["id"].to_list() and rows[0]["name"] == frame["name"][0]
    assert rows[0]["open_time"].startswith(frame["open_time"][0].strftime("%Y-%m-%d %H:%M:%S"))
    as_json = json.loads(got.render("json"))
    assert [r["id"] for r in as_json] == frame["id"].to_list() and set(as_json[0]) == set(frame.columns)
    md = got.render("markdown", max_rows=5).splitlines()
    assert md[0].startswith("| id") and set(md[1]) <= set("|-: ") and len([m for m in md if m.startswith("| ")]) == 6
    assert md[-1] == f"(the first 5 of {frame.height:,} rows)"
    table = got.render("table", max_rows=3)
    assert frame["id"][0] in table and frame["id"][frame.height - 1] not in table and "(the first 3 of" in table
    assert len(list(csv.DictReader(io.StringIO(got.render("csv", max_rows=2))))) == 2
    assert len(json.loads(got.render("json", max_rows=0))) == 0
    with pytest.raises(EtlError, match="unknown output format"):
        got.render("xml")


def test_cli_output_flags(staged):
    from typer.testing import CliRunner

    from etl.cli import app

    export_dir, stage_dir = staged
    args = ["sql", "SELECT cabang, count(*) AS n FROM tickets GROUP BY 1 ORDER BY 1", "--stage", str(stage_dir),
            "--export", str(export_dir)]
    runner = CliRunner()
    expected = run_sql(args[1], stage_dir, export_dir).frame
    done = runner.invoke(app, [*args, "--csv"])
    assert done.exit_code == 0, done.output
    assert [(r["cabang"], int(r["n"])) for r in csv.DictReader(io.StringIO(done.stdout))] == expected.rows()
    done = runner.invoke(app, [*args, "--json", "--max-rows", "2"])
    assert [(r["cabang"], r["n"]) for r in json.loads(done.stdout)] == expected.rows()[:2]
    done = runner.invoke(app, [*args, "--markdown"])
    assert done.stdout.startswith("| cabang") and all(f"| {c}" in done.stdout for c in expected["cabang"])
    done = runner.invoke(app, [*args, "--table"])
    assert done.exit_code == 0 and expected["cabang"][0] in done.stdout and "┌" in done.stdout
    done = runner.invoke(app, [*args, "--csv", "--json"])
    assert done.exit_code == 1 and "choose one output format" in done.output


# ---------------------------------------------------------------- MySQL beside the stage


@pytest.fixture
def migrated(schema_target, staged):
    """The staged sample loaded into a fresh database by the real load."""
    from etl import load

    load(staged[1], schema_target)
    return schema_target


ANTI_JOIN = "SELECT count(*) FROM tickets s ANTI JOIN mysql_tickets m USING (id)"


def run_etl(*args, env=None):
    return subprocess.run([sys.executable, "-m", "etl", *args], capture_output=True, text=True, cwd=ROOT, timeout=300,
                          env={**os.environ, "MYSQL_URI": "", **(env or {})})


def test_sql_mysql_anti_joins_stage_and_target(migrated, staged, tmp_path):
    export_dir, stage_dir = staged
    args = ("sql", "--mysql-uri", migrated.uri, "--stage", str(stage_dir), "--export", str(export_dir), "--csv")
    done = run_etl(*args, ANTI_JOIN)
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == ["count_star()", "0"]
    with migrated.connect() as conn, conn.cursor() as cur:
        cur.execute("DELETE FROM tickets ORDER BY id LIMIT 3")
        conn.commit()
    # The flag with the target from MYSQL_URI, as an analyst types it.
    done = run_etl("sql", "--mysql", "--stage", str(stage_dir), "--csv", ANTI_JOIN, env={"MYSQL_URI": migrated.uri})
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == ["count_star()", "3"]
    # Only the MySQL tables a query names are read; without --mysql they are not there, and the error says so.
    assert mysql_names("SELECT * FROM mysql_tickets JOIN MYSQL_vendors USING (id)") == {"mysql_tickets", "mysql_vendors"}
    assert set(mysql_tables(migrated, {"mysql_vendors"})) == {"mysql_vendors"}
    with pytest.raises(EtlError, match="pass --mysql"):
        run_sql(ANTI_JOIN, stage_dir, export_dir)


def test_the_init_file_gives_duckdbs_own_shell_the_views(migrated, staged, tmp_path):
    export_dir, stage_dir = staged
    exe = shell_binary()
    assert exe is not None, "the duckdb-cli package (a project dependency) ships DuckDB's shell"
    with migrated.connect() as conn, conn.cursor() as cur:
        cur.execute("DELETE FROM tickets ORDER BY id DESC LIMIT 2")
        conn.commit()
    init = write_init(stage_dir, export_dir, tmp_path / "duckdb", mysql=migrated)
    assert all(line.startswith(("--", "CREATE OR REPLACE VIEW")) for line in init.read_text().splitlines())
    done = subprocess.run([str(exe), "-init", str(init), "-csv", "-c",
                           f"{ANTI_JOIN}; SELECT count(*) FROM export_tickets; SELECT count(*) FROM tickets_rejects"],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    staged_n = run_sql("SELECT count(*) FROM export_tickets", stage_dir, export_dir).frame.item()
    rejected = run_sql("SELECT count(*) FROM tickets_rejects", stage_dir, export_dir).frame.item()
    assert done.stdout.split() == ["count_star()", "2", "count_star()", str(staged_n), "count_star()", str(rejected)]


def test_etl_sql_shell_opens_duckdbs_shell(staged, tmp_path):
    """`make duckdb` runs `etl sql --shell`: DuckDB's own shell (dot commands work), fed here on stdin."""
    export_dir, stage_dir = staged
    done = subprocess.run([sys.executable, "-m", "etl", "sql", "--shell", "--stage", str(stage_dir), "--export", str(export_dir)],
                          input=".mode csv\nSELECT count(*) AS n FROM tickets;\n", capture_output=True, text=True,
                          cwd=ROOT, timeout=120, env={**os.environ, "RUNTIME_DIR": str(tmp_path / "rt")})
    assert done.returncode == 0, done.stderr
    n = run_sql("SELECT count(*) FROM tickets", stage_dir, export_dir).frame.item()
    assert done.stdout.split() == ["n", str(n)]
    assert (tmp_path / "rt" / "duckdb" / "init.sql").is_file()


def test_the_fallback_prompt_answers_too(staged):
    export_dir, stage_dir = staged
    code = ("import sys; from pathlib import Path; from etl.report.query import prompt; "
            f"prompt(Path({str(stage_dir)!r}), Path({str(export_dir)!r}))")
    done = subprocess.run([sys.executable, "-c", code], input=".views\nSELECT count(*) AS n\n FROM tickets;\n.quit\n",
                          capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert done.returncode == 0, done.stderr
    n = run_sql("SELECT count(*) FROM tickets", stage_dir, export_dir).frame.item()
    assert "tickets_rejects" in done.stdout and f"│ {n}" in done.stdout
