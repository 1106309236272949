"""The data endpoints' SQL: what the app's backend does with the migrated tables, plus keyset paging.

Reads are the backend's (domain.md, "After the cutover"): `SELECT *` (row_digest is INVISIBLE,
so it is not in it), equality filters, LIKE search, newest first, LIMIT/OFFSET with a default
page of 50,000 and a COUNT(*) for the page total. Keyset paging (`after=<cursor>`) is offered
beside it: a page then costs the same at row 1,000,000 as at row 1, and no COUNT(*) is run.
Writes are the backend's bulk upsert, `INSERT ... ON DUPLICATE KEY UPDATE`, with the column
list taken from etl/core/stores.py.

Values come back as mysql2 gives them to the backend's JSON: DATETIME as ISO text with
milliseconds and `Z` (the stored times are UTC), DECIMAL as text, integers as numbers.
Rows of a list or a read by key are built as JSON text by the server (`row_json`): turning 100
rows of 55 columns into Python objects in PyMySQL's pure-Python parser, then into JSON, was 86 %
of a ticket page's CPU.
"""

from __future__ import annotations

import base64
import binascii
import json
import math
from dataclasses import dataclass
from datetime import datetime, timezone

import pymysql
from pymysql.constants import FIELD_TYPE

from ..core.stores import Store, store as find_store

DEFAULT_LIMIT = 50_000  # the backend's default page size
MAX_LIMIT = 50_000
MAX_PAGE = 1_000_000
MAX_BULK_RECORDS = 10_000  # per request; written in CHUNK_SIZE statements inside one transaction


class BadInput(ValueError):
    """Input the API answers with a 4xx: the message names the record and the field."""

    def __init__(self, message: str, status: int = 422):
        super().__init__(message)
        self.status = status


# ---------------------------------------------------------------- value conversions


def _iso(text: str) -> str:
    """'2024-07-15 17:35:00.000' -> '2024-07-15T17:35:00.000Z' (Date.toJSON of a UTC time)."""
    date, _, clock = text.partition(" ")
    if not clock:
        return f"{date}T00:00:00.000Z"
    whole, _, frac = clock.partition(".")
    return f"{date}T{whole}.{(frac + '000')[:3]}Z"


# Decoders for the pool's connections: text straight into the JSON shape, no datetime/Decimal objects.
DECODERS = {**pymysql.converters.decoders, FIELD_TYPE.DATETIME: _iso, FIELD_TYPE.TIMESTAMP: _iso,
            FIELD_TYPE.DATE: str, FIELD_TYPE.NEWDECIMAL: str, FIELD_TYPE.DECIMAL: str}
CONVERSIONS = {**pymysql.converters.conversions, **DECODERS}


# ---------------------------------------------------------------- rows as JSON text, built by the server


class JsonArray(str):
    """A JSON array's text, spliced into a response as it is (`dumps`)."""


def dumps(body: dict) -> str:
    """A response body as compact JSON; a JsonArray value goes in as the text it is."""
    def one(v) -> str:
        return v if isinstance(v, JsonArray) else json.dumps(v, ensure_ascii=False, separators=(",", ":"), default=str)

    return "{" + ",".join(f"{json.dumps(k)}:{one(v)}" for k, v in body.items()) + "}"


_TEXT_TYPES = {"char", "varchar", "tinytext", "text", "mediumtext", "longtext", "enum", "set"}
_NUMBER_TYPES = {"tinyint", "smallint", "mediumint", "int", "bigint", "double"}


def _value_json(name: str, data_type: str) -> str | None:
    """SQL giving a column's value as JSON text in the shape DECODERS give it, or None for a type
    not built here. '%%' because the statement is run with arguments. DOUBLE: its text is the one
    the text protocol sends (PyMySQL's float is read from it), so the number is the same."""
    c = f"`{name}`"
    if data_type in _TEXT_TYPES:
        value = f"JSON_QUOTE({c})"
    elif data_type in ("datetime", "timestamp"):  # as _iso: milliseconds and Z
        value = (f"CONCAT('\"', DATE_FORMAT({c}, '%%Y-%%m-%%dT%%H:%%i:%%s.'), "
                 f"LPAD(MICROSECOND({c}) DIV 1000, 3, '0'), 'Z\"')")
    elif data_type == "decimal":  # mysql2 sends DECIMAL as text
        value = f"JSON_QUOTE(CAST({c} AS CHAR))"
    elif data_type in _NUMBER_TYPES:
        value = f"CAST({c} AS CHAR)"
    else:
        return None
    return f"COALESCE({value}, 'null')"


