"""Bad input, faults and misuse, as a new user meets them (issue 13): one case per input kind.

Each case runs the real `etl` command (a subprocess, as a user would) on real files, and asserts
what the user must get: a one-line error naming the file/store/record/field, the documented exit
status, no traceback, nothing partial left behind, nothing of theirs deleted, no secret written.
"""

from __future__ import annotations

import gzip
import json
import os
import shutil
import signal
import subprocess
import sys
import time
import uuid
from datetime import datetime
from pathlib import Path
from urllib.parse import quote

import polars as pl
import pytest

from etl import STORES, export, write_sample

from conftest import password_user

ROOT = Path(__file__).resolve().parent.parent
# Every character a URI gives a meaning to, and the percent sign that encodes them.
PASSWORD = "pw@:/%#?&=+x" + uuid.uuid4().hex[:6]


def etl(*args, env=None, timeout=600):
    """Run `etl` as a user does; returns the finished process (never raises on a failure)."""
    return subprocess.run([sys.executable, "-m", "etl", *args], capture_output=True, text=True, cwd=ROOT,
                          env={**os.environ, "MYSQL_URI": "", **(env or {})}, timeout=timeout)


def one_line_error(done, *names, code=1):
    """The process failed with `code` and said why in one line naming each of `names`."""
    assert done.returncode == code, done.stdout + done.stderr
    assert "Traceback" not in done.stderr + done.stdout, done.stderr
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, done.stderr
    for name in names:
        assert str(name) in lines[0], (name, lines[0])
    return lines[0]


@pytest.fixture(scope="module")
def raw(tmp_path_factory):
    """A small export in the app's layout."""
    folder = tmp_path_factory.mktemp("raw") / "raw"
    write_sample(folder, tickets=120, seed=3)
    return folder


def copy_raw(raw: Path, dest: Path) -> Path:
    shutil.copytree(raw, dest)
    return dest


# ---------------------------------------------------------------- 1. secrets


def test_a_password_is_never_written_or_printed(mysql_server, tmp_path):
    """`etl migrate` with a password holding every URI character, percent-encoded: neither it nor
    its encoding appears in any file the run writes, nor in its output; run records are 0600."""
    base, _ = mysql_server
    dirs = {"RUNTIME_DIR": tmp_path / "runtime", "EXPORT_DIR": tmp_path / "export", "STAGE_DIR": tmp_path / "stage"}
    with password_user(base, PASSWORD) as (uri, database):
        try:
            done = etl("migrate", "--sample-tickets", "150", env={"MYSQL_URI": uri, **{k: str(v) for k, v in dirs.items()}})
            assert done.returncode == 0, done.stdout + done.stderr
            # A failed run writes its record too: a wrong database name fails after the record exists.
            failed = etl("migrate", "--sample-tickets", "150", "--mysql", uri.replace(database, database + "_nope"),
                         env={k: str(v) for k, v in dirs.items()})
            assert failed.returncode == 1
        finally:
            with base.connect(database=False) as conn, conn.cursor() as cur:
                cur.execute(f"DROP DATABASE IF EXISTS `{database}_nope`")
    forms = {PASSWORD, quote(PASSWORD, safe=""), quote(PASSWORD)}
    output = done.stdout + done.stderr + failed.stdout + failed.stderr
    for form in forms:
        assert form not in output
    runs = sorted((tmp_path / "runtime" / "runs").glob("*/run.json"))
    assert runs, "no run record"
    for run in runs:
        assert run.stat().st_mode & 0o777 == 0o600, run
    assert json.loads(runs[0].read_text())["steps"][0]["result"]["target"]["password"] == "***"
    scanned = 0
    for folder in (*dirs.values(), ROOT / "expectations"):
        for path in Path(folder).rglob("*"):
            if path.is_file() and not path.is_symlink():
                data = path.read_bytes()
                scanned += 1
                for form in forms:
                    assert form.encode() not in data, path
    assert scanned > 20


