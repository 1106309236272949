"""Every step result serializes: `json.dumps(result.asdict())` from a real small run, `ok` included,
and no password in it. The list of result types is read from the code (subclasses of Result), so a
new result type that this test does not run fails it."""

from __future__ import annotations

import importlib
import json
import os
import pkgutil
import signal
import subprocess
import sys
import threading
from pathlib import Path

import etl
from etl import (
    ExportFolder, LocalServer, MySQLTarget, Result, StageFolder, apply_schema, copy_context, docs_index, export, load,
    load_settings, parity, project_root, run_sql, transform, write_sample,
)
from etl.api.bench import BenchThresholds, bench
from etl.api.monitor import monitor
from etl.api.serve import ServeResult, background, free_port
from etl.api.smoke import smoke_test
from etl.api.verify import verify_reads
from etl.check.suites import GX_DIR
from etl.check.validate import build_docs, validate
from etl.cutover import history, move_to, read_state, status
from etl.cutover.adapter import write_adapter
from etl.cutover.guards import Move, evaluate, sequence
from etl.cutover.stages import stage as cutover_stage
from etl.mysql.users import add_user
from etl.report.datadocs import open_docs, serve_docs
from etl.source.merge import merge
from etl.source.snippet import write_snippet


def _all_result_types() -> set[type]:
    for m in pkgutil.walk_packages(etl.__path__, "etl."):
        if not m.name.endswith("__main__"):
            importlib.import_module(m.name)
    found, todo = set(), [Result]
    while todo:
        for sub in todo.pop().__subclasses__():
            found.add(sub)
            todo.append(sub)
    return found


def data_of(results, name: str) -> dict:
    return next(r.asdict() for r in results if type(r).__name__ == name)


