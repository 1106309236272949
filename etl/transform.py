"""Transform: the normalized export -> typed, staged Parquet (plus rejects with reasons).

Reading: DuckDB reads each store's JSON (array or NDJSON) with one JSON-typed column per
top-level field and flattens the described source paths (``duration.rawHours``) into text
columns named for their target: big JSON never passes through Python objects.

Transforming: Polars, vectorized, driven by etl/stores.py. `STEPS` is the named sequence of
pure ``frame -> frame`` steps applied to every store; the cross-store step that rebuilds
upload sessions runs after them. Values are carried as they are (this is a migration, not a
clean-up): a value that cannot be represented in its column makes its record a reject with
store, key, field, value excerpt and reason, so for every store records in = staged + rejected.

Rules, in one place:
* text: kept byte for byte (tabs, trailing spaces, NUL, 4-byte UTF-8); `""` stays `""`,
  absent and `null` both become NULL (the one state MySQL cannot tell apart). Longer than
  the column (characters for VARCHAR, bytes for TEXT) -> reject.
* times: zone-less ISO (the app's openTime) is UTC wall-clock; `...Z` and `+hh:mm` are
  converted to UTC; a Date instant (`{"$date": ms}`) or a bare epoch-ms number is taken as
  is. Kept at millisecond precision, naive UTC. `""` in an optional time -> NULL (a DATETIME
  cannot hold ''); anything else that does not parse -> reject; a required time that is
  missing -> reject.
* numbers: JSON numbers or numeric strings; anything else -> reject. Decimals are rounded
  to the column's scale (what MySQL would store) and rejected when they do not fit.
* durations are never recomputed: the stored rawHours/formatted are what users saw. The
  summary reports the offset between rawHours and close - open (the browser's UTC offset).
* duplicate primary keys (compared as MySQL's PAD SPACE collations do, i.e. ignoring
  trailing spaces): the record with the latest uploadTimestamp wins, ties go to the one
  later in the export (a later put() overwrites in IndexedDB); the others are rejected
  with reason `duplicate key`, naming the record kept.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import duckdb
import polars as pl

from .errors import TransformError
from .stage import SUMMARY, polars_dtype, rejects_path, stage_path
from .stores import SLA_HOURS, STORES, Column, Store

EXPORT_SUMMARY = "export-summary.json"
MAX_OBJECT_BYTES = 32 * 1024 * 1024  # one record may hold a long text field (DuckDB sizes its read buffers by this)
EXCERPT = 120
# Incidents carry no session: one upload is one tight cluster of importedAt values. A gap
# longer than this starts the next upload (uploads seen in real data are minutes apart, the
# records of one upload milliseconds apart).
INCIDENT_UPLOAD_GAP_MS = 60_000
REJECT_SCHEMA = pl.Schema(
    {"store": pl.String, "file": pl.String, "record": pl.Int64, "key": pl.String,
     "field": pl.String, "value": pl.String, "reason": pl.String}
)
META = ("__file", "__record")  # where each record came from: file and 0-based index in it
# A record's problems travel in one text column: "field<US>reason<US>value" items joined by <RS>.
US, RS = "\x1f", "\x1e"
RAW = "__raw_"  # the inner query's text columns


# ---------------------------------------------------------------- reading and typing


def export_files(export_dir: Path, store: Store) -> list[tuple[Path, str]]:
    """(path, DuckDB JSON format) of a store's files, from the export summary."""
    summary = json.loads((Path(export_dir) / EXPORT_SUMMARY).read_text())
    entries = summary.get("files", {}).get(store.name, [])
    entries = [{"path": e} if isinstance(e, str) else e for e in entries]  # the app's own summary lists names
    fmt = {".ndjson": "newline_delimited", ".jsonl": "newline_delimited", ".json": "array"}
    return [(Path(export_dir) / e["path"], e.get("format") or fmt.get(Path(e["path"]).suffix, "auto")) for e in entries]