@pytest.mark.parametrize("sep", ["/", "?", "#"])
def test_a_port_that_does_not_parse_is_one_line_without_the_password(sep):
    # A half-encoded password: what follows its ":" up to the unencoded "/" reads as the port.
    done = etl("schema", "apply", "--mysql", f"mysql://me:s3cr{sep}et@127.0.0.1:3306/db")
    line = one_line_error(done, "MYSQL_URI", "port")
    assert "s3cr" not in line and "et@" not in line


# ---------------------------------------------------------------- 7. one line, exit status, debug switch


def test_sample_with_a_negative_count_is_a_usage_error(tmp_path):
    done = etl("sample", "--out", str(tmp_path / "s"), "--tickets", "-1")
    assert done.returncode == 2 and "Traceback" not in done.stderr and "--tickets" in done.stderr
    assert not (tmp_path / "s").exists()


def test_an_unexpected_error_is_one_line_and_the_debug_switch_shows_the_traceback(tmp_path, raw):
    # export-summary.json that is a JSON array: reached code that expected an object
    src = copy_raw(raw, tmp_path / "src")
    (src / "export-summary.json").write_text("[1, 2]")
    done = etl("export", "--from", str(src), "--out", str(tmp_path / "out"))
    one_line_error(done, "export-summary.json")
    assert not (tmp_path / "out").exists()
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []  # no partial folder left


def test_debug_switch_shows_a_traceback(tmp_path):
    done = etl("--debug", "transform", "--in", str(tmp_path / "nothing"), "--out", str(tmp_path / "stage"))
    assert done.returncode == 1 and "Traceback" in done.stderr
    done = etl("transform", "--in", str(tmp_path / "nothing"), "--out", str(tmp_path / "stage"), env={"ETL_DEBUG": "1"})
    assert done.returncode == 1 and "Traceback" in done.stderr


def unprivileged() -> list[str]:
    """A command prefix under which file permissions hold: root without the capabilities that
    override them (else the tests would run as root and read everything)."""
    if os.geteuid() != 0:
        return []
    caps = "-dac_override,-dac_read_search"
    return ["setpriv", "--bounding-set", caps, "--inh-caps", caps]


def etl_unprivileged(*args, env=None):
    return subprocess.run([*unprivileged(), sys.executable, "-m", "etl", *args], capture_output=True, text=True,
                          cwd=ROOT, env={**os.environ, "MYSQL_URI": "", **(env or {})}, timeout=600)


@pytest.fixture
def exported(raw, tmp_path):
    """A normalized export of `raw` (through the library: the commands are the subject elsewhere)."""
    export(raw, tmp_path / "export")
    return tmp_path / "export"


