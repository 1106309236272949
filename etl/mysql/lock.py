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
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import socket
from dataclasses import dataclass

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


def lock_name(database: str) -> str:
    """Named locks are server-wide, so the name carries the database (at most 64 characters on MySQL)."""
    name = f"etl:{database}"
    return name if len(name) <= 64 else "etl:" + hashlib.sha1(database.encode()).hexdigest()


def holder(conn, name: str) -> Holder | None:
    """Who holds lock `name` now (None: nobody)."""
    with conn.cursor() as cur:
        cur.execute("SELECT IS_USED_LOCK(%s)", (name,))
        (conn_id,) = cur.fetchone()
        if conn_id is None:
            return None
        row, host = None, None
        with contextlib.suppress(pymysql.err.MySQLError):  # an older schema has no etl_locks
            cur.execute("SELECT purpose, holder, since FROM etl_locks WHERE lock_name = %s AND connection_id = %s",
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
def database_lock(target: MySQLTarget, purpose: str, *, wait: float = 0):
    """Hold the etl lock of `target`'s database for the block, on a connection of its own.

    Refuses with LockError naming the holder when another session has it (after waiting up
    to `wait` seconds). Yields the Holder record this process wrote."""
    name = lock_name(target.database)
    conn = target.connect()
    try:
        with conn.cursor() as cur:
            # The lock connection idles for the whole run: the server must not time it out (a year:
            # the largest wait_timeout both MySQL and MariaDB accept).
            cur.execute("SET SESSION wait_timeout = 31536000")
            cur.execute("SELECT GET_LOCK(%s, %s)", (name, max(0, int(wait))))
            (got,) = cur.fetchone()
            if got != 1:
                other = holder(conn, name)
                raise LockError(f"another etl run holds the lock of database {target.database}: "
                                f"{other or 'a session that just ended'}; wait for it to finish, then run again",
                                field=name)
            cur.execute("SELECT CONNECTION_ID()")
            me = Holder(int(cur.fetchone()[0]), purpose, f"{socket.gethostname()} pid {os.getpid()}",
                        utcnow().isoformat(sep=" ", timespec="seconds"))
            with contextlib.suppress(pymysql.err.MySQLError):  # the lock holds without its note (older schema)
                cur.execute("REPLACE INTO etl_locks (lock_name, connection_id, purpose, holder, since) "
                            "VALUES (%s, %s, %s, %s, %s)", (name, me.connection_id, purpose, me.holder, me.since))
        yield me
        with contextlib.suppress(pymysql.err.MySQLError), conn.cursor() as cur:  # a lost connection released it
            cur.execute("DELETE FROM etl_locks WHERE lock_name = %s AND connection_id = %s", (name, me.connection_id))
            cur.execute("DO RELEASE_LOCK(%s)", (name,))
    finally:
        with contextlib.suppress(pymysql.err.Error):
            conn.close()  # ends the session: the server releases the lock even when the block failed
