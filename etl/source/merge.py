"""Merge: many browsers' exports -> one export whose records name their source.

Every browser that uploaded a file holds its own copy of the data, so the same record is
often in several exports. Each input is anything `etl export` reads (a profile too; a
normalized export folder is used as it is). Per store, with DuckDB (records stay JSON text)
and Polars (only keys, times and content digests), by the one rule of etl.duplicates:
  1. records with the same primary key are one record: the rule keeps one; when their
     content differs (an edit in one browser) every version is listed as a conflict;
  2. records with different keys but the same natural identity and the same content apart
     from upload metadata (the same Excel row uploaded in two browsers) are one record: the
     rule keeps one; not where one export itself holds two of them (uploaded twice in one
     browser: the app has two records, and so does the merge);
  3. records sharing a natural identity but differing in content are all kept (real data
     holds distinct tickets that share customerId + openTime + openBy) and listed as conflicts.
Each kept record gains "$source" (the export it was taken from) and "$seenIn" (every export
that had it); the transform reads only the app's fields. Beside the store files the export
holds merge-report.json (per-source coverage: records read, records kept from it, records
only it had) and merge-conflicts.ndjson. Exports are given oldest first: on a tie the later wins.
"""

from __future__ import annotations

import json
import shutil
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

import polars as pl

from ..core.result import Result
from ..core import duck
from ..core.duplicates import RULE, winners
from ..core.errors import ExportError
from .export import export, export_files, read_summary
from .inputs import MAX_OBJECT_BYTES, SUMMARY
from ..core.stores import STORES, Store

REPORT, CONFLICTS = "merge-report.json", "merge-conflicts.ndjson"
_ORDER = 1 << 40  # a record's global order: export index * _ORDER + its place in that export


@dataclass(frozen=True)
class MergeResult(Result):
    out_dir: Path
    sources: tuple[str, ...]
    counts: dict[str, int]  # records in the merged export, per store
    coverage: dict[str, dict[str, dict[str, int]]]  # store -> source -> read / kept / only
    conflicts: dict[str, int]  # store -> records listed in the conflicts report
    seconds: float

    def __str__(self) -> str:
        lines = [f"merge of {len(self.sources)} exports -> {self.out_dir} in {self.seconds:.1f} s "
                 f"(same record: same id, or same natural identity and content; kept: {RULE})"]
        lines.append(f"  {'store':<16}{'source':<24}{'read':>10}{'kept':>10}{'only here':>11}")
        for store, per in self.coverage.items():
            for src, c in per.items():
                lines.append(f"  {store:<16}{src:<24}{c['read']:>10,}{c['kept']:>10,}{c['only']:>11,}")
            lines.append(f"  {store:<16}{'= merged':<24}{'':>10}{self.counts[store]:>10,}"
                         f"{'':>11}  conflicts listed: {self.conflicts.get(store, 0):,}")
        return "\n".join(lines)


def merge(sources: list[str | Path], out_dir: Path, *, force: bool = False) -> MergeResult:
    """Merge the exports `sources` (oldest first; "LABEL=PATH" names one) into the export `out_dir`."""
    t0 = time.perf_counter()
    out_dir = Path(out_dir)
    if len(sources) < 2:
        raise ExportError("a merge needs two exports or more")
    labelled = _labels(sources)
    if out_dir.exists() and any(out_dir.iterdir()) and not force:
        raise ExportError("the output folder already holds files: pass --force to replace it", file=str(out_dir))
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    work = out_dir.parent / f".{out_dir.name}.merge-{uuid.uuid4().hex[:8]}"
    (work / "raw").mkdir(parents=True)
    try:
        exports = [_normalized(path, work / "inputs" / label) for label, path in labelled]
        labels = [label for label, _ in labelled]
        counts, coverage, conflicts, report_lines = {}, {}, {}, []
        with duck.connect() as con:
            for store in STORES:
                if not any(export_files(e, store) for e in exports):
                    continue
                n, cov, conf = _merge_store(con, store, exports, labels, work / "raw", report_lines)
                counts[store.name], coverage[store.name], conflicts[store.name] = n, cov, conf
        _write_raw_summary(work / "raw", exports, labels, counts)
        merged = work / "export"
        export(work / "raw", merged)  # the same checks and summary as every export
        _write_json(merged / REPORT, {"sources": dict(zip(labels, map(str, (p for _, p in labelled)))), "rule": RULE,
                                      "counts": counts, "coverage": coverage, "conflicts": conflicts})
        with open(merged / CONFLICTS, "w", encoding="utf-8") as f:
            f.writelines(line + "\n" for line in report_lines)
        if out_dir.exists():
            old = out_dir.parent / f".{out_dir.name}.replaced-{uuid.uuid4().hex[:8]}"
            out_dir.rename(old)
            merged.rename(out_dir)
            shutil.rmtree(old, ignore_errors=True)
        else:
            merged.rename(out_dir)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return MergeResult(out_dir, tuple(labels), counts, coverage, conflicts, time.perf_counter() - t0)