_ROW_JSON: dict[tuple, str | None] = {}  # (database, table) -> its row's JSON expression, or None


def row_json(conn, table: str) -> str | None:
    """SQL building one row of `table` as the JSON object `SELECT *` gives the backend (its visible
    columns, in order), or None when a column's type is not built here (the rows are then parsed in
    Python). Read from information_schema once per database and table in this process."""
    key = (conn.db, table)
    if key not in _ROW_JSON:
        with conn.cursor() as cur:
            cur.execute("SELECT column_name, data_type, extra FROM information_schema.columns "
                        "WHERE table_schema = DATABASE() AND table_name = %s ORDER BY ordinal_position", (table,))
            columns = [(n, t.lower(), (e or "").upper()) for n, t, e in cur.fetchall()]
        parts = [(n, _value_json(n, t)) for n, t, e in columns if "INVISIBLE" not in e]
        ok = parts and all(v is not None and n.isidentifier() for n, v in parts)
        _ROW_JSON[key] = ("CONCAT('{', " + ", ',', ".join(f"'\"{n}\":', {v}" for n, v in parts) + ", '}')") if ok else None
    return _ROW_JSON[key]


def _fetch_rows(cur, table: str, rest: str, args: list, extra: list[str],
                retry: bool = True) -> tuple[list | JsonArray, int, list]:
    """(data, how many rows, the `extra` columns of the last row): the rows of `SELECT * FROM table rest` as a
    JsonArray built by the server, or as Python dicts where it cannot build them (a type it does
    not build, or a row longer than max_allowed_packet, where CONCAT gives NULL). A column dropped
    since `row_json` read the table (unknown column) makes it read the columns again, once; a column
    added while serving is in the rows after a restart of `etl serve`."""
    built = row_json(cur.connection, table)
    picked = "".join(f", `{c}` AS `__k{i}`" for i, c in enumerate(extra))
    if built is not None:
        try:
            cur.execute(f"SELECT {built} AS __row{picked} FROM `{table}`{rest}", args)
        except pymysql.err.OperationalError as e:
            if not (retry and e.args and e.args[0] == 1054):  # ER_BAD_FIELD_ERROR
                raise
            _ROW_JSON.pop((cur.connection.db, table), None)
            return _fetch_rows(cur, table, rest, args, extra, retry=False)
        rows = cur.fetchall()
        if all(r["__row"] is not None for r in rows):
            last = [rows[-1][f"__k{i}"] for i in range(len(extra))] if rows else []
            return JsonArray("[" + ",".join(r["__row"] for r in rows) + "]"), len(rows), last
    cur.execute(f"SELECT * FROM `{table}`{rest}", args)
    rows = cur.fetchall()
    return list(rows), len(rows), ([rows[-1][c] for c in extra] if rows else [])


# ---------------------------------------------------------------- lists


@dataclass(frozen=True)
class ListSpec:
    """One list endpoint: its table, equality filters, LIKE columns and order (newest first)."""

    path: str
    table: str
    filters: tuple[str, ...] = ()
    search: tuple[str, ...] = ()
    order: str | None = None  # a NOT NULL column, then the primary key; None: the key alone
    descending: bool = True

    @property
    def store(self) -> Store:
        return find_store(self.table)

    @property
    def key(self) -> str:
        return self.store.primary_key[0]


LISTS = (
    ListSpec("/api/tickets", "tickets", ("category", "status", "cabang"), ("name", "customer_id", "description"),
             "open_time"),
    ListSpec("/api/incidents", "incidents", ("status", "priority", "site"), order="start_time"),
    ListSpec("/api/customers", "customers", ("jenis_klien", "layanan", "kategori"), descending=False),
    ListSpec("/api/vendors", "vendors", descending=False),
    ListSpec("/api/upload-sessions", "upload_sessions", ("data_type", "status")),
)


def encode_cursor(values: list) -> str:
    return base64.urlsafe_b64encode(json.dumps(values, separators=(",", ":")).encode()).decode().rstrip("=")


def decode_cursor(spec: ListSpec, cursor: str) -> list:
    """The last row's (order value, key) from a cursor; BadInput (400) for anything else."""
    n = 2 if spec.order else 1
    try:
        values = json.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
    except (binascii.Error, ValueError, UnicodeDecodeError):
        raise BadInput("after: not a cursor this API gave out", 400) from None
    if not (isinstance(values, list) and len(values) == n and all(isinstance(v, (str, int)) for v in values)):
        raise BadInput("after: not a cursor this API gave out", 400)
    if spec.order:
        try:
            values[0] = _datetime(values[0])
        except (TypeError, ValueError):
            raise BadInput("after: not a cursor this API gave out", 400) from None
    return values


