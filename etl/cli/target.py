"""`etl db`, `etl schema` and `etl users`: the MySQL target itself, that is the project-local server
(start, stop, which server commands use), the schema applied to it (and the upgrade of tables an older
schema made), and the accounts of the app's backend kept in its users table."""

from __future__ import annotations

from typing import Optional

import typer

from ..core.config import load_settings
from .common import MysqlOpt, cli_errors, show

db_app = typer.Typer(help="The project-local MySQL server (used when MYSQL_URI is not set).", no_args_is_help=True)
schema_app = typer.Typer(help="The MySQL schema (sql/schema.mysql.sql).", no_args_is_help=True)
users_app = typer.Typer(help="Accounts of the app's backend (its users table), e.g. the first admin after the cutover.",
                        no_args_is_help=True)


# ---------------------------------------------------------------- db


@db_app.command("up")
@cli_errors
def db_up():
    """Start the project-local server under RUNTIME_DIR/mysql (reuses one already running)."""
    from .. import playbook
    show(playbook.db_up(load_settings()))


@db_app.command("down")
@cli_errors
def db_down():
    """Stop the project-local server."""
    from .. import playbook
    stopped = playbook.db_down(load_settings())
    show(f"stopped {stopped}" if stopped else "no project-local server is running")


@db_app.command("status")
@cli_errors
def db_status():
    """Say which server commands use, and whether the project-local one runs."""
    from .. import playbook
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
    from .. import playbook
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
    from .. import playbook

    show(playbook.users_add(load_settings(mysql_uri=mysql), username, role, update=update))
