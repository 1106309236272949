"""The row digest: 60 bits of a SHA-256 of a row's described columns that MySQL keeps and DuckDB recomputes.

Every data table has a STORED generated column `row_digest` (INVISIBLE, so `SELECT *` and
INSERTs without a column list never see it). MySQL computes it from what it stores, on every
write, and DuckDB computes the same number from the stage. Parity then reads only keys, bucket
columns and digests from MySQL (about 70 MB for 1M tickets) instead of every column (730 MB):
see BENCHMARKS.md. Both expressions are rendered here from the store description; the schema
file carries the MySQL one verbatim and tests/test_schema.py holds the two together.

The text hashed is the row's columns in description order, joined by ',':

| kind                    | element                         | MySQL's text of it             |
|-------------------------|---------------------------------|--------------------------------|
| varchar, text, json     | `<bytes>:<value>`, or `N`       | bytes as stored (utf8mb4)      |
| double                  | `<M>p<E>`, `0`, or `N`          | see below                      |
| datetime(3)             | `YYYY-MM-DD hh:mm:ss.fff`, `N`  | DATETIME(3) as text            |
| int, bigint, bool       | decimal digits, `N`             | TINYINT(1) holds 0/1 (or a stored 2) |

A DOUBLE's text differs between the engines (MySQL, MariaDB and DuckDB print 1e21, 1e-7, 0.1
or an integral 3.0 each their own way), so neither prints one: both compute the IEEE value's
exponent E = floor(log2 |x|) and the integer M = x / 2^E * 2^52 (the 53-bit significand, signed),
with operations that are exact in IEEE arithmetic on every engine: a division or multiplication
by a power of two, and comparisons. LOG2 itself may round near a power of two, so its floor is
corrected by one in either direction
after dividing |x| by its power of two (exact: the quotient is a normal number). Zero is `0` (and
so is -0.0: the app's JSON cannot hold one, JSON.stringify(-0) is "0"). tests/test_digest.py
checks the two engines on thousands of doubles, subnormals and powers of two among them.

The byte-length prefix makes the text injective: a ',' or an 'N' inside a value cannot shift
a boundary, and NULL (`N`) differs from '' (`0:`) and from the text 'N' (`1:N`). The digest is
the first 15 hex digits of the SHA-256 as a BIGINT, so it stays within a signed 64-bit range
on both sides (no overflow warning, which strict mode would turn into a failed INSERT).

MySQL and MariaDB agree on every function used (CONCAT_WS, IFNULL, LENGTH, SHA2, CONV, CAST
AS SIGNED) and both accept `GENERATED ALWAYS AS (...) STORED INVISIBLE COMMENT '...'` (MySQL
8.0.23+, MariaDB 10.3+). MySQL refuses MD5 and SHA1 in a generated column (error 3763, seen
on 9.7); SHA2 it accepts, and it is the cheaper one where the CPU hashes SHA-256 itself
(MariaDB here: 1.3 s against 2.4 s for MD5 over 1M rows of 1.3 KB). DATETIME (not TIMESTAMP)
text does not depend on the session's time zone.

The column's comment names the definition (DIGEST_COMMENT): a table whose `row_digest` carries
another comment (an older schema's MD5 digest, say) is treated as having none, and read in full.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import uuid
from pathlib import Path

from .duck import literal
from .stores import ROW_DIGEST, Column, Store

DIGEST = ROW_DIGEST.name
HEX_DIGITS = 15  # 60 bits: fits a signed BIGINT
# Marks the definition on the column itself; change it whenever the expression's meaning changes.
DIGEST_COMMENT = "SHA-256 of the described columns, 60 bits, doubles as significand and exponent (etl/digest.py)"
DIGESTS_DIR = "digests"  # beside the staged tables: STAGE_DIR/digests/<table>.<fingerprint>.parquet


SIGNIFICAND = 2**52


def _double(v: str, *, mysql: bool) -> str:
    """`<M>p<E>` of a DOUBLE (see the module docstring), `0` for zero, NULL for NULL."""
    # LOG2 of the largest doubles rounds up to 1024 (2^1024 overflows: an error in MySQL) and may
    # round below -1074 for the smallest (2^-1075 is 0): clamp to the exponents a double has.
    e0 = f"GREATEST(LEAST(FLOOR(LOG2(ABS({v}))), 1023), -1074)"
    r = f"ABS({v}) / POW(2, {e0})"  # in [0.5, 4): exact, unlike |x| / 2 among the subnormals
    if mysql:  # MySQL's comparisons are 0/1 integers already
        e = f"(CAST({e0} AS SIGNED) - ({r} < 1) + ({r} >= 2))"
        m = f"CAST({v} / POW(2, {e}) * {SIGNIFICAND} AS SIGNED)"
        return f"CASE WHEN {v} = 0 THEN '0' ELSE CONCAT({m}, 'p', {e}) END"
    e = f"(CAST({e0} AS BIGINT) - CAST({r} < 1 AS BIGINT) + CAST({r} >= 2 AS BIGINT))"
    m = f"CAST({v} / POW(2, {e}) * {SIGNIFICAND} AS BIGINT)"
    return f"CASE WHEN {v} = 0 THEN '0' ELSE CAST({m} AS VARCHAR) || 'p' || CAST({e} AS VARCHAR) END"


def _mysql_element(col: Column) -> str:
    q = f"`{col.name}`"
    if col.is_text:
        return f"IFNULL(CONCAT(LENGTH({q}), ':', {q}), 'N')"
    if col.kind == "double":
        return f"IFNULL({_double(q, mysql=True)}, 'N')"
    return f"IFNULL({q}, 'N')"


def mysql_expression(store: Store) -> str:
    """The generated column's expression (MySQL and MariaDB), one element per line."""
    elements = ",\n      ".join(_mysql_element(c) for c in store.columns)
    return f"CAST(CONV(LEFT(SHA2(CONCAT_WS(',',\n      {elements}), 256), {HEX_DIGITS}), 16, 10) AS SIGNED)"


