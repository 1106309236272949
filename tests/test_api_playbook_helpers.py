"""The API helpers the playbook calls: `background` (etl serve in a thread for a run), the API smoke
test, and the dual-read step's check of API reads against the export. Real MariaDB/MySQL, real
uvicorn servers, the real chain (export -> transform -> load), and node for the adapter's rules.
"""

from __future__ import annotations

import dataclasses
import importlib.util
import json
import shutil
import socket
import subprocess
from pathlib import Path

import httpx
import pytest

from api_helpers import loaded_database
from etl import STORES, export, load_settings, store, transform
from etl.api.serve import background, serving
from etl.api.smoke import smoke_test
from etl.api.verify import CLIENT_ID, verify_reads
from etl.core.errors import ApiError
from etl.cutover.adapter import adapter_source, differing_fields, normalize, same
from etl.cutover.guards import Move, Thresholds, consistency
from etl.cutover.stages import stage

ROOT = Path(__file__).resolve().parent.parent
SAMPLE = ROOT / "data" / "sample-export"
_spec = importlib.util.spec_from_file_location("make_forms", ROOT / "tests" / "fixtures" / "forms" / "make_forms.py")
make_forms = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(make_forms)
FORMS_PLANTED = "0c86374e-5506-4891-b4f4-209342b8b6ad"  # as tests/test_cutover_browser.py plants it


def sql(target, statement, *args):
    with target.connect() as conn, conn.cursor() as cur:
        cur.execute(statement, args or None)
        return cur.fetchall()


def port_is_free(port: int) -> bool:
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def settings_for(tmp_path, token=None):
    s = load_settings(root=tmp_path, runtime_dir=str(tmp_path / "runtime"))
    return dataclasses.replace(s, api_token=token, api_read_token=None)


@pytest.fixture(scope="module")
def sample(tmp_path_factory):
    """The committed sample through the real chain: (export folder, stage folder)."""
    work = tmp_path_factory.mktemp("sample")
    export(SAMPLE, work / "export")
    transform(work / "export", work / "stage")
    return work / "export", work / "stage"


@pytest.fixture
def loaded(mysql_server, sample):
    base, _ = mysql_server
    with loaded_database(base, sample[1]) as target:
        yield target


# ---------------------------------------------------------------- background


def test_background_serves_with_a_random_token_and_frees_its_port(mysql_server, schema_target, tmp_path, capfd):
    with background(settings_for(tmp_path), schema_target) as (url, token):
        port = int(url.rsplit(":", 1)[1])
        assert url.startswith("http://127.0.0.1:") and not port_is_free(port)
        assert len(token) >= 32
        assert httpx.get(f"{url}/health").json()["database"] == "connected"
        assert httpx.get(f"{url}/api/vendors", headers={"Authorization": f"Bearer {token}"}).status_code == 200
        assert httpx.get(f"{url}/api/vendors", headers={"Authorization": "Bearer wrong"}).status_code == 401
    assert port_is_free(port)
    with pytest.raises(httpx.ConnectError):
        httpx.get(f"{url}/health", timeout=2)
    with background(settings_for(tmp_path), schema_target) as (_, other):
        assert other != token  # made for each run
    out = capfd.readouterr()
    assert token not in out.out + out.err and other not in out.out + out.err


def test_background_uses_the_configured_token_and_port_and_stops_on_an_exception(schema_target, tmp_path):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with pytest.raises(RuntimeError, match="inside the block"):
        with background(settings_for(tmp_path, "configured-token-0123456789"), schema_target, port=port) as (url, token):
            assert url == f"http://127.0.0.1:{port}" and token == "configured-token-0123456789"
            assert httpx.get(f"{url}/api/vendors", headers={"Authorization": f"Bearer {token}"}).status_code == 200
            raise RuntimeError("inside the block")
    assert port_is_free(port)


def test_background_says_so_when_the_server_cannot_start(schema_target, tmp_path):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with pytest.raises(ApiError, match=f"127.0.0.1:{port} stopped while starting"):
            with background(settings_for(tmp_path), schema_target, port=port):
                pass