def tree(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


# ---------------------------------------------------------------- 2. folders the tool did not make


def test_transform_refuses_to_replace_the_export_folder(exported):
    before = tree(exported)
    one_line_error(etl("transform", "--in", str(exported), "--out", str(exported)), exported, "--out")
    assert tree(exported) == before


def test_transform_refuses_to_replace_the_folder_holding_the_export(exported):
    (exported.parent / "notes.txt").write_text("mine")
    one_line_error(etl("transform", "--in", str(exported), "--out", str(exported.parent)), exported.parent)
    assert (exported / "export-summary.json").is_file() and (exported.parent / "notes.txt").read_text() == "mine"


def test_transform_refuses_a_folder_that_is_not_a_stage(exported, tmp_path):
    other = tmp_path / "photos"
    other.mkdir()
    (other / "cat.jpg").write_bytes(b"\xff\xd8 not really")
    line = one_line_error(etl("transform", "--in", str(exported), "--out", str(other)), other)
    assert "not a stage" in line
    assert (other / "cat.jpg").read_bytes() == b"\xff\xd8 not really"


def test_transform_refuses_a_stage_with_foreign_files_and_replaces_its_own(exported, tmp_path):
    stage = tmp_path / "stage"
    assert etl("transform", "--in", str(exported), "--out", str(stage)).returncode == 0
    assert etl("transform", "--in", str(exported), "--out", str(stage)).returncode == 0  # its own: replaced
    (stage / "my-analysis.csv").write_text("a,b\n")
    line = one_line_error(etl("transform", "--in", str(exported), "--out", str(stage)), stage, "my-analysis.csv")
    assert "move them away" in line and (stage / "my-analysis.csv").is_file()


def test_export_force_refuses_a_folder_that_is_not_an_export(raw, tmp_path):
    other = tmp_path / "documents"
    other.mkdir()
    (other / "thesis.docx").write_text("years of work")
    line = one_line_error(etl("export", "--from", str(raw), "--out", str(other), "--force"), other)
    assert "--force replaces only an earlier export" in line
    assert (other / "thesis.docx").read_text() == "years of work"
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []


def test_export_force_refuses_the_parent_of_an_export_and_replaces_an_export(raw, exported):
    one_line_error(etl("export", "--from", str(raw), "--out", str(exported.parent), "--force"), exported.parent)
    assert (exported / "export-summary.json").is_file()
    done = etl("export", "--from", str(raw), "--out", str(exported), "--force")
    assert done.returncode == 0, done.stderr
    (exported / "extra.txt").write_text("mine")
    one_line_error(etl("export", "--from", str(raw), "--out", str(exported), "--force"), exported, "extra.txt")
    assert (exported / "extra.txt").is_file()


# ---------------------------------------------------------------- 3. the export is its own copy


def test_the_export_shares_no_file_with_its_source(raw, tmp_path):
    src = copy_raw(raw, tmp_path / "src")
    assert etl("export", "--from", str(src), "--out", str(tmp_path / "export")).returncode == 0
    original = (tmp_path / "export" / "vendors.json").read_bytes()
    assert os.stat(src / "vendors.json").st_ino != os.stat(tmp_path / "export" / "vendors.json").st_ino
    with open(src / "vendors.json", "r+b") as f:  # edit the user's file in place
        f.write(b"[ ")
    assert (tmp_path / "export" / "vendors.json").read_bytes() == original


def test_transform_refuses_an_export_changed_after_it_was_written(exported, tmp_path):
    path = exported / "tickets.json"
    data = bytearray(path.read_bytes())
    i = data.index(b'"status"')
    data[i + 1] = ord("S")  # same size, one byte changed
    path.write_bytes(bytes(data))
    line = one_line_error(etl("transform", "--in", str(exported), "--out", str(tmp_path / "stage")), path, "changed")
    assert "etl export --force" in line
    assert not (tmp_path / "stage").exists()


# ---------------------------------------------------------------- 7. inputs and outputs the tool cannot use


def test_an_unreadable_store_file_is_one_line(raw, tmp_path):
    src = copy_raw(raw, tmp_path / "src")
    (src / "vendors.json").chmod(0)
    done = etl_unprivileged("export", "--from", str(src), "--out", str(tmp_path / "out"))
    one_line_error(done, src / "vendors.json", "ermission denied")
    assert not (tmp_path / "out").exists()


def test_a_read_only_output_folder_is_one_line(exported, tmp_path):
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o555)
    try:
        one_line_error(etl_unprivileged("transform", "--in", str(exported), "--out", str(ro / "stage")), ro, "ermission denied")
        one_line_error(etl_unprivileged("export", "--from", str(exported), "--out", str(ro / "export")), ro, "ermission denied")
    finally:
        ro.chmod(0o755)
    assert list(ro.iterdir()) == []


@pytest.fixture
def full_folder(tmp_path):
    """A folder with 16 KB of room: a tmpfs of its own (root), else RLIMIT_FSIZE caps every file at 8 KB."""
    folder = tmp_path / "full"
    folder.mkdir()
    if os.geteuid() == 0:
        subprocess.run(["mount", "-t", "tmpfs", "-o", "size=16k", "tmpfs", str(folder)], check=True)
        yield folder, None
        subprocess.run(["umount", str(folder)], check=True)
    else:
        import resource

        yield folder, lambda: resource.setrlimit(resource.RLIMIT_FSIZE, (8 << 10, 8 << 10))


