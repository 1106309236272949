"""The figures every expectation needs, computed in MySQL, as Great Expectations' own results.

Great Expectations pushes each expectation to the server as several queries of its own (a row
count, a null count, an unexpected count, the unexpected values): at 1M tickets that is dozens of
passes over the table, 76 of the 83 s `etl validate` took. Here every rule of a table whose query
selects by a condition on one record (etl/rules.py `Rule.where`), and every native expectation
(not null, A >= B, in set), is counted in ONE `SELECT SUM(...)` over the table; the few rules that
group or join (unique keys, session pointers, session counts) run their own query counted; a
view is read once and compared in Python. The unexpected values and rows are fetched only for an
expectation that fails.

From those figures `suite_result` builds the `ExpectationSuiteValidationResult` Great Expectations
would have built: the suite's own expectation configurations (parameters filled in), each result
dict made by Great Expectations' own `_format_map_output`, so the data docs render them as theirs.
The SQL conditions are the ones Great Expectations' SQL engine applies, on the same server and
collation: tests/test_validate.py compares the two computations result by result.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

from .aggregates import AGGREGATES, mysql_query
from .db import MySQLTarget
from .rules import MYSQL, RULE_STORES, RULES, Rule

PARTIAL = 10  # unexpected values Great Expectations keeps in a SUMMARY result (partial_unexpected_count)
NATIVE = ("ExpectColumnValuesToNotBeNull", "ExpectColumnPairValuesAToBeGreaterThanB", "ExpectColumnValuesToBeInSet")


def _resolve(value, params: dict):
    """A kwarg with its suite parameter filled in."""
    if isinstance(value, dict) and set(value) == {"$PARAMETER"}:
        return params[value["$PARAMETER"]]
    return value


def _native(rule: Rule, params: dict) -> tuple[str, str | None, list]:
    """(unexpected condition, missing condition or None, its SQL arguments) of a native expectation,
    written as Great Expectations' SQL engine writes it (NULLs are missing, not unexpected)."""
    kind, kw = rule.expectation
    if kind == "ExpectColumnValuesToNotBeNull":
        return f"{kw['column']} IS NULL", None, []
    if kind == "ExpectColumnPairValuesAToBeGreaterThanB":
        if kw.get("ignore_row_if") != "either_value_is_missing":
            raise ValueError(f"rule {rule.name}: only ignore_row_if='either_value_is_missing' is computed here")
        a, b, op = kw["column_A"], kw["column_B"], ">=" if kw.get("or_equal") else ">"
        missing = f"{a} IS NULL OR {b} IS NULL"
        return f"NOT ({missing}) AND NOT ({a} {op} {b})", missing, []
    if kind == "ExpectColumnValuesToBeInSet":
        col, values = kw["column"], list(_resolve(kw["value_set"], params))
        inside = f"{col} IN ({', '.join(['%s'] * len(values))})" if values else "FALSE"
        return f"{col} IS NOT NULL AND NOT ({inside})", f"{col} IS NULL", values
    raise ValueError(f"rule {rule.name}: {kind} is not one of {NATIVE}")


def _table_figures(target: MySQLTarget, store, params: dict) -> dict[str, dict]:
    """Rule name -> {element_count, unexpected_count, missing_count?, unexpected_list?} for one table."""
    rules = [r for r in RULES if r.store is store]
    sums, args, plan = [], [], []  # plan: (rule, has missing, condition, its args)
    for rule in rules:
        if rule.expectation:
            cond, missing, a = _native(rule, params)
            sums.append(f"SUM(CASE WHEN {cond} THEN 1 ELSE 0 END)")
            args += a
            if missing:
                sums.append(f"SUM(CASE WHEN {missing} THEN 1 ELSE 0 END)")
            plan.append((rule, missing is not None, cond, a))
        elif rule.where:
            sums.append(f"SUM(CASE WHEN {rule.where(MYSQL)} THEN 1 ELSE 0 END)")
            plan.append((rule, False, None, []))
    out: dict[str, dict] = {}
    with target.connect() as conn, conn.cursor() as cur:
        cur.execute(f"SELECT COUNT(*), {', '.join(sums)} FROM {store.table}", args or None)  # None: no % parsing
        row = list(cur.fetchone())
        total, figures = int(row[0]), iter(int(v or 0) for v in row[1:])  # SUM over no rows is NULL
        for rule, has_missing, cond, a in plan:
            fig = {"element_count": total, "unexpected_count": next(figures)}
            if has_missing:
                fig["missing_count"] = next(figures)
            if cond is not None and fig["unexpected_count"]:  # the values Great Expectations lists
                kind, kw = rule.expectation
                cols = [kw["column_A"], kw["column_B"]] if "column_A" in kw else [kw["column"]]
                cur.execute(f"SELECT {', '.join(cols)} FROM {store.table} WHERE {cond} LIMIT {PARTIAL}", a or None)
                fig["unexpected_list"] = [tuple(r) if len(cols) > 1 else r[0] for r in cur.fetchall()]  # pairs: (A, B)
            out[rule.name] = fig
        for rule in rules:  # the rules that group or join: their own query, counted
            if rule.name not in out:
                cur.execute(f"SELECT COUNT(*) FROM ({rule.sql(MYSQL)}) AS breaking")
                out[rule.name] = {"unexpected_count": int(cur.fetchone()[0])}
    return out