def test_serving_gives_up_after_its_time_limit():
    async def app(scope, receive, send):  # an ASGI app whose startup never ends
        if scope["type"] == "lifespan":
            import asyncio

            await asyncio.sleep(3)

    with pytest.raises(ApiError, match="did not accept connections within 0.5 s"):
        with serving(app, start_timeout=0.5):
            pass


# ---------------------------------------------------------------- smoke test


def _written(target) -> tuple:
    tables = [s.table for s in STORES] + ["migration_read_checks", "migration_mismatches"]
    return tuple(sql(target, f"CHECKSUM TABLE `{t}`")[0] + sql(target, f"SELECT COUNT(*) FROM `{t}`")[0] for t in tables)


def test_smoke_test_passes_on_the_loaded_sample_and_writes_nothing(loaded, tmp_path):
    before = _written(loaded)
    with background(settings_for(tmp_path), loaded) as (url, token):
        result = smoke_test(url, token)
        paths = set(httpx.get(f"{url}/openapi.json").json()["paths"])
    assert result.ok, str(result)
    checked = {e.path for e in result.endpoints}
    assert checked == paths  # every endpoint of the document, none from a list of our own
    by = {(e.method, e.path, e.check): e for e in result.endpoints}
    assert by[("GET", "/health", "read")].status == 200
    assert by[("GET", "/api/tickets", "read")].status == 200
    assert by[("GET", "/api/tickets", "no token")].status == 401
    assert by[("POST", "/api/tickets/bulk", "invalid input")].status == 422
    assert by[("DELETE", "/api/tickets/batch/{batch_id}", "invalid input")].status == 422
    assert by[("POST", "/api/migration/mismatches", "invalid input")].status == 422
    assert not result.skipped and all(e.ms >= 0 for e in result.endpoints)
    assert _written(loaded) == before
    text, plain = str(result), json.dumps(result.asdict())
    assert "ok" in text.splitlines()[-1] and token not in text and token not in plain
    assert plain and json.loads(plain)["ok"] is True


def test_read_by_key(loaded, tmp_path):
    keys = [k for (k,) in sql(loaded, "SELECT id FROM tickets ORDER BY id LIMIT 3")]
    with background(settings_for(tmp_path), loaded) as (url, token):
        with httpx.Client(base_url=url, headers={"Authorization": f"Bearer {token}"}) as c:
            got = c.get("/api/tickets/by-key", params=[("key", k) for k in [*keys, "no-such-key", keys[0]]]).json()
            assert [r["id"] for r in got["data"]] == keys and got["success"] is True
            assert set(got["data"][0]) >= set(store("tickets").column_names)
            assert [r["id"] for r in c.get("/api/vendors/by-key", params={"key": "2"}).json()["data"]] == [2]
            bad = c.get("/api/vendors/by-key", params={"key": "two"})
            assert bad.status_code == 422 and "integer" in bad.json()["error"]
            assert c.get("/api/tickets/by-key", params=[("key", str(i)) for i in range(201)]).status_code == 400
            assert c.get("/api/tickets/by-key").status_code == 422
        assert httpx.get(f"{url}/api/tickets/by-key", params={"key": keys[0]}).status_code == 401


def test_smoke_test_names_a_broken_endpoint(mysql_server, sample, tmp_path):
    base, _ = mysql_server
    with loaded_database(base, sample[1]) as target:
        sql(target, "DROP TABLE vendors")
        with background(settings_for(tmp_path), target) as (url, token):
            result = smoke_test(url, token)
    assert not result.ok
    failed = {(e.method, e.path) for e in result.failed}
    assert ("GET", "/api/vendors") in failed and ("GET", "/api/tickets") not in failed
    vendors = next(e for e in result.failed if e.path == "/api/vendors")
    assert vendors.status >= 500 and f"HTTP {vendors.status}" in vendors.why
    text = str(result)
    assert f"FAILED GET /api/vendors (read): {vendors.status}" in text and token not in text
    assert "failed" in text.splitlines()[-1]


def test_smoke_test_refuses_without_an_api():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with pytest.raises(ApiError, match="no OpenAPI document") as e:
        smoke_test(f"http://127.0.0.1:{port}", "secret-token-xyz", timeout=2)
    assert "secret-token-xyz" not in str(e.value)


# ---------------------------------------------------------------- verify reads