@pytest.mark.parametrize("command", ["transform", "export"])
def test_a_full_output_folder_is_one_line_and_leaves_nothing(raw, exported, full_folder, command):
    folder, limit = full_folder
    args = (["transform", "--in", str(exported)] if command == "transform" else ["export", "--from", str(raw)])
    done = subprocess.run([sys.executable, "-m", "etl", *args, "--out", str(folder / "out")],
                          capture_output=True, text=True, cwd=ROOT, preexec_fn=limit, timeout=600)
    one_line_error(done, folder / "out")
    assert "No space left" in done.stderr or "too large" in done.stderr
    assert list(folder.iterdir()) == []


def test_export_summary_with_a_byte_order_mark_is_accepted(raw, tmp_path):
    src = copy_raw(raw, tmp_path / "src")
    summary = src / "export-summary.json"
    summary.write_bytes(b"\xef\xbb\xbf" + summary.read_bytes())
    done = etl("export", "--from", str(src), "--out", str(tmp_path / "out"))
    assert done.returncode == 0, done.stderr
    done = etl("transform", "--in", str(tmp_path / "out"), "--out", str(tmp_path / "stage"))
    assert done.returncode == 0, done.stderr


# ---------------------------------------------------------------- 9. inputs that are not what they seem


@pytest.mark.parametrize("kind,expect", [
    ("utf16", "UTF-16"), ("utf16-nobom", "UTF-16"), ("gzip", "compressed (gzip)"), ("zip", "compressed (zip)"),
    ("folder", "a folder"), ("fifo", "FIFO"), ("broken-link", "broken symbolic link"),
])
def test_a_store_file_that_is_not_utf8_json_says_what_it_is(raw, tmp_path, kind, expect):
    src = copy_raw(raw, tmp_path / "src")
    path = src / "vendors.json"
    text = path.read_text(encoding="utf-8")
    path.unlink()
    if kind == "utf16":
        path.write_bytes(text.encode("utf-16"))
    elif kind == "utf16-nobom":
        path.write_bytes(text.encode("utf-16-le"))
    elif kind == "gzip":
        path.write_bytes(gzip.compress(text.encode()))
    elif kind == "zip":
        import zipfile

        with zipfile.ZipFile(path, "w") as z:
            z.writestr("vendors.json", text)
    elif kind == "folder":
        path.mkdir()
    elif kind == "fifo":
        os.mkfifo(path)
    else:
        path.symlink_to(tmp_path / "gone.json")
    line = one_line_error(etl("export", "--from", str(src), "--out", str(tmp_path / "out")), path, expect)
    assert "not in the folder" not in line
    assert not (tmp_path / "out").exists()


# ---------------------------------------------------------------- 11. interruptions


def test_sigterm_during_a_transform_leaves_no_temporary_folder(tmp_path):
    raw = tmp_path / "raw"
    write_sample(raw, tickets=40000, seed=5)
    export(raw, tmp_path / "export")
    stage = tmp_path / "stage"
    proc = subprocess.Popen([sys.executable, "-m", "etl", "transform", "--in", str(tmp_path / "export"), "--out", str(stage)],
                            cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    tmp = tmp_path / f".stage.tmp-{proc.pid}"
    deadline = time.monotonic() + 120
    while not tmp.exists() and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.02)
    assert proc.poll() is None, "the transform ended before it could be interrupted: use a larger sample"
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 128 + signal.SIGTERM, err
    assert "Traceback" not in err and "terminated" in err
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == [] and not stage.exists()


def test_a_killed_transforms_temporary_folder_is_removed_by_the_next(exported, tmp_path):
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    stale = [tmp_path / f".stage.tmp-{dead.pid}", tmp_path / f".stage.old-{dead.pid}"]
    for folder in stale:
        (folder / "rejects").mkdir(parents=True)
    living = tmp_path / f".stage.tmp-{os.getpid()}"  # a transform that still runs keeps its folder
    living.mkdir()
    assert etl("transform", "--in", str(exported), "--out", str(tmp_path / "stage")).returncode == 0
    assert not any(f.exists() for f in stale) and living.is_dir()


