"""Helpers for the API tests: a real uvicorn server on a free loopback port, in a thread of the test."""

from __future__ import annotations

import contextlib
import socket
import threading
import time

import httpx

from etl.api.app import ApiConfig, create_app

TOKEN = "test-write-token-0123456789"
READ_TOKEN = "test-read-token-9876543210"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def running_api(target, *, runtime_dir=None, stall=None, chunk_size=200, pool_size=4):
    """(base URL, app) of `etl serve`'s app over `target`, served by uvicorn until the block ends."""
    import uvicorn

    kw = {"runtime_dir": runtime_dir} if runtime_dir else {}
    app = create_app(ApiConfig(target, TOKEN, READ_TOKEN, chunk_size=chunk_size, pool_size=pool_size, stall=stall, **kw))
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", access_log=False,
                                          timeout_keep_alive=30))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 120
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("the API server did not start")
        time.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{port}", app
    finally:
        server.should_exit = True
        thread.join(20)
        app.state.pool.dispose()


@contextlib.contextmanager
def loaded_database(base, stage):
    """A fresh database of the test server holding `stage` as the real load writes it; dropped after."""
    from conftest import _fresh_database
    from etl.mysql.db import apply_schema
    from etl.mysql.load import load

    target = _fresh_database(base)
    apply_schema(target)
    load(stage, target)
    try:
        yield target
    finally:
        with base.connect(database=False) as conn, conn.cursor() as cur:
            cur.execute(f"DROP DATABASE IF EXISTS `{target.database}`")


def client(base: str, token: str | None = TOKEN) -> httpx.Client:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    return httpx.Client(base_url=base, headers=headers, timeout=30)
