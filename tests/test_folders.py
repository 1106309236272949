"""The folder contracts as objects: an export folder and a stage folder are opened (their summary
read) once and passed along. Reads are counted by Python's own audit hook on `open`, on real files."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from etl import EtlError, ExportFolder, StageFolder, export, transform, write_sample
from etl.stage.folder import SUMMARY as STAGE_SUMMARY
from etl.stage.folder import check_stage

_opened: list[str] | None = None


def _hook(event, args):
    if event == "open" and _opened is not None and isinstance(args[0], (str, Path)):
        _opened.append(Path(args[0]).name)


sys.addaudithook(_hook)  # cannot be removed: it records only while a test sets _opened


def reads_of(name: str, run) -> int:
    """How many times `run` reads the file `name`: an export summary is opened twice per read (a
    sniff of its first bytes, then the parse), a stage summary once."""
    global _opened
    _opened = []
    try:
        run()
        return _opened.count(name) // (2 if name == "export-summary.json" else 1)
    finally:
        _opened = None


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    raw = tmp_path_factory.mktemp("folders") / "raw"
    write_sample(raw, tickets=200, seed=5)
    export(raw, raw.parent / "export")
    return raw.parent / "export"


def test_transform_reads_the_export_summary_once(exported, tmp_path):
    # Before ExportFolder the transform read export-summary.json 17 times (per store and step).
    assert reads_of("export-summary.json", lambda: transform(exported, tmp_path / "a")) == 1
    folder = ExportFolder.open(exported)
    assert reads_of("export-summary.json", lambda: transform(folder, tmp_path / "b")) == 0
    assert check_stage(tmp_path / "a") == check_stage(tmp_path / "b")


def test_an_open_export_folder_is_not_read_again(exported, tmp_path):
    """The transform works from the object alone: a summary spoiled after opening goes unnoticed."""
    copy = tmp_path / "export"
    copy.mkdir()
    for p in exported.iterdir():
        (copy / p.name).write_bytes(p.read_bytes())
        (copy / p.name).touch()
    folder = ExportFolder.open(copy)
    (copy / "export-summary.json").write_text("not json")
    result = transform(folder, tmp_path / "stage")
    assert result.counts["tickets"].records_in == folder.counts["tickets"] == 200
    with pytest.raises(EtlError, match="malformed JSON"):
        ExportFolder.open(copy)


def test_stage_folder_opened_once(exported, tmp_path):
    transform(exported, tmp_path / "stage")
    stage = StageFolder.open(tmp_path / "stage")
    assert StageFolder.open(stage) is stage
    assert reads_of(STAGE_SUMMARY, stage.check) == 0
    assert reads_of(STAGE_SUMMARY, lambda: check_stage(tmp_path / "stage")) == 1  # the path form opens it
    assert [s.name for s in stage.check()] == [s.name for s in stage.stores]
    assert stage.summary["counts"]["tickets"]["staged"] == stage.read(stage.stores[0]).height
    with pytest.raises(EtlError, match="no transform summary"):
        StageFolder.open(tmp_path)


def test_a_stage_that_was_loaded_and_checked_is_replaced_by_the_next_transform(exported, tmp_path, schema_target):
    """The load and parity keep the stage's row digests in STAGE/digests: the stage's own, so a
    second migrate in the same folders transforms again (it was refused as 'not a stage')."""
    from etl import load, parity

    stage = tmp_path / "stage"
    transform(exported, stage)
    load(stage, schema_target)
    assert parity(stage, schema_target).ok
    assert (stage / "digests").is_dir()
    again = transform(exported, stage)
    assert again.ok and not (stage / "digests").exists()  # a new stage: the old digests went with the old one
