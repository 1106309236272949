"""The schema applies (twice, changing nothing) and agrees with the store descriptions."""

from __future__ import annotations

import shutil
import subprocess

import pytest

from etl import STORES, apply_schema, store
from etl.mysql.db import SCHEMA_FILE, split_statements
from etl.core.digest import has_digest, mysql_expression


def _snapshot(target) -> dict:
    """Everything the schema defines, and the rows it seeds."""
    with target.connect() as conn, conn.cursor() as cur:
        out = {}
        for what, sql in {
            "columns": "SELECT table_name, column_name, column_type, is_nullable, column_default, collation_name "
                       "FROM information_schema.columns WHERE table_schema = DATABASE() ORDER BY 1, 2",
            "indexes": "SELECT table_name, index_name, seq_in_index, column_name, non_unique "
                       "FROM information_schema.statistics WHERE table_schema = DATABASE() ORDER BY 1, 2, 3",
            "views": "SELECT table_name, view_definition FROM information_schema.views WHERE table_schema = DATABASE() ORDER BY 1",
            "routines": "SELECT routine_name, routine_definition FROM information_schema.routines WHERE routine_schema = DATABASE() ORDER BY 1",
            "triggers": "SELECT trigger_name, event_object_table, action_statement FROM information_schema.triggers "
                        "WHERE trigger_schema = DATABASE() ORDER BY 1",
            "menu_permissions": "SELECT id, role, menus FROM menu_permissions ORDER BY id",
            "feature_flags": "SELECT name, value FROM feature_flags ORDER BY name",
        }.items():
            cur.execute(sql)
            out[what] = cur.fetchall()
        return out


def test_schema_applies_twice_without_change(mysql_target):
    first = apply_schema(mysql_target)
    assert (first.tables, first.routines) == (15, 2) and first.views >= 12 and first.triggers == 15
    before = _snapshot(mysql_target)
    with mysql_target.connect() as conn, conn.cursor() as cur:  # data must survive a second apply
        cur.execute("INSERT INTO vendors (id, name) VALUES (1, 'kept')")
        cur.execute("UPDATE feature_flags SET value = '\"mysql\"' WHERE name = 'dataSource'")
    apply_schema(mysql_target)
    after = _snapshot(mysql_target)
    assert {k: v for k, v in after.items() if k != "feature_flags"} == {k: v for k, v in before.items() if k != "feature_flags"}
    with mysql_target.connect() as conn, conn.cursor() as cur:
        cur.execute("SELECT name FROM vendors")
        assert cur.fetchall() == (("kept",),)
        cur.execute("SELECT value FROM feature_flags WHERE name = 'dataSource'")
        assert cur.fetchone() == ('"mysql"',)
        cur.execute("SELECT role FROM menu_permissions ORDER BY role")
        assert [r[0] for r in cur.fetchall()] == ["admin", "super admin", "user"]


def test_tables_of_an_older_schema_are_named_and_given_the_current_digest_on_request(mysql_target):
    apply_schema(mysql_target)
    with mysql_target.connect() as conn, conn.cursor() as cur:
        cur.execute("INSERT INTO vendors (id, name) VALUES (1, 'kept'), (2, NULL)")
        cur.execute("ALTER TABLE vendors DROP COLUMN row_digest")  # made before the digest existed
        cur.execute("ALTER TABLE incidents MODIFY COLUMN row_digest BIGINT GENERATED ALWAYS AS "  # an earlier definition
                    "(CAST(CONV(LEFT(SHA2(`id`, 256), 15), 16, 10) AS SIGNED)) STORED INVISIBLE")
    result = apply_schema(mysql_target)
    assert result.outdated_digests == ("incidents", "vendors") and not result.upgraded_digests
    assert "--upgrade-digests" in str(result)
    result = apply_schema(mysql_target, upgrade_digests=True)
    assert result.upgraded_digests == ("incidents", "vendors") and not result.outdated_digests
    with mysql_target.connect() as conn, conn.cursor() as cur:
        assert all(has_digest(conn, t) for t in ("incidents", "vendors"))
        cur.execute(f"SELECT COUNT(*) FROM vendors WHERE row_digest = ({mysql_expression(store('vendors'))})")
        assert cur.fetchone()[0] == 2  # computed for the rows already there
        cur.execute("SELECT name FROM vendors ORDER BY id")
        assert cur.fetchall() == (("kept",), (None,))
    assert apply_schema(mysql_target).outdated_digests == ()


