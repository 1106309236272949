"""What the command modules share: the Typer `app` they register on, the consoles, the options several
commands take (--mysql, --base-url, --token), printing a result (`show`, `show_json`), the global
options (--debug, --version), and `cli_errors`, through which every error reaches the user as one line
(what and where), never a traceback unless the debug switch is on (`etl --debug ...` or ETL_DEBUG=1).
Exit status:
  0 ok · 1 failure (a library error, a mismatch, a failed expectation, an unexpected error)
  2 usage (a bad option or value) · 130 interrupted (Ctrl-C) · 143 terminated (SIGTERM)
"""

from __future__ import annotations

import functools
import os
import signal
import sys

import typer
from rich.console import Console
from rich.markup import escape

from ..core.config import mask_uri
from ..core.errors import EtlError, Interrupted, raise_if_stopped, request_stop, stop_requested

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
        from ..core.resources import version

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


def show_json(result) -> None:
    import json

    sys.stdout.write(mask_uri(json.dumps(result.asdict(), indent=2, ensure_ascii=False, default=str)) + "\n")
