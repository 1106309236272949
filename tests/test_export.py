"""`etl export` on real files and real DuckDB: the three input forms, the output contract, bad input."""

from __future__ import annotations

import importlib.util
import json
import random
import subprocess
import sys
from pathlib import Path

import polars as pl
import pytest

from etl import STORES, ExportError, export, export_or_reuse
from etl.source import jsonscan
from etl.source.dexie import RowTypeError, decode_row
from etl.source.export import SUMMARY, export_files, read_records as records, read_summary

ROOT = Path(__file__).resolve().parent.parent
FORMS = ROOT / "tests" / "fixtures" / "forms"
FORM_INPUTS = {"folder": FORMS / "folder", "single": FORMS / "single" / "export.json",
               "dexie": FORMS / "dexie" / "export.dexie.json"}

_spec = importlib.util.spec_from_file_location("make_forms", FORMS / "make_forms.py")
make_forms = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(make_forms)




def leftovers(folder: Path) -> list[str]:
    """Work folders an export left behind next to its output."""
    return [p.name for p in folder.iterdir() if ".partial-" in p.name or ".replaced-" in p.name]


def write_folder(folder: Path, summary: dict | None = None, **files: str) -> Path:
    """A folder export from raw file texts; required stores not given are empty arrays."""
    folder.mkdir(parents=True, exist_ok=True)
    for s in STORES:
        if s.required and not any(name.startswith(s.name + ".") for name in files):
            files[f"{s.name}.json"] = "[]"
    for name, text in files.items():
        (folder / name).write_text(text, encoding="utf-8")
    if summary is not None:
        (folder / SUMMARY).write_text(json.dumps(summary), encoding="utf-8")
    return folder


# ---------------------------------------------------------------- golden: three forms, one result


@pytest.fixture(scope="module")
def golden(tmp_path_factory):
    base = tmp_path_factory.mktemp("golden")
    return {form: (export(src, base / form), base / form) for form, src in FORM_INPUTS.items()}


@pytest.mark.parametrize("form", list(FORM_INPUTS))
def test_each_form_gives_back_exactly_the_records(golden, form):
    result, out = golden[form]
    assert result.source_form == form
    for name, expected in make_forms.RECORDS.items():
        assert records(out, name) == expected, f"{form}: {name}"
    assert result.counts == {name: len(r) for name, r in make_forms.RECORDS.items()}


def test_the_three_forms_give_identical_normalized_exports(golden):
    summaries = {form: read_summary(out) for form, (_, out) in golden.items()}
    for name in make_forms.RECORDS:
        assert records(golden["folder"][1], name) == records(golden["single"][1], name) == records(golden["dexie"][1], name)
    same = ("databaseName", "databaseVersion", "counts", "missingStores")
    assert len({json.dumps([s[k] for k in same]) for s in summaries.values()}) == 1
    assert summaries["folder"]["databaseName"] == "InsightTicketDatabase" and summaries["dexie"]["databaseVersion"] == 7


def test_carried_values_dates_undefined_nul_and_4_byte_utf8(golden):
    _, out = golden["dexie"]
    vendors = records(out, "vendors")
    assert vendors[0]["createdAt"] == {"$date": 1691695968689}  # dexie's epoch ms -> a Date instant
    tickets = {t["id"]: t for t in records(out, "tickets")}
    t1, t2, t3 = (tickets[f"1a2b3c4d-0000-4000-8000-00000000000{i}"] for i in (1, 2, 3))
    assert "cause" not in t1 and t1["handling"] == "" and t1["subClassification"] is None  # absent, "", null
    assert t2["handling2"] == "a\u0000b" and "😀 𝄞" in t2["handling1"]
    assert t2["description"].endswith("\tsetelah hujan  ")
    assert t3["name"] == "2024-07-15T17:35:00.000Z"  # a date-looking string stays a string
    raw = (out / "tickets.json").read_text(encoding="utf-8")
    assert "$types" not in raw
    incidents = records(out, "incidents")
    assert "endTime" not in incidents[1]  # was undefined: absent


