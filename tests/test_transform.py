"""Transform on real files and real DuckDB: reconciliation, carried values, rejects, sessions."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import datetime
from pathlib import Path

import polars as pl
import pytest

from etl import STORES, TransformError, export, read_stage, store, transform, write_sample
from etl.source.export import fingerprint, read_records, read_summary
from etl.stage.folder import rejects_path, stage_summary
from etl.stage import records as records_module
from etl.stage.sessions import INCIDENT_UPLOAD_GAP_MS

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def sample(tmp_path_factory):
    raw = tmp_path_factory.mktemp("sample") / "raw"
    write_sample(raw, tickets=600, seed=11)
    export(raw, raw.parent / "export")
    return raw.parent / "export"


@pytest.fixture(scope="module")
def staged(sample, tmp_path_factory):
    stage = tmp_path_factory.mktemp("stage") / "stage"
    return transform(sample, stage), stage


def write_export(folder: Path, **stores: list) -> Path:
    """A tiny export in the app's layout (stores not given are empty), normalized by `etl export`."""
    raw = folder / "raw"
    raw.mkdir(parents=True, exist_ok=True)
    for s in STORES:
        if s.name in stores or s.required:
            (raw / f"{s.name}.json").write_text(json.dumps(stores.get(s.name, []), ensure_ascii=False))
    export(raw, folder / "export")
    return folder / "export"


def refingerprint(export: Path) -> None:
    """Record the export's files as they are now (tests that break an export file on purpose)."""
    path = export / "export-summary.json"
    summary = json.loads(path.read_text())
    for entries in summary["files"].values():
        for e in entries:
            e.update(fingerprint(export / e["path"]))
    path.write_text(json.dumps(summary))


def ticket(id_, **fields):
    return {"id": id_, "openTime": "2024-07-15T17:35:00", **fields}


# ---------------------------------------------------------------- the sample


def test_every_record_is_staged_or_rejected(staged, sample):
    result, stage = staged
    for name, counts in result.counts.items():
        assert counts.balanced, name
        if name != "uploadSessions":
            assert counts.records_in == len(read_records(sample, name)), name
    summary = stage_summary(stage)
    assert summary["counts"]["tickets"]["staged"] == result.counts["tickets"].staged
    for s in STORES:
        rejects = pl.read_parquet(rejects_path(stage, s))
        assert rejects.filter(pl.col("reason").is_null() | (pl.col("reason") == "")).height == 0


def test_staged_tables_match_their_descriptions(staged):
    _, stage = staged
    for s in STORES:
        assert read_stage(stage, s).height == staged[0].counts[s.name].staged  # read_stage checks the schema


def test_values_are_carried_as_stored(staged, sample):
    _, stage = staged
    source = {r["id"]: r for r in read_records(sample, "tickets")}
    frame = read_stage(stage, store("tickets"))
    rows = {r["id"]: r for r in frame.to_dicts()}
    tabbed = [i for i, r in source.items() if "\t" in (r.get("description") or "")]
    assert tabbed and all(rows[i]["description"] == source[i]["description"] for i in tabbed)
    emptied = [i for i, r in source.items() if r.get("cause") == ""]
    nulled = [i for i, r in source.items() if "cause" not in r or r["cause"] is None]
    assert emptied and nulled
    assert all(rows[i]["cause"] == "" for i in emptied) and all(rows[i]["cause"] is None for i in nulled)
    for i, r in list(source.items())[:200]:
        d = r.get("duration")
        if d:
            assert rows[i]["duration_raw_hours"] == d["rawHours"]  # the double itself, every bit
            assert rows[i]["duration_formatted"] == d["formatted"]
        # zone-less openTime is UTC wall-clock; closeTime is converted from Z
        assert rows[i]["open_time"].isoformat()[:19] == r["openTime"][:19]
        if r.get("closeTime"):
            assert rows[i]["close_time"].isoformat(timespec="milliseconds") + "Z" == r["closeTime"]


