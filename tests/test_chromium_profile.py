"""`etl export --from PROFILE`: the app's database written by real Dexie in real headless Chromium
into a persistent profile, read offline, gives the same stage as the snippet's export of it.

The page (tests/fixtures/browser/dexie.html) opens InsightTicketDatabase with Dexie (npm, `make
node-deps`), schema version 7. It writes the golden records (tabs, 4-byte UTF-8, "" vs null vs
absent, Dates, a property holding undefined) and a few thousand sample records, so LevelDB
flushes and compacts tables; then it updates and deletes records, as the app does after an
upload. The snippet runs in the same page, and the browser is closed before the profile is read.
"""

from __future__ import annotations

import json
import shutil
import sqlite3
import struct
from dataclasses import dataclass
from pathlib import Path

import pytest

from etl import STORES, ExportError, export, transform, write_sample
from etl.source.chromium import idbkeys, leveldb
from etl.source.export import read_records, read_summary
from stage_helpers import assert_same_stage
from test_snippet_browser import CHROMIUM, CHROMIUM_ARGS, PAGE_DIR, _written, page_url, snippet_downloads  # noqa: F401

DEXIE = PAGE_DIR / "node_modules" / "dexie" / "dist" / "dexie.js"
EDITED = "1a2b3c4d-0000-4000-8000-000000000002"
DELETED_INCIDENT_COUNT = 2


@dataclass(frozen=True)
class Profile:
    user_data: Path  # --user-data-dir
    snippet: Path  # the snippet's downloads, from the same page just before the browser closed
    written: dict
    deleted: dict


def _bulk(tmp: Path) -> dict[str, list[dict]]:
    """A few thousand records with the real data's shape (etl sample), vendors left out (their ids are the golden ones)."""
    write_sample(tmp / "raw", tickets=3000, vendors=0)
    export(tmp / "raw", tmp / "export")
    return {s.name: read_records(tmp / "export", s) for s in STORES if s.name != "vendors"}


@pytest.fixture(scope="module")
def profile(page_url, tmp_path_factory) -> Profile:  # noqa: F811 (the imported fixture)
    if not DEXIE.is_file():
        pytest.fail(f"{DEXIE} is missing: `make node-deps` installs Dexie from npm", pytrace=False)
    if not CHROMIUM.exists():
        pytest.fail(f"{CHROMIUM} is missing: `make system-deps` installs it", pytrace=False)
    from playwright.sync_api import sync_playwright

    tmp = tmp_path_factory.mktemp("profile")
    written = _written()
    for name, recs in _bulk(tmp / "sample").items():
        written[name] = written.get(name, []) + recs
    tickets, incidents = written["tickets"], written["incidents"]
    deleted = {"tickets": [tickets[100]["id"], tickets[-1]["id"], tickets[1000]["id"]],
               "incidents": [r["id"] for r in incidents[10:10 + DELETED_INCIDENT_COUNT]]}
    changes = {"tickets": {EDITED: {"name": "edited after upload\tand again 🇮🇩", "cause": {"$undefined": True}},
                           tickets[2000]["id"]: {"status": "Closed", "closeTime": "2025-01-02T03:04:05.000Z"}},
               "vendors": {"1": {"updatedAt": {"$date": 1735787045678}, "isActive": False}}}
    user_data = tmp / "user-data"
    with sync_playwright() as p:
        context = p.chromium.launch_persistent_context(str(user_data), executable_path=str(CHROMIUM), args=CHROMIUM_ARGS,
                                                       accept_downloads=True)
        try:
            page = context.new_page()
            page.goto(page_url.replace("app.html", "dexie.html"))
            counts = page.evaluate("([s, n]) => putRecords(s, n)", [written, 500])
            assert counts["tickets"] == len(tickets)
            page.evaluate("c => updateRecords(c)", changes)
            page.evaluate("k => deleteRecords(k)", deleted)
            snippet_downloads(page, tmp / "snippet")
            page.evaluate("closeDatabase()")
        finally:
            context.close()
    return Profile(user_data, tmp / "snippet", written, deleted)


def leveldb_folder(profile: Profile) -> Path:
    return next((profile.user_data / "Default" / "IndexedDB").glob("*.indexeddb.leveldb"))


def test_the_profile_holds_compacted_tables_and_a_log(profile):
    files = leveldb.live_files(leveldb_folder(profile))
    assert files.tables and files.logs  # records live in both: the reader must merge them by sequence number


