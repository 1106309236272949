"""Bring tables made by an older sql/schema.mysql.sql to the current one, without losing a row.

`CREATE TABLE IF NOT EXISTS` leaves an existing table as it is, so a database made by an
older schema keeps its old columns. `plan` compares every table the schema file creates
with the table the server holds and names each change the current file needs:

* a column the table lacks: ADD COLUMN, where the file puts it;
* in the migration's data tables (etl/stores.py), a column narrower than described (a shorter
  VARCHAR, a DECIMAL where the description has DOUBLE, NOT NULL where it may be NULL, no
  DEFAULT where the backend relies on one): MODIFY COLUMN to the file's definition, keeping
  the column's collation;
* a data table without the current `row_digest` (etl/digest.py): given it in the same ALTER;
* a `menu_permissions` row still holding, byte for byte, the seed an older schema wrote (lower-case
  keys that match no menu title of the UI, so the sidebar comes out empty): given the current
  seed. A row anyone else wrote or changed is never touched.

Never a DROP, never a narrowing, never a row written: a column wider than the file's, or of
another type, is named and left alone. Tables the app's backend owns (users,
menu_permissions) only ever gain the columns they lack. Definitions are read from the schema
file itself, so no column is described twice. Most of these ALTERs copy the table (blocking its
writes while they run): `apply` runs them only when asked (`etl schema apply --upgrade`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from . import digest
from .stores import BY_TABLE

_TABLE = re.compile(r"CREATE TABLE IF NOT EXISTS (\w+) \((.*?)\n\) ENGINE=", re.S)
_COLUMN = re.compile(r"^  (\w+)\s+(.+?),?\s*(?:--.*)?$")
_NOT_COLUMN = {"PRIMARY", "KEY", "UNIQUE", "INDEX", "CONSTRAINT"}
_SEED = re.compile(r"INSERT INTO menu_permissions \(role, menus\)\s+SELECT '([^']+)', '([^']+)'")
# The seed rows sql/schema.mysql.sql wrote before issue #14, as it wrote them.
OLD_MENU_SEEDS = {
    "super admin": '["dashboard","tickets","incidents","customers","vendors","upload","analytics","users","settings"]',
    "admin": '["dashboard","tickets","incidents","customers","vendors","upload","analytics"]',
    "user": '["dashboard","tickets","incidents","customers","analytics"]',
}


def file_columns(schema_sql: str) -> dict[str, list[tuple[str, str]]]:
    """Each table the file creates -> its (column, definition) in order (row_digest left to etl.digest)."""
    out = {}
    for table, body in _TABLE.findall(schema_sql):
        cols = []
        for line in body.splitlines():
            m = _COLUMN.match(line)
            if m and m.group(1) not in _NOT_COLUMN and m.group(1) != digest.DIGEST:
                cols.append((m.group(1), m.group(2).rstrip(",").strip()))
        out[table] = cols
    return out


def _base_type(definition_or_type: str) -> tuple[str, int | None]:
    """('varchar', 255), ('double', None), ('decimal', None), ('tinyint', None): what `wider` compares."""
    t = definition_or_type.strip().lower()
    if t.startswith("boolean") or t.startswith("bool "):
        return "tinyint", None
    m = re.match(r"(\w+)(?:\((\d+)(?:,\d+)?\))?", t)
    name, n = m.group(1), m.group(2)
    return name, (int(n) if n and name in ("varchar", "char") else None)


@dataclass(frozen=True)
class Change:
    table: str
    what: str  # readable: "duration_min DECIMAL(14,6) -> DOUBLE"
    clause: str | None  # the ALTER TABLE clause; None: named only, left as it is
    args: tuple = ()  # a seed row's UPDATE: (role, new menus, old menus)

    def __str__(self) -> str:
        return f"{self.table}: {self.what}" + ("" if self.clause else " (left as it is)")


def _column_changes(table: str, wanted: list[tuple[str, str]], have: dict[str, tuple]) -> list[Change]:
    changes, previous = [], None
    data_table = table in BY_TABLE
    for name, definition in wanted:
        cur = have.get(name)
        if cur is None:
            where = f" AFTER `{previous}`" if previous else " FIRST"
            changes.append(Change(table, f"add column {name} {definition}", f"ADD COLUMN `{name}` {definition}{where}"))
        elif data_table:
            column_type, nullable, default, collation = cur
            (old, old_len), (new, new_len) = _base_type(column_type), _base_type(definition)
            wider = (old == new and (old_len or 0) < (new_len or 0)) or (old == "decimal" and new == "double")
            other = old != new and not wider
            looser = nullable == "NO" and "NOT NULL" not in definition.upper()
            defaulted = default is None and " DEFAULT " in f" {definition.upper()} " and nullable == "NO"
            if other:
                changes.append(Change(table, f"{name} is {column_type}, the schema has {definition}", None))
            elif (old_len or 0) > (new_len or 0):
                pass  # wider than the file's: never narrowed
            elif wider or looser or defaulted:
                keep = f" COLLATE {collation}" if collation and "COLLATE" not in definition.upper() else ""
                text = definition.replace(" NOT NULL", f"{keep} NOT NULL", 1) if keep and " NOT NULL" in definition else definition + keep
                why = ", ".join(w for w, on in (("wider", wider), ("may be NULL", looser), ("with a default", defaulted)) if on)
                changes.append(Change(table, f"{name} {column_type.upper()} -> {definition} ({why})", f"MODIFY COLUMN `{name}` {text}"))
        previous = name
    return changes


def plan(conn, schema_file: Path) -> list[Change]:
    """Every change the existing tables need to match `schema_file` (none for a database it made)."""
    wanted = file_columns(Path(schema_file).read_text(encoding="utf-8"))
    changes = []
    with conn.cursor() as cur:
        for table, cols in wanted.items():
            cur.execute("SELECT column_name, column_type, is_nullable, column_default, collation_name "
                        "FROM information_schema.columns WHERE table_schema = DATABASE() AND table_name = %s", (table,))
            have = {r[0]: tuple(r[1:]) for r in cur.fetchall()}
            if not have:
                continue  # made by the file just now
            changes += _column_changes(table, cols, have)
            store = BY_TABLE.get(table)
            if store is not None and not digest.has_digest(conn, table):
                verb = "MODIFY" if digest.DIGEST in have else "ADD"
                changes.append(Change(table, "row_digest to the current definition (computed for every row)",
                                      f"{verb} COLUMN {digest.column_sql(store)}"))
        changes += _menu_changes(cur, dict(_SEED.findall(Path(schema_file).read_text(encoding="utf-8"))))
    return changes


def _menu_changes(cur, seeds: dict[str, str]) -> list[Change]:
    out = []
    for role, old in OLD_MENU_SEEDS.items():
        if role in seeds:
            cur.execute("SELECT COUNT(*) FROM menu_permissions WHERE role = %s AND menus = %s COLLATE utf8mb4_bin",
                        (role, old))
            if cur.fetchone()[0]:
                out.append(Change("menu_permissions", f"role {role!r}: the older seed's menu keys -> the UI's titles",
                                  f"UPDATE:{role}", (role, seeds[role], old)))
    return out


def apply(conn, changes: list[Change]) -> tuple[str, ...]:
    """One ALTER TABLE per table, with every clause `plan` gave it (and the seed rows' UPDATEs);
    returns the tables changed."""
    by_table: dict[str, list[str]] = {}
    with conn.cursor() as cur:
        for c in changes:
            if c.args:  # a seed row: only while it still holds exactly what the older schema wrote
                role, menus, old = c.args
                cur.execute("UPDATE menu_permissions SET menus = %s WHERE role = %s AND menus = %s COLLATE utf8mb4_bin",
                            (menus, role, old))
                by_table.setdefault(c.table, [])
            elif c.clause:
                by_table.setdefault(c.table, []).append(c.clause)
        for table, clauses in by_table.items():
            if clauses:
                cur.execute(f"ALTER TABLE `{table}` " + ", ".join(clauses))
    return tuple(by_table)
