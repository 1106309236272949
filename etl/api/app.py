"""`etl serve`: the migration's HTTP API over the target database (FastAPI; OpenAPI at /openapi.json).

* Data endpoints with the app backend's paths, parameters and shapes (etl/api/data.py), so a
  client written for one works on the other; tests/fixtures/backend_api.json records them.
  Beside them, a read by primary key (GET /api/<table>/by-key?key=..&key=..), which the
  dual-read check (etl/api/verify.py) fetches its sampled records with.
* Control endpoints: feature flags, migration status, the dual-read mismatch intake, /metrics.
* Bearer tokens: API_TOKEN reads and writes, API_READ_TOKEN only reads (and may report
  mismatches: browsers hold it). Compared in constant time; 401 without one, 403 for a read
  token on a write route. /health is open (load balancers probe it).
* A QueuePool of PyMySQL connections; a request that waits `pool_timeout` for one gets 503.
* Request bodies are bounded (413); bad input is a 4xx naming the field, never a 500.

Test hook: ETL_SERVE_STALL="SECONDS[/EVERY]" stops the whole server for SECONDS at every EVERY-th
/api/ request (every one when EVERY is left out), as a GC pause or a held lock would: nothing is
answered meanwhile, so requests arriving during the stall queue behind it. A stalling server for
the benchmark's and the monitor's tests; read once at start and named in the startup line.
"""


import hmac
import itertools
import os
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Annotated, Optional

import pymysql
from fastapi import Body, Depends, FastAPI, Query, Request
from fastapi import Path as PathParam
from fastapi.exceptions import RequestValidationError
from fastapi.responses import Response
from fastapi.security import HTTPBearer
from pydantic import StringConstraints
from starlette.exceptions import HTTPException as StarletteHTTPException

from ..mysql.db import MySQLTarget
from ..core.errors import ApiError, EtlError
from . import control, data
from .metrics import Metrics

MAX_BODY_BYTES = 16 << 20  # a CHUNK_SIZE of wide tickets is well under 1 MB; 10,000 fit
STALL_ENV = "ETL_SERVE_STALL"
READ, WRITE, REPORT = "read", "write", "report"


@dataclass(frozen=True)
class ApiConfig:
    target: MySQLTarget
    token: str
    read_token: str | None = None
    runtime_dir: Path = Path("runtime")
    chunk_size: int = 200
    pool_size: int = 16
    max_overflow: int = 8
    pool_timeout: float = 5.0
    stall: str | None = None  # ETL_SERVE_STALL's value
    cors_origins: tuple[str, ...] = ()  # API_CORS_ORIGINS: pages of these origins may call the API

    def __repr__(self) -> str:  # never the tokens
        return f"ApiConfig(target={self.target}, pool_size={self.pool_size}, stall={self.stall!r})"


class ApiFailure(Exception):
    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status, self.message = status, message


def parse_stall(text: str | None) -> tuple[float, int] | None:
    """'1/20' -> (1.0, 20); '3' -> (3.0, 1); None or '' -> None."""
    if not text:
        return None
    seconds, _, every = text.partition("/")
    try:
        s, n = float(seconds), int(every or 1)
    except ValueError:
        raise ApiError(f"{STALL_ENV} must look like SECONDS or SECONDS/EVERY, got {text!r}") from None
    if s < 0 or n < 1:
        raise ApiError(f"{STALL_ENV} must look like SECONDS or SECONDS/EVERY, got {text!r}")
    return s, n


def make_pool(cfg: ApiConfig):
    from sqlalchemy.dialects.mysql.pymysql import MySQLDialect_pymysql
    from sqlalchemy.pool import QueuePool

    # Raw PyMySQL connections whose decoders give the JSON shapes directly (data.DECODERS); the
    # dialect is there only for pre_ping (a connection the server dropped is replaced, not used).
    dialect = MySQLDialect_pymysql(dbapi=pymysql)
    return QueuePool(lambda: cfg.target.connect(conv=data.CONVERSIONS), pool_size=cfg.pool_size,
                     max_overflow=cfg.max_overflow, timeout=cfg.pool_timeout, pre_ping=True, dialect=dialect)


def _json(body: dict, status: int = 200, headers: dict | None = None) -> Response:
    return Response(data.dumps(body), status, headers=headers, media_type="application/json")