def test_vendor_dates_stay_instants(staged, sample):
    _, stage = staged
    source = {r["id"]: r for r in read_records(sample, "vendors")}
    for row in read_stage(stage, store("vendors")).to_dicts():
        expected = source[row["id"]]["createdAt"]["$date"]
        assert int(row["created_at"].replace(tzinfo=__import__("datetime").timezone.utc).timestamp() * 1000) == expected


def test_offset_between_stored_durations_and_times_is_reported_not_fixed(staged):
    result, _ = staged
    assert any("+7.00 h" in f for f in result.findings)


def test_sessions_are_rebuilt_for_legacy_records_and_incidents(staged, sample):
    _, stage = staged
    sessions = read_stage(stage, store("uploadSessions"))
    tickets = read_stage(stage, store("tickets"))
    incidents = read_stage(stage, store("incidents"))
    for frame in (tickets, incidents, read_stage(stage, store("customers"))):
        assert frame["upload_session_id"].null_count() == 0
        assert set(frame["upload_session_id"]) <= set(sessions["id"])
    assert sessions["reconstructed"].null_count() == 0  # NOT NULL in MySQL
    assert sessions.filter(~pl.col("reconstructed")).height == len(read_records(sample, "uploadSessions"))
    rebuilt = sessions.filter(pl.col("reconstructed"))
    counts = pl.concat([tickets.select("upload_session_id"), incidents.select("upload_session_id"),
                        read_stage(stage, store("customers")).select("upload_session_id")]).group_by(
        "upload_session_id").len()
    joined = rebuilt.join(counts, left_on="id", right_on="upload_session_id")
    assert joined.height == rebuilt.height and (joined["record_count"] == joined["len"]).all()
    legacy = [r for r in read_records(sample, "tickets") if not r.get("batchId")]
    assert legacy and tickets.filter(pl.col("id").is_in([r["id"] for r in legacy]))["upload_session_id"].str.starts_with(
        "legacy-tickets-").all()
    # incidents: one session per tight importedAt cluster
    raw = pl.DataFrame(read_records(sample, "incidents")).select(
        pl.col("importedAt").str.to_datetime("%Y-%m-%dT%H:%M:%S%.fZ", time_unit="ms").dt.epoch("ms").sort())
    clusters = 1 + int((raw["importedAt"].diff().drop_nulls() > INCIDENT_UPLOAD_GAP_MS).sum())
    assert incidents["upload_session_id"].n_unique() == clusters > 1


# ---------------------------------------------------------------- bad input


def test_bad_values_become_rejects_naming_file_store_record_field(tmp_path):
    export = write_export(tmp_path / "e", tickets=[
        ticket("ok", uploadTimestamp=1),
        ticket("bad-time", openTime="not a time"),
        ticket("bad-number", uploadTimestamp="abc"),
        {"openTime": "2024-07-15T17:35:00"},  # no key
        ticket("bad-duration", duration="5 hours"),
        ticket("too-long", category="C" * 101),
        {"id": "no-open"},
    ])
    result = transform(export, tmp_path / "stage")
    c = result.counts["tickets"]
    assert (c.records_in, c.staged, c.rejected) == (7, 1, 6)
    rejects = pl.read_parquet(rejects_path(tmp_path / "stage", store("tickets")))
    got = {(r["record"], r["field"]): r["reason"] for r in rejects.to_dicts()}
    assert got == {
        (1, "openTime"): "time does not parse",
        (2, "uploadTimestamp"): "not a number",
        (3, "id"): "no primary key",
        (4, "duration"): "duration is not an object",
        (5, "category"): "text longer than the column (101 > 100 characters)",
        (6, "openTime"): "required time is missing",
    }
    assert set(rejects["file"]) == {"tickets.json"} and set(rejects["store"]) == {"tickets"}
    assert rejects.filter(pl.col("record") == 2)["key"].item() == "bad-number"
    assert rejects.filter(pl.col("record") == 2)["value"].item() == "abc"


