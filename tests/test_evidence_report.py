"""The evidence report's cutover half, on real evidence: flag decisions made by the real cutover code in
a real database (a move forced past failing guards, then a rollback), a real `etl monitor` series and a
real `etl bench` report (both against an API that is down, so both breach). The run record is written
with the playbook's 18 step slugs, its cutover ending in a failed monitor and a rollback, as a run
with a post-cutover breach would; the page must say the cutover was not safe, and why.
"""

from __future__ import annotations

import html
import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

from etl import Settings, StepRecord
from etl.core.runs import new_run, now_text, read_run
from etl.report.evidence import write_report
from etl.report.evidence_data import collect_evidence, load_evidence, save_evidence

STEPS = [("preflight", "preparation"), ("schema", "preparation"), ("api-smoke", "preparation"), ("export", "migration"),
         ("transform", "migration"), ("upload-sessions", "migration"), ("load", "migration"), ("parity", "validation"),
         ("aggregations", "validation"), ("benchmark", "validation"), ("dual-read", "cutover"), ("dual-write", "cutover"),
         ("performance", "cutover"), ("cutover", "cutover"), ("monitor", "cutover"), ("finalize-sessions", "finalization"),
         ("rollback", "finalization"), ("report", "finalization")]


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def etl(*args, env: dict, cwd: Path):
    return subprocess.run([sys.executable, "-m", "etl", *args], capture_output=True, text=True, cwd=cwd,
                          env={**os.environ, "MYSQL_URI": "", **env}, timeout=300)


def test_a_rolled_back_cutover_reads_as_not_safe_with_its_evidence(schema_target, tmp_path):
    from etl.cutover import move_to, rollback

    settings = Settings(root=tmp_path, mysql_uri=schema_target.uri, chunk_size=200, export_dir=tmp_path / "export",
                        stage_dir=tmp_path / "stage", runtime_dir=tmp_path / "runtime")
    env = {"RUNTIME_DIR": str(settings.runtime_dir)}
    # evidence from before the run is not this run's
    old = etl("monitor", "--base-url", f"http://127.0.0.1:{closed_port()}", "--count", "1", "--no-db", "--probes", "1",
              env=env, cwd=tmp_path)
    assert old.returncode == 1, old.stderr
    time.sleep(1.1)

    run = new_run(settings.runtime_dir, settings.public(), {"sample_tickets": 300})
    for n, (slug, phase) in enumerate(STEPS, 1):
        run.steps.append(StepRecord(slug.replace("-", " "), slug=slug, n=n, phase=phase,
                                    status="skipped" if n <= 10 else "pending"))
    run.save()
    down = f"http://127.0.0.1:{closed_port()}"
    bench = etl("bench", "--base-url", down, "--duration", "1", "--rate", "5", "--bulk-chunks", "0", env=env, cwd=tmp_path)
    assert bench.returncode == 1, bench.stderr
    forced = move_to(settings, schema_target, "dual-write", force=True, reason="planted: moved past red guards")
    assert forced.action == "forced" and not all(g["ok"] for g in forced.evidence)
    for s in run.steps[10:14]:
        s.status, s.started_at, s.seconds = "ok", now_text(), 0.5
    monitor = etl("monitor", "--base-url", down, "--count", "2", "--interval", "0.1", "--no-db", "--probes", "1",
                  env=env, cwd=tmp_path)
    assert monitor.returncode == 1 and "BREACH" in monitor.stdout
    run.steps[14].status, run.steps[14].error = "failed", "post-cutover monitor: api.up = 0 < threshold 1"
    back = rollback(schema_target, reason="planted breach: api.up = 0 in the post-cutover monitor")
    assert back.action == "rollback"
    run.steps[16].status = "ok"
    run.status, run.finished_at = "failed", now_text()
    run.save()

    evidence = collect_evidence(schema_target, settings, run)
    json.dumps(evidence)  # JSON-plain
    flags = evidence["flags"]
    assert [h["action"] for h in flags["history"]] == ["forced", "rollback"]
    assert {g["name"] for g in flags["history"][0]["evidence"]["guards"]} >= {"sequence", "parity", "bench", "monitor"}
    assert flags["stage_at_end"] == "off"
    assert evidence["monitor"]["during_run"] and len(evidence["monitor"]["samples"]) == 2
    assert {b["metric"] for b in evidence["monitor"]["breaches"]} >= {"api.up"}
    assert evidence["bench"]["during_run"] and evidence["bench"]["ok"] is False and evidence["bench"]["endpoints"]
    assert evidence["ledger"]["totals"]["chunks"] == 0  # nothing loaded in this window
    assert evidence["parity"] is None and evidence["data_docs"]["path"] is None

    path = save_evidence(run, evidence)
    assert path.stat().st_mode & 0o777 == 0o600 and load_evidence(read_run(run.dir)) == evidence
    page = write_report(read_run(run.dir), load_evidence(read_run(run.dir))).read_text()
    verdict = page[page.index('id="verdict"'):page.index('id="timeline"')]
    assert "Was the cutover safe? <span class=\"bad\">NO</span>" in verdict
    assert "planted breach: api.up = 0 in the post-cutover monitor" in verdict
    assert "forced past failing guards" in verdict and "monitor saw" in verdict
    assert "Is the data in MySQL exact? <span class=\"unknown\">not shown</span>" in verdict
    flags_html = page[page.index('id="flags"'):]
    assert "planted: moved past red guards" in flags_html and "rollback" in flags_html
    for g in forced.evidence:  # each guard's verdict and figures, as the decision recorded them
        assert g["name"] in flags_html
    bench_html = page[page.index('id="benchmark"'):page.index('id="monitor"')]
    assert "BREACH" in bench_html and bench_html.count("<svg") == 1  # the percentiles plot
    for e in evidence["bench"]["endpoints"]:
        assert html.escape(e["endpoint"]) in bench_html
    monitor_html = page[page.index('id="monitor"'):page.index('id="flags"')]
    assert monitor_html.count("BREACH at sample") == len(evidence["monitor"]["breaches"])
    # an API that never answered has no latency to plot (said so), but its error rate is plotted
    assert "no data to plot" in monitor_html and monitor_html.count("<svg") == 1 and "error rate" in monitor_html
    assert "step transform was skipped" in page  # sections whose step did not run say so