def _error(status: int, message: str, headers: dict | None = None) -> Response:
    return _json({"success": False, "error": message}, status, headers)


class Guard:
    """Pure ASGI middleware: body limit, the stall hook, and the per-route metrics."""

    def __init__(self, app, metrics: Metrics, stall: tuple[float, int] | None, max_body: int = MAX_BODY_BYTES):
        self.app, self.metrics, self.stall, self.max_body = app, metrics, stall, max_body
        self.counter = itertools.count(1)

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        t0 = time.perf_counter()
        status = {"code": 500}

        async def send_status(message):
            if message["type"] == "http.response.start":
                status["code"] = message["status"]
            await send(message)

        try:
            length = int(dict(scope["headers"]).get(b"content-length", b"0") or 0)
        except ValueError:
            length = -1
        if length < 0 or length > self.max_body:
            await _error(413 if length > 0 else 400, f"request body over {self.max_body:,} bytes" if length > 0
                         else "bad Content-Length")(scope, receive, send_status)
        else:
            received = 0

            async def bounded_receive():
                nonlocal received
                message = await receive()
                received += len(message.get("body", b""))
                if received > self.max_body:
                    raise _TooLarge()
                return message

            if self.stall and scope["path"].startswith("/api/") and next(self.counter) % self.stall[1] == 0:
                time.sleep(self.stall[0])  # blocking on purpose: the whole server stops (see the docstring)
            try:
                await self.app(scope, bounded_receive, send_status)
            except _TooLarge:
                await _error(413, f"request body over {self.max_body:,} bytes")(scope, receive, send_status)
            finally:
                route = scope.get("route")
                self.metrics.observe(scope["method"], getattr(route, "path", "(unmatched)"), status["code"],
                                     time.perf_counter() - t0)
            return
        self.metrics.observe(scope["method"], "(unmatched)", status["code"], time.perf_counter() - t0)


class _TooLarge(Exception):
    pass


