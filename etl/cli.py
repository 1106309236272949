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
from rich.progress import BarColumn, MofNCompleteColumn, Progress, ProgressColumn, TextColumn, TimeElapsedColumn
from rich.text import Text
from rich.markup import escape

from .config import load_settings, mask_uri
from .errors import EtlError, Interrupted

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
    debug switch, errors other than EtlError keep their traceback."""

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
    raise Interrupted(signum)


@app.callback()
def main_options(
    debug: bool = typer.Option(False, "--debug", help=f"Show the full traceback of an error (also: {DEBUG_ENV}=1)."),
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
    from .users import add_user, check, read_password

    check(username, role)
    settings = load_settings(mysql_uri=mysql)
    show(add_user(playbook.target(settings), username, role, read_password(), update=update))


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
    from .sample import write_sample

    show(write_sample(out_dir, tickets=tickets, incidents=incidents, customers=customers, vendors=vendors, seed=seed))


# ---------------------------------------------------------------- export (issue 4)


@app.command("export")
@cli_errors
def export_cmd(
    source: Path = typer.Option(..., "--from", help="An export folder (JSON arrays or NDJSON, parts allowed), a single-file "
                                "dump {store: records-array}, or a dexie-export-import file."),
    out_dir: Optional[Path] = typer.Option(None, "--out", help="The normalized export folder (default: EXPORT_DIR)."),
    force: bool = typer.Option(False, "--force", help="Replace an output folder that holds an earlier export (any other folder is refused, never deleted)."),
    part_mb: Optional[int] = typer.Option(None, "--part-mb", min=1, help="Store a JSON array over 1.5 times this size (MB) "
                                          "as parts of this size cut at record boundaries, so that counting and the transform parse it "
                                          "on every core [default: 128]."),
):
    """Check an export and write it as a normalized, immutable export folder (what `etl transform` reads)."""
    from .export import export

    settings = load_settings(export_dir=out_dir)
    show(export(source, settings.export_dir, force=force, **({"part_bytes": part_mb << 20} if part_mb else {})))


@app.command()
@cli_errors
def snippet(
    out_file: Optional[Path] = typer.Option(None, "--out", help="Write it to this file instead of printing it."),
    as_bookmarklet: bool = typer.Option(False, "--bookmarklet", help="The snippet as a javascript: URL for a bookmark."),
):
    """Print the JavaScript that exports the app's IndexedDB from the browser (paste it into the devtools console)."""
    from .snippet import bookmarklet, snippet_source, write_snippet

    if out_file is not None:
        show(write_snippet(out_file, as_bookmarklet=as_bookmarklet))
    else:
        sys.stdout.write(bookmarklet() + "\n" if as_bookmarklet else snippet_source())


@app.command()
@cli_errors
def adapter(out_file: Optional[Path] = typer.Option(None, "--out", help="Write it to this file instead of printing it.")):
    """Print the JavaScript a Dexie app includes to read and write where the cutover flags say.

    It fetches /api/feature-flags (cached; IndexedDB only when the API fails, said on the console and as a "fallback" event), serves reads from the stage's authoritative origin and, in shadow and live, compares a sample with the other origin and posts each differing record to /api/migration/mismatches; writes go to the authoritative origin first, and to the other only when that worked.
    """
    from .cutover.adapter import adapter_source, write_adapter

    if out_file is not None:
        show(write_adapter(out_file))
    else:
        sys.stdout.write(adapter_source())


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
    from .transform import transform as run

    settings = load_settings(export_dir=in_dir, stage_dir=out_dir)
    show(run(settings.export_dir, settings.stage_dir))


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
    from . import query as q

    formats = [f for f, on in (("table", as_table), ("csv", as_csv), ("json", as_json), ("markdown", as_markdown)) if on]
    if len(formats) > 1:
        raise EtlError(f"choose one output format, not {' and '.join('--' + f for f in formats)}")
    settings = load_settings(stage_dir=stage, export_dir=export, mysql_uri=mysql_uri)
    target = None
    if mysql or mysql_uri:
        from . import playbook

        target = playbook.target(settings)
    if shell or not query:
        q.open_shell(settings.stage_dir, settings.export_dir, settings.runtime_dir, mysql=target)
        return
    text = q.run_sql(query, settings.stage_dir, settings.export_dir, mysql=target).render((formats or ["table"])[0], max_rows)
    sys.stdout.write(text)