def _labels(sources) -> list[tuple[str, Path]]:
    out, seen = [], set()
    for s in sources:
        text = str(s)
        label, path = text.split("=", 1) if "=" in text and not Path(text).exists() else (None, text)
        path = Path(path)
        label = label or path.name or str(path)
        base, k = label, 2
        while label in seen:
            label, k = f"{base}-{k}", k + 1
        seen.add(label)
        out.append((label, path))
    return out


def _normalized(path: Path, scratch: Path) -> Path:
    """A normalized export folder for `path`: itself when it is one, else `etl export` of it."""
    if path.is_dir() and (path / SUMMARY).is_file():
        try:
            read_summary(path)
            return path
        except ExportError:
            pass  # a browser's download folder: its summary is the snippet's, not a normalized one
    export(path, scratch)
    return scratch


def _read_sql(store: Store, files: list[tuple[Path, str]], src: int) -> str:
    parts = [f"SELECT {src} AS src, {i} AS file, row_number() OVER () - 1 AS pos, json FROM read_json_objects("
             f"{duck.literal(str(p))}, format={duck.literal(fmt)}, maximum_object_size={MAX_OBJECT_BYTES})"
             for i, (p, fmt) in enumerate(files)]
    return " UNION ALL ".join(parts)


def _merge_store(con, store: Store, exports: list[Path], labels: list[str], raw: Path, report: list[str]):
    """Merge one store; returns (records written, coverage per source, conflict rows listed)."""
    key = store.column(store.primary_key[0]).source
    natural = [store.column(c).source for c in store.natural_key]
    skip = ", ".join(duck.literal(k) for k in store.upload_metadata) or "NULL"
    union = " UNION ALL ".join(f"({_read_sql(store, export_files(e, store), i)})"
                               for i, e in enumerate(exports) if export_files(e, store))
    con.execute("SET preserve_insertion_order = true")
    con.execute(f"CREATE OR REPLACE TEMP TABLE recs AS SELECT src, file, pos, json FROM ({union})")
    # One row per record with what the rule needs; content is a digest of the sorted properties
    # without upload metadata, so key order and upload times do not make two copies differ.
    frame = con.sql(f"""
        WITH props AS (SELECT src, file, pos, unnest(json_keys(json)) AS k, json FROM recs),
             content AS (SELECT src, file, pos, md5(string_agg(k || chr(31) || coalesce(
                            json_extract(json, '$."' || replace(k, '"', '\\"') || '"')::VARCHAR, 'null'), chr(30) ORDER BY k))
                            AS content FROM props WHERE k NOT IN ({skip}) GROUP BY ALL)
        SELECT r.src, r.file, r.pos, rtrim(json_extract_string(r.json, {duck.literal('$."' + key + '"')}), ' ') AS id,
               TRY_CAST(json_extract_string(r.json, '$.uploadTimestamp') AS DOUBLE) AS upload_timestamp,
               {", ".join(f"json_extract(r.json, {duck.literal('$.' + json.dumps(n))})::VARCHAR AS nat{i}" for i, n in enumerate(natural))},
               coalesce(c.content, '') AS content
        FROM recs r LEFT JOIN content c USING (src, file, pos)""").to_arrow_table()
    frame = pl.from_arrow(frame)
    frame = frame.with_columns(((pl.col("src") * 1000 + pl.col("file")) * _ORDER + pl.col("pos")).alias("__pos"))
    nat = [f"nat{i}" for i in range(len(natural))]

    # 1. the same key: one record, kept by the rule; differing content is a conflict
    kept = frame.filter(pl.col("id").is_not_null())
    same_id = winners(kept, ["id"])
    id_conflicts = same_id.filter(pl.col("content").n_unique().over("id") > 1)
    final = frame.select("__pos", pl.col("__pos").alias("__kept"))
    final = _follow(final, same_id)
    survivors = kept.join(same_id.filter(pl.col("__pos") != pl.col("__win")).select("__pos"), on="__pos", how="anti")

    # 2. and 3. the same natural identity: one record when the content agrees, else all kept and listed
    nat_conflicts = pl.DataFrame()
    if list(store.natural_key) != list(store.primary_key):
        with_nat = survivors.filter(pl.all_horizontal(pl.col(c).is_not_null() for c in nat))
        # Only across browsers: where one export itself holds two such records (the same row uploaded
        # twice in one browser), the app has two records, and so does the merge.
        ident = nat + ["content"]
        in_one = (frame.filter(pl.col("id").is_not_null()).group_by(ident + ["src"]).agg(pl.col("id").n_unique().alias("n"))
                  .group_by(ident).agg(pl.col("n").max()).filter(pl.col("n") > 1))
        same = winners(with_nat.join(in_one, on=ident, how="anti", nulls_equal=True), ident)
        final = _follow(final, same)
        kept_nat = with_nat.join(same.filter(pl.col("__pos") != pl.col("__win")).select("__pos"), on="__pos", how="anti")
        nat_conflicts = kept_nat.filter(pl.col("content").n_unique().over(nat) > 1)

    # what each kept record was seen in, and the coverage figures
    final = final.join(frame.select("__pos", "src"), on="__pos")
    seen = final.group_by("__kept").agg(pl.col("src").unique().sort().alias("seen"))
    out = seen.join(frame.select(pl.col("__pos").alias("__kept"), "src", "file", "pos"), on="__kept")
    coverage = {}
    for i, label in enumerate(labels):
        coverage[label] = {"read": frame.filter(pl.col("src") == i).height,
                           "kept": out.filter(pl.col("src") == i).height,
                           "only": out.filter((pl.col("seen").list.len() == 1) & (pl.col("seen").list.first() == i)).height}
    _write_store(con, store, out, labels, raw)
    listed = _conflict_rows(store, frame, id_conflicts, "same key, different content", ["id"], labels, final)
    if nat_conflicts.height:
        listed += _conflict_rows(store, frame, nat_conflicts, "same natural identity, different content", nat, labels, final)
    report.extend(listed)
    con.execute("DROP TABLE recs")
    return out.height, coverage, len(listed)


