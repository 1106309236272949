"""The aggregations the app's UI shows, as MySQL's views return them and as the source implies them.

Each `Aggregate` names a view of sql/schema.mysql.sql, its group keys and its measures.
From that one description come:

* `mysql_query`: one text row per view row (``status='closed' | tickets=286``), which a
  Great Expectations query asset reads and an expectation compares, as a set, with
* `expected_rows`: the same rows computed from the staged source with Polars, at run time.

Both sides render values the same way: keys as MySQL groups them (its utf8mb4_unicode_ci
collation ignores case and trailing spaces, so ``Closed``, ``CLOSED`` and ``Closed `` are
one group; accents and ignorable characters are not modelled), numbers at the view
column's scale. Divisions and averages are rounded half up from the exact value, as
MariaDB and MySQL round DECIMAL arithmetic (checked against MariaDB: 0 mismatches in
17,851 quotients). Sums and averages of DOUBLE columns are exact: the views cast each double
to DECIMAL(65,EXACT_SCALE), which both servers do through its shortest decimal text, and the
source side adds the same decimals (Python's repr is that text), so neither depends on the
order the rows are added in. (A SUM of the doubles themselves is floating point: its last bits
follow the order of the additions, and no rounding makes two orders agree at a boundary.)
Exact sums are rendered without trailing zeros.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal, localcontext

import polars as pl

from ..core.stores import CUSTOMERS, INCIDENTS, TICKETS, UPLOAD_SESSIONS, Store

ROW_COLUMN = "aggregate_row"  # the query asset's one column
MONTH = "month"  # a key that is the month of the store's time column, as DATE_FORMAT(.., '%Y-%m')
AVG_SCALE = 4  # averages are compared rounded to this many decimals (the view keeps more)
EXACT_SCALE = 30  # the views' DECIMAL(65,30) for sums of doubles: MySQL's largest scale


@dataclass(frozen=True)
class Measure:
    name: str  # the view's column
    kind: str  # count | count_not_null | count_true | sum | avg | min | max | pct
    column: str | None = None
    of: tuple[str, str] | None = None  # pct: (numerator, denominator) measure names
    scale: int = 0  # decimals the view's column has (avg: compared at AVG_SCALE)

    def __post_init__(self):
        kinds = ("count", "count_not_null", "count_true", "sum", "avg", "min", "max", "pct")
        if self.kind not in kinds:
            raise ValueError(f"measure {self.name}: unknown kind {self.kind!r}")
        if (self.kind == "pct") != (self.of is not None):
            raise ValueError(f"measure {self.name}: pct, and only pct, is computed from two other measures")


@dataclass(frozen=True)
class Aggregate:
    view: str
    store: Store
    keys: tuple[str, ...]
    measures: tuple[Measure, ...]

    @property
    def suite(self) -> str:
        return self.view

    @property
    def parameter(self) -> str:
        return f"{self.view}__rows"

    @property
    def count_parameter(self) -> str:
        return f"{self.view}__row_count"

    @property
    def rule(self) -> str:
        return f"{self.view}.matches_source"

    @property
    def description(self) -> str:
        by = f" by {', '.join(self.keys)}" if self.keys else ""
        return (f"{self.view} ({', '.join(m.name for m in self.measures)}{by}) returns exactly the rows the staged "
                "source gives: each of its rows is one of them")

    @property
    def count_description(self) -> str:
        return f"{self.view} returns as many rows as the staged source gives (with the rows check: the same rows)"


def _counts(name: str) -> tuple[Measure, ...]:
    return (Measure(name, "count"),)


def _sla() -> tuple[Measure, ...]:
    sla = TICKETS.sla
    bands = tuple(Measure(f"within_{h}h", "count_true", sla.column(h)) for h in sla.hours)
    pcts = tuple(Measure(f"pct_{h}h", "pct", of=(f"within_{h}h", "closed"), scale=2) for h in sla.hours)
    return (Measure("tickets", "count"), Measure("closed", "count_not_null", sla.closed), *bands, *pcts)


def _incident_durations() -> tuple[Measure, ...]:
    return (
        Measure("incidents", "count"),
        Measure("total_duration_min", "sum", "duration_min", scale=EXACT_SCALE),
        Measure("avg_duration_min", "avg", "duration_min", scale=AVG_SCALE),
        Measure("total_net_duration_min", "sum", "net_duration_min", scale=EXACT_SCALE),
        Measure("avg_net_duration_min", "avg", "net_duration_min", scale=AVG_SCALE),
        Measure("total_pause_min", "sum", "total_duration_pause_min", scale=EXACT_SCALE),
        Measure("total_vendor_min", "sum", "total_duration_vendor_min", scale=EXACT_SCALE),
    )


AGGREGATES: tuple[Aggregate, ...] = (
    Aggregate("v_tickets_by_status", TICKETS, ("status",), _counts("tickets")),
    Aggregate("v_tickets_by_category", TICKETS, ("category",), _counts("tickets")),
    Aggregate("v_tickets_by_cabang", TICKETS, ("cabang",), _counts("tickets")),
    Aggregate("v_tickets_by_month", TICKETS, (MONTH,), _counts("tickets")),
    Aggregate("v_ticket_sla", TICKETS, (), _sla()),
    Aggregate("v_ticket_sla_by_cabang", TICKETS, ("cabang",), _sla()),
    Aggregate("v_incidents_by_status", INCIDENTS, ("status",), _incident_durations()),
    Aggregate("v_incidents_by_priority", INCIDENTS, ("priority",), _incident_durations()),
    Aggregate("v_incidents_by_site", INCIDENTS, ("site",), _incident_durations()),
    Aggregate("v_customers_by_jenis_klien", CUSTOMERS, ("jenis_klien",), _counts("customers")),
    Aggregate("v_customers_by_layanan", CUSTOMERS, ("layanan",), _counts("customers")),
    Aggregate("v_customers_by_kategori", CUSTOMERS, ("kategori",), _counts("customers")),
    Aggregate("v_upload_session_summary", UPLOAD_SESSIONS, ("data_type", "status"), (
        Measure("sessions", "count"),
        Measure("reconstructed", "count_true", "reconstructed"),
        Measure("records", "sum", "record_count"),
        Measure("successes", "sum", "success_count"),
        Measure("errors", "sum", "error_count"),
        Measure("first_upload_ms", "min", "upload_timestamp"),
        Measure("last_upload_ms", "max", "upload_timestamp"),
    )),
)


# ---------------------------------------------------------------- MySQL side


def mysql_query(agg: Aggregate) -> str:
    """The view's rows, each as one text in the shared rendering (compared byte for byte)."""
    parts = [f"CONCAT('{k}=', COALESCE(CONCAT('''', LOWER(TRIM(TRAILING ' ' FROM {k})), ''''), 'NULL'))"
             for k in agg.keys]
    for m in agg.measures:
        value = f"CAST(ROUND({m.name}, {AVG_SCALE}) AS CHAR)" if m.kind == "avg" else f"CAST({m.name} AS CHAR)"
        if _exact(agg, m) and m.kind == "sum":  # DECIMAL(65,30) always has a point: drop its trailing zeros
            value = f"TRIM(TRAILING '.' FROM TRIM(TRAILING '0' FROM {value}))"
        parts.append(f"CONCAT('{m.name}=', COALESCE({value}, 'NULL'))")
    # utf8mb4_bin: the comparison with the expected rows must not ignore case or trailing spaces.
    return f"SELECT CONCAT_WS(' | ', {', '.join(parts)}) COLLATE utf8mb4_bin AS {ROW_COLUMN} FROM {agg.view}"


