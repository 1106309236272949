"""The row digest: the schema carries it as rendered, the text it hashes is injective, and MySQL's
generated column equals DuckDB's recomputation from the stage on every kind of value."""

from __future__ import annotations

import json
import math

import duckdb
import polars as pl

from etl import STORES, apply_schema, export, load, parity_with_report as parity, read_stage, store
from etl.mysql.db import SCHEMA_FILE
from etl.core.digest import DIGEST, column_sql, duckdb_expression, stage_digests
from etl.stage.folder import stage_path

VENDORS = store("vendors")


def test_schema_file_carries_the_rendered_digest_of_every_table():
    text = SCHEMA_FILE.read_text(encoding="utf-8")
    for s in STORES:
        assert column_sql(s) in text, f"{s.table}: row_digest differs from `python -m etl.core.digest`; paste its line"


def test_the_hashed_text_is_injective():
    # Pairs a plain ','-join (or a NULL marker) would hash alike: a separator or a marker inside a
    # value, a boundary moved between two columns, NULL against '' and against the text 'N'.
    rows = [
        (1, "a,b", "c"), (1, "a", "b,c"),
        (1, None, "x"), (1, "", "x"), (1, "N", "x"), (1, "1:N", "x"), (1, "N,1:x", None),
        (None, "1", "x"), (1, None, "1,x"),
    ]
    frame = pl.DataFrame(rows, schema={"id": pl.Int32, "name": pl.String, "description": pl.String}, orient="row")
    frame = frame.with_columns(*(pl.lit(None).alias(c.name) for c in VENDORS.columns if c.name not in frame.columns))
    con = duckdb.connect()
    con.register("v", frame)
    digests = [r[0] for r in con.execute(f"SELECT {duckdb_expression(VENDORS)} FROM v").fetchall()]
    assert len(set(digests)) == len(rows)
    assert all(0 <= d < 2**60 for d in digests)


def _edge_export(raw):
    """Every kind of column at its edges: text with separators, markers, NUL, 4-byte UTF-8 and
    trailing spaces; negative, zero and long decimals; times with and without milliseconds."""
    texts = ["N", "1:N", "a,b", "", None, "nul\x00byte", "emoji \U0001F600", "trailing  ", "x" * 3000]

    def fit(t, n=30):  # the long text goes to TEXT columns only
        return t if t is None else t[:n]

    tickets = []
    for i, t in enumerate(texts):
        hours = [-1.5, 0.0, 0.000001, 12345678.123456, None, 2.5, 7.25, 1e-6, 99.999999][i]
        tickets.append({
            "id": f"t{i}", "name": fit(t), "description": t, "category": fit(t), "cabang": fit(t),
            "openTime": f"2024-07-{10 + i:02d}T01:02:03.{i * 111:03d}Z" if i % 2 else f"2024-07-{10 + i:02d}T01:02:03",
            "closeTime": None if i % 3 == 0 else f"2024-08-{10 + i:02d}T23:59:59.999Z",
            "duration": None if hours is None else {"rawHours": hours, "formatted": fit(t)},
            "uploadTimestamp": 1756647255195 + i,
        })
    incidents = [{"id": f"i{i}", "noCase": fit(t), "startTime": "2022-09-21T19:47:01.000Z", "level": i - 4,
                  "powerBefore": [-23.17, 0.0, None, 1e-3, -0.001, 5.0, 6.5, 7.0, 8.0][i], "note": t}
                 for i, t in enumerate(texts)]
    vendors = [{"id": i + 1, "name": fit(t), "description": t, "isActive": [True, False, None][i % 3],
                "createdAt": {"$date": 1691695968689 + i}} for i, t in enumerate(texts)]
    sessions = [{"id": f"s{i}", "fileName": t, "fileSize": [0, 2**40, None][i % 3], "uploadTimestamp": 1742781192520 + i,
                 "recordCount": i, "dataType": "tickets", "status": "completed",
                 "errorLog": [[], ["a,b", "N"], None][i % 3]} for i, t in enumerate(texts[:3])]
    raw.mkdir()
    for name, rows in (("tickets", tickets), ("incidents", incidents), ("customers", []), ("vendors", vendors),
                       ("uploadSessions", sessions)):
        (raw / f"{name}.json").write_text(json.dumps(rows), encoding="utf-8")


def test_mysql_and_duckdb_compute_the_same_digest(mysql_target, tmp_path):
    from etl import transform

    _edge_export(tmp_path / "raw")
    export(tmp_path / "raw", tmp_path / "export")
    transform(tmp_path / "export", tmp_path / "stage")
    apply_schema(mysql_target)
    load(tmp_path / "stage", mysql_target)
    con = duckdb.connect()
    checked = 0
    for s in STORES:
        if s.table == "upload_sessions" or not stage_path(tmp_path / "stage", s).is_file():
            continue  # the load finalizes sessions (parity compares them with what it expects, below)
        con.register("staged", read_stage(tmp_path / "stage", s))
        mine = dict(con.execute(f'SELECT "{s.primary_key[0]}", {duckdb_expression(s)} FROM staged').fetchall())
        con.unregister("staged")
        with mysql_target.connect() as conn, conn.cursor() as cur:
            cur.execute(f"SELECT `{s.primary_key[0]}`, `{DIGEST}` FROM `{s.table}`")
            theirs = dict(cur.fetchall())
        assert theirs == mine, s.table
        checked += len(mine)
    assert checked == 27  # nothing rejected: 9 tickets, 9 incidents, 9 vendors
    result = parity(tmp_path / "stage", mysql_target, report_dir=tmp_path / "r")
    assert result.ok, str(result)
    assert {t.method for t in result.tables} == {"digest"}


