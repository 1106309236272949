"""The dual-read step's check of the API path itself: what `etl serve` returns for a record equals
the browser's copy of it (the export), field by field, under the adapter's representation rules.

For every store, every record of the export is read once by DuckDB with the transform's own
reading (etl.stage.records.records_sql: each column typed as the transform types it, and
whether the transform rejects the record) and put in its parity bucket (etl.check.buckets
`bucket_expression` over the store's `default_buckets`: tickets by day, cabang, status and
category). Up to `per_bucket` records per bucket are sampled, deterministically (by md5 of the key
and `seed`); with `max_per_store`, at most that many of those per store, the ones first in the same
hash order (a uniform draw across the buckets: small exports have nearly a bucket per record). Records the transform rejects (a value it cannot store, or the loser of a duplicate
key, by etl.core.duplicates' rule) are expected absent: counted as rejected, not fetched. The
others are fetched by key (GET /api/<table>/by-key) and compared with
etl.cutover.adapter.differing_fields, the Python twin of adapter.js `differingFields`; a record
the API does not return is missing.

What was compared is then reported to POST /api/migration/mismatches as the client `etl-migrate`
with the given stage, one report per table, so the cutover's consistency guard
(etl.cutover.guards.consistency) counts it with the browsers' own reports.
"""

from __future__ import annotations

import hashlib
import json
import time
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlencode

import duckdb
import httpx
import polars as pl

from ..check.buckets import bucket_expression
from ..core import duck
from ..core.config import mask_secrets
from ..core.errors import ApiError
from ..core.result import Result
from ..core.stores import STORES, UPLOAD_SESSIONS, Store
from ..cutover.adapter import differing_fields, get_path, mismatch_buckets, to_row
from ..source.folder import ExportFolder
from ..stage.records import format_runs, records_sql, typed_records_sql
from ..stage.steps import duplicate_losers
from .data import LISTS

CLIENT_ID = "etl-migrate"
EXAMPLES = 10  # mismatches named in the result
CUT = 60  # characters of a value shown
MAX_URL_QUERY = 6000  # characters of keys per by-key request (request lines stay far below server limits)
REPORT_MAX = 1000  # mismatches per report (the intake's limit)
MISSING = "(missing in mysql)"


@dataclass(frozen=True)
class StoreReads:
    store: str
    table: str
    records: int  # in the export
    buckets: int  # parity buckets the records fall in
    sampled: int
    compared: int  # sampled minus rejected: fetched through the API
    mismatched: int  # returned, with at least one differing field
    missing: int  # not returned although the transform kept them
    rejected: int  # sampled records the transform rejected: expected absent

    @property
    def ok(self) -> bool:
        return self.mismatched == 0 and self.missing == 0


@dataclass(frozen=True)
class ReadMismatch:
    store: str
    key: str
    field: str
    export: str  # the export's value (JSON text, cut short)
    api: str  # the API's value

    def __str__(self) -> str:
        return f"{self.store} {self.key}: {self.field}: export {self.export} | API {self.api}"


@dataclass(frozen=True)
class VerifyResult(Result):
    url: str  # masked
    stage: str
    per_bucket: int
    seed: int
    stores: tuple[StoreReads, ...]
    mismatches: tuple[ReadMismatch, ...]  # the first EXAMPLES
    reports: int  # reports posted to /api/migration/mismatches
    seconds: float

    @property
    def ok(self) -> bool:
        return all(s.ok for s in self.stores)

    def __str__(self) -> str:
        compared = sum(s.compared for s in self.stores)
        bad = sum(s.mismatched + s.missing for s in self.stores)
        lines = [f"API reads vs export ({self.url}, stage {self.stage}): "
                 + (f"all {compared:,} sampled records equal" if self.ok else f"{bad:,} of {compared:,} sampled records differ")
                 + f"; {self.reports} read checks reported as {CLIENT_ID} ({self.seconds:.1f} s)"]
        for s in self.stores:
            lines.append(f"  {s.table:<16} {s.compared:>6,} compared in {s.buckets:,} buckets, {s.mismatched:,} differ, "
                         f"{s.missing:,} missing, {s.rejected:,} rejected in transform (expected absent)"
                         + ("" if s.ok else "  FAILED"))
        lines += [f"  {m}" for m in self.mismatches]
        return "\n".join(lines)


