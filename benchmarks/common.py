"""Shared by the benchmarks: the 1M-ticket sample export, and timing a command with its peak memory."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "benchmarks" / "out"  # git-ignored
OUT.mkdir(parents=True, exist_ok=True)
ETL = [sys.executable, "-m", "etl"]


def stage_for(name: str, tickets: int) -> Path:
    """OUT/<name>-stage-<tickets>: the sample exported and transformed (kept for the next run)."""
    stage = OUT / f"{name}-stage-{tickets}"
    summary = stage / "transform-summary.json"
    if summary.is_file() and json.loads(summary.read_text())["counts"]["tickets"]["staged"] == tickets:
        return stage
    export = OUT / f"{name}-export-{tickets}"
    run(f"{name} etl export", [*ETL, "export", "--from", str(sample_export(tickets)), "--out", str(export), "--force"])
    run(f"{name} etl transform", [*ETL, "transform", "--in", str(export), "--out", str(stage)])
    return stage


def loaded_target(name: str, stage: Path, tickets: int, reuse: bool):
    """(target, load seconds or None when reused): the stage loaded by `etl load` into database
    <name>_bench of a private server under OUT/<name>-mysql with a 2 GB buffer pool."""
    sys.path.insert(0, str(ROOT))
    from etl import LocalServer, MySQLTarget, apply_schema

    info = LocalServer(OUT / f"{name}-mysql", buffer_pool="2G").up()
    base = MySQLTarget.parse(info.uri)
    target = MySQLTarget(base.host, base.port, base.user, base.password, f"{name}_bench", base.unix_socket)
    if reuse:
        try:
            with target.connect() as conn, conn.cursor() as cur:
                cur.execute("SELECT COUNT(*) FROM tickets")
                if cur.fetchone()[0] == tickets:
                    return target, None
        except Exception:  # noqa: BLE001 - not there yet: load it
            pass
    with target.connect(database=False) as conn, conn.cursor() as cur:
        cur.execute(f"DROP DATABASE IF EXISTS {name}_bench")
    apply_schema(target)
    done = run(f"{name} etl load", [*ETL, "load", "--stage", str(stage), "--mysql", target.uri, "--quiet"])
    return target, done.seconds


def sample_export(tickets: int, seed: int = 7) -> Path:
    """The app-layout sample export of `tickets` tickets (other stores in proportion), made once."""
    folder = OUT / f"sample-{tickets}-{seed}"
    summary = folder / "export-summary.json"
    if not (summary.is_file() and json.loads(summary.read_text())["counts"]["tickets"] == tickets):
        from etl import write_sample

        print(f"generating a {tickets:,}-ticket sample export in {folder} ...", flush=True)
        write_sample(folder, tickets=tickets, seed=seed)
    return folder


NDJSON_BYTES = 64 << 20  # etl/source/snippet.js NDJSON_BYTES


def snippet_layout(tickets: int, seed: int = 7) -> Path:
    """The same sample as the export snippet downloads it: a store over 64 MB as one NDJSON
    file (one record per line), the others as JSON arrays; made once from `sample_export`."""
    folder = OUT / f"sample-{tickets}-{seed}-snippet"
    source = sample_export(tickets, seed)
    if (folder / "export-summary.json").is_file():
        return folder
    import shutil

    work = OUT / f".{folder.name}.tmp"
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    summary = json.loads((source / "export-summary.json").read_text())
    files = {}
    for store, count in summary["counts"].items():
        path = source / f"{store}.json"
        if path.stat().st_size <= NDJSON_BYTES:
            (work / path.name).hardlink_to(path)
            files[store] = [{"path": path.name, "format": "array", "count": count}]
            continue
        _array_to_ndjson(path, work / f"{store}.ndjson")
        files[store] = [{"path": f"{store}.ndjson", "format": "ndjson", "count": count}]
    (work / "export-summary.json").write_text(json.dumps({**summary, "files": files}))
    work.rename(folder)
    return folder


def _array_to_ndjson(src: Path, dst: Path, chunk: int = 64 << 20) -> None:
    """A compact JSON array (the sample's: records joined by ",") as NDJSON, in bounded memory
    (a child's peak RSS counts this process's at fork). "},{" is taken as a record boundary:
    one inside a string would leave a line that does not parse, which `etl export` refuses."""
    with open(src, "rb") as f, open(dst, "wb") as out:
        text = f.read(chunk).lstrip()
        assert text[:1] == b"[", src
        text = text[1:]
        while True:
            more = f.read(chunk)
            if not more:
                break
            last = text.rfind(b"},{")
            cut = last + 3 if last >= 0 else 0  # after the last boundary: none straddles the cut
            out.write(text[:cut].replace(b"},{", b"}\n{"))
            text = text[cut:] + more
        text = text.rstrip()
        assert text[-1:] == b"]", src
        out.write(text[:-1].replace(b"},{", b"}\n{") + b"\n")


@dataclass(frozen=True)
class Timed:
    label: str
    seconds: float
    peak_mb: float
    output: str


def run(label: str, args: list[str], env: dict | None = None, cwd: Path = ROOT) -> Timed:
    """Run a command in a child process (in `cwd`: another checkout runs its own code):
    its wall time and its own peak RSS (os.wait4)."""
    t0 = time.perf_counter()
    with open(OUT / f"{label.replace(' ', '_')}.log", "w+") as log:
        proc = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT, cwd=cwd, env={**os.environ, **(env or {})})
        _, status, usage = os.wait4(proc.pid, 0)
        seconds = time.perf_counter() - t0
        proc.returncode = os.waitstatus_to_exitcode(status)
        log.seek(0)
        output = log.read()
    if proc.returncode != 0:
        raise SystemExit(f"{label} failed (exit {proc.returncode}):\n{output}")
    return Timed(label, seconds, usage.ru_maxrss / 1024, output)
