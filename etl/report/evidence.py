"""One evidence report per migration run: RUNTIME_DIR/runs/<id>/report.html, for a reviewer who was not there.

`write_report(run, evidence)` renders the page from the run record and the evidence snapshot
(etl.report.evidence_data) alone, so it can be rebuilt anywhere without a database: inline CSS and
SVG, no script, nothing fetched. It opens with the verdict (is the data exact? was the cutover
safe? and why), then one section per kind of evidence; a section whose step did not run in this
run says so. Every text passes `mask_uri` before it is written.
"""

from __future__ import annotations

import json
import os
from datetime import timedelta
from pathlib import Path

from jinja2 import Environment, PackageLoader, select_autoescape

from ..core.config import mask_uri
from ..core.runs import RunRecord
from .charts import line_chart
from .evidence_data import (PHASES, find_key, iso_text, save_evidence, slug_of, steps_of, utc_now, utc_time,
                            write_private)


# ---------------------------------------------------------------- what the page shows


def _ran(steps) -> bool:
    return any(s.status in ("ok", "failed", "interrupted", "running") for s in steps)


def _section(run: RunRecord, *slugs: str) -> dict:
    """Whether the steps behind a section ran in this run, and if not, why not."""
    steps = [s for slug in slugs for s in steps_of(run, slug)]
    if _ran(steps):
        failed = [s for s in steps if s.status in ("failed", "interrupted")]
        return {"ran": True, "steps": steps, "failed": failed}
    where = stopped_where(run)
    if steps and all(s.status == "skipped" for s in steps):
        reason = f"step {steps[0].slug or steps[0].name} was skipped"
    elif where is not None:
        status = shown_status(run)[0]
        reason = f"the run {'failed' if status == 'failed' else 'was ' + status} {where}, before it"
    elif run.options.get("until") or run.options.get("only"):
        how = ", ".join(f"--{k.replace('_', '-')} {v}" for k, v in run.options.items() if k in ("until", "only") and v)
        reason = f"the run was asked to stop early ({how})"
    elif run.status == "running":
        reason = "the run is still going"
    elif steps:
        reason = f"the run ended ({run.status}) before it"
    else:
        reason = "the run has no such step"
    why = f"not run: {reason}"
    return {"ran": False, "steps": steps, "failed": [], "why": why, "reason": reason}


def stop_point(run: RunRecord):
    """The step where a run stopped (failed or interrupted), or None."""
    return next((s for s in run.steps if s.status in ("failed", "interrupted")), None)


def stopped_where(run: RunRecord) -> str | None:
    """"at step X" for a run that stopped in a step; "after step Y" for one that was killed between two
    steps (its record shows none running); None for a run that did not stop."""
    stopped = stop_point(run)
    if stopped is not None:
        return f"at step {stopped.slug or stopped.name}"
    if run.status in ("failed", "interrupted"):
        done = [s for s in run.steps if s.status == "ok"]
        return f"after step {done[-1].slug or done[-1].name}" if done else "before its first step"
    return None


def _balance(run: RunRecord, evidence: dict) -> list[dict]:
    step = next((s for s in reversed(steps_of(run, "transform")) if s.result), None)
    holder = find_key(step.result, "counts") if step else None
    counts = (holder or {}).get("counts") or {}
    if not counts and step is not None and step.status == "ok":
        counts = ((evidence.get("folders") or {}).get("stage") or {}).get("counts") or {}
    rows = []
    for store, c in counts.items():
        if isinstance(c, dict) and "records_in" in c:
            rows.append({"store": store, **{k: c.get(k, 0) for k in ("records_in", "staged", "rejected", "duplicates")},
                         "balanced": c.get("records_in") == c.get("staged", 0) + c.get("rejected", 0)})
    return rows


def _export_counts(run: RunRecord, evidence: dict) -> dict:
    for step in reversed(steps_of(run, "export")):
        holder = find_key(step.result, "counts")
        if holder and all(isinstance(v, int) for v in holder["counts"].values()):
            return {"counts": holder["counts"], "source": holder.get("source"), "dir": holder.get("out_dir"),
                    "form": holder.get("source_form"), "warnings": holder.get("warnings") or []}
    ex = (evidence.get("folders") or {}).get("export") or {}
    return {"counts": ex.get("counts") or {}, "dir": ex.get("dir"), "source": None, "form": None, "warnings": []}


def _checks(run: RunRecord) -> dict:
    step = next((s for s in reversed(steps_of(run, "aggregations")) if s.result), None)
    result = step.result if step else None
    holder = find_key(result, "suites") or {}
    checks = [c for c in holder.get("checks") or [] if isinstance(c, dict)]
    failed = [c for c in checks if c.get("outcome") == "failed"]
    warned = [c for c in checks if c.get("outcome") not in ("passed", "failed")]
    return {"suites": [x for x in holder.get("suites") or [] if isinstance(x, dict)], "checks": len(checks), "failed": failed, "warnings": warned,
            "ok": holder.get("ok"), "notes": holder.get("notes") or [], "docs": holder.get("docs_index")}