def verify_reads(base_url: str, token: str, export_dir: Path | ExportFolder, *, stage_name: str, per_bucket: int = 3,
                 seed: int = 0, timeout: float = 30.0, client_id: str = CLIENT_ID,
                 stage_dir: Path | None = None, max_per_store: int | None = None) -> VerifyResult:
    """Compare a sample of every bucket of every store of the export with what the API returns
    (module docstring); the comparisons are reported to the API. ApiError when the API cannot be
    read or refuses a report. With `stage_dir`, an upload session's status and counts are expected
    as the load finalizes them (etl.stage.sessions.finalize_sessions), not as the browser held them."""
    if per_bucket < 1 or (max_per_store is not None and max_per_store < 1):
        raise ApiError(f"per_bucket and max_per_store must be at least 1, got {per_bucket} and {max_per_store}")
    t0 = time.monotonic()
    export = ExportFolder.open(export_dir)
    url = mask_secrets(base_url, token)
    stores, examples, reports = [], [], 0
    con = duck.connect()
    try:
        with httpx.Client(base_url=base_url.rstrip("/"), headers={"Authorization": f"Bearer {token}"}, timeout=timeout) as http:
            finalized = _finalized(stage_dir)
            for store in STORES:
                if export.files(store):
                    reads, mismatches, found = _compare(con, http, export, store, per_bucket, seed, token,
                                                        finalized if store is UPLOAD_SESSIONS else {}, max_per_store)
                    reports += _report(http, client_id, stage_name, store, reads.compared, mismatches, token)
                    stores.append(reads)
                    examples += found
    finally:
        con.close()
    return VerifyResult(url, stage_name, per_bucket, seed, tuple(stores), tuple(examples[:EXAMPLES]), reports,
                        round(time.monotonic() - t0, 3))


def _finalized(stage_dir: Path | None) -> dict[str, dict]:
    """Session id -> the fields the load sets when it finalizes the session (rows carry its id)."""
    if stage_dir is None:
        return {}
    from ..stage.folder import StageFolder
    from ..stage.sessions import FINALIZED, expected_sessions

    frame = expected_sessions(StageFolder.open(stage_dir))
    return {r["id"]: {c: r[c] for c in FINALIZED} for r in frame.select("id", *FINALIZED).iter_rows(named=True)}


def _compare(con, http: httpx.Client, export: ExportFolder, store: Store, per_bucket: int, seed: int,
             token: str, finalized: dict[str, dict],
             max_per_store: int | None = None) -> tuple[StoreReads, list[dict], list[ReadMismatch]]:
    """One store: (its figures, the mismatches as the intake takes them, the mismatches to show).
    `finalized`: fields that differ from the browser's copy by the load's rule, when the API holds them."""
    sample, records, buckets = _sample(con, export, store, per_bucket, seed, max_per_store)
    rows = _fetch(http, store, [k for k, bad in zip(sample["__key"], sample["__rejected"]) if not bad], token)
    mismatches, examples, compared, mismatched, missing = [], [], 0, 0, 0
    for key, bad, text in zip(sample["__key"], sample["__rejected"], sample["__json"]):
        if bad:
            continue  # rejected by the transform: expected absent
        compared += 1
        record = json.loads(text)
        row = rows.get(key)
        if row is None:
            missing += 1
            mismatches.append({"key": key[:255], "fields": [MISSING], "buckets": mismatch_buckets(store, to_row(store, record))})
            examples.append(ReadMismatch(store.name, key, MISSING, _cut(record, token), "(none)"))
            continue
        fields = differing_fields(store, record, row)
        rule = finalized.get(key, {})
        fields = [f for f in fields if not (f in rule and row.get(f) == rule[f])]  # finalized by the load, as expected
        if fields:
            mismatched += 1
            mismatches.append({"key": key[:255], "fields": fields, "buckets": mismatch_buckets(store, row)})
            examples += [ReadMismatch(store.name, key, f, _cut(get_path(record, store.column(f).source), token),
                                      _cut(row.get(f), token)) for f in fields]
    reads = StoreReads(store.name, store.table, records, buckets, sample.height, compared, mismatched, missing,
                       int(sample["__rejected"].sum()))
    return reads, mismatches, examples


