"""The migrated database runs the app's own backend (Express + mysql2): its statements, on a real
server, against a freshly migrated sample (sample -> export -> transform -> load).

The SQL below is written as the backend sends it (../shared/domain.md, "After the cutover"):
mysql2's `query` with `?` placeholders, which the driver fills in on the client side, as
PyMySQL does with `%s`. `_run` only swaps the placeholder spelling. The connection returns
DECIMAL as text, as mysql2 does, so a number column that comes back as a str fails here.
"""

from __future__ import annotations

import subprocess
import uuid
from datetime import datetime
from pathlib import Path

import bcrypt
import polars as pl
import pymysql
import pytest
from pymysql.constants import FIELD_TYPE
from typer.testing import CliRunner

from etl import STORES, MySQLTarget, apply_schema, load, parity_with_report as parity, read_stage, store
from etl.cli import app
from etl.mysql.users import PASSWORD_ENV, ROLES, UserError, add_user, read_password

from load_helpers import staged_sample

ROOT = Path(__file__).resolve().parent.parent
TICKETS, INCIDENTS, CUSTOMERS = store("tickets"), store("incidents"), store("customers")
MINUTES = [c.name for c in INCIDENTS.columns if c.name.endswith("_min")]
HOURS = [c.name for c in TICKETS.columns if c.name.endswith("_raw_hours")]


def _mysql2_like(target: MySQLTarget) -> pymysql.connections.Connection:
    """A connection that returns DECIMAL as text, as mysql2 does (PyMySQL's default makes Decimal)."""
    conv = dict(pymysql.converters.conversions)
    for t in (FIELD_TYPE.DECIMAL, FIELD_TYPE.NEWDECIMAL):
        conv.pop(t, None)
    conn = pymysql.connect(host=target.host, port=target.port, user=target.user, password=target.password,
                           database=target.database, charset="utf8mb4", autocommit=True, conv=conv)
    with conn.cursor() as cur:
        cur.execute("SET time_zone = '+00:00'")  # the backend runs with TZ=UTC (README)
    return conn


def _run(conn, sql: str, params: tuple = ()) -> list[dict]:
    with conn.cursor(pymysql.cursors.DictCursor) as cur:
        cur.execute(sql.replace("?", "%s"), params) if params else cur.execute(sql)
        return list(cur.fetchall())


def _fresh(base: MySQLTarget) -> MySQLTarget:
    return MySQLTarget(base.host, base.port, base.user, base.password, f"t_{uuid.uuid4().hex[:12]}", base.unix_socket)


def _drop(base: MySQLTarget, target: MySQLTarget) -> None:
    with base.connect(database=False) as conn, conn.cursor() as cur:
        cur.execute(f"DROP DATABASE IF EXISTS `{target.database}`")


@pytest.fixture(scope="module")
def stage(tmp_path_factory) -> Path:
    return staged_sample(tmp_path_factory.mktemp("backend"), 400)


@pytest.fixture(scope="module")
def migrated(mysql_server, stage):
    base, _ = mysql_server
    target = _fresh(base)
    apply_schema(target)
    load(stage, target)
    yield target
    _drop(base, target)


@pytest.fixture(scope="module")
def frames(stage) -> dict[str, pl.DataFrame]:
    return {s.table: read_stage(stage, s) for s in STORES}


@pytest.fixture
def conn(migrated):
    c = _mysql2_like(migrated)
    yield c
    c.close()


# ---------------------------------------------------------------- login


