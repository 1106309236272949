"""Connections to MySQL and applying sql/schema.mysql.sql."""

from __future__ import annotations

import re
from dataclasses import dataclass, field, replace
from pathlib import Path
from urllib.parse import parse_qs, unquote, urlsplit

import pymysql

from ..core.result import Result
from ..core.config import Settings, mask_uri
from ..core.errors import ConfigError, SchemaError, ServerError
from ..core.resources import data_path
from .driver import connect
from .server import LocalServer

SCHEMA_FILE = data_path("sql", "schema.mysql.sql")


@dataclass(frozen=True)
class MySQLTarget:
    """A parsed MYSQL_URI (mysql://user:pass@host:port/db). It holds a secret: str(), repr() and
    public() mask the password, and nothing serializes it field by field (run records call public())."""

    host: str
    port: int
    user: str
    password: str = field(repr=False)
    database: str
    unix_socket: str | None = None

    @classmethod
    def parse(cls, uri: str) -> "MySQLTarget":
        # Never echo the text of a URI that did not parse: a half-encoded password is in it.
        hint = "a password holding @ : / % # ? & = + must be percent-encoded (e.g. @ as %40)"
        try:
            parts = urlsplit(uri)
            port = parts.port
        except ValueError:
            raise ConfigError(f"MYSQL_URI does not parse: its port is not a number; {hint}") from None
        if parts.scheme not in ("mysql", "mysql+pymysql", "mariadb", "mariadb+pymysql"):
            raise ConfigError(f"MYSQL_URI must look like mysql://user:pass@host:3306/dbname, got {mask_uri(uri)!r}")
        database = parts.path.lstrip("/")
        if not database:
            raise ConfigError(f"MYSQL_URI names no database: {mask_uri(uri)!r}")
        query = parse_qs(parts.query)
        return cls(
            host=parts.hostname or "127.0.0.1",
            port=port or 3306,
            user=unquote(parts.username or "root"),
            password=unquote(parts.password or ""),
            database=unquote(database),
            unix_socket=(query.get("unix_socket") or [None])[0],
        )

    @property
    def uri(self) -> str:
        from urllib.parse import quote

        auth = quote(self.user, safe="") + (":" + quote(self.password, safe="") if self.password else "")
        return f"mysql://{auth}@{self.host}:{self.port}/{quote(self.database, safe='')}"

    def __str__(self) -> str:
        return mask_uri(self.uri)

    def with_database(self, database: str) -> "MySQLTarget":
        """The same server and user, another database (e.g. the notebook's own, beside the migration's)."""
        return replace(self, database=database)

    def public(self) -> dict:
        """A safe form for reports and run records: the password masked."""
        return {"uri": str(self), "host": self.host, "port": self.port, "user": self.user,
                "password": "***" if self.password else "", "database": self.database, "unix_socket": self.unix_socket}

    def connect(self, *, database: bool = True, **kw) -> pymysql.connections.Connection:
        """A PyMySQL connection in UTC, utf8mb4, with LOCAL INFILE allowed."""
        try:
            conn = connect(
                host=self.host, port=self.port, user=self.user, password=self.password,
                database=self.database if database else None, unix_socket=self.unix_socket,
                charset="utf8mb4", local_infile=True, autocommit=kw.pop("autocommit", True),
                connect_timeout=kw.pop("connect_timeout", 10), **kw,
            )
        except pymysql.err.OperationalError as e:
            raise ServerError(f"cannot connect to {self}: {e.args[-1]}") from None
        with conn.cursor() as cur:
            cur.execute("SET time_zone = '+00:00'")
        return conn

    def engine(self):
        """A SQLAlchemy engine (imported here: most commands never need SQLAlchemy)."""
        import sqlalchemy as sa

        url = sa.URL.create(
            "mysql+pymysql", username=self.user, password=self.password or None, host=self.host,
            port=self.port, database=self.database, query={"charset": "utf8mb4"},
        )
        return sa.create_engine(url, connect_args={"init_command": "SET time_zone = '+00:00'"}, pool_pre_ping=True)