def list_rows(conn, spec: ListSpec, *, page: int, limit: int, after: str | None, filters: dict, search: str | None) -> dict:
    """One page, as the backend shapes it: {success, data, pagination}."""
    where, args = [], []
    for col in spec.filters:
        if filters.get(col) is not None:
            where.append(f"`{col}` = %s")
            args.append(filters[col])
    if search:
        like = "%" + search.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
        where.append("(" + " OR ".join(f"`{c}` LIKE %s" for c in spec.search) + ")")
        args += [like] * len(spec.search)
    direction = "DESC" if spec.descending else "ASC"
    order_cols = ([spec.order] if spec.order else []) + [spec.key]
    order_by = ", ".join(f"`{c}` {direction}" for c in order_cols)
    keyset = after is not None
    if keyset and after:
        last = decode_cursor(spec, after)
        cmp = "<" if spec.descending else ">"
        if spec.order:
            # Spelled out rather than as a row comparison, which MariaDB does not turn into a range scan.
            where.append(f"(`{spec.order}` {cmp} %s OR (`{spec.order}` = %s AND `{spec.key}` {cmp} %s))")
            args += [last[0], last[0], last[1]]
        else:
            where.append(f"`{spec.key}` {cmp} %s")
            args.append(last[0])
    clause = (" WHERE " + " AND ".join(where)) if where else ""
    offset = 0 if keyset else (page - 1) * limit
    with conn.cursor(pymysql.cursors.DictCursor) as cur:
        rows, n, last = _fetch_rows(cur, spec.table, f"{clause} ORDER BY {order_by} LIMIT %s OFFSET %s",
                                 [*args, limit, offset], order_cols)
        total = None
        if not keyset:
            cur.execute(f"SELECT COUNT(*) AS n FROM `{spec.table}`{clause}", args)
            total = cur.fetchone()["n"]
    next_cursor = encode_cursor(last) if n == limit else None
    pagination = {"page": 1 if keyset else page, "limit": limit, "total": total,
                  "totalPages": math.ceil(total / limit) if total is not None else None, "nextCursor": next_cursor}
    return {"success": True, "data": rows, "pagination": pagination}


MAX_KEYS = 200  # per by-key request: the keys travel in the URL, whose length servers and proxies limit


def rows_by_keys(conn, spec: ListSpec, keys: list[str]) -> dict:
    """{success, data}: the rows whose primary key is one of `keys` (compared as the table's collation
    does), in key order; keys that match no row are left out. A read by key beside the backend's
    lists: the dual-read check fetches the records it sampled from the export."""
    if not keys:
        raise BadInput("key: give at least one key (key=...&key=...)", 400)
    if len(keys) > MAX_KEYS:
        raise BadInput(f"key: at most {MAX_KEYS} keys per request, got {len(keys)}", 400)
    col = spec.store.column(spec.key)
    if not col.is_text:
        try:
            keys = [int(k) for k in keys]
        except ValueError:
            raise BadInput(f"key: {spec.key} is an integer column; got {next(k for k in keys if not _is_int(k))[:40]!r}") from None
        if any(not -2**63 <= k < 2**63 for k in keys):
            raise BadInput("key: integer out of range")
    wanted = list(dict.fromkeys(keys))
    marks = ", ".join(["%s"] * len(wanted))
    with conn.cursor(pymysql.cursors.DictCursor) as cur:
        rows, _, _ = _fetch_rows(cur, spec.table, f" WHERE `{spec.key}` IN ({marks}) ORDER BY `{spec.key}`", wanted, [])
    return {"success": True, "data": rows}


def _is_int(text: str) -> bool:
    try:
        int(text)
    except ValueError:
        return False
    return True


def ticket_years(conn) -> dict:
    with conn.cursor() as cur:
        cur.execute("SELECT DISTINCT YEAR(open_time) FROM tickets ORDER BY 1 DESC")
        return {"success": True, "data": [int(y) for (y,) in cur.fetchall()]}


AVERAGED = ("duration_min", "duration_vendor_min", "total_duration_pause_min", "total_duration_vendor_min",
            "net_duration_min")