def test_verify_reads_passes_on_the_migrated_sample_and_the_guard_counts_it(loaded, sample, tmp_path):
    settings = settings_for(tmp_path)
    with background(settings, loaded) as (url, token):
        result = verify_reads(url, token, sample[0], stage_name="shadow", per_bucket=2)
        summary = httpx.get(f"{url}/api/migration/mismatches", headers={"Authorization": f"Bearer {token}"}).json()
    assert result.ok, str(result)
    by = {s.table: s for s in result.stores}
    assert set(by) == {s.table for s in STORES}
    assert all(s.compared > 0 and s.mismatched == s.missing == 0 for s in by.values())
    assert by["tickets"].buckets > 100 and by["tickets"].compared <= 2 * by["tickets"].buckets
    assert result.reports == len(STORES) and token not in str(result)
    # what was compared is on record as etl-migrate's read checks, and the guard counts it
    checks = sql(loaded, "SELECT client_id, stage, table_name, compared, mismatched FROM migration_read_checks")
    assert {(c, st) for c, st, *_ in checks} == {(CLIENT_ID, "shadow")}
    assert {t: (int(n), int(x)) for _, _, t, n, x in checks} == {t: (s.compared, 0) for t, s in by.items()}
    assert {t["table"] for t in summary["tables"]} == set(by)
    move = Move(settings, loaded, stage("shadow"), stage("live"), Thresholds(min_compared=1))
    guard = consistency(move)
    assert guard.ok and guard.figures["compared"] == sum(s.compared for s in by.values()) and guard.figures["mismatched"] == 0
    # the same seed samples the same records; another seed others
    with background(settings, loaded) as (url, token):
        again = verify_reads(url, token, sample[0], stage_name="shadow", per_bucket=2)
        other = verify_reads(url, token, sample[0], stage_name="shadow", per_bucket=1, seed=5)
    assert [s.compared for s in again.stores] == [s.compared for s in result.stores]
    assert sum(s.compared for s in other.stores) < sum(s.compared for s in result.stores)


def test_verify_reads_draws_at_most_max_per_store_across_the_buckets(loaded, sample, tmp_path):
    """The playbook's cap (steps 11, 12): at most N records per store, the first N of the per-bucket draw in
    hash order, so a subset of the uncapped draw spread over its buckets; the same draw is read once."""
    from etl.api import verify
    from etl.core import duck
    from etl.source.folder import ExportFolder

    settings = settings_for(tmp_path)
    with background(settings, loaded) as (url, token):
        capped = verify_reads(url, token, sample[0], stage_name="shadow", per_bucket=1, max_per_store=40)
    by = {s.table: s for s in capped.stores}
    assert capped.ok, str(capped)
    assert by["tickets"].compared == 40 < by["tickets"].buckets and all(s.sampled <= 40 for s in by.values())
    tickets, export, con = store("tickets"), ExportFolder.open(sample[0]), duck.connect()
    full = verify._sample(con, export, tickets, 1, 0)[0]
    part = verify._sample(con, export, tickets, 1, 0, 40)[0]
    assert part.height == 40 and set(part["__key"]) < set(full["__key"])
    assert verify._sample(con, export, tickets, 1, 0, 40)[0] is part  # read once per process
    with pytest.raises(ApiError, match="max_per_store"):
        verify_reads(url, token, sample[0], stage_name="shadow", max_per_store=0)


