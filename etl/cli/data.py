"""The commands that move the data, one stage each and in the order it flows: `etl sample`, `export`,
`merge`, `snippet` and `adapter` (the JavaScript for the app's page), `transform`, `sql`, `load`,
`parity`, `validate` and `docs`; and `etl migrate`, which runs them all as the seed's 18-step playbook
(it is here rather than with `etl runs`, its records, so that `etl --help` lists it where it always
has). The live progress they draw is in progress.py."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Optional

import typer

from ..core.config import load_settings
from ..core.errors import EtlError
from ..run.context import PlaybookOptions
from .common import BaseUrlOpt, MysqlOpt, TokenOpt, app, cli_errors, err, show
from .progress import live_progress


# ---------------------------------------------------------------- sample


@app.command()
@cli_errors
def sample(
    out_dir: Path = typer.Option(..., "--out", help="Folder to write the export into."),
    tickets: int = typer.Option(2000, min=0, help="Number of tickets."),
    incidents: Optional[int] = typer.Option(None, min=0, help="Number of incidents (default: in proportion to tickets)."),
    customers: Optional[int] = typer.Option(None, min=0, help="Number of customer snapshots (default: in proportion)."),
    vendors: Optional[int] = typer.Option(None, min=0, help="Number of vendors (default: in proportion)."),
    seed: int = typer.Option(7, help="Random seed: the same seed gives byte-identical files."),
):
    """Write a deterministic sample export (the app's export layout, with its real-world quirks)."""
    from .. import playbook

    show(playbook.sample(out_dir, tickets=tickets, incidents=incidents, customers=customers, vendors=vendors, seed=seed))


# ---------------------------------------------------------------- export (issue 4)


@app.command("export")
@cli_errors
def export_cmd(
    source: Path = typer.Option(..., "--from", help="An export folder (JSON arrays or NDJSON, parts allowed), a single-file "
                                "dump {store: records-array}, a dexie-export-import file, or a Chromium-family browser profile "
                                "(user-data dir, profile dir, or an <origin>.indexeddb.leveldb folder; the browser closed), "
                                "read offline."),
    out_dir: Optional[Path] = typer.Option(None, "--out", help="The normalized export folder (default: EXPORT_DIR)."),
    force: bool = typer.Option(False, "--force", help="Replace an output folder that holds an earlier export (any other folder is refused, never deleted)."),
    origin: Optional[str] = typer.Option(None, "--origin", help="For a profile where several origins hold the app's database: "
                                         "the app's origin (http://host:port, or the folder name)."),
    part_mb: Optional[int] = typer.Option(None, "--part-mb", min=1, help="Store a JSON array over 1.5 times this size (MB) "
                                          "as parts of this size cut at record boundaries, so that counting and the transform parse it "
                                          "on every core [default: 128]."),
):
    """Check an export and write it as a normalized, immutable export folder (what `etl transform` reads)."""
    from .. import playbook

    with live_progress(err.is_terminal) as live:
        result = playbook.export_source(load_settings(export_dir=out_dir), source, force=force, origin=origin,
                                        part_bytes=part_mb << 20 if part_mb else None, note=live.note if live else None)
    show(result)


@app.command("merge")
@cli_errors
def merge_cmd(
    sources: list[str] = typer.Argument(..., help="Two exports or more, oldest first: export folders, files, or browser "
                                        "profiles (anything `etl export --from` reads). LABEL=PATH names a source."),
    out_dir: Path = typer.Option(..., "--out", help="The merged export folder (what `etl transform --in` reads)."),
    force: bool = typer.Option(False, "--force", help="Replace an output folder that already holds an export."),
):
    """Merge many browsers' exports into one export whose records name their source ("$source", "$seenIn").

    The same record in several exports is kept once, by the transform's rule (etl/core/duplicates.py): the same
    id, or the same natural identity (tickets: customerId + openTime + openBy; incidents: noCase + startTime)
    with the same content apart from upload metadata; kept: the latest uploadTimestamp, then the later export.
    Records sharing a natural identity but differing in content are all kept; they and same-id edits are
    listed in merge-conflicts.ndjson. merge-report.json gives per-source coverage (read, kept, only here).
    """
    from .. import playbook

    show(playbook.merge_exports(sources, out_dir, force=force))


def _written_or_printed(result, out_file: Optional[Path]) -> None:
    """A generated script: the playbook wrote it to --out (say so), or it is printed as it is."""
    if out_file is not None:
        show(result)
    else:
        sys.stdout.write(result)


@app.command()
@cli_errors
def snippet(
    out_file: Optional[Path] = typer.Option(None, "--out", help="Write it to this file instead of printing it."),
    as_bookmarklet: bool = typer.Option(False, "--bookmarklet", help="The snippet as a javascript: URL for a bookmark."),
):
    """Print the JavaScript that exports the app's IndexedDB from the browser (paste it into the devtools console)."""
    from .. import playbook

    _written_or_printed(playbook.snippet(out_file, as_bookmarklet=as_bookmarklet), out_file)


@app.command()
@cli_errors
def adapter(out_file: Optional[Path] = typer.Option(None, "--out", help="Write it to this file instead of printing it.")):
    """Print the JavaScript a Dexie app includes to read and write where the cutover flags say.

    It fetches /api/feature-flags (cached; IndexedDB only when the API fails, said on the console and as a "fallback" event), serves reads from the stage's authoritative origin and, in shadow and live, compares a sample with the other origin and posts each differing record to /api/migration/mismatches; writes go to the authoritative origin first, and to the other only when that worked.
    """
    from .. import playbook

    _written_or_printed(playbook.adapter(out_file), out_file)


# ---------------------------------------------------------------- transform and sql (issue 4)


@app.command()
@cli_errors
def transform(
    in_dir: Optional[Path] = typer.Option(None, "--in", help="Normalized export folder (default: EXPORT_DIR)."),
    out_dir: Optional[Path] = typer.Option(None, "--out", help="Stage folder to write (default: STAGE_DIR)."),
):
    """Stage an export: typed Parquet per table, rejects with reasons, rebuilt upload sessions.

    Records in = staged + rejected for every store; rejects are in OUT/rejects/<table>.parquet
    with file, record, key, field, value and reason. The stage folder is replaced as a whole, and
    only when it is a stage (any other folder, the export or a folder holding it is refused).
    """
    from .. import playbook

    with live_progress(err.is_terminal) as live:
        result = playbook.transform_export(load_settings(export_dir=in_dir, stage_dir=out_dir),
                                           note=live.note if live else None)
    show(result)


@app.command()
@cli_errors
def sql(
    query: Optional[str] = typer.Argument(None, help="A DuckDB query; omit it (or pass --shell) for DuckDB's shell."),
    shell: bool = typer.Option(False, "--shell", help="Open DuckDB's shell (the duckdb-cli package) with the views loaded "
                               "from RUNTIME_DIR/duckdb/init.sql; the built-in prompt where that shell is missing."),
    mysql: bool = typer.Option(False, "--mysql", help="Also expose MySQL's tables as mysql_<table> (mysql_tickets, ...), read "
                               "through connectorx; the shell gets a Parquet snapshot taken when it opens."),
    mysql_uri: Optional[str] = typer.Option(None, "--mysql-uri", help="MySQL for --mysql, mysql://user:pass@host:3306/db "
                                            "(default: MYSQL_URI, else the local server); implies --mysql."),
    as_table: bool = typer.Option(False, "--table", help="Print a table (the default)."),
    as_csv: bool = typer.Option(False, "--csv", help="Print CSV with a header row."),
    as_json: bool = typer.Option(False, "--json", help="Print a JSON array of row objects."),
    as_markdown: bool = typer.Option(False, "--markdown", help="Print a Markdown table."),
    max_rows: Optional[int] = typer.Option(None, "--max-rows", min=0, help="Print at most this many rows (default: "
                                           "every row, or 50 for --table)."),
    stage: Optional[Path] = typer.Option(None, "--stage", help="Stage folder (default: STAGE_DIR)."),
    export: Optional[Path] = typer.Option(None, "--export", help="Export folder (default: EXPORT_DIR)."),
):
    """Query staged data with DuckDB: views `tickets`, `tickets_rejects`, `export_tickets`, ... per store, and with --mysql `mysql_tickets`, ...

    Stage against target in one query: etl sql --mysql "SELECT count(*) FROM tickets s ANTI JOIN mysql_tickets m USING (id)".
    """
    from .. import playbook

    formats = [f for f, on in (("table", as_table), ("csv", as_csv), ("json", as_json), ("markdown", as_markdown)) if on]
    if len(formats) > 1:
        raise EtlError(f"choose one output format, not {' and '.join('--' + f for f in formats)}")
    settings = load_settings(stage_dir=stage, export_dir=export, mysql_uri=mysql_uri)
    result = playbook.query(settings, query, mysql=bool(mysql or mysql_uri), shell=shell)
    if result is not None:
        sys.stdout.write(result.render((formats or ["table"])[0], max_rows))


# ---------------------------------------------------------------- load (issue 5)


@app.command("load")
@cli_errors
def load_cmd(
    stage: Optional[Path] = typer.Option(None, "--stage", help="Stage folder (default: STAGE_DIR)."),
    mysql: Optional[str] = MysqlOpt,
    chunk_size: Optional[int] = typer.Option(None, "--chunk-size", help="Rows per unit of work (default: CHUNK_SIZE, 200); deletes go in statements of this many keys."),
    batch_rows: Optional[int] = typer.Option(None, "--batch-rows", help="Rows per chunk on the direct path (default: the multiple of the chunk size nearest 50,000)."),
    method: str = typer.Option("auto", "--method", help="auto (LOAD DATA LOCAL INFILE where the server allows it, else INSERT), load-data or insert."),
    delete_missing: bool = typer.Option(False, "--delete-missing", help="Delete rows MySQL holds that the stage no longer has (default: only report them)."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress bar."),
    wait: float = typer.Option(0, "--wait", min=0, help="Seconds to wait for another load into the same database to finish (default: refuse at once)."),
    via_api: bool = typer.Option(False, "--via-api", help="Send the rows through the API's bulk endpoints (BASE_URL, API_TOKEN) in CHUNK_SIZE records, with the same ledger, resume and read-back checks (these still read MySQL directly)."),
    base_url: Optional[str] = BaseUrlOpt,
    token: Optional[str] = TokenOpt,
):
    """Write every staged table into MySQL: chunked, checked as it writes, idempotent, resumable.

    One load per database at a time: a load holds the database's etl lock (a MySQL named lock) while it runs; another is refused with a message naming the holder (exit status 1), or waits with --wait. The stage is checked against its transform summary first.

    Loading the same stage again writes nothing; a newer stage writes only its differences, and rows no longer staged are reported (deleted only with --delete-missing).

    Each chunk is recorded in the table etl_load_ledger; a run that was interrupted is continued by the next. Rows the server refuses go to STAGE/load/<table>.rejects.parquet.
    """
    from .. import playbook

    settings = load_settings(mysql_uri=mysql, stage_dir=stage, chunk_size=chunk_size, base_url=base_url, api_token=token)
    with live_progress(not quiet and err.is_terminal) as progress:
        result = playbook.load_stage(settings, via_api=via_api, batch_rows=batch_rows, method=method,
                                     delete_missing=delete_missing, progress=progress, wait=wait)
    show(result)


# ---------------------------------------------------------------- parity (issue 6)


@app.command()
@cli_errors
def parity(
    src: Optional[Path] = typer.Option(None, "--src", help="Stage folder, or an export folder (transformed first into a temporary stage). Default: STAGE_DIR."),
    dst_mysql: Optional[str] = typer.Option(None, "--dst-mysql", "--mysql", help="MySQL to compare with, mysql://user:pass@host:3306/db (default: MYSQL_URI, else the local server)."),
    buckets: Optional[str] = typer.Option(None, "--buckets", help="Comma-separated bucket names (day, month, cabang, status, category, site, ...); each table uses those it has. Default: each table's own."),
    table: Optional[list[str]] = typer.Option(None, "--table", help="Compare only this table (repeatable)."),
    fail_on_mismatch: bool = typer.Option(False, "--fail-on-mismatch", help="Exit with status 1 when anything differs."),
):
    """Compare the stage with MySQL: row counts and checksums per bucket, and the rows behind every difference.

    Writes RUNTIME_DIR/parity/<time>/report.html (the verdict, then the differing buckets, a month-by-dimension heatmap of them and the differing rows, one per key) and report.json (totals, differing buckets and rows).
    """
    from .. import playbook

    with live_progress(err.is_terminal) as live:
        result = playbook.parity_check(load_settings(mysql_uri=dst_mysql), src=src, tables=table, fail_on_mismatch=False,
                                       buckets=buckets.split(",") if buckets is not None else None,
                                       note=live.note if live else None)
    show(result)
    if fail_on_mismatch:
        result.raise_for_mismatch()


# ---------------------------------------------------------------- validate (issue 7)


@app.command("validate")
@cli_errors
def validate_cmd(
    mysql: Optional[str] = MysqlOpt,
    strict: bool = typer.Option(False, "--strict", help="Also fail on rules MySQL breaks only where the source export already does."),
    stage: Optional[Path] = typer.Option(None, "--stage", help="Stage folder the expected values come from (default: STAGE_DIR)."),
):
    """Run the Great Expectations suites against MySQL: business rules and the UI's aggregations.

    Expected values (value sets, the views' rows) are computed from the stage at run time. A rule the source export already breaks is a warning (a finding about the source) unless --strict is given; a rule the source keeps but MySQL breaks is a failure. Exit status: 0 passed (warnings allowed), 1 failed. Rebuilds the data docs (see `etl docs`).
    """
    from .. import playbook

    with live_progress(err.is_terminal) as live:
        result = playbook.validate_target(load_settings(mysql_uri=mysql, stage_dir=stage), strict=strict,
                                          note=live.note if live else None)
    show(result)
    if not result.ok:
        raise typer.Exit(1)


@app.command("docs")
@cli_errors
def docs_cmd(
    open_: bool = typer.Option(False, "--open", help="Then open the index in a browser (without a display: say where it is)."),
    serve: bool = typer.Option(False, "--serve", help="Then serve the docs on 127.0.0.1 until Ctrl-C, as `dbt docs serve`."),
    port: Optional[int] = typer.Option(None, "--port", help="Port for --serve (default 8080; 0 picks a free one)."),
):
    """Build the Great Expectations data docs (HTML): every suite, and the results of past `etl validate` runs.

    Written to expectations/gx/uncommitted/data_docs/local_site/index.html. Needs no database. A rule the source export already breaks shows as a warning with its notes, as `etl validate` reports it; the pages' styles and scripts are local copies, so the docs work offline.
    """
    from .. import playbook

    settings = load_settings()
    show(playbook.build_docs(settings))
    if open_:
        show(playbook.docs_open(settings))
    if serve:
        show(playbook.docs_serve(settings, port=port, echo=show))


# ---------------------------------------------------------------- migrate


_PLAYBOOK = PlaybookOptions()  # the defaults of `etl migrate`'s measuring options, written once (etl/run/context.py)


@app.command()
@cli_errors
def migrate(
    export: Optional[Path] = typer.Option(None, "--from", help="What to migrate (an export folder or file); default: a generated sample."),
    mysql: Optional[str] = MysqlOpt,
    sample_tickets: int = typer.Option(30000, min=0, help="Tickets in the generated sample when no --from is given."),
    until: Optional[str] = typer.Option(None, "--until", metavar="STEP",
                                        help="Stop after STEP (slug, number or phase: --until validation stops before the cutover)."),
    from_step: Optional[str] = typer.Option(None, "--from-step", metavar="STEP", help="Start at STEP (earlier steps are skipped)."),
    only: Optional[str] = typer.Option(None, "--only", metavar="STEP", help="Run STEP (or one phase) alone."),
    resume: bool = typer.Option(False, "--resume", help="Continue the last run from its failed or interrupted step, "
                                "after re-checking what its earlier steps produced."),
    restart: bool = typer.Option(False, "--restart", help="Migrate again into a database whose cutover began: "
                                 "rolls the flags back to IndexedDB first (recorded)."),
    bench_seconds: float = typer.Option(_PLAYBOOK.bench_seconds, min=0.1, help="Length of each API benchmark (steps 10, 13)."),
    monitor_samples: int = typer.Option(_PLAYBOOK.monitor_samples, min=1, help="Samples the post-cutover monitor takes (step 15)."),
    monitor_interval: float = typer.Option(_PLAYBOOK.monitor_interval, min=0, help="Seconds between the monitor's samples."),
    threshold_error: float = typer.Option(_PLAYBOOK.threshold_error, help="Monitor: largest API error rate in a sample."),
    threshold_latency_p95: float = typer.Option(_PLAYBOOK.threshold_latency_p95,
                                                help="Monitor: largest API p95 latency in a sample, ms."),
    verify_max: int = typer.Option(_PLAYBOOK.verify_max, min=1, help="Records per store read back through the API "
                                   "and compared with the export in steps 11 and 12 (a uniform draw across parity buckets)."),
    lock_wait: float = typer.Option(_PLAYBOOK.lock_wait, min=0, help="Seconds to wait while another `etl migrate` "
                                    "runs on the same database (it is named); 0 refuses at once."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No load progress bar."),
):
    """Run the seed's 18-step playbook, recording the run and its evidence report in RUNTIME_DIR/runs/.

    \b
    preparation    1 preflight  2 schema  3 api-smoke
    migration      4 export  5 transform  6 upload-sessions  7 load
    validation     8 parity  9 aggregations  10 benchmark
    cutover        11 dual-read  12 dual-write  13 performance  14 cutover  15 monitor
    finalization   16 finalize-sessions  17 rollback  18 report

    With no BASE_URL the API steps use `etl serve`, started for the run; with no MYSQL_URI, the local
    server. A breach in the post-cutover monitor rolls the flags back (step 17) and the run fails.
    One run per database at a time: a second one waits for the first to end (--lock-wait).
    """
    from .. import playbook

    settings = load_settings(mysql_uri=mysql)
    with live_progress(not quiet and err.is_terminal) as progress:
        show(playbook.migrate(settings, source=export, sample_tickets=sample_tickets, echo=show, until=until,
                              from_step=from_step, only=only, resume=resume, progress=progress,
                              bench_seconds=bench_seconds, monitor_samples=monitor_samples,
                              monitor_interval=monitor_interval, threshold_error=threshold_error,
                              threshold_latency_p95=threshold_latency_p95, restart=restart, verify_max=verify_max,
                              lock_wait=lock_wait))