# ---------------------------------------------------------------- source side


def group_key(col: str) -> pl.Expr:
    """A text key as MySQL's collation groups it (case and trailing spaces ignored)."""
    return pl.col(col).str.strip_chars_end(" ").str.to_lowercase()


def _frame_aggs(agg: Aggregate, grouped: bool) -> list[pl.Expr]:
    out = []
    for m in agg.measures:
        c = pl.col(m.column) if m.column else None
        if m.kind == "count":
            out.append(pl.len().alias(m.name))
        elif m.kind == "count_not_null":
            out.append(c.is_not_null().sum().alias(m.name))
        elif m.kind == "count_true":  # SUM(flag = 1): NULL when every flag is NULL
            out.append(pl.when(c.is_not_null().any()).then(c.cast(pl.Int64).sum()).alias(m.name))
        elif _exact(agg, m):  # the exact decimals' parts, added by Polars (_with_units), and the count
            odd = pl.col(f"__odd_{m.column}").drop_nulls()
            out += [pl.col(f"__whole_{m.column}").sum().alias(f"__whole_{m.name}"),
                    pl.col(f"__frac_{m.column}").sum().alias(f"__frac_{m.name}"),
                    (odd if grouped else odd.implode()).alias(f"__odd_{m.name}"), c.count().alias(f"__n_{m.name}")]
        elif m.kind in ("sum", "avg"):  # exact sums; SUM and AVG of only NULLs are NULL
            out.append(pl.when(c.is_not_null().any()).then(c.sum()).alias(m.name))
            out.append(c.count().alias(f"__n_{m.name}"))
        elif m.kind in ("min", "max"):
            out.append(getattr(c, m.kind)().alias(m.name))
    return out