def _view_rows(target: MySQLTarget, agg) -> list:
    with target.connect() as conn, conn.cursor() as cur:
        cur.execute(mysql_query(agg))
        return [r[0] for r in cur.fetchall()]


def compute(target: MySQLTarget, params: dict, workers: int = 2) -> tuple[dict[str, dict], dict[str, list]]:
    """(rule name -> figures, view -> its rows as `mysql_query` renders them), on `workers` connections
    (the server scans two tables at once on two cores; the biggest table first)."""
    with ThreadPoolExecutor(workers) as pool:
        tables = [pool.submit(_table_figures, target, s, params) for s in RULE_STORES]
        views = {a.view: pool.submit(_view_rows, target, a) for a in AGGREGATES}
        figures = {k: v for f in tables for k, v in f.result().items()}
        return figures, {v: f.result() for v, f in views.items()}


# ---------------------------------------------------------------- as Great Expectations' results


def _map_result(success: bool, fig: dict, nonnull: int | None) -> tuple[bool, dict]:
    from great_expectations.expectations.expectation import _format_map_output
    from great_expectations.expectations.expectation_configuration import parse_result_format

    out = _format_map_output(parse_result_format({"result_format": "SUMMARY", "partial_unexpected_count": PARTIAL}),
                             success, fig["element_count"], nonnull, fig["unexpected_count"],
                             fig.get("unexpected_list", []))
    return success, out["result"]


def _expectation_result(cfg, figures: dict, views: dict) -> tuple[bool, dict]:
    """(success, result dict) of one expectation from the figures."""
    meta = cfg.meta or {}
    if "view" in meta:
        rows = views[meta["view"]]
        if cfg.type == "expect_table_row_count_to_equal":
            return len(rows) == cfg.kwargs["value"], {"observed_value": len(rows)}
        wanted = set(cfg.kwargs["value_set"])
        unexpected = [r for r in rows if r is not None and r not in wanted]
        nonnull = sum(r is not None for r in rows)
        fig = {"element_count": len(rows), "unexpected_count": len(unexpected), "unexpected_list": unexpected[:PARTIAL]}
        return _map_result(not unexpected or not nonnull, fig, nonnull)
    fig = figures[meta["rule"]]
    if cfg.type == "unexpected_rows_expectation":
        return fig["unexpected_count"] == 0, {"observed_value": fig["unexpected_count"]}
    nonnull = fig["element_count"] - fig["missing_count"] if "missing_count" in fig else None
    vacuous = not fig["element_count"] or nonnull == 0  # Great Expectations: nothing to check is a success
    return _map_result(vacuous or fig["unexpected_count"] == 0, fig, nonnull)


def suite_result(suite, asset: str, figures: dict, views: dict, params: dict):
    """The suite's ExpectationSuiteValidationResult, as a Great Expectations run on `asset` reports it."""
    from great_expectations.core.expectation_validation_result import (
        ExpectationSuiteValidationResult,
        ExpectationValidationResult,
    )

    results = []
    for exp in suite.expectations:
        cfg = exp.configuration
        cfg.kwargs = {**{k: _resolve(v, params) for k, v in cfg.kwargs.items()}, "batch_id": asset}
        success, result = _expectation_result(cfg, figures, views)
        results.append(ExpectationValidationResult(
            success=success, expectation_config=cfg, result=result,
            exception_info={"raised_exception": False, "exception_message": None, "exception_traceback": None}))
    passed = sum(r.success for r in results)
    stats = {"evaluated_expectations": len(results), "successful_expectations": passed,
             "unsuccessful_expectations": len(results) - passed,
             "success_percent": 100.0 * passed / len(results) if results else None}
    return ExpectationSuiteValidationResult(success=passed == len(results), results=results, suite_name=suite.name,
                                            statistics=stats, meta={})
