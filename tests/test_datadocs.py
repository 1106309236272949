"""The data docs tell what `etl validate` tells, and work offline (etl/report/datadocs.py).

A real migration of the committed sample (test_validate's fixtures): its source export already
breaks `tickets.durations.end_not_before_start` (a warning), and one ticket's cabang is changed
in MySQL (two view suites fail). Both engines store the verdicts and build the docs; the pages
are read as files, in headless Chromium with the network off, and over `etl docs --serve`.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import re
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from etl import copy_context, docs_index, validate
from etl.check.suites import suite_names
from etl.check.validate import build_docs as plain_build_docs
from etl.report.datadocs import ASSETS, VENDORED
from test_snippet_browser import chromium  # noqa: F401 - the headless Chromium fixture
from test_validate import GX_DIR, INJECTIONS, ROOT, _inject, _project, migrated, stage  # noqa: F401

WARNED = "tickets"  # its one unmet expectation is the source's own
WARNED_RULE = "tickets.durations.end_not_before_start"
FAILED = ("v_tickets_by_cabang", "v_ticket_sla_by_cabang")  # the planted change
PLANTED = INJECTIONS["one ticket's cabang changed"][:4]
ETL = str(Path(sys.executable).with_name("etl"))  # the installed command (`python -m etl` in proj/ would see its etl/)


def _site(root: Path) -> Path:
    return docs_index(root).parent


def _latest_page(site: Path, suite: str) -> Path:
    return max((site / "validations" / suite).glob("*/*/*.html"), key=lambda p: p.parent.name)


def _stored(root: Path, suite: str) -> dict:
    latest = max((root / "gx" / "uncommitted" / "validations" / suite).rglob("*.json"), key=lambda p: p.parent.name)
    return json.loads(latest.read_text())


def _index_rows(index: Path) -> list[dict]:
    """The validation rows GX writes into the index as a Python literal (suite -> row)."""
    text = index.read_text()
    return [{"suite": m.group(1), "text": m.group(2)} for m in re.finditer(
        r"'_table_row_link_path': 'validations/([^/']+)/[^']*', '_validation_success_text': '(\w+)'", text)]


@pytest.fixture(scope="module", params=["sql", "gx"])
def docs_run(request, migrated, stage, tmp_path_factory):  # noqa: F811
    """(ValidationResult, context root): one run per engine with docs, the planted change undone after."""
    root = copy_context(ROOT / GX_DIR, tmp_path_factory.mktemp(f"docs-{request.param}") / GX_DIR)
    _, undo = _inject(migrated, *PLANTED)
    try:
        result = validate(migrated, stage, root=root, engine=request.param)
    finally:
        undo()
    return result, root


def test_a_source_known_warning_shows_as_a_warning_with_its_notes(docs_run):
    result, root = docs_run
    # What the CLI says, the ground truth for the pages.
    assert {c.rule for c in result.warnings} >= {WARNED_RULE}
    assert {c.suite for c in result.failures} == set(FAILED)
    assert result.docs_index == str(docs_index(root))
    warning = next(c for c in result.warnings if c.rule == WARNED_RULE)

    # The stored result carries Great Expectations' own severity and notes.
    stored = _stored(root, WARNED)
    unmet = [r for r in stored["results"] if not r["success"]]
    assert [r["expectation_config"]["meta"]["rule"] for r in unmet] == [WARNED_RULE]
    cfg = unmet[0]["expectation_config"]
    assert cfg["severity"] == "warning"
    assert cfg["meta"]["notes"]["format"] == "markdown"
    notes = " ".join(cfg["meta"]["notes"]["content"])
    assert cfg["notes"] == cfg["meta"]["notes"]["content"]
    assert f"holds {warning.source_records:,} record(s)" in notes and "MySQL adds none" in notes
    assert warning.source_examples[0].split(",")[0] in notes  # an example record, by id
    for suite in FAILED:  # a real failure stays critical
        failed = [r for r in _stored(root, suite)["results"] if not r["success"]]
        assert failed and all(r["expectation_config"]["severity"] == "critical" for r in failed)

    # The suite page says Warning, not Failed, and shows the notes on the warning's row.
    site = _site(root)
    page = _latest_page(site, WARNED).read_text()
    status = re.search(r'Status:</span>(.*?)</', page, re.S).group(1)
    assert "Warning" in page.split("Status:</span>", 1)[1][:200] and "Failed" not in page.split("Status:</span>", 1)[1][:200]
    assert "fa-exclamation-triangle" in status
    assert "MySQL adds none" in page and warning.source_examples[0].split("'")[1] in page
    for suite in FAILED:
        failed_page = _latest_page(site, suite).read_text()
        assert re.search(r"Status:</span>\s*<i class=\"fas fa-times text-danger\"[^>]*></i>\s*Failed", failed_page)

    # The index: the warned suite's row says Warning, the planted ones Failed, the others Success.
    rows = {r["suite"]: r["text"] for r in _index_rows(docs_index(root))}
    assert set(rows) == set(suite_names())
    assert rows[WARNED] == "Warning"
    assert {s for s, t in rows.items() if t == "Failed"} == set(FAILED)
    assert "ge-warning-icon" in docs_index(root).read_text()


# ---------------------------------------------------------------- offline


EXTERNAL = [  # (what, pattern): a script, stylesheet, font or image fetched over the network
    ("script", re.compile(r"<script\b[^>]*\bsrc=[\"']?(https?:)?//", re.I)),
    ("link", re.compile(r"<link\b[^>]*\bhref=[\"']?(https?:)?//", re.I)),
    ("image", re.compile(r"<img\b[^>]*\bsrc=[\"']?(https?:)?//", re.I)),
    ("css url", re.compile(r"url\(\s*[\"']?(https?:)?//", re.I)),
    ("css import", re.compile(r"@import\s+[\"']?(url\()?[\"']?(https?:)?//", re.I)),
]


def _external(text: str) -> list[str]:
    return [f"{what}: {text[m.start():m.start() + 120]}" for what, rx in EXTERNAL for m in rx.finditer(text)]


def test_no_built_page_loads_a_script_stylesheet_or_font_over_the_network(docs_run, tmp_path):
    _, root = docs_run
    site = _site(root)
    pages = list(site.rglob("*.html"))
    assert len(pages) >= 2 * len(suite_names()) + 1  # index, suite pages, validation pages
    found = {str(p.relative_to(site)): _external(p.read_text()) for p in pages}
    found.update({str(p.relative_to(site)): _external(p.read_text()) for p in site.joinpath("static").rglob("*.css")})
    assert {p: f for p, f in found.items() if f} == {}
    # ... while the outbound links stay.
    assert 'href="https://greatexpectations.io"' in docs_index(root).read_text()
    # `etl docs` (every suite and stored result, rebuilt) gives the same.
    proj = _project(tmp_path)
    done = subprocess.run([ETL, "docs"], cwd=proj, env=_etl_env(), capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    built = _site(proj / GX_DIR)
    assert {str(p): _external(p.read_text()) for p in built.rglob("*.html") if _external(p.read_text())} == {}
    assert (built / "static" / "vendor" / "fontawesome-free-6.6.0" / "webfonts" / "fa-solid-900.woff2").is_file()


def test_the_vendored_files_are_the_versions_the_pages_name(tmp_path):
    """Great Expectations' own pages, before any rewrite: every CDN script and stylesheet is one we
    vendor (or vega, which no page calls), and where a page pins a hash, our copy has it."""
    root = copy_context(ROOT / GX_DIR, tmp_path / GX_DIR)
    plain_build_docs(root)
    seen = set()
    for page in _site(root).rglob("*.html"):
        text = page.read_text()
        assert "vegaEmbed(" not in text, page
        for tag in re.findall(r"<(?:script|link)\b[^>]*>", text):
            url = re.search(r'\b(?:src|href)="(https?://[^"]+)"', tag)
            if not url or (tag.startswith("<link") and "stylesheet" not in tag):
                continue
            url = url.group(1)
            if re.fullmatch(r"https://cdn\.jsdelivr\.net/npm/vega(-lite|-embed)?@\d+", url):
                continue
            assert url in VENDORED, url
            seen.add(url)
            pinned = re.search(r'integrity="sha384-([^"]+)"', tag)
            if pinned:
                digest = base64.b64encode(hashlib.sha384((ASSETS / VENDORED[url]).read_bytes()).digest()).decode()
                assert digest == pinned.group(1), url
    assert len(seen) >= 10
    total = sum(p.stat().st_size for p in ASSETS.rglob("*") if p.is_file())
    assert total < 1_500_000  # small: minified files and woff2 fonts only
    assert (ASSETS / "README.md").read_text().count("|") > 20  # versions and licences listed


STYLED = """() => {
  const row = document.querySelector('.row');
  const icon = document.querySelector('.fas');
  return {
    row: row && getComputedStyle(row).display,          // bootstrap's grid: flex
    gutter: row && getComputedStyle(row).marginLeft,    // bootstrap's grid: -15px
    iconFont: icon && getComputedStyle(icon, '::before').fontFamily,
    faLoaded: document.fonts.check('900 16px "Font Awesome 6 Free"'),
    table: !!document.querySelector('.bootstrap-table'),        // bootstrap-table's script ran
    jquery: typeof window.jQuery,
  };
}"""


def test_the_docs_render_offline_in_headless_chromium(docs_run, chromium):  # noqa: F811
    _, root = docs_run
    index = docs_index(root)
    context = chromium.new_context(offline=True)
    asked = []
    context.route("**/*", lambda route: (asked.append(route.request.url),
                                         route.continue_() if route.request.url.startswith("file:") else route.abort()))
    page = context.new_page()
    errors = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    try:
        page.goto(index.as_uri())
        page.wait_for_selector("table tbody tr[data-index]", timeout=20_000)
        page.evaluate("document.fonts.ready.then(() => true)")
        rendered = page.inner_text("body")
        for name in suite_names():
            assert name in rendered, name
        styled = page.evaluate(STYLED)
        # The status filter offers what the rows say; picking Warning shows the warned suites, with their icon.
        status = "select.bootstrap-table-filter-control-validation_success"
        offered = page.evaluate(f"Array.from(document.querySelector('{status}').options).map(o => o.value)")
        page.select_option(status, "Warning")
        page.wait_for_function(f"document.querySelectorAll('table tbody tr[data-index]').length < {len(suite_names())}")
        row_icons = page.evaluate("""() => Array.from(document.querySelectorAll('table tbody tr[data-index]'))
            .filter(tr => tr.querySelector('i')).map(tr => [tr.innerText.split(/\\s+/), tr.querySelector('i').className])""")

        page.goto(_latest_page(_site(root), WARNED).as_uri())
        page.wait_for_selector(".etl-notes", timeout=20_000)
        suite_page = page.inner_text("body")
        suite_styled = page.evaluate(STYLED)
    finally:
        context.close()
    assert errors == []
    assert [u for u in asked if not u.startswith("file:")] == []
    assert styled["row"] == "flex" and styled["gutter"] == "-15px", styled
    assert styled["table"] and styled["jquery"] == "function", styled
    assert "Font Awesome 6 Free" in styled["iconFont"] and styled["faLoaded"], styled
    assert sorted(offered) == ["", "Failed", "Success", "Warning"]
    assert row_icons and all("fa-exclamation-triangle" in cls for _, cls in row_icons), row_icons
    assert WARNED in {w for words, _ in row_icons for w in words}, row_icons
    assert not {w for words, _ in row_icons for w in words} & set(FAILED), row_icons
    assert "Status: Warning" in " ".join(suite_page.split()) and "MySQL adds none" in suite_page
    assert suite_styled["row"] == "flex" and suite_styled["faLoaded"], suite_styled


# ---------------------------------------------------------------- etl docs --open, --serve


def _etl_env(**extra) -> dict:
    env = {k: v for k, v in os.environ.items() if k not in ("MYSQL_URI", "STAGE_DIR", "DISPLAY", "WAYLAND_DISPLAY", "BROWSER")}
    return {**env, **extra}


def test_etl_docs_open_says_where_without_a_display_and_opens_with_a_browser(tmp_path):
    proj = _project(tmp_path)
    index = docs_index(proj / GX_DIR)
    headless = subprocess.run([ETL, "docs", "--open"], cwd=proj, env=_etl_env(),
                              capture_output=True, text=True, timeout=300)
    assert headless.returncode == 0, headless.stderr
    assert f"data docs at {index}" in headless.stdout and "no display" in headless.stdout

    got = tmp_path / "opened.txt"
    browser = tmp_path / "browser.sh"
    browser.write_text(f'#!/bin/sh\nprintf "%s" "$1" > {got}\n')
    browser.chmod(0o755)
    opened = subprocess.run([ETL, "docs", "--open"], cwd=proj, env=_etl_env(BROWSER=str(browser)),
                            capture_output=True, text=True, timeout=300)
    assert opened.returncode == 0, opened.stderr
    assert got.read_text() == index.resolve().as_uri()
    assert "opened the data docs" in opened.stdout


def test_etl_docs_serve_serves_the_site_until_ctrl_c(tmp_path):
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proj = _project(tmp_path)
    proc = subprocess.Popen([ETL, "docs", "--serve", "--port", str(port)], cwd=proj,
                            env=_etl_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        base = f"http://127.0.0.1:{port}/"
        deadline = time.monotonic() + 120
        while True:
            try:
                index = urllib.request.urlopen(base, timeout=5).read().decode()
                break
            except OSError:
                assert proc.poll() is None, proc.communicate()
                assert time.monotonic() < deadline, "etl docs --serve did not start"
                time.sleep(0.3)
        for name in suite_names():
            assert f"expectations/{name}.html" in index
        css = urllib.request.urlopen(base + "static/vendor/bootstrap-4.3.1/css/bootstrap.min.css", timeout=5)
        assert css.status == 200 and b"Bootstrap v4.3.1" in css.read()
        suite = urllib.request.urlopen(base + "expectations/tickets.html", timeout=5).read().decode()
        assert "../static/vendor/bootstrap-4.3.1/css/bootstrap.min.css" in suite  # relative from a nested page
    finally:
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, err
    assert f"serving the data docs at {base}" in out and "served the data docs" in out