def _parity(run: RunRecord, evidence: dict) -> dict | None:
    ev = evidence.get("parity")
    if isinstance(ev, dict) and "tables" in ev:
        return ev
    step = next((s for s in reversed(steps_of(run, "parity")) if s.result), None)
    holder = find_key(step.result, "tables") if step else None
    if not holder:
        return None
    tables = [{**t, "ok": not (t.get("mismatched_buckets") or t.get("missing_in_mysql") or t.get("only_in_mysql")
                               or t.get("changed")) and t.get("stage_rows") == t.get("mysql_rows"), "differing": []}
              for t in holder["tables"] if isinstance(t, dict)]
    return {"ok": holder.get("ok"), "tables": tables, "report_dir": holder.get("report_dir"),
            "html": str(Path(holder["report_dir"]) / "report.html") if holder.get("report_dir") else None}


def verdict_exact(run: RunRecord, evidence: dict, balance, parity, checks) -> dict:
    """Is MySQL exactly the data? Yes only on a green parity of every table, a balanced transform,
    no ledger chunk that failed its read-back, and no failed expectation."""
    why, problems = [], []
    sec = _section(run, "parity")
    if not sec["ran"] or parity is None:
        return {"answer": "not shown", "cls": "unknown",
                "why": [f"parity did not run ({sec.get('reason') or 'it left no result'}), so nothing here proves the data exact"]}
    bad = [t for t in parity["tables"] if not t.get("ok")]
    rows = sum(t.get("mysql_rows") or 0 for t in parity["tables"])
    if bad:
        problems.append("parity found differences in " + ", ".join(
            f"{t['table']} ({t.get('mismatched_buckets', 0)} differing buckets; {t.get('missing_in_mysql', 0)} missing in MySQL, "
            f"{t.get('only_in_mysql', 0)} only in MySQL, {t.get('changed', 0)} changed)" for t in bad))
    elif sec["failed"]:
        problems.append(f"the parity step {sec['failed'][0].status}: {sec['failed'][0].error}")
    else:
        why.append(f"parity: every bucket of {len(parity['tables'])} tables has the same row count and checksum on "
                   f"both sides ({sum(t.get('bucket_count') or 0 for t in parity['tables']):,} buckets, {rows:,} rows)")
    unbalanced = [b["store"] for b in balance if not b["balanced"]]
    if unbalanced:
        problems.append("the transform does not balance (in != staged + rejected) for " + ", ".join(unbalanced))
    elif balance:
        rejected = sum(b["rejected"] for b in balance)
        why.append(f"transform: every record read is staged or rejected with a reason ({rejected:,} rejected)")
    ledger = evidence.get("ledger") or {}
    mismatched = ((ledger.get("totals") or {}).get("by_state") or {}).get("mismatch", 0)
    if mismatched:
        problems.append(f"{mismatched} load chunk(s) did not read back as sent (ledger state mismatch)")
    elif ledger.get("totals", {}).get("chunks"):
        why.append(f"load: {ledger['totals']['chunks']:,} ledger chunks, none failed its read-back check")
    elif ledger.get("totals"):
        why.append("load: the ledger holds no chunk written during this run (nothing was left to write)")
    if _section(run, "aggregations")["ran"]:
        if checks["failed"]:
            problems.append(f"{len(checks['failed'])} of {checks['checks']} expectations failed: "
                            + ", ".join(c.get("rule", "?") for c in checks["failed"][:5]))
        elif checks["checks"]:
            why.append(f"expectations: {checks['checks']} passed ({len(checks['warnings'])} warnings about the source)")
    else:
        why.append("expectations: not run in this run")
    if problems:
        return {"answer": "NO", "cls": "bad", "why": problems + why}
    return {"answer": "yes", "cls": "good", "why": why}