def test_stage_digests_are_kept_once_and_never_answer_for_other_rows(tmp_path):
    frame = pl.DataFrame({"id": [1, 2, 3], "name": ["a", None, "c"]}).with_columns(
        *(pl.lit(None).alias(c.name) for c in VENDORS.columns if c.name not in ("id", "name")))
    parquet = tmp_path / "vendors.parquet"
    frame.write_parquet(parquet)
    con = duckdb.connect()
    kept = stage_digests(con, parquet, VENDORS)
    assert kept is not None and kept.parent == tmp_path / "digests"
    expected = [r[0] for r in con.execute(f"SELECT {duckdb_expression(VENDORS)} FROM read_parquet('{parquet}')").fetchall()]
    assert pl.read_parquet(kept)[DIGEST].to_list() == expected  # in the staged file's row order
    before = kept.stat().st_mtime_ns
    assert stage_digests(con, parquet, VENDORS) == kept and kept.stat().st_mtime_ns == before  # read, not recomputed
    frame.with_columns(pl.col("name").fill_null("b")).write_parquet(parquet)  # a new transform of the table
    again = stage_digests(con, parquet, VENDORS)
    assert again != kept and not kept.exists()  # the old file is gone, not reused
    assert pl.read_parquet(again)[DIGEST].to_list() != expected
    (tmp_path / "digests").rename(tmp_path / "elsewhere")
    (tmp_path / "digests").write_text("not a folder")  # the stage folder cannot keep them
    assert stage_digests(con, parquet, VENDORS) is None


def _edge_doubles() -> list[float]:
    """Doubles whose text MySQL, MariaDB and DuckDB print differently, every power of two (and the
    double below it) from the smallest subnormal to the largest, and random bit patterns."""
    import random
    import struct

    named = [0.0, -0.0, 1e21, -1e21, 0.1, 0.1 + 0.2, 1e-7, -1e-7, 3.0, -3.0, 1 / 3, 53.13333333333333, 1e15, 1e16,
             1e17, 2.0**53, 2.0**53 + 2, 123456789.123456, 5e-324, 2.2250738585072014e-308, 2.225073858507201e-308,
             1.7976931348623157e308, -1.7976931348623157e308]
    powers = [x for k in range(-1074, 1024) for x in (2.0**k, 2.0**k * (1 - 2**-53))]
    rng = random.Random(14)
    bits = (struct.unpack("<d", struct.pack("<Q", rng.getrandbits(64)))[0] for _ in range(4000))
    return named + [x for x in powers if x] + [x for x in bits if math.isfinite(x)]


def test_mysql_and_duckdb_render_every_double_alike(mysql_target):
    from fractions import Fraction

    from etl.core.digest import _double

    values = _edge_doubles()
    with mysql_target.connect() as conn, conn.cursor() as cur:
        cur.execute("SET SESSION sql_mode = 'STRICT_ALL_TABLES,ERROR_FOR_DIVISION_BY_ZERO'")  # a warning would fail the INSERT
        cur.execute(f"CREATE TABLE d (i INT PRIMARY KEY, x DOUBLE, t VARCHAR(40) GENERATED ALWAYS AS "
                    f"(IFNULL({_double('`x`', mysql=True)}, 'N')) STORED)")
        rows = [(i, x) for i, x in enumerate(values)] + [(len(values), None)]
        cur.executemany("INSERT INTO d (i, x) VALUES (%s, %s)", rows)
        cur.execute("SELECT i, x, t FROM d ORDER BY i")
        theirs = cur.fetchall()
    con = duckdb.connect()
    con.execute("CREATE TABLE d (i INTEGER, x DOUBLE)")
    con.executemany("INSERT INTO d VALUES (?, ?)", rows)
    mine = dict(con.execute(f"SELECT i, coalesce({_double('x', mysql=False)}, 'N') FROM d").fetchall())
    assert len(theirs) == len(rows) > 8000
    for i, x, text in theirs:
        assert x == (values[i] if i < len(values) else None), i  # the server holds the double itself
        assert text == mine[i], (values[i] if i < len(values) else None, text, mine[i])
        if text not in ("N", "0"):  # and the text is the value: M * 2^(E - 52)
            m, e = map(int, text.split("p"))
            assert Fraction(m) * Fraction(2) ** (e - 52) == Fraction(x) and 2**52 <= abs(m) < 2**53 or e == -1074