def test_the_profile_gives_the_same_stage_as_the_snippet(profile, tmp_path):
    result = export(profile.user_data, tmp_path / "from-profile")
    assert result.source_form == "chromium"
    export(profile.snippet, tmp_path / "from-snippet")
    assert result.counts == read_summary(tmp_path / "from-snippet")["counts"]
    transform(tmp_path / "from-profile", tmp_path / "stage-profile")
    transform(tmp_path / "from-snippet", tmp_path / "stage-snippet")
    assert_same_stage(tmp_path / "stage-profile", tmp_path / "stage-snippet")


def test_records_are_the_latest_version_and_deleted_ones_stay_deleted(profile, tmp_path):
    export(profile.user_data, tmp_path / "export")
    tickets = {t["id"]: t for t in read_records(tmp_path / "export", "tickets")}
    assert len(tickets) == len(profile.written["tickets"]) - len(profile.deleted["tickets"])
    assert not set(profile.deleted["tickets"]) & set(tickets)
    assert tickets[EDITED]["name"] == "edited after upload\tand again 🇮🇩" and "cause" not in tickets[EDITED]
    t2 = tickets[EDITED]
    assert t2["handling2"] == "a\u0000b" and "😀 𝄞" in t2["handling1"]
    assert "cause" not in tickets["undefined-props"] and tickets["undefined-props"]["note"].endswith("🇮🇩")
    incidents = read_records(tmp_path / "export", "incidents")
    assert len(incidents) == len(profile.written["incidents"]) - DELETED_INCIDENT_COUNT
    vendors = {v["id"]: v for v in read_records(tmp_path / "export", "vendors")}
    assert vendors[1]["updatedAt"] == {"$date": 1735787045678} and vendors[1]["isActive"] is False
    assert vendors[1]["createdAt"] == {"$date": 1691695968689}
    auto = [v for v in vendors.values() if v["name"] == "Vendor with an auto-increment id"]
    assert len(auto) == 1 and isinstance(auto[0]["id"], int)  # the generated key, put back into the record
    assert auto[0]["updatedAt"] == {"$date": -86400000}
    # key order, as IndexedDB (and so the snippet) returns records
    snippet_order = [t["id"] for t in json.loads((profile.snippet / "tickets.json").read_text(encoding="utf-8"))]
    assert [t["id"] for t in read_records(tmp_path / "export", "tickets")] == snippet_order


@pytest.mark.parametrize("where", ["user-data", "profile", "leveldb"])
def test_every_way_to_point_at_the_profile(profile, tmp_path, where):
    source = {"user-data": profile.user_data, "profile": profile.user_data / "Default", "leveldb": leveldb_folder(profile)}[where]
    result = export(source, tmp_path / "export", origin="127.0.0.1:" + leveldb_folder(profile).name.split("_")[-1].split(".")[0])
    assert result.counts["tickets"] == len(profile.written["tickets"]) - len(profile.deleted["tickets"])
    assert any("users: not migrated" in w for w in result.warnings)
    assert not any("password" in line for line in (tmp_path / "export" / "tickets.ndjson").read_text().splitlines()[:1])


# ---------------------------------------------------------------- malformed and foreign profiles


def refused(tmp_path: Path, source: Path, match: str, **kw) -> ExportError:
    out = tmp_path / "out"
    with pytest.raises(ExportError, match=match) as e:
        export(source, out, **kw)
    assert not out.exists() and not list(tmp_path.glob(".out.partial-*"))  # nothing half-written
    assert "\n" not in str(e.value)
    return e.value


def copy_profile(profile: Profile, tmp_path: Path) -> Path:
    dst = tmp_path / "copy"
    shutil.copytree(profile.user_data / "Default" / "IndexedDB", dst / "IndexedDB")
    return dst


def test_no_such_origin(profile, tmp_path):
    refused(tmp_path, profile.user_data, "no origin 'http://example.com:8080' in this profile", origin="http://example.com:8080")


def test_several_origins_holding_the_database_need_origin(profile, tmp_path):
    copy = copy_profile(profile, tmp_path)
    folder = next((copy / "IndexedDB").glob("*.leveldb"))
    shutil.copytree(folder, folder.parent / "https_app.example.com_443.indexeddb.leveldb")
    refused(tmp_path, copy, r"2 origins hold InsightTicketDatabase: choose one with --origin")
    result = export(copy, tmp_path / "chosen", origin="https://app.example.com:443")
    assert result.counts["tickets"] == len(profile.written["tickets"]) - len(profile.deleted["tickets"])
    assert any("origin https://app.example.com:443" in w for w in result.warnings)


def test_a_profile_without_the_database(tmp_path):
    # a LevelDB folder holding another database: a real one, written by this reader's own test helper below
    folder = tmp_path / "p" / "IndexedDB" / "http_other_80.indexeddb.leveldb"
    _write_leveldb(folder, [(b"\x00\x00\x00\x00" + bytes([idbkeys.DATABASE_NAME]) + _swl("http_other_80@1") + _swl("Other"), b"\x01")])
    refused(tmp_path, tmp_path / "p", "no origin in this profile holds the database InsightTicketDatabase")