def verdict_cutover(run: RunRecord, evidence: dict) -> dict:
    """Was the cutover safe? Yes when the cutover steps ran and passed, every forward move passed its
    guards (none forced), the post-cutover monitor saw no breach and nothing was rolled back."""
    cut = [s for s in run.steps if s.phase == "cutover"]
    flags = evidence.get("flags") or {}
    history = flags.get("history") or []
    # A rollback made by the run's own preflight, before its first forward move, is the run starting
    # over (etl migrate --restart, or the embedded default again): no cutover of this run was undone.
    first = next((i for i, h in enumerate(history) if h.get("action") in ("set", "forced") and h.get("to_stage") != "off"),
                 len(history))
    pre = next((s for s in steps_of(run, "preflight") if s.status == "ok" and s.started_at), None)
    until = utc_time(pre.started_at) + timedelta(seconds=(pre.seconds or 0) + 1) if pre else None
    restarts = [h for h in history[:first] if h.get("action") == "rollback" and until
                and (utc_time(h.get("changed_at")) or until) <= until]
    rollbacks = [h for h in history if h.get("action") == "rollback" and h not in restarts]
    forced = [h for h in history if h.get("action") == "forced"]
    monitor = evidence.get("monitor") or {}
    breaches = monitor.get("breaches") if monitor.get("during_run") else []
    if not _ran(cut) and not history:
        why = (f"the cutover phase did not run: {_section(run, *(slug_of(s) for s in cut))['reason']}" if cut
               else "the run has no cutover steps")
        return {"answer": "not attempted", "cls": "unknown", "why": [why]}
    problems, why = [], []
    for h in rollbacks:
        problems.append(f"rolled back at {h.get('changed_at')} (from {h.get('from_stage')}): "
                        f"{h.get('reason') or (h.get('evidence') or {}).get('message') or 'no reason recorded'}")
    for h in forced:
        problems.append(f"the move {h.get('from_stage')} -> {h.get('to_stage')} was forced past failing guards: {h.get('reason')}")
    for s in cut:
        if s.status in ("failed", "interrupted"):
            problems.append(f"step {s.slug or s.name} {s.status}: {s.error}")
    if breaches:
        problems.append(f"the monitor saw {len(breaches)} breach(es): "
                        + "; ".join(f"{b.get('metric')} = {b.get('value')} {b.get('op', '>')} {b.get('threshold')}" for b in breaches[:3]))
    if "error" in flags:
        problems.append(f"the flag history could not be read: {flags['error']}")
    for h in restarts:
        why.append(f"started over: the flags were rolled back from {h.get('from_stage')} at {h.get('changed_at')}, "
                   "before this run's cutover began")
    moves = [h for h in history if h.get("action") == "set" and (h.get("evidence") or {}).get("guards")]
    if moves:
        guards = sum(len(h["evidence"]["guards"]) for h in moves)
        failing = [g for h in moves for g in h["evidence"]["guards"] if not g.get("ok")]
        if failing:
            problems.append(f"{len(failing)} guard(s) of a recorded move failed")
        else:
            why.append(f"{len(moves)} guarded move(s), all {guards} guard results green")
    end = flags.get("stage_at_end")
    if end:
        why.append(f"the flags ended at stage {end}")
    if monitor.get("during_run") and not breaches:
        why.append(f"the monitor took {len(monitor.get('samples') or [])} samples without a breach")
    pending = [s for s in cut if s.status in ("pending", "skipped")]
    if problems:
        return {"answer": "NO", "cls": "bad", "why": problems + why}
    if pending or end not in (None, "complete"):
        return {"answer": "not finished", "cls": "unknown",
                "why": why + [f"the cutover did not reach complete ({len(pending)} cutover step(s) not run)"]}
    return {"answer": "yes", "cls": "good", "why": why}


def _throughput(ledger: dict):
    chunks = [c for c in ledger.get("chunks") or [] if c.get("written_at")]
    if not chunks:
        return None
    t0 = min(utc_time(c["started_at"] or c["written_at"]) for c in chunks)
    series: dict[str, list] = {}
    total = 0
    series["all tables"] = [(0.0, 0)]
    for c in sorted(chunks, key=lambda c: c["written_at"]):
        total += c["written"]
        series.setdefault("all tables", []).append(((utc_time(c["written_at"]) - t0).total_seconds(), total))
    per = [(c["table"], c["rows"] / c["seconds"]) for c in chunks if c.get("seconds")]
    return {"chart": line_chart(list(series.items()), x_label="seconds since the first chunk started",
                                y_label="rows written", title="rows written over time"),
            "rate": max(per, key=lambda x: x[1]) if per else None,
            "seconds": (max(utc_time(c["written_at"]) for c in chunks) - t0).total_seconds()}


def _bench_chart(bench: dict):
    if not bench or not bench.get("endpoints"):
        return None
    cats = ["p50", "p90", "p95", "p99", "p99.9", "max"]
    keys = ["p50_ms", "p90_ms", "p95_ms", "p99_ms", "p999_ms", "max_ms"]
    series = [(e["endpoint"], [(i, e.get(k)) for i, k in enumerate(keys)]) for e in bench["endpoints"]]
    return line_chart(series, x_label="percentile", y_label="latency ms", log_y=True, categories=cats,
                      title="latency percentiles per endpoint", marks=True)


