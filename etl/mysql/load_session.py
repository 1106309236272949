"""A loader's session with the server (etl.mysql.load): its connection, what is checked before
anything is written (the schema, the privileges), and how failures and interruptions are reported:
a server error as a one-line LoadError naming the table and what to do, a Ctrl-C or SIGTERM as
the interruption it was, even when the server's answer to a half-sent file arrives first."""

from __future__ import annotations

import contextlib
import os
import signal
import threading

import pymysql

from ..core.errors import LoadError, ServerError
from ..core.stores import Store
from . import bulk
from .db import MySQLTarget


# ---------------------------------------------------------------- interruptions


_INTERRUPTED = threading.Event()


@contextlib.contextmanager
def noticing_interrupts():
    """Remember a Ctrl-C (SIGINT) or SIGTERM for the length of a load. Interrupted while it sends a
    LOAD DATA LOCAL file, PyMySQL still ends the exchange in a `finally` and raises the server's
    answer to the half-sent file ("Lost connection ...") in place of the interruption; the load then
    reports the interruption it was, not a server error (`failing_as_load_error`, TableLoader's chunk writes), and
    the half-sent file is cut off at once (etl.mysql.bulk.abort_file_sends), not after the server's
    read timeouts."""
    if threading.current_thread() is not threading.main_thread():
        yield  # signals reach the main thread only
        return
    previous = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)}

    def handler(signum, frame):
        _INTERRUPTED.set()
        bulk.abort_file_sends()
        before = previous[signum]
        if callable(before):
            before(signum, frame)  # Python's default SIGINT raises KeyboardInterrupt; the CLI's SIGTERM, Interrupted
        else:
            signal.signal(signum, before)  # SIG_DFL: die as before, now that the file send is cut off
            os.kill(os.getpid(), signum)

    _INTERRUPTED.clear()
    for s, before in previous.items():
        if before != signal.SIG_IGN:  # an ignored signal stays ignored
            signal.signal(s, handler)
    try:
        yield
    finally:
        for s, before in previous.items():
            signal.signal(s, before)


def raise_if_interrupted() -> None:
    if _INTERRUPTED.is_set():
        raise KeyboardInterrupt


# ---------------------------------------------------------------- errors


# The server's "you may not": running again cannot help, granting can.
PRIVILEGE_ERRORS = {1044, 1045, 1142, 1143, 1227, 1370}


@contextlib.contextmanager
def failing_as_load_error(store: Store | None):
    try:
        yield
    except pymysql.err.MySQLError as e:  # a dropped connection, a killed query, a server gone, a refusal
        raise_if_interrupted()
        code = e.args[0] if e.args and isinstance(e.args[0], int) else None
        what = f"loading {store.table}" if store else "preparing the load"
        advice = ("grant the missing privilege to the load's user, then run the load again"
                  if code in PRIVILEGE_ERRORS else "run the load again to continue")
        raise LoadError(f"{what} failed: {e.args[-1]}; {advice}", store=store.name if store else None) from None


