"""The business rules migrated data must keep: each one named, each one SQL that both engines run.

One list, `RULES`, derived from the store descriptions (etl/core/stores.py: keys, spans, SLA
bands, categorical columns, upload-session pointers), drives both sides:

* etl/check/suites.py turns every rule into a Great Expectations expectation and
  etl/check/validate.py runs the suites against MySQL;
* the same rule's query runs in DuckDB over the staged source, so a rule the source
  export already breaks is reported as a finding about the source, with its records,
  instead of being blamed on the migration.

A rule's `query(dialect)` selects the records that break it: the record's key first, then
the values that show why. `{batch}` stands for the rule's table (Great Expectations
substitutes its batch; the other callers the table name). Rules that have a native
expectation (unique, not null, between, pair, in set) carry it as (type, kwargs); the
query is then the same condition written out, for the source side. Rules whose expected
values come from the source at run time (`in set`) have no source side: the source
defines them.

No Great Expectations import here: the rules are plain data.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from ..core.stores import INCIDENTS, SESSION_COLUMN, SESSION_STORES, STORES, TICKETS, UPLOAD_SESSIONS, Span, Store
from ..stage.sessions import carried_counts_sql

# A stored length agrees with its times (or its H:MM:SS text) to within this many seconds:
# the app kept milliseconds and the text whole seconds (the hours are the app's own doubles).
TOLERANCE_SECONDS = 1.5


@dataclass(frozen=True)
class Dialect:
    """The few SQL spellings MySQL/MariaDB and DuckDB do not share."""

    name: str  # mysql | duckdb

    def seconds_between(self, start: str, end: str) -> str:
        if self.name == "mysql":
            # 1e6 is a DOUBLE: a double quotient, as DuckDB's (/ 1000000 is DECIMAL arithmetic, slower)
            return f"TIMESTAMPDIFF(MICROSECOND, {start}, {end}) / 1e6"
        return f"date_diff('microsecond', {start}, {end}) / 1000000"

    def is_hms(self, text: str) -> str:
        """`H:MM:SS` with any number of hours (the app's formatted durations pass 24)."""
        if self.name == "mysql":
            return f"{text} REGEXP '^[0-9]+:[0-5][0-9]:[0-5][0-9]$'"
        return f"regexp_full_match({text}, '[0-9]+:[0-5][0-9]:[0-5][0-9]')"

    def hms_seconds(self, text: str) -> str:
        if self.name == "mysql":
            parts = (f"SUBSTRING_INDEX({text}, ':', 1)", f"SUBSTRING_INDEX(SUBSTRING_INDEX({text}, ':', 2), ':', -1)",
                     f"SUBSTRING_INDEX({text}, ':', -1)")
            h, m, s = (f"CAST({p} AS UNSIGNED)" for p in parts)
            # TIME_TO_SEC reads H:MM:SS for less than the three splits, but TIME stops at 838 hours:
            # it takes the texts of under 100 hours, the splits the longer ones (the formatted rule:
            # 6.0 s instead of 7.2 s on 1M tickets, seven texts each)
            return f"(CASE WHEN CHAR_LENGTH({text}) <= 8 THEN TIME_TO_SEC({text}) ELSE {h} * 3600 + {m} * 60 + {s} END)"
        # TRY_CAST: DuckDB may evaluate this before the is_hms guard. An INTERVAL reads H:MM:SS at a
        # third of the cost of the three splits (the formatted rule: 0.8 s instead of 2 s of the 1M
        # tickets' source side), but its microseconds overflow past 2.5e9 hours: up to 9 digits of hours.
        h, m, s = (f"TRY_CAST(split_part({text}, ':', {i}) AS BIGINT)" for i in (1, 2, 3))
        return (f"(CASE WHEN length({text}) <= 15 THEN epoch(TRY_CAST({text} AS INTERVAL)) "
                f"ELSE {h} * 3600 + {m} * 60 + {s} END)")

    def differs(self, a: str, b: str) -> str:
        """NULL-safe `a <> b` (NULL differs from a value, NULL equals NULL)."""
        if self.name == "mysql":
            return f"NOT ({a} <=> {b})"  # MySQL and MariaDB lack IS DISTINCT FROM
        return f"({a}) IS DISTINCT FROM ({b})"


MYSQL, DUCKDB = Dialect("mysql"), Dialect("duckdb")


@dataclass(frozen=True)
class Rule:
    name: str  # what the terminal summary and the suite's meta call it
    store: Store  # its suite is the store's table
    description: str
    query: Callable[[Dialect], str] | None  # the records breaking it: key first, then the values that show why
    expectation: tuple[str, dict] | None = None  # native expectation (class name, kwargs); None: unexpected rows
    parameter: str | None = None  # suite parameter the source fills at run time
    source_checked: bool = True  # False: the source defines the expected values, so it cannot break the rule
    # The condition on one record of the table that `query` selects by, when it is one: etl/check/figures.py
    # counts every such rule of a table in one pass. None: the query groups or joins.
    where: Callable[[Dialect], str] | None = None

    def ge_expectation(self) -> tuple[str, dict]:
        """(Great Expectations class name, kwargs) of the expectation that checks this rule."""
        if self.expectation:
            return self.expectation
        return "UnexpectedRowsExpectation", {"unexpected_rows_query": self.query(MYSQL)}

    def sql(self, dialect: Dialect, table: str | None = None) -> str:
        """The rule's query with `{batch}` replaced by the table name."""
        if self.query is None:
            raise ValueError(f"rule {self.name} has no query: its expected values come from the source at run time")
        return self.query(dialect).replace("{batch}", table or self.store.table)


def _key(store: Store) -> str:
    return store.primary_key[0]


def _select(store: Store, *cols: str, alias: str = "") -> str:
    p = f"{alias}." if alias else ""
    return ", ".join(dict.fromkeys(f"{p}{c}" for c in (_key(store), *cols)))


# ---------------------------------------------------------------- rule builders


def key_unique(store: Store, col: str) -> Rule:
    # GROUP BY rides the key's index; Great Expectations' own unique check counts with a window
    # function over the whole table (17 s instead of under 1 s on 1M tickets, MariaDB 10.11).
    return Rule(
        f"{store.table}.{col}.unique", store, f"{col} identifies one record: no value occurs twice",
        lambda d: f"SELECT {col}, COUNT(*) AS records FROM {{batch}} GROUP BY {col} HAVING COUNT(*) > 1",
    )


def key_not_null(store: Store, col: str) -> Rule:
    return Rule(
        f"{store.table}.{col}.not_null", store, f"every record has its {col}",
        lambda d: f"SELECT {_select(store, col)} FROM {{batch}} WHERE {col} IS NULL",
        ("ExpectColumnValuesToNotBeNull", {"column": col}),
    )


def _per_span(store: Store, spans, breaks: Callable[[Span, Dialect], str], label=lambda s: s.value) -> dict:
    """A query over several spans: the records where any span breaks the rule, naming the first that
    does; as Rule keywords (query, where)."""

    def where(d: Dialect) -> str:
        return " OR ".join(f"({breaks(s, d)})" for s in spans)

    def query(d: Dialect) -> str:
        which = "CASE " + " ".join(f"WHEN {breaks(s, d)} THEN '{label(s)}'" for s in spans) + " END"
        return f"SELECT {_key(store)}, {which} AS span FROM {{batch}} WHERE {where(d)}"

    return {"query": query, "where": where}


# One expectation per rule, over all of a store's spans: each expectation costs Great Expectations
# at least one pass over the table (seven per-span expectations took 7x the time on 1M tickets).
def ends_not_before_starts(store: Store) -> Rule:
    return Rule(
        f"{store.table}.durations.end_not_before_start", store,
        "no end time is before its start time (" + ", ".join(f"{s.end} >= {s.start}" for s in store.spans) + ")",
        **_per_span(store, store.spans, lambda s, d: f"{s.end} < {s.start}", label=lambda s: s.end),
    )


def durations_not_negative(store: Store) -> Rule:
    return Rule(
        f"{store.table}.durations.not_negative", store,
        f"no stored duration is negative ({', '.join(s.value for s in store.spans)})",
        **_per_span(store, store.spans, lambda s, d: f"{s.value} < 0"),
    )


def _span_breaks_times(span: Span, d: Dialect) -> str:
    per = 3600 if span.unit == "hours" else 60
    stored = f"{span.value} * {per}"
    lo = span.offset_hours[0] * 3600 - TOLERANCE_SECONDS
    hi = span.offset_hours[1] * 3600 + TOLERANCE_SECONDS
    gap = f"{stored} - {d.seconds_between(span.start, span.end)}"
    # BETWEEN computes the gap once (`gap < lo OR gap > hi` twice). With the double quotient of
    # seconds_between: 2.2 s instead of 4.0 s for this rule on 1M tickets (MariaDB 10.11).
    return (f"CASE WHEN {span.start} IS NOT NULL AND {span.end} IS NOT NULL AND {span.end} >= {span.start} "
            f"THEN {span.value} IS NULL OR NOT ({gap} BETWEEN {lo!r} AND {hi!r}) "
            f"ELSE {span.value} IS NOT NULL AND {span.value} <> 0 END")


def spans_match_times(store: Store) -> Rule:
    offsets = {s.offset_hours for s in store.spans}
    offset = (" plus the uploading browser's UTC offset ({:+g} h to {:+g} h)".format(*next(iter(offsets)))
              if offsets != {(0.0, 0.0)} else "")
    return Rule(
        f"{store.table}.durations.match_times", store,
        f"each stored duration ({', '.join(s.value for s in store.spans)}) equals its end minus its start{offset}, "
        "and is 0 when the end is missing or before the start",
        **_per_span(store, store.spans, _span_breaks_times),
    )


def formatted_matches_value(store: Store) -> Rule:
    def breaks(s: Span, d: Dialect) -> str:
        per = 3600 if s.unit == "hours" else 60
        return (f"({s.value} IS NULL) <> ({s.formatted} IS NULL) OR ({s.value} IS NOT NULL AND {s.formatted} IS NOT NULL "
                f"AND (NOT ({d.is_hms(s.formatted)}) OR ABS({s.value} * {per} - {d.hms_seconds(s.formatted)}) "
                f"> {TOLERANCE_SECONDS!r}))")

    return Rule(
        f"{store.table}.durations.formatted_matches", store,
        "each H:MM:SS duration text agrees with its stored hours (to the second)",
        **_per_span(store, [s for s in store.spans if s.formatted], breaks, label=lambda s: s.formatted),
    )


def sla_nested(store: Store, inner: int, outer: int) -> Rule:
    a, b = store.sla.column(outer), store.sla.column(inner)
    return Rule(
        f"{store.table}.{b}.within.{a}", store, f"a ticket resolved within {inner} h is also within {outer} h",
        lambda d: f"SELECT {_select(store, b, a)} FROM {{batch}} WHERE {a} < {b}",
        ("ExpectColumnPairValuesAToBeGreaterThanB",
         {"column_A": a, "column_B": b, "or_equal": True, "ignore_row_if": "either_value_is_missing"}),
    )


def sla_follow_duration(store: Store) -> Rule:
    # The bands as etl/core/stores.py describes them (Sla; the transform sets them so): NULL while not closed.
    sla = store.sla

    def where(d: Dialect) -> str:
        def expected(h: int) -> str:
            return f"CASE WHEN {sla.closed} IS NOT NULL AND {sla.duration} IS NOT NULL THEN {sla.duration} <= {h} END"

        return " OR ".join(d.differs(sla.column(h), expected(h)) for h in sla.hours)

    def query(d: Dialect) -> str:
        return (f"SELECT {_select(store, sla.duration, sla.closed, *sla.columns)} FROM {{batch}} "
                f"WHERE {where(d)}")

    return Rule(
        f"{store.table}.sla_bands.follow_duration", store,
        f"the SLA flags ({', '.join(f'{h} h' for h in sla.hours)}) say whether {sla.duration} is within the band; "
        f"NULL while {sla.closed} is missing", query, where=where,
    )


def in_source_values(store: Store, col: str) -> Rule:
    param = f"{store.table}__{col}__values"
    return Rule(
        f"{store.table}.{col}.in_source_values", store, f"every {col} is one of the values the source export holds",
        None,  # the set comes from the source at run time: Great Expectations reports the values outside it
        ("ExpectColumnValuesToBeInSet", {"column": col, "value_set": {"$PARAMETER": param}}),
        parameter=param, source_checked=False,
    )


def session_exists(store: Store) -> Rule:
    sessions = UPLOAD_SESSIONS.table
    return Rule(
        f"{store.table}.{SESSION_COLUMN}.session_exists", store, f"every {SESSION_COLUMN} names an upload session",
        lambda d: (f"SELECT {_select(store, SESSION_COLUMN, alias='t')} FROM {{batch}} AS t "
                   f"LEFT JOIN {sessions} AS s ON s.id = t.{SESSION_COLUMN} "
                   f"WHERE t.{SESSION_COLUMN} IS NOT NULL AND s.id IS NULL"),
    )


def session_record_counts() -> Rule:
    carriers = [s.table for s in SESSION_STORES]
    counted = carried_counts_sql()
    return Rule(
        f"{UPLOAD_SESSIONS.table}.record_count.matches_rows", UPLOAD_SESSIONS,
        f"every upload session's record_count equals the rows carrying its id ({', '.join(carriers)})",
        lambda d: (f"SELECT s.id, s.record_count, COALESCE(c.n, 0) AS rows_carrying_id FROM {{batch}} AS s "
                   f"LEFT JOIN (SELECT {SESSION_COLUMN}, SUM(n) AS n FROM ({counted}) AS per_table "
                   f"GROUP BY {SESSION_COLUMN}) AS c ON c.{SESSION_COLUMN} = s.id "
                   f"WHERE s.record_count IS NULL OR s.record_count <> COALESCE(c.n, 0)"),
    )


# ---------------------------------------------------------------- the rules


def store_rules(store: Store) -> tuple[Rule, ...]:
    rules: list[Rule] = []
    for k in store.primary_key:
        rules += [key_unique(store, k), key_not_null(store, k)]
    if store.spans:
        rules += [ends_not_before_starts(store), durations_not_negative(store), spans_match_times(store)]
    if any(s.formatted for s in store.spans):
        rules.append(formatted_matches_value(store))
    if store.sla:
        rules += [sla_nested(store, a, b) for a, b in zip(store.sla.hours, store.sla.hours[1:])]
        rules.append(sla_follow_duration(store))
    if store is UPLOAD_SESSIONS:
        rules.append(session_record_counts())
    elif store.carries_session:
        rules.append(session_exists(store))
    rules += [in_source_values(store, c) for c in store.categorical]
    return tuple(rules)


# The stores the expectations cover (vendors carry no rule the UI depends on).
RULE_STORES: tuple[Store, ...] = tuple(s for s in STORES if s.categorical)
RULES: tuple[Rule, ...] = tuple(r for s in RULE_STORES for r in store_rules(s))
BY_NAME = {r.name: r for r in RULES}
assert len(BY_NAME) == len(RULES), "rule names must be unique"
assert TICKETS in RULE_STORES and INCIDENTS in RULE_STORES