def _follow(final: pl.DataFrame, groups: pl.DataFrame) -> pl.DataFrame:
    """Point each record at its group's kept record (groups: __pos -> __win)."""
    if groups.height == 0:
        return final
    step = groups.select(pl.col("__pos").alias("__kept"), "__win")
    return final.join(step, on="__kept", how="left").select("__pos", pl.coalesce("__win", "__kept").alias("__kept"))


def _write_store(con, store: Store, out: pl.DataFrame, labels: list[str], raw: Path) -> None:
    """The kept records' JSON text with "$source" and "$seenIn" added, one per line."""
    keep = out.with_columns(pl.col("src").replace_strict(list(range(len(labels))), labels, return_dtype=pl.String).alias("label"),
                            pl.col("seen").list.eval(pl.element().replace_strict(list(range(len(labels))), labels,
                                                                                 return_dtype=pl.String)).alias("seen_labels"))
    con.register("keep", keep.select("src", "file", "pos", "label", "seen_labels").to_arrow())
    rows = con.sql("""
        SELECT regexp_replace(r.json, '\\}\\s*$', '') || ',"$source":' || to_json(k.label) || ',"$seenIn":'
               || to_json(k.seen_labels) || '}' AS line
        FROM recs r JOIN keep k USING (src, file, pos) ORDER BY r.src, r.file, r.pos""").to_arrow_reader(50_000)
    with open(raw / f"{store.name}.ndjson", "w", encoding="utf-8") as f:
        for batch in rows:
            lines = batch.column(0).to_pylist()
            f.write("\n".join(line.replace("\n", " ") for line in lines) + ("\n" if lines else ""))
    con.unregister("keep")


def _conflict_rows(store, frame, rows: pl.DataFrame, kind: str, by: list[str], labels, final) -> list[str]:
    if rows.height == 0:
        return []
    kept = set(final["__kept"].unique().to_list())
    listed = rows.select("__pos", "src", "id", "content", *[c for c in by if c != "id"],
                         pl.concat_str([pl.col(c).fill_null("null") for c in by], separator=" | ").alias("identity"))
    return [json.dumps({"store": store.name, "conflict": kind, "identity": r["identity"], "source": labels[r["src"]],
                        "key": r["id"], "kept": r["__pos"] in kept, "contentDigest": r["content"]}, ensure_ascii=False)
            for r in listed.sort("identity", "__pos").iter_rows(named=True)]


def _write_raw_summary(raw: Path, exports: list[Path], labels: list[str], counts: dict[str, int]) -> None:
    first = read_summary(exports[0])
    summary = {"databaseName": first.get("databaseName"), "databaseVersion": first.get("databaseVersion"),
               "exportedAt": max((read_summary(e).get("exportedAt") or "") for e in exports) or None,
               "counts": counts, "files": {s: [{"path": f"{s}.ndjson", "format": "ndjson"}] for s in counts},
               "warnings": [f"merged from {len(labels)} exports: {', '.join(labels)} (see {REPORT})"]}
    _write_json(raw / SUMMARY, summary)


def _write_json(path: Path, obj) -> None:
    path.write_text(json.dumps(obj, ensure_ascii=False, indent=2) + "\n", encoding="utf-8")