def test_a_firefox_profile(tmp_path):
    ff = tmp_path / "abcd1234.default-release"
    (ff / "storage" / "default" / "http+++127.0.0.1+8080" / "idb").mkdir(parents=True)
    sqlite3.connect(ff / "storage" / "default" / "http+++127.0.0.1+8080" / "idb" / "3647222921wleabcEoxlt-eengsairo.sqlite").close()
    (ff / "prefs.js").write_text("// Mozilla User Preferences\n")
    err = refused(tmp_path, ff, "a Firefox profile")
    assert err.file == str(ff)


def test_the_sqlite_layout_is_named(tmp_path):
    folder = tmp_path / "Default" / "IndexedDB" / "http_127.0.0.1_8080.indexeddb.sqlite"
    folder.mkdir(parents=True)
    with sqlite3.connect(folder / "InsightTicketDatabase") as con:
        con.execute("CREATE TABLE records (row_id INTEGER PRIMARY KEY, key BLOB, value BLOB)")
    refused(tmp_path, tmp_path, r"SQLite IndexedDB layout \(Chrome 149\+\) is not supported")


def test_a_truncated_table_file(profile, tmp_path):
    copy = copy_profile(profile, tmp_path)
    # A live table: Chromium may leave tables of an earlier compaction in the folder, which the reader
    # rightly never opens (cutting one of them would prove nothing).
    tables = leveldb.live_files(next((copy / "IndexedDB").glob("*.leveldb"))).tables
    assert tables, "the profile's database has no table file yet"
    table = max(tables, key=lambda p: p.stat().st_size)
    data = table.read_bytes()
    table.write_bytes(data[: len(data) // 2])
    err = refused(tmp_path, copy, "not a complete LevelDB table")
    assert err.file == str(table)


def test_an_unknown_envelope_version(profile, tmp_path):
    copy = copy_profile(profile, tmp_path)
    folder = next((copy / "IndexedDB").glob("*.leveldb"))
    # a later write of one ticket whose value says Blink version 99, in a newer log file
    files = leveldb.live_files(folder)
    key = next(e[0] for _, e in leveldb.entries(files) if e[0][:4] == b"\x00\x01\x01\x01")
    top = max(e[1] for _, e in leveldb.entries(files))
    _append_log(folder / "999999.log", top + 1, [(key, b"\x05\xff\x63\xfe" + bytes(12) + b"\xff\x0f_")])
    refused(tmp_path, copy, r"unknown Blink serialization version 99 .*store tickets, record key")


# ---------------------------------------------------------------- writing LevelDB files for the error cases


def _swl(text: str) -> bytes:
    return bytes([len(text)]) + text.encode("utf-16-be")


def _append_log(path: Path, seq: int, puts: list[tuple[bytes, bytes]]) -> None:
    """One write batch as one FULL log record (the checksum is not read by this reader)."""
    batch = struct.pack("<QI", seq, len(puts))
    for key, value in puts:
        batch += b"\x01" + bytes([len(key)]) + key + _varint(len(value)) + value
    with open(path, "ab") as f:
        f.write(struct.pack("<IHB", 0, len(batch), 1) + batch)


def _varint(n: int) -> bytes:
    out = bytearray()
    while n >= 0x80:
        out.append(n & 0x7F | 0x80)
        n >>= 7
    return bytes(out + bytes([n]))


def _write_leveldb(folder: Path, puts) -> None:
    """A LevelDB folder of one log: CURRENT, an empty MANIFEST whose log number is 0, the log."""
    folder.mkdir(parents=True)
    (folder / "CURRENT").write_text("MANIFEST-000001\n")
    (folder / "MANIFEST-000001").write_bytes(b"")
    _append_log(folder / "000003.log", 1, puts)


def test_a_profile_merges_with_the_snippet_export_of_the_same_browser(profile, tmp_path):
    from etl.source.merge import merge

    result = merge([f"profile={profile.user_data}", f"snippet={profile.snippet}"], tmp_path / "merged")
    tickets = len(profile.written["tickets"]) - len(profile.deleted["tickets"])
    assert result.counts["tickets"] == tickets
    cov = result.coverage["tickets"]
    assert cov["profile"]["read"] == cov["snippet"]["read"] == tickets
    assert cov["profile"]["only"] == cov["snippet"]["only"] == 0  # the same records, each seen in both
    assert cov["profile"]["kept"] + cov["snippet"]["kept"] == tickets
