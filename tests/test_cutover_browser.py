"""The cutover adapter in a real headless Chromium, with the real Dexie (npm) and the app's schema,
against `etl serve` (a subprocess) over a database the real chain filled.

The golden records (tests/fixtures/forms) go through etl export -> transform -> load into MySQL,
and into the page's Dexie database as the app holds them (Dates as Date objects). One ticket's
description is then changed in MySQL: the planted difference. It also tells which origin served a
read. The flags are set in MySQL by the test (the guarded path is test_cutover_guards'); rollback
is the real `etl flags rollback` command.
"""

from __future__ import annotations

import importlib.util
import json
import os
import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path

import httpx
import pytest

from etl import MySQLTarget, apply_schema, export, load, transform
from etl.cutover import STAGES
from etl.cutover.adapter import adapter_source

ROOT = Path(__file__).resolve().parent.parent
NPM_DIR = ROOT / "tests" / "fixtures" / "cutover"
DEXIE = NPM_DIR / "node_modules" / "dexie" / "dist" / "dexie.js"
CHROMIUM = Path("/usr/bin/chromium")
TOKEN = "browser-test-token-0123456789"
PLANTED = "0c86374e-5506-4891-b4f4-209342b8b6ad"  # the first golden ticket
COMPARED_TABLES = ("tickets", "incidents", "customers", "vendors")  # upload sessions are rebuilt by the load

_spec = importlib.util.spec_from_file_location("make_forms", ROOT / "tests" / "fixtures" / "forms" / "make_forms.py")
make_forms = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(make_forms)