def test_parts_cut_from_one_array_stage_like_the_whole_file(tmp_path, sample):
    # Large arrays reach the transform as parts read in one parallel scan: same rows, same order,
    # and a reject still names the record by its place in the array the source had.
    raw = tmp_path / "raw"
    raw.mkdir()
    for s in STORES:
        records = read_records(sample, s.name)
        if s.name == "tickets":
            records[450]["openTime"] = "not a time"
        (raw / f"{s.name}.json").write_text(json.dumps(records, ensure_ascii=False))
    export(raw, tmp_path / "whole")
    export(raw, tmp_path / "cut", part_bytes=40_000)
    assert len(read_summary(tmp_path / "cut")["files"]["tickets"]) > 3
    transform(tmp_path / "whole", tmp_path / "stage-whole")
    transform(tmp_path / "cut", tmp_path / "stage-cut")
    for s in STORES:
        assert read_stage(tmp_path / "stage-cut", s).equals(read_stage(tmp_path / "stage-whole", s)), s.name
        cut, whole = (pl.read_parquet(rejects_path(tmp_path / d, s)) for d in ("stage-cut", "stage-whole"))
        assert cut.equals(whole), s.name
    reject = pl.read_parquet(rejects_path(tmp_path / "stage-cut", store("tickets"))).row(0, named=True)
    assert (reject["file"], reject["record"], reject["field"]) == ("tickets.json", 450, "openTime")


def test_ndjson_stages_like_the_array_in_file_order(tmp_path, sample, monkeypatch):
    # The snippet writes a large store as NDJSON, which DuckDB reads in several buffers side by
    # side (small ones here): the rows keep the file's order and a reject names its line.
    monkeypatch.setattr(records_module, "MAX_OBJECT_BYTES", 1 << 16)
    raw = {"array": tmp_path / "raw-array", "ndjson": tmp_path / "raw-ndjson"}
    for folder in raw.values():
        folder.mkdir()
    for s in STORES:
        records = read_records(sample, s.name)
        if s.name == "tickets":
            records[450]["openTime"] = "not a time"
            (raw["ndjson"] / "tickets.ndjson").write_text("".join(json.dumps(r) + "\n" for r in records))
            assert (raw["ndjson"] / "tickets.ndjson").stat().st_size > 10 << 16  # more than ten buffers
        else:
            (raw["ndjson"] / f"{s.name}.json").write_text(json.dumps(records))
        (raw["array"] / f"{s.name}.json").write_text(json.dumps(records))
    for form, folder in raw.items():
        export(folder, tmp_path / f"export-{form}")
        transform(tmp_path / f"export-{form}", tmp_path / f"stage-{form}")
    for s in STORES:
        nd, arr = (read_stage(tmp_path / f"stage-{f}", s) for f in ("ndjson", "array"))
        assert nd.equals(arr), s.name
    assert read_stage(tmp_path / "stage-ndjson", store("tickets"))["id"].to_list() == [
        r["id"] for i, r in enumerate(read_records(sample, "tickets")) if i != 450]
    reject = pl.read_parquet(rejects_path(tmp_path / "stage-ndjson", store("tickets"))).row(0, named=True)
    assert (reject["file"], reject["record"], reject["field"]) == ("tickets.ndjson", 450, "openTime")


TIME_FORMS = {
    "zone-less": "2024-07-15T17:35:00", "Z": "2024-07-15T17:35:00.250Z", "+hh:mm": "2024-07-16T00:35:00+07:00",
    "+hhmm": "2024-07-16T00:35:00+0700", "+hh": "2024-07-16T00:35:00+07", "-hh:mm": "2024-07-15T14:05:00-03:30",
    "date": {"$date": 1721064900000}, "epoch": 1721064900000,
}
TIME_WANTED = {k: datetime(2024, 7, 15, 17, 35, 0, 250_000 if k == "Z" else 0) for k in TIME_FORMS}


