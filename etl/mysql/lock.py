"""One writer at a time per database: a MySQL named lock held for a whole run.

Two loads into one database at once corrupt each other's plans (the second continues the
first's chunks and finds every row a duplicate) or leave MySQL the union of two stages.
So a load (and anything else that must not overlap one: flag changes) takes
``GET_LOCK('etl:<database>')`` on a connection of its own and keeps it until it ends. The
server releases a named lock when its connection ends, so a killed process, a killed
connection or a crashed server never leaves a lock behind. GET_LOCK, IS_USED_LOCK and
RELEASE_LOCK behave the same on MySQL 8 and MariaDB 10.6.

The default is to refuse at once (``wait=0``): a second load that waited would then load its
own stage over the first's, which is never what two people starting loads together meant.
The one refused is told who holds the lock: the row the holder wrote in ``etl_locks``
(purpose, host and process, since when) and, from the processlist, the holder's connection.

A whole `etl migrate` run holds a second lock, ``etl-run:<database>`` (`RUN`), from the moment
it knows its target to its end: its steps (load, parity, the flag moves of the cutover) must not
interleave with another run's. A second run waits for it, and is told so, with the holder. (A
first run takes it before its schema step: until the schema exists there is no etl_locks to
hold the note, and the holder is named by its connection and client host.)
"""

from __future__ import annotations

import contextlib
import hashlib
import math
import os
import socket
import time
from dataclasses import dataclass
from typing import Callable

import pymysql

from .db import MySQLTarget
from ..core.errors import EtlError
from .ledger import utcnow


class LockError(EtlError):
    stage = "lock"


@dataclass(frozen=True)
class Holder:
    connection_id: int
    purpose: str | None = None
    holder: str | None = None
    since: str | None = None
    host: str | None = None  # the connection's client host, from the processlist

    def __str__(self) -> str:
        who = f"{self.purpose} by {self.holder}" if self.purpose else "another session"
        when = f" since {self.since} UTC" if self.since else ""
        via = f" from {self.host}" if self.host else ""
        return f"{who}{when} (connection {self.connection_id}{via})"


WRITE, RUN = "etl", "etl-run"  # the writers' lock; a whole `etl migrate` run's


def lock_name(database: str, kind: str = WRITE) -> str:
    """Named locks are server-wide, so the name carries the database (at most 64 characters on MySQL)."""
    name = f"{kind}:{database}"
    return name if len(name) <= 64 else f"{kind}:" + hashlib.sha1(database.encode()).hexdigest()


def _notes(database: str) -> str:
    return f"`{database.replace('`', '``')}`.etl_locks"  # the lock's connection has no default database


def holder(conn, name: str, database: str) -> Holder | None:
    """Who holds lock `name` now (None: nobody); the notes are in `database`'s etl_locks."""
    with conn.cursor() as cur:
        cur.execute("SELECT IS_USED_LOCK(%s)", (name,))
        (conn_id,) = cur.fetchone()
        if conn_id is None:
            return None
        row, host = None, None
        with contextlib.suppress(pymysql.err.MySQLError):  # an older schema has no etl_locks
            cur.execute(f"SELECT purpose, holder, since FROM {_notes(database)} WHERE lock_name = %s AND connection_id = %s",
                        (name, conn_id))
            row = cur.fetchone()
        with contextlib.suppress(pymysql.err.MySQLError):  # without PROCESS only one's own sessions show
            cur.execute("SELECT host FROM information_schema.processlist WHERE id = %s", (conn_id,))
            found = cur.fetchone()
            host = found[0] if found else None
    purpose, who, since = row if row else (None, None, None)
    return Holder(int(conn_id), purpose, who, str(since)[:19] if since else None, host)


def require_held(conn, database: str, me: Holder) -> None:
    """Refuse (LockError) when `me` no longer holds the etl lock of `database`: its connection ended
    (killed, timed out, a server restart), so another run may be writing now. A writer asks this on
    its own connection inside each transaction, before it commits."""
    with conn.cursor() as cur:
        cur.execute("SELECT IS_USED_LOCK(%s)", (lock_name(database),))
        (now,) = cur.fetchone()
    if now != me.connection_id:
        raise LockError(f"the etl lock of database {database} was lost (its connection {me.connection_id} ended); "
                        "nothing more was written: run again to continue", field=lock_name(database))


@contextlib.contextmanager
def database_lock(target: MySQLTarget, purpose: str, *, wait: float = 0, kind: str = WRITE,
                  waiting: Callable[[str], None] | None = None):
    """Hold the etl lock of `target`'s database for the block, on a connection of its own
    (`kind`: WRITE, the writers' lock, or RUN, a whole migrate run's).

    Refuses with LockError naming the holder when another session has it after waiting up to
    `wait` seconds; `waiting(text)` hears once, naming the holder, when it has to wait. Yields the
    Holder record this process wrote. The database need not exist yet (a first run's)."""
    name = lock_name(target.database, kind)
    conn = target.connect(database=False)
    try:
        with conn.cursor() as cur:
            # The lock connection idles for the whole run: the server must not time it out (a year:
            # the largest wait_timeout both MySQL and MariaDB accept).
            cur.execute("SET SESSION wait_timeout = 31536000")
            deadline = time.monotonic() + max(0.0, wait)
            got, told = _try_lock(cur, name, 0), False
            while not got and time.monotonic() < deadline:
                if waiting is not None and not told:
                    waiting(f"waiting up to {wait:g} s for the {kind} lock of database {target.database}, held by "
                            f"{holder(conn, name, target.database) or 'a session that just ended'}")
                    told = True
                # Short waits in the server, so Ctrl-C and a stop are heard between them.
                got = _try_lock(cur, name, min(2, math.ceil(deadline - time.monotonic())))
            if not got:
                other = holder(conn, name, target.database)
                who = "another etl migrate run" if kind == RUN else "another etl run"
                raise LockError(f"{who} holds the lock of database {target.database}: "
                                f"{other or 'a session that just ended'}; wait for it to finish, then run again",
                                field=name)
            cur.execute("SELECT CONNECTION_ID()")
            me = Holder(int(cur.fetchone()[0]), purpose, f"{socket.gethostname()} pid {os.getpid()}",
                        utcnow().isoformat(sep=" ", timespec="seconds"))
            with contextlib.suppress(pymysql.err.MySQLError):  # the lock holds without its note (no schema yet)
                cur.execute(f"REPLACE INTO {_notes(target.database)} (lock_name, connection_id, purpose, holder, since) "
                            "VALUES (%s, %s, %s, %s, %s)", (name, me.connection_id, purpose, me.holder, me.since))
        yield me
        with contextlib.suppress(pymysql.err.MySQLError), conn.cursor() as cur:  # a lost connection released it
            cur.execute(f"DELETE FROM {_notes(target.database)} WHERE lock_name = %s AND connection_id = %s",
                        (name, me.connection_id))
            cur.execute("DO RELEASE_LOCK(%s)", (name,))
    finally:
        with contextlib.suppress(pymysql.err.Error):
            conn.close()  # ends the session: the server releases the lock even when the block failed


def _try_lock(cur, name: str, seconds: int) -> bool:
    # Whole seconds: MariaDB's GET_LOCK takes no fractions (MySQL does). 0 tries once.
    cur.execute("SELECT GET_LOCK(%s, %s)", (name, seconds))
    return cur.fetchone()[0] == 1
