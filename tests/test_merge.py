"""`etl merge`: three browsers' overlapping exports of one database give the union's latest state,
with the edited record reported as a conflict and coverage figures that add up."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest

from etl import STORES, ExportError, export, transform, write_sample
from etl.source.export import read_records
from etl.source.merge import CONFLICTS, REPORT, merge
from stage_helpers import assert_same_stage


def write_folder(folder: Path, stores: dict[str, list[dict]]) -> Path:
    """A browser's download folder, as the snippet writes it (arrays + export-summary.json)."""
    folder.mkdir(parents=True)
    for name, recs in stores.items():
        (folder / f"{name}.json").write_text(json.dumps(recs, ensure_ascii=False), encoding="utf-8")
    summary = {"databaseName": "InsightTicketDatabase", "databaseVersion": 7, "exportedAt": "2025-09-01T00:00:00.000Z",
               "counts": {n: len(r) for n, r in stores.items()}}
    (folder / "export-summary.json").write_text(json.dumps(summary), encoding="utf-8")
    return folder


@pytest.fixture(scope="module")
def base(tmp_path_factory) -> dict[str, list[dict]]:
    tmp = tmp_path_factory.mktemp("base")
    write_sample(tmp / "raw", tickets=400)
    export(tmp / "raw", tmp / "export")
    return {s.name: read_records(tmp / "export", s) for s in STORES}


def without(stores, drop: dict[str, set]) -> dict[str, list[dict]]:
    return {n: [r for r in recs if r["id"] not in drop.get(n, set())] for n, recs in stores.items()}


@pytest.fixture(scope="module")
def browsers(base, tmp_path_factory):
    """(latest state, [stale, edited, extra] folders, the edited ticket's id, the records only `extra` has)."""
    tmp = tmp_path_factory.mktemp("browsers")
    tickets = base["tickets"]
    edited_id = tickets[7]["id"]
    edited = copy.deepcopy(base)
    edited["tickets"][7] = {**tickets[7], "status": "Closed", "handling1": "edited in one browser\tlater 😀"}
    # records only the third browser has: the last upload (tickets and customers), and its session
    only_extra = {"tickets": {t["id"] for t in tickets[-25:]}, "customers": {c["id"] for c in base["customers"][-10:]}}
    older = without(base, only_extra)
    latest = edited
    stale = without(older, {"tickets": {t["id"] for t in tickets[300:340]}})  # missing more, and X as first uploaded
    edit = without(edited, only_extra)
    extra = without(base, {"tickets": {edited_id} | {t["id"] for t in tickets[:50]}})  # lacks X altogether
    folders = [write_folder(tmp / "laptop-old", stale), write_folder(tmp / "desk", edit),
               write_folder(tmp / "tablet", extra)]
    return latest, folders, edited_id, only_extra


def test_merge_gives_the_union_latest_state(browsers, tmp_path):
    latest, folders, edited_id, only_extra = browsers
    result = merge([str(f) for f in folders], tmp_path / "merged")
    transform(tmp_path / "merged", tmp_path / "stage-merged")
    export(write_folder(tmp_path / "latest", latest), tmp_path / "latest-export")
    transform(tmp_path / "latest-export", tmp_path / "stage-latest")
    assert_same_stage(tmp_path / "stage-merged", tmp_path / "stage-latest")
    assert result.counts == {n: len(r) for n, r in latest.items()}


def test_the_edited_record_is_a_conflict_and_the_later_export_wins(browsers, tmp_path):
    latest, folders, edited_id, _ = browsers
    merge([str(f) for f in folders], tmp_path / "merged")
    conflicts = [json.loads(line) for line in (tmp_path / "merged" / CONFLICTS).read_text().splitlines()]
    mine = [c for c in conflicts if c["key"] == edited_id and c["conflict"] == "same key, different content"]
    assert {(c["source"], c["kept"], c["conflict"]) for c in mine} == {
        ("laptop-old", False, "same key, different content"), ("desk", True, "same key, different content")}
    kept = next(t for t in read_records(tmp_path / "merged", "tickets") if t["id"] == edited_id)
    assert kept["handling1"] == "edited in one browser\tlater 😀"
    assert kept["$source"] == "desk" and kept["$seenIn"] == ["laptop-old", "desk"]


def test_coverage_adds_up(browsers, tmp_path):
    latest, folders, _, only_extra = browsers
    result = merge([str(f) for f in folders], tmp_path / "merged")
    report = json.loads((tmp_path / "merged" / REPORT).read_text())
    assert report["coverage"] == result.coverage
    for store, per in result.coverage.items():
        assert sum(c["kept"] for c in per.values()) == result.counts[store]
        assert sum(c["only"] for c in per.values()) <= result.counts[store]
        for label, folder in zip(("laptop-old", "desk", "tablet"), folders):
            assert per[label]["read"] == len(json.loads((folder / f"{store}.json").read_text()))
    assert result.coverage["tickets"]["tablet"]["only"] == len(only_extra["tickets"])
    assert result.coverage["customers"]["tablet"]["only"] == len(only_extra["customers"])
    assert result.coverage["tickets"]["laptop-old"]["only"] == 0
    # first 50 tickets are missing from tablet, 300-340 from laptop-old: seen in only one browser
    assert result.coverage["tickets"]["desk"]["only"] == 0  # each of those is in one other browser too


def test_the_same_row_uploaded_in_two_browsers_is_kept_once_and_twins_are_kept_and_listed(base, tmp_path):
    t = base["tickets"][3]
    again = {**t, "id": "another-random-id", "uploadTimestamp": t["uploadTimestamp"] + 1000, "batchId": "batch-b"}
    twin = {**t, "id": "a-distinct-ticket", "name": "Another customer name", "description": "a different ticket"}
    a = write_folder(tmp_path / "a", {"tickets": [t, twin], "incidents": [], "customers": [], "vendors": []})
    b = write_folder(tmp_path / "b", {"tickets": [again], "incidents": [], "customers": [], "vendors": []})
    result = merge([f"chrome={a}", f"edge={b}"], tmp_path / "merged")
    kept = {r["id"]: r for r in read_records(tmp_path / "merged", "tickets")}
    assert set(kept) == {"another-random-id", "a-distinct-ticket"}  # latest upload of the same row, and the twin
    assert kept["another-random-id"]["$seenIn"] == ["chrome", "edge"]
    conflicts = [json.loads(line) for line in (tmp_path / "merged" / CONFLICTS).read_text().splitlines()]
    assert {c["key"] for c in conflicts} == {"a-distinct-ticket", "another-random-id"}
    assert all(c["conflict"] == "same natural identity, different content" and c["kept"] for c in conflicts)
    assert result.coverage["tickets"] == {"chrome": {"read": 2, "kept": 1, "only": 1}, "edge": {"read": 1, "kept": 1, "only": 0}}


def test_a_merge_needs_two_exports_and_never_half_writes(base, tmp_path):
    a = write_folder(tmp_path / "a", {"tickets": base["tickets"][:3], "incidents": [], "customers": [], "vendors": []})
    with pytest.raises(ExportError, match="two exports or more"):
        merge([str(a)], tmp_path / "merged")
    with pytest.raises(ExportError, match="no such file or folder"):
        merge([str(a), str(tmp_path / "missing")], tmp_path / "merged")
    assert not (tmp_path / "merged").exists() and not list(tmp_path.glob(".merged.*"))