def test_times_in_every_stored_form_become_utc(tmp_path):
    export = write_export(tmp_path / "e", tickets=[ticket(k, closeTime=v) for k, v in TIME_FORMS.items()])
    transform(export, tmp_path / "stage")
    got = dict(read_stage(tmp_path / "stage", store("tickets")).select("id", "close_time").iter_rows())
    assert got == TIME_WANTED


def test_times_do_not_depend_on_the_machines_time_zone(tmp_path):
    # Stores are staged on several threads, each with its own DuckDB cursor: every one must work in UTC.
    export = write_export(tmp_path / "e", tickets=[ticket(k, closeTime=v) for k, v in TIME_FORMS.items()],
                          incidents=[{"id": "i1", "startTime": "2024-07-16T00:35:00+07:00"}])
    done = subprocess.run([sys.executable, "-m", "etl", "transform", "--in", str(export), "--out", str(tmp_path / "stage")],
                          capture_output=True, text=True, cwd=ROOT, env={**os.environ, "TZ": "Asia/Jakarta"}, timeout=120)
    assert done.returncode == 0, done.stderr
    got = dict(read_stage(tmp_path / "stage", store("tickets")).select("id", "close_time").iter_rows())
    assert got == TIME_WANTED
    assert read_stage(tmp_path / "stage", store("incidents"))["start_time"].to_list() == [datetime(2024, 7, 15, 17, 35)]


def test_blank_and_out_of_range_times(tmp_path):
    export = write_export(tmp_path / "e", tickets=[
        ticket("blank", closeTime=""), ticket("spaces", closeTime="   "), ticket("no-open", openTime=" "),
        ticket("year-999", closeTime="0999-12-31T23:59:59"), ticket("epoch-too-far", closeTime=253402300800000),
    ])
    transform(export, tmp_path / "stage")
    staged = dict(read_stage(tmp_path / "stage", store("tickets")).select("id", "close_time").iter_rows())
    assert staged == {"blank": None, "spaces": None}  # an optional time left blank is NULL
    rejects = pl.read_parquet(rejects_path(tmp_path / "stage", store("tickets")))
    assert dict(rejects.select("key", "reason").iter_rows()) == {
        "no-open": "required time is missing", "year-999": "time outside the DATETIME range",
        "epoch-too-far": "time outside the DATETIME range"}


def test_duplicate_keys_resolved_by_the_documented_rule(tmp_path):
    export = write_export(tmp_path / "e", tickets=[
        ticket("k", name="older", uploadTimestamp=2),
        ticket("k", name="newest", uploadTimestamp=3),
        ticket("k ", name="pad-space twin, oldest", uploadTimestamp=1),
        ticket("t", name="first"),
        ticket("t", name="later in the export"),
    ])
    result = transform(export, tmp_path / "stage")
    assert result.counts["tickets"].duplicates == 3 and result.counts["tickets"].balanced
    names = dict(read_stage(tmp_path / "stage", store("tickets")).select("id", "name").iter_rows())
    assert names == {"k": "newest", "t": "later in the export"}
    rejects = pl.read_parquet(rejects_path(tmp_path / "stage", store("tickets")))
    assert sorted(rejects["record"]) == [0, 2, 3]
    assert rejects["reason"].str.starts_with("duplicate key: kept tickets.json record").all()


def test_hard_text_is_carried_exactly(tmp_path):
    hard = "nul\u0000byte, emoji \U0001F600, tab\t, trailing space , Difa' Fathir \\ \"q\""
    export = write_export(tmp_path / "e", tickets=[ticket("a", description=hard, name="\U0001F600" * 255)])
    transform(export, tmp_path / "stage")
    row = read_stage(tmp_path / "stage", store("tickets")).row(0, named=True)
    assert row["description"] == hard and row["name"] == "\U0001F600" * 255