def test_without_a_database_or_evidence_the_page_says_what_it_lacks(tmp_path):
    settings = Settings(root=tmp_path, mysql_uri=None, chunk_size=200, export_dir=tmp_path / "export",
                        stage_dir=tmp_path / "stage", runtime_dir=tmp_path / "runtime")
    run = new_run(settings.runtime_dir, settings.public())
    run.steps.append(StepRecord("pre-flight checks", slug="preflight", n=1, phase="preparation", status="failed",
                                error="[db] cannot connect", started_at=now_text()))
    run.status, run.finished_at = "failed", now_text()
    run.save()
    evidence = collect_evidence(None, settings, run)
    assert "error" in evidence["ledger"] and "error" in evidence["flags"]
    assert evidence["bench"] is None and evidence["monitor"] is None
    assert "error" in evidence["folders"]["export"] and "error" in evidence["folders"]["stage"]
    page = write_report(run, evidence).read_text()
    assert "not run: the run failed at step preflight, before it" in page
    assert "parity did not run (the run failed at step preflight, before it)" in page
    bare = write_report(run, None).read_text()
    assert "No evidence snapshot (evidence.json) was saved with this run" in bare


def test_odd_records_and_unreadable_evidence_still_give_a_page(tmp_path):
    """Steps whose results are not what the report knows (text, lists, nothing) and evidence whose every
    part could not be read: the page is written, each part saying it could not be read."""
    settings = Settings(root=tmp_path, mysql_uri=None, chunk_size=200, export_dir=tmp_path / "export",
                        stage_dir=tmp_path / "stage", runtime_dir=tmp_path / "runtime")
    run = new_run(settings.runtime_dir, settings.public())
    for n, (slug, phase) in enumerate(STEPS, 1):
        run.steps.append(StepRecord(slug, slug=slug, n=n, phase=phase, status="ok", result=[["odd"], n, None, "text"][n % 4]))
    run.status, run.finished_at = "ok", now_text()
    run.save()
    unreadable = {"error": "planted: cannot be read"}
    evidence = {"collected_at": now_text(), "window": {"from": run.started_at, "to": run.finished_at},
                **{k: unreadable for k in ("ledger", "flags", "bench", "monitor", "parity", "rejects", "folders")}}
    page = write_report(run, evidence).read_text()
    for part in ("load ledger", "flag history", "bench report", "monitor series", "rejects"):
        assert f"The {part} could not be read: planted: cannot be read" in page, part
    assert "The parity step left no result to show." in page