def server_facts(cur) -> tuple[str, bool, int]:
    """(version, local_infile, max_allowed_packet) of the server a cursor talks to: what `etl status`
    shows and the playbook's preflight checks."""
    cur.execute("SELECT VERSION(), @@local_infile, @@max_allowed_packet")
    version, infile, packet = cur.fetchone()
    return version, bool(int(infile)), int(packet)


def resolve_target(settings: Settings, *, start: bool = False) -> MySQLTarget:
    """MYSQL_URI when given; else the project-local server (started when `start`)."""
    if settings.mysql_uri:
        return MySQLTarget.parse(settings.mysql_uri)
    server = LocalServer(settings.runtime_dir / "mysql")
    info = server.up() if start else server.status()
    if info is None:
        raise ServerError("no MYSQL_URI is set and the project-local server is not running: run `etl db up`")
    return MySQLTarget.parse(info.uri)


def split_statements(sql: str) -> list[str]:
    """Split a script as the mysql client does, honouring DELIMITER lines and quoted text."""
    statements, buf, delim = [], [], ";"
    for line in sql.splitlines(keepends=True):
        m = re.match(r"\s*DELIMITER\s+(\S+)\s*$", line, re.I)
        if m and not _strip_comments("".join(buf)):
            delim, buf = m.group(1), []
            continue
        buf.append(line)
        text = "".join(buf)
        if _ends_with_delimiter(text, delim):
            stmt = text.rstrip()[: -len(delim)].strip()
            if _strip_comments(stmt):
                statements.append(stmt)
            buf = []
    rest = "".join(buf).strip()
    if _strip_comments(rest):
        statements.append(rest)
    return statements


def _strip_comments(sql: str) -> str:
    return re.sub(r"(?m)^\s*--.*$", "", sql).strip()


def _ends_with_delimiter(text: str, delim: str) -> bool:
    stripped = text.rstrip()
    if not stripped.endswith(delim):
        return False
    # Only a delimiter outside quotes and comments ends a statement.
    quote = None
    i, body = 0, stripped[: -len(delim)]
    while i < len(body):
        ch = body[i]
        if quote:
            if ch == "\\":
                i += 1
            elif ch == quote:
                quote = None
        elif ch in "'\"`":
            quote = ch
        elif body.startswith("--", i):
            nl = body.find("\n", i)
            if nl < 0:
                return False
            i = nl
        i += 1
    return quote is None


@dataclass(frozen=True)
class SchemaResult(Result):
    target: str
    statements: int
    tables: int
    views: int
    routines: int
    triggers: int
    outdated_digests: tuple[str, ...] = ()  # tables made by an older schema, left as they are
    upgraded_digests: tuple[str, ...] = ()  # tables given the current row_digest (--upgrade-digests)
    pending: tuple[str, ...] = ()  # changes tables made by an older schema need (etl.upgrade), not made
    upgraded: tuple[str, ...] = ()  # changes made (--upgrade)
    created_database: str | None = None  # the database, when it did not exist and was created

    def __str__(self) -> str:
        lines = [f"schema applied to {self.target}: {self.statements} statements; "
                 f"{self.tables} tables, {self.views} views, {self.routines} procedures, {self.triggers} triggers"]
        if self.created_database:
            lines.insert(0, f"created database {self.created_database} (it did not exist on the server)")
        if self.upgraded:
            lines.append("  upgraded from an older schema (no row lost):")
            lines += [f"    {c}" for c in self.upgraded]
        if self.upgraded_digests:
            lines.append(f"  row_digest brought to the current definition in: {', '.join(self.upgraded_digests)}")
        if self.pending:
            lines.append("  tables made by an older schema differ from it; each change needed:")
            lines += [f"    {c}" for c in self.pending]
            lines.append("  `etl schema apply --upgrade` makes them (ALTER TABLE: most copy the table, which blocks "
                         "its writes while it runs; no row is lost)")
        if self.outdated_digests:
            lines.append(f"  note: {', '.join(self.outdated_digests)} lack the current row_digest (made by an older "
                         "schema): parity and the load's checks read them in full. `etl schema apply "
                         "--upgrade-digests` adds it (a table copy, which blocks writes while it runs)")
        return "\n".join(lines)

    def _repr_html_(self) -> str:
        from ..core.htmlrepr import html_table

        lines = str(self).splitlines()
        return html_table(lines[0], ("tables", "views", "procedures", "triggers"),
                          [(self.tables, self.views, self.routines, self.triggers)], [x.strip() for x in lines[1:]])