def _exact(agg: Aggregate, m: Measure) -> bool:
    """A sum or average of a DOUBLE column, which the view computes in DECIMAL (module docstring)."""
    return m.kind in ("sum", "avg") and agg.store.column(m.column).kind == "double"


# The shortest text of a double without an exponent and with at most EXACT_SCALE decimals: its CAST AS
# DECIMAL(65,EXACT_SCALE) is the text itself, padded with zeros.
_PLAIN = rf"^-?[0-9]+(\.[0-9]{{1,{EXACT_SCALE}}})?$"


def _with_units(frame: pl.DataFrame, cols) -> pl.DataFrame:
    """The frame with CAST(v AS DECIMAL(65,EXACT_SCALE)) of each value of `cols` in parts whose group
    sums Polars computes exactly: the whole number (`__whole_`, Int128) and the decimals as a count of
    10^-EXACT_SCALE (`__frac_`, Int128: under 10^30 each, so 10^8 of them add without overflow), both
    carrying the value's sign. Polars prints a double as its shortest text, as Python's repr does
    (digit for digit; checked on 200k values), and as both servers convert it. Values printed with an
    exponent (under 1e-5 or from 1e16) or not finite are left to `_in_units` (`__odd_`). The ~1M
    values of the incident views took 3.9 s as a Python loop; this takes a tenth of it."""
    cols = list(dict.fromkeys(cols))
    if not cols:
        return frame
    texts = frame.select(pl.col(c).cast(pl.String) for c in cols)  # once: each part reads it
    parts = []
    for c in cols:
        text = pl.col(c)
        plain = text.str.contains(_PLAIN)
        sign = pl.when(text.str.starts_with("-")).then(-1).otherwise(1).cast(pl.Int128)
        split = text.str.strip_prefix("-").str.split_exact(".", 1)
        whole = split.struct.field("field_0").cast(pl.Int128, strict=False)
        frac = split.struct.field("field_1").fill_null("").str.pad_end(EXACT_SCALE, "0").cast(pl.Int128, strict=False)
        parts += [pl.when(plain).then(whole * sign).otherwise(0).alias(f"__whole_{c}"),
                  pl.when(plain).then(frac * sign).otherwise(0).alias(f"__frac_{c}"), plain.alias(f"__plain_{c}")]
    return (frame.with_columns(texts.select(parts))
            .with_columns(pl.when(pl.col(f"__plain_{c}").not_()).then(pl.col(c)).alias(f"__odd_{c}") for c in cols))


def _exact_sum(row: dict, name: str) -> Decimal | None:
    """The sum of CAST(v AS DECIMAL(65,EXACT_SCALE)) over a group's values, exactly, from the parts
    `_frame_aggs` added; None for no values (SUM of none is NULL)."""
    if not row[f"__n_{name}"]:
        return None
    units = row[f"__whole_{name}"] * 10**EXACT_SCALE + row[f"__frac_{name}"] + sum(map(_in_units, row[f"__odd_{name}"]))
    with localcontext() as ctx:
        ctx.prec = 100  # wide enough for 35 integer and 30 fractional digits: exact
        return Decimal(units).scaleb(-EXACT_SCALE)


def _in_units(v: float) -> int:
    """CAST(v AS DECIMAL(65,EXACT_SCALE)), through the double's shortest text as both servers convert
    it, as an integer count of 10^-EXACT_SCALE: integers add exactly. For the values `_with_units`
    leaves out, and the reference it is tested against."""
    text = repr(v)
    with localcontext() as ctx:
        ctx.prec = 100
        d = Decimal(text)
        if "e-" in text:  # only these can have more than EXACT_SCALE decimals: round as the cast does
            d = d.quantize(_EXACT_UNIT, rounding=ROUND_HALF_UP)
        return int(d.scaleb(EXACT_SCALE))


_EXACT_UNIT = Decimal(1).scaleb(-EXACT_SCALE)


def _fixed(value: Decimal, scale: int) -> str:
    with localcontext() as ctx:
        ctx.prec = 60
        return format(value.quantize(Decimal(1).scaleb(-scale), rounding=ROUND_HALF_UP), "f")