@pytest.mark.skipif(not (shutil.which("mariadb") or shutil.which("mysql")), reason="no mysql command-line client")
def test_schema_applies_with_plain_client(mysql_target):
    client = shutil.which("mariadb") or shutil.which("mysql")
    cmd = [client, "-h", mysql_target.host, "-P", str(mysql_target.port), "-u", mysql_target.user, mysql_target.database]
    for _ in range(2):
        done = subprocess.run(cmd, stdin=SCHEMA_FILE.open("rb"), capture_output=True, text=True)
        assert done.returncode == 0, done.stderr
    with mysql_target.connect() as conn, conn.cursor() as cur:
        cur.execute("SELECT COUNT(*) FROM information_schema.triggers WHERE trigger_schema = DATABASE()")
        assert cur.fetchone()[0] == 15
        cur.execute("CALL sp_finalize_upload_session('none')")


def _expected_data_type(col) -> tuple:
    kind = col.kind
    return {
        "varchar": ("varchar", col.length, None, None, None),
        "text": ("text", None, None, None, None),
        "mediumtext": ("mediumtext", None, None, None, None),
        "json": ("mediumtext", None, None, None, None),
        "int": ("int", None, None, None, None),
        "bigint": ("bigint", None, None, None, None),
        "bool": ("tinyint", None, None, None, None),
        "double": ("double", None, None, None, None),
        "datetime": ("datetime", None, None, None, 3),
        "epoch_ms": ("bigint", None, None, None, None),
    }[kind]


def test_information_schema_matches_store_descriptions(schema_target):
    with schema_target.connect() as conn, conn.cursor() as cur:
        for store in STORES:
            cur.execute(
                "SELECT column_name, data_type, character_maximum_length, numeric_precision, numeric_scale, "
                "datetime_precision, is_nullable, column_key, character_set_name "
                "FROM information_schema.columns WHERE table_schema = DATABASE() AND table_name = %s "
                "ORDER BY ordinal_position",
                (store.table,),
            )
            rows = cur.fetchall()
            assert rows, f"table {store.table} missing"
            actual = {r[0]: r for r in rows}
            described = store.columns + store.managed
            assert [r[0] for r in rows] == [c.name for c in described], f"{store.table}: columns or their order differ"
            for col in described:
                name, dtype, length, prec, scale, dt_prec, nullable, key, charset = actual[col.name]
                exp_type, exp_len, exp_prec, exp_scale, exp_dt = _expected_data_type(col)
                got = (dtype.lower(), length if exp_len else None, prec if exp_prec else None,
                       scale if exp_prec else None, dt_prec if exp_dt else None)
                assert got == (exp_type, exp_len, exp_prec, exp_scale, exp_dt), f"{store.table}.{col.name}"
                assert (nullable == "YES") == col.nullable, f"{store.table}.{col.name} nullability"
                if col.is_text:
                    assert charset == "utf8mb4", f"{store.table}.{col.name} charset"
            cur.execute(
                "SELECT column_name FROM information_schema.key_column_usage WHERE table_schema = DATABASE() "
                "AND table_name = %s AND constraint_name = 'PRIMARY' ORDER BY ordinal_position",
                (store.table,),
            )
            assert tuple(r[0] for r in cur.fetchall()) == store.primary_key, f"{store.table} primary key"


def test_split_statements_honours_delimiters_and_quotes():
    sql = (
        "SELECT ';';\n-- a comment;\nDELIMITER $$\n"
        "CREATE PROCEDURE p() BEGIN SELECT 1; SELECT 'x$$'; END$$\nDELIMITER ;\nSELECT 3;"
    )
    assert split_statements(sql) == ["SELECT ';'", "CREATE PROCEDURE p() BEGIN SELECT 1; SELECT 'x$$'; END", "SELECT 3"]