def _q(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _lit(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def _duck() -> duckdb.DuckDBPyConnection:
    con = duckdb.connect()
    con.sql("SET enable_progress_bar = false")
    con.sql("SET TimeZone = 'UTC'")  # zone-less times are UTC wall-clock
    return con


def _typed_sql(col: Column) -> tuple[str, str]:
    """(value, problem) SQL over the column's raw text `r`: the typed value and, when the
    value cannot be represented in the column, why (NULL when it can)."""
    r = _q(RAW + col.name)
    if col.kind == "varchar":
        return r, f"CASE WHEN length({r}) > {col.length} THEN 'text longer than the column (' || length({r}) || ' > {col.length} characters)' END"
    if col.is_text:  # TEXT / MEDIUMTEXT / JSON text: limited in bytes
        return r, f"CASE WHEN strlen({r}) > {col.max_bytes} THEN 'text longer than the column (' || strlen({r}) || ' > {col.max_bytes} bytes)' END"
    if col.is_time:
        # ISO with or without zone (zone-less = UTC), a Date instant {"$date": ms}, or bare epoch ms.
        epoch = rf"""try_cast(regexp_extract({r}, '^(?:\{{"\$date":\s*)?(-?[0-9]+(?:\.[0-9]+)?)\}}?$', 1) AS DOUBLE)"""
        # A trailing +hh:mm offset needs the zone-aware cast; every other form parses as plain
        # TIMESTAMP (which would ignore an offset), several times faster.
        iso = (f"CASE WHEN substr({r}, -6, 1) IN ('+', '-') THEN try_cast({r} AS TIMESTAMPTZ)::TIMESTAMP "
               f"ELSE try_cast(rtrim({r}, 'Z') AS TIMESTAMP) END")
        value = (f"CASE WHEN trim({r}) = '' THEN NULL ELSE date_trunc('millisecond', coalesce("
                 f"{iso}, epoch_ms(try_cast(round({epoch}) AS BIGINT)))) END")
        missing = "required time is missing" if not col.nullable else None
        why = (f"CASE WHEN {r} IS NULL OR trim({r}) = '' THEN {_lit(missing) if missing else 'NULL'} "
               f"WHEN ({value}) IS NULL THEN 'time does not parse' "
               f"WHEN ({value}) NOT BETWEEN TIMESTAMP '1000-01-01' AND TIMESTAMP '9999-12-31 23:59:59.999' "
               f"THEN 'time outside the DATETIME range' END")
        return value, why
    if col.kind == "bool":
        value = f"CASE WHEN lower({r}) IN ('true', '1') THEN true WHEN lower({r}) IN ('false', '0') THEN false END"
        return value, f"CASE WHEN {r} IS NOT NULL AND ({value}) IS NULL THEN 'not a boolean' END"
    num = f"try_cast(trim({r}) AS DOUBLE)"
    not_number = f"WHEN {r} IS NOT NULL AND ({num} IS NULL OR NOT isfinite({num})) THEN 'not a number'"
    if col.kind == "decimal":
        limit = 10 ** (col.precision - col.scale) - 0.5 * 10 ** -col.scale
        value = f"CASE WHEN abs({num}) < {limit!r} THEN CAST(round({num}, {col.scale}) AS {col.mysql_type}) END"
        return value, (f"CASE {not_number} WHEN {r} IS NOT NULL AND NOT abs({num}) < {limit!r} "
                       f"THEN 'number does not fit {col.mysql_type}' END")
    bits = 31 if col.kind == "int" else 63
    duck = "INTEGER" if col.kind == "int" else "BIGINT"
    ok = f"{num} = round({num}) AND abs({num}) < {float(2 ** bits)!r}"
    return (f"CASE WHEN {ok} THEN CAST({num} AS {duck}) END",
            f"CASE {not_number} WHEN {r} IS NOT NULL AND NOT ({ok}) THEN 'not an integer that fits {col.mysql_type}' END")


def _read_sql(store: Store, fmt: str, typed: bool) -> str:
    """One row per record: each described column typed, plus `__why` (its problems).

    The inner query flattens each source path into text named for its target column:
    typed=True reads each top-level field as VARCHAR (non-string JSON arrives as its JSON
    text, a Date as `{"$date":ms}`) and nested objects as structs of VARCHAR: fast, but DuckDB
    refuses the whole file when a nested field is not an object. typed=False reads every field
    as JSON and extracts with json functions: slower, refuses nothing, and reports nested
    fields that are not objects.
    """
    sourced = [c for c in store.columns if c.source]
    nested: dict[str, list[str]] = {}
    for c in sourced:
        if "." in c.source:
            top, sub = c.source.split(".", 1)
            nested.setdefault(top, []).append(sub)
    fields = dict.fromkeys(c.source.split(".")[0] for c in sourced)
    if typed:
        types = {f: ("STRUCT(" + ", ".join(f"{_q(s)} VARCHAR" for s in nested[f]) + ")" if f in nested else "VARCHAR")
                 for f in fields}
        raw = [".".join(_q(p) for p in c.source.split(".", 1)) for c in sourced]
        shapes = []
    else:
        types = dict.fromkeys(fields, "JSON")
        raw = [(f"json_extract({_q(c.source.split('.')[0])}, {_lit('$.' + c.source.split('.')[1])})"
                if "." in c.source else _q(c.source)) + "->>'$'" for c in sourced]
        shapes = [f"CASE WHEN json_type({_q(p)}) NOT IN ('OBJECT', 'NULL') THEN "
                  f"{_lit(p)} || '{US}' || {_lit(p + ' is not an object')} || '{US}' || left({_q(p)}::VARCHAR, {EXCERPT}) END"
                  for p in nested]
    columns = "{" + ", ".join(f"{_lit(f)}: {_lit(t)}" for f, t in types.items()) + "}"
    inner = (f"SELECT {', '.join(f'{e} AS {_q(RAW + c.name)}' for e, c in zip(raw, sourced))}"
             f"{''.join(', ' + s + f' AS __shape{i}' for i, s in enumerate(shapes))} "
             f"FROM read_json(?, format={_lit(fmt)}, columns={columns}, maximum_object_size={MAX_OBJECT_BYTES})")
    values, problems = [], [f"__shape{i}" for i in range(len(shapes))]
    for c in sourced:
        value, why = _typed_sql(c)
        values.append(f"{value} AS {_q(c.name)}")
        problems.append(f"CASE WHEN ({why}) IS NOT NULL THEN {_lit(c.source)} || '{US}' || ({why}) || '{US}' "
                        f"|| coalesce(left({_q(RAW + c.name)}, {EXCERPT}), '') END")
    for k in store.primary_key:
        problems.append(f"CASE WHEN {_q(RAW + k)} IS NULL OR trim({_q(RAW + k)}) = '' THEN "
                        f"{_lit(store.column(k).source)} || '{US}no primary key{US}' END")
    return f"SELECT {', '.join(values)}, concat_ws('{RS}', {', '.join(problems)}) AS __why FROM ({inner})"


def read_store(export_dir: Path, store: Store) -> pl.DataFrame:
    """One store as a typed frame (stage dtypes) plus __file, __record and __why."""
    frames = []
    con = _duck()
    for path, fmt in export_files(export_dir, store):
        try:
            try:
                table = con.sql(_read_sql(store, fmt, typed=True), params=[str(path)]).to_arrow_table()
            except duckdb.Error:  # e.g. a nested field that is not an object: read it carefully
                table = con.sql(_read_sql(store, fmt, typed=False), params=[str(path)]).to_arrow_table()
        except duckdb.Error as e:
            raise TransformError(f"cannot read: {str(e).splitlines()[0]}", file=str(path), store=store.name) from None
        frame = pl.from_arrow(table)
        frames.append(frame.with_columns(
            [pl.col(c.name).cast(polars_dtype(c)) for c in store.columns if c.source]
            + [pl.lit(path.name).alias("__file"), pl.int_range(pl.len(), dtype=pl.Int64).alias("__record")]))
    con.close()
    if not frames:
        schema = {c.name: polars_dtype(c) for c in store.columns if c.source}
        schema.update({"__why": pl.String(), "__file": pl.String(), "__record": pl.Int64()})
        return pl.DataFrame(schema=schema)
    return pl.concat(frames, how="vertical")


# ---------------------------------------------------------------- the per-store steps


def add_derived(store: Store):
    """Columns the export does not hold: NULL here, filled by the steps that know them."""

    def step(frame: pl.DataFrame) -> pl.DataFrame:
        missing = [c for c in store.columns if c.source is None and c.name not in frame.columns]
        return frame.with_columns(pl.lit(None, polars_dtype(c)).alias(c.name) for c in missing)

    return step


def sla_bands(store: Store):
    """Tickets: resolved within 4/8/24 h, from the stored duration (NULL while not closed)."""

    def step(frame: pl.DataFrame) -> pl.DataFrame:
        if store.name != "tickets":
            return frame
        hours = pl.col("duration_raw_hours").cast(pl.Float64)
        closed = pl.col("close_time").is_not_null() & hours.is_not_null()
        return frame.with_columns(pl.when(closed).then(hours <= h).alias(f"sla_{h}h") for h in SLA_HOURS)

    return step


STEPS = (add_derived, sla_bands)


def split_rejects(store: Store, frame: pl.DataFrame) -> tuple[pl.DataFrame, pl.DataFrame]:
    """(good rows, one reject row per problem) from the `__why` column."""
    bad = pl.col("__why") != ""
    good = frame.filter(~bad).drop("__why")
    flagged = frame.filter(bad)
    if flagged.height == 0:
        return good, pl.DataFrame(schema=REJECT_SCHEMA)
    rejects = (
        flagged.select(pl.lit(store.name).alias("store"), pl.col("__file").alias("file"), pl.col("__record").alias("record"),
                       _key_text(store).alias("key"), pl.col("__why").str.split(RS).alias("p"))
        .explode("p")
        .with_columns(pl.col("p").str.split(US).list.to_struct(fields=["field", "reason", "value"]))
        .unnest("p")
    )
    return good, rejects.select(REJECT_SCHEMA.names()).cast(REJECT_SCHEMA)


def _key_text(store: Store) -> pl.Expr:
    return pl.concat_str([pl.col(k).cast(pl.String) for k in store.primary_key], separator="|", ignore_nulls=False)


def dedupe(store: Store, frame: pl.DataFrame) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Resolve duplicate primary keys by the documented rule; the losers become rejects."""
    if frame.height == 0:
        return frame, pl.DataFrame(schema=REJECT_SCHEMA)
    norm = [pl.col(k).cast(pl.String).str.strip_chars_end(" ").alias(f"__norm_{k}") for k in store.primary_key]
    if not frame.select(pl.struct(norm).is_duplicated().any()).item():
        return frame, pl.DataFrame(schema=REJECT_SCHEMA)  # the usual case: nothing to resolve
    order_by = ["upload_timestamp"] if "upload_timestamp" in frame.columns else []
    ranked = frame.with_columns(norm).with_columns(
        pl.int_range(pl.len()).alias("__order")
    ).sort([*order_by, "__order"], nulls_last=False)
    keys = [f"__norm_{k}" for k in store.primary_key]
    last = ranked.group_by(keys, maintain_order=True).agg(pl.col("__order").last().alias("__winner"))
    ranked = ranked.join(last, on=keys, how="left")
    winners = ranked.filter(pl.col("__order") == pl.col("__winner"))
    losers = ranked.filter(pl.col("__order") != pl.col("__winner"))
    kept = winners.sort("__order").drop([*keys, "__order", "__winner"])
    if losers.height == 0:
        return kept, pl.DataFrame(schema=REJECT_SCHEMA)
    win_ref = winners.select([*keys, pl.format("{} record {}", pl.col("__file"), pl.col("__record")).alias("__kept")])
    losers = losers.join(win_ref, on=keys, how="left")
    rejects = pl.DataFrame({
        "store": store.name, "file": losers["__file"], "record": losers["__record"],
        "key": losers.select(_key_text(store)).to_series(), "field": store.column(store.primary_key[0]).source,
        "value": losers.select(_key_text(store)).to_series().str.slice(0, EXCERPT),
        "reason": ("duplicate key: kept " + losers["__kept"] + " (latest uploadTimestamp, then later in the export)"),
    }, schema=REJECT_SCHEMA)
    return kept, rejects


# ---------------------------------------------------------------- upload sessions


def _legacy_session_id(data_type: str, label: pl.Expr) -> pl.Expr:
    return pl.concat_str([pl.lit(f"legacy-{data_type}-"), label.map_batches(
        lambda s: pl.Series([hashlib.sha1(v.encode()).hexdigest()[:16] for v in s.to_list()]),
        return_dtype=pl.String)])


def assign_sessions(frames: dict[str, pl.DataFrame]) -> tuple[dict[str, pl.DataFrame], int]:
    """Give every ticket, customer and incident an upload session, rebuilding the missing ones.

    * a record whose batchId names a session keeps/gets that session;
    * tickets/customers with no batch: one reconstructed session per store and file name, or
      per store and upload day (UTC) when even the file name is missing;
    * incidents (never tied to sessions): one reconstructed session per upload, i.e. per
      cluster of importedAt values with gaps under INCIDENT_UPLOAD_GAP_MS.
    Reconstructed sessions are marked `reconstructed` and carry their counts.
    """
    sessions = frames.get("uploadSessions")
    known = set(sessions["id"].to_list()) if sessions is not None else set()
    new_sessions = []
    for name in ("tickets", "customers", "incidents"):
        frame = frames.get(name)
        if frame is None or frame.height == 0:
            continue
        sid = pl.col("upload_session_id")
        if name == "incidents":
            t = pl.col("imported_at").dt.epoch("ms").fill_null(pl.col("upload_timestamp"))
            frame = frame.with_row_index("__pos").sort(t, nulls_last=True)
            cluster = (t.diff().fill_null(0) > INCIDENT_UPLOAD_GAP_MS).cum_sum()
            first = t.first().over(cluster)
            label = pl.when(first.is_not_null()).then(first.cast(pl.String)).otherwise(pl.lit("unknown"))
            frame = frame.with_columns(
                pl.coalesce(sid, pl.concat_str([pl.lit("incidents-upload-"), label])).alias("upload_session_id"),
                (sid.is_null()).alias("__rebuilt"),
            ).sort("__pos").drop("__pos")
        else:
            day = pl.from_epoch(pl.col("upload_timestamp"), time_unit="ms").dt.strftime("%Y-%m-%d").fill_null("unknown-day")
            label = pl.when(pl.col("file_name").is_not_null()).then("file:" + pl.col("file_name")).otherwise("day:" + day)
            by_batch = pl.when(pl.col("batch_id").is_not_null()).then(pl.col("batch_id"))
            frame = frame.with_columns(
                pl.coalesce(sid, by_batch, _legacy_session_id(name, label)).alias("upload_session_id"),
            ).with_columns(
                (~pl.col("upload_session_id").is_in(list(known))).alias("__rebuilt")
            )
        rebuilt = frame.filter(pl.col("__rebuilt") & ~pl.col("upload_session_id").is_in(list(known)))
        if rebuilt.height:
            new_sessions.append(rebuilt.group_by("upload_session_id").agg(
                pl.col("file_name").drop_nulls().first(),
                pl.col("file_hash").drop_nulls().first(),
                pl.col("upload_timestamp").min(),
                pl.len().cast(pl.Int32).alias("record_count"),
            ).with_columns(pl.lit(name).alias("data_type")))
        frames[name] = frame.drop("__rebuilt")
    built = 0
    store = next(s for s in STORES if s.name == "uploadSessions")
    if sessions is not None:
        sessions = sessions.with_columns(pl.lit(False).alias("reconstructed")).select(
            [*META, *(pl.col(c.name).cast(polars_dtype(c)) for c in store.columns)])
    if new_sessions:
        rows = pl.concat(new_sessions).sort("upload_session_id").rename({"upload_session_id": "id"})
        rows = rows.with_columns(
            pl.col("record_count").alias("success_count"), pl.lit(0, pl.Int32).alias("error_count"),
            pl.lit("completed").alias("status"), pl.lit(True).alias("reconstructed"),
            pl.lit(None, pl.Int64).alias("file_size"), pl.lit(None, pl.String).alias("error_log"),
            pl.lit(None, pl.String).alias("__file"), pl.lit(None, pl.Int64).alias("__record"),
        ).select([*META, *(pl.col(c.name).cast(polars_dtype(c)) for c in store.columns)])
        built = rows.height
        sessions = rows if sessions is None else pl.concat([sessions, rows])
    if sessions is not None:
        frames["uploadSessions"] = sessions
    return frames, built


# ---------------------------------------------------------------- the stage


@dataclass(frozen=True)
class StoreCounts:
    records_in: int
    staged: int
    rejected: int
    duplicates: int

    @property
    def balanced(self) -> bool:
        return self.records_in == self.staged + self.rejected


@dataclass(frozen=True)
class TransformResult:
    export_dir: str
    stage_dir: str
    counts: dict[str, StoreCounts]
    reconstructed_sessions: int
    findings: tuple[str, ...]
    seconds: float
    missing_stores: tuple[str, ...] = field(default=())

    def __str__(self) -> str:
        lines = [f"staged {self.export_dir} -> {self.stage_dir} in {self.seconds:.1f} s"]
        lines.append(f"  {'store':<15}{'in':>10}{'staged':>10}{'rejected':>10}{'dupes':>8}")
        for name, c in self.counts.items():
            lines.append(f"  {name:<15}{c.records_in:>10,}{c.staged:>10,}{c.rejected:>10,}{c.duplicates:>8,}")
        if self.reconstructed_sessions:
            lines.append(f"  reconstructed upload sessions: {self.reconstructed_sessions}")
        lines += [f"  note: {f}" for f in self.findings]
        return "\n".join(lines)


def transform_store(export_dir: Path, store: Store) -> tuple[pl.DataFrame, pl.DataFrame, int, int]:
    """(staged frame with META columns, rejects, records in, duplicates) of one store."""
    frame = read_store(export_dir, store)
    n_in = frame.height
    for make in STEPS:
        frame = make(store)(frame)
    good, rejects = split_rejects(store, frame)
    good, dupes = dedupe(store, good)
    return good, pl.concat([rejects, dupes]), n_in, dupes.height


def duration_offset(tickets: pl.DataFrame) -> str | None:
    """The median gap between stored rawHours and close - open: the uploading browser's UTC offset."""
    if tickets.height == 0:
        return None
    gap = tickets.filter(pl.col("duration_raw_hours").cast(pl.Float64) > 0, pl.col("close_time").is_not_null()).select(
        (pl.col("duration_raw_hours").cast(pl.Float64)
         - (pl.col("close_time") - pl.col("open_time")).dt.total_milliseconds() / 3_600_000).median()
    ).item()
    if gap is None:
        return None
    return (f"stored ticket durations exceed close - open by a median {gap:+.2f} h (the uploading browser's UTC "
            "offset: openTime was read as local time); carried as stored, not recomputed")


def transform(export_dir: Path, stage_dir: Path) -> TransformResult:
    """Stage every store of an export. The stage folder appears complete or not at all."""
    t0 = time.perf_counter()
    export_dir, stage_dir = Path(export_dir), Path(stage_dir)
    if not (export_dir / EXPORT_SUMMARY).is_file():
        raise TransformError("not an export folder (no export-summary.json): run `etl export` first", file=str(export_dir))
    frames, rejects, counts, missing = {}, {}, {}, []
    for store in STORES:
        if not export_files(export_dir, store):
            missing.append(store.name)
            if store.required:
                raise TransformError("the export has no file for this store", file=str(export_dir), store=store.name)
            continue
        frames[store.name], rejects[store.name], n_in, dupes = transform_store(export_dir, store)
        counts[store.name] = (n_in, dupes)
    frames, rebuilt = assign_sessions(frames)
    findings = [f for f in [duration_offset(frames["tickets"])] if f]
    if missing:
        findings.append(f"the export holds no {', '.join(missing)}: sessions were reconstructed from the records")

    tmp = stage_dir.with_name(f".{stage_dir.name}.tmp-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    (tmp / "rejects").mkdir(parents=True)
    result_counts = {}
    for store in STORES:
        if store.name not in frames:
            continue
        staged = frames[store.name].select([pl.col(c.name).cast(polars_dtype(c)) for c in store.columns])
        staged = staged.sort(list(store.primary_key))  # the loader wants primary-key order
        staged.write_parquet(stage_path(tmp, store), compression="lz4", statistics=True)
        rej = rejects.get(store.name, pl.DataFrame(schema=REJECT_SCHEMA))
        rej.write_parquet(rejects_path(tmp, store))
        n_in, dupes = counts.get(store.name, (0, 0))
        if store.name == "uploadSessions":
            n_in += rebuilt  # reconstructed sessions are records the transform adds
        result_counts[store.name] = StoreCounts(n_in, staged.height, rej.select(pl.struct("file", "record").n_unique()).item()
                                                if rej.height else 0, dupes)
        if not result_counts[store.name].balanced:
            raise TransformError(f"records in != staged + rejected: {result_counts[store.name]}", store=store.name)
    result = TransformResult(str(export_dir), str(stage_dir), result_counts, rebuilt, tuple(findings),
                             time.perf_counter() - t0, tuple(missing))
    summary = {k: v for k, v in asdict(result).items()}
    (tmp / SUMMARY).write_text(json.dumps(summary, indent=2, ensure_ascii=False))
    old = stage_dir.with_name(f".{stage_dir.name}.old-{os.getpid()}")
    if stage_dir.exists():
        stage_dir.rename(old)
    tmp.rename(stage_dir)
    shutil.rmtree(old, ignore_errors=True)
    return result