def test_login_select_and_last_login_update(migrated, conn):
    password = f"pw-{uuid.uuid4().hex}"
    add_user(migrated, "first.admin", "super admin", password)
    # backend: login
    rows = _run(conn, "SELECT * FROM users WHERE username = ? AND is_active = TRUE", ("first.admin",))
    assert len(rows) == 1 and rows[0]["role"] == "super admin" and rows[0]["last_login"] is None
    stored = rows[0]["password"]
    assert stored.startswith("$2b$") and int(stored.split("$")[2]) >= 10
    assert bcrypt.checkpw(password.encode(), stored.encode()) and not bcrypt.checkpw(b"wrong", stored.encode())
    # backend: after a good password
    _run(conn, "UPDATE users SET last_login = CURRENT_TIMESTAMP WHERE id = ?", (rows[0]["id"],))
    again = _run(conn, "SELECT last_login FROM users WHERE id = ?", (rows[0]["id"],))
    assert isinstance(again[0]["last_login"], datetime)
    # an inactive user is not found by the login select
    _run(conn, "UPDATE users SET is_active = FALSE WHERE id = ?", (rows[0]["id"],))
    assert _run(conn, "SELECT * FROM users WHERE username = ? AND is_active = TRUE", ("first.admin",)) == []
    # the sidebar: every seeded role's menus are the UI's titles
    menus = {r["role"]: r["menus"] for r in _run(conn, "SELECT role, menus FROM menu_permissions")}
    assert set(menus) == set(ROLES) and '"Dashboard"' in menus["user"] and '"Admin Panel"' in menus["super admin"]
    assert "dashboard" not in "".join(menus.values())


# ---------------------------------------------------------------- reads


def test_ticket_list_with_filters_search_order_and_paging(conn, frames):
    t = frames["tickets"]
    probe = t.filter(pl.col("category").is_not_null() & pl.col("status").is_not_null() & pl.col("cabang").is_not_null()
                     & pl.col("name").is_not_null()).row(0, named=True)
    term = probe["name"].strip()[:4]
    # backend: GET /tickets?category=&status=&cabang=&search=&page=
    sql = ("SELECT * FROM tickets WHERE category = ? AND status = ? AND cabang = ? "
           "AND (name LIKE ? OR customer_id LIKE ? OR description LIKE ?) "
           "ORDER BY open_time DESC LIMIT ? OFFSET ?")
    like = f"%{term}%"
    rows = _run(conn, sql, (probe["category"], probe["status"], probe["cabang"], like, like, like, 50000, 0))
    lower = term.lower()
    want = t.filter((pl.col("category") == probe["category"]) & (pl.col("status") == probe["status"])
                    & (pl.col("cabang") == probe["cabang"])
                    & pl.any_horizontal(pl.col(c).str.to_lowercase().str.contains(lower, literal=True)
                                        for c in ("name", "customer_id", "description")))
    assert {r["id"] for r in rows} == set(want["id"]) and probe["id"] in {r["id"] for r in rows}
    times = [r["open_time"] for r in rows]
    assert times == sorted(times, reverse=True)
    # SELECT * gives the described and managed columns (row_digest is invisible), values as migrated
    assert list(rows[0]) == [c.name for c in TICKETS.columns + TICKETS.managed if c.name != "row_digest"]
    mine = want.filter(pl.col("id") == rows[0]["id"]).row(0, named=True)
    assert {c: rows[0][c] for c in ("customer_id", "name", "description", "duration_raw_hours", "duration_formatted")} == \
        {c: mine[c] for c in ("customer_id", "name", "description", "duration_raw_hours", "duration_formatted")}
    # paging: the second page of 10 follows the first
    page1 = _run(conn, "SELECT id FROM tickets ORDER BY open_time DESC, id LIMIT ? OFFSET ?", (10, 0))
    page2 = _run(conn, "SELECT id FROM tickets ORDER BY open_time DESC, id LIMIT ? OFFSET ?", (10, 10))
    assert len(page1) == len(page2) == 10 and not {r["id"] for r in page1} & {r["id"] for r in page2}
    # backend: the year filter's choices
    years = _run(conn, "SELECT DISTINCT YEAR(open_time) AS year FROM tickets ORDER BY year DESC")
    assert [r["year"] for r in years] == sorted(set(t["open_time"].dt.year()), reverse=True)


