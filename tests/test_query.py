"""`etl sql` and the views it opens: staged tables, their rejects and the export's stores, in real DuckDB."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from etl.errors import EtlError
from etl.export import export, read_summary
from etl.query import run_sql, views
from etl.sample import write_sample
from etl.transform import transform

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