# ---------------------------------------------------------------- 4. times: convert what is unambiguous, reject the rest


def small_export(folder: Path, **stores) -> Path:
    """A tiny export in the app's layout, normalized by the library."""
    raw = folder / "raw"
    raw.mkdir(parents=True)
    for s in STORES:
        if s.name in stores or s.required:
            (raw / f"{s.name}.json").write_text(json.dumps(stores.get(s.name, []), ensure_ascii=False))
    export(raw, folder / "export")
    return folder / "export"


TIME_CASES = [  # (closeTime, staged UTC time or a part of the reject's reason)
    ("2025-05-12 14:30:00 Asia/Jakarta", datetime(2025, 5, 12, 7, 30)),
    ("2025-05-12T14:30:00 UTC", datetime(2025, 5, 12, 14, 30)),
    ("2025-05-12T14:30:00 WIB", "time zone WIB is an abbreviation"),
    ("2025-05-12 14:30:00 PST", "time zone PST is an abbreviation"),
    (1747059000, datetime(2025, 5, 12, 14, 10)),  # epoch seconds
    ("1747059000", datetime(2025, 5, 12, 14, 10)),
    (1747059000123, datetime(2025, 5, 12, 14, 10, 0, 123000)),  # epoch milliseconds
    ({"$date": 1747059000000}, datetime(2025, 5, 12, 14, 10)),
    (0, "a bare 0 is not a time"),
    (45789.6, "spreadsheet serial date"),
    (-5, "negative"),
    (12345678, "too small for epoch seconds"),
    (50000000000, "ambiguous"),
    ("2025-05-12 14:30:00 Mars/Olympus", "time does not parse"),
]


def test_every_time_form_is_converted_or_rejected_with_its_reason(tmp_path):
    from etl import read_stage, store, transform
    from etl.stage.folder import rejects_path, stage_summary

    cases = TIME_CASES
    tickets = [{"id": f"t{i}", "openTime": "2024-07-15T17:35:00", "closeTime": v} for i, (v, _) in enumerate(cases)]
    tickets.append({"id": "old", "openTime": "1999-12-31T23:00:00"})  # plausible to parse, not to have happened
    tickets.append({"id": "future", "openTime": "2031-01-01T00:00:00"})
    export_dir = small_export(tmp_path, tickets=tickets)
    result = transform(export_dir, tmp_path / "stage")
    staged = dict(read_stage(tmp_path / "stage", store("tickets")).select("id", "close_time").iter_rows())
    rejects = dict(pl.read_parquet(rejects_path(tmp_path / "stage", store("tickets"))).select("key", "reason").iter_rows())
    for i, (value, want) in enumerate(cases):
        if isinstance(want, datetime):
            assert staged.get(f"t{i}") == want, value
        else:
            assert want in rejects.get(f"t{i}", ""), (value, rejects.get(f"t{i}"))
    assert result.implausible_times == {"tickets": {"open_time": 2}}
    assert stage_summary(tmp_path / "stage")["implausible_times"] == {"tickets": {"open_time": 2}}
    assert any("before 2000-01-01" in f and "tickets.open_time 2" in f for f in result.findings)


# ---------------------------------------------------------------- 8. one odd record does not stop its store


def raw_tickets(tmp_path: Path, text: str) -> Path:
    """A raw export whose tickets.json is `text` (as written, byte for byte) and other stores empty."""
    raw = tmp_path / "raw"
    raw.mkdir()
    (raw / "tickets.json").write_text(text)
    for s in STORES:
        if s.required and s.name != "tickets":
            (raw / f"{s.name}.json").write_text("[]")
    return raw


