"""`etl serve` on a real server: rows equal to SQL for every filter and page, the recorded backend
shapes, auth, bad input as 4xx, the bulk upsert, the mismatch intake, flags caching, status, metrics."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import uuid
from datetime import datetime
from decimal import Decimal
from pathlib import Path

import pytest

from api_helpers import READ_TOKEN, client, free_port, loaded_database, running_api
from etl import export, load_settings, store, transform
from etl.api import data

ROOT = Path(__file__).resolve().parent.parent
SAMPLE_EXPORT = ROOT / "data" / "sample-export"
BACKEND = json.loads((ROOT / "tests" / "fixtures" / "backend_api.json").read_text())


@pytest.fixture(scope="module")
def stage(tmp_path_factory):
    out = tmp_path_factory.mktemp("api")
    export(SAMPLE_EXPORT, out / "export")
    transform(out / "export", out / "stage")
    return out / "stage"


@pytest.fixture(scope="module")
def loaded(mysql_server, stage):
    with loaded_database(mysql_server[0], stage) as target:
        yield target


@pytest.fixture(scope="module")
def api(loaded, tmp_path_factory):
    runtime = tmp_path_factory.mktemp("api-runtime")
    with running_api(loaded, runtime_dir=runtime) as (url, app):
        with client(url) as c:
            yield c, url, app, runtime


def json_value(v):
    """A value as mysql2 puts it in the backend's JSON, computed independently of etl.api.data."""
    if isinstance(v, datetime):
        return v.strftime("%Y-%m-%dT%H:%M:%S.") + f"{v.microsecond // 1000:03d}Z"
    if isinstance(v, Decimal):
        return str(v)
    return v


def sql_rows(target, query, args=()):
    with target.connect() as conn, conn.cursor() as cur:
        cur.execute(query, args)
        names = [d[0] for d in cur.description]
        return [{n: json_value(v) for n, v in zip(names, row)} for row in cur.fetchall()]


def like(text):
    return "%" + text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"


# ---------------------------------------------------------------- rows equal to SQL