def column_sql(store: Store) -> str:
    """The column's line in sql/schema.mysql.sql (without the trailing comma)."""
    return (f"{DIGEST:<28} BIGINT GENERATED ALWAYS AS ({mysql_expression(store)}) STORED INVISIBLE\n"
            f"                               COMMENT {literal(DIGEST_COMMENT)}")


def _duckdb_element(col: Column) -> str:
    from .rowhash import normalized  # the load's typing of each kind: the stage's values as MySQL holds them

    v = normalized(col)
    if col.is_text:
        return f"coalesce(strlen({v}) || ':' || {v}, 'N')"  # strlen counts bytes, as LENGTH does
    if col.kind == "datetime":
        return f"coalesce(strftime({v}, '%Y-%m-%d %H:%M:%S.%g'), 'N')"
    if col.kind == "double":
        return f"coalesce({_double(v, mysql=False)}, 'N')"
    return f"coalesce(CAST({v} AS VARCHAR), 'N')"


def duckdb_expression(store: Store) -> str:
    """The same digest in DuckDB, over a relation holding the store's described columns."""
    elements = ", ".join(_duckdb_element(c) for c in store.columns)
    return f"CAST('0x' || left(sha256(concat_ws(',', {elements})), {HEX_DIGITS}) AS BIGINT)"


def has_digest(conn, table: str) -> bool:
    """Whether `table` has this module's generated `row_digest`. A table made by an older schema
    has none, or one of another definition (its comment differs): either is read in full."""
    with conn.cursor() as cur:
        cur.execute("SELECT COUNT(*) FROM information_schema.columns WHERE table_schema = DATABASE() "
                    "AND table_name = %s AND column_name = %s AND generation_expression <> '' "
                    "AND column_comment = %s", (table, DIGEST, DIGEST_COMMENT))
        return cur.fetchone()[0] == 1


def outdated(conn, stores) -> list[Store]:
    """The stores whose table lacks this module's `row_digest` (made by an older schema: no such
    column, or one of another definition). `CREATE TABLE IF NOT EXISTS` leaves them as they are."""
    return [s for s in stores if not has_digest(conn, s.table)]


def upgrade(conn, store: Store) -> None:
    """Give `store`'s table this module's `row_digest`. The server computes it for every row: a
    table copy, which blocks writes to the table while it runs."""
    with conn.cursor() as cur:
        cur.execute("SELECT COUNT(*) FROM information_schema.columns WHERE table_schema = DATABASE() "
                    "AND table_name = %s AND column_name = %s", (store.table, DIGEST))
        verb = "MODIFY" if cur.fetchone()[0] else "ADD"
        cur.execute(f"ALTER TABLE `{store.table}` {verb} COLUMN {column_sql(store)}")


# ---------------------------------------------------------------- the stage's digests, kept


def stage_digest_path(parquet: Path, store: Store) -> Path:
    """Where the digests of a staged file are kept. The name hashes the file's stat data (size, inode,
    modification and change times, as git's index tells a changed file) and the expression: a new
    transform, any write to the file or a new expression gives a new name, so a kept file never
    answers for other rows."""
    st = Path(parquet).stat()
    seen = f"{st.st_size}:{st.st_ino}:{st.st_mtime_ns}:{st.st_ctime_ns}:{duckdb_expression(store)}"
    return Path(parquet).parent / DIGESTS_DIR / f"{store.table}.{hashlib.sha1(seen.encode()).hexdigest()[:20]}.parquet"


def stage_digests(con, parquet: Path, store: Store) -> Path | None:
    """A Parquet file of one column, the digest of each row of the staged file `parquet`, in its row
    order: computed once (about 5 CPU seconds for 1M tickets) and kept beside the stage, so parity after
    `etl load` (which computes them while the server works) only reads them. None when the stage
    folder cannot be written: the caller then computes the digests itself."""
    import duckdb

    path = stage_digest_path(parquet, store)
    if path.is_file():
        return path
    tmp = path.with_name(f".{uuid.uuid4().hex}.tmp")
    try:
        path.parent.mkdir(exist_ok=True)
        con.execute(f"COPY (SELECT {duckdb_expression(store)} AS {DIGEST} FROM read_parquet({literal(parquet)})) "
                    f"TO {literal(tmp)} (FORMAT parquet)")
        for old in path.parent.glob(f"{store.table}.*.parquet"):  # an earlier stage's
            old.unlink(missing_ok=True)
        os.replace(tmp, path)  # whole or not at all: a reader never sees half a file
    except (OSError, duckdb.IOException):
        with contextlib.suppress(OSError):
            tmp.unlink(missing_ok=True)
        return None
    return path


if __name__ == "__main__":  # prints the schema file's digest lines: python -m etl.digest
    from .stores import STORES

    for s in STORES:
        print(f"-- {s.table}\n  {column_sql(s)},")