def test_summary_contract(golden):
    result, out = golden["folder"]
    summary = read_summary(out)
    assert {"databaseName", "databaseVersion", "exportedAt", "sourceForm", "source", "counts", "files",
            "missingStores", "warnings"} <= set(summary)
    assert summary["source"] == str(FORM_INPUTS["folder"].resolve())
    assert summary["exportedAt"] == "2025-09-01T03:04:05.678Z"
    assert [f["path"] for f in summary["files"]["tickets"]] == ["tickets.part-0001.json", "tickets.part-0002.json"]
    [incidents] = summary["files"]["incidents"]
    assert {k: incidents[k] for k in ("path", "format")} == {"path": "incidents.ndjson", "format": "newline_delimited"}
    assert incidents["bytes"] == (out / "incidents.ndjson").stat().st_size and len(incidents["sample"]) == 32
    assert export_files(out, "tickets") == [(out / "tickets.part-0001.json", "array"), (out / "tickets.part-0002.json", "array")]
    assert any("users" in w for w in summary["warnings"])  # present in the source, not migrated
    assert not (out / "users.json").exists()
    assert "tickets" in str(result) and "folder form" in str(result)


def test_a_folder_is_copied_byte_for_byte_never_linked(tmp_path):
    src = write_folder(tmp_path / "src", **{"tickets.json": json.dumps(make_forms.TICKETS)})
    result = export(src, tmp_path / "out")
    # its own file (a hard link would tie the export to the user's download), the same bytes
    assert (tmp_path / "out" / "tickets.json").stat().st_ino != (src / "tickets.json").stat().st_ino
    assert (tmp_path / "out" / "tickets.json").read_bytes() == (src / "tickets.json").read_bytes()
    assert result.counts["tickets"] == len(make_forms.TICKETS)


# ---------------------------------------------------------------- large arrays are cut into parts


def many_tickets(n: int, **extra) -> list[dict]:
    return [{"id": f"t{i:05d}", "openTime": "2024-07-15T17:35:00", "description": f"record {i}", **extra} for i in range(n)]


def test_a_large_array_is_cut_at_record_boundaries_into_parts(tmp_path):
    tickets = many_tickets(2000)
    src = write_folder(tmp_path / "src", **{"tickets.json": json.dumps(tickets, indent=1)})  # pretty: "},\n {"
    whole = export(src, tmp_path / "whole")
    cut = export(src, tmp_path / "cut", part_bytes=20_000)
    entries = read_summary(tmp_path / "cut")["files"]["tickets"]
    assert len(entries) > 5 and {e["cutFrom"] for e in entries} == {"tickets.json"}
    assert cut.counts == whole.counts and records(tmp_path / "cut", "tickets") == tickets
    # each part is an array of its own, and firstRecord numbers its records in the whole array
    for e in entries:
        part = json.loads((tmp_path / "cut" / e["path"]).read_text())
        assert part[0] == tickets[e["firstRecord"]]
    assert not (tmp_path / "cut" / "tickets.json").exists()