def test_incident_stats_and_customer_filter(conn, frames):
    i, c = frames["incidents"], frames["customers"]
    # backend: incident counts by status and by month, averages of the minute durations
    by_status = {r["status"]: r["count"] for r in _run(conn, "SELECT status, COUNT(*) AS count FROM incidents GROUP BY status")}
    assert by_status == dict(i.group_by("status").len().iter_rows())
    by_month = _run(conn, "SELECT DATE_FORMAT(start_time, '%Y-%m') AS month, COUNT(*) AS count "
                          "FROM incidents GROUP BY month ORDER BY month")
    want = i.group_by(pl.col("start_time").dt.strftime("%Y-%m").alias("m")).len()
    assert {r["month"]: r["count"] for r in by_month} == dict(want.iter_rows())
    avgs = _run(conn, "SELECT " + ", ".join(f"AVG({m}) AS {m}, SUM({m}) AS sum_{m}" for m in MINUTES) + " FROM incidents")[0]
    for m in MINUTES:
        assert isinstance(avgs[m], float) and isinstance(avgs[f"sum_{m}"], float), m  # numbers, not text
        assert avgs[m] == pytest.approx(i[m].mean(), rel=1e-12) and avgs[f"sum_{m}"] == pytest.approx(i[m].sum(), rel=1e-12)
    # backend: customers filtered by jenis_klien, paged
    jenis = c["jenis_klien"].drop_nulls()[0]
    rows = _run(conn, "SELECT * FROM customers WHERE jenis_klien = ? LIMIT ? OFFSET ?", (jenis, 50000, 0))
    assert {r["id"] for r in rows} == set(c.filter(pl.col("jenis_klien") == jenis)["id"]) and rows


def test_numbers_arrive_as_numbers_equal_to_the_source(conn, frames):
    # the driver is set up as mysql2 is: a DECIMAL comes back as text ...
    assert _run(conn, "SELECT CAST(1.5 AS DECIMAL(4,2)) AS d")[0]["d"] == "1.50"
    # ... and the UI's numbers come back as numbers, every bit of the browser's value
    for table, cols in (("incidents", MINUTES + ["power_before", "power_after"]), ("tickets", HOURS)):
        got = {r["id"]: r for r in _run(conn, f"SELECT id, {', '.join(cols)} FROM {table}")}
        src = frames[table]
        assert len(got) == src.height
        checked = 0
        for row in src.select("id", *cols).iter_rows(named=True):
            for col in cols:
                value = got[row["id"]][col]
                assert value is None or isinstance(value, (int, float)), (table, col, value)
                assert value == row[col], (table, row["id"], col)
                checked += value is not None
        assert checked > src.height  # the sample fills these columns


# ---------------------------------------------------------------- writes (last: they change the data)


def test_upload_session_insert_and_update_with_the_backends_columns_only(conn):
    sid = "batch_" + "x" * 249  # the backend's widths: 255
    # backend: a new upload
    _run(conn, "INSERT INTO upload_sessions (id, file_name, file_hash, data_type, upload_timestamp, status, record_count) "
               "VALUES (?, ?, ?, ?, ?, ?, ?)", (sid, "tickets Agustus.xlsx", "ab" * 32, "tickets", 1756647255195, "uploading", 3))
    # backend: when the records are written
    _run(conn, "UPDATE upload_sessions SET success_count = ?, error_count = ?, error_log = ?, status = ? WHERE id = ?",
         (2, 1, '["row 3: no open time"]', "completed", sid))
    row = _run(conn, "SELECT * FROM upload_sessions WHERE id = ?", (sid,))[0]
    assert (row["reconstructed"], row["success_count"], row["error_count"], row["status"]) == (0, 2, 1, "completed")


def _upsert(conn, table: str, cols: list[str], rows: list[tuple], update: list[str]) -> int:
    # backend: bulk write of parsed rows, mysql2's nested-array form `VALUES ?` expanded
    values = ", ".join("(" + ", ".join("?" * len(cols)) + ")" for _ in rows)
    sql = (f"INSERT INTO {table} ({', '.join(cols)}) VALUES {values} "
           f"ON DUPLICATE KEY UPDATE {', '.join(f'{c} = VALUES({c})' for c in update)}")
    with conn.cursor() as cur:
        return cur.execute(sql.replace("?", "%s"), [v for r in rows for v in r])