def test_ten_megabyte_text_is_a_reject_not_a_crash(tmp_path):
    export = write_export(tmp_path / "e", tickets=[ticket("big", description="x" * 10_000_000), ticket("small")])
    result = transform(export, tmp_path / "stage")
    assert (result.counts["tickets"].staged, result.counts["tickets"].rejected) == (1, 1)
    reject = pl.read_parquet(rejects_path(tmp_path / "stage", store("tickets"))).row(0, named=True)
    assert reject["field"] == "description" and "10000000 > 65535 bytes" in reject["reason"]
    assert len(reject["value"]) <= 120


def test_empty_stores_stage_empty_tables(tmp_path):
    export = write_export(tmp_path / "e", tickets=[ticket("a")])
    result = transform(export, tmp_path / "stage")
    assert result.counts["incidents"].records_in == 0
    assert read_stage(tmp_path / "stage", store("incidents")).height == 0


@pytest.mark.parametrize("broken", ["tickets", "customers"])  # staged first, and beside the tickets
def test_unreadable_file_fails_cleanly_and_keeps_the_previous_stage(tmp_path, sample, broken):
    stage = tmp_path / "stage"
    transform(sample, stage)
    before = {p.name: p.read_bytes() for p in stage.glob("*.parquet")}
    export = write_export(tmp_path / "e", tickets=read_records(sample, "tickets"))
    (export / f"{broken}.json").write_text('[{"id": "a", "openTime": "2024-07-15T17:35:00"}, {"id": "b", "ope')
    refingerprint(export)  # a file broken where no check at export time could see it
    with pytest.raises(TransformError) as e:
        transform(export, stage)
    assert f"{broken}.json" in str(e.value) and f"store {broken}" in str(e.value)
    assert {p.name: p.read_bytes() for p in stage.glob("*.parquet")} == before
    assert not list(tmp_path.glob(".stage.tmp-*"))


def test_not_an_export_folder(tmp_path):
    with pytest.raises(TransformError, match="export-summary.json"):
        transform(tmp_path, tmp_path / "stage")


@pytest.mark.parametrize("careful", [False, True])
def test_non_string_json_in_text_columns_is_carried_as_its_text_and_counted(tmp_path, careful):
    records = [
        ticket("a", name=5, description={"a": 1}, cabang=True, duration={"rawHours": 1.5, "formatted": 90}),
        ticket("b", name="5", description="{\"a\": 1}", cabang="true", duration={"rawHours": 1.5, "formatted": "1:30"}),
        ticket("c", name=[1, "x"], description=None, cabang=-0.5e3),
        # (7 is a number where a text should be: counted; the string "7" next to it is not)
        ticket(7 if not careful else "7", noCase="7"),
    ]
    if careful:  # a property repeated inside one record sends the whole file down the careful read
        records.append({"id": "d", "id2": 1})
    export = write_export(tmp_path / "e", tickets=records)
    if careful:
        path = export / "tickets.json"
        path.write_text(path.read_text().replace('"id2": 1', '"status": "x", "status": "y"'))
        refingerprint(export)
    result = transform(export, tmp_path / "stage")
    rows = {r["id"]: r for r in read_stage(tmp_path / "stage", store("tickets")).iter_rows(named=True)}
    assert (rows["a"]["name"], rows["a"]["description"], rows["a"]["cabang"], rows["a"]["duration_formatted"]) == \
        ("5", '{"a":1}', "true", "90")
    assert (rows["b"]["name"], rows["b"]["description"], rows["b"]["cabang"]) == ("5", '{"a": 1}', "true")
    assert rows["c"]["name"] == '[1,"x"]' and rows["c"]["description"] is None and rows["c"]["cabang"] == "-500.0"
    counted = result.counts["tickets"].non_string_text
    want = {"name": 2, "description": 1, "cabang": 2, "duration_formatted": 1} | ({} if careful else {"id": 1})
    assert counted == want
    assert "carried as their JSON text" in " ".join(result.findings) and "tickets.name 2" in " ".join(result.findings)
    assert stage_summary(tmp_path / "stage")["counts"]["tickets"]["non_string_text"] == want