def create_app(cfg: ApiConfig) -> FastAPI:
    if not cfg.token:
        raise ApiError("etl serve needs API_TOKEN (the read + write token); set it in the environment or .env")
    pool = make_pool(cfg)
    metrics = Metrics()
    bearer = HTTPBearer(auto_error=False, description="API_TOKEN (read and write) or API_READ_TOKEN (read only)")
    tokens = [(cfg.token.encode(), WRITE)] + ([(cfg.read_token.encode(), READ)] if cfg.read_token else [])

    def role_of(request: Request) -> str | None:
        header = request.headers.get("authorization", "")
        scheme, _, given = header.partition(" ")
        if scheme.lower() != "bearer" or not given:
            return None
        found = None
        for token, role in tokens:  # compare with every token, in constant time each
            if hmac.compare_digest(token, given.strip().encode("utf-8", "surrogatepass")):
                found = role
        return found

    def need(level: str):
        def check(request: Request, _=Depends(bearer)):
            role = role_of(request)
            if role is None:
                raise ApiFailure(401, "a bearer token is required (Authorization: Bearer <token>)")
            if level == WRITE and role != WRITE:
                raise ApiFailure(403, "this route writes: the read-only token may not use it")
        return Depends(check)

    def db():
        from sqlalchemy.exc import TimeoutError as PoolTimeout

        try:
            conn = pool.connect()
        except PoolTimeout:
            metrics.pool_timeout()
            raise ApiFailure(503, "all database connections are busy; try again") from None
        except (EtlError, pymysql.err.MySQLError) as e:
            raise ApiFailure(503, f"database unavailable: {type(e).__name__}") from None
        try:
            yield conn
        finally:
            conn.close()

    Conn = Annotated[object, Depends(db)]
    app = FastAPI(title="idb2mysql API", version="1",
                  description="The migrated tables served as the app's backend serves them, and the migration's "
                              "control endpoints. Bearer token: API_TOKEN (read + write) or API_READ_TOKEN (read).")
    app.state.pool, app.state.metrics, app.state.config = pool, metrics, cfg
    app.add_middleware(Guard, metrics=metrics, stall=parse_stall(cfg.stall))
    if cfg.cors_origins:
        # The browser adapter runs in the app's page, another origin than the API's: its reads, the
        # flag polls (ETag) and the mismatch reports need CORS. Bearer tokens, no cookies: no credentials.
        from starlette.middleware.cors import CORSMiddleware

        app.add_middleware(CORSMiddleware, allow_origins=list(cfg.cors_origins), allow_methods=["GET", "POST"],
                           allow_headers=["Authorization", "Content-Type", "If-None-Match"],
                           expose_headers=["ETag"], max_age=600)

    @app.exception_handler(ApiFailure)
    async def _failure(request, exc: ApiFailure):
        headers = {"WWW-Authenticate": "Bearer"} if exc.status == 401 else None
        return _error(exc.status, exc.message, headers)

    @app.exception_handler(StarletteHTTPException)
    async def _http(request, exc: StarletteHTTPException):  # 404, 405: the same error shape as the rest
        return _error(exc.status_code, str(exc.detail), getattr(exc, "headers", None))

    @app.exception_handler(data.BadInput)
    async def _bad(request, exc: data.BadInput):
        return _error(exc.status, str(exc))

    @app.exception_handler(RequestValidationError)
    async def _invalid(request, exc: RequestValidationError):
        problems = [f"{'.'.join(str(p) for p in e.get('loc', ()))}: {e.get('msg')}" for e in exc.errors()[:5]]
        return _error(422, "; ".join(problems) or "invalid request")

    @app.exception_handler(UnicodeError)
    async def _unicode(request, exc):
        return _error(400, "text that is not valid UTF-8")

    @app.exception_handler(pymysql.err.OperationalError)
    async def _db_down(request, exc):
        return _error(503, f"database error: {exc.args[0] if exc.args else ''}")

    # ------------------------------------------------------------ health and metrics

    @app.get("/health", tags=["health"], summary="Liveness and database reachability (no token needed)")
    def health():
        now = datetime.now(timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")
        try:
            conn = pool.connect()
            try:
                with conn.cursor() as cur:
                    cur.execute("SELECT 1")
            finally:
                conn.close()
        except Exception:  # noqa: BLE001 - any failure to reach the database is the answer itself
            return _json({"status": "error", "database": "disconnected", "timestamp": now}, 503)
        return _json({"status": "ok", "database": "connected", "timestamp": now})

    @app.get("/metrics", tags=["health"], dependencies=[need(READ)], summary="Prometheus text format")
    def metrics_text():
        pool_now = {"size": pool.size(), "checked_out": pool.checkedout(), "overflow": max(0, pool.overflow())}
        return Response(metrics.render(pool_now), media_type="text/plain; version=0.0.4; charset=utf-8")

    # ------------------------------------------------------------ data

    Page = Annotated[int, Query(ge=1, le=data.MAX_PAGE, description="1-based page (OFFSET paging)")]
    Limit = Annotated[int, Query(ge=1, le=data.MAX_LIMIT, description="rows per page")]
    After = Annotated[Optional[str], Query(max_length=512, description="keyset paging: the pagination.nextCursor "
                                           "of the previous page; empty for the first page")]
    Text = Annotated[Optional[str], Query(max_length=255)]

    def list_route(spec: data.ListSpec):
        def endpoint(conn: Conn, request: Request, page: Page = 1, limit: Limit = data.DEFAULT_LIMIT,
                     after: After = None, search: Text = None):
            if after is None and "after" in request.query_params:
                after = ""
            filters = {f: request.query_params.get(f) for f in spec.filters}
            for f, v in filters.items():
                if v is not None and len(v) > 255:
                    raise data.BadInput(f"{f}: at most 255 characters")
            if search and not spec.search:
                raise data.BadInput(f"{spec.path} has no search", 400)
            return _json(data.list_rows(conn, spec, page=page, limit=limit, after=after, filters=filters, search=search))

        # Declare the equality filters in the OpenAPI document as query parameters of their own.
        params = [{"name": f, "in": "query", "required": False, "schema": {"type": "string", "maxLength": 255},
                   "description": f"equality filter on {f}"} for f in spec.filters]
        app.get(spec.path, tags=["data"], dependencies=[need(READ)], summary=f"Rows of {spec.table}, newest first",
                openapi_extra={"parameters": params} if params else None)(endpoint)

    for spec in data.LISTS:
        list_route(spec)

    KeyText = Annotated[str, StringConstraints(min_length=1, max_length=255)]

    def by_key_route(spec: data.ListSpec):
        def endpoint(conn: Conn, key: Annotated[list[KeyText], Query(description=f"a {spec.key} to read; repeat "
                                                                      f"for more (at most {data.MAX_KEYS})")]):
            return _json(data.rows_by_keys(conn, spec, key))

        app.get(f"{spec.path}/by-key", tags=["data"], dependencies=[need(READ)],
                summary=f"Rows of {spec.table} by primary key ({spec.key}); keys without a row are left out")(endpoint)

    for spec in data.LISTS:
        by_key_route(spec)

    @app.get("/api/tickets/years", tags=["data"], dependencies=[need(READ)], summary="Distinct years of open_time")
    def ticket_years(conn: Conn):
        return _json(data.ticket_years(conn))

    @app.get("/api/incidents/stats", tags=["data"], dependencies=[need(READ)],
             summary="Incident counts by status and month, average minute durations")
    def incident_stats(conn: Conn):
        return _json(data.incident_stats(conn))

    def bulk_route(spec: data.ListSpec):
        store = spec.store

        def upsert(conn: Conn, body: Annotated[dict, _BulkBody]):
            return _json(data.bulk_upsert(conn, store, body.get("records"), cfg.chunk_size))

        def delete(conn: Conn, batch_id: Annotated[str, _BatchId]):
            return _json(data.delete_batch(conn, store, batch_id))

        body_schema = {"required": True, "content": {"application/json": {"schema": data.records_schema(store)}}}
        app.post(f"{spec.path}/bulk", tags=["data"], dependencies=[need(WRITE)], openapi_extra={"requestBody": body_schema},
                 summary=f"Upsert records into {store.table} (INSERT ... ON DUPLICATE KEY UPDATE), all or nothing")(upsert)
        if "batch_id" in store.column_names:
            app.delete(f"{spec.path}/batch/{{batch_id}}", tags=["data"], dependencies=[need(WRITE)],
                       summary=f"Delete the {store.table} rows of one upload batch")(delete)

    for spec in data.LISTS:
        bulk_route(spec)

    # ------------------------------------------------------------ control

    @app.get("/api/feature-flags", tags=["control"], dependencies=[need(READ)],
             summary="The cutover flags the browsers follow (cacheable; ETag)")
    def feature_flags(conn: Conn, request: Request):
        body = control.flags_body(conn)
        tag = control.etag(body)
        headers = {"ETag": tag, "Cache-Control": f"private, max-age={control.FLAGS_MAX_AGE}"}
        if tag in [t.strip() for t in request.headers.get("if-none-match", "").split(",")]:
            return Response(status_code=304, headers=headers)
        return _json(body, headers=headers)

    @app.get("/api/migration/status", tags=["control"], dependencies=[need(READ)],
             summary="Rows per table, the last parity and validation verdicts, the current flags")
    def migration_status(conn: Conn):
        return _json(control.status_body(conn, cfg.runtime_dir))

    @app.post("/api/migration/mismatches", tags=["control"], status_code=202, dependencies=[need(REPORT)],
              summary="Intake of a browser's dual-read comparison (read token allowed)")
    def report_mismatches(conn: Conn, report: control.MismatchReport):
        return _json({"accepted": control.record_mismatches(conn, report)}, 202)

    @app.get("/api/migration/mismatches", tags=["control"], dependencies=[need(READ)],
             summary="Reported mismatches per table and stage, and per bucket")
    def mismatch_summary(conn: Conn, table: Text = None, stage: Text = None):
        return _json(control.mismatch_summary(conn, table, stage))

    return app


_BulkBody = Body(..., description='{"records": [{column: value, ...}, ...]} with the columns of '
                                       "etl/core/stores.py (snake_case); at most 10,000 records",
                                       examples=[{"records": [{"id": "t-1", "open_time": "2024-07-15T17:35:00.000Z"}]}])
_BatchId = PathParam(..., min_length=1, max_length=64)


def config_from(settings, target: MySQLTarget, **kw) -> ApiConfig:
    """The API's configuration from the settings (API_TOKEN, API_READ_TOKEN, API_CORS_ORIGINS, RUNTIME_DIR,
    CHUNK_SIZE)."""
    return ApiConfig(target=target, token=settings.api_token, read_token=settings.api_read_token,
                     runtime_dir=settings.runtime_dir, chunk_size=settings.chunk_size,
                     cors_origins=settings.api_cors_origins,
                     stall=kw.pop("stall", None) or os.environ.get(STALL_ENV) or None, **kw)

