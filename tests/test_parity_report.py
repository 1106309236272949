"""The parity report on a 200k-ticket migration with a dozen planted differences, read as people read it.

One 200k-ticket stage (the benchmarks' sample, made once and kept in benchmarks/out/), loaded
once into one database by the real load; the differences are planted once and every test reads
the same parity run. The page is opened in a real headless Chromium (Debian's, through
Playwright, as tests/test_snippet_browser.py does): the verdict and every differing bucket must
be on the first 1,000 px.
"""

from __future__ import annotations

import json
import re
import sys
import uuid
from pathlib import Path

import polars as pl
import pytest

from etl import MySQLTarget, apply_schema, load, parity_with_report, read_stage, store
from etl.check.parity_table import CHANGED, EXTRA, MISSING
from etl.report.parity import REPORT_ROWS, heatmap, plain_text, visible

ROOT = Path(__file__).resolve().parent.parent
TICKETS = 200_000
CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run"]


# ---------------------------------------------------------------- showing values (no database)


def test_invisible_characters_are_shown_and_labels_are_plain():
    assert plain_text("Semarang") == "Semarang"  # a label: no quotes, no repr
    assert plain_text(None) == "NULL" and plain_text("") == "''" and plain_text(3) == "3"
    assert plain_text("a  ", quote=True) == '"a··"'
    assert plain_text(" x\ty\nz\x00\u200b") == "·x→y↵z␀[ZWSP]"
    assert plain_text("one space") == "one space" and plain_text("two  spaces") == "two··spaces"
    page = str(visible("Budi "))
    assert page == 'Budi<span class="ws">·</span>'
    assert "NULL" in str(visible(None)) and "empty string" in str(visible(""))
    assert str(visible("<b>&")) == "&lt;b&gt;&amp;"  # text is escaped, never markup
    assert "more characters" in str(visible("x" * 300, 120))


def _buckets(rows: list[tuple], names: tuple[str, ...]) -> pl.DataFrame:
    """A bucket frame as parity returns it: labels, then counts and checksums of both sides, ok."""
    return pl.DataFrame([(*r[:-1], 1, 1, "a", "a" if r[-1] else "b", r[-1]) for r in rows], orient="row",
                        schema=[*names, "stage_rows", "mysql_rows", "stage_checksum", "mysql_checksum", "ok"])


def test_heatmap_is_months_by_the_next_dimension_with_green_runs_folded():
    names = ("day", "cabang", "status")
    rows = [(f"2024-{m:02d}-{d:02d}", c, s, not (m == 5 and c == "Solo" and d < 3) and not (m == 9 and c is None))
            for m in range(1, 13) for d in (1, 2, 3) for c in ("Semarang", "Solo", None) for s in ("Open", "Closed")]
    frame = _buckets(rows, names)
    bad = frame.with_row_index().filter(~pl.col("ok"))
    links = {tuple(r[n] for n in names): f"b-tickets-{i}" for i, r in enumerate(bad.iter_rows(named=True))}
    heat = heatmap("tickets", names, frame, links)
    assert (heat.row_name, heat.col_name, heat.columns) == ("month", "cabang", ("NULL", "Semarang", "Solo"))
    assert [(r["label"], r["folded"]) for r in heat.rows] == [
        ("2024-01 – 2024-04", 4), ("2024-05", 0), ("2024-06 – 2024-08", 3), ("2024-09", 0), ("2024-10 – 2024-12", 3)]
    may = heat.rows[1]["cells"]
    assert [c[0] for c in may] == [0, 0, 4] and may[2][2] == "b-tickets-0"  # 2 days x 2 statuses, linked to the first
    assert [c[0] for c in heat.rows[3]["cells"]] == [6, 0, 0]


def test_heatmap_of_a_table_compared_whole_and_of_many_values():
    whole = _buckets([(False,)], ())
    heat = heatmap("vendors", (), whole, {(): "b-vendors-0"})
    assert heat.rows[0]["cells"] == [(1, 1, "b-vendors-0")]
    many = _buckets([("2024-01", f"site {i:02d}", i != 7) for i in range(40)], ("month", "site"))
    heat = heatmap("incidents", ("month", "site"), many, {})
    assert heat.columns == ("site 07", "39 others") and heat.rows[0]["cells"][1] == (0, 39, None)


# ---------------------------------------------------------------- the 200k run


def _stage() -> Path:
    sys.path.insert(0, str(ROOT))
    from benchmarks.common import stage_for

    return stage_for("report", TICKETS)