def test_verify_reads_names_a_planted_difference_and_a_missing_record(loaded, sample, tmp_path):
    ticket = sql(loaded, "SELECT id, status FROM tickets ORDER BY id LIMIT 1")[0]
    customer = sql(loaded, "SELECT id FROM customers ORDER BY id LIMIT 1")[0][0]
    sql(loaded, "UPDATE tickets SET status = 'Planted' WHERE id = %s", ticket[0])
    sql(loaded, "DELETE FROM customers WHERE id = %s", customer)
    settings = settings_for(tmp_path)
    with background(settings, loaded) as (url, token):
        result = verify_reads(url, token, sample[0], stage_name="live", per_bucket=1000)  # every record
    assert not result.ok
    by = {s.table: s for s in result.stores}
    assert (by["tickets"].mismatched, by["tickets"].missing, by["tickets"].compared) == (1, 0, 300)
    assert (by["customers"].mismatched, by["customers"].missing) == (0, 1)
    assert all(s.ok for t, s in by.items() if t not in ("tickets", "customers"))
    planted = next(m for m in result.mismatches if m.store == "tickets")
    assert (planted.key, planted.field) == (ticket[0], "status")
    assert planted.export == json.dumps(ticket[1]) and planted.api == '"Planted"'
    assert any(m.store == "customers" and m.key == customer and m.field == "(missing in mysql)" for m in result.mismatches)
    text = str(result)
    assert f"tickets {ticket[0]}: status: export" in text and "FAILED" in text
    rows = sql(loaded, "SELECT table_name, record_key, stage, client_id, fields FROM migration_mismatches ORDER BY table_name")
    assert [(t, k, s, c, json.loads(f)) for t, k, s, c, f in rows] == [
        ("customers", customer, "live", CLIENT_ID, ["(missing in mysql)"]), ("tickets", ticket[0], "live", CLIENT_ID, ["status"])]
    guard = consistency(Move(settings, loaded, stage("live"), stage("rampdown"), Thresholds(min_compared=1, max_mismatch_rate=0.0)))
    assert not guard.ok and guard.figures["mismatched"] == 2


def _export_with_tickets(tmp_path: Path, texts: list[str]) -> None:
    """The sample with these records' JSON texts added to its tickets, exported to tmp_path/export."""
    src = tmp_path / "src"
    shutil.copytree(SAMPLE, src)
    tickets = (src / "tickets.json").read_text().rstrip()
    (src / "tickets.json").write_text(tickets[:-1] + "".join(", " + t for t in texts) + "]")
    summary = json.loads((src / "export-summary.json").read_text())
    summary["counts"]["tickets"] += len(texts)
    (src / "export-summary.json").write_text(json.dumps(summary))
    export(src, tmp_path / "export")


def _verified_tickets(mysql_server, tmp_path: Path):
    """(verify_reads' result, its tickets' figures) for tmp_path/export, its stage loaded and served."""
    base, _ = mysql_server
    with loaded_database(base, tmp_path / "stage") as target, background(settings_for(tmp_path), target) as (url, token):
        result = verify_reads(url, token, tmp_path / "export", stage_name="shadow", per_bucket=1000)
    return result, next(s for s in result.stores if s.table == "tickets")


def test_records_the_transform_rejected_are_counted_apart(mysql_server, tmp_path):
    first = json.loads((SAMPLE / "tickets.json").read_text())[0]
    bad = {**first, "id": "rejected-by-transform", "openTime": "not a time"}
    older = {**first, "name": "an older upload of the same key", "uploadTimestamp": first["uploadTimestamp"] - 1000}
    _export_with_tickets(tmp_path, [json.dumps(bad), json.dumps(older)])
    done = transform(tmp_path / "export", tmp_path / "stage")
    counts = done.counts["tickets"]
    assert (counts.records_in, counts.rejected, counts.duplicates) == (302, 2, 1)  # a bad time, a duplicate key's loser
    result, tickets_reads = _verified_tickets(mysql_server, tmp_path)
    assert result.ok, str(result)
    assert (tickets_reads.records, tickets_reads.rejected, tickets_reads.compared, tickets_reads.missing) == (302, 2, 300, 0)


def test_a_file_the_fast_read_refuses_is_drawn_from_by_the_careful_read(mysql_server, tmp_path):
    """verify_reads draws its sample with the transform's fast read; a file DuckDB refuses whole that
    way (here a record repeats a property) is read carefully instead, and its record is counted as
    the transform's reject, as the transform counts it."""
    import duckdb

    from etl.core import duck
    from etl.source.folder import ExportFolder
    from etl.stage.records import typed_records_sql

    first = json.loads((SAMPLE / "tickets.json").read_text())[0]
    _export_with_tickets(tmp_path, [json.dumps({**first, "id": "property-twice"})[:-1] + ', "name": "the same property again"}'])
    folder = ExportFolder.open(tmp_path / "export")
    with pytest.raises(duckdb.Error):  # the fast read refuses the file: the careful read is what is tested
        duck.connect().sql(f"SELECT * FROM ({typed_records_sql(store('tickets'), 'array')})",
                           params=[[str(p) for p in folder.files(store("tickets"))]]).arrow()
    assert transform(tmp_path / "export", tmp_path / "stage").counts["tickets"].rejected == 1
    result, reads = _verified_tickets(mysql_server, tmp_path)
    assert result.ok, str(result)
    assert (reads.records, reads.rejected, reads.compared, reads.missing) == (301, 1, 300, 0)


