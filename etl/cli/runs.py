"""`etl status`, `etl runs` and `etl report`: where the migration stands, the recorded `etl migrate`
runs, and a run's evidence report rebuilt from its records (issue 18)."""

from __future__ import annotations

from typing import Optional

import typer

from ..core.config import load_settings
from .common import MysqlOpt, app, cli_errors, show, show_json


@app.command("status")
@cli_errors
def status_cmd(
    as_json: bool = typer.Option(False, "--json", help="Print the status as JSON."),
    strict: bool = typer.Option(False, "--strict", help="Exit 1 when something needs attention (no connection, "
                                "no export, the last run not ok, a failed parity or validation)."),
    mysql: Optional[str] = MysqlOpt,
):
    """Where the migration stands: the target and whether it connects (server version, local_infile, max_allowed_packet), export and stage (when, how many), rejects, load ledger chunks by state, the flag stage, the last run's steps and the last parity and validation verdicts with their reports.

    What cannot be read (no server, no export yet) is shown as such. Exit status 0 (with --strict: 1 when something needs attention).
    """
    from .. import playbook

    result = playbook.status(load_settings(mysql_uri=mysql))
    show_json(result) if as_json else show(result)
    if strict and not result.ok:
        raise typer.Exit(1)


@app.command("runs")
@cli_errors
def runs_cmd(
    as_json: bool = typer.Option(False, "--json", help="Print the runs as JSON."),
    limit: Optional[int] = typer.Option(None, "--limit", min=1, help="Only the newest N runs."),
):
    """The recorded `etl migrate` runs, newest first: id, status, started, duration, steps ok/total, where it stopped, report.

    A run whose process died without saying so (SIGKILL, a power cut) reads as interrupted.
    """
    from .. import playbook

    result = playbook.runs(load_settings(), limit=limit)
    show_json(result) if as_json else show(result)


@app.command("report")
@cli_errors
def report_cmd(
    run: Optional[str] = typer.Argument(None, help="The run's id or a prefix of it (default: the newest run)."),
    no_open: bool = typer.Option(False, "--no-open", help="Do not open the report in a browser."),
):
    """Rebuild a run's evidence report (RUNTIME_DIR/runs/<id>/report.html) and open it; prints its path.

    Built from the run's run.json and evidence.json alone: no database needed. A run that saved no evidence (it stopped before its report step) has it collected now and saved beside the record.
    """
    from .. import playbook

    show(playbook.report(load_settings(), run, open_browser=not no_open))
