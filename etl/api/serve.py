"""Run the API with uvicorn: in the foreground until interrupted (`etl serve`), or for the length of
a block in a thread of the caller (`background`: the playbook's steps that need the API)."""

from __future__ import annotations

import secrets
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Iterator
from urllib.parse import urlsplit

from ..core.config import Settings
from ..mysql.db import MySQLTarget
from ..core.errors import ApiError, ConfigError
from ..core.result import Result


@dataclass(frozen=True)
class ServeResult(Result):
    url: str
    target: str
    requests: int

    def __str__(self) -> str:
        return f"etl serve on {self.url} (database {self.target}) stopped after {self.requests:,} requests"


def listen_address(settings: Settings, host: str | None, port: int | None) -> tuple[str, int]:
    """--host/--port, else BASE_URL's host and port (default http://127.0.0.1:8700)."""
    parts = urlsplit(settings.base_url)
    if parts.scheme not in ("http", "https"):
        raise ConfigError(f"BASE_URL must be an http:// URL, got {settings.base_url!r}")
    return host or parts.hostname or "127.0.0.1", port or parts.port or 8700


def serve(settings: Settings, target: MySQLTarget, *, host: str | None = None, port: int | None = None,
          pool_size: int = 16, echo=print) -> ServeResult:
    import uvicorn

    from .app import config_from, create_app

    cfg = config_from(settings, target, pool_size=pool_size)
    app = create_app(cfg)
    host, port = listen_address(settings, host, port)
    url = f"http://{host}:{port}"
    echo(f"etl serve: {url} over {target} (pool {cfg.pool_size}+{cfg.max_overflow}; OpenAPI at {url}/openapi.json"
         + (f"; test hook ETL_SERVE_STALL={cfg.stall}" if cfg.stall else "") + ")")
    # access_log off: a log line per request costs more than the request; /metrics counts them.
    uvicorn.run(app, host=host, port=port, log_level="warning", access_log=False, server_header=False,
                timeout_keep_alive=30)
    app.state.pool.dispose()
    total = int(sum(app.state.metrics.requests.values()))
    return ServeResult(url, str(target), total)


START_TIMEOUT = 60.0  # seconds a background server may take to accept connections
STOP_TIMEOUT = 20.0


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port nothing listens on right now (the OS picks it)."""
    import socket

    with socket.socket() as s:
        s.bind((host, 0))
        return s.getsockname()[1]


@contextmanager
def serving(app, *, port: int | None = None, host: str = "127.0.0.1", start_timeout: float = START_TIMEOUT):
    """Serve an ASGI `app` with uvicorn in a daemon thread until the block ends; yields its base URL.

    Returns only once the server accepts connections (ApiError when it has not within
    `start_timeout`, or when it stopped: a port already taken, say). The server is stopped on exit,
    also when the block raises; the caller disposes whatever the app holds."""
    import uvicorn

    port = port or free_port(host)
    server = uvicorn.Server(uvicorn.Config(app, host=host, port=port, log_level="warning", access_log=False,
                                           server_header=False, timeout_keep_alive=30))
    def run():
        try:
            server.run()
        except SystemExit:  # uvicorn exits when it cannot start (a port taken): said below
            pass

    thread = threading.Thread(target=run, name=f"etl-serve-{port}", daemon=True)
    thread.start()
    deadline = time.monotonic() + start_timeout
    try:
        while not server.started:
            if not thread.is_alive():
                raise ApiError(f"the API server on {host}:{port} stopped while starting (is the port taken?)")
            if time.monotonic() > deadline:
                raise ApiError(f"the API server on {host}:{port} did not accept connections within {start_timeout:g} s")
            time.sleep(0.02)
        yield f"http://{host}:{port}"
    finally:
        server.should_exit = True
        thread.join(STOP_TIMEOUT)
        if thread.is_alive():  # a request that does not end: stop waiting for it
            server.force_exit = True
            thread.join(STOP_TIMEOUT)


@contextmanager
def background(settings: Settings, target: MySQLTarget, *, port: int | None = None,
               start_timeout: float = START_TIMEOUT, pool_size: int = 4) -> Iterator[tuple[str, str]]:
    """`etl serve`'s app over `target` on a free loopback port (or `port`) for the length of a block:
    yields (base URL, write token). The token is API_TOKEN when one is configured, else a random
    one made for this run (never printed). The server stops and its pool is closed on exit."""
    from .app import config_from, create_app

    token = settings.api_token or secrets.token_urlsafe(32)
    cfg = config_from(settings.with_(api_token=token), target, pool_size=pool_size)
    app = create_app(cfg)
    try:
        with serving(app, port=port, start_timeout=start_timeout) as url:
            yield url, token
    finally:
        app.state.pool.dispose()
