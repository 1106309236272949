"""The aggregate views and the source side agree exactly, whatever order MySQL adds the rows in."""

from __future__ import annotations

import random

import pytest

from etl.check.aggregates import BY_VIEW, expected_rows, mysql_query
from etl.core.stores import INCIDENTS
from etl.mysql import bulk

from load_helpers import frame

# (site, minutes): doubles whose floating sum depends on the order of the additions
# (1e16 + 1 - 1e16 is 0 or 1), that sit on a rounding boundary of the compared averages
# (1133.54625 came from a real run on MySQL 9.7), whose shortest text has more decimals than
# the views' DECIMAL(65,30) keeps, and none. Sites differ in case and trailing spaces, as MySQL
# groups them.
MINUTES = [("north", 1e16), ("North ", 1.0), ("north", -1e16), ("north", 1133.54625), ("NORTH", 1133.54625),
           ("north", 0.25), ("south", 0.1), ("south", 0.2), ("south", 0.30000000000000004), ("south", 1e-31),
           ("south", 5e-31), ("south", 2.5e-30), ("south", -7.25), ("south", 1e-5 / 3), ("south", None),
           (None, 59 / 60), (None, 2267.0925)]


def _incidents(order: list[int]) -> list[dict]:
    rows = []
    for i in order:
        site, m = MINUTES[i]
        rows.append({"id": f"i-{i:03d}", "site": site, "status": "closed", "priority": None if i % 4 == 0 else "p1",
                     "duration_min": m, "net_duration_min": m, "total_duration_pause_min": None if m is None else -m,
                     "total_duration_vendor_min": m})
    return rows


def _view_rows(target, view: str) -> list[str]:
    with target.connect() as conn, conn.cursor() as cur:
        cur.execute(mysql_query(BY_VIEW[view]))
        return sorted(r[0] for r in cur.fetchall())


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_sums_and_averages_of_doubles_agree_in_any_row_order(schema_target, tmp_path, seed):
    order = list(range(len(MINUTES)))
    random.Random(seed).shuffle(order)
    staged = frame(INCIDENTS, _incidents(order))
    with schema_target.connect(autocommit=False) as conn:
        bulk.Writer(conn, INCIDENTS, bulk.INSERT, tmp_path).write("incidents", staged)
        conn.commit()
    # The source side is given the rows in the other order: neither side may depend on it.
    source = staged.reverse()
    for view in ("v_incidents_by_site", "v_incidents_by_status", "v_incidents_by_priority"):
        want = expected_rows(BY_VIEW[view], source)
        assert _view_rows(schema_target, view) == want, view
    # Added as decimals, 1e16 + 1.0 - 1e16 keeps its 1.0, and the average's boundary is seen exactly.
    assert _view_rows(schema_target, "v_incidents_by_site")[0] == (
        "site='north' | incidents=6 | total_duration_min=2268.3425 | avg_duration_min=378.0571 | "
        "total_net_duration_min=2268.3425 | avg_net_duration_min=378.0571 | total_pause_min=-2268.3425 | "
        "total_vendor_min=2268.3425")


def test_the_exact_sums_added_in_parts_equal_the_sum_of_each_value_cast_alone():
    """Polars adds the whole numbers and the decimals of each value's shortest text; that equals
    adding CAST(v AS DECIMAL(65,30)) value by value (`_in_units`, the reference), whatever the
    values: negative, with 17 significant digits, printed with an exponent, or none in a group."""
    import struct

    import polars as pl

    from etl.check.aggregates import EXACT_SCALE, _in_units

    rng = random.Random(7)
    values = []
    for i in range(20_000):
        kind = i % 5
        if kind == 0:
            v = round(rng.uniform(-5000, 5000), rng.randint(0, 6))
        elif kind == 1:
            v = rng.uniform(-1e9, 1e9)
        elif kind == 2:  # any finite bit pattern: every exponent form
            v = struct.unpack("d", struct.pack("Q", rng.getrandbits(64)))[0]
            v = v if v == v and abs(v) < 1e30 else 1.0
        elif kind == 3:
            v = rng.random() * 10 ** rng.randint(-40, 17)
        else:
            v = rng.randint(0, 10**6) / 60
        values.append(v)
    sites = [f"s{i % 7}" for i in range(len(values))] + ["empty"]
    source = frame(INCIDENTS, [{"id": f"i-{i}", "site": s, "status": "closed", "duration_min": v,
                                "net_duration_min": v, "total_duration_pause_min": -v if v is not None else None,
                                "total_duration_vendor_min": v}
                               for i, (s, v) in enumerate(zip(sites, values + [None]))])
    rows = {r.split(" | ")[0]: r for r in expected_rows(BY_VIEW["v_incidents_by_site"], source)}
    def text(units: int | None) -> str:  # as the view renders DECIMAL(65,30) without trailing zeros
        if units is None:
            return "NULL"
        sign, digits = "-" if units < 0 else "", str(abs(units)).rjust(EXACT_SCALE + 1, "0")
        return (sign + digits[:-EXACT_SCALE] + "." + digits[-EXACT_SCALE:]).rstrip("0").rstrip(".")

    for site in {*sites}:
        mine = [v for s, v in zip(sites, values) if s == site]
        units = sum(map(_in_units, mine)) if mine else None
        assert f"total_duration_min={text(units)} |" in rows[f"site='{site}'"], site
        assert f"total_pause_min={text(None if units is None else -units)} |" in rows[f"site='{site}'"], site
    assert sum(pl.Series(values).cast(pl.String).str.contains("e").to_list()) > 1000  # both paths were taken
