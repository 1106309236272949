"""`etl load --via-api`: the seed's step 7, the stage written through the API's bulk endpoints.

It is the direct load (etl/mysql/load.py) with another writer: the same plan, the same ledger
(`etl_load_ledger`), the same resume and the same read-back check of every chunk. Only the rows
travel differently: POST /api/<table>/bulk in CHUNK_SIZE records, each an INSERT ... ON DUPLICATE
KEY UPDATE of its own on the server.

What that changes, and why it stays exact:
* a chunk's rows and its ledger mark cannot share a transaction (the API commits its own): the
  mark follows the API's answer. A run killed in between leaves the chunk unmarked; the next run
  re-derives it from the stage and the rows the server then holds, finds them there, and writes
  nothing more (the upsert makes a repeated request harmless anyway);
* the API refuses a request as a whole (422) when one record is bad: that request's records are
  then sent one by one, and only the refused ones go to the rejects file, as on the direct path;
* secondary indexes stay in place (the API is the app's, serving reads meanwhile).

The ledger and the checks read MySQL directly (MYSQL_URI): the ledger lives in the target
database, so the loader needs a read-and-ledger connection beside the API.
"""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal
from pathlib import Path

import httpx
import polars as pl

from ..mysql.bulk import Refusal
from ..mysql.db import MySQLTarget
from ..core.errors import ApiError
from ..core.stores import Store

PATHS = {"tickets": "/api/tickets", "incidents": "/api/incidents", "customers": "/api/customers",
         "vendors": "/api/vendors", "upload_sessions": "/api/upload-sessions"}


def _json_value(v):
    if isinstance(v, datetime):
        return v.isoformat()  # naive: the stage's times are UTC, which the API takes zone-less times as
    if isinstance(v, (Decimal, date)):
        return str(v)
    return v


class ApiWriter:
    """bulk.Writer's interface (prepare, write, method), writing through POST <path>/bulk."""

    upserts = True
    method = "api"
    fallback = None  # bulk.Writer's note on a method it fell back from: none here

    def __init__(self, client: httpx.Client, chunk_size: int, store: Store):
        self.client, self.chunk_size, self.store = client, chunk_size, store
        self.path = PATHS[store.table] + "/bulk"

    def prepare(self, rows: pl.DataFrame) -> None:
        return None

    def _post(self, records: list[dict]) -> httpx.Response:
        try:
            r = self.client.post(self.path, json={"records": records})
        except httpx.HTTPError as e:
            raise ApiError(f"POST {self.path} failed: {type(e).__name__}; run the load again to continue",
                           store=self.store.name) from None
        if r.status_code in (401, 403):
            raise ApiError(f"POST {self.path} answered {r.status_code}: the token may not write", store=self.store.name)
        if r.status_code >= 500 or r.status_code not in (200, 422):
            raise ApiError(f"POST {self.path} answered {r.status_code}: {r.text[:200]}; run the load again to continue",
                           store=self.store.name)
        return r

    def write(self, table: str, rows: pl.DataFrame, prepared=None) -> tuple[int, list[Refusal]]:
        """Send `rows` in CHUNK_SIZE requests; (rows written, refused rows by position in `rows`)."""
        records = [{k: _json_value(v) for k, v in rec.items()} for rec in rows.select(self.store.column_names).to_dicts()]
        written, refused = 0, []
        for start in range(0, len(records), self.chunk_size):
            part = records[start:start + self.chunk_size]
            r = self._post(part)
            if r.status_code == 200:
                written += len(part)  # each planned row is new or changed: one row written each
                continue
            for i, rec in enumerate(part):  # a bad record refuses the request: find it, keep the others
                one = self._post([rec])
                if one.status_code == 200:
                    written += 1
                else:
                    refused.append(Refusal(start + i, 422, one.json().get("error", one.text)[:500]))
        return written, refused


def load_via_api(stage_dir: Path, target: MySQLTarget, base_url: str, token: str | None, *, chunk_size: int,
                 batch_rows: int | None = None, delete_missing: bool = False, progress=None, timeout: float = 120.0,
                 wait: float = 0):
    """etl.load.load with the rows sent through the API (see the module docstring)."""
    from ..mysql.load import load

    if not token:
        raise ApiError("the load through the API needs API_TOKEN (a token that may write)")
    headers = {"Authorization": f"Bearer {token}"}
    with httpx.Client(base_url=base_url, headers=headers, timeout=timeout) as client:
        try:
            health = client.get("/health")
        except httpx.HTTPError as e:
            raise ApiError(f"the API at {base_url} cannot be reached: {type(e).__name__}") from None
        if health.status_code != 200:
            raise ApiError(f"the API at {base_url} is not healthy: /health answered {health.status_code}")
        return load(stage_dir, target, chunk_size=chunk_size, batch_rows=batch_rows, delete_missing=delete_missing,
                    progress=progress, wait=wait, writer=lambda conn, store, method, workdir: ApiWriter(client, chunk_size, store))
