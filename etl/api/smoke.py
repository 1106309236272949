"""The playbook's API smoke test: every endpoint `etl serve` has answers as expected, writing nothing.

The endpoints are read from the API's own OpenAPI document (/openapi.json), so a new one is
covered without a list here. For each operation:

* GET without path parameters: asked with the token (a small page: limit=2 where the endpoint
  pages) and expected to answer 200 with JSON; /health must say the database is connected, the
  list endpoints (etl/api/data.py LISTS) must give {success, data, pagination} with the table's
  columns in every row. An operation with a required query parameter is asked without it and
  must refuse with a 4xx (422) naming it.
* any other method (they write): only sent an invalid request (an array where an object is
  expected, a path parameter longer than its schema allows), which must be refused with a 4xx
  before anything is written. A write whose path parameter has no length limit is skipped, and
  the result says so.
* every operation the document marks as protected (a security requirement) is also asked
  without a token, and must be refused with 401 or 403.

The base URL and the token never appear in the result but masked.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import httpx

from ..core.config import mask_secrets
from ..core.errors import ApiError
from ..core.result import Result
from ..core.stores import store as find_store
from .data import LISTS

PAGE = 2  # rows asked of a list endpoint
READ, NO_TOKEN, INVALID = "read", "no token", "invalid input"
SKIPPED = "skipped"


@dataclass(frozen=True)
class EndpointCheck:
    method: str
    path: str
    check: str  # read / no token / invalid input
    status: int | None  # None: not sent (skipped) or no answer
    ms: float
    ok: bool
    why: str  # what was expected and, when it failed, what came instead

    def __str__(self) -> str:
        return f"{self.method} {self.path} ({self.check}): {self.status if self.status is not None else '-'} {self.why}"


@dataclass(frozen=True)
class SmokeResult(Result):
    url: str  # masked
    endpoints: tuple[EndpointCheck, ...]
    seconds: float

    @property
    def ok(self) -> bool:
        return bool(self.endpoints) and all(e.ok for e in self.endpoints)

    @property
    def failed(self) -> tuple[EndpointCheck, ...]:
        return tuple(e for e in self.endpoints if not e.ok)

    @property
    def skipped(self) -> tuple[EndpointCheck, ...]:
        return tuple(e for e in self.endpoints if e.status is None and e.ok)

    def __str__(self) -> str:
        operations = {(e.method, e.path) for e in self.endpoints}
        lines = [f"  FAILED {e}" for e in self.failed] + [f"  skipped {e}" for e in self.skipped]
        verdict = "ok" if self.ok else f"{len(self.failed)} failed"
        lines.append(f"API smoke test of {self.url}: {verdict}: {len(operations)} endpoints, {len(self.endpoints)} checks "
                     f"({len(self.skipped)} skipped) in {self.seconds:.1f} s; nothing written")
        return "\n".join(lines)


def smoke_test(base_url: str, token: str, *, timeout: float = 30.0) -> SmokeResult:
    """Ask every endpoint of the API's OpenAPI document what the module docstring says; never writes.
    ApiError when the document itself cannot be had."""
    t0 = time.monotonic()
    base = base_url.rstrip("/")
    checks: list[EndpointCheck] = []
    with httpx.Client(base_url=base, timeout=timeout) as anon, \
            httpx.Client(base_url=base, timeout=timeout, headers={"Authorization": f"Bearer {token}"}) as http:
        try:
            r = anon.get("/openapi.json")
            r.raise_for_status()
            doc = r.json()
        except (httpx.HTTPError, ValueError) as e:
            raise ApiError(mask_secrets(f"no OpenAPI document at {base}/openapi.json: {type(e).__name__}: {e}", token)) from None
        for path, item in sorted(doc.get("paths", {}).items()):
            for method, op in item.items():
                if method.upper() not in ("GET", "POST", "PUT", "PATCH", "DELETE"):
                    continue
                method = method.upper()
                checks += _check(http, anon, method, path, op, token)
    return SmokeResult(mask_secrets(base, token), tuple(checks), round(time.monotonic() - t0, 3))


def _check(http, anon, method: str, path: str, op: dict, token: str) -> list[EndpointCheck]:
    params = op.get("parameters", [])
    path_params = [p for p in params if p.get("in") == "path"]
    required = [p["name"] for p in params if p.get("in") == "query" and p.get("required")]
    out = []
    if method == "GET" and not path_params:
        if required:
            out.append(_ask(http, method, path, READ, token, expect=_refused(f"without its required {', '.join(required)}")))
        else:
            query = {"limit": PAGE} if any(p.get("name") == "limit" for p in params) else None
            out.append(_ask(http, method, path, READ, token, params=query, expect=_expect_read(path)))
        request = {}
    else:
        request = _invalid(path, path_params, op)
        if request is None:
            out.append(EndpointCheck(method, path, INVALID, None, 0.0, True,
                                     "skipped: it writes, and no invalid request is known to be refused before writing"))
        else:
            out.append(_ask(http, method, path, INVALID, token, **request,
                            expect=_refused("an invalid request, before writing")))
    if op.get("security"):
        if request is None:  # a write with no request known to be refused: not sent, even without a token
            out.append(EndpointCheck(method, path, NO_TOKEN, None, 0.0, True, "skipped with the write above"))
        else:
            out.append(_ask(anon, method, path, NO_TOKEN, token, **request, expect=_unauthorized))
    return out


def _invalid(path: str, path_params: list[dict], op: dict) -> dict | None:
    """A request the endpoint must refuse before it writes: a path parameter one character longer
    than its schema allows, and (when it takes a body) a JSON array where an object is expected."""
    url = path
    for p in path_params:
        limit = p.get("schema", {}).get("maxLength")
        if limit is None:
            return None
        url = url.replace("{" + p["name"] + "}", "x" * (limit + 1))
    request = {"url": url}
    if "requestBody" in op:
        request["json"] = ["not an object"]
    return request


# ---------------------------------------------------------------- expectations: (response) -> why or None


def _refused(what: str):
    def expect(r: httpx.Response) -> str | None:
        return None if 400 <= r.status_code < 500 else f"expected a 4xx for {what}"
    expect.text = f"refused (4xx) {what}"
    return expect


def _unauthorized(r: httpx.Response) -> str | None:
    return None if r.status_code in (401, 403) else "expected 401 or 403 without a token"


_unauthorized.text = "refused without a token (401/403)"


def _expect_read(path: str):
    spec = next((s for s in LISTS if s.path == path), None)

    def expect(r: httpx.Response) -> str | None:
        if r.status_code != 200:
            return "expected 200"
        if path == "/metrics":
            return None if r.text.startswith("#") or "\n" in r.text else "expected Prometheus text"
        try:
            body = r.json()
        except ValueError:
            return "expected JSON"
        if path == "/health":
            return None if body.get("status") == "ok" and body.get("database") == "connected" else \
                f"expected status ok and database connected, got {body.get('status')}/{body.get('database')}"
        if spec is None:
            return None if isinstance(body, dict) else "expected a JSON object"
        if not (isinstance(body, dict) and body.get("success") is True and isinstance(body.get("data"), list)
                and isinstance(body.get("pagination"), dict)):
            return "expected {success: true, data: [...], pagination: {...}}"
        missing = {"page", "limit", "total", "totalPages"} - set(body["pagination"])
        if missing:
            return f"pagination without {', '.join(sorted(missing))}"
        if len(body["data"]) > PAGE:
            return f"asked for {PAGE} rows, got {len(body['data'])}"
        columns = find_store(spec.table).column_names
        for row in body["data"]:
            lacking = [c for c in columns if c not in row] if isinstance(row, dict) else columns
            if lacking:
                return f"a row without {', '.join(lacking[:5])}"
        return None

    expect.text = "200 with the documented shape" if spec else ("200, database connected" if path == "/health" else "200")
    return expect


def _ask(client: httpx.Client, method: str, path: str, check: str, token: str, *, expect, url: str | None = None,
         **kw) -> EndpointCheck:
    t0 = time.perf_counter()
    try:
        r = client.request(method, url or path, **kw)
    except httpx.HTTPError as e:
        ms = (time.perf_counter() - t0) * 1000
        return EndpointCheck(method, path, check, None, round(ms, 1), False,
                             mask_secrets(f"no answer: {type(e).__name__}: {e}", token))
    ms = (time.perf_counter() - t0) * 1000
    problem = expect(r)
    if problem is None:
        return EndpointCheck(method, path, check, r.status_code, round(ms, 1), True, expect.text)
    first = (r.text.strip().splitlines() or [""])[0][:200]
    return EndpointCheck(method, path, check, r.status_code, round(ms, 1), False,
                         mask_secrets(f"{problem}: HTTP {r.status_code} {first}", token))
