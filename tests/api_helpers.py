"""Helpers for the API tests: a real uvicorn server on a free loopback port, in a thread of the test."""

from __future__ import annotations

import contextlib

import httpx

from etl.api.app import ApiConfig, create_app
from etl.api.serve import free_port, serving  # noqa: F401 - free_port: used by tests

TOKEN = "test-write-token-0123456789"
READ_TOKEN = "test-read-token-9876543210"


@contextlib.contextmanager
def running_api(target, *, runtime_dir=None, stall=None, chunk_size=200, pool_size=4):
    """(base URL, app) of `etl serve`'s app over `target`, served by uvicorn until the block ends."""
    kw = {"runtime_dir": runtime_dir} if runtime_dir else {}
    app = create_app(ApiConfig(target, TOKEN, READ_TOKEN, chunk_size=chunk_size, pool_size=pool_size, stall=stall, **kw))
    try:
        with serving(app, start_timeout=120) as url:
            yield url, app
    finally:
        app.state.pool.dispose()


@contextlib.contextmanager
def loaded_database(base, stage):
    """A fresh database of the test server holding `stage` as the real load writes it; dropped after."""
    from conftest import _fresh_database
    from etl import apply_schema, load

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