# ---------------------------------------------------------------- load (issue 5)


class _RowsPerSecond(ProgressColumn):
    def render(self, task) -> Text:
        return Text(f"{task.speed:,.0f} rows/s" if task.speed else "", style="progress.data.speed")


@contextlib.contextmanager
def _load_progress(enabled: bool):
    """A progress bar per table on stderr (rows written / planned, rows per second), or nothing."""
    if not enabled:
        yield None
        return
    bars = Progress(TextColumn("{task.description:<16}"), BarColumn(), MofNCompleteColumn(), _RowsPerSecond(),
                    TimeElapsedColumn(), console=err, transient=False)
    tasks: dict[str, int] = {}

    def update(table: str, done: int, total: int) -> None:
        if table not in tasks:
            tasks[table] = bars.add_task(table, total=total)
        bars.update(tasks[table], completed=done, total=total)

    with bars:
        yield update


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
):
    """Write every staged table into MySQL: chunked, checked as it writes, idempotent, resumable.

    One load per database at a time: a load holds the database's etl lock (a MySQL named lock) while it runs; another is refused with a message naming the holder (exit status 1), or waits with --wait. The stage is checked against its transform summary first.

    Loading the same stage again writes nothing; a newer stage writes only its differences, and rows no longer staged are reported (deleted only with --delete-missing).

    Each chunk is recorded in the table etl_load_ledger; a run that was interrupted is continued by the next. Rows the server refuses go to STAGE/load/<table>.rejects.parquet.
    """
    from . import playbook
    from .load import load as run

    settings = load_settings(mysql_uri=mysql, stage_dir=stage, chunk_size=chunk_size)
    with _load_progress(not quiet and err.is_terminal) as progress:
        result = run(settings.stage_dir, playbook.target(settings), chunk_size=settings.chunk_size,
                     batch_rows=batch_rows, method=method, delete_missing=delete_missing, progress=progress, wait=wait)
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
    from .parity_report import parity_with_report

    settings = load_settings(mysql_uri=dst_mysql)
    result = parity_with_report(src or settings.stage_dir, playbook.target(settings), runtime_dir=settings.runtime_dir,
                                buckets=buckets.split(",") if buckets is not None else None, tables=table)
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
    from .validate import validate_settings

    result = validate_settings(load_settings(mysql_uri=mysql, stage_dir=stage), strict=strict)
    show(result)
    if not result.ok:
        raise typer.Exit(1)


@app.command("docs")
@cli_errors
def docs_cmd():
    """Build the Great Expectations data docs (HTML): every suite, and the results of past `etl validate` runs.

    Written to expectations/gx/uncommitted/data_docs/local_site/index.html. Needs no database.
    """
    from .validate import build_docs, gx_root

    show(build_docs(gx_root(load_settings().root)))


# ---------------------------------------------------------------- migrate


@app.command()
@cli_errors
def migrate(
    export: Optional[Path] = typer.Option(None, "--from", help="What to migrate (an export folder or file); default: a generated sample."),
    mysql: Optional[str] = MysqlOpt,
    sample_tickets: int = typer.Option(30000, min=0, help="Tickets in the generated sample when no --from is given."),
):
    """Run the playbook: server, schema, export, and every later stage, recording the run in RUNTIME_DIR."""
    from . import playbook

    settings = load_settings(mysql_uri=mysql)
    show(playbook.migrate(settings, source=export, sample_tickets=sample_tickets, echo=show))


# ---------------------------------------------------------------- flags and cutover (issue 17)


@flags_app.command("list")
@cli_errors
def flags_list(mysql: Optional[str] = MysqlOpt):
    """Show every flag, who changed it last, and the cutover stage the flags describe."""
    from . import cutover, playbook

    show(cutover.read_state(playbook.target(load_settings(mysql_uri=mysql))))


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
    from . import cutover, playbook

    settings = load_settings(mysql_uri=mysql)
    show(cutover.set_flags(playbook.target(settings), assignments, reason=reason, runtime_dir=settings.runtime_dir))


