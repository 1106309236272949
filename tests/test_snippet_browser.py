"""The export snippet in a real headless Chromium: what it downloads, through `etl export`, is what was written.

A test page served on 127.0.0.1 (tests/fixtures/browser/app.html) creates the app's
IndexedDB database (version 70, the stores, keys and indexes of domain.md) and writes
WRITTEN; the snippet runs in the page; the downloads are saved into a folder. The
`browser_export` fixture yields that folder, ready for `etl export` and beyond.

Chromium is Debian's (/usr/bin/chromium; `make system-deps` installs it), driven by
Playwright without `playwright install` and without network.
"""

from __future__ import annotations

import copy
import functools
import http.server
import importlib.util
import json
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

from etl import ExportError, export
from etl.source.export import SUMMARY, export_files, read_records as records
from etl.source.snippet import bookmarklet, snippet_source

ROOT = Path(__file__).resolve().parent.parent
PAGE_DIR = ROOT / "tests" / "fixtures" / "browser"
CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run"]

_spec = importlib.util.spec_from_file_location("make_forms", ROOT / "tests" / "fixtures" / "forms" / "make_forms.py")
make_forms = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(make_forms)


def _written() -> dict[str, list[dict]]:
    """What the test page stores: the golden records plus browser-only cases.
    {"$date": ms} becomes a Date in the page; {"$undefined": true} a property holding undefined."""
    stores = copy.deepcopy(make_forms.RECORDS)
    stores["tickets"].append({**make_forms.TICKETS[0], "id": "undefined-props", "cause": {"$undefined": True},
                              "note": "ends with a lone emoji 🇮🇩",
                              # JSON.stringify leaves these raw; in NDJSON only "\n" ends a record.
                              "handling3": "line\u2028separator\u2029paragraph\u0085next line\u000bvt"})
    stores["vendors"].append({"name": "Vendor with an auto-increment id", "isActive": True,
                              "createdAt": {"$date": 0}, "updatedAt": {"$date": -86400000}})  # 1970, and before it
    stores["users"] = make_forms.USERS
    stores["menuPermissions"] = [{"role": "super admin", "menus": ["dashboard", "tickets"]}]
    return stores


def _expected(written: dict[str, list[dict]]) -> dict[str, list[dict]]:
    """The records `etl export` must give back: undefined properties absent, auto-increment ids
    assigned, in key order (IndexedDB returns records by primary key)."""
    out = {}
    for name, recs in written.items():
        recs = [{k: v for k, v in r.items() if v != {"$undefined": True}} for r in recs]
        next_id = 1 + max((r["id"] for r in recs if isinstance(r.get("id"), int)), default=0)
        for r in recs:
            if "id" not in r:
                r["id"], next_id = next_id, next_id + 1
        out[name] = sorted(recs, key=lambda r: r["id"])
    return out




# ---------------------------------------------------------------- the browser


@pytest.fixture(scope="module")
def page_url():
    handler = functools.partial(_QuietHandler, directory=str(PAGE_DIR))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/app.html"
    server.shutdown()
    server.server_close()


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


@pytest.fixture(scope="module")
def chromium():
    if not CHROMIUM.exists():
        pytest.fail(f"{CHROMIUM} is missing: `make system-deps` (or apt-get install chromium) installs it", pytrace=False)
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield browser
        browser.close()


def run_snippet(chromium, page_url: str, folder: Path, *, seed: dict | None, options: dict | None = None) -> dict:
    """Open the page in a fresh profile, write `seed`, run the snippet, save its downloads into `folder`."""
    context = chromium.new_context(accept_downloads=True)
    try:
        page = context.new_page()
        page.goto(page_url)
        if seed is not None:
            page.evaluate("stores => seedDatabase(stores)", seed)
        return snippet_downloads(page, folder, options=options)
    finally:
        context.close()


