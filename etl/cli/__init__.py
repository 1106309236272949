"""The `etl` command: each command parses its options, calls one library function and prints its result.

No logic lives here. Every error reaches the user as one line (what and where), never a traceback
unless the debug switch is on (`etl --debug ...` or ETL_DEBUG=1). Exit status:
  0 ok · 1 failure (a library error, a mismatch, a failed expectation, an unexpected error)
  2 usage (a bad option or value) · 130 interrupted (Ctrl-C) · 143 terminated (SIGTERM)
"""

from __future__ import annotations

import contextlib
import functools
import os
import signal
import sys
from pathlib import Path
from typing import Optional

import typer
from rich.console import Console
from rich.progress import (BarColumn, MofNCompleteColumn, Progress, ProgressColumn, TextColumn, TimeElapsedColumn,
                           TimeRemainingColumn)
from rich.text import Text
from rich.markup import escape

from .core.config import load_settings, mask_uri
from .core.errors import EtlError, Interrupted, raise_if_stopped, request_stop, stop_requested
from .steps import PlaybookOptions

# Each command imports the stage it runs, and etl.playbook (which loads the MySQL client) only
# where it is used: `etl export` and `etl transform` start sooner.

app = typer.Typer(
    help="Move the helpdesk app's IndexedDB data into MySQL, prove the move was exact, and run the cutover safely.\n\n"
    "Exit status: 0 ok, 1 failure, 2 usage error, 130 interrupted, 143 terminated; errors are one line "
    "(--debug or ETL_DEBUG=1 for the traceback).\n\n"
    "Settings come from flags, then the environment, then a .env file: MYSQL_URI, CHUNK_SIZE, EXPORT_DIR, "
    "STAGE_DIR, RUNTIME_DIR. Without MYSQL_URI, commands use the project-local server of `etl db up`.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
db_app = typer.Typer(help="The project-local MySQL server (used when MYSQL_URI is not set).", no_args_is_help=True)
schema_app = typer.Typer(help="The MySQL schema (sql/schema.mysql.sql).", no_args_is_help=True)
app.add_typer(db_app, name="db")
users_app = typer.Typer(help="Accounts of the app's backend (its users table), e.g. the first admin after the cutover.",
                        no_args_is_help=True)
app.add_typer(schema_app, name="schema")
flags_app = typer.Typer(help="Feature flags the app's browsers obey (dataSource, writeMode, ...): list, set, history, rollback.\n\n"
                        "Every change and refusal is recorded in MySQL (feature_flag_history) in the same transaction "
                        "as the change, and mirrored to RUNTIME_DIR/feature-flags.json.", no_args_is_help=True)
cutover_app = typer.Typer(help="The guarded cutover: stages off, dual-write, shadow, live, rampdown, complete.", no_args_is_help=True)
app.add_typer(flags_app, name="flags")
app.add_typer(cutover_app, name="cutover")
app.add_typer(users_app, name="users")

out = Console(soft_wrap=True)
err = Console(stderr=True, soft_wrap=True)

BaseUrlOpt = typer.Option(None, "--base-url", help="The API's URL (default: BASE_URL, else http://127.0.0.1:8700, where `etl serve` listens).")
TokenOpt = typer.Option(None, "--token", help="Bearer token (default: API_TOKEN). Never printed.")
MysqlOpt = typer.Option(None, "--mysql", help="Target as mysql://user:pass@host:3306/db (default: MYSQL_URI, else the local server).")


EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2  # 128 + signal number when interrupted (130 Ctrl-C, 143 SIGTERM)
DEBUG_ENV = "ETL_DEBUG"


def _debug() -> bool:
    return os.environ.get(DEBUG_ENV, "").strip().lower() not in ("", "0", "false", "no")


def _fail(text: str) -> None:
    # escape: messages hold brackets ("[export] ...", "[records]") that are not markup
    err.print(f"[bold red]error:[/] {escape(mask_uri(text))}", highlight=False, markup=True)


def cli_errors(fn):
    """Turn every error into one line and an exit status (see the module docstring); with the
    debug switch, errors other than EtlError keep their traceback. An error met after a stop
    signal is reported as the stop."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            done = fn(*args, **kwargs)
        except (typer.Exit, typer.Abort, SystemExit):
            raise
        except Exception as e:
            if stop_requested() is None:
                raise
            # Once the user asked to stop, an error met while unwinding (a DuckDB connection a worker
            # thread still held, a closed socket) is a consequence of the stop: report the stop.
            raise Interrupted(stop_requested()) from e
        raise_if_stopped()  # a stop swallowed on the way (see etl.core.errors) still ends as one
        return done
    return _report(wrapper)


def _report(fn):
    """The one line and exit status of each kind of error."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except EtlError as e:
            if _debug():
                raise
            _fail(str(e))
            raise typer.Exit(EXIT_FAILED) from None
        except KeyboardInterrupt as e:  # Ctrl-C, or SIGTERM (Interrupted)
            signum = e.signum if isinstance(e, Interrupted) else signal.SIGINT
            err.print("interrupted" if signum == signal.SIGINT else f"terminated ({signal.Signals(signum).name})")
            raise typer.Exit(128 + signum) from None
        except OSError as e:  # a file the user named or a folder we write: name it
            if _debug():
                raise
            where = " -> ".join(str(f) for f in (e.filename, e.filename2) if f is not None)
            _fail(f"[io] {e.strerror or e}" + (f" ({where})" if where else "")
                  + f"; for the traceback run with `etl --debug ...` or {DEBUG_ENV}=1")
            raise typer.Exit(EXIT_FAILED) from None
        except (typer.Exit, typer.Abort, SystemExit):
            raise
        except Exception as e:  # a bug, or a case we did not foresee: one line, the traceback on request
            if _debug():
                raise
            first = (str(e).splitlines() or [""])[0]
            _fail(f"unexpected {type(e).__name__}: {first}; for the traceback run with `etl --debug ...` or {DEBUG_ENV}=1")
            raise typer.Exit(EXIT_FAILED) from None

    return wrapper


def _terminate(signum, frame):
    request_stop(signum, frame)


def _print_version(value: bool) -> None:
    if value:
        from .core.resources import version

        out.print(f"etl (idb2mysql) {version()}", highlight=False)
        raise typer.Exit()


@app.callback()
def main_options(
    debug: bool = typer.Option(False, "--debug", help=f"Show the full traceback of an error (also: {DEBUG_ENV}=1)."),
    version: bool = typer.Option(False, "--version", is_eager=True, callback=_print_version,
                                 help="Print the version and exit."),
):
    """Exit status: 0 ok, 1 failure, 2 usage error, 130 interrupted (Ctrl-C), 143 terminated (SIGTERM)."""
    if debug:
        os.environ[DEBUG_ENV] = "1"
    # SIGTERM unwinds like Ctrl-C: temporary folders are removed and a migrate run is recorded "interrupted".
    signal.signal(signal.SIGTERM, _terminate)


def show(result) -> None:
    out.print(mask_uri(str(result)), highlight=False, markup=False)


# ---------------------------------------------------------------- db


@db_app.command("up")
@cli_errors
def db_up():
    """Start the project-local server under RUNTIME_DIR/mysql (reuses one already running)."""
    from . import playbook
    show(playbook.db_up(load_settings()))


@db_app.command("down")
@cli_errors
def db_down():
    """Stop the project-local server."""
    from . import playbook
    stopped = playbook.db_down(load_settings())
    show(f"stopped {stopped}" if stopped else "no project-local server is running")


@db_app.command("status")
@cli_errors
def db_status():
    """Say which server commands use, and whether the project-local one runs."""
    from . import playbook
    show(playbook.db_status(load_settings()))


# ---------------------------------------------------------------- schema


@schema_app.command("apply")
@cli_errors
def schema_apply(
    mysql: Optional[str] = MysqlOpt,
    upgrade_digests: bool = typer.Option(False, "--upgrade-digests", help="Give tables made by an older schema the "
                                         "current row_digest column (a table copy per table, blocking its writes while it runs)."),
    upgrade: bool = typer.Option(False, "--upgrade", help="Bring tables made by an older schema to this one: add the "
                                 "columns they lack, widen narrower ones (DECIMAL to DOUBLE, longer VARCHARs, NULL allowed, "
                                 "defaults) and give them the current row_digest. Never drops or narrows a column nor "
                                 "touches a row; most changes copy the table, blocking its writes while they run."),
):
    """Create the database if needed and apply sql/schema.mysql.sql (safe to repeat).

    Existing tables keep their columns: each change one made by an older schema needs is named, and made with --upgrade (or, for the row_digest alone, --upgrade-digests). The backend's users and menu_permissions only ever gain columns they lack; their rows are never touched.
    """
    from . import playbook
    show(playbook.schema_apply(load_settings(mysql_uri=mysql), upgrade_digests=upgrade_digests, upgrade=upgrade))


# ---------------------------------------------------------------- users


@users_app.command("add")
@cli_errors
def users_add(
    username: str = typer.Argument(..., help="The login name."),
    role: str = typer.Option(..., "--role", help="One of: 'super admin', 'admin', 'user'."),
    update: bool = typer.Option(False, "--update", help="Replace the password and role of an existing user "
                                "(and make it active again) instead of refusing."),
    mysql: Optional[str] = MysqlOpt,
):
    """Create a user the app's backend can log in (e.g. the first admin after the cutover).

    The password is read from ETL_USER_PASSWORD when set, else asked twice at the prompt; never from the command line. It is stored only as a bcrypt hash ($2b$, cost 12) and never printed or logged.
    """
    from . import playbook

    show(playbook.users_add(load_settings(mysql_uri=mysql), username, role, update=update))


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
    from . import playbook

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
    from . import playbook

    with _live_progress(err.is_terminal) as live:
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
    from . import playbook

    show(playbook.merge_exports(sources, out_dir, force=force))


@app.command()
@cli_errors
def snippet(
    out_file: Optional[Path] = typer.Option(None, "--out", help="Write it to this file instead of printing it."),
    as_bookmarklet: bool = typer.Option(False, "--bookmarklet", help="The snippet as a javascript: URL for a bookmark."),
):
    """Print the JavaScript that exports the app's IndexedDB from the browser (paste it into the devtools console)."""
    from . import playbook

    result = playbook.snippet(out_file, as_bookmarklet=as_bookmarklet)
    if out_file is not None:
        show(result)
    else:
        sys.stdout.write(result)


@app.command()
@cli_errors
def adapter(out_file: Optional[Path] = typer.Option(None, "--out", help="Write it to this file instead of printing it.")):
    """Print the JavaScript a Dexie app includes to read and write where the cutover flags say.

    It fetches /api/feature-flags (cached; IndexedDB only when the API fails, said on the console and as a "fallback" event), serves reads from the stage's authoritative origin and, in shadow and live, compares a sample with the other origin and posts each differing record to /api/migration/mismatches; writes go to the authoritative origin first, and to the other only when that worked.
    """
    from . import playbook

    result = playbook.adapter(out_file)
    if out_file is not None:
        show(result)
    else:
        sys.stdout.write(result)


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
    from . import playbook

    with _live_progress(err.is_terminal) as live:
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
    from . import playbook

    formats = [f for f, on in (("table", as_table), ("csv", as_csv), ("json", as_json), ("markdown", as_markdown)) if on]
    if len(formats) > 1:
        raise EtlError(f"choose one output format, not {' and '.join('--' + f for f in formats)}")
    settings = load_settings(stage_dir=stage, export_dir=export, mysql_uri=mysql_uri)
    result = playbook.query(settings, query, mysql=bool(mysql or mysql_uri), shell=shell)
    if result is not None:
        sys.stdout.write(result.render((formats or ["table"])[0], max_rows))


# ---------------------------------------------------------------- load (issue 5)


class _RowsPerSecond(ProgressColumn):
    def render(self, task) -> Text:
        return Text(f"{task.speed:,.0f} rows/s" if task.speed else "", style="progress.data.speed")


class _ForTables(ProgressColumn):
    """A column drawn for a table's bar only, blank on the line of the running step."""

    def __init__(self, column: ProgressColumn):
        super().__init__()
        self.column = column

    def render(self, task):
        return Text("") if task.fields.get("step") else self.column.render(task)


class _Live:
    """What `_live_progress` yields: called as the load's progress (table, rows done, rows planned),
    `step(text)` starts the line of a new step (its elapsed time from zero), `note(text)` says on that
    line what the step is doing now (a store staged, a table compared, a phase of validation)."""

    def __init__(self, bars: Progress):
        self.bars, self.tables, self.line = bars, {}, None

    def __call__(self, table: str, done: int, total: int) -> None:
        if table not in self.tables:
            self.tables[table] = self.bars.add_task(table, total=total)
        self.bars.update(self.tables[table], completed=done, total=total)

    def step(self, text: str) -> None:
        if self.line is None:
            self.line = self.bars.add_task(text, total=None, step=True)
        else:
            self.bars.reset(self.line, description=text, total=None)

    def note(self, text: str) -> None:
        if self.line is None:
            self.step(text)
        else:
            self.bars.update(self.line, description=text)
        self.bars.refresh()  # drawn now: news can be followed by more within one of rich's refreshes


@contextlib.contextmanager
def _live_progress(enabled: bool):
    """On stderr, a bar per table the load writes (rows written / planned, rows per second, time left)
    and a line for the running step with its news and elapsed time; or nothing (piped, -q)."""
    if not enabled:
        yield None
        return
    bars = Progress(TextColumn("{task.description:<16}"), BarColumn(), _ForTables(MofNCompleteColumn()),
                    _ForTables(_RowsPerSecond()), TimeElapsedColumn(), _ForTables(TextColumn("eta")),
                    _ForTables(TimeRemainingColumn()), console=err, transient=False)
    with bars:
        yield _Live(bars)


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
    from . import playbook

    settings = load_settings(mysql_uri=mysql, stage_dir=stage, chunk_size=chunk_size, base_url=base_url, api_token=token)
    with _live_progress(not quiet and err.is_terminal) as progress:
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
    from . import playbook

    with _live_progress(err.is_terminal) as live:
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
    from . import playbook

    with _live_progress(err.is_terminal) as live:
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
    from . import playbook

    settings = load_settings()
    show(playbook.build_docs(settings))
    if open_:
        show(playbook.docs_open(settings))
    if serve:
        show(playbook.docs_serve(settings, port=port, echo=show))


# ---------------------------------------------------------------- migrate


_PLAYBOOK = PlaybookOptions()  # the defaults of `etl migrate`'s measuring options, written once (etl/steps.py)


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
    """
    from . import playbook

    settings = load_settings(mysql_uri=mysql)
    with _live_progress(not quiet and err.is_terminal) as progress:
        show(playbook.migrate(settings, source=export, sample_tickets=sample_tickets, echo=show, until=until,
                              from_step=from_step, only=only, resume=resume, progress=progress,
                              bench_seconds=bench_seconds, monitor_samples=monitor_samples,
                              monitor_interval=monitor_interval, threshold_error=threshold_error,
                              threshold_latency_p95=threshold_latency_p95, restart=restart))


# ---------------------------------------------------------------- flags and cutover (issue 17)


@flags_app.command("list")
@cli_errors
def flags_list(mysql: Optional[str] = MysqlOpt):
    """Show every flag, who changed it last, and the cutover stage the flags describe."""
    from . import playbook

    show(playbook.flags_list(load_settings(mysql_uri=mysql)))


@flags_app.command("set")
@cli_errors
def flags_set(
    assignments: list[str] = typer.Argument(..., help="KEY=VALUE pairs: dataSource=indexeddb|mysql|dual-read, "
                                            "writeMode=indexeddb-only|mysql-only|dual-write, migrationMode, debugMode, "
                                            "performanceMonitoring, rollbackMode = true|false."),
    reason: Optional[str] = typer.Option(None, "--reason", help="Why (required): recorded in the history."),
    mysql: Optional[str] = MysqlOpt,
):
    """Change flags: values and the combination are checked; the change or the refusal is recorded.

    A combination that makes no sense (reading from MySQL while writing only to IndexedDB, ...) is refused, and so is a move to a later cutover stage: that goes through the guards (`etl cutover stage NAME`). Moving back is allowed.
    """
    from . import playbook

    show(playbook.flags_set(load_settings(mysql_uri=mysql), assignments, reason=reason))


@flags_app.command("history")
@cli_errors
def flags_history(
    limit: int = typer.Option(50, "--limit", min=1, help="How many of the latest entries."),
    mysql: Optional[str] = MysqlOpt,
):
    """Every change and refusal, oldest first: when, who, action, stage from -> to, flags from -> to, reason."""
    from . import playbook

    show(playbook.flags_history(load_settings(mysql_uri=mysql), limit=limit))


@flags_app.command("rollback")
@cli_errors
def flags_rollback(
    reason: Optional[str] = typer.Option(None, "--reason", help="Why: recorded in the history."),
    mysql: Optional[str] = MysqlOpt,
):
    """Return reads and writes to IndexedDB at once and set rollbackMode (always allowed, no guards)."""
    from . import playbook

    show(playbook.flags_rollback(load_settings(mysql_uri=mysql), reason=reason))


def _move(name, force, reason, mysql, max_mismatch_rate, min_compared, bench_max_age_h, monitor_max_age_h):
    from . import playbook

    result = playbook.cutover_move(load_settings(mysql_uri=mysql), name, force=force, reason=reason,
                                   max_mismatch_rate=max_mismatch_rate, min_compared=min_compared,
                                   bench_max_age_h=bench_max_age_h, monitor_max_age_h=monitor_max_age_h)
    show(result)
    if result.refused:
        raise typer.Exit(1)


ForceOpt = typer.Option(False, "--force", help="Move even though guards fail (needs --reason; recorded as forced).")
ReasonOpt = typer.Option(None, "--reason", help="Why: recorded in the history (required with --force).")
RateOpt = typer.Option(0.001, "--max-mismatch-rate", help="Consistency guard: highest share of compared records that may differ.")
ComparedOpt = typer.Option(1000, "--min-compared", help="Consistency guard: fewest records browsers must have compared.")
BenchAgeOpt = typer.Option(24.0, "--bench-max-age", help="Bench guard: oldest `etl bench` report accepted (RUNTIME_DIR/bench/*/report.json), in hours.")
MonitorAgeOpt = typer.Option(1.0, "--monitor-max-age", help="Monitor guard: oldest `etl monitor` run accepted (RUNTIME_DIR/monitor/*.jsonl), in hours.")


@cutover_app.command("stage")
@cli_errors
def cutover_stage(
    name: str = typer.Argument(..., help="off, dual-write, shadow, live, rampdown or complete."),
    force: bool = ForceOpt, reason: Optional[str] = ReasonOpt, mysql: Optional[str] = MysqlOpt,
    max_mismatch_rate: float = RateOpt, min_compared: int = ComparedOpt,
    bench_max_age: float = BenchAgeOpt, monitor_max_age: float = MonitorAgeOpt,
):
    """Move the cutover to a stage. Forward: one stage at a time, only when every guard passes.

    Guards: sequence, parity (STAGE_DIR vs MySQL, run now), expectations (the suites, run now), bench and monitor (their latest reports under RUNTIME_DIR), and from shadow on consistency (browsers' dual-read reports). A refusal names the failing guards and their figures and is recorded; exit status 1. Moving back needs no guard.
    """
    _move(name, force, reason, mysql, max_mismatch_rate, min_compared, bench_max_age, monitor_max_age)


@cutover_app.command("advance")
@cli_errors
def cutover_advance(
    force: bool = ForceOpt, reason: Optional[str] = ReasonOpt, mysql: Optional[str] = MysqlOpt,
    max_mismatch_rate: float = RateOpt, min_compared: int = ComparedOpt,
    bench_max_age: float = BenchAgeOpt, monitor_max_age: float = MonitorAgeOpt,
):
    """Move the cutover to the next stage, on the same guards as `etl cutover stage`."""
    _move(None, force, reason, mysql, max_mismatch_rate, min_compared, bench_max_age, monitor_max_age)


@cutover_app.command("status")
@cli_errors
def cutover_status(mysql: Optional[str] = MysqlOpt,
                   buckets: int = typer.Option(20, "--buckets", min=1, help="How many buckets with differing records to list.")):
    """The stage, browsers' dual-read consistency per table and bucket, and the last guarded move's guards."""
    from . import playbook

    show(playbook.cutover_status(load_settings(mysql_uri=mysql), bucket_limit=buckets))


@cutover_app.command("rollback")
@cli_errors
def cutover_rollback(reason: Optional[str] = typer.Option(None, "--reason", help="Why: recorded in the history."),
                     mysql: Optional[str] = MysqlOpt):
    """The same as `etl flags rollback`: reads and writes back to IndexedDB, rollbackMode on. Always allowed."""
    flags_rollback(reason=reason, mysql=mysql)


# ---------------------------------------------------------------- the API (issue 16)



@app.command()
@cli_errors
def serve(
    mysql: Optional[str] = MysqlOpt,
    host: Optional[str] = typer.Option(None, "--host", help="Address to listen on (default: BASE_URL's host, 127.0.0.1)."),
    port: Optional[int] = typer.Option(None, "--port", help="Port (default: BASE_URL's port, 8700)."),
    pool_size: int = typer.Option(16, "--pool-size", min=1, help="Database connections kept open (8 more may open under load)."),
):
    """Serve the migrated tables over HTTP as the app's backend does, plus the migration's control endpoints.

    Data: /health, /api/tickets (page, limit, search, category, status, cabang; keyset paging with after=), /api/tickets/years, /api/incidents, /api/incidents/stats, /api/customers, /api/vendors, /api/upload-sessions, and POST /api/<table>/bulk upserts. Control: /api/feature-flags, /api/migration/status, /api/migration/mismatches, /metrics (Prometheus). OpenAPI at /openapi.json, docs at /docs.

    Needs API_TOKEN (reads and writes); API_READ_TOKEN, when set, only reads (and may report mismatches). Runs until Ctrl-C.
    """
    from . import playbook

    show(playbook.serve_api(load_settings(mysql_uri=mysql), host=host, port=port, pool_size=pool_size, echo=show))


@app.command()
@cli_errors
def monitor(
    base_url: Optional[str] = BaseUrlOpt,
    token: Optional[str] = TokenOpt,
    mysql: Optional[str] = MysqlOpt,
    threshold_error: float = typer.Option(0.01, "--threshold-error", help="Largest tolerated share of failed API requests in a sample."),
    threshold_latency_p95: float = typer.Option(2000, "--threshold-latency-p95", help="Largest tolerated p95 of the API probes, in ms."),
    interval: float = typer.Option(5.0, "--interval", min=0, help="Seconds between samples."),
    count: int = typer.Option(12, "--count", min=1, help="Samples to take (the run is bounded; 12 x 5 s = a minute)."),
    probes: int = typer.Option(5, "--probes", min=1, help="Reads of a page of 100 tickets per sample (latency and errors)."),
    fail_fast: bool = typer.Option(False, "--fail-fast", help="Stop at the first sample with a breach."),
    no_db: bool = typer.Option(False, "--no-db", help="Watch the API only (no database health)."),
):
    """Watch the API (health, errors, p95 latency), the database (Threads_running, connections against max_connections, buffer-pool hit ratio, slow-query and aborted-connect rates, restarts, replica lag) and the API's connection pool.

    Each sample is appended to RUNTIME_DIR/monitor/<time>.jsonl; a terminal shows a live table. Exit status 1 when any sample breached a threshold, each breach named with its metric, value and threshold. Database thresholds follow the mysqld_exporter alert rules (connections > 80 % and Threads_running > 60 % of max_connections, any slow query, uptime < 60 s, replica lag > 30 s) plus a buffer-pool hit ratio under 95 % and over 1 aborted connect per second.
    """
    from . import playbook

    result = playbook.monitor_api(load_settings(mysql_uri=mysql, base_url=base_url, api_token=token),
                                  threshold_error=threshold_error, threshold_latency_p95=threshold_latency_p95,
                                  with_db=not no_db, note=lambda text: err.print(escape(text), highlight=False),
                                  display=_monitor_display, interval=interval, count=count, probes=probes,
                                  fail_fast=fail_fast)
    show(result)
    if not result.ok:
        raise typer.Exit(1)


@contextlib.contextmanager
def _monitor_display(thresholds):
    """A live table on a terminal; one line per sample otherwise."""
    from rich.live import Live

    from .api.monitor import rows_for_display  # display only: which metrics, and their state
    from rich.table import Table

    def table(sample):
        t = Table(title=f"sample {sample['sample']} at {sample['time']}")
        for name in ("metric", "value", "threshold", "state"):
            t.add_column(name)
        for row in rows_for_display(sample, thresholds):
            t.add_row(*row, style="bold red" if row[3] == "BREACH" else None)
        return t

    if not out.is_terminal:
        def line(sample):
            api = sample["api"]
            out.print(f"sample {sample['sample']}: api up={api['up']} p95={api['p95_ms']} ms errors={api['error_rate']:.3f}; "
                      f"breaches: {', '.join(b['metric'] for b in sample['breaches']) or 'none'}", highlight=False, markup=False)
        yield line
        return
    with Live(console=out, auto_refresh=False) as live:
        yield lambda sample: live.update(table(sample), refresh=True)


@app.command()
@cli_errors
def bench(
    base_url: Optional[str] = BaseUrlOpt,
    token: Optional[str] = typer.Option(None, "--token", help="Bearer token (default: API_TOKEN; else a login with API_USERNAME/API_PASSWORD at POST /api/auth/login, for the app's backend). Never printed."),
    rate: float = typer.Option(20.0, "--rate", help="Requests started per second, on schedule whatever the server does (open model)."),
    duration: float = typer.Option(10.0, "--duration", help="Seconds of load."),
    endpoint: Optional[list[str]] = typer.Option(None, "--endpoint", help="A path (with its query) to request, repeatable; default: a page of 100 of tickets, incidents, customers, vendors and upload-sessions (the backend's page=1&limit=100)."),
    bulk_chunks: int = typer.Option(3, "--bulk-chunks", min=0, help="Bulk-insert chunks of CHUNK_SIZE synthetic tickets to time (batch_id test-bench-*, deleted afterwards); 0: none."),
    chunk_size: Optional[int] = typer.Option(None, "--chunk-size", help="Rows per bulk chunk (default: CHUNK_SIZE, 200)."),
    threshold_p95: float = typer.Option(2000, "--threshold-p95", help="Largest tolerated p95 latency over all endpoints, ms."),
    threshold_chunk: float = typer.Option(5.0, "--threshold-chunk", help="Largest tolerated seconds per bulk chunk."),
    threshold_error: float = typer.Option(0.01, "--threshold-error", help="Largest tolerated share of failed requests."),
    threshold_memory: float = typer.Option(100, "--threshold-memory", help="Largest tolerated peak memory of the bench itself, MB."),
):
    """Benchmark the API (the seed's perf-bench): tickets, incidents, customers, vendors and upload-sessions pages, and bulk inserts.

    Requests start on schedule whatever the server does and latency counts from that due time (open model, as wrk2 and vegeta: a stall cannot hide). Prints p50/p90/p95/p99/p99.9/max per endpoint (HDR histogram), errors by class, achieved against target rate, seconds per bulk chunk and the bench's own peak memory; writes RUNTIME_DIR/bench/<time>/report.json and a self-contained report.html. Exit status 1 on any breach (defaults: p95 < 2 s, < 5 s a chunk, errors < 1 %, memory < 100 MB).
    """
    from . import playbook

    result = playbook.bench_api(load_settings(base_url=base_url, api_token=token, chunk_size=chunk_size), rate=rate,
                                duration=duration, endpoints=endpoint, bulk_chunks=bulk_chunks, threshold_p95=threshold_p95,
                                threshold_chunk=threshold_chunk, threshold_error=threshold_error,
                                threshold_memory=threshold_memory)
    show(result)
    if not result.ok:
        raise typer.Exit(1)


def main() -> None:  # pragma: no cover - console entry point
    sys.exit(app())


# ---------------------------------------------------------------- status, runs and the evidence report (issue 18)


def show_json(result) -> None:
    import json

    sys.stdout.write(mask_uri(json.dumps(result.asdict(), indent=2, ensure_ascii=False, default=str)) + "\n")


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
    from . import playbook

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
    from . import playbook

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
    from . import playbook

    show(playbook.report(load_settings(), run, open_browser=not no_open))