PAGE = """<!doctype html><html><head><meta charset="utf-8"><title>HMS (adapter test)</title>
<script src="/app/dexie.js"></script><script src="/app/adapter.js"></script></head><body><script>
  // the app's Dexie schema, version 7 (domain.md)
  window.db = new Dexie("InsightTicketDatabase");
  db.version(7).stores({
    tickets: "id, openTime, name, uploadTimestamp, cabang, batchId, fileHash, fileName",
    incidents: "id, startTime, status, priority, site, klasifikasiGangguan, level, ncal, noCase, uploadTimestamp, batchId, fileHash, fileName",
    customers: "id, nama, jenisKlien, layanan, kategori, uploadTimestamp, batchId, fileHash, fileName",
    vendors: "++id, name, isActive, createdAt, updatedAt",
    uploadSessions: "id, fileName, fileHash, uploadTimestamp, dataType, status",
    users: "++id, username, role",
    menuPermissions: "++id, role",
  });
  window.revive = (v) => Array.isArray(v) ? v.map(revive) : v && typeof v === "object"
    ? (Object.keys(v).length === 1 && "$date" in v ? new Date(v.$date)
       : Object.fromEntries(Object.entries(v).map(([k, x]) => [k, revive(x)]))) : v;
  window.seen = [];
  window.start = async (token) => {
    window.cut = await IdbCutover.create({ db, baseUrl: "", token, sampleRate: 1, refreshMs: 60000 });
    for (const t of ["stage", "fallback", "mismatch", "write-error"]) cut.events.addEventListener(t, (e) => seen.push([t, e.detail]));
  };
</script></body></html>"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def sql(target, statement, *args):
    with target.connect() as conn, conn.cursor() as cur:
        cur.execute(statement, args or None)
        return cur.fetchall()


def set_stage(target, name):
    s = next(s for s in STAGES if s.name == name)
    for flag, value in {**s.flags, "rollbackMode": False}.items():
        sql(target, "UPDATE feature_flags SET value = %s WHERE name = %s", json.dumps(value), flag)


@pytest.fixture(scope="module")
def migrated(mysql_server, tmp_path_factory):
    base, _ = mysql_server
    work = tmp_path_factory.mktemp("adapter")
    make_forms.write_folder(work / "forms")
    export(work / "forms", work / "export")
    transform(work / "export", work / "stage")
    target = MySQLTarget(base.host, base.port, base.user, base.password, f"t_{uuid.uuid4().hex[:12]}", base.unix_socket)
    apply_schema(target)
    load(work / "stage", target)
    sql(target, "UPDATE tickets SET description = 'changed in MySQL' WHERE id = %s", PLANTED)
    yield target, work
    with base.connect(database=False) as conn, conn.cursor() as cur:
        cur.execute(f"DROP DATABASE IF EXISTS `{target.database}`")


class Api:
    """`etl serve` as a subprocess: started, stopped and started again on the same port."""

    def __init__(self, target, runtime: Path):
        self.target, self.runtime, self.port, self.proc = target, runtime, free_port(), None
        self.url = f"http://127.0.0.1:{self.port}"

    def start(self):
        env = {**os.environ, "API_TOKEN": TOKEN, "RUNTIME_DIR": str(self.runtime)}
        self.proc = subprocess.Popen([sys.executable, "-m", "etl", "serve", "--mysql", self.target.uri, "--port", str(self.port),
                                      "--pool-size", "2"], cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            try:
                if httpx.get(self.url + "/health", timeout=2).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            assert self.proc.poll() is None, self.proc.stderr.read().decode()
            time.sleep(0.2)
        raise AssertionError("etl serve did not start")

    def stop(self):
        self.proc.terminate()
        self.proc.wait(30)


@pytest.fixture(scope="module")
def api(migrated):
    target, work = migrated
    server = Api(target, work / "runtime")
    server.start()
    yield server
    if server.proc.poll() is None:
        server.stop()


@pytest.fixture(scope="module")
def page(api):
    if not CHROMIUM.exists():
        pytest.fail(f"{CHROMIUM} is missing: `make system-deps` (or apt-get install chromium) installs it", pytrace=False)
    if not DEXIE.exists():
        subprocess.run(["npm", "ci", "--no-audit", "--no-fund"], cwd=NPM_DIR, check=True, capture_output=True)
    from playwright.sync_api import sync_playwright

    files = {"/app/index.html": ("text/html", PAGE), "/app/dexie.js": ("text/javascript", DEXIE.read_text()),
             "/app/adapter.js": ("text/javascript", adapter_source())}
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=["--no-sandbox", "--disable-gpu"])
        context = browser.new_context()
        # the page and its scripts come from the test, on the API's origin (same origin: no CORS)
        context.route(f"{api.url}/app/**", lambda route: route.fulfill(
            content_type=files[route.request.url[len(api.url):]][0], body=files[route.request.url[len(api.url):]][1]))
        pg = context.new_page()
        pg.requests = []
        pg.on("request", lambda r: pg.requests.append((r.method, r.url[len(api.url):])) if r.url.startswith(api.url + "/api/") else None)
        pg.goto(f"{api.url}/app/index.html")
        records = {k: v for k, v in make_forms.RECORDS.items()}
        pg.evaluate("async (stores) => { for (const [n, rs] of Object.entries(stores)) await db.table(n).bulkPut(revive(rs)); }",
                    records)
        pg.evaluate("token => start(token)", TOKEN)
        yield pg
        browser.close()


def read(page, table="tickets"):
    """(description of the planted ticket, API requests the read made)."""
    before = len(page.requests)
    got = page.evaluate("async ([t, k]) => (await cut.list(t)).find((r) => r.id === k)", [table, PLANTED])
    return got["description"], page.requests[before:]


def refresh(page):
    return page.evaluate("async () => (await cut.refreshFlags(true)).name")


def in_idb(page, key) -> bool:
    return page.evaluate("async (k) => !!(await db.tickets.get(k))", key)


def in_mysql(target, key) -> bool:
    return bool(sql(target, "SELECT 1 FROM tickets WHERE id = %s", key))


def new_ticket(key, **fields):
    return {**make_forms.TICKETS[0], "id": key, **fields}


IDB_TEXT, MYSQL_TEXT = make_forms.TICKETS[0]["description"], "changed in MySQL"


def test_reads_and_writes_go_where_each_stage_says(migrated, page):
    target, _ = migrated
    for s in STAGES:
        set_stage(target, s.name)
        assert refresh(page) == s.name
        description, requests = read(page)
        assert description == (MYSQL_TEXT if s.read_from == "mysql" else IDB_TEXT), s.name
        api_reads = [u for m, u in requests if m == "GET" and u.startswith("/api/tickets")]
        assert bool(api_reads) == (s.read_from == "mysql" or s.compare_with == "mysql"), (s.name, requests)
        assert (("POST", "/api/migration/mismatches") in requests) == bool(s.compare_with), (s.name, requests)

        key = f"written-in-{s.name}"
        result = page.evaluate("async (r) => await cut.put('tickets', [revive(r)])", new_ticket(key))
        assert result["written"] == [o for o in (s.write_first, s.write_second) if o], (s.name, result)
        assert in_idb(page, key) == ("indexeddb" in result["written"]), s.name
        assert in_mysql(target, key) == ("mysql" in result["written"]), s.name
        page.evaluate("async (k) => await db.tickets.delete(k)", key)  # so later comparisons see only the planted difference
        sql(target, "DELETE FROM tickets WHERE id = %s", key)


def test_a_failed_authoritative_write_skips_the_other_origin(migrated, page):
    target, _ = migrated
    set_stage(target, "live")  # MySQL first: a status longer than its VARCHAR(50) is refused by the API
    assert refresh(page) == "live"
    error = page.evaluate("async (r) => { try { await cut.put('tickets', [revive(r)]); return null; } catch (e) { return e.message; } }",
                          new_ticket("too-long-for-mysql", status="x" * 60))
    assert error and "HTTP 422" in error
    assert not in_idb(page, "too-long-for-mysql") and not in_mysql(target, "too-long-for-mysql")
    set_stage(target, "shadow")  # IndexedDB first: a record without its key is refused by Dexie
    assert refresh(page) == "shadow"
    error = page.evaluate("async (r) => { try { await cut.put('tickets', [revive(r)]); return null; } catch (e) { return e.name; } }",
                          {**new_ticket("x"), "id": None, "name": "keyless"})
    assert error == "DataError"
    assert not sql(target, "SELECT 1 FROM tickets WHERE name = 'keyless'")
    assert page.evaluate("seen.filter(([t]) => t === 'write-error').map(([, d]) => d.origin)")[-2:] == ["mysql", "indexeddb"]


def test_the_planted_difference_is_reported_once_with_its_buckets(migrated, page):
    target, _ = migrated
    set_stage(target, "shadow")
    assert refresh(page) == "shadow"
    for _ in range(2):
        assert read(page)[0] == IDB_TEXT
    rows = sql(target, "SELECT table_name, record_key, stage, times_seen, DATE_FORMAT(bucket_day, '%%Y-%%m-%%d'), "
                       "bucket_cabang, bucket_status, bucket_category, fields FROM migration_mismatches WHERE table_name IN %s",
               COMPARED_TABLES)
    # everything else the two origins hold compared equal: only representation differs
    assert [r[:8] for r in rows] == [("tickets", PLANTED, "shadow", 1, "2024-07-15", "Semarang", "Closed", "ZiGY")], rows
    assert json.loads(rows[0][8]) == ["description"]
    checks = sql(target, "SELECT stage, compared, mismatched FROM migration_read_checks WHERE table_name = 'tickets' ORDER BY id")
    assert checks[0][2] == 1 and sum(c[2] for c in checks) == 1 and all(c[1] > 0 for c in checks)
    for table in ("incidents", "customers", "vendors"):  # every store compares equal
        page.evaluate("async (t) => await cut.list(t)", table)
    assert sql(target, "SELECT COUNT(*) FROM migration_mismatches WHERE table_name <> 'tickets'") == ((0,),)
    compared = dict(sql(target, "SELECT table_name, SUM(compared) FROM migration_read_checks GROUP BY table_name"))
    assert {t: int(compared[t]) for t in ("incidents", "customers", "vendors")} == {"incidents": 2, "customers": 2, "vendors": 2}
    from etl.cutover import status

    text = str(status(target))
    assert "tickets     shadow   2024-07-15, Semarang, Closed, ZiGY" in text and "fields: description" in text


def test_api_stopped_reads_fall_back_to_indexeddb_and_rollback_takes_effect_on_the_next_refresh(migrated, page, api):
    target, work = migrated
    set_stage(target, "live")
    assert refresh(page) == "live"
    assert read(page)[0] == MYSQL_TEXT
    api.stop()
    try:
        assert refresh(page) == "off"
        assert read(page)[0] == IDB_TEXT
        fallback = [d for t, d in page.evaluate("seen") if t == "fallback"]
        assert fallback and "feature flags unavailable" in fallback[-1]["reason"]
    finally:
        api.start()
    assert refresh(page) == "live" and read(page)[0] == MYSQL_TEXT
    done = subprocess.run([sys.executable, "-m", "etl", "flags", "rollback", "--reason", "browser drill", "--mysql", target.uri],
                          cwd=ROOT, capture_output=True, text=True, timeout=300, env={**os.environ, "RUNTIME_DIR": str(work / "runtime")})
    assert done.returncode == 0, done.stderr
    assert page.evaluate("cut.stage.name") == "live"  # until the page refreshes its flags
    assert refresh(page) == "off"
    assert read(page) == (IDB_TEXT, [])
    assert page.evaluate("cut.flags.rollbackMode") is True


def test_etl_adapter_prints_the_module_with_the_stages_and_stores_filled_in(tmp_path):
    from etl import STORES

    done = subprocess.run([sys.executable, "-m", "etl", "adapter", "--out", str(tmp_path / "adapter.js")], cwd=ROOT,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0 and "wrote the cutover adapter" in done.stdout, done.stderr
    text = (tmp_path / "adapter.js").read_text()
    assert text == adapter_source() and "__ETL_CUTOVER_CONFIG__ " not in text.split("const CONFIG = ", 1)[1][:30]
    config = json.loads(text.split("const CONFIG = ", 1)[1].split(";\n", 1)[0])
    assert [s["name"] for s in config["stages"]] == [s.name for s in STAGES]
    assert config["stores"]["uploadSessions"]["path"] == "/api/upload-sessions"
    assert [c["name"] for c in config["stores"]["tickets"]["columns"]] == list(STORES[0].column_names)
    subprocess.run(["node", "--check", str(tmp_path / "adapter.js")], check=True)