def apply_schema(target: MySQLTarget, schema_file: Path = SCHEMA_FILE, *, upgrade_digests: bool = False,
                 upgrade: bool = False) -> SchemaResult:
    """Create the database when missing and apply the schema; safe to run again.

    Tables made by an older schema keep their columns (`CREATE TABLE IF NOT EXISTS`): each change
    they need (etl/mysql/upgrade.py) is named in the result, and made with `upgrade`; `upgrade_digests`
    makes only the row_digest ones."""
    from ..core import digest
    from . import upgrade as upgrading
    from ..core.stores import STORES

    sql = schema_file.read_text(encoding="utf-8")
    with target.connect(database=False) as conn, conn.cursor() as cur:
        cur.execute("SELECT COUNT(*) FROM information_schema.schemata WHERE schema_name = %s", (target.database,))
        created = target.database if cur.fetchone()[0] == 0 else None  # said in the result: a typo makes a new one
        cur.execute(f"CREATE DATABASE IF NOT EXISTS `{target.database}` CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci")
        cur.execute(f"USE `{target.database}`")
        statements = split_statements(sql)
        for n, stmt in enumerate(statements, 1):
            try:
                cur.execute(stmt)
                while cur.nextset():
                    pass
            except pymysql.err.MySQLError as e:
                first = _strip_comments(stmt).splitlines()[0][:80]
                raise SchemaError(f"statement {n} failed: {first!r}: {e.args[-1]}", file=str(schema_file)) from None
        outdated = digest.outdated(conn, STORES)
        changes = upgrading.plan(conn, schema_file)
        if upgrade_digests and not upgrade:
            changes = [c for c in changes if not c.what.startswith(digest.DIGEST)]
            for store in outdated:
                digest.upgrade(conn, store)
        made = []
        if upgrade:
            try:
                upgrading.apply(conn, changes)
            except pymysql.err.MySQLError as e:
                raise SchemaError(f"upgrade failed: {e.args[-1]}", file=str(schema_file)) from None
            made, changes = [c for c in changes if c.clause], [c for c in changes if not c.clause]
        cur.execute(
            "SELECT table_type, COUNT(*) FROM information_schema.tables WHERE table_schema = DATABASE() GROUP BY table_type"
        )
        kinds = dict(cur.fetchall())
        cur.execute("SELECT COUNT(*) FROM information_schema.routines WHERE routine_schema = DATABASE()")
        (routines,) = cur.fetchone()
        cur.execute("SELECT COUNT(*) FROM information_schema.triggers WHERE trigger_schema = DATABASE()")
        (triggers,) = cur.fetchone()
    fixed = upgrade_digests or upgrade
    return SchemaResult(str(target), len(statements), kinds.get("BASE TABLE", 0), kinds.get("VIEW", 0), routines, triggers,
                        () if fixed else tuple(s.table for s in outdated),
                        tuple(s.table for s in outdated) if fixed else (),
                        tuple(str(c) for c in changes if not c.what.startswith(digest.DIGEST)),  # those: the note
                        tuple(str(c) for c in made), created)