def snippet_downloads(page, folder: Path, *, options: dict | None = None) -> dict:
    """Run the snippet in `page` (the database already there) and save its downloads into `folder`."""
    for name, value in (options or {}).items():
        page.evaluate("([k, v]) => { window[k] = v; }", [name, value])
    downloads = []
    page.on("download", lambda d: downloads.append(d))
    summary = page.evaluate(snippet_source())
    expected = 1 + sum(len(files) for files in summary["files"].values())
    deadline = time.monotonic() + 30
    while len(downloads) < expected and time.monotonic() < deadline:
        page.wait_for_timeout(100)
    assert len(downloads) == expected, [d.suggested_filename for d in downloads]
    folder.mkdir(parents=True, exist_ok=True)
    for d in downloads:
        d.save_as(folder / d.suggested_filename)
    return summary


@dataclass(frozen=True)
class BrowserExport:
    folder: Path  # what the snippet downloaded: the app's export layout
    summary: dict  # what the snippet returned (also downloaded as export-summary.json)
    written: dict  # what the page stored, as JSON with $date / $undefined markers
    expected: dict  # the records etl export must give back, per store, in key order


@pytest.fixture(scope="module")
def browser_export(chromium, page_url, tmp_path_factory) -> BrowserExport:
    """The snippet's downloads from a page holding WRITTEN: the folder `etl export --from` takes."""
    written = _written()
    folder = tmp_path_factory.mktemp("browser") / "downloads"
    summary = run_snippet(chromium, page_url, folder, seed=written)
    return BrowserExport(folder, summary, written, _expected(written))


# ---------------------------------------------------------------- tests


def test_the_snippet_downloads_the_export_layout(browser_export):
    s = browser_export.summary
    names = sorted(p.name for p in browser_export.folder.iterdir())
    assert names == sorted([SUMMARY] + [f"{store}.json" for store in browser_export.written])
    on_disk = json.loads((browser_export.folder / SUMMARY).read_text())
    assert on_disk == s
    assert s["databaseName"] == "InsightTicketDatabase" and s["databaseVersion"] == 7 and s["indexedDbVersion"] == 70
    assert s["counts"] == {name: len(recs) for name, recs in browser_export.written.items()}
    assert s["exportedAt"].endswith("Z") and s["omittedFields"] == {"users": ["password"]}
    users = json.loads((browser_export.folder / "users.json").read_text())
    assert users and all("password" not in u for u in users)


def test_etl_export_gives_back_exactly_the_records_written(browser_export, tmp_path):
    result = export(browser_export.folder, tmp_path / "export")
    assert result.source_form == "folder"
    for name in make_forms.RECORDS:
        assert records(tmp_path / "export", name) == browser_export.expected[name], name
    assert any("users" in w for w in result.warnings) and any("menuPermissions" in w for w in result.warnings)


def test_dates_stay_instants_and_strings_stay_strings(browser_export):
    vendors = json.loads((browser_export.folder / "vendors.json").read_text())
    assert vendors[0]["createdAt"] == {"$date": 1691695968689}
    assert vendors[-1]["updatedAt"] == {"$date": -86400000}
    tickets = {t["id"]: t for t in json.loads((browser_export.folder / "tickets.json").read_text())}
    assert tickets["1a2b3c4d-0000-4000-8000-000000000003"]["name"] == "2024-07-15T17:35:00.000Z"
    assert tickets["1a2b3c4d-0000-4000-8000-000000000003"]["openTime"] == "2024-07-15T17:35:00"
    t2 = tickets["1a2b3c4d-0000-4000-8000-000000000002"]
    assert t2["handling2"] == "a\u0000b" and "😀 𝄞" in t2["handling1"]
    t1 = tickets["1a2b3c4d-0000-4000-8000-000000000001"]
    assert "cause" not in t1 and t1["handling"] == "" and t1["subClassification"] is None
    assert "cause" not in tickets["undefined-props"]  # present in the browser, holding undefined
    assert tickets["undefined-props"]["note"].endswith("🇮🇩")