def test_bulk_upserts_at_the_backends_widths_then_delete_by_batch_and_truncate(conn, frames):
    w255, w100, w50 = "c" * 255, "k" * 100, "s" * 50
    old = frames["tickets"].row(0, named=True)
    cols = ["id", "customer_id", "name", "category", "open_time", "status", "cabang", "duration_raw_hours",
            "duration_formatted", "handling_duration1_formatted", "batch_id", "upload_session_id"]
    n = _upsert(conn, "tickets", cols, [
        ("new-ticket-1", w255, "Difa' Fathir", w100, datetime(2025, 8, 1, 9, 0), w50, "Semarang", 12.35, "9" * 50,
         "1" * 50, "b" * 255, "u" * 255),
        (old["id"], old["customer_id"], "renamed by the backend", old["category"], old["open_time"], old["status"],
         old["cabang"], 0, "0:00:00", None, old["batch_id"], old["upload_session_id"]),  # over 24 h: the backend stores 0
    ], ["name", "status", "duration_raw_hours", "duration_formatted"])
    assert n == 1 + 2  # one insert, one update (MySQL counts an updated row twice)
    got = _run(conn, "SELECT id, customer_id, category, status, name, duration_raw_hours FROM tickets WHERE id IN (?, ?)",
               ("new-ticket-1", old["id"]))
    assert {r["id"]: (len(r["customer_id"]), len(r["category"]), len(r["status"])) for r in got}["new-ticket-1"] == (255, 100, 50)
    assert {r["id"]: r["name"] for r in got}[old["id"]] == "renamed by the backend"
    inc = ["id", "no_case", "priority", "ncal", "status", "start_time", "duration_min", "batch_id", "upload_session_id"]
    assert _upsert(conn, "incidents", inc, [("i" * 255, "n" * 255, w50, w50, w50, None, 90.5, "b" * 255, "u" * 255)],
                   ["status", "duration_min"]) == 1
    assert _run(conn, "SELECT start_time FROM incidents WHERE id = ?", ("i" * 255,)) == [{"start_time": None}]
    cus = ["id", "nama", "jenis_klien", "layanan", "kategori", "batch_id"]
    assert _upsert(conn, "customers", cus, [("Agustus 2025-0-CV. Baru", "CV. Baru", w100, "Fiber", w100, "b" * 255)],
                   ["nama", "jenis_klien", "kategori"]) == 1
    # backend: delete an upload's records by its batch id
    batch = frames["tickets"].filter(pl.col("batch_id").is_not_null())["batch_id"].mode()[0]
    before = frames["tickets"].filter(pl.col("batch_id") == batch).height
    with conn.cursor() as cur:
        assert cur.execute("DELETE FROM tickets WHERE batch_id = %s", (batch,)) == before > 0
    assert _run(conn, "SELECT COUNT(*) AS n FROM tickets WHERE batch_id = ?", (batch,))[0]["n"] == 0
    # backend: empty a data table
    for table in ("customers", "incidents"):
        _run(conn, f"TRUNCATE TABLE {table}")
        assert _run(conn, f"SELECT COUNT(*) AS n FROM {table}")[0]["n"] == 0
    kinds = {r["TABLE_NAME"]: r["TABLE_TYPE"] for r in _run(conn, "SELECT table_name AS TABLE_NAME, table_type AS TABLE_TYPE "
                                                              "FROM information_schema.tables WHERE table_schema = DATABASE()")}
    assert all(kinds[s.table] == "BASE TABLE" for s in STORES)


# ---------------------------------------------------------------- the schema keeps the backend's tables