def check_privileges(conn, target: MySQLTarget, stores) -> None:
    """Try, before anything is written, each kind of statement the load will run, in forms that
    change nothing: INSERT ... SELECT ... WHERE 1 = 0, UPDATE/DELETE ... WHERE 1 = 0, a temporary
    table made and dropped, and (empty tables only: the bulk path drops and rebuilds their
    indexes) an ALTER TABLE with nothing to do. Parsing SHOW GRANTS is not reliable (roles,
    wildcards, partial revokes); the server's own answer is."""
    probes = []
    for store in stores:
        t, cols = store.table, ", ".join(f"`{c}`" for c in store.column_names)
        probes += [
            ("INSERT", t, f"INSERT INTO `{t}` ({cols}) SELECT {cols} FROM `{t}` WHERE 1 = 0"),
            ("UPDATE", t, f"UPDATE `{t}` SET `{store.primary_key[0]}` = `{store.primary_key[0]}` WHERE 1 = 0"),
            ("DELETE", t, f"DELETE FROM `{t}` WHERE 1 = 0"),
            ("CREATE TEMPORARY TABLES", t, f"CREATE TEMPORARY TABLE `etl_probe_{t}` LIKE `{t}`"),
            ("CREATE TEMPORARY TABLES", t, f"DROP TEMPORARY TABLE IF EXISTS `etl_probe_{t}`"),
            ("ALTER", t, f"ALTER TABLE `{t}`"),  # run only on an empty table, see below
        ]
    for t in ("etl_load_ledger", "etl_load_indexes"):
        probes += [(p, t, f"{sql} `{t}`{tail}") for p, sql, tail in (
            ("INSERT", "INSERT INTO", f" SELECT * FROM `{t}` WHERE 1 = 0"), ("UPDATE", "UPDATE", " SET table_name = table_name WHERE 1 = 0"),
            ("DELETE", "DELETE FROM", " WHERE 1 = 0"))]
    with conn.cursor() as cur:
        for privilege, table, sql in probes:
            if privilege == "ALTER":
                cur.execute(f"SELECT EXISTS (SELECT 1 FROM `{table}`)")
                if cur.fetchone()[0]:
                    continue  # not empty: the diff path, no ALTER
            try:
                cur.execute(sql)
            except pymysql.err.MySQLError as e:
                code = e.args[0] if e.args and isinstance(e.args[0], int) else None
                if code not in PRIVILEGE_ERRORS:
                    raise
                raise LoadError(f"the load needs the {privilege} privilege on {target.database}.{table}, which "
                                f"{target.user} lacks (server: {e.args[-1]}); nothing was written. Grant it, e.g. "
                                f"GRANT {privilege} ON `{target.database}`.* TO <user>, then run the load again",
                                field=privilege) from None


def check_schema(conn, stores) -> None:
    with conn.cursor() as cur:
        cur.execute("SELECT table_name FROM information_schema.tables WHERE table_schema = DATABASE()")
        have = {r[0].lower() for r in cur.fetchall()}
    missing = [s.table for s in stores if s.table not in have] + [t for t in ("etl_load_ledger", "etl_load_indexes") if t not in have]
    if missing:
        raise LoadError(f"tables missing in the target: {', '.join(missing)}; run `etl schema apply` first")
    with conn.cursor() as cur:
        cur.execute("SELECT COUNT(*) FROM information_schema.columns WHERE table_schema = DATABASE() "
                    "AND table_name = 'etl_load_ledger' AND column_name IN ('run_id', 'kind', 'rows_sent')")
        if cur.fetchone()[0] != 3:  # CREATE TABLE IF NOT EXISTS keeps a ledger made by an older schema
            raise LoadError("etl_load_ledger has an older layout: drop it (it only records past loads) "
                            "and run `etl schema apply`", field="etl_load_ledger")


# ---------------------------------------------------------------- the session


def low_priority(niceness: int = 10) -> None:
    """Lower this worker thread's CPU priority (Linux: per thread) so the server's writes go first."""
    try:
        os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), niceness)
    except (AttributeError, OSError):
        pass


@contextlib.contextmanager
def loader_connection(target: MySQLTarget):
    """A loader session: strict, unaudited; closed quietly (after a lost connection there is nothing to close)."""
    try:
        conn = target.connect()
    except ServerError as e:  # mid-load (the lock's connection came first): a crashed or restarted server
        raise LoadError(f"{e.args[0]}; run the load again to continue once the server is back") from None
    try:
        with conn.cursor() as cur:
            # Strict mode: a value the column cannot hold is refused, never silently cut.
            cur.execute("SET SESSION sql_mode = 'STRICT_ALL_TABLES,NO_ENGINE_SUBSTITUTION'")
            cur.execute("SET @etl_skip_audit = 1")  # the ledger records the loader's writes, not audit_log
        yield conn
    finally:
        try:
            conn.close()
        except pymysql.err.Error:
            pass