def test_cli_part_size(tmp_path):
    src = write_folder(tmp_path / "src", **{"tickets.json": json.dumps(many_tickets(3000, cause="x" * 1000))})
    done = subprocess.run([sys.executable, "-m", "etl", "export", "--from", str(src), "--out", str(tmp_path / "out"),
                           "--part-mb", "1"], capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert done.returncode == 0, done.stderr
    assert len(read_summary(tmp_path / "out")["files"]["tickets"]) == 3  # 3.2 MB in parts of about 1 MB


@pytest.mark.parametrize("trap", ["in-strings", "nested"])
def test_a_cut_that_is_not_between_records_falls_back_to_the_whole_file(tmp_path, trap):
    # Every "}, {" in the file but the record boundaries lies inside a string or a nested array:
    # such a cut leaves parts that do not parse, so the export keeps the whole file.
    extra = ({"description": '"},{"' * 400} if trap == "in-strings"
             else {"history": [{"at": j} for j in range(400)]})
    tickets = many_tickets(60, **extra)
    src = write_folder(tmp_path / "src", **{"tickets.json": json.dumps(tickets)})
    result = export(src, tmp_path / "out", part_bytes=5_000)
    assert [(e["path"], e["format"]) for e in read_summary(tmp_path / "out")["files"]["tickets"]] == [("tickets.json", "array")]
    assert result.counts["tickets"] == 60 and records(tmp_path / "out", "tickets") == tickets


def test_a_bad_record_in_a_cut_file_is_named_in_the_whole_file(tmp_path):
    text = json.dumps(many_tickets(2000))
    broken = text.replace('"record 1500"', '"record 1500", "x": tru', 1)
    src = write_folder(tmp_path / "src", **{"tickets.json": broken})
    with pytest.raises(ExportError, match="malformed JSON") as info:
        export(src, tmp_path / "out", part_bytes=20_000)
    assert info.value.file.endswith("tickets.json") and info.value.store == "tickets"
    assert not (tmp_path / "out").exists() and leftovers(tmp_path) == []


# ---------------------------------------------------------------- the output folder


def test_refuses_to_overwrite_without_force_and_replaces_with_it(tmp_path):
    out = tmp_path / "out"
    export(FORM_INPUTS["single"], out)
    before = read_summary(out)["normalizedAt"]
    with pytest.raises(ExportError, match="--force"):
        export(FORM_INPUTS["folder"], out)
    assert read_summary(out)["sourceForm"] == "single" and read_summary(out)["normalizedAt"] == before
    export(FORM_INPUTS["folder"], out, force=True)
    assert read_summary(out)["sourceForm"] == "folder"
    assert leftovers(tmp_path) == []


def test_an_empty_output_folder_is_used(tmp_path):
    (tmp_path / "out").mkdir()
    export(FORM_INPUTS["single"], tmp_path / "out")
    assert (tmp_path / "out" / SUMMARY).is_file()


def test_the_output_may_not_replace_the_source(tmp_path):
    export(FORM_INPUTS["single"], tmp_path / "a")
    with pytest.raises(ExportError, match="replace the source"):
        export(tmp_path / "a", tmp_path / "a", force=True)
    assert (tmp_path / "a" / SUMMARY).is_file()


def test_reuse_rule_same_source_unchanged_else_replace(tmp_path):
    src = write_folder(tmp_path / "src", {"counts": {"tickets": 1}}, **{"tickets.json": json.dumps(make_forms.TICKETS[:1])})
    first = export_or_reuse(src, tmp_path / "out")
    assert not first.reused
    again = export_or_reuse(src, tmp_path / "out")
    assert again.reused and again.counts == first.counts
    (src / "tickets.json").write_text(json.dumps(make_forms.TICKETS[:2]))  # the source changed
    (src / SUMMARY).write_text(json.dumps({"counts": {"tickets": 2}}))
    third = export_or_reuse(src, tmp_path / "out")
    assert not third.reused and third.counts["tickets"] == 2
    other = export_or_reuse(FORM_INPUTS["single"], tmp_path / "out")  # another source: replaced
    assert not other.reused and read_summary(tmp_path / "out")["sourceForm"] == "single"


def test_upload_sessions_may_be_missing(tmp_path):
    src = write_folder(tmp_path / "src", {"counts": {"tickets": 0}})
    result = export(src, tmp_path / "out")
    assert result.missing_stores == ("uploadSessions",)
    assert "uploadSessions" not in result.counts and export_files(tmp_path / "out", "uploadSessions") == []
    assert any("uploadSessions is missing" in w for w in result.warnings)
    assert "missing" in str(result)


def test_empty_stores_are_fine(tmp_path):
    src = write_folder(tmp_path / "src", {"counts": {"tickets": 0, "incidents": 0}},
                       **{"tickets.json": "[]", "incidents.ndjson": ""})
    assert export(src, tmp_path / "out").counts["incidents"] == 0


def test_a_ten_megabyte_text_field_is_carried(tmp_path):
    big = "Ab\u00e9😀" * (10 * 1024 * 1024 // 8)
    ticket = {**make_forms.TICKETS[0], "description": big}
    src = tmp_path / "single.json"
    src.write_text(json.dumps({"tickets": [ticket, make_forms.TICKETS[1]], "incidents": [], "customers": [], "vendors": []},
                              ensure_ascii=False), encoding="utf-8")
    out = tmp_path / "out"
    assert export(src, out).counts["tickets"] == 2
    assert records(out, "tickets")[0]["description"] == big


# ---------------------------------------------------------------- bad input: a clear ExportError, no output


def bad(tmp_path, src, *, match, **where):
    out = tmp_path / "out"
    with pytest.raises(ExportError, match=match) as info:
        export(src, out)
    for attr, expected in where.items():
        got = getattr(info.value, attr)
        assert got is not None and expected in str(got), f"{attr}: {got!r}"
    assert not out.exists() and leftovers(tmp_path) == []
    assert str(info.value).startswith("[export] ")
    return info.value


def test_truncated_array_file(tmp_path):
    text = json.dumps(make_forms.TICKETS)
    src = write_folder(tmp_path / "src", **{"tickets.json": text[: len(text) // 2]})
    bad(tmp_path, src, match="truncated JSON", file="tickets.json", store="tickets")


def test_truncated_ndjson_file(tmp_path):
    lines = "".join(json.dumps(r) + "\n" for r in make_forms.INCIDENTS)
    src = write_folder(tmp_path / "src", **{"incidents.ndjson": lines[:-40]})
    bad(tmp_path, src, match="JSON", file="incidents.ndjson", store="incidents")


def test_truncated_single_file(tmp_path):
    src = tmp_path / "dump.json"
    text = FORM_INPUTS["single"].read_text(encoding="utf-8")
    src.write_text(text[: len(text) * 2 // 3], encoding="utf-8")
    bad(tmp_path, src, match="truncated JSON", file="dump.json")


def test_truncated_dexie_file(tmp_path):
    src = tmp_path / "dump.dexie.json"
    data = FORM_INPUTS["dexie"].read_bytes()
    src.write_bytes(data[: len(data) - 300])
    bad(tmp_path, src, match="truncated JSON", file="dump.dexie.json")


def test_wrong_top_level_type_in_a_store_file(tmp_path):
    src = write_folder(tmp_path / "src", **{"tickets.json": json.dumps({"tickets": make_forms.TICKETS})})
    bad(tmp_path, src, match="wrong top-level type.*found an object", file="tickets.json", store="tickets")


def test_wrong_top_level_type_of_a_single_file(tmp_path):
    src = tmp_path / "dump.json"
    src.write_text(json.dumps(make_forms.TICKETS))
    bad(tmp_path, src, match="wrong top-level type.*found an array", file="dump.json")


def test_a_store_that_is_not_an_array_in_a_single_file(tmp_path):
    src = tmp_path / "dump.json"
    src.write_text(json.dumps({"tickets": {"a": 1}, "incidents": [], "customers": [], "vendors": []}))
    bad(tmp_path, src, match="must be an array.*found an object", file="dump.json", store="tickets")


def test_an_empty_json_file(tmp_path):
    src = write_folder(tmp_path / "src", **{"vendors.json": ""})
    bad(tmp_path, src, match="empty file", file="vendors.json", store="vendors")


def test_a_missing_required_store_file(tmp_path):
    src = write_folder(tmp_path / "src")
    (src / "customers.json").unlink()
    bad(tmp_path, src, match="missing store", file="customers.json", store="customers")


def test_a_required_store_missing_from_a_single_file(tmp_path):
    src = tmp_path / "dump.json"
    src.write_text(json.dumps({"tickets": [], "incidents": [], "vendors": []}))
    bad(tmp_path, src, match="missing store", file="dump.json", store="customers")


def test_a_file_the_summary_lists_but_the_folder_lacks(tmp_path):
    src = write_folder(tmp_path / "src", {"files": {"tickets": ["tickets.part-0001.json", "tickets.part-0002.json"]}},
                       **{"tickets.part-0001.json": "[]"})
    bad(tmp_path, src, match="missing store file", file="tickets.part-0002.json", store="tickets")


def test_a_record_that_is_not_an_object(tmp_path):
    recs = [json.dumps(r) for r in make_forms.TICKETS[:2]] + ['"just text"', json.dumps(make_forms.TICKETS[2])]
    src = write_folder(tmp_path / "src", **{"tickets.json": "[" + ",".join(recs) + "]"})
    bad(tmp_path, src, match="not an object", file="tickets.json", store="tickets", record="index 2")


def test_a_line_that_is_not_an_object(tmp_path):
    lines = [json.dumps(make_forms.INCIDENTS[0]), "[1, 2]", json.dumps(make_forms.INCIDENTS[1])]
    src = write_folder(tmp_path / "src", **{"incidents.ndjson": "\n".join(lines) + "\n"})
    bad(tmp_path, src, match="not an object", file="incidents.ndjson", store="incidents", record="index 1")


def test_a_record_without_its_key_is_a_warning_and_the_transform_rejects_it(tmp_path):
    from etl import transform
    from etl.stage.folder import rejects_path
    from etl.core.stores import VENDORS

    no_id = {k: v for k, v in make_forms.VENDORS[1].items() if k != "id"}
    src = write_folder(tmp_path / "src", **{"vendors.json": json.dumps([make_forms.VENDORS[0], no_id])})
    result = export(src, tmp_path / "out")
    assert result.counts["vendors"] == 2
    assert any("1 vendors record(s) without their key id (first: record index 1)" in w for w in result.warnings), result.warnings
    staged = transform(tmp_path / "out", tmp_path / "stage")
    assert (staged.counts["vendors"].staged, staged.counts["vendors"].rejected) == (1, 1)
    reject = pl.read_parquet(rejects_path(tmp_path / "stage", VENDORS)).row(0, named=True)
    assert (reject["record"], reject["field"], reject["reason"]) == (1, "id", "no primary key")


def test_counts_that_disagree_with_the_summary(tmp_path):
    src = write_folder(tmp_path / "src", {"counts": {"tickets": 6}}, **{"tickets.json": json.dumps(make_forms.TICKETS)})
    bad(tmp_path, src, match="claims 6 records, the files hold 5", file=SUMMARY, store="tickets")


def test_counts_that_disagree_with_dexie_row_counts(tmp_path):
    doc = json.loads(FORM_INPUTS["dexie"].read_text(encoding="utf-8"))
    doc["data"]["tables"][1]["rowCount"] = 9  # incidents
    src = tmp_path / "x.dexie.json"
    src.write_text(json.dumps(doc))
    bad(tmp_path, src, match="claims 9 records", file="x.dexie.json", store="incidents")


def test_an_unsupported_dexie_type(tmp_path):
    doc = json.loads(FORM_INPUTS["dexie"].read_text(encoding="utf-8"))
    row = doc["data"]["data"][3]["rows"][1]  # vendors
    row["logo"] = {"type": "image/png", "data": "AAAA"}
    row["$types"]["logo"] = "blob2"
    src = tmp_path / "x.dexie.json"
    src.write_text(json.dumps(doc))
    bad(tmp_path, src, match="unsupported dexie type 'blob2'", file="x.dexie.json", store="vendors",
        record="index 1", field="logo")


def test_two_copies_of_a_store(tmp_path):
    src = write_folder(tmp_path / "src", **{"tickets.json": "[]", "tickets.ndjson": ""})
    bad(tmp_path, src, match="more than one file", store="tickets")


def test_no_such_source(tmp_path):
    bad(tmp_path, tmp_path / "nope", match="no such file", file="nope")


def test_cli_bad_input_exits_1_with_the_message_and_no_traceback(tmp_path):
    text = json.dumps(make_forms.TICKETS)
    src = write_folder(tmp_path / "src", **{"tickets.json": text[:100]})
    done = subprocess.run([sys.executable, "-m", "etl", "export", "--from", str(src), "--out", str(tmp_path / "out")],
                          capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert done.returncode == 1
    assert "[export] truncated JSON" in done.stderr and "tickets.json" in done.stderr
    assert "Traceback" not in done.stderr + done.stdout
    assert not (tmp_path / "out").exists()


def test_cli_export_and_snippet(tmp_path):
    done = subprocess.run([sys.executable, "-m", "etl", "export", "--from", str(FORM_INPUTS["dexie"]), "--out", str(tmp_path / "out")],
                          capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "dexie form" in done.stdout and "tickets" in done.stdout
    snip = subprocess.run([sys.executable, "-m", "etl", "snippet", "--out", str(tmp_path / "s.js")],
                          capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert snip.returncode == 0 and "InsightTicketDatabase" in (tmp_path / "s.js").read_text()


# ---------------------------------------------------------------- the byte scanner and the dexie rows


def _random_text(rng: random.Random) -> str:
    alphabet = ['"', "\\", "[", "]", "{", "}", ",", ":", " ", "a", "é", "😀", "\n", "\t", "\u0000", "x"]
    return "".join(rng.choice(alphabet) for _ in range(rng.randint(0, 12)))


def _random_value(rng: random.Random, depth: int = 0):
    kind = rng.randint(0, 5 if depth < 3 else 2)
    if kind == 0:
        return _random_text(rng)
    if kind == 1:
        return rng.choice([0, -1.5, 1e20, True, None])
    if kind == 2:
        return "\\" * rng.randint(1, 5) + '"'
    if kind == 3:
        return [_random_value(rng, depth + 1) for _ in range(rng.randint(0, 3))]
    return {_random_text(rng): _random_value(rng, depth + 1) for _ in range(rng.randint(0, 3))}


@pytest.mark.parametrize("seed", range(12))
def test_scanner_cuts_exactly_the_arrays_across_chunk_boundaries(tmp_path, seed):
    rng = random.Random(seed)
    doc = {f"k{i}{_random_text(rng)}": [_random_value(rng) for _ in range(rng.randint(0, 6))] for i in range(4)}
    doc["meta"] = {"a": [1, 2], "s": _random_text(rng)}
    path = tmp_path / "doc.json"
    path.write_text(json.dumps(doc, ensure_ascii=rng.random() < 0.5, indent=rng.choice([None, 2])), encoding="utf-8")
    result = jsonscan.scan(path, level=1, chunk=rng.choice([16, 64, 100, 1 << 20]))
    data = path.read_bytes()
    arrays = [k for k in doc if k != "meta"]
    assert [k for k, v in result.skeleton.items() if jsonscan.span_index(v) is not None] == arrays
    for key in arrays:
        span = result.spans[jsonscan.span_index(result.skeleton[key])]
        assert json.loads(data[span.start:span.end]) == doc[key]
    assert result.skeleton["meta"] == doc["meta"]


def test_scanner_rejects_broken_structure(tmp_path):
    path = tmp_path / "x.json"
    path.write_text('{"a": [1, 2}, "b": []}')
    with pytest.raises(ExportError, match="closed by"):
        jsonscan.scan(path, level=1)
    path.write_text('{"a": "unterminated}')
    with pytest.raises(ExportError, match="inside a string"):
        jsonscan.scan(path, level=1)


def test_dexie_rows_are_decoded():
    row = {"id": 1, "createdAt": 1691695968689, "bad": "NaN", "gone": 0, "n": "Infinity",
           "nested": {"a.b": 5, "list": [0, 1]},
           "$types": {"createdAt": "date", "bad": "date", "gone": "undef", "n": "Infinity", "nested.a~1b": "date",
                      "nested.list.0": "undef"}}
    assert decode_row(row) == {"id": 1, "createdAt": {"$date": 1691695968689}, "bad": {"$date": None}, "n": None,
                               "nested": {"a.b": {"$date": 5}, "list": [None, 1]}}
    with pytest.raises(RowTypeError) as info:
        decode_row({"id": 1, "m": {}, "$types": {"m": "map"}})
    assert info.value.path == "m"
    with pytest.raises(RowTypeError, match="no value there"):
        decode_row({"id": 1, "$types": {"missing": "date"}})


def test_the_playbook_step_reuses_an_unchanged_source_and_replaces_otherwise(tmp_path):
    from etl import load_settings, normalize_export

    settings = load_settings(tmp_path, export_dir=tmp_path / "export")
    src = write_folder(tmp_path / "src", **{"tickets.json": json.dumps(make_forms.TICKETS)})
    assert not normalize_export(settings, src).reused
    again = normalize_export(settings, src)
    assert again.reused and "reused" in str(again)
    (src / "tickets.json").write_text(json.dumps(make_forms.TICKETS[:1]))  # a new export arrived
    replaced = normalize_export(settings, src)
    assert not replaced.reused and replaced.counts["tickets"] == 1
    assert leftovers(tmp_path) == []


def test_typeson_rows_decode_the_same_in_duckdb_and_in_python(tmp_path):
    import duckdb

    from etl.source.dexie import typeson_sql, undo_typeson

    rows = [
        {"id": "plain", "a": 1.5, "s": "a\u0000b 😀", "n": None, "o": {"x": None}},
        {"id": "sql", "createdAt": 1691695968689, "gone": 0, "o": {"x": None, "y": [1, None]},
         "$types": {"createdAt": "date", "gone": "undef"}},
        {"id": "nan", "d": "NaN", "i": "Infinity", "$types": {"d": "date", "i": "Infinity"}},
        {"id": "nested", "o": {"when": 5, "gone": 0}, "$types": {"o.when": "date", "o.gone": "undef"}},
        {"id": "dotted", "a.b": 7, "$types": {"a~1b": "date"}},
        {"id": "absent", "$types": {"notThere": "undef"}},
    ]
    raw = tmp_path / "raw.json"
    raw.write_text(json.dumps(rows[:5], ensure_ascii=False), encoding="utf-8")
    out = tmp_path / "out.json"
    undo_typeson(duckdb.connect(), raw, out, key_field="id", max_object_bytes=1 << 20)
    got = json.loads(out.read_text(encoding="utf-8"))
    assert got == [decode_row(json.loads(json.dumps(r))) for r in rows[:5]]
    assert got[1] == {"id": "sql", "createdAt": {"$date": 1691695968689}, "o": {"x": None, "y": [1, None]}}
    assert got[2] == {"id": "nan", "d": {"$date": None}, "i": None}
    # The plain and "sql" rows are decoded by DuckDB; the others are left to Python.
    raw.write_text(json.dumps(rows[:5], ensure_ascii=False), encoding="utf-8")
    sql = typeson_sql(["createdAt", "gone", "d", "i"], "read_json_objects(?, format='array')")
    done = [row[0] is not None for row in duckdb.connect().execute(sql, [str(raw)]).fetchall()]
    assert done == [True, True, False, False, False]
    raw.write_text(json.dumps(rows[5:]), encoding="utf-8")
    with pytest.raises(RowTypeError, match="no value there") as info:
        undo_typeson(duckdb.connect(), raw, out, key_field="id", max_object_bytes=1 << 20)
    assert (info.value.path, info.value.index, info.value.key) == ("notThere", 0, "absent")


def test_a_store_given_twice_in_a_single_file(tmp_path):
    src = tmp_path / "dump.json"
    src.write_text('{"tickets": [], "incidents": [], "customers": [], "vendors": [], "tickets": []}')
    bad(tmp_path, src, match="'tickets' appears twice", file="dump.json")


def test_a_table_given_twice_in_a_dexie_file(tmp_path):
    doc = json.loads(FORM_INPUTS["dexie"].read_text(encoding="utf-8"))
    doc["data"]["data"].append(doc["data"]["data"][0])
    src = tmp_path / "x.dexie.json"
    src.write_text(json.dumps(doc))
    bad(tmp_path, src, match="two tables", file="x.dexie.json", store="tickets")