def test_a_lone_surrogate_is_replaced_counted_and_named_and_the_store_goes_through(tmp_path):
    from etl import read_stage, store, transform
    from etl.source.export import read_summary

    # JSON.stringify of a string cut inside an emoji; an escaped backslash before "u" and a whole pair stay
    raw = raw_tickets(tmp_path,
        '[{"id": "a", "openTime": "2024-07-15T17:35:00", "status": "kept \\\\ud83d"},'
        ' {"id": "b", "openTime": "2024-07-15T17:35:00", "status": "cut \\ud83d"},'
        ' {"id": "c", "openTime": "2024-07-15T17:35:00", "status": "pair \\ud83d\\ude00, low \\udc00"}]')
    done = etl("export", "--from", str(raw), "--out", str(tmp_path / "export"))
    assert done.returncode == 0, done.stderr
    assert "2 lone UTF-16 surrogate escape(s)" in done.stdout and "record index 1 (key 'b')" in done.stdout
    assert read_summary(tmp_path / "export")["replacedSurrogates"] == {"tickets": 2}
    transform(tmp_path / "export", tmp_path / "stage")
    got = dict(read_stage(tmp_path / "stage", store("tickets")).select("id", "status").iter_rows())
    assert got == {"a": "kept \\ud83d", "b": "cut \ufffd", "c": "pair \U0001F600, low \ufffd"}


def test_a_repeated_property_rejects_its_record_only(tmp_path):
    from etl import read_stage, store, transform
    from etl.stage.folder import rejects_path

    raw = raw_tickets(tmp_path,
        '[{"id": "a", "openTime": "2024-07-15T17:35:00"},'
        ' {"id": "b", "openTime": "2024-07-15T17:35:00", "status": "Open", "status": "Closed"},'
        ' {"id": "c", "openTime": "2024-07-15T17:35:00"}]')
    export(raw, tmp_path / "export")
    result = transform(tmp_path / "export", tmp_path / "stage")
    assert result.counts["tickets"].staged == 2 and result.counts["tickets"].rejected == 1
    assert sorted(read_stage(tmp_path / "stage", store("tickets"))["id"]) == ["a", "c"]
    reject = pl.read_parquet(rejects_path(tmp_path / "stage", store("tickets"))).row(0, named=True)
    assert (reject["file"], reject["record"], reject["key"], reject["field"]) == ("tickets.json", 1, "b", "status")
    assert "appears twice" in reject["reason"]


def _records(runs: Path) -> list[dict]:
    out = []
    for p in runs.glob("*/run.json"):
        try:
            out.append(json.loads(p.read_text()))
        except ValueError:  # being replaced: os.replace is atomic, so only a race with the glob
            continue
    return out


def test_an_interrupted_migrate_records_interrupted(mysql_target, tmp_path):
    dirs = {"RUNTIME_DIR": str(tmp_path / "runtime"), "EXPORT_DIR": str(tmp_path / "export"),
            "STAGE_DIR": str(tmp_path / "stage")}
    proc = subprocess.Popen([sys.executable, "-m", "etl", "migrate", "--sample-tickets", "2000"], cwd=ROOT,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, **dirs, "MYSQL_URI": mysql_target.uri})
    runs = tmp_path / "runtime" / "runs"
    deadline = time.monotonic() + 120
    while not any(r["steps"] for r in _records(runs)) and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    assert proc.poll() is None, "migrate ended before it could be interrupted"
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=300)
    # (Once in five runs a SIGTERM landed in a destructor, where Python ignores the exception it
    # raises, and migrate went on to exit 0: the stop is now honoured at the next step boundary.)
    assert proc.returncode == 128 + signal.SIGTERM and "Traceback" not in err, (proc.returncode, err)
    (record,) = _records(runs)
    assert record["status"] == "interrupted"
    statuses = [s["status"] for s in record["steps"]]  # every step of the playbook is recorded
    stopped = statuses.index("interrupted")
    assert set(statuses[:stopped]) <= {"ok"} and set(statuses[stopped + 1:]) == {"pending"}, statuses