def test_verify_reads_agrees_with_the_browser_adapter_on_the_export_forms(mysql_server, tmp_path):
    """tests/test_cutover_browser.py runs the JavaScript adapter over this export, loaded, with one
    planted change: only it differs. The Python rules must come to the same verdict."""
    make_forms.write_folder(tmp_path / "forms")
    export(tmp_path / "forms", tmp_path / "export")
    transform(tmp_path / "export", tmp_path / "stage")
    base, _ = mysql_server
    with loaded_database(base, tmp_path / "stage") as target:
        sql(target, "UPDATE tickets SET description = 'changed in MySQL' WHERE id = %s", FORMS_PLANTED)
        with background(settings_for(tmp_path), target) as (url, token):
            result = verify_reads(url, token, tmp_path / "export", stage_name="shadow", per_bucket=1000)
    assert [(m.store, m.key, m.field) for m in result.mismatches] == [("tickets", FORMS_PLANTED, "description")], str(result)
    assert sum(s.compared for s in result.stores) == sum(s.records - s.rejected for s in result.stores)


# ---------------------------------------------------------------- the adapter's rules: Python and JavaScript agree

D = 1721064900000  # 2024-07-15T17:35:00.000Z
TRICKY = {
    "datetime": ["2024-07-15T17:35:00", "2024-07-15 17:35:00", "2024-07-15T17:35:00.000Z", "2024-07-15T17:35:00Z",
                 "2024-07-16T00:35:00+07:00", "2024-07-15T17:35:00.123456Z", "2024-07-15", "2024-07-15T17:35",
                 D, D + 0.5, {"$date": D}, "", "  ", "garbage", "2024-02-30T00:00:00Z", "2024-07-15T24:00:00Z",
                 "2024-07-15T17:35:00+0700", "+002024-07-15T17:35:00Z", None, True],
    "epoch_ms": [D, str(D), "2024-07-15T17:35:00.000Z", {"$date": D}, ""],
    "bool": [True, False, 1, 0, "1", "true", "True", "0", 1.0, 2, "", None, {"$date": D}],
    "double": ["12", " 12 ", "\u00a012\n", "0x10", "0b11", "1e3", ".5", "5.", "abc", True, False, "Infinity", "-Infinity",
               5, 5.5, "", [], [7], [1, 2], "1_000", "nan", {"$date": D}, 66.66666666666667],
    "int": ["7", 7, 7.0, "7.5", "-0"],
    "json": ['{"b":1,"a":[1,2.0]}', {"a": 1, "b": [True, None]}, "[1, 2]", "not json", '{"x": 1e400}', "NaN",
             '{"\uffff":1,"\U0001F600":2}', "12345678901234567890", '"text"', "0.1", '{"a":"\\ud800"}', [1.5e-7, 1e21, 100],
             '{"k": "tab\\tnew\\nline\\u001f"}', ""],
    "varchar": ["", "a ", 5, True, "ünïcode \U0001F600"],
    "text": [None, "", "x"],
}