# ---------------------------------------------------------------- the sample


_SAMPLES: dict[tuple, tuple[pl.DataFrame, int, int]] = {}  # a process's draws, by export and draw (steps 11 and 12)


def _sample(con, export: ExportFolder, store: Store, per_bucket: int, seed: int,
            limit: int | None = None) -> tuple[pl.DataFrame, int, int]:
    """(sampled records: __key, __rejected, __json; records in the export; buckets) of one store.
    The same draw from the same export (its summary names every file's fingerprint) is read once per process."""
    summary = hashlib.sha256(json.dumps(dict(export.summary), sort_keys=True, default=str).encode()).hexdigest()
    key = (str(export.dir.resolve()), summary, store.name, per_bucket, seed, limit)
    if key not in _SAMPLES:
        if len(_SAMPLES) > 20:
            _SAMPLES.clear()
        _SAMPLES[key] = _draw(con, export, store, per_bucket, seed, limit)
    return _SAMPLES[key]


def _draw(con, export: ExportFolder, store: Store, per_bucket: int, seed: int,
          limit: int | None) -> tuple[pl.DataFrame, int, int]:
    key = store.primary_key[0]
    labels = [f"{bucket_expression(store, b)} AS __b{i}" for i, b in enumerate(store.default_buckets)]
    timed = "upload_timestamp" if "upload_timestamp" in store.column_names else None
    frames, offset = [], 0
    runs = format_runs(export.files(store))
    for fmt, paths in runs:
        picks = (f'SELECT "{key}" AS "{key}", CAST("{key}" AS VARCHAR) AS __key, {", ".join(labels)}, '
                 f"md5(CAST(\"{key}\" AS VARCHAR) || ':' || {int(seed)}) AS __h, __why <> '' AS __bad, __fi"
                 + (f', "{timed}"' if timed else "") + " FROM ({})")
        try:  # the transform's fast read first: the careful one took 4.6 of the 4.8 s of 30k tickets
            frame = pl.from_arrow(con.sql(picks.format(typed_records_sql(store, fmt)), params=[[str(p) for p in paths]]).arrow())
        except duckdb.Error:  # a file it refuses whole: read carefully, as the transform does
            frame = pl.from_arrow(con.sql(picks.format(records_sql(store, fmt)), params=[[str(p) for p in paths]]).arrow())
        frames.append(frame.with_columns(pl.int_range(offset, offset + frame.height, dtype=pl.Int64).alias("__pos"),
                                         pl.lit(len(frames)).alias("__run")))
        offset += frame.height
    meta = pl.concat(frames, how="vertical_relaxed") if frames else pl.DataFrame()
    if meta.height == 0:
        return pl.DataFrame(schema={"__key": pl.String, "__rejected": pl.Boolean, "__json": pl.String}), 0, 0
    good = meta.filter(~pl.col("__bad")).with_columns(pl.col("__fi").cast(pl.String).alias("__file"),
                                                       pl.col("__pos").alias("__record"))
    losers = duplicate_losers(store, good.select(key, *([timed] if timed else []), "__file", "__record", "__pos"))["__pos"]
    meta = meta.with_columns((pl.col("__bad") | pl.col("__pos").is_in(losers.implode())).alias("__rejected"))
    groups = [f"__b{i}" for i in range(len(store.default_buckets))]
    picked = meta.sort("__h", "__pos").group_by(groups, maintain_order=True).head(per_bucket)
    if limit is not None:  # still in hash order: the first `limit` are a uniform draw across the buckets
        picked = picked.head(limit)
    picked = picked.sort("__pos")
    buckets = meta.select(groups).unique().height
    # The records' JSON text, for the picked positions only (the same read, in the same order).
    texts = []
    for run, (fmt, paths) in enumerate(runs):
        wanted = picked.filter(pl.col("__run") == run)
        if wanted.height == 0:
            continue
        first = int(meta.filter(pl.col("__run") == run)["__pos"].min())
        sql = (f"SELECT * FROM (SELECT row_number() OVER () - 1 + {first} AS __pos, CAST(\"{key}\" AS VARCHAR) AS __key2, "
               f"__json FROM ({records_sql(store, fmt)})) WHERE __pos IN (SELECT unnest(?::BIGINT[]))")
        texts.append(pl.from_arrow(con.sql(sql, params=[[str(p) for p in paths], wanted["__pos"].to_list()]).arrow()))
    joined = picked.join(pl.concat(texts), on="__pos", how="left")
    shifted = joined.filter(pl.col("__key2").is_null() & pl.col("__key").is_not_null()
                            | (pl.col("__key2") != pl.col("__key")))
    if shifted.height:  # DuckDB read the files in another order the second time: refuse rather than mispair
        raise ApiError(f"{store.name}: the export's records came back in another order on a second read")
    out = joined.select(pl.col("__key").fill_null(""), "__rejected", "__json")
    return out, meta.height, buckets


