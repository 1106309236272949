"""The `etl` command: each command parses its options, calls one library function and prints its result.

No logic lives here. Each command imports etl.playbook (which loads the MySQL client) only in its body,
where it is used: `etl export` and `etl transform` start sooner. `app` (the
console entry point, `etl.cli:app`) and what the commands share, among it how every error becomes one
line and an exit status, are in common.py; the commands are in a module per group: data.py (sample
to docs, and migrate), api.py (serve, monitor, bench), runs.py (status, runs, report), target.py (db,
schema, users) and cutover.py (flags, cutover); the live progress they draw is in progress.py.
Importing the modules below registers their commands on `app`, in the order `etl --help` lists them.
"""

from __future__ import annotations

import sys

from .common import app

# The order of these imports is the order of the commands in `etl --help`.
from . import data  # noqa: F401  sample ... docs, migrate
from . import api  # noqa: F401  serve, monitor, bench
from . import runs  # noqa: F401  status, runs, report
from . import target, cutover  # the groups of sub-commands, added below in this order

app.add_typer(target.db_app, name="db")
app.add_typer(target.schema_app, name="schema")
app.add_typer(cutover.flags_app, name="flags")
app.add_typer(cutover.cutover_app, name="cutover")
app.add_typer(target.users_app, name="users")

__all__ = ["app", "main"]


def main() -> None:  # pragma: no cover - console entry point
    sys.exit(app())