def _served(target: MySQLTarget, tmp_path) -> ServeResult:
    """`serve` runs in the foreground until Ctrl-C: run it in a process of its own, interrupt it once
    it answers, and take the ServeResult it returned (as its asdict()) back."""
    port = free_port()
    code = ("import json, signal, sys\n"
            "from etl.api.serve import serve\nfrom etl.core.config import load_settings\nfrom etl.mysql.db import MySQLTarget\n"
            "signal.signal(signal.SIGINT, lambda *_: None)  # uvicorn re-raises the Ctrl-C it handled\n"
            "settings = load_settings(api_token='t0ken')\n"
            "r = serve(settings, MySQLTarget.parse(settings.mysql_uri), port=int(sys.argv[1]), echo=lambda _: None)\n"
            "print(json.dumps(r.asdict()))\n")
    env = {**os.environ, "RUNTIME_DIR": str(tmp_path / "serve"), "MYSQL_URI": target.uri}  # not in argv: ps shows that
    proc = subprocess.Popen([sys.executable, "-c", code, str(port)], env=env, stdout=subprocess.PIPE, text=True)
    import httpx

    try:
        for _ in range(600):
            try:
                if httpx.get(f"http://127.0.0.1:{port}/health", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                threading.Event().wait(0.1)
    finally:
        proc.send_signal(signal.SIGINT)
        out, _ = proc.communicate(timeout=60)
    data = json.loads(out.strip().splitlines()[-1])
    assert data.pop("ok") is True and data["requests"] >= 1 and data["url"] == f"http://127.0.0.1:{port}"
    return ServeResult(**data)


def test_every_step_result_serializes(mysql_server, mysql_target, tmp_path):
    raw = tmp_path / "raw"
    results = [write_sample(raw, tickets=120, seed=4)]
    results.append(write_snippet(tmp_path / "snippet.js"))
    results.append(export(raw, tmp_path / "export"))
    results.append(export(raw, tmp_path / "export-b"))
    results.append(merge([tmp_path / "export", tmp_path / "export-b"], tmp_path / "merged"))
    results.append(transform(ExportFolder.open(tmp_path / "export"), tmp_path / "stage"))
    stage = StageFolder.open(tmp_path / "stage")
    results.append(apply_schema(mysql_target))
    results.append(load(stage, mysql_target))
    results.append(parity(stage, mysql_target))
    settings = load_settings(root=tmp_path)
    with background(settings, mysql_target) as (url, token):
        results.append(smoke_test(url, token))
        results.append(verify_reads(url, token, tmp_path / "export", stage_name="shadow", per_bucket=1))
        # a bench that checks the form, not the speed (the test process's own memory is no API's)
        results.append(bench(url, token, tmp_path, rate=10, duration=1, bulk_chunks=1, chunk_size=20,
                             thresholds=BenchThresholds(p95_ms=60_000, chunk_s=60, memory_mb=1e6)))
        results.append(monitor(url, token, mysql_target, tmp_path, interval=0, count=1, probes=2))
    results.append(_served(mysql_target, tmp_path))
    results.append(write_adapter(tmp_path / "adapter.js"))
    results.append(move_to(settings, mysql_target, "dual-write", reason="test", guards=(sequence,)))
    results.append(evaluate(Move(settings, mysql_target, cutover_stage("dual-write"), cutover_stage("shadow")), (sequence,))[0])
    results.append(read_state(mysql_target))
    results.append(history(mysql_target))
    results.append(status(mysql_target))
    root = copy_context(project_root() / GX_DIR, tmp_path / GX_DIR)
    results.append(validate(mysql_target, stage, root=root, docs=False))
    results.append(build_docs(root))
    results.append(open_docs(docs_index(root)))  # where there is no display: where the docs are
    stop, served = threading.Event(), []
    serving = threading.Thread(target=lambda: served.append(serve_docs(root, port=0, echo=lambda _: stop.set(), stop=stop)))
    serving.start()
    serving.join(30)
    results += served
    results.append(add_user(mysql_target, "alice", "admin", "s3cret-Passw0rd"))
    results.append(run_sql("SELECT status, count(*) AS n FROM tickets GROUP BY status ORDER BY status", stage.dir))
    # etl status, etl runs, etl report (the application layer's own results), on a recorded run
    from etl import Settings, status as app_status
    from etl.core.runs import new_run, now_text

    settings = Settings(root=tmp_path, mysql_uri=mysql_target.uri, chunk_size=200, export_dir=tmp_path / "export",
                        stage_dir=tmp_path / "stage", runtime_dir=tmp_path / "runtime")
    run = new_run(settings.runtime_dir, settings.public())
    run.status, run.finished_at = "ok", now_text()
    run.save()
    results.append(app_status.status(settings))
    listed = app_status.runs(settings)
    results += [listed, *listed.runs, app_status.report(settings, open_browser=False)]
    # the playbook's own step results (etl.run), on the same stage and target
    from contextlib import ExitStack

    from etl.source.sample import sample_or_reuse
    from etl.run.context import Context, Parts, PlaybookOptions
    from etl.run.cutover import AlreadyThere
    from etl.run.finalization import finalize_sessions, rollback, write_evidence
    from etl.run.migration import upload_sessions
    from etl.run.preparation import preflight

    with ExitStack() as stack:  # resuming: the flags were moved above, which a new run would refuse
        ctx = Context(settings, PlaybookOptions(), tmp_path / "export", 0, lambda _: None, stack, run=run, resuming=True)
        results += [preflight(ctx), upload_sessions(ctx), finalize_sessions(ctx), rollback(ctx), write_evidence(ctx)]
    results += [Parts((results[-1],)), AlreadyThere("complete")]  # step 14 on flags a killed run had moved
    sample_or_reuse(tmp_path / "sample", 20)
    results.append(sample_or_reuse(tmp_path / "sample", 20))  # the second time: reused
    results.append(etl.db_status(settings))
    base, server = mysql_server
    if server is None:  # the system server: a private one gives a real ServerInfo
        server = LocalServer(tmp_path / "server")
        results.append(server.up())
        server.down()
    else:
        results.append(server.status())

    secret = MySQLTarget("h", 1, "u", "topsecret-pw", "db")
    for r in results:
        data = r.asdict()
        text = json.dumps(data)  # JSON-plain: a Path, tuple or object would need a default=
        assert json.loads(text) == data, type(r).__name__
        assert data["ok"] is True, (type(r).__name__, data)
        assert "s3cret-Passw0rd" not in text and (not base.password or base.password not in text)
        assert set(data) >= {"ok"} and str(r)  # beside a readable __str__
    assert {type(r) for r in results} == _all_result_types()
    assert data_of(results, "FlagChange")["evidence"][0]["name"] == "sequence"  # the guards' asdict, as recorded
    bench_data = data_of(results, "BenchResult")  # the series stays in report.json, out of run records
    report = json.loads((Path(bench_data["report_dir"]) / "report.json").read_text())
    assert "series" not in bench_data and len(report["series"]) == bench_data["overall"]["requests"] > 0
    assert {k: v for k, v in report.items() if k not in ("series", "endpoint_names", "generated_at")} == bench_data
    # a holder of a secret inside a result is serialized masked
    from etl.core.result import plain
    assert "topsecret-pw" not in json.dumps(plain({"target": secret}))