def _render(agg: Aggregate, row: dict) -> str:
    parts = [f"{k}=NULL" if row[k] is None else f"{k}='{row[k]}'" for k in agg.keys]
    values: dict[str, object] = {}
    for m in agg.measures:
        v = row.get(m.name)
        if m.kind == "pct":
            num, den = (values[x] for x in m.of)
            v = None if num is None or not den else Decimal(100) * Decimal(num) / Decimal(den)
        elif _exact(agg, m):
            n = row[f"__n_{m.name}"]
            v = _exact_sum(row, m.name)
            if m.kind == "avg" and v is not None:  # AVG of DECIMAL(65,30) keeps 30 decimals, then ROUND
                with localcontext() as ctx:
                    ctx.prec = 100
                    v = Decimal(_fixed(v / n, EXACT_SCALE))
        elif m.kind == "avg" and v is not None:
            v = Decimal(v) / row[f"__n_{m.name}"]
        values[m.name] = v
        if v is None:
            text = "NULL"
        elif _exact(agg, m) and m.kind == "sum":
            text = _fixed(v, EXACT_SCALE).rstrip("0").rstrip(".")
        elif isinstance(v, Decimal) or m.scale:
            text = _fixed(Decimal(v), m.scale)
        else:
            text = str(int(v))
        parts.append(f"{m.name}={text}")
    return " | ".join(parts)


def expected_rows(agg: Aggregate, frame: pl.DataFrame) -> list[str]:
    """The view's rows as the source gives them, rendered like `mysql_query`, sorted."""
    keyed = frame.with_columns(
        (pl.col(agg.store.time_column).dt.strftime("%Y-%m") if k == MONTH else group_key(k)).alias(k)
        for k in agg.keys
    )
    keyed = _with_units(keyed, (m.column for m in agg.measures if _exact(agg, m)))
    if agg.keys:
        grouped = keyed.group_by(list(agg.keys)).agg(_frame_aggs(agg, grouped=True))
    else:
        grouped = keyed.select(_frame_aggs(agg, grouped=False))
    return sorted(_render(agg, row) for row in grouped.iter_rows(named=True))


BY_VIEW = {a.view: a for a in AGGREGATES}


# ---------------------------------------------------------------- the notebooks


def sla_shares(stage_dir, target) -> pl.DataFrame:
    """Share of closed tickets within 4/8/24 h per cabang, the stage (the source) beside MySQL's
    v_ticket_sla_by_cabang (what the app's dashboard reads): cabang, band, hours, side, pct.

    Cabang values are grouped as MySQL's collation groups them (case and trailing spaces ignored);
    a group is labelled by the source's first spelling."""
    from ..stage.folder import read_stage

    sla = TICKETS.sla
    bands = [f"{h}h" for h in sla.hours]
    stage = (read_stage(stage_dir, TICKETS).group_by(group_key("cabang").alias("key"))
             .agg(pl.col("cabang").first(), pl.col(sla.closed).is_not_null().sum().alias("closed"),
                  *(pl.col(sla.column(h)).fill_null(False).sum().alias(b) for h, b in zip(sla.hours, bands))))
    with target.connect() as conn, conn.cursor() as cur:
        cur.execute(f"SELECT cabang, closed, {', '.join(f'within_{b}' for b in bands)} FROM v_ticket_sla_by_cabang")
        rows = cur.fetchall()
    mysql = (pl.DataFrame([[None if v is None else int(v) if i else v for i, v in enumerate(r)] for r in rows],
                          schema={"cabang": pl.String, "closed": pl.Int64, **{b: pl.Int64 for b in bands}}, orient="row")
             .with_columns(group_key("cabang").alias("key")))
    labels = stage.select("key", "cabang")

    def long(frame: pl.DataFrame, side: str) -> pl.DataFrame:
        return (frame.drop("cabang").join(labels, on="key", how="left", nulls_equal=True)
                .unpivot(index=["key", "cabang", "closed"], on=bands, variable_name="band", value_name="within")
                .select(pl.col("cabang"), pl.col("band"), pl.col("band").str.strip_suffix("h").cast(pl.Int32).alias("hours"),
                        pl.lit(side).alias("side"), (100 * pl.col("within") / pl.col("closed")).round(2).alias("pct")))

    return pl.concat([long(stage.cast({b: pl.Int64 for b in bands} | {"closed": pl.Int64}), "source"),
                      long(mysql, "mysql")]).sort("cabang", "hours", "side", nulls_last=True)
