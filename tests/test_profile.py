"""The frames the notebooks chart, on real files, DuckDB and MySQL: tickets per day, field shares,
rejects by reason, parity cells, SLA shares source vs MySQL, the notebook's own database, and the
results' HTML tables."""

from __future__ import annotations

import json
from datetime import date

import polars as pl
import pytest

import etl

T = [
    {"id": "a", "openTime": "2024-07-15T17:35:00", "cabang": "Solo", "category": "",
     "closeTime": "2024-07-15T19:35:00", "duration": {"rawHours": 2, "formatted": "2:00:00"}},
    {"id": "b", "openTime": "2024-07-15T18:00:00", "cabang": "Solo", "category": None},
    {"id": "c", "openTime": "2024-07-16T09:00:00", "cabang": "Bandung", "category": "Nexa"},
    {"id": "d", "openTime": "2024-07-16T10:00:00", "cabang": "solo ", "category": "ZiGY"},
    {"id": "bad-time", "openTime": "not a time", "cabang": "Solo"},
    {"id": "bad-number", "openTime": "2024-07-16T10:00:00", "uploadTimestamp": "abc"},
    {"id": "bad-number-2", "openTime": "2024-07-16T10:00:00", "uploadTimestamp": "xyz"},
]


@pytest.fixture(scope="module")
def stage(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("profile")
    raw = tmp / "raw"
    raw.mkdir()
    for s in etl.STORES:
        if s.required:
            (raw / f"{s.name}.json").write_text(json.dumps(T if s.name == "tickets" else []))
    etl.export(raw, tmp / "export")
    etl.transform(tmp / "export", tmp / "stage")
    return tmp / "stage"


def test_tickets_per_day_and_cabang(stage):
    got = {(r["day"], r["cabang"]): r["tickets"] for r in etl.tickets_per_day(stage).to_dicts()}
    assert got == {(date(2024, 7, 15), "Solo"): 2, (date(2024, 7, 16), "Bandung"): 1, (date(2024, 7, 16), "solo "): 1}


def test_field_shares_count_nulls_and_empty_strings_apart(stage):
    shares = {r["field"]: r for r in etl.field_shares(stage).to_dicts()}
    assert shares["category"]["rows"] == 4  # the staged records; rejects are counted apart
    assert (shares["category"]["null_share"], shares["category"]["empty_share"]) == (0.25, 0.25)
    assert (shares["id"]["null_share"], shares["id"]["empty_share"]) == (0.0, 0.0)
    assert shares["closeTime"]["null_share"] == 0.75
    assert "sla_4h" not in {r["column"] for r in shares.values()}  # derived columns are not the export's


def test_rejects_by_field_and_reason_most_first(stage):
    got = etl.rejects_by_reason(stage).to_dicts()
    assert [(r["table"], r["field"], r["reason"], r["records"]) for r in got] == [
        ("tickets", "uploadTimestamp", "not a number", 2),
        ("tickets", "openTime", "time does not parse", 1),
    ]
    assert got[0]["example"] in ("abc", "xyz")
    assert etl.rejects_by_reason(stage.parent / "nothing").height == 0


def test_notebook_target_is_a_database_of_its_own(mysql_target, tmp_path, monkeypatch):
    settings = etl.load_settings(mysql_uri=mysql_target.uri, runtime_dir=str(tmp_path))
    assert etl.notebook_target(settings, suffix="nb01").database == f"{mysql_target.database}_nb01"
    assert etl.notebook_target(settings, "elsewhere").database == "elsewhere"
    with pytest.raises(etl.ConfigError):
        etl.notebook_target(settings, mysql_target.database)


def test_parity_cells_and_sla_shares_against_mysql(stage, schema_target, tmp_path):
    loaded = etl.load(stage, schema_target)
    assert "<table>" in loaded._repr_html_() and loaded.frame()["table"].to_list()[0] == "tickets"
    checked = etl.parity(stage, schema_target)
    cells = etl.parity_cells(checked)
    assert cells.columns == ["month", "cabang", "buckets", "differing"]
    assert cells["differing"].sum() == 0 and cells["buckets"].sum() == 4  # 3 days x cabang, trailing space apart
    assert "matches" in checked._repr_html_()

    with schema_target.connect() as conn, conn.cursor() as cur:  # one changed row: its cell turns red
        cur.execute("UPDATE tickets SET category = 'changed' WHERE id = 'c'")
        cur.execute("UPDATE tickets SET sla_4h = 0, sla_8h = 0, sla_24h = 0 WHERE id = 'a'")
        conn.commit()
    bad = etl.parity_cells(etl.parity(stage, schema_target))
    assert bad.filter(pl.col("differing") > 0).select("month", "cabang").rows() == [("2024-07", "Bandung"), ("2024-07", "Solo")]

    sla = etl.sla_shares(stage, schema_target)
    solo = {(r["band"], r["side"]): r["pct"] for r in sla.filter(pl.col("cabang") == "Solo").to_dicts()}
    assert solo[("4h", "source")] == 100.0 and solo[("4h", "mysql")] == 0.0  # a closed in 2 h; d, b not closed
    assert sla["hours"].unique().sort().to_list() == [4, 8, 24]


def test_results_render_as_html_tables(stage, tmp_path):
    again = etl.transform(stage.parent / "export", tmp_path / "stage")
    html = again._repr_html_()
    assert "<table>" in html and "<td>tickets</td><td>7</td><td>4</td><td>3</td>" in html
    exported = etl.export(stage.parent / "export", tmp_path / "export2")
    assert "<td>tickets</td><td>7</td>" in exported._repr_html_()