@flags_app.command("history")
@cli_errors
def flags_history(
    limit: int = typer.Option(50, "--limit", min=1, help="How many of the latest entries."),
    mysql: Optional[str] = MysqlOpt,
):
    """Every change and refusal, oldest first: when, who, action, stage from -> to, flags from -> to, reason."""
    from . import cutover, playbook

    show(cutover.history(playbook.target(load_settings(mysql_uri=mysql)), limit=limit))


@flags_app.command("rollback")
@cli_errors
def flags_rollback(
    reason: Optional[str] = typer.Option(None, "--reason", help="Why: recorded in the history."),
    mysql: Optional[str] = MysqlOpt,
):
    """Return reads and writes to IndexedDB at once and set rollbackMode (always allowed, no guards)."""
    from . import cutover, playbook

    settings = load_settings(mysql_uri=mysql)
    show(cutover.rollback(playbook.target(settings), reason=reason, runtime_dir=settings.runtime_dir))


def _thresholds(max_mismatch_rate, min_compared, bench_max_age_h, monitor_max_age_h):
    from .cutover import Thresholds

    return Thresholds(bench_max_age_s=bench_max_age_h * 3600, monitor_max_age_s=monitor_max_age_h * 3600,
                      max_mismatch_rate=max_mismatch_rate, min_compared=min_compared)


def _move(fn, force, reason, mysql, max_mismatch_rate, min_compared, bench_max_age_h, monitor_max_age_h, **kw):
    from . import playbook

    settings = load_settings(mysql_uri=mysql)
    result = fn(settings, playbook.target(settings), force=force, reason=reason,
                thresholds=_thresholds(max_mismatch_rate, min_compared, bench_max_age_h, monitor_max_age_h), **kw)
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
    from .cutover import move_to

    _move(move_to, force, reason, mysql, max_mismatch_rate, min_compared, bench_max_age, monitor_max_age, name=name)


@cutover_app.command("advance")
@cli_errors
def cutover_advance(
    force: bool = ForceOpt, reason: Optional[str] = ReasonOpt, mysql: Optional[str] = MysqlOpt,
    max_mismatch_rate: float = RateOpt, min_compared: int = ComparedOpt,
    bench_max_age: float = BenchAgeOpt, monitor_max_age: float = MonitorAgeOpt,
):
    """Move the cutover to the next stage, on the same guards as `etl cutover stage`."""
    from .cutover import advance

    _move(advance, force, reason, mysql, max_mismatch_rate, min_compared, bench_max_age, monitor_max_age)


@cutover_app.command("status")
@cli_errors
def cutover_status(mysql: Optional[str] = MysqlOpt,
                   buckets: int = typer.Option(20, "--buckets", min=1, help="How many buckets with differing records to list.")):
    """The stage, browsers' dual-read consistency per table and bucket, and the last guarded move's guards."""
    from . import cutover, playbook

    show(cutover.status(playbook.target(load_settings(mysql_uri=mysql)), bucket_limit=buckets))


@cutover_app.command("rollback")
@cli_errors
def cutover_rollback(reason: Optional[str] = typer.Option(None, "--reason", help="Why: recorded in the history."),
                     mysql: Optional[str] = MysqlOpt):
    """The same as `etl flags rollback`: reads and writes back to IndexedDB, rollbackMode on. Always allowed."""
    flags_rollback(reason=reason, mysql=mysql)


# ---------------------------------------------------------------- the API (issue 16)

BaseUrlOpt = typer.Option(None, "--base-url", help="The API's URL (default: BASE_URL, else http://127.0.0.1:8700, where `etl serve` listens).")
TokenOpt = typer.Option(None, "--token", help="Bearer token (default: API_TOKEN). Never printed.")


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
    from .api.serve import serve as run

    settings = load_settings(mysql_uri=mysql)
    show(run(settings, playbook.target(settings), host=host, port=port, pool_size=pool_size, echo=show))


def main() -> None:  # pragma: no cover - console entry point
    sys.exit(app())