def _monitor_charts(monitor: dict):
    samples = (monitor or {}).get("samples") or []
    if not samples:
        return None
    x = lambda s: s.get("elapsed_s") if s.get("elapsed_s") is not None else s.get("sample")  # noqa: E731
    latency = line_chart([("API p95 ms", [(x(s), s.get("p95_ms")) for s in samples])],
                         x_label="seconds since the monitor started", y_label="ms", title="API p95 latency")
    load = line_chart([("error rate %", [(x(s), (s.get("error_rate") or 0) * 100) for s in samples]),
                       ("threads running", [(x(s), s.get("threads_running")) for s in samples])],
                      x_label="seconds since the monitor started", y_label="value", title="errors and database load")
    return {"latency": latency, "load": load}


ASKED = ("until", "only", "from_step", "resume", "source", "sample_tickets")


def asked(run: RunRecord) -> dict:
    """How the run was asked for, as far as a reader cares (not its bookkeeping)."""
    options = {**(run.options.get("migrate") if isinstance(run.options.get("migrate"), dict) else {}), **run.options}
    return {k: options[k] for k in ASKED if options.get(k) not in (None, False, "")}


def shown_status(run: RunRecord) -> tuple[str, str]:
    """(status, note): a record still "running" because its own report step is writing this page (in
    this process) shows the status its steps so far give."""
    writing = any(slug_of(s) == "report" and s.status == "running" for s in run.steps)
    if run.status == "running" and writing and run.pid == os.getpid():
        bad = any(s.status in ("failed", "interrupted") for s in run.steps)
        return ("failed" if bad else "ok"), "as of its last step, which wrote this page"
    return run.status, ""


def view(run: RunRecord, evidence: dict | None) -> dict:
    """Everything the template shows, computed from the record and the evidence."""
    evidence = evidence or {}
    status, status_note = shown_status(run)
    balance = _balance(run, evidence)
    parity = _parity(run, evidence)
    checks = _checks(run)
    ledger = evidence.get("ledger") or {}
    docs = (evidence.get("data_docs") or {}).get("path") or checks["docs"]
    steps = []
    for s in run.steps:
        writing = status_note and slug_of(s) == "report" and s.status == "running"
        steps.append({"n": s.n, "slug": slug_of(s), "name": s.name, "phase": s.phase or "",
                      "status": "writing" if writing else s.status,
                      "seconds": s.seconds or 0.0, "error": s.error, "started_at": s.started_at,
                      "result": json.dumps(s.result, indent=1, ensure_ascii=False, default=str) if s.result is not None else ""})
    total = sum(s["seconds"] for s in steps) or 1.0
    stopped = stop_point(run)
    return {
        "run": run, "steps": steps, "total_seconds": total, "stopped": stopped, "where": stopped_where(run), "evidence": evidence,
        "have_evidence": bool(evidence), "status": status, "status_note": status_note, "asked": asked(run),
        "exact": verdict_exact(run, evidence, balance, parity, checks),
        "cutover": verdict_cutover(run, evidence),
        "sections": {name: _section(run, *slugs) for name, slugs in {
            "export": ("export",), "transform": ("transform", "upload-sessions"), "load": ("load",), "parity": ("parity",),
            "expectations": ("aggregations",), "benchmark": ("benchmark", "performance"),
            "monitor": ("monitor",), "flags": ("dual-read", "dual-write", "cutover", "rollback")}.items()},
        "export": _export_counts(run, evidence), "balance": balance, "rejects": evidence.get("rejects") or {},
        "ledger": ledger, "throughput": _throughput(ledger) if "chunks" in ledger else None,
        "parity": parity, "checks": checks, "docs": docs, "docs_exists": bool(docs and Path(docs).is_file()),
        "bench": evidence.get("bench"), "bench_chart": _bench_chart(evidence.get("bench")),
        "monitor": evidence.get("monitor"), "monitor_charts": _monitor_charts(evidence.get("monitor")),
        "flags": evidence.get("flags") or {},
        "phases": PHASES,
        "generated_at": iso_text(utc_now()),
    }


_env = Environment(loader=PackageLoader(__package__, "templates"), autoescape=select_autoescape(default=True),
                   trim_blocks=True, lstrip_blocks=True)


def render_html(run: RunRecord, evidence: dict | None) -> str:
    return mask_uri(_env.get_template("evidence_report.html.j2").render(**view(run, evidence)))


def write_report(run: RunRecord, evidence: dict | None) -> Path:
    """RUNTIME_DIR/runs/<id>/report.html from the record and the evidence alone (no database). The
    evidence is kept beside it (evidence.json), so that `etl report` can rebuild the page later."""
    run.dir.mkdir(parents=True, exist_ok=True)
    if evidence is not None:
        save_evidence(run, evidence)
    write_private(run.report_path, render_html(run, evidence))
    return run.report_path
