"""The notebooks, one per question: each runs top to bottom with injected parameters (papermill's
convention) in a database and folder of its own, beside a real `etl migrate` run that they leave
as it was; each shows at least one chart, and results as HTML tables, never as printed text."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import uuid
from pathlib import Path
from urllib.parse import unquote

import nbformat
import pytest
from nbclient import NotebookClient
from nbclient.exceptions import CellExecutionError

import etl

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOKS = sorted((ROOT / "notebooks").glob("[0-9][0-9]-*.ipynb"))
CHART = re.compile(r"^(image/png|image/svg\+xml|application/vnd\.vegalite\.v\d+\+json)$")
# A printed table: box-drawing separators, or several lines of columns aligned by runs of spaces.
BOX = re.compile(r"[│┆┃|].*[│┆┃|]")
COLUMNS = re.compile(r"\S {2,}\S+ {2,}\S")
PROGRESS = re.compile(r"\d+%\|")  # a progress bar on stderr is not a table


def inject(nb, **values) -> None:
    """Papermill's way: a cell tagged `injected-parameters` right after the one tagged `parameters`."""
    at = next(i for i, c in enumerate(nb.cells) if "parameters" in c.metadata.get("tags", []))
    cell = nbformat.v4.new_code_cell("\n".join(f"{k} = {v!r}" for k, v in values.items()))
    cell.metadata["tags"] = ["injected-parameters"]
    nb.cells.insert(at + 1, cell)


def parameters(nb) -> set[str]:
    cell = next(c for c in nb.cells if "parameters" in c.metadata.get("tags", []))
    return set(re.findall(r"^(\w+) =", cell.source, re.M))