def incident_stats(conn) -> dict:
    """Counts by status and by month of start_time, averages of the minute durations (as numbers:
    the UI adds them, and a DECIMAL would reach it as text)."""
    with conn.cursor() as cur:
        cur.execute("SELECT COUNT(*), " + ", ".join(f"AVG(`{c}`)" for c in AVERAGED) + " FROM incidents")
        total, *avgs = cur.fetchone()
        cur.execute("SELECT status, COUNT(*) FROM incidents GROUP BY status ORDER BY 2 DESC, 1")
        by_status = [{"status": s, "count": n} for s, n in cur.fetchall()]
        cur.execute("SELECT DATE_FORMAT(start_time, '%Y-%m') AS m, COUNT(*) FROM incidents GROUP BY m ORDER BY m")
        by_month = [{"month": m, "count": n} for m, n in cur.fetchall()]
    averages = {_camel(c): (float(v) if v is not None else None) for c, v in zip(AVERAGED, avgs)}
    return {"success": True, "data": {"total": total, "byStatus": by_status, "byMonth": by_month, "averages": averages}}


def _camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(p.title() for p in rest)


# ---------------------------------------------------------------- bulk upsert


def _datetime(value) -> datetime:
    if not isinstance(value, str):
        raise TypeError("not text")
    dt = datetime.fromisoformat(value)
    if dt.tzinfo is not None:
        dt = dt.astimezone(timezone.utc).replace(tzinfo=None)
    return dt


def _value(store: Store, col, value, record: int):
    """A JSON value as the column's Python value; BadInput names the record and the field."""
    if value is None:
        return None
    kind = col.kind

    def bad(why: str):
        return BadInput(f"{store.table}: record {record}, field {col.name}: {why}")

    if col.is_text:
        if kind == "json" and isinstance(value, (dict, list)):
            value = json.dumps(value, ensure_ascii=False)
        if not isinstance(value, str):
            raise bad(f"expected text, got {type(value).__name__}")
        if col.length and len(value) > col.length:
            raise bad(f"longer than {col.length} characters")
        if col.max_bytes and len(value.encode("utf-8", "surrogatepass")) > col.max_bytes:
            raise bad(f"longer than {col.max_bytes} bytes")
        return value
    if kind in ("int", "bigint", "epoch_ms"):
        if isinstance(value, bool) or not isinstance(value, (int, str)):
            raise bad("expected an integer")
        try:
            n = int(value)
        except ValueError:
            raise bad("expected an integer") from None
        limit = 2**31 if kind == "int" else 2**63
        if not -limit <= n < limit:
            raise bad("integer out of range")
        return n
    if kind == "bool":
        if value in (True, False, 0, 1):
            return int(value)
        raise bad("expected true, false, 0 or 1")
    if kind == "double":
        # A JavaScript number (stores.py: DOUBLE); numeric text is taken too (mysql2 sends DECIMAL as text).
        if isinstance(value, bool) or not isinstance(value, (int, float, str)):
            raise bad("expected a number")
        try:
            f = float(value)
        except (ValueError, OverflowError):
            raise bad("expected a number") from None
        if not math.isfinite(f):
            raise bad("expected a finite number")
        return f
    if kind == "datetime":
        try:
            dt = _datetime(value)
        except (TypeError, ValueError):
            raise bad("expected an ISO date-time like 2024-07-15T17:35:00.000Z") from None
        if not 1000 <= dt.year <= 9999:
            raise bad("year out of range")
        return dt
    raise bad(f"unsupported kind {kind}")  # pragma: no cover - stores.KINDS is closed


def required_columns(store: Store) -> list[str]:
    """NOT NULL columns without a DEFAULT: every record must give them."""
    return [c.name for c in store.columns if not c.nullable and getattr(c, "default", None) is None]


def records_schema(store: Store) -> dict:
    """The bulk body's JSON schema, from the store's description (for the OpenAPI document)."""
    props = {}
    for col in store.columns:
        if col.is_text:
            one = {"type": "string", **({"maxLength": col.length} if col.length else {})}
        elif col.kind in ("int", "bigint", "epoch_ms"):
            bound = 2**31 if col.kind == "int" else 2**63
            one = {"type": "integer", "minimum": -bound, "maximum": bound - 1}
        elif col.kind == "bool":
            one = {"type": "boolean"}
        elif col.kind == "double":
            one = {"type": "number"}
        else:  # datetime
            one = {"type": "string", "format": "date-time"}
        props[col.name] = one if not col.nullable else {"anyOf": [one, {"type": "null"}]}
    record = {"type": "object", "properties": props, "additionalProperties": False,
              "required": required_columns(store)}
    return {"type": "object", "required": ["records"], "additionalProperties": False,
            "properties": {"records": {"type": "array", "items": record, "maxItems": MAX_BULK_RECORDS}}}