# ---------------------------------------------------------------- the API


def _fetch(http: httpx.Client, store: Store, keys: list[str], token: str) -> dict[str, dict]:
    """The API's rows of the given keys, by key text."""
    path = next(s.path for s in LISTS if s.table == store.table)
    key, rows, batch, size = store.primary_key[0], {}, [], 0
    todo = list(dict.fromkeys(keys))

    def flush():
        if not batch:
            return
        r = _call(http, "GET", f"{path}/by-key?{urlencode([('key', k) for k in batch])}", token)
        for row in r.json()["data"]:
            rows[str(row[key])] = row
        batch.clear()

    for k in todo:
        n = len(urlencode([("key", k)])) + 1
        if batch and (size + n > MAX_URL_QUERY or len(batch) >= 200):
            flush()
            size = 0
        batch.append(k)
        size += n
    flush()
    return rows


def _report(http: httpx.Client, client_id: str, stage: str, store: Store, compared: int, mismatches: list[dict],
            token: str) -> int:
    """POST what one table's comparison found (in parts of at most REPORT_MAX mismatches); the reports sent."""
    parts = [mismatches[i:i + REPORT_MAX] for i in range(0, len(mismatches), REPORT_MAX)] or [[]]
    left = compared
    for i, part in enumerate(parts):
        n = left if i == len(parts) - 1 else len(part)
        left -= n
        _call(http, "POST", "/api/migration/mismatches", token, json={"clientId": client_id, "stage": stage,
                                                                       "table": store.table, "compared": n, "mismatches": part})
    return len(parts)


def _call(http: httpx.Client, method: str, path: str, token: str, **kw) -> httpx.Response:
    shown = path.split("?")[0]
    try:
        r = http.request(method, path, **kw)
    except httpx.HTTPError as e:
        raise ApiError(mask_secrets(f"{method} {shown}: {type(e).__name__}: {e}", token)) from None
    if r.status_code >= 300:
        first = (r.text.strip().splitlines() or [""])[0][:200]
        raise ApiError(mask_secrets(f"{method} {shown}: HTTP {r.status_code} {first}", token))
    return r


def _cut(v, token: str) -> str:
    text = json.dumps(v, ensure_ascii=False, default=str) if not isinstance(v, str) else json.dumps(v, ensure_ascii=False)
    text = mask_secrets(text, token)
    return text if len(text) <= CUT else text[:CUT - 1] + "…"