def _plant(target: MySQLTarget, stage: Path) -> dict:
    """A dozen differences of the kinds a migration goes wrong in, spread over the months;
    the keys planted, by kind, and the columns changed."""
    t = (read_stage(stage, store("tickets"), lazy=True)
         .select("id", "handling2", "sla_4h", "close_time", "duration_raw_hours", pl.col("open_time").dt.strftime("%Y-%m").alias("month"))
         .sort("id").collect())
    months = t["month"].unique().sort().to_list()
    pick = iter(t.filter(pl.col("month") == m).row(0, named=True)["id"] for m in months[:: max(1, len(months) // 12)])
    ok = t.filter(pl.col("close_time").is_not_null(), pl.col("duration_raw_hours").is_not_null(),
                  pl.col("sla_4h").is_not_null(), pl.col("handling2").is_null())
    spare = iter(ok["id"].to_list()[::997])
    planted = {MISSING: [], EXTRA: [], CHANGED: {}}
    changes = [  # (column, new value in SQL)
        ("name", "CONCAT(name, 'x')"),
        ("name", "CONCAT(name, ' ')"),  # a trailing space: equal under PAD SPACE collations
        ("handling2", "''"),  # NULL turned into ''
        ("cabang", "UPPER(cabang)"),  # equal under utf8mb4_unicode_ci
        ("cabang", "'Kudus-moved'"),  # moves the row to another bucket
        ("close_time", "close_time + INTERVAL 1 SECOND"),
        ("duration_raw_hours", "duration_raw_hours + 0.000001"),
        ("sla_4h", "2"),  # TINYINT(1) holds more than a boolean
        ("description", "CONCAT(IFNULL(description, ''), '\\t')"),  # a tab, invisible on a page
    ]
    with target.connect() as conn, conn.cursor() as cur:
        for column, change in changes:
            victim = next(spare) if column in ("handling2", "close_time", "duration_raw_hours", "sla_4h") else next(pick)
            cur.execute(f"UPDATE tickets SET `{column}` = {change} WHERE id = %s", (victim,))
            assert cur.rowcount == 1, (column, victim)
            planted[CHANGED][victim] = (column,)
        for _ in range(2):
            victim = next(pick)
            cur.execute("DELETE FROM tickets WHERE id = %s", (victim,))
            planted[MISSING].append(victim)
        cols = ", ".join(f"`{c}`" for c in store("tickets").column_names if c != "id")
        cur.execute(f"INSERT INTO tickets (id, {cols}) SELECT 'zz-extra', {cols} FROM tickets WHERE id = %s", (next(pick),))
        planted[EXTRA].append("zz-extra")
        customer = read_stage(stage, store("customers"))["id"].sort()[100]
        cur.execute("UPDATE customers SET layanan = CONCAT(layanan, ' ') WHERE id = %s", (customer,))
        planted["customers"] = customer
        conn.commit()
    return planted


@pytest.fixture(scope="module")
def report(mysql_server, tmp_path_factory):
    """(result, report folder, planted differences): one parity run over the 200k migration."""
    base, _ = mysql_server
    stage = _stage()
    target = MySQLTarget(base.host, base.port, base.user, base.password, f"t_{uuid.uuid4().hex[:12]}", base.unix_socket)
    with base.connect(database=False) as conn, conn.cursor() as cur:
        cur.execute(f"CREATE DATABASE `{target.database}` CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci")
    try:
        apply_schema(target)
        load(stage, target)
        planted = _plant(target, stage)
        out = tmp_path_factory.mktemp("report") / "r"
        result = parity_with_report(stage, target, report_dir=out)
        yield result, out, planted
    finally:
        with base.connect(database=False) as conn, conn.cursor() as cur:
            cur.execute(f"DROP DATABASE IF EXISTS `{target.database}`")


@pytest.mark.slow
def test_every_planted_difference_is_found_and_each_key_listed_once(report):
    result, out, planted = report
    assert set(result.mismatched) == {"tickets", "customers"}, str(result)
    body = json.loads((out / "report.json").read_text())
    diffs = body["tables"]["tickets"]["differences"]
    assert sorted(d["key"]["id"] for d in diffs[MISSING]) == sorted(planted[MISSING])
    assert [d["key"]["id"] for d in diffs[EXTRA]] == planted[EXTRA]
    assert {d["key"]["id"]: tuple(d["columns"]) for d in diffs[CHANGED]} == planted[CHANGED]
    assert [d["key"]["id"] for d in body["tables"]["customers"]["differences"][CHANGED]] == [planted["customers"]]
    page = (out / "report.html").read_text()
    keys = [*planted[MISSING], *planted[EXTRA], *planted[CHANGED]]
    rows = re.findall(r'<tr id="r-tickets-\d+" class="diff-row">\s*(?:<td[^>]*>)?id = ([^<]+)<', page)
    assert sorted(rows) == sorted(keys)  # every changed key, once (a row that moved included)
    for key in keys:
        assert page.count(f"id = {key}<") == 1, key


@pytest.mark.slow
def test_report_sizes_and_json_holds_only_what_differs(report):
    result, out, _ = report
    assert (out / "report.html").stat().st_size <= 1_000_000
    assert (out / "report.json").stat().st_size <= 200_000
    body = json.loads((out / "report.json").read_text())
    t = body["tables"]["tickets"]
    assert t["stage_rows"] == TICKETS and t["bucket_count"] > 10_000
    # Exactly the buckets the differing rows were in or moved to (UPPER(cabang) moves a row too).
    named = {tuple(b.values()) for k in (MISSING, EXTRA, CHANGED) for d in t["differences"][k]
             for b in (d["stage_bucket"], d["mysql_bucket"]) if b}
    listed = {tuple(b[n] for n in t["buckets"]) for b in t["buckets_mismatched"]}
    assert listed == named and len(listed) == t["mismatched_buckets"] >= 12
    assert all(b["stage_checksum"] != b["mysql_checksum"] or b["stage_rows"] != b["mysql_rows"] for b in t["buckets_mismatched"])
    assert t["differences_listed"] <= REPORT_ROWS
    assert body["tables"]["incidents"]["buckets_mismatched"] == [] and body["tables"]["incidents"]["ok"]


@pytest.mark.slow
def test_page_shows_values_plainly_with_invisible_characters_visible(report):
    result, out, planted = report
    page = (out / "report.html").read_text()
    trailing = next(k for k, c in planted[CHANGED].items() if c == ("name",) and page.split(f"id = {k}<", 1)[1]
                    .split("</tr>", 1)[0].count('class="ws"'))
    assert trailing
    tab = next(k for k, c in planted[CHANGED].items() if c == ("description",))
    assert '<span class="ws">→</span>' in page.split(f"id = {tab}<", 1)[1].split("</tr>", 1)[0]
    null_row = next(k for k, c in planted[CHANGED].items() if c == ("handling2",))
    row = page.split(f"id = {null_row}<", 1)[1].split("</tr>", 1)[0]
    assert 'class="null"' in row and 'class="empty"' in row
    assert not re.search(r"&#39;\w+&#39;|'Semarang'", page)  # labels are values, not Python reprs
    assert "<script" not in page and "http://" not in page and "https://" not in page  # self-contained
    heat = page.split('<table class="heat">', 1)[1].split("</table>", 1)[0]
    assert heat.count("<tr") <= 40  # months, green runs folded, not 2,000 day rows
    assert 'class="folded"' in heat or heat.count('class="r"') >= 10


@pytest.mark.slow
def test_verdict_and_every_differing_bucket_are_on_the_first_screen(report, tmp_path):
    if not CHROMIUM.exists():
        pytest.fail("Debian's chromium is needed for this test: run `make system-deps` (apt-get install chromium)")
    from playwright.sync_api import sync_playwright

    result, out, _ = report
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 1000})
            page.route("**/*", lambda route: route.abort() if not route.request.url.startswith("file:") else route.continue_())
            page.goto((out / "report.html").as_uri())
            verdict = page.locator("#verdict")
            assert "MISMATCH" in verdict.inner_text() and "tickets" in verdict.inner_text()
            boxes = [verdict.bounding_box()] + [b.bounding_box() for b in page.locator("tr.bad-bucket").all()]
            assert len(boxes) == 1 + sum(t.mismatched_buckets for t in result.tables) > 12
            assert all(b["y"] + b["height"] <= 1000 for b in boxes), [round(b["y"] + b["height"]) for b in boxes]
            shot = tmp_path / "first-screen.png"
            page.screenshot(path=str(shot), clip={"x": 0, "y": 0, "width": 1280, "height": 1000})
            assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
            # A bucket's link leads to its row; the row is listed.
            first = page.locator("tr.bad-bucket a").first.get_attribute("href")
            assert page.locator(f"tr{first}").count() == 1
        finally:
            browser.close()


@pytest.mark.slow
def test_terminal_summary_columns_stay_apart(report):
    result, _, _ = report
    text = str(result)
    row = next(line for line in text.splitlines() if line.strip().startswith("tickets "))
    fields = row.split()
    assert fields[:3] == ["tickets", f"{TICKETS:,}", f"{TICKETS - 2 + 1:,}"]
    assert fields[4] == str(result.tables[0].mismatched_buckets) and "MISMATCH" in fields
    assert "'" not in row