BACKEND_TABLES = """
CREATE TABLE users (
  id INT AUTO_INCREMENT PRIMARY KEY,
  username VARCHAR(255) NOT NULL UNIQUE,
  password VARCHAR(255) NOT NULL,
  role ENUM('super admin', 'admin', 'user') NOT NULL DEFAULT 'user',
  is_active BOOLEAN DEFAULT TRUE,
  last_login TIMESTAMP NULL,
  created_at TIMESTAMP DEFAULT CURRENT_TIMESTAMP,
  updated_at TIMESTAMP DEFAULT CURRENT_TIMESTAMP ON UPDATE CURRENT_TIMESTAMP
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4;
CREATE TABLE menu_permissions (
  id INT AUTO_INCREMENT PRIMARY KEY,
  role VARCHAR(50) NOT NULL,
  menus TEXT NOT NULL,
  created_at TIMESTAMP DEFAULT CURRENT_TIMESTAMP,
  updated_at TIMESTAMP DEFAULT CURRENT_TIMESTAMP ON UPDATE CURRENT_TIMESTAMP
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4
"""


def _backend_state(target) -> dict:
    with target.connect() as conn, conn.cursor() as cur:
        out = {}
        for table in ("users", "menu_permissions"):
            cur.execute(f"SHOW CREATE TABLE {table}")
            out[f"{table} ddl"] = cur.fetchone()[1]
            cur.execute(f"CHECKSUM TABLE {table}")
            out[f"{table} checksum"] = cur.fetchone()[1]
            cur.execute(f"SELECT * FROM {table} ORDER BY id")
            out[f"{table} rows"] = cur.fetchall()
        return out


def test_schema_apply_leaves_the_backends_users_and_menus_byte_identical(mysql_target):
    with mysql_target.connect(database=False) as conn, conn.cursor() as cur:
        cur.execute(f"USE `{mysql_target.database}`")
        for stmt in BACKEND_TABLES.split(";"):
            cur.execute(stmt)
        hashed = bcrypt.hashpw(b"backend's own", bcrypt.gensalt(10)).decode()
        cur.executemany("INSERT INTO users (username, password, role, is_active, last_login) VALUES (%s, %s, %s, %s, %s)",
                        [("boss", hashed, "super admin", True, "2025-08-01 10:00:00"),
                         ("agent", hashed, "user", False, None)])
        cur.executemany("INSERT INTO menu_permissions (role, menus) VALUES (%s, %s)",
                        [(r, '["Dashboard","Data Grid"]') for r in ROLES])
    before = _backend_state(mysql_target)
    first = apply_schema(mysql_target)
    assert not [c for c in first.pending if c.startswith(("users", "menu_permissions"))]
    apply_schema(mysql_target, upgrade=True)
    assert _backend_state(mysql_target) == before


def _old_schema(tmp_path: Path) -> Path:
    """The schema main had before this change (the previous release's shapes)."""
    old = subprocess.run(["git", "show", "7f5a0ec:sql/schema.mysql.sql"], cwd=ROOT, capture_output=True, text=True)
    assert old.returncode == 0, old.stderr
    path = tmp_path / "schema.previous.sql"
    path.write_text(old.stdout, encoding="utf-8")
    return path