def upsert_statement(store: Store, columns: tuple[str, ...]) -> str:
    """INSERT ... ON DUPLICATE KEY UPDATE of the given columns (the key is not updated).

    VALUES(col) is deprecated on MySQL 8.0.20+ (a warning) in favour of a row alias, which
    MariaDB does not have; VALUES() works on both."""
    cols = ", ".join(f"`{c}`" for c in columns)
    marks = ", ".join(["%s"] * len(columns))
    updates = ", ".join(f"`{c}` = VALUES(`{c}`)" for c in columns if c not in store.primary_key)
    if not updates:  # only the key was sent: an existing row stays as it is
        updates = ", ".join(f"`{c}` = `{c}`" for c in store.primary_key)
    return f"INSERT INTO `{store.table}` ({cols}) VALUES ({marks}) ON DUPLICATE KEY UPDATE {updates}"


def prepare_records(store: Store, records: list) -> tuple[tuple[str, ...], list[tuple]]:
    """(columns, rows) for a bulk upsert: the columns any record names, in the store's order."""
    if not isinstance(records, list):
        raise BadInput("records: expected a list of objects")
    if len(records) > MAX_BULK_RECORDS:
        raise BadInput(f"records: at most {MAX_BULK_RECORDS:,} per request, got {len(records):,}", 413)
    known = store.column_names
    named: set[str] = set()
    for i, rec in enumerate(records):
        if not isinstance(rec, dict):
            raise BadInput(f"{store.table}: record {i}: expected an object")
        unknown = set(rec) - set(known)
        if unknown:
            raise BadInput(f"{store.table}: record {i}: unknown field(s) {', '.join(sorted(unknown))[:200]}")
        named.update(rec)
    columns = tuple(c for c in known if c in named)
    described = [store.column(c) for c in columns]
    rows = []
    required = required_columns(store)
    for i, rec in enumerate(records):
        for key in required:
            if rec.get(key) is None:
                what = "the primary key" if key in store.primary_key else "a value"
                raise BadInput(f"{store.table}: record {i}, field {key}: {what} is required")
        row = []
        for col in described:
            v = _value(store, col, rec.get(col.name), i)
            if v is None and not col.nullable:
                raise BadInput(f"{store.table}: record {i}, field {col.name}: must not be null")
            row.append(v)
        rows.append(tuple(row))
    return columns, rows


# Server errors that mean "this value does not fit", whichever exception class PyMySQL gives them:
# no default (1364), incorrect value (1366), out of range (1264), too long (1406), bad date (1292).
DATA_ERRORS = {1364, 1366, 1264, 1406, 1292, 1048}


def bulk_upsert(conn, store: Store, records: list, chunk_size: int) -> dict:
    """Every record in one transaction, in statements of `chunk_size` rows; all or nothing."""
    columns, rows = prepare_records(store, records)
    if not rows:
        return {"success": True, "received": 0, "affectedRows": 0}
    sql = upsert_statement(store, columns)
    affected = 0
    try:
        with conn.cursor() as cur:
            cur.execute("START TRANSACTION")
            for start in range(0, len(rows), chunk_size):
                affected += cur.executemany(sql, rows[start:start + chunk_size]) or 0
        conn.commit()
    except pymysql.err.MySQLError as e:
        try:
            conn.rollback()
        except pymysql.err.MySQLError:
            pass  # the connection is gone: the server rolled back; the pool's pre-ping replaces it
        if isinstance(e, (pymysql.err.DataError, pymysql.err.IntegrityError)) or (e.args and e.args[0] in DATA_ERRORS):
            raise BadInput(f"{store.table}: the server refused the records: {e.args[-1]}") from None
        raise
    return {"success": True, "received": len(rows), "affectedRows": affected}


def delete_batch(conn, store: Store, batch_id: str) -> dict:
    """DELETE ... WHERE batch_id = ? (the backend deletes uploads by batch id)."""
    if "batch_id" not in store.column_names:
        raise BadInput(f"{store.table} has no batch_id", 404)
    with conn.cursor() as cur:
        n = cur.execute(f"DELETE FROM `{store.table}` WHERE batch_id = %s", (batch_id,))
    conn.commit()
    return {"success": True, "deleted": n}