def _node_normalize(cases: list[tuple[str, object]]) -> list:
    script = adapter_source() + """
const cases = JSON.parse(require("fs").readFileSync(0, "utf8"));
const revive = (v) => v && typeof v === "object" && !Array.isArray(v) && Object.keys(v).length === 1 && typeof v.$date === "number" ? new Date(v.$date) : v;
const out = cases.map(([kind, v]) => {
  const n = IdbCutover.normalize({ kind }, revive(v));
  return n !== null && typeof n === "object" ? { object: true } : n;
});
const pairs = [];
for (let i = 0; i < cases.length; i++) for (let j = 0; j < cases.length; j++)
  if (cases[i][0] === cases[j][0]) pairs.push(IdbCutover.normalize({ kind: cases[i][0] }, revive(cases[i][1])) === IdbCutover.normalize({ kind: cases[j][0] }, revive(structuredClone(cases[j][1]))));  // two origins: never one object
process.stdout.write(JSON.stringify({ out, pairs }));
"""
    if not shutil.which("node"):
        pytest.fail("node is missing: `make node-deps` needs it (apt-get install nodejs)", pytrace=False)
    done = subprocess.run(["node", "-e", script], input=json.dumps(cases), capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr[-2000:]
    return json.loads(done.stdout)


def test_python_and_the_javascript_adapter_normalize_tricky_values_alike():
    cases = [(kind, v) for kind, values in TRICKY.items() for v in values]
    js = _node_normalize(cases)
    from etl.cutover.adapter import _Object, js_value

    py = []
    for kind, v in cases:
        n = normalize(kind, js_value(v))
        py.append({"object": True} if isinstance(n, _Object) else n)
    for (kind, v), a, b in zip(cases, py, js["out"]):
        numbers = all(isinstance(x, (int, float)) and not isinstance(x, bool) for x in (a, b))
        assert a == b and (type(a) is type(b) or numbers), (kind, v, a, b)  # JSON: 5.0 is read back as 5
    pairs = [same(normalize(ki, js_value(vi)), normalize(kj, js_value(vj)))
             for ki, vi in cases for kj, vj in cases if ki == kj]
    assert pairs == js["pairs"]
    assert sum(pairs) > len(cases)  # some different spellings are the same value


def test_differing_fields_follows_the_adapter():
    tickets = store("tickets")
    record = {"id": "t-1", "openTime": "2024-07-15T17:35:00", "duration": {"rawHours": "1.5", "formatted": "1:30:00"},
              "status": "Closed", "uploadTimestamp": D, "uploadSessionId": None, "closeTime": ""}
    row = {c.name: None for c in tickets.columns}
    row.update(id="t-1", open_time="2024-07-15T17:35:00.000Z", duration_raw_hours=1.5, duration_formatted="1:30:00",
               status="Closed", upload_timestamp=D, upload_session_id="rebuilt-session", sla_4h=1)
    assert differing_fields(tickets, record, row) == []  # representation only; a filled session; derived columns
    row.update(status="Closed ", duration_raw_hours=1.25)
    assert differing_fields(tickets, record, row) == ["duration_raw_hours", "status"]


def test_a_session_the_load_finalized_is_expected_finalized_not_as_the_browser_held_it(mysql_server, tmp_path):
    """A browser's session says 270 records, 269 succeeded, still processing; the rows that carry its id
    are 266. The load finalizes it (completed, 266 and 266: etl.stage.sessions), so the API answering
    that is right, and a difference only when the API answers something else."""
    src = tmp_path / "src"
    shutil.copytree(SAMPLE, src)
    sessions = json.loads((src / "uploadSessions.json").read_text())
    carried = next(s for s in sessions if s["id"] == "batch_1756647255195_hf8klpp3y")  # 266 tickets carry it
    carried.update(recordCount=270, successCount=269, status="processing")
    (src / "uploadSessions.json").write_text(json.dumps(sessions))
    export(src, tmp_path / "export")
    transform(tmp_path / "export", tmp_path / "stage")
    base, _ = mysql_server
    with loaded_database(base, tmp_path / "stage") as target, background(settings_for(tmp_path), target) as (url, token):
        assert sql(target, "SELECT record_count, success_count, status FROM upload_sessions WHERE id = %s",
                   carried["id"]) == ((266, 266, "completed"),)
        plain = verify_reads(url, token, tmp_path / "export", stage_name="shadow", per_bucket=1000)
        finalized = verify_reads(url, token, tmp_path / "export", stage_name="shadow", per_bucket=1000,
                                 stage_dir=tmp_path / "stage")
        sql(target, "UPDATE upload_sessions SET record_count = 265 WHERE id = %s", carried["id"])
        wrong = verify_reads(url, token, tmp_path / "export", stage_name="shadow", per_bucket=1000,
                             stage_dir=tmp_path / "stage")
    assert {(m.key, m.field) for m in plain.mismatches} == {(carried["id"], f) for f in ("record_count", "success_count", "status")}
    assert finalized.ok, str(finalized)
    assert [(m.key, m.field, m.api) for m in wrong.mismatches] == [(carried["id"], "record_count", "265")]