def outputs(nb):
    return [o for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", [])]


def looks_like_a_table(text: str) -> bool:
    lines = [x for x in text.splitlines() if x.strip() and not PROGRESS.search(x)]
    aligned = sum(bool(COLUMNS.search(x)) for x in lines)
    return any(BOX.search(x) for x in lines) or aligned >= 3


def with_rejects(sample: Path, out: Path) -> Path:
    """The sample with three tickets the transform must reject (two bad times, one bad number)."""
    shutil.copytree(sample, out)
    tickets = json.loads((out / "tickets.json").read_text())
    tickets[0]["openTime"] = tickets[1]["openTime"] = "not a time"
    tickets[2]["uploadTimestamp"] = "abc"
    (out / "tickets.json").write_text(json.dumps(tickets, ensure_ascii=False))
    return out


@pytest.fixture(scope="module")
def migrated(mysql_server, tmp_path_factory):
    """A small `etl migrate` in a database of its own, with its own RUNTIME_DIR / EXPORT_DIR / STAGE_DIR."""
    base, _ = mysql_server
    tmp = tmp_path_factory.mktemp("notebooks")
    name = f"t_{uuid.uuid4().hex[:12]}"
    target = etl.MySQLTarget(base.host, base.port, base.user, base.password, name, base.unix_socket)
    env = {**os.environ, "MYSQL_URI": target.uri, "RUNTIME_DIR": str(tmp / "runtime"),
           "EXPORT_DIR": str(tmp / "export"), "STAGE_DIR": str(tmp / "stage")}
    run = subprocess.run([sys.executable, "-m", "etl", "migrate", "--sample-tickets", "300"], cwd=ROOT, env=env,
                         capture_output=True, text=True)
    try:
        assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
        yield target, env, tmp
    finally:
        with base.connect(database=False) as conn, conn.cursor() as cur:
            for db in (name, *(f"{name}_nb{n:02d}" for n in range(1, 10))):
                cur.execute(f"DROP DATABASE IF EXISTS `{db}`")


@pytest.fixture(scope="module")
def executed(migrated):
    """Every notebook, run top to bottom in the migrate run's environment: name -> (notebook, error)."""
    target, env, tmp = migrated
    sample = Path(env["RUNTIME_DIR"]) / "sample-export"
    done = {}
    saved = dict(os.environ)
    os.environ.update(env)  # the kernel inherits it: MYSQL_URI names the migrate database
    try:
        for path in NOTEBOOKS:
            nb = nbformat.read(path, as_version=4)
            number = path.name[:2]
            source = with_rejects(sample, tmp / "rejects-export") if number == "02" else sample
            values = {"source": str(source), "work": str(tmp / "notebooks" / path.stem),
                      "database": f"{target.database}_nb{number}"}
            inject(nb, **{k: v for k, v in values.items() if k in parameters(nb)})
            error = None
            try:
                NotebookClient(nb, timeout=600, kernel_name="python3",
                               resources={"metadata": {"path": str(ROOT)}}).execute()
            except CellExecutionError as e:
                error = str(e)[-3000:]
            done[path.name] = (nb, error)
    finally:
        os.environ.clear()
        os.environ.update(saved)
    return done


@pytest.mark.slow
@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_notebook_runs_and_shows_charts_and_html_tables(executed, path):
    nb, error = executed[path.name]
    assert error is None, error
    outs = outputs(nb)
    assert not [o for o in outs if o.output_type == "error"]
    charts = [m for o in outs if o.output_type in ("display_data", "execute_result") for m in o.get("data", {})
              if CHART.match(m)]
    assert charts, f"{path.name} shows no chart"
    results = [o for o in outs if o.output_type == "execute_result"]
    tables = [o for o in results if "text/html" in o.data]
    assert tables, f"{path.name} shows no result as an HTML table"
    for o in results:  # every result a cell returns is drawn: a table or a chart, never only text
        assert "text/html" in o.data or any(CHART.match(m) for m in o.data), (path.name, o.data.get("text/plain", "")[:300])
    printed = [o.text for o in outs if o.output_type == "stream"]
    assert not [t for t in printed if looks_like_a_table(t)], (path.name, printed)
    pre = [o.data["text/html"][:300] for o in outs if o.output_type in ("display_data", "execute_result")
           and "<pre" in o.data.get("text/html", "")]
    assert not pre, (path.name, pre)  # a text table wrapped in HTML (rich's display inside a kernel) is still text


def test_the_rejects_notebook_shows_the_planted_rejects(executed):
    nb, error = executed["02-transform-rejects.ipynb"]
    assert error is None, error
    html = "".join(o.data.get("text/html", "") for o in outputs(nb) if o.output_type == "execute_result")
    assert "time does not parse" in html and "not a number" in html


def test_the_expectations_notebook_links_the_data_docs(executed):
    nb, error = executed["05-expectations.ipynb"]
    assert error is None, error
    html = "".join(o.data.get("text/html", "") for o in outputs(nb) if o.output_type == "execute_result")
    pages = [Path(unquote(p)) for p in re.findall(r'href="file://([^"]+)"', html)]
    assert any(p.name == "index.html" for p in pages)
    assert any("tickets" in p.parts or p.name == "tickets.html" for p in pages)  # the tickets suite's page
    assert all(p.is_file() for p in pages)
    assert "<td>warning</td>" in html  # the sample breaks two rules at the source: warnings, not failures


def test_the_cutover_notebook_shows_every_stage_entered_and_each_moves_guards(executed):
    nb, error = executed["06-cutover.ipynb"]
    assert error is None, error
    html = "".join(o.data.get("text/html", "") for o in outputs(nb) if o.output_type == "execute_result")
    # the timeline: one guarded move per stage, in order, up to complete
    moves = re.findall(r"<tr><td>\d+</td><td>[^<]+</td><td>(set|forced)</td><td>([^<]*)</td><td>([^<]*)</td>", html)
    assert [(a, b) for _, a, b in moves] == [("off", "dual-write"), ("dual-write", "shadow"), ("shadow", "live"),
                                             ("live", "rampdown"), ("rampdown", "complete")], moves
    assert {action for action, _, _ in moves} == {"set"}  # none forced
    assert "the flags now at stage complete" in html
    # the guards' table: every guard passed; consistency once leaving shadow (what browsers compared there)
    assert "the guards of each forward move" in html
    guards = re.findall(r"<tr><td>(\d+)</td><td>[^<]*</td><td>([^<]*)</td><td>set</td><td>(\w+)</td><td>(ok|FAIL)</td>", html)
    assert {g for _, _, g, _ in guards} == {"sequence", "parity", "expectations", "bench", "monitor", "consistency"}
    assert {ok for *_, ok in guards} == {"ok"}
    assert {to for _, to, g, _ in guards if g == "consistency"} == {"live", "rampdown", "complete"}
    # the dual-read comparisons: tickets compared in shadow and in live, none differing
    for stage in ("shadow", "live"):
        assert re.search(rf"<td>tickets</td><td>{stage}</td><td>\d+</td><td>[1-9][\d,]*</td><td>0</td>", html), stage
    assert "<p><b>stage: complete</b></p>" in html  # where the flags are now


@pytest.mark.slow
def test_migrate_parity_still_passes_after_the_notebooks(migrated, executed):
    target, env, tmp = migrated
    assert executed and all(error is None for _, error in executed.values())
    for path in NOTEBOOKS:  # the injected work folders were used
        assert (tmp / "notebooks" / path.stem / "stage" / "tickets.parquet").is_file(), path.name
    with target.connect() as conn, conn.cursor() as cur:  # the notebooks' databases are their own
        cur.execute("SHOW DATABASES LIKE %s", (f"{target.database}_nb%",))
        assert {r[0] for r in cur.fetchall()} == {f"{target.database}_nb03", f"{target.database}_nb04",
                                                  f"{target.database}_nb05", f"{target.database}_nb06"}
    run = subprocess.run([sys.executable, "-m", "etl", "parity", "--fail-on-mismatch"], cwd=ROOT, env=env,
                         capture_output=True, text=True)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    assert "FAIL" not in run.stdout.upper().replace("--FAIL-ON-MISMATCH", "")


def test_notebooks_take_parameters_and_hold_no_logic():
    """A `parameters` cell first; only etl's public names; no function or class of their own."""
    assert [p.stem for p in NOTEBOOKS] == ["01-export-profile", "02-transform-rejects", "03-load", "04-parity",
                                           "05-expectations", "06-cutover"]
    for path in NOTEBOOKS:
        nb = nbformat.read(path, as_version=4)
        code = [c for c in nb.cells if c.cell_type == "code"]
        assert "parameters" in code[0].metadata.get("tags", []), path.name
        assert {"source", "work"} <= parameters(nb), path.name
        text = "\n".join(c.source for c in code)
        assert not re.search(r"^\s*(def|class|for|while|if) ", text, re.M), path.name
        imports = set(re.findall(r"^\s*(?:import|from) (\S+)", text, re.M))
        assert imports <= {"etl", "altair"}, (path.name, imports)
        used = set(re.findall(r"\betl\.(\w+)", text))
        assert used and used <= set(etl.__all__), (path.name, used - set(etl.__all__))