def test_a_database_of_the_previous_schema_is_upgraded_without_losing_a_row(mysql_target, stage, frames, tmp_path):
    apply_schema(mysql_target, _old_schema(tmp_path))
    # rows as the previous code loaded them: numbers at DECIMAL(14,6) / (10,3), incidents all with a start time
    with mysql_target.connect() as conn, conn.cursor() as cur:
        for s in STORES:
            rows = frames[s.table]
            if s.table == "incidents":
                rows = rows.filter(pl.col("start_time").is_not_null())
            rows = rows.with_columns(pl.col(c.name).round(3 if c.name.startswith("power") else 6)
                                     for c in s.columns if c.kind == "double")
            cur.executemany(f"INSERT INTO {s.table} ({', '.join(s.column_names)}) VALUES ({', '.join(['%s'] * len(s.columns))})",
                            rows.rows())
        counts = {}
        for s in STORES:
            cur.execute(f"SELECT COUNT(*) FROM {s.table}")
            counts[s.table] = cur.fetchone()[0]
    named = apply_schema(mysql_target)
    assert "tickets: duration_raw_hours DECIMAL(14,6) -> DOUBLE" in "\n".join(named.pending)
    assert "incidents: start_time DATETIME(3) -> DATETIME(3) (may be NULL)" in named.pending
    assert "upload_sessions: reconstructed TINYINT(1) -> TINYINT(1) NOT NULL DEFAULT 0 (with a default)" in named.pending
    assert "menu_permissions: role 'user': the older seed's menu keys -> the UI's titles" in named.pending
    assert "--upgrade" in str(named)
    done = apply_schema(mysql_target, upgrade=True)
    assert done.upgraded and not done.pending and not done.outdated_digests
    with mysql_target.connect() as conn, conn.cursor() as cur:
        cur.execute("SELECT role, menus FROM menu_permissions ORDER BY role")
        menus = dict(cur.fetchall())
        assert set(menus) == set(ROLES) and all(m.startswith('["Dashboard"') for m in menus.values())
        for s in STORES:
            cur.execute(f"SELECT COUNT(*) FROM {s.table}")
            assert cur.fetchone()[0] == counts[s.table], s.table  # no row lost
    assert apply_schema(mysql_target).pending == ()
    load(stage, mysql_target)  # the full doubles replace the rounded ones
    result = parity(stage, mysql_target, report_dir=tmp_path / "parity")
    assert result.ok, str(result)
    assert {t.method for t in result.tables} == {"digest"}


# ---------------------------------------------------------------- etl users add


def test_users_add_stores_a_bcrypt_hash_and_never_shows_the_password(schema_target, tmp_path, monkeypatch):
    password = f"secret-{uuid.uuid4().hex}"
    monkeypatch.setenv(PASSWORD_ENV, password)
    monkeypatch.setenv("RUNTIME_DIR", str(tmp_path / "runtime"))
    runner = CliRunner()
    args = ["users", "add", "root.admin", "--role", "super admin", "--mysql", schema_target.uri]
    done = runner.invoke(app, args)
    assert done.exit_code == 0, done.output
    again = runner.invoke(app, args)  # an existing username is refused ...
    assert again.exit_code == 1 and "--update" in again.output
    bad = runner.invoke(app, ["users", "add", "x", "--role", "root", "--mysql", schema_target.uri])
    assert bad.exit_code == 1 and "'super admin', 'admin', 'user'" in bad.output
    monkeypatch.setenv(PASSWORD_ENV, password + "2")
    updated = runner.invoke(app, [*args, "--update"])  # ... unless --update
    assert updated.exit_code == 0 and "updated" in updated.output
    with schema_target.connect() as conn, conn.cursor() as cur:
        cur.execute("SELECT password, role, is_active FROM users WHERE username = 'root.admin'")
        (stored, role, active), = cur.fetchall()
    assert stored.startswith("$2b$12$") and bcrypt.checkpw((password + "2").encode(), stored.encode())
    assert (role, active) == ("super admin", 1)
    for out in (done, again, bad, updated):
        assert password not in out.output
    # nowhere under the project or the run's folders
    found = subprocess.run(["grep", "-rlF", "--exclude-dir=.git", "--exclude-dir=.venv", password, str(ROOT), str(tmp_path)],
                           capture_output=True, text=True)
    assert found.returncode == 1 and found.stdout == "", found.stdout


def test_the_password_prompt_asks_twice_and_refuses_a_mismatch():
    answers = iter(["one", "one"])
    assert read_password(lambda _: next(answers), env={}) == "one"
    answers = iter(["one", "two"])
    with pytest.raises(UserError, match="differ"):
        read_password(lambda _: next(answers), env={})
    assert read_password(lambda _: pytest.fail("no prompt when the variable is set"), env={PASSWORD_ENV: "x"}) == "x"