def test_ticket_pages_equal_sql_for_filters_search_and_paging(api, loaded):
    c, *_ = api
    order = " ORDER BY open_time DESC, id DESC"
    everything = sql_rows(loaded, "SELECT * FROM tickets" + order)
    assert len(everything) == 300 and "row_digest" not in everything[0]
    sample = everything[7]
    cases = [
        ({}, "", ()),
        ({"status": sample["status"]}, " WHERE status = %s", (sample["status"],)),
        ({"category": sample["category"], "cabang": sample["cabang"]}, " WHERE category = %s AND cabang = %s",
         (sample["category"], sample["cabang"])),
        ({"search": sample["name"][:4]}, " WHERE (name LIKE %s OR customer_id LIKE %s OR description LIKE %s)",
         (like(sample["name"][:4]),) * 3),
        ({"search": "lambat"}, " WHERE (name LIKE %s OR customer_id LIKE %s OR description LIKE %s)", (like("lambat"),) * 3),
        ({"search": "100%_"}, " WHERE (name LIKE %s OR customer_id LIKE %s OR description LIKE %s)", (like("100%_"),) * 3),
    ]
    for params, where, args in cases:
        expected = sql_rows(loaded, "SELECT * FROM tickets" + where + order, args)
        body = c.get("/api/tickets", params=params).json()  # the default page of 50,000 holds them all
        assert body["data"] == expected, params
        assert body["pagination"]["total"] == len(expected)
        for page, limit in ((1, 7), (3, 7), (43, 7), (2, 100)):
            got = c.get("/api/tickets", params={**params, "page": page, "limit": limit}).json()
            assert got["data"] == expected[(page - 1) * limit: page * limit], (params, page)
            assert got["pagination"] == {**got["pagination"], "page": page, "limit": limit, "total": len(expected),
                                         "totalPages": -(-len(expected) // limit)}
    assert any(len(sql_rows(loaded, "SELECT * FROM tickets" + w + order, a)) not in (0, 300) for _, w, a in cases[1:])


@pytest.mark.parametrize("spec", data.LISTS, ids=lambda s: s.table)
def test_keyset_walk_gives_every_row_once_in_the_offset_order(api, loaded, spec):
    c, *_ = api
    st = store(spec.table)
    direction = "DESC" if spec.descending else "ASC"
    cols = ([spec.order] if spec.order else []) + [st.primary_key[0]]
    expected = sql_rows(loaded, f"SELECT * FROM {spec.table} ORDER BY " + ", ".join(f"{c_} {direction}" for c_ in cols))
    seen, after, pages = [], "", 0
    while after is not None and pages < 1000:
        body = c.get(spec.path, params={"limit": 4, "after": after}).json()
        seen += body["data"]
        after = body["pagination"]["nextCursor"]
        assert body["pagination"]["total"] is None  # no COUNT(*) on the keyset path
        pages += 1
    assert seen == expected and len(expected) > 4
    offset = c.get(spec.path).json()["data"]
    assert offset == expected


def test_filters_of_other_lists_equal_sql(api, loaded):
    c, *_ = api
    for path, table, col, order in (("/api/incidents", "incidents", "status", "start_time DESC, id DESC"),
                                    ("/api/incidents", "incidents", "priority", "start_time DESC, id DESC"),
                                    ("/api/customers", "customers", "jenis_klien", "id ASC"),
                                    ("/api/upload-sessions", "upload_sessions", "data_type", "id DESC")):
        value = sql_rows(loaded, f"SELECT {col} FROM {table} WHERE {col} IS NOT NULL LIMIT 1")[0][col]
        expected = sql_rows(loaded, f"SELECT * FROM {table} WHERE {col} = %s ORDER BY {order}", (value,))
        assert c.get(path, params={col: value}).json()["data"] == expected
        assert 0 < len(expected) < sql_rows(loaded, f"SELECT COUNT(*) n FROM {table}")[0]["n"] or col == "data_type"


def test_years_and_incident_stats_equal_sql(api, loaded):
    c, *_ = api
    years = [r["y"] for r in sql_rows(loaded, "SELECT DISTINCT YEAR(open_time) y FROM tickets ORDER BY y DESC")]
    assert c.get("/api/tickets/years").json() == {"success": True, "data": years}
    stats = c.get("/api/incidents/stats").json()["data"]
    assert stats["total"] == 75
    by_status = sql_rows(loaded, "SELECT status, COUNT(*) count FROM incidents GROUP BY status")
    assert sorted(map(tuple, (d.items() for d in stats["byStatus"]))) == sorted(map(tuple, (d.items() for d in by_status)))
    assert sum(m["count"] for m in stats["byMonth"]) == 75
    avg = sql_rows(loaded, "SELECT AVG(duration_min) a FROM incidents")[0]["a"]
    assert isinstance(stats["averages"]["durationMin"], float)  # a number: the UI adds them
    assert abs(stats["averages"]["durationMin"] - float(avg)) < 1e-6


def test_shapes_match_the_recorded_backend_description(api):
    c, *_ = api
    for ep in BACKEND["endpoints"]:
        if ep["method"] != "GET":
            continue
        body = c.get(ep["path"]).json()
        assert set(ep["response"]) <= set(body), ep["path"]
        for key, inner in ep["response"].items():
            if isinstance(inner, dict):
                assert set(inner) <= set(body[key]), (ep["path"], key)
        if "table" in ep:
            st = store(ep["table"])
            assert list(body["data"][0]) == [*st.column_names, *(m.name for m in st.managed if m.name != "row_digest")]
            assert body["pagination"]["limit"] == ep["default_limit"]
    # Every recorded path is served (the backend-only login aside).
    served = set(c.get("/openapi.json").json()["paths"])
    assert {ep["path"] for ep in BACKEND["endpoints"] if not ep.get("backend_only")} <= served


# ---------------------------------------------------------------- auth and bad input


def test_auth_401_403(api):
    _, url, *_ = api
    with client(url, None) as anon, client(url, READ_TOKEN) as reader, client(url, "wrong-token") as wrong:
        assert anon.get("/health").status_code == 200  # open for load balancers
        for path in ("/api/tickets", "/api/feature-flags", "/metrics", "/api/migration/status"):
            r = anon.get(path)
            assert r.status_code == 401 and r.headers["www-authenticate"] == "Bearer", path
            assert wrong.get(path).status_code == 401
            assert reader.get(path).status_code == 200
        r = reader.post("/api/tickets/bulk", json={"records": []})
        assert r.status_code == 403 and "read-only" in r.json()["error"]
        assert reader.delete("/api/tickets/batch/x").status_code == 403
        assert anon.post("/api/tickets/bulk", json={"records": []}).status_code == 401
        # Browsers hold the read token and report mismatches with it.
        report = {"clientId": "b1", "stage": "dual-read", "table": "tickets", "compared": 0, "mismatches": []}
        assert reader.post("/api/migration/mismatches", json=report).status_code == 202
        assert anon.post("/api/migration/mismatches", json=report).status_code == 401


@pytest.mark.parametrize("method,path,kw,status", [
    ("get", "/api/tickets", {"params": {"page": -1}}, 422),
    ("get", "/api/tickets", {"params": {"page": 0}}, 422),
    ("get", "/api/tickets", {"params": {"limit": 10_000_000}}, 422),
    ("get", "/api/tickets", {"params": {"limit": "many"}}, 422),
    ("get", "/api/tickets", {"params": {"after": "not-a-cursor"}}, 400),
    ("get", "/api/tickets", {"params": {"after": "WyJ4Il0"}}, 400),  # ["x"]: wrong arity
    ("get", "/api/tickets", {"params": {"search": "x" * 300}}, 422),
    ("get", "/api/vendors", {"params": {"search": "x"}}, 400),
    ("post", "/api/tickets/bulk", {"content": b"{not json", "headers": {"content-type": "application/json"}}, 422),
    ("post", "/api/tickets/bulk", {"json": [1, 2]}, 422),
    ("post", "/api/tickets/bulk", {"json": {"records": "x"}}, 422),
    ("post", "/api/tickets/bulk", {"json": {"records": [{"id": "a", "open_time": "2024-01-01T00:00:00Z", "nope": 1}]}}, 422),
    ("post", "/api/tickets/bulk", {"json": {"records": [{"id": "a", "open_time": "yesterday"}]}}, 422),
    ("post", "/api/tickets/bulk", {"json": {"records": [{"open_time": "2024-01-01T00:00:00Z"}]}}, 422),
    ("post", "/api/tickets/bulk", {"json": {"records": [{"id": "a", "open_time": None}]}}, 422),
    ("post", "/api/tickets/bulk", {"json": {"records": [{"id": "a", "open_time": "2024-01-01T00:00:00Z", "status": "x" * (store("tickets").column("status").length + 1)}]}}, 422),
    ("post", "/api/tickets/bulk", {"json": {"records": [{"id": "a", "open_time": "2024-01-01T00:00:00Z", "duration_raw_hours": "many"}]}}, 422),
    ("post", "/api/tickets/bulk", {"json": {"records": [{"id": "a"}] * 10_001}}, 413),
    ("post", "/api/tickets/bulk", {"content": b"x" * (17 << 20), "headers": {"content-type": "application/json"}}, 413),
    ("post", "/api/migration/mismatches", {"json": {"clientId": "c", "stage": "s", "table": "tickets", "compared": -1, "mismatches": []}}, 422),
    ("post", "/api/migration/mismatches", {"json": {"clientId": "c", "stage": "s", "table": "nope", "compared": 1, "mismatches": []}}, 422),
    ("post", "/api/migration/mismatches", {"json": {"clientId": "c", "stage": "s", "table": "tickets", "compared": 0,
                                                    "mismatches": [{"key": "k", "fields": [], "buckets": {}}]}}, 422),
    ("post", "/api/migration/mismatches", {"json": {"clientId": "c", "stage": "s", "table": "tickets", "compared": 5,
                                                    "mismatches": [{"key": "k", "fields": [], "buckets": {"day": "2025-02-30"}}]}}, 422),
    ("get", "/api/nope", {}, 404),
])
def test_bad_input_is_a_clear_4xx(api, method, path, kw, status):
    c, *_ = api
    r = getattr(c, method)(path, **kw)
    assert r.status_code == status, r.text[:300]
    assert r.json()["success"] is False and r.json()["error"]
    if path.endswith("/bulk") and status == 422 and "records" in kw.get("json", {}):
        assert "field" in r.json()["error"] or "record" in r.json()["error"] or "records" in r.json()["error"]


# ---------------------------------------------------------------- writes


def test_bulk_upsert_inserts_updates_and_is_all_or_nothing(schema_target):
    with running_api(schema_target, chunk_size=3) as (url, _), client(url) as c:
        recs = [{"id": f"b-{i}", "open_time": "2024-07-15T17:35:00.123Z", "name": f"n{i}", "duration_raw_hours": 1.5,
                 "sla_4h": True, "upload_timestamp": 1721064900123, "batch_id": "test-b"} for i in range(10)]
        r = c.post("/api/tickets/bulk", json={"records": recs})
        assert r.status_code == 200 and r.json() == {"success": True, "received": 10, "affectedRows": 10}
        rows = c.get("/api/tickets", params={"limit": 100}).json()["data"]
        assert {r_["id"]: (r_["name"], r_["open_time"], r_["duration_raw_hours"], r_["sla_4h"]) for r_ in rows}["b-3"] == \
            ("n3", "2024-07-15T17:35:00.123Z", 1.5, 1)
        recs[3]["name"] = "changed"
        r = c.post("/api/tickets/bulk", json={"records": recs})
        assert r.json()["affectedRows"] == 2  # one row updated (2), nine unchanged (0)
        bad = [*recs[:5], {"id": "b-new", "open_time": "2024-07-15T17:35:00Z", "name": "x" * 300}]
        assert c.post("/api/tickets/bulk", json={"records": bad}).status_code == 422
        ids = {r_["id"] for r_ in c.get("/api/tickets").json()["data"]}
        assert ids == {f"b-{i}" for i in range(10)}
        assert c.delete("/api/tickets/batch/test-b").json() == {"success": True, "deleted": 10}
        assert c.get("/api/tickets").json()["data"] == []


def test_mismatch_intake_and_summary(schema_target):
    with running_api(schema_target) as (url, _), client(url) as c:
        report = {"clientId": "browser-1", "stage": "dual-read", "table": "tickets", "compared": 120, "mismatches": [
            {"key": "t-1", "fields": ["name", "status"], "buckets": {"day": "2024-07-15", "cabang": "Semarang", "status": "Open", "category": None}},
            {"key": "t-2", "fields": ["name"], "buckets": {"day": "2024-07-15", "cabang": "Semarang", "status": "Open", "category": None}},
        ]}
        r = c.post("/api/migration/mismatches", json=report)
        assert r.status_code == 202 and r.json() == {"accepted": 2}
        report["mismatches"] = report["mismatches"][:1]
        assert c.post("/api/migration/mismatches", json=report).json() == {"accepted": 1}
        rows = sql_rows(schema_target, "SELECT record_key, times_seen, bucket_day, bucket_cabang, fields, client_id "
                                       "FROM migration_mismatches ORDER BY record_key")
        assert [(r_["record_key"], r_["times_seen"]) for r_ in rows] == [("t-1", 2), ("t-2", 1)]
        assert str(rows[0]["bucket_day"]) == "2024-07-15" and json.loads(rows[0]["fields"]) == ["name", "status"]
        checks = sql_rows(schema_target, "SELECT client_id, stage, table_name, compared, mismatched FROM migration_read_checks ORDER BY id")
        assert [(x["compared"], x["mismatched"]) for x in checks] == [(120, 2), (120, 1)]
        summary = c.get("/api/migration/mismatches").json()
        assert summary["tables"][0] | {"lastReport": None} == {
            "table": "tickets", "stage": "dual-read", "reports": 2, "compared": 240, "mismatched": 3,
            "rate": 3 / 240, "records": 2, "timesSeen": 3, "lastReport": None}
        assert summary["buckets"][0]["records"] == 2 and summary["buckets"][0]["cabang"] == "Semarang"
        assert c.get("/api/migration/mismatches", params={"stage": "other"}).json() == {"tables": [], "buckets": []}


# ---------------------------------------------------------------- control


def test_feature_flags_cacheable_with_etag(api, loaded):
    c, *_ = api
    r = c.get("/api/feature-flags")
    body = r.json()
    assert body["flags"]["dataSource"] == "indexeddb" and body["flags"]["migrationMode"] is False
    assert body["updatedAt"].endswith("Z")
    assert "max-age=" in r.headers["cache-control"] and r.headers["etag"]
    again = c.get("/api/feature-flags", headers={"If-None-Match": r.headers["etag"]})
    assert again.status_code == 304 and again.content == b""
    with loaded.connect() as conn, conn.cursor() as cur:
        cur.execute("UPDATE feature_flags SET value = '\"dual-read\"' WHERE name = 'dataSource'")
    try:
        changed = c.get("/api/feature-flags", headers={"If-None-Match": r.headers["etag"]})
        assert changed.status_code == 200 and changed.json()["flags"]["dataSource"] == "dual-read"
        assert changed.headers["etag"] != r.headers["etag"]
    finally:
        with loaded.connect() as conn, conn.cursor() as cur:
            cur.execute("UPDATE feature_flags SET value = '\"indexeddb\"' WHERE name = 'dataSource'")


def test_status_counts_and_last_parity_verdict(api, loaded, stage):
    from etl import parity_with_report

    c, _, _, runtime = api
    body = c.get("/api/migration/status").json()
    assert body["tables"] == {"tickets": 300, "incidents": 75, "customers": 100, "vendors": 5,
                              "upload_sessions": sql_rows(loaded, "SELECT COUNT(*) n FROM upload_sessions")[0]["n"]}
    assert body["parity"] is None and body["stage"] == {"dataSource": "indexeddb", "writeMode": "indexeddb-only"}
    parity_with_report(stage, loaded, runtime_dir=runtime)  # the reports status reads
    assert c.get("/api/migration/status").json()["parity"]["ok"] is True


def test_metrics_in_prometheus_text(api):
    from etl.api.metrics import parse

    c, *_ = api
    c.get("/api/tickets", params={"limit": 1})
    c.get("/api/tickets", params={"limit": 1, "status": "Open"})
    text = c.get("/metrics").text
    samples = parse(text)
    assert samples['etl_api_requests_total{method="GET",route="/api/tickets",status="200"}'] >= 2
    assert samples['etl_api_request_duration_seconds_count{method="GET",route="/api/tickets"}'] >= 2
    assert samples['etl_api_request_duration_seconds_bucket{method="GET",route="/api/tickets",le="+Inf"}'] >= 2
    for gauge in ("etl_api_pool_size", "etl_api_pool_checked_out", "etl_api_pool_overflow", "etl_api_pool_timeouts_total"):
        assert gauge in samples
    assert "# TYPE etl_api_request_duration_seconds histogram" in text
    c.get("/no/such/path/123")
    assert 'route="(unmatched)"' in c.get("/metrics").text  # a bounded set of series, whatever clients ask


# ---------------------------------------------------------------- the command


def test_etl_serve_command_serves_and_never_shows_the_token(loaded, tmp_path):
    port = free_port()
    secret = "s3cret-" + uuid.uuid4().hex
    env = {**os.environ, "API_TOKEN": secret, "MYSQL_URI": loaded.uri, "RUNTIME_DIR": str(tmp_path),
           "BASE_URL": f"http://127.0.0.1:{port}"}
    proc = subprocess.Popen([sys.executable, "-m", "etl", "serve"], cwd=ROOT, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 120  # a loaded shared machine imports slowly
        while True:
            try:
                with client(f"http://127.0.0.1:{port}", secret) as c:
                    assert c.get("/api/tickets", params={"limit": 1}).status_code == 200
                    assert c.get("/api/tickets", params={"page": -3}).status_code == 422
                    break
            except Exception:  # noqa: BLE001 - not listening yet
                assert proc.poll() is None and time.monotonic() < deadline, proc.stderr.read() if proc.poll() is not None else "timeout"
                time.sleep(0.2)
    finally:
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=30)
    assert f"127.0.0.1:{port}" in out and "requests" in out
    assert secret not in out + err
    assert secret not in repr(load_settings(api_token=secret)) and secret not in str(load_settings(api_token=secret).public())


def test_browsers_of_the_configured_origins_may_call_the_api_and_no_others(loaded, tmp_path):
    """The cutover adapter runs in the app's page, on another origin than `etl serve`: a browser
    sends a preflight for its bearer-token requests, and reads only what CORS lets it read."""
    import httpx

    from etl import load_settings
    from etl.api.serve import background

    app_origin = "https://helpdesk.example.com:8443"
    settings = load_settings(tmp_path, runtime_dir=str(tmp_path / "runtime"), api_token="cors-test-token-123456",
                             api_cors_origins="https://helpdesk.example.com:8443, http://localhost:5173")
    assert settings.api_cors_origins == (app_origin, "http://localhost:5173")
    with background(settings, loaded) as (url, token):
        preflight = {"Origin": app_origin, "Access-Control-Request-Method": "GET",
                     "Access-Control-Request-Headers": "authorization, if-none-match"}
        ok = httpx.options(f"{url}/api/feature-flags", headers=preflight)
        assert ok.status_code == 200 and ok.headers["access-control-allow-origin"] == app_origin
        assert "authorization" in ok.headers["access-control-allow-headers"].lower()
        got = httpx.get(f"{url}/api/feature-flags", headers={"Origin": app_origin, "Authorization": f"Bearer {token}"})
        assert got.status_code == 200 and got.headers["access-control-allow-origin"] == app_origin
        assert "etag" in got.headers["access-control-expose-headers"].lower()  # the adapter's flag polls read it
        other = httpx.options(f"{url}/api/feature-flags", headers={**preflight, "Origin": "https://evil.example"})
        assert "access-control-allow-origin" not in other.headers
        plain = httpx.get(f"{url}/api/feature-flags", headers={"Origin": "https://evil.example",
                                                                "Authorization": f"Bearer {token}"})
        assert "access-control-allow-origin" not in plain.headers  # the browser keeps the answer from the page
    with pytest.raises(Exception, match="not an origin"):
        load_settings(tmp_path, api_cors_origins="https://helpdesk.example.com/app")


def test_without_configured_origins_the_api_sends_no_cors_headers(api):
    c, _url, _app, _runtime = api
    got = c.get("/health", headers={"Origin": "https://helpdesk.example.com"})
    assert got.status_code == 200 and "access-control-allow-origin" not in got.headers


def test_rows_the_server_builds_as_json_equal_the_rows_parsed_in_python(schema_target):
    """The list and by-key reads build each row's JSON in SQL (data.row_json); the same rows parsed
    by PyMySQL and dumped by Python (the path taken where SQL cannot build them) give the same values:
    texts with quotes, backslashes, control characters, non-BMP characters and NULL, doubles of every
    kind, booleans, milliseconds."""
    texts = ['say "hi"', "back\\slash", "tab\there\nnewline\r\x01\x1f", "emoji 😀 and ü", "", None, "'single'", "</script>"]
    doubles = [0.1, 1e-7, 123456789.123, -2.5, 1e21, 0.30000000000000004, None, 5e-324, 1.7976931348623157e308]
    records = [{"id": f"j-{i:02d}", "open_time": f"2024-07-15T17:35:{i % 60:02d}.{i * 37 % 1000:03d}Z",
                "name": texts[i % len(texts)], "description": texts[(i + 3) % len(texts)],
                "duration_raw_hours": doubles[i % len(doubles)], "sla_4h": [True, False, None][i % 3],
                "upload_timestamp": 1721064900123 + i} for i in range(36)]
    with schema_target.connect() as conn:
        columns, rows = data.prepare_records(store("tickets"), records)
        with conn.cursor() as cur:
            cur.executemany(data.upsert_statement(store("tickets"), columns), rows)
        conn.commit()
    spec = next(s for s in data.LISTS if s.table == "tickets")
    with schema_target.connect(conv=data.CONVERSIONS) as conn:
        assert data.row_json(conn, "tickets") is not None
        built = [json.loads(data.dumps(data.list_rows(conn, spec, page=p, limit=10, after=None, filters={}, search=None)))
                 for p in (1, 2, 3, 4)]
        by_key = json.loads(data.dumps(data.rows_by_keys(conn, spec, [r["id"] for r in records])))
        assert isinstance(data.list_rows(conn, spec, page=1, limit=10, after=None, filters={}, search=None)["data"],
                          data.JsonArray)
        key = (conn.db, "tickets")
        kept, data._ROW_JSON[key] = data._ROW_JSON[key], None  # as for a type SQL does not build: parsed in Python
        try:
            parsed = [json.loads(data.dumps(data.list_rows(conn, spec, page=p, limit=10, after=None, filters={}, search=None)))
                      for p in (1, 2, 3, 4)]
            parsed_by_key = json.loads(data.dumps(data.rows_by_keys(conn, spec, [r["id"] for r in records])))
        finally:
            data._ROW_JSON[key] = kept
    assert built == parsed and by_key == parsed_by_key
    assert [len(b["data"]) for b in built] == [10, 10, 10, 6] and built[2]["pagination"]["nextCursor"]
    assert built[3]["pagination"]["nextCursor"] is None
    got = {r["id"]: r for b in built for r in b["data"]}
    for r in records:  # and both equal what was written
        assert (got[r["id"]]["name"], got[r["id"]]["duration_raw_hours"], got[r["id"]]["open_time"]) == \
            (r["name"], r["duration_raw_hours"], r["open_time"]), r["id"]


def test_a_column_dropped_while_serving_is_read_again_not_an_error(mysql_target):
    """The JSON rows' column list is read once per table (data.row_json); a column dropped since
    (an unknown column to the server) makes it read the columns again, once."""
    import pymysql

    with mysql_target.connect(conv=data.CONVERSIONS) as conn, conn.cursor(pymysql.cursors.DictCursor) as cur:
        cur.execute("CREATE TABLE shrinking (id INT PRIMARY KEY, a VARCHAR(5), b INT)")
        cur.execute("INSERT INTO shrinking VALUES (1, 'x', 2)")
        rows, n, _ = data._fetch_rows(cur, "shrinking", " ORDER BY id", [], [])
        assert (json.loads(rows), n) == ([{"id": 1, "a": "x", "b": 2}], 1)
        cur.execute("ALTER TABLE shrinking DROP COLUMN b")
        rows, n, _ = data._fetch_rows(cur, "shrinking", " ORDER BY id", [], [])
        assert isinstance(rows, data.JsonArray) and json.loads(rows) == [{"id": 1, "a": "x"}]
        with pytest.raises(pymysql.err.OperationalError):  # an unknown column of the query itself: raised, not retried forever
            data._fetch_rows(cur, "shrinking", " ORDER BY nope", [], [])