def test_the_page_really_stored_dates(chromium, page_url, browser_export):
    # Guard on the test page itself: the vendors' createdAt must be a Date in IndexedDB, not a number.
    context = chromium.new_context()
    try:
        page = context.new_page()
        page.goto(page_url)
        page.evaluate("stores => seedDatabase(stores)", {"vendors": browser_export.written["vendors"][:1]})
        kind = page.evaluate("async () => Object.prototype.toString.call((await readBack('vendors', 1)).createdAt)")
        assert kind == "[object Date]"
    finally:
        context.close()


def test_a_large_store_is_written_as_ndjson_and_gives_the_same_records(chromium, page_url, browser_export, tmp_path):
    summary = run_snippet(chromium, page_url, tmp_path / "downloads", seed=browser_export.written,
                          options={"__ETL_EXPORT_NDJSON_BYTES": 3000})
    tickets = browser_export.written["tickets"]
    assert summary["files"]["tickets"] == [{"path": "tickets.ndjson", "format": "ndjson", "count": len(tickets)}]
    lines = (tmp_path / "downloads" / "tickets.ndjson").read_text(encoding="utf-8").split("\n")
    assert lines.pop() == "" and len(lines) == len(tickets)  # one record per line, each ended by "\n"
    assert all(line.startswith("{") and line.endswith("}") for line in lines)
    assert summary["files"]["vendors"][0]["path"] == "vendors.json"  # a small store stays an array
    result = export(tmp_path / "downloads", tmp_path / "export")
    assert export_files(tmp_path / "export", "tickets") == [(tmp_path / "export" / "tickets.ndjson", "newline_delimited")]
    for name in make_forms.RECORDS:
        assert records(tmp_path / "export", name) == browser_export.expected[name], name
    assert result.counts["tickets"] == len(tickets)


def test_the_bookmarklet_runs_the_same_snippet(chromium, page_url, browser_export, tmp_path):
    url = bookmarklet()
    assert url.startswith("javascript:void%20")
    context = chromium.new_context(accept_downloads=True)
    try:
        page = context.new_page()
        page.goto(page_url)
        page.evaluate("stores => seedDatabase(stores)", browser_export.written)
        downloads = []
        page.on("download", lambda d: downloads.append(d))
        page.evaluate("url => { location.href = url; }", url)  # what clicking the bookmark does
        deadline = time.monotonic() + 30
        while len(downloads) < len(browser_export.written) + 1 and time.monotonic() < deadline:
            page.wait_for_timeout(100)
        names = sorted(d.suggested_filename for d in downloads)
        assert names == sorted([SUMMARY] + [f"{store}.json" for store in browser_export.written])
        assert page.url == page_url  # `void`: the page was not replaced by the snippet's result
        summary = json.loads(Path(next(d for d in downloads if d.suggested_filename == SUMMARY).path()).read_text())
        assert summary["counts"] == browser_export.summary["counts"]
    finally:
        context.close()


def test_no_database_on_the_page_is_a_clear_error_and_creates_nothing(chromium, page_url):
    context = chromium.new_context()
    try:
        page = context.new_page()
        page.goto(page_url)
        with pytest.raises(Exception, match="no IndexedDB database InsightTicketDatabase"):
            page.evaluate(snippet_source())
        names = page.evaluate("async () => (await indexedDB.databases()).map(d => d.name)")
        assert "InsightTicketDatabase" not in names
    finally:
        context.close()


def test_an_export_missing_a_download_is_refused(browser_export, tmp_path):
    # A file the browser dropped or renamed ("tickets (1).json"): the summary still lists it.
    import shutil

    folder = tmp_path / "partial"
    shutil.copytree(browser_export.folder, folder)
    (folder / "tickets.json").rename(folder / "tickets (1).json")
    with pytest.raises(ExportError, match="missing store file"):
        export(folder, tmp_path / "export")
    assert not (tmp_path / "export").exists()
